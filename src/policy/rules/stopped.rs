//! `stoppedNodes`: a node that is not Ready (or shut down), and the cluster with no Ready node
//! in scope.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{Family, Input, Output, Rules};
use crate::crd::v1alpha1::{Severity, StoppedNodesSpec};
use crate::policy::ids::{RuleId, Subject};
use crate::policy::settings::{Errors, PolicyError};
use crate::policy::signal::{escalation, Cause, Fact, Signal, Who};
use crate::snapshot::Readiness;
use crate::time::{plus_days, when};

/// A node not Ready: Info from the instant, then Warning and Unsupported by the policy's days.
pub(crate) const NODE_NOT_READY: RuleId = RuleId::new("NodeNotReady");
/// No node in scope is Ready.
pub(crate) const CLUSTER_STOPPED: RuleId = RuleId::new("ClusterStopped");
/// Stopped for so long that it can no longer be upgraded.
pub(crate) const CLUSTER_NOT_UPGRADABLE: RuleId = RuleId::new("ClusterNotUpgradable");

pub(super) const FAMILY: Family = Family {
    rules: &[NODE_NOT_READY, CLUSTER_STOPPED, CLUSTER_NOT_UPGRADABLE],
    resolve: |sources| {
        let Some(section) = sources.section(|s| s.stopped_nodes.as_ref()) else { return Ok(None) };
        Ok(Some(Box::new(StoppedRules::try_from(section)?)))
    },
};

/// The stopped-node settings, resolved.
#[derive(Debug, Clone)]
struct StoppedRules(StoppedNodesSpec);

impl TryFrom<StoppedNodesSpec> for StoppedRules {
    type Error = Vec<PolicyError>;

    fn try_from(s: StoppedNodesSpec) -> Result<Self, Self::Error> {
        let mut errors = Errors::default();
        errors.pair("spec.stoppedNodes", s.warn_after_days, s.unsupported_after_days);
        errors.days("spec.stoppedNodes.clusterUnsupportedAfterDays", s.cluster_unsupported_after_days);
        errors.days("spec.stoppedNodes.clusterNotUpgradableAfterDays", s.cluster_not_upgradable_after_days);
        if let (Some(u), Some(n)) = (s.cluster_unsupported_after_days, s.cluster_not_upgradable_after_days) {
            if u > n {
                errors.push(
                    "spec.stoppedNodes.clusterUnsupportedAfterDays",
                    format!("{u} exceeds clusterNotUpgradableAfterDays ({n})"),
                );
            }
        }
        errors.into_result(StoppedRules(s))
    }
}

impl Rules for StoppedRules {
    fn evaluate<'a>(&self, input: &Input<'a>, out: &mut Output<'a>) {
        let s = &self.0;
        let mut latest: Option<DateTime<Utc>> = None;
        let mut any_ready = false;
        for node in input.nodes {
            let since = match node.readiness {
                Readiness::Ready => {
                    any_ready = true;
                    continue;
                }
                Readiness::NotReady { since } => since,
                Readiness::Unknown => None,
            };
            latest = latest.max(since);
            let warn_at = since.and_then(|t| s.warn_after_days.map(|d| plus_days(t, d)));
            let unsupported_at = since.and_then(|t| s.unsupported_after_days.map(|d| plus_days(t, d)));
            // Info from the instant it stopped being Ready (from the start when that is unknown).
            let mut steps: Vec<_> = since.map(|t| (t, Severity::Info)).into_iter().collect();
            steps.extend(escalation(warn_at, unsupported_at));
            let fact = Arc::new(NotReadyFact { since, shutdown: node.shutdown, unsupported_at });
            let mut signal = Signal::node(NODE_NOT_READY, node.name, node.pool, Cause::Rule, fact);
            signal.base = since.is_none().then_some(Severity::Info);
            out.signals.push(signal.steps(steps).origin(since));
        }
        if input.nodes.is_empty() || any_ready {
            return;
        }
        let Some(since) = latest else { return };
        out.samples.cluster_stopped_since = Some(since);
        let unsupported_at = s.cluster_unsupported_after_days.map(|d| plus_days(since, d));
        let mut steps = vec![];
        if unsupported_at != Some(since) {
            steps.push((since, Severity::Warning));
        }
        if let Some(u) = unsupported_at {
            steps.push((u, Severity::Unsupported));
        }
        let fact = Arc::new(StoppedFact { since, nodes: input.nodes.len(), unsupported_at });
        out.signals.push(Signal::one(CLUSTER_STOPPED, Subject::Cluster, fact).steps(steps).origin(Some(since)));
        if let Some(days) = s.cluster_not_upgradable_after_days {
            let at = plus_days(since, days);
            let mut steps = vec![];
            if since < at {
                steps.push((since, Severity::Warning));
            }
            steps.push((at, Severity::Unsupported));
            let fact = Arc::new(NotUpgradableFact { since, at });
            out.signals
                .push(Signal::one(CLUSTER_NOT_UPGRADABLE, Subject::Cluster, fact).steps(steps).origin(Some(since)));
        }
    }
}

#[derive(Debug)]
struct NotReadyFact {
    since: Option<DateTime<Utc>>,
    shutdown: bool,
    unsupported_at: Option<DateTime<Utc>>,
}

