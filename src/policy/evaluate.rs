//! `evaluate`: signals → findings, verdict, summaries, next deadline and upcoming transitions.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use super::model::{Policy, PolicyError};
use super::rules::{self, pool_of, read_images, Fact, ImageRead, Signal, VersionTrack};
use super::RuleId;
use crate::crd::v1alpha1::{
    ControlPlaneStatus, Finding, NodeCounts, PoolSummary, Severity, SupportPolicySpec, Transition, Verdict,
    VersionCount,
};
use crate::snapshot::{ClusterSnapshot, NodeInfo};
use crate::time::plus_days;

/// How far ahead `upcoming` looks.
pub const HORIZON_DAYS: u32 = 180;
/// At most this many entries in `upcoming`.
pub const MAX_UPCOMING: usize = 20;
/// At most this many pools in the status.
pub const MAX_POOLS: usize = 100;
/// At most this many versions (kubelet, image) per pool in the status.
pub const MAX_VERSIONS_PER_POOL: usize = 10;

/// The outcome of one evaluation. Its size grows with the node count only in the per-node
/// metric samples; the status built from it (`report`) is bounded.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Evaluation {
    /// Verdict (`Unknown` when the policy is invalid).
    pub verdict: Verdict,
    /// Why the policy is invalid (empty when valid).
    pub policy_errors: Vec<PolicyError>,
    /// The control plane.
    pub control_plane: Option<ControlPlaneStatus>,
    /// Node counts.
    pub nodes: NodeCounts,
    /// Pools, by name (bounded).
    pub pools: Vec<PoolSummary>,
    /// How many pools were cut.
    pub pools_omitted: u32,
    /// Every finding, worst first, then soonest deadline (the status keeps the first 50).
    pub findings: Vec<Finding>,
    /// The earliest future change of (verdict, findings' rule/severity/subject).
    pub next_deadline: Option<Transition>,
    /// Changes within the horizon, soonest first (bounded).
    pub upcoming: Vec<Transition>,
    /// The earliest future instant at which anything in the status can change (counts
    /// included): when the operator re-evaluates.
    pub next_change: Option<DateTime<Utc>>,
    /// Per-node and per-item detail for metrics.
    pub samples: Samples,
}

/// Detail for the metrics (never written to the status).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Samples {
    /// End of support per (component, minor).
    pub version_ends: Vec<VersionEnd>,
    /// Image release instant per node.
    pub node_images: Vec<NodeImage>,
    /// Not-Ready nodes and since when.
    pub not_ready: Vec<NotReadyNode>,
    /// Since when the cluster has been stopped.
    pub cluster_stopped_since: Option<DateTime<Utc>>,
    /// Last renewal per heartbeat name.
    pub heartbeats: Vec<(String, DateTime<Utc>)>,
}

/// The end of support of a minor in use.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct VersionEnd {
    /// `control-plane` or `kubelet`.
    pub component: &'static str,
    /// The minor.
    pub minor: String,
    /// When support ends.
    pub end: DateTime<Utc>,
}

/// A node's image and its release instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeImage {
    pub node: String,
    pub pool: String,
    pub image: String,
    pub released: DateTime<Utc>,
}

/// A not-Ready node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotReadyNode {
    pub node: String,
    pub pool: String,
    pub since: DateTime<Utc>,
}

/// Resolves the policy and evaluates it. An invalid policy gives verdict `Unknown` with a
/// `PolicyInvalid` finding naming every bad field; nothing else is evaluated.
pub fn evaluate(spec: &SupportPolicySpec, snapshot: &ClusterSnapshot, now: DateTime<Utc>) -> Evaluation {
    match Policy::resolve(spec) {
        Ok(policy) => evaluate_resolved(&policy, snapshot, now),
        Err(errors) => invalid(errors),
    }
}

