//! The domain series: what an evaluation says, as gauges. Timestamps, not ages, so that alerts
//! compute ages with `time() - …`.
//!
//! Their count is bounded by pools and unhealthy nodes, not by nodes × policies: per-node
//! series exist only for nodes with a signal at Warning or worse, and for nodes that are not
//! Ready (`--node-metrics=unhealthy`, the default); the rest of the fleet is summed per pool and
//! per (pool, image, release day). Label values are shared with the evaluation (no copies), and
//! the text is written straight from them on a scrape.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};

use crate::crd::v1alpha1::Verdict;
use crate::policy::Evaluation;

/// Which nodes have series of their own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum NodeMetrics {
    /// Every node in scope.
    All,
    /// Nodes with a finding at Warning or worse, and nodes that are not Ready.
    #[default]
    Unhealthy,
    /// None: per-pool series only.
    None,
}

/// A family of domain series: its name, help and label names (sorted, as they are written).
pub(super) struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub labels: &'static [&'static str],
}

/// The index of each family in [`FAMILIES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Domain {
    Verdict,
    Findings,
    NextDeadline,
    VersionEnd,
    NodeImage,
    NotReady,
    ClusterStopped,
    Heartbeat,
    PoolNodes,
    PoolNotReady,
    PoolImageNodes,
    PoolImageRelease,
    PlanSteps,
    PlanDeadline,
}

/// Every domain family, in the order of [`Domain`]. Labels other than `policy` are listed in
/// the order of the values a series holds.
pub(super) const FAMILIES: [Family; 14] = [
    Family {
        name: "support_verdict",
        help: "1 for the policy's current verdict, 0 for the others.",
        labels: &["verdict"],
    },
    Family { name: "support_findings", help: "Findings by rule and severity.", labels: &["rule", "severity"] },
    Family {
        name: "support_next_deadline_timestamp_seconds",
        help: "The next instant a finding of the rule changes with no change in the cluster.",
        labels: &["rule"],
    },
    Family {
        name: "support_kubernetes_version_end_of_support_timestamp_seconds",
        help: "End of support of a minor in use, by component (control-plane, kubelet).",
        labels: &["component", "minor"],
    },
    Family {
        name: "support_node_image_release_timestamp_seconds",
        help: "Release date of a node's image (its creation time with source NodeCreation); only nodes \
               --node-metrics exports (default: those with a finding at Warning or worse).",
        labels: &["image", "node", "pool"],
    },
    Family {
        name: "support_node_not_ready_since_timestamp_seconds",
        help: "Since when a node is not Ready (only such nodes; none with --node-metrics=none).",
        labels: &["node", "pool"],
    },
    Family {
        name: "support_cluster_stopped_since_timestamp_seconds",
        help: "Since when no node in scope is Ready (only while stopped).",
        labels: &[],
    },
    Family {
        name: "support_heartbeat_timestamp_seconds",
        help: "Last renewal of a heartbeat Lease.",
        labels: &["name"],
    },
    Family { name: "support_pool_nodes", help: "Nodes in scope, per pool.", labels: &["pool"] },
    Family {
        name: "support_pool_nodes_not_ready",
        help: "Nodes in scope that are not Ready, per pool.",
        labels: &["pool"],
    },
    Family {
        name: "support_pool_node_images",
        help: "Nodes of the pool per image and release day (with source NodeCreation: per creation day).",
        labels: &["image", "pool", "released"],
    },
    Family {
        name: "support_pool_node_image_release_timestamp_seconds",
        help: "The oldest release (or creation) instant of the nodes of support_pool_node_images.",
        labels: &["image", "pool", "released"],
    },
    Family {
        name: "support_plan_steps",
        help: "Steps of the upgrade plan that keeps the cluster supported through the plan horizon.",
        labels: &[],
    },
    Family {
        name: "support_plan_first_step_deadline_timestamp_seconds",
        help: "Do the plan's first step before this instant (only while the plan has a step with a date).",
        labels: &["action"],
    },
];

/// One series of a policy: its family, label values (in the family's order) and value.
#[derive(Debug, Clone)]
pub(super) struct Series {
    pub domain: Domain,
    pub labels: Box<[Arc<str>]>,
    pub value: f64,
}

/// The nodes of a (pool, image, release day): how many, the oldest instant, the pool and the
/// image label.
type Bucket = (u32, DateTime<Utc>, Arc<str>, Arc<str>);

fn ts(t: DateTime<Utc>) -> f64 {
    t.timestamp() as f64
}

