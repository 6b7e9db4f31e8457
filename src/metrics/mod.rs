//! Prometheus metrics: one private registry for the controller's own metrics, and the domain
//! series of each policy (`domain`), replaced as a whole on each evaluation, so series of
//! deleted nodes and policies disappear.

mod domain;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use prometheus::{Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

use crate::policy::Evaluation;
pub use domain::NodeMetrics;
use domain::Series;

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
    /// Which nodes have series of their own.
    node_metrics: NodeMetrics,
    /// The domain series of each policy, sorted by family. Shared, so that a scrape writes them
    /// without holding the lock a reconcile records through (at 65,000 nodes writing takes tens
    /// of milliseconds).
    domain: Mutex<BTreeMap<String, Arc<Vec<Series>>>>,
    exists: Mutex<Option<PolicyFilter>>,
}

/// Tells whether a policy still exists.
type PolicyFilter = Box<dyn Fn(&str) -> bool + Send + Sync>;

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric; per-node series for unhealthy nodes only.
    pub fn new() -> Self {
        Self::with_node_metrics(NodeMetrics::default())
    }

    /// Registers every metric; per-node series for the nodes `node_metrics` names.
    pub fn with_node_metrics(node_metrics: NodeMetrics) -> Self {
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
        registry.register(Box::new(reconcile_duration.clone())).expect("unique metric");
        registry.register(Box::new(reconcile_errors.clone())).expect("unique metric");
        registry.register(Box::new(status_writes.clone())).expect("unique metric");
        registry.register(Box::new(skipped_objects.clone())).expect("unique metric");
        registry.register(Box::new(watch_errors.clone())).expect("unique metric");
        registry.register(Box::new(leader.clone())).expect("unique metric");
        Self {
            registry,
            reconcile_duration,
            reconcile_errors,
            status_writes,
            skipped_objects,
            watch_errors,
            leader,
            node_metrics,
            domain: Mutex::new(BTreeMap::new()),
            exists: Mutex::new(None),
        }
    }

    /// Replaces every series of `policy` with those of `eval`.
    pub fn record(&self, policy: &str, eval: &Evaluation) {
        let series = Arc::new(domain::series(eval, self.node_metrics));
        let previous = self.domain.lock().unwrap_or_else(|e| e.into_inner()).insert(policy.to_string(), series);
        drop(previous);
    }

    /// Removes every series of `policy` (it was deleted).
    pub fn forget(&self, policy: &str) {
        self.domain.lock().unwrap_or_else(|e| e.into_inner()).remove(policy);
    }

    /// Removes every per-policy series (this replica is no longer the leader).
    pub fn forget_all(&self) {
        self.domain.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// The policies that have series.
    pub fn policies(&self) -> Vec<String> {
        self.domain.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect()
    }

    /// Sets how to tell that a policy still exists: series of policies that do not are
    /// dropped before every scrape (a deleted policy is never reconciled again).
    pub fn set_policy_filter(&self, exists: impl Fn(&str) -> bool + Send + Sync + 'static) {
        *self.exists.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(exists));
    }

    /// Drops the series of policies that no longer exist.
    pub fn prune(&self) {
        let exists = self.exists.lock().unwrap_or_else(|e| e.into_inner());
        let Some(exists) = exists.as_ref() else { return };
        self.domain.lock().unwrap_or_else(|e| e.into_inner()).retain(|p, _| exists(p));
    }

    /// Prometheus text exposition: the controller's metrics, then the domain series.
    pub fn encode(&self) -> String {
        self.prune();
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        let mut text = String::from_utf8(buf).unwrap_or_default();
        let domain: Vec<(String, Arc<Vec<Series>>)> =
            self.domain.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|(p, s)| (p.clone(), s.clone())).collect();
        domain::encode(&mut text, domain.iter().map(|(p, s)| (p.as_str(), s.as_slice())));
        text
    }

    /// The name of every metric this registry can export.
    #[cfg(test)]
    fn names(&self) -> std::collections::BTreeSet<String> {
        let mut names: std::collections::BTreeSet<String> =
            self.registry.gather().iter().map(|f| f.name().to_string()).collect();
        names.extend(domain::FAMILIES.iter().map(|f| f.name.to_string()));
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::v1alpha1::{Platform, SupportPolicySpec, SystemMetadataSpec};
    use crate::snapshot::{ClusterSnapshot, NodeInfo, Readiness};
    use std::collections::BTreeSet;
    use std::sync::Arc;

    fn eval(nodes: &[(&str, bool)]) -> Evaluation {
        let snap = ClusterSnapshot {
            server_version: Some("v1.35.1".into()),
            nodes: nodes
                .iter()
                .map(|(n, ready)| {
                    Arc::new(NodeInfo {
                        name: (*n).into(),
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
        let readme = include_str!("../../README.md");
        let table = readme.split("## Metrics").nth(1).and_then(|t| t.split("\n## ").next()).unwrap_or_default();
        let listed: BTreeSet<&str> =
            table.lines().filter_map(|l| l.strip_prefix("| `")).filter_map(|l| l.split('`').next()).collect();
        let m = Metrics::new();
        m.watch_errors.with_label_values(&["Node"]).inc();
        m.skipped_objects.with_label_values(&["Node"]).inc();
        m.reconcile_errors.with_label_values(&["api"]).inc();
        let exported = m.names();
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
        let m = Metrics::with_node_metrics(NodeMetrics::All);
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

    /// The series of `text` of metric `name`.
    fn count(text: &str, name: &str) -> usize {
        text.lines().filter(|l| l.split(['{', ' ']).next() == Some(name)).count()
    }

    /// Per-node series only for unhealthy nodes (a finding at Warning or worse, or not Ready):
    /// the rest is summed per pool, and the pool series hold every node whatever the mode.
    #[test]
    fn per_node_series_follow_the_mode_and_pools_hold_every_node() {
        use crate::policy::testing::*;
        let mut nodes: Vec<N> = (0..10)
            .map(|i| node(&format!("ok-{i}")).pool("user").image("AKSUbuntu-2204gen2containerd-202611.18.0"))
            .collect();
        nodes.push(node("old").pool("user").image("AKSUbuntu-2204gen2containerd-202608.01.0"));
        nodes.push(
            node("down")
                .pool("user")
                .image("AKSUbuntu-2204gen2containerd-202611.18.0")
                .not_ready("2026-11-24T00:00:00Z"),
        );
        // (Nodes without the system labels: those are not what this test is about.)
        let mut s = spec(Platform::Aks);
        s.system_metadata = Some(SystemMetadataSpec { enabled: Some(false), ..Default::default() });
        let e = evaluate(&s, &cluster("v1.35.1", nodes), at("2026-11-25"));
        for (mode, images, not_ready) in
            [(NodeMetrics::All, 12, 1), (NodeMetrics::Unhealthy, 1, 1), (NodeMetrics::None, 0, 0)]
        {
            let m = Metrics::with_node_metrics(mode);
            m.record("p", &e);
            let text = m.encode();
            assert_eq!(count(&text, "support_node_image_release_timestamp_seconds"), images, "{mode:?}: {text}");
            assert_eq!(count(&text, "support_node_not_ready_since_timestamp_seconds"), not_ready, "{mode:?}");
            assert!(text.contains(r#"support_pool_nodes{policy="p",pool="user"} 12"#), "{text}");
            assert!(text.contains(r#"support_pool_nodes_not_ready{policy="p",pool="user"} 1"#), "{text}");
            assert!(text.contains(r#"support_pool_node_images{image="AKSUbuntu-2204gen2containerd-202611.18.0",policy="p",pool="user",released="2026-11-18"} 11"#), "{text}");
            let released = at("2026-08-01").timestamp();
            let want = format!(
                r#"support_pool_node_image_release_timestamp_seconds{{image="AKSUbuntu-2204gen2containerd-202608.01.0",policy="p",pool="user",released="2026-08-01"}} {released}"#
            );
            assert!(text.contains(&want), "{text}");
        }
        let m = Metrics::new();
        m.record("p", &e);
        assert!(m.encode().contains(r#"support_node_image_release_timestamp_seconds{image="AKSUbuntu-2204gen2containerd-202608.01.0",node="old",policy="p",pool="user"}"#));
    }

    /// Label values from the cluster are escaped as the text format wants, and the output parses.
    #[test]
    fn label_values_are_escaped_and_the_text_parses() {
        use crate::policy::testing::*;
        let e = evaluate(
            &spec(Platform::Aks),
            &cluster("v1.35.1", vec![node("a").pool("we\"ird\\pool\n")]),
            at("2026-11-25"),
        );
        let m = Metrics::with_node_metrics(NodeMetrics::All);
        m.record("p", &e);
        let text = m.encode();
        assert!(text.contains(r#"pool="we\"ird\\pool\n""#), "{text}");
        let parsed = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
        let pool = parsed.samples.iter().find(|s| s.metric == "support_pool_nodes").unwrap();
        // prometheus-parse keeps the escapes as written.
        assert_eq!(pool.labels.get("pool"), Some(r#"we\"ird\\pool\n"#));
    }
}