/// The evaluation of a policy that cannot be used: verdict `Unknown`, one `PolicyInvalid`
/// finding naming every bad field.
pub fn invalid(errors: Vec<PolicyError>) -> Evaluation {
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    Evaluation {
        verdict: Verdict::Unknown,
        findings: vec![Finding {
            rule: RuleId::PolicyInvalid.as_str().into(),
            severity: Severity::Warning,
            subject: "SupportPolicy/spec".into(),
            message: format!("The policy is invalid and was not evaluated: {}. Fix the policy.", text.join("; ")),
            since: None,
            deadline: None,
        }],
        policy_errors: errors,
        ..Default::default()
    }
}

/// Evaluates a resolved policy against a snapshot at `now`.
pub fn evaluate_resolved(policy: &Policy, snapshot: &ClusterSnapshot, now: DateTime<Utc>) -> Evaluation {
    use kube::core::SelectorExt;
    let nodes: Vec<&NodeInfo> = snapshot
        .nodes
        .iter()
        .map(AsRef::as_ref)
        .filter(|n| policy.selector.as_ref().is_none_or(|s| s.matches(&n.labels)))
        .collect();
    let images: Option<Vec<ImageRead>> = policy.image.as_ref().map(|rule| read_images(rule, &nodes));
    let signals = rules::signals(policy, snapshot, &nodes, images.as_deref());

    // Group: signals of nodes with the same (rule, pool, cause) make one finding.
    let mut groups: BTreeMap<(RuleId, String), Vec<&Signal>> = BTreeMap::new();
    for s in &signals {
        let key = match &s.group {
            Some((pool, cause)) => format!("pool\u{0}{pool}\u{0}{cause}"),
            None => format!("one\u{0}{}", s.subject),
        };
        groups.entry((s.rule, key)).or_default().push(s);
    }

    let mut findings = Vec::new();
    let mut transitions = Vec::new();
    for ((rule, _), mut members) in groups {
        // Worst member first (its fact speaks for the group), then by name.
        members.sort_by(|a, b| {
            b.at(now).cmp(&a.at(now)).then_with(|| a.origin.cmp(&b.origin)).then_with(|| a.subject.cmp(&b.subject))
        });
        let pool = members[0].group.as_ref().map(|(p, _)| p.as_str());
        let subject = if members.len() > 1 {
            format!("NodePool/{}", pool.unwrap_or("default"))
        } else {
            members[0].subject.clone()
        };
        let current = members.iter().filter_map(|m| m.at(now)).max();

        // Where the group's severity rises after now.
        let mut future: Vec<(DateTime<Utc>, Severity)> =
            members.iter().flat_map(|m| m.steps.iter().copied()).filter(|(at, _)| *at > now).collect();
        future.sort();
        let mut running = current;
        let mut i = 0;
        while i < future.len() {
            let at = future[i].0;
            let mut sev = future[i].1;
            while i < future.len() && future[i].0 == at {
                sev = sev.max(future[i].1);
                i += 1;
            }
            if Some(sev) > running {
                running = Some(sev);
                transitions.push(Transition {
                    at,
                    rule: rule.as_str().into(),
                    subject: subject.clone(),
                    severity: sev,
                });
            }
        }

        let Some(severity) = current else { continue };
        let since = members
            .iter()
            .filter_map(|m| {
                if m.base.is_some_and(|b| b >= severity) {
                    m.origin
                } else {
                    m.steps.iter().find(|(at, s)| *s >= severity && *at <= now).map(|(at, _)| *at)
                }
            })
            .min();
        let deadline = (severity < Severity::Unsupported)
            .then(|| {
                members
                    .iter()
                    .filter_map(|m| {
                        m.steps.iter().find(|(at, s)| *s == Severity::Unsupported && *at > now).map(|(at, _)| *at)
                    })
                    .min()
            })
            .flatten();
        let worst: Vec<&Signal> = members.iter().copied().filter(|m| m.at(now) == Some(severity)).collect();
        let speaking = if worst.is_empty() { &members } else { &worst };
        let mut text = rules::message(speaking, pool, severity);
        if speaking.len() < members.len() {
            text.push_str(&format!(
                " ({} more nodes of the pool share the cause at a lower severity.)",
                members.len() - speaking.len()
            ));
        }
        findings.push(Finding { rule: rule.as_str().into(), severity, subject, message: text, since, deadline });
    }

    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| match (a.deadline, b.deadline) {
                (Some(x), Some(y)) => x.cmp(&y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            })
            .then_with(|| a.rule.cmp(&b.rule))
            .then_with(|| a.subject.cmp(&b.subject))
    });
    transitions
        .sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.rule.cmp(&b.rule)).then_with(|| a.subject.cmp(&b.subject)));
    let next_deadline = transitions.first().cloned();
    let horizon = plus_days(now, HORIZON_DAYS);
    // The status changes at every step, and when a transition enters the horizon of `upcoming`.
    let next_change = signals
        .iter()
        .flat_map(|s| s.steps.iter().map(|(at, _)| *at))
        .chain(transitions.iter().filter(|t| t.at > horizon).map(|t| crate::time::minus_days(t.at, HORIZON_DAYS)))
        .filter(|at| *at > now)
        .min();
    let upcoming: Vec<Transition> = transitions.into_iter().filter(|t| t.at <= horizon).take(MAX_UPCOMING).collect();

    let verdict = match findings.iter().map(|f| f.severity).max() {
        Some(Severity::Unsupported) => Verdict::Unsupported,
        Some(Severity::Warning) => Verdict::AtRisk,
        _ => Verdict::Supported,
    };

    let (pools, pools_omitted) = pools(&nodes, images.as_deref());
    Evaluation {
        verdict,
        policy_errors: Vec::new(),
        control_plane: control_plane(policy, snapshot, &signals, now),
        nodes: counts(&nodes, &signals, now),
        pools,
        pools_omitted,
        findings,
        next_deadline,
        upcoming,
        next_change,
        samples: samples(policy, snapshot, &nodes, images.as_deref(), &signals),
    }
}

