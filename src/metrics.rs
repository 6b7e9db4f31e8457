//! Prometheus metrics: one private registry. Domain gauges are timestamps, not ages, so that
//! alerts compute ages with `time() - …`. The series of a policy are replaced as a whole on
//! each evaluation, so series of deleted nodes and policies disappear.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

use crate::crd::v1alpha1::Verdict;
use crate::policy::Evaluation;

/// The operator's metrics.
pub struct Metrics {
    registry: Registry,
    /// Time per reconcile.
    pub reconcile_duration: Histogram,
    /// Reconcile errors by category.
    pub reconcile_errors: IntCounterVec,
    /// SupportStatus status writes.
    pub status_writes: IntCounter,
    /// Objects a watch could not use, by kind.
    pub skipped_objects: IntCounterVec,
    /// Errors of the watches (and of the discovery refresh) that feed the caches, by kind.
    pub watch_errors: IntCounterVec,
    /// 1 on the replica that holds the leader Lease.
    pub leader: IntGauge,
    domain: Vec<(Domain, GaugeVec)>,
    written: Mutex<BTreeMap<String, Series>>,
    exists: Mutex<Option<PolicyFilter>>,
}

/// The label sets written for one policy, per gauge.
type Series = BTreeSet<(Domain, Vec<String>)>;