impl Fact for NotReadyFact {
    fn message(&self, who: &Who<'_>, severity: Severity) -> String {
        let state = if self.shutdown { "shut down" } else { "not Ready" };
        let since =
            self.since.map(|s| format!(" since {}", when(s))).unwrap_or_else(|| " (since an unknown time)".into());
        let (verb, them, longest) = if who.one() { ("is", "it", "") } else { ("are", "them", " (the longest)") };
        let lead = format!("{} {verb} {state}{since}{longest}", who.subject());
        match (severity, self.unsupported_at) {
            (Severity::Unsupported, Some(u)) => {
                format!("{lead}: out of support since {}. Start or replace {them}.", when(u))
            }
            (_, Some(u)) => format!("{lead}: out of support from {}. Start or replace {them} before then.", when(u)),
            _ => format!("{lead}. Start, repair or remove {them}."),
        }
    }
}

#[derive(Debug)]
struct StoppedFact {
    since: DateTime<Utc>,
    nodes: usize,
    unsupported_at: Option<DateTime<Utc>>,
}

impl Fact for StoppedFact {
    fn message(&self, _: &Who<'_>, severity: Severity) -> String {
        let base = format!(
            "No node of the {} in scope has been Ready since {}: the cluster is stopped",
            self.nodes,
            when(self.since)
        );
        match (severity, self.unsupported_at) {
            (Severity::Unsupported, Some(u)) => {
                format!("{base} and out of support since {}. Start the cluster.", when(u))
            }
            (_, Some(u)) => format!("{base}. It is out of support from {}: start it before then.", when(u)),
            _ => format!("{base}. Start it."),
        }
    }
}

#[derive(Debug)]
struct NotUpgradableFact {
    since: DateTime<Utc>,
    at: DateTime<Utc>,
}

impl Fact for NotUpgradableFact {
    fn message(&self, _: &Who<'_>, severity: Severity) -> String {
        let (since, at) = (when(self.since), when(self.at));
        if severity == Severity::Unsupported {
            format!(
                "The cluster has been stopped since {since}: since {at} it can no longer be upgraded. Start it and \
                 upgrade to the latest release, or redeploy."
            )
        } else {
            format!(
                "The cluster has been stopped since {since}: from {at} it can no longer be upgraded. Start it before \
                 then."
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::crd::v1alpha1::{Platform, StoppedNodesSpec};
    use crate::policy::testing::*;

    #[test]
    fn node_not_ready() {
        let mut s = spec(Platform::Custom);
        s.stopped_nodes =
            Some(StoppedNodesSpec { warn_after_days: Some(7), unsupported_after_days: Some(14), ..Default::default() });
        let c = cluster("v1.35.1", vec![node("down").not_ready("2026-11-01T10:00:00Z"), node("up")]);
        threshold(&s, &c, super::NODE_NOT_READY, "Node/down", "2026-11-01T10:00:00Z", None, Some(Info));
        threshold(&s, &c, super::NODE_NOT_READY, "Node/down", "2026-11-08T10:00:00Z", Some(Info), Some(W));
        threshold(&s, &c, super::NODE_NOT_READY, "Node/down", "2026-11-15T10:00:00Z", Some(W), Some(U));
        let e = evaluate(&s, &c, at("2026-11-20"));
        assert_eq!((e.nodes.ready, e.nodes.not_ready), (1, 1));
        assert!(severity_of(&e, super::CLUSTER_STOPPED, "Cluster/cluster").is_none(), "one node is Ready");
    }

    #[test]
    fn cluster_stopped_counts_from_the_last_node_to_stop() {
        // AKS Arc: Warning from the instant, Unsupported at +30 days, not upgradable at +90.
        let s = spec(Platform::AksArc);
        let c = cluster(
            "v1.32.6",
            vec![node("a").not_ready("2026-10-01T00:00:00Z"), node("b").not_ready("2026-10-16T06:00:00Z")],
        );
        threshold(&s, &c, super::CLUSTER_STOPPED, "Cluster/cluster", "2026-10-16T06:00:00Z", None, Some(W));
        threshold(&s, &c, super::CLUSTER_STOPPED, "Cluster/cluster", "2026-11-15T06:00:00Z", Some(W), Some(U));
        threshold(&s, &c, super::CLUSTER_NOT_UPGRADABLE, "Cluster/cluster", "2027-01-14T06:00:00Z", Some(W), Some(U));
        let e = evaluate(&s, &c, at("2026-11-25"));
        assert_eq!(e.samples.cluster_stopped_since, Some(at("2026-10-16T06:00:00Z")));
        let empty = evaluate(&s, &cluster("v1.32.6", vec![]), at("2026-11-25"));
        assert!(
            severity_of(&empty, super::CLUSTER_STOPPED, "Cluster/cluster").is_none(),
            "no node in scope is not a stopped cluster"
        );
    }

    #[test]
    fn node_selector_limits_the_scope() {
        let mut s = spec(Platform::AksArc);
        s.node_selector = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
            match_labels: Some([("kubernetes.azure.com/agentpool".to_string(), "edge".to_string())].into()),
            match_expressions: None,
        });
        let c = cluster("v1.32.6", vec![node("a").pool("edge").not_ready("2026-10-01"), node("b").pool("core")]);
        let e = evaluate(&s, &c, at("2026-11-25"));
        assert_eq!(e.nodes.total, 1);
        assert_eq!(
            severity_of(&e, super::CLUSTER_STOPPED, "Cluster/cluster"),
            Some(U),
            "the Ready node is out of scope"
        );
    }
}