fn control_plane(
    policy: &Policy,
    snapshot: &ClusterSnapshot,
    signals: &[Signal],
    now: DateTime<Utc>,
) -> Option<ControlPlaneStatus> {
    let version = snapshot.server_version.clone();
    let signal = signals.iter().find(|s| s.subject == "ControlPlane/kube-apiserver");
    if policy.version.is_none() && version.is_none() {
        return None;
    }
    let (minor, end) = match signal.map(|s| &s.fact) {
        Some(Fact::Version { track: VersionTrack::Known { minor, end, .. }, .. }) => {
            (Some(minor.to_string()), end.map(|e| e.date_naive()))
        }
        Some(Fact::Version {
            track: VersionTrack::Unknown { minor, .. } | VersionTrack::TooOld { minor, .. }, ..
        }) => (Some(minor.to_string()), None),
        _ => (version.as_deref().and_then(|v| super::version::parse_version(v).ok()).map(|m| m.to_string()), None),
    };
    let state = match signal {
        None => "Unknown",
        Some(s) if s.rule == RuleId::KubernetesVersionUnknown => "Unknown",
        Some(s) => match s.at(now) {
            None | Some(Severity::Info) => "Supported",
            Some(Severity::Warning) => "Warning",
            Some(Severity::Unsupported) => "Unsupported",
        },
    };
    Some(ControlPlaneStatus { version, minor, end_of_support: end, state: state.into() })
}

fn counts(nodes: &[&NodeInfo], signals: &[Signal], now: DateTime<Utc>) -> NodeCounts {
    let ready = nodes.iter().filter(|n| n.readiness.is_ready()).count() as u32;
    let worst_per_node = |rules: &[RuleId], min: Severity| -> u32 {
        let mut hit: HashMap<&str, ()> = HashMap::new();
        for s in signals.iter().filter(|s| rules.contains(&s.rule)) {
            if s.at(now).is_some_and(|sev| sev >= min) {
                hit.insert(&s.subject, ());
            }
        }
        hit.len() as u32
    };
    NodeCounts {
        total: nodes.len() as u32,
        ready,
        not_ready: nodes.len() as u32 - ready,
        stopped: nodes.iter().filter(|n| n.shutdown).count() as u32,
        outdated_image: worst_per_node(&[RuleId::NodeImageOutdated], Severity::Warning),
        unsupported_kubelet: worst_per_node(
            &[RuleId::KubeletVersionEndOfSupport, RuleId::KubeletVersionSkew],
            Severity::Unsupported,
        ),
    }
}