/// The series of `eval`, sorted by family then labels.
pub(super) fn series(eval: &Evaluation, nodes: NodeMetrics) -> Vec<Series> {
    let s = |domain: Domain, labels: Vec<Arc<str>>, value: f64| Series { domain, labels: labels.into(), value };
    let text = |t: &str| -> Arc<str> { Arc::from(t) };
    let mut out = Vec::new();
    for v in Verdict::ALL {
        out.push(s(Domain::Verdict, vec![text(v.as_str())], f64::from(u8::from(eval.verdict == v))));
    }
    let mut counts: BTreeMap<(&str, &str), u32> = BTreeMap::new();
    for f in &eval.findings {
        *counts.entry((f.rule.as_str(), f.severity.as_str())).or_default() += 1;
    }
    for ((rule, sev), n) in counts {
        out.push(s(Domain::Findings, vec![text(rule), text(sev)], f64::from(n)));
    }
    let mut next: BTreeMap<&str, i64> = BTreeMap::new();
    for t in eval.next_deadline.iter().chain(&eval.upcoming) {
        let e = next.entry(t.rule.as_str()).or_insert(i64::MAX);
        *e = (*e).min(t.at.timestamp());
    }
    for (rule, at) in next {
        out.push(s(Domain::NextDeadline, vec![text(rule)], at as f64));
    }
    for v in &eval.samples.version_ends {
        out.push(s(Domain::VersionEnd, vec![text(v.component.as_str()), text(&v.minor.to_string())], ts(v.end)));
    }
    // Image labels from the cluster are capped like the status's (an annotation can hold
    // anything); a node whose age comes from its creation says so. One capped copy per image.
    // Hashed: looked up once per node (a tree of string keys cost more than the evaluation);
    // the series are sorted at the end.
    let mut images: foldhash::HashMap<&str, Arc<str>> = foldhash::HashMap::default();
    let mut buckets: foldhash::HashMap<(&str, &str, NaiveDate), Bucket> = foldhash::HashMap::default();
    for n in &eval.samples.node_images {
        let label = images
            .entry(n.image.label())
            .or_insert_with(|| {
                Arc::from(crate::text::cap(n.image.label(), crate::policy::report::VERSION_CHARS).as_str())
            })
            .clone();
        if nodes == NodeMetrics::All || (nodes == NodeMetrics::Unhealthy && n.warning) {
            out.push(s(Domain::NodeImage, vec![label.clone(), n.node.clone(), n.pool.clone()], ts(n.released)));
        }
        let bucket = buckets.entry((&*n.pool, n.image.label(), n.released.date_naive())).or_insert((
            0,
            n.released,
            n.pool.clone(),
            label,
        ));
        bucket.0 += 1;
        bucket.1 = bucket.1.min(n.released);
    }
    for ((_, _, day), (count, oldest, pool, label)) in buckets {
        let labels = vec![label, pool, text(&day.to_string())];
        out.push(s(Domain::PoolImageNodes, labels.clone(), f64::from(count)));
        out.push(s(Domain::PoolImageRelease, labels, ts(oldest)));
    }
    if nodes != NodeMetrics::None {
        for n in &eval.samples.not_ready {
            out.push(s(Domain::NotReady, vec![n.node.clone(), n.pool.clone()], ts(n.since)));
        }
    }
    for pool in &eval.pools {
        let name = text(&pool.name);
        out.push(s(Domain::PoolNodes, vec![name.clone()], f64::from(pool.nodes)));
        out.push(s(Domain::PoolNotReady, vec![name], f64::from(pool.nodes - pool.ready)));
    }
    if let Some(since) = eval.samples.cluster_stopped_since {
        out.push(s(Domain::ClusterStopped, vec![], ts(since)));
    }
    for (name, at) in &eval.samples.heartbeats {
        out.push(s(Domain::Heartbeat, vec![text(name)], ts(*at)));
    }
    out.push(s(Domain::PlanSteps, vec![], eval.plan.len() as f64));
    if let Some((first, by)) = eval.plan.first().and_then(|s| Some((s, s.by.instant()?))) {
        out.push(s(Domain::PlanDeadline, vec![text(first.action.as_str())], ts(by)));
    }
    out.sort_by(|a, b| a.domain.cmp(&b.domain).then_with(|| a.labels.cmp(&b.labels)));
    out
}

/// Writes `value` as a label value of the text format.
fn escaped(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Writes the domain series of every policy (each list sorted by family) in the text format:
/// each family once, labels in name order as the prometheus crate writes them.
pub(super) fn encode<'a>(out: &mut String, policies: impl Iterator<Item = (&'a str, &'a [Series])> + Clone) {
    for (i, family) in FAMILIES.iter().enumerate() {
        let mut header = false;
        for (policy, series) in policies.clone() {
            let start = series.partition_point(|s| (s.domain as usize) < i);
            for s in series[start..].iter().take_while(|s| s.domain as usize == i) {
                if !header {
                    let _ = writeln!(out, "# HELP {} {}\n# TYPE {} gauge", family.name, family.help, family.name);
                    header = true;
                }
                let mut labels: Vec<(&str, &str)> =
                    family.labels.iter().copied().zip(s.labels.iter().map(|v| &**v)).collect();
                labels.push(("policy", policy));
                labels.sort_by(|a, b| a.0.cmp(b.0));
                out.push_str(family.name);
                out.push('{');
                for (j, (name, value)) in labels.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    out.push_str(name);
                    out.push_str("=\"");
                    escaped(out, value);
                    out.push('"');
                }
                let _ = writeln!(out, "}} {}", s.value);
            }
        }
    }
}