/// Tells whether a policy still exists.
type PolicyFilter = Box<dyn Fn(&str) -> bool + Send + Sync>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Domain {
    Verdict,
    Findings,
    NextDeadline,
    VersionEnd,
    NodeImage,
    NotReady,
    ClusterStopped,
    Heartbeat,
    PlanSteps,
    PlanDeadline,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let registry = Registry::new();
        let reconcile_duration = Histogram::with_opts(
            HistogramOpts::new("support_reconcile_duration_seconds", "Time to gather, evaluate and write one policy.")
                .buckets(vec![0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
        )
        .expect("valid histogram");
        let reconcile_errors = IntCounterVec::new(
            Opts::new(
                "support_reconcile_errors_total",
                "Reconcile errors, by category (api, conflict, invalid-object, internal).",
            ),
            &["category"],
        )
        .expect("valid counter");
        let status_writes = IntCounter::new(
            "support_status_writes_total",
            "SupportStatus status writes (only changed content is written).",
        )
        .expect("valid counter");
        let skipped_objects = IntCounterVec::new(
            Opts::new(
                "support_watch_objects_skipped_total",
                "Watched objects that could not be read and were skipped, by kind.",
            ),
            &["kind"],
        )
        .expect("valid counter");
        let watch_errors = IntCounterVec::new(
            Opts::new(
                "support_watch_errors_total",
                "Errors of the watches feeding the caches (and of the discovery refresh), by kind.",
            ),
            &["kind"],
        )
        .expect("valid counter");
        let leader = IntGauge::new("support_leader", "1 on the replica that holds the leader Lease and writes.")
            .expect("valid gauge");
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            GaugeVec::new(Opts::new(name, help), labels).expect("valid gauge")
        };
        let domain = vec![
            (
                Domain::Verdict,
                gauge(
                    "support_verdict",
                    "1 for the policy's current verdict, 0 for the others.",
                    &["policy", "verdict"],
                ),
            ),
            (
                Domain::Findings,
                gauge("support_findings", "Findings by rule and severity.", &["policy", "rule", "severity"]),
            ),
            (
                Domain::NextDeadline,
                gauge(
                    "support_next_deadline_timestamp_seconds",
                    "The next instant a finding of the rule changes with no change in the cluster.",
                    &["policy", "rule"],
                ),
            ),
            (
                Domain::VersionEnd,
                gauge(
                    "support_kubernetes_version_end_of_support_timestamp_seconds",
                    "End of support of a minor in use, by component (control-plane, kubelet).",
                    &["policy", "component", "minor"],
                ),
            ),
            (
                Domain::NodeImage,
                gauge(
                    "support_node_image_release_timestamp_seconds",
                    "Release date of a node's image (its creation time with source NodeCreation).",
                    &["policy", "node", "pool", "image"],
                ),
            ),
            (
                Domain::NotReady,
                gauge(
                    "support_node_not_ready_since_timestamp_seconds",
                    "Since when a node is not Ready (only such nodes).",
                    &["policy", "node", "pool"],
                ),
            ),
            (
                Domain::ClusterStopped,
                gauge(
                    "support_cluster_stopped_since_timestamp_seconds",
                    "Since when no node in scope is Ready (only while stopped).",
                    &["policy"],
                ),
            ),
            (
                Domain::Heartbeat,
                gauge("support_heartbeat_timestamp_seconds", "Last renewal of a heartbeat Lease.", &["policy", "name"]),
            ),
            (
                Domain::PlanSteps,
                gauge(
                    "support_plan_steps",
                    "Steps of the upgrade plan that keeps the cluster supported through the plan horizon.",
                    &["policy"],
                ),
            ),
            (
                Domain::PlanDeadline,
                gauge(
                    "support_plan_first_step_deadline_timestamp_seconds",
                    "Do the plan's first step before this instant (only while the plan has a step with a date).",
                    &["policy", "action"],
                ),
            ),
        ];
        registry.register(Box::new(reconcile_duration.clone())).expect("unique metric");
        registry.register(Box::new(reconcile_errors.clone())).expect("unique metric");
        registry.register(Box::new(status_writes.clone())).expect("unique metric");
        registry.register(Box::new(skipped_objects.clone())).expect("unique metric");
        registry.register(Box::new(watch_errors.clone())).expect("unique metric");
        registry.register(Box::new(leader.clone())).expect("unique metric");
        for (_, g) in &domain {
            registry.register(Box::new(g.clone())).expect("unique metric");
        }
        Self {
            registry,
            reconcile_duration,
            reconcile_errors,
            status_writes,
            skipped_objects,
            watch_errors,
            leader,
            domain,
            written: Mutex::new(BTreeMap::new()),
            exists: Mutex::new(None),
        }
    }

    fn gauge(&self, d: Domain) -> &GaugeVec {
        &self.domain.iter().find(|(k, _)| *k == d).expect("every domain gauge is registered").1
    }

    /// Replaces every series of `policy` with those of `eval`.
    pub fn record(&self, policy: &str, eval: &Evaluation) {
        let ts = |t: chrono::DateTime<chrono::Utc>| t.timestamp() as f64;
        let p = policy.to_string();
        let mut series: Vec<(Domain, Vec<String>, f64)> = Vec::new();
        for v in Verdict::ALL {
            series.push((Domain::Verdict, vec![p.clone(), v.as_str().into()], f64::from(u8::from(eval.verdict == v))));
        }
        let mut counts: BTreeMap<(&str, &str), u32> = BTreeMap::new();
        for f in &eval.findings {
            *counts.entry((f.rule.as_str(), f.severity.as_str())).or_default() += 1;
        }
        for ((rule, sev), n) in counts {
            series.push((Domain::Findings, vec![p.clone(), rule.into(), sev.into()], f64::from(n)));
        }
        let mut next: BTreeMap<&str, i64> = BTreeMap::new();
        for t in eval.next_deadline.iter().chain(&eval.upcoming) {
            let e = next.entry(t.rule.as_str()).or_insert(i64::MAX);
            *e = (*e).min(t.at.timestamp());
        }
        for (rule, at) in next {
            series.push((Domain::NextDeadline, vec![p.clone(), rule.into()], at as f64));
        }
        for v in &eval.samples.version_ends {
            let labels = vec![p.clone(), v.component.as_str().into(), v.minor.to_string()];
            series.push((Domain::VersionEnd, labels, ts(v.end)));
        }
        for n in &eval.samples.node_images {
            // Label values from the cluster are capped like the status's (an annotation can
            // hold anything); a node whose age comes from its creation says so.
            let image = crate::text::cap(n.image.label(), crate::policy::report::VERSION_CHARS);
            series.push((Domain::NodeImage, vec![p.clone(), n.node.clone(), n.pool.clone(), image], ts(n.released)));
        }
        for n in &eval.samples.not_ready {
            series.push((Domain::NotReady, vec![p.clone(), n.node.clone(), n.pool.clone()], ts(n.since)));
        }
        if let Some(since) = eval.samples.cluster_stopped_since {
            series.push((Domain::ClusterStopped, vec![p.clone()], ts(since)));
        }
        for (name, at) in &eval.samples.heartbeats {
            series.push((Domain::Heartbeat, vec![p.clone(), name.clone()], ts(*at)));
        }
        series.push((Domain::PlanSteps, vec![p.clone()], eval.plan.len() as f64));
        if let Some((first, by)) = eval.plan.first().and_then(|s| Some((s, s.by.instant()?))) {
            series.push((Domain::PlanDeadline, vec![p.clone(), first.action.as_str().into()], ts(by)));
        }

        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        let now: BTreeSet<(Domain, Vec<String>)> = series.iter().map(|(d, l, _)| (*d, l.clone())).collect();
        if let Some(before) = written.get(policy) {
            for (d, labels) in before.difference(&now) {
                let refs: Vec<&str> = labels.iter().map(String::as_str).collect();
                let _ = self.gauge(*d).remove_label_values(&refs);
            }
        }
        for (d, labels, value) in &series {
            let refs: Vec<&str> = labels.iter().map(String::as_str).collect();
            self.gauge(*d).with_label_values(&refs).set(*value);
        }
        written.insert(p, now);
    }

    /// Removes every series of `policy` (it was deleted).
    pub fn forget(&self, policy: &str) {
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(before) = written.remove(policy) {
            for (d, labels) in before {
                let refs: Vec<&str> = labels.iter().map(String::as_str).collect();
                let _ = self.gauge(d).remove_label_values(&refs);
            }
        }
    }

    /// Removes every per-policy series (this replica is no longer the leader).
    pub fn forget_all(&self) {
        let policies: Vec<String> = self.written.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect();
        for p in policies {
            self.forget(&p);
        }
    }

    /// The policies that have series.
    pub fn policies(&self) -> Vec<String> {
        self.written.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect()
    }

    /// Sets how to tell that a policy still exists: series of policies that do not are
    /// dropped before every scrape (a deleted policy is never reconciled again).
    pub fn set_policy_filter(&self, exists: impl Fn(&str) -> bool + Send + Sync + 'static) {
        *self.exists.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(exists));
    }

    /// Drops the series of policies that no longer exist.
    pub fn prune(&self) {
        let gone: Vec<String> = {
            let exists = self.exists.lock().unwrap_or_else(|e| e.into_inner());
            let Some(exists) = exists.as_ref() else { return };
            self.policies().into_iter().filter(|p| !exists(p)).collect()
        };
        for p in gone {
            self.forget(&p);
        }
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        self.prune();
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::v1alpha1::{Platform, SupportPolicySpec, SystemMetadataSpec};
    use crate::snapshot::{ClusterSnapshot, NodeInfo, Readiness};
    use std::sync::Arc;

    fn eval(nodes: &[(&str, bool)]) -> Evaluation {
        let snap = ClusterSnapshot {
            server_version: Some("v1.35.1".into()),
            nodes: nodes
                .iter()
                .map(|(n, ready)| {
                    Arc::new(NodeInfo {
                        name: n.to_string(),
                        labels: [(
                            "kubernetes.azure.com/node-image-version".to_string(),
                            "AKSUbuntu-2204gen2containerd-202611.18.0".to_string(),
                        )]
                        .into(),
                        kubelet_version: Some("v1.35.1".into()),
                        readiness: if *ready {
                            Readiness::Ready
                        } else {
                            Readiness::NotReady {
                                since: Some(crate::time::parse_rfc3339("2026-11-20T00:00:00Z").unwrap()),
                            }
                        },
                        ..Default::default()
                    })
                })
                .collect(),
            ..Default::default()
        };
        // (Bare nodes: the system labels are not what these tests are about.)
        let system_metadata = Some(SystemMetadataSpec { enabled: Some(false), ..Default::default() });
        crate::policy::evaluate(
            &SupportPolicySpec { platform: Platform::Aks, system_metadata, ..Default::default() },
            &snap,
            crate::time::parse_rfc3339("2026-11-25T00:00:00Z").unwrap(),
        )
    }

    #[test]
    fn the_readme_metrics_table_lists_every_metric() {
        let readme = include_str!("../README.md");
        let table = readme.split("## Metrics").nth(1).and_then(|t| t.split("\n## ").next()).unwrap_or_default();
        let listed: BTreeSet<&str> =
            table.lines().filter_map(|l| l.strip_prefix("| `")).filter_map(|l| l.split('`').next()).collect();
        let m = Metrics::new();
        m.record("p", &eval(&[("a", false)]));
        m.watch_errors.with_label_values(&["Node"]).inc();
        m.skipped_objects.with_label_values(&["Node"]).inc();
        m.reconcile_errors.with_label_values(&["api"]).inc();
        m.gauge(Domain::Heartbeat).with_label_values(&["p", "agent"]).set(1.0);
        let exported: BTreeSet<String> = m.registry.gather().iter().map(|f| f.name().to_string()).collect();
        let exported: BTreeSet<&str> = exported.iter().map(String::as_str).collect();
        assert_eq!(listed, exported, "README Metrics table vs /metrics");
    }

    /// The plan is its step count and the date of its first step.
    #[test]
    fn the_plan_is_exported_as_its_step_count_and_first_deadline() {
        let m = Metrics::new();
        let e = eval(&[("a", true)]);
        // The image of 2026-11-18 leaves support on 2027-02-16, within the 90-day horizon.
        assert_eq!(e.plan.len(), 1);
        m.record("p", &e);
        let text = m.encode();
        assert!(text.contains(r#"support_plan_steps{policy="p"} 1"#), "{text}");
        let by = crate::time::parse_rfc3339("2027-02-16T00:00:00Z").unwrap().timestamp();
        let want = format!(
            r#"support_plan_first_step_deadline_timestamp_seconds{{action="RefreshNodeImage",policy="p"}} {by}"#
        );
        assert!(text.contains(&want), "{text}");
        // Nothing to do: no step, no deadline.
        m.record("p", &Evaluation::default());
        let text = m.encode();
        assert!(text.contains(r#"support_plan_steps{policy="p"} 0"#), "{text}");
        assert!(!text.contains("support_plan_first_step_deadline_timestamp_seconds{"), "{text}");
    }

    #[test]
    fn series_of_deleted_nodes_and_policies_disappear() {
        let m = Metrics::new();
        m.record("p", &eval(&[("a", true), ("b", false)]));
        let text = m.encode();
        let released = crate::time::parse_rfc3339("2026-11-18T00:00:00Z").unwrap().timestamp();
        let want = format!(
            r#"support_node_image_release_timestamp_seconds{{image="AKSUbuntu-2204gen2containerd-202611.18.0",node="b",policy="p",pool="default"}} {released}"#
        );
        assert!(text.contains(&want), "{text}");
        assert!(text.contains(r#"support_node_not_ready_since_timestamp_seconds{node="b",policy="p",pool="default"}"#));
        assert!(text.contains(r#"support_verdict{policy="p",verdict="Supported"} 1"#));
        assert!(text.contains(r#"support_verdict{policy="p",verdict="AtRisk"} 0"#));
        m.record("p", &eval(&[("a", true)]));
        let text = m.encode();
        assert!(!text.contains(r#"node="b""#), "{text}");
        m.forget("p");
        assert!(!m.encode().contains(r#"policy="p""#));
    }
}