fn pools(nodes: &[&NodeInfo], images: Option<&[ImageRead]>) -> (Vec<PoolSummary>, u32) {
    #[derive(Default)]
    struct Acc {
        nodes: u32,
        ready: u32,
        kubelets: BTreeMap<String, u32>,
        images: BTreeMap<String, u32>,
        oldest: Option<chrono::NaiveDate>,
    }
    let mut by_pool: BTreeMap<&str, Acc> = BTreeMap::new();
    for (i, node) in nodes.iter().enumerate() {
        let acc = by_pool.entry(pool_of(node)).or_default();
        acc.nodes += 1;
        acc.ready += u32::from(node.readiness.is_ready());
        *acc.kubelets.entry(node.kubelet_version.clone().unwrap_or_else(|| "unknown".into())).or_default() += 1;
        if let Some(Ok((image, released))) = images.map(|read| &read[i]) {
            let image = if image == "created" { "(from node creation)".to_string() } else { image.clone() };
            *acc.images.entry(image).or_default() += 1;
            let day = released.date_naive();
            acc.oldest = Some(acc.oldest.map_or(day, |o| o.min(day)));
        }
    }
    let top = |m: BTreeMap<String, u32>| {
        let mut v: Vec<VersionCount> = m.into_iter().map(|(version, count)| VersionCount { version, count }).collect();
        v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.version.cmp(&b.version)));
        v.truncate(MAX_VERSIONS_PER_POOL);
        v
    };
    let total = by_pool.len();
    let pools = by_pool
        .into_iter()
        .take(MAX_POOLS)
        .map(|(name, acc)| PoolSummary {
            name: name.to_string(),
            nodes: acc.nodes,
            ready: acc.ready,
            kubelet_versions: top(acc.kubelets),
            images: top(acc.images),
            oldest_image_date: acc.oldest,
        })
        .collect();
    (pools, total.saturating_sub(MAX_POOLS) as u32)
}

fn samples(
    policy: &Policy,
    snapshot: &ClusterSnapshot,
    nodes: &[&NodeInfo],
    images: Option<&[ImageRead]>,
    signals: &[Signal],
) -> Samples {
    let mut version_ends = Vec::new();
    for s in signals {
        if let Fact::Version { component, track: VersionTrack::Known { minor, end: Some(end), .. }, .. } = &s.fact {
            version_ends.push(VersionEnd { component: component.as_str(), minor: minor.to_string(), end: *end });
        }
    }
    version_ends.sort();
    version_ends.dedup();

    let mut node_images = Vec::new();
    let mut not_ready = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        if let Some(Ok((image, released))) = images.map(|read| &read[i]) {
            node_images.push(NodeImage {
                node: node.name.clone(),
                pool: pool_of(node).into(),
                image: image.clone(),
                released: *released,
            });
        }
        if let crate::snapshot::Readiness::NotReady { since: Some(since) } = node.readiness {
            not_ready.push(NotReadyNode { node: node.name.clone(), pool: pool_of(node).into(), since });
        }
    }
    let cluster_stopped_since = signals.iter().find_map(|s| match s.fact {
        Fact::ClusterStopped { since, .. } => Some(since),
        _ => None,
    });
    let heartbeats = policy
        .heartbeats
        .iter()
        .filter_map(|h| {
            snapshot
                .leases
                .get(&(h.namespace.clone(), h.lease.clone()))
                .and_then(|l| l.renewed)
                .map(|r| (h.name.clone(), r))
        })
        .collect();
    Samples { version_ends, node_images, not_ready, cluster_stopped_since, heartbeats }
}
