//! Helpers of the engine's tests: nodes, clusters and policies in a line, and the check of a
//! finding's severity one second before, at and one second after an instant.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

pub use super::evaluate;
pub use super::ids::RuleId;
pub use super::outcome::Evaluation;
pub use crate::crd::v1alpha1::Severity::{self, Info, Unsupported as U, Warning as W};
use crate::crd::v1alpha1::{Platform, SupportPolicySpec};
use crate::snapshot::{ClusterSnapshot, NodeInfo, Readiness};
use crate::time::parse_rfc3339;

/// An instant: RFC 3339, or a day (at midnight UTC).
pub fn at(s: &str) -> DateTime<Utc> {
    parse_rfc3339(s).unwrap_or_else(|| parse_rfc3339(&format!("{s}T00:00:00Z")).unwrap())
}

/// One second.
pub const SEC: TimeDelta = TimeDelta::seconds(1);

/// A node being built.
#[derive(Clone)]
pub struct N(pub NodeInfo);

/// A Ready node created on 2026-01-01 with kubelet v1.35.3.
pub fn node(name: &str) -> N {
    N(NodeInfo {
        name: name.into(),
        created: Some(at("2026-01-01")),
        kubelet_version: Some("v1.35.3".into()),
        readiness: Readiness::Ready,
        ..Default::default()
    })
}

impl N {
    /// In AKS pool `p`.
    pub fn pool(mut self, p: &str) -> Self {
        self.0.labels.insert("kubernetes.azure.com/agentpool".into(), p.into());
        self
    }
    /// With the AKS image label `v`.
    pub fn image(mut self, v: &str) -> Self {
        self.0.labels.insert("kubernetes.azure.com/node-image-version".into(), v.into());
        self
    }
    /// With kubelet `v`.
    pub fn kubelet(mut self, v: &str) -> Self {
        self.0.kubelet_version = Some(v.into());
        self
    }
    /// Created at `t`.
    pub fn created(mut self, t: &str) -> Self {
        self.0.created = Some(at(t));
        self
    }
    /// Not Ready since `since`.
    pub fn not_ready(mut self, since: &str) -> Self {
        self.0.readiness = Readiness::NotReady { since: Some(at(since)) };
        self
    }
}

/// A cluster with control plane `version` and `nodes`.
pub fn cluster(version: &str, nodes: Vec<N>) -> ClusterSnapshot {
    ClusterSnapshot {
        server_version: Some(version.into()),
        nodes: nodes.into_iter().map(|n| Arc::new(n.0)).collect(),
        ..Default::default()
    }
}

/// A policy of `platform` with every number from its preset.
pub fn spec(platform: Platform) -> SupportPolicySpec {
    SupportPolicySpec { platform, ..Default::default() }
}

/// The severity of the finding of `rule` about `subject` (`Kind/name`).
pub fn severity_of(e: &Evaluation, rule: RuleId, subject: &str) -> Option<Severity> {
    e.findings.iter().find(|f| f.rule == rule && f.subject.to_string() == subject).map(|f| f.severity)
}

/// Asserts the severity of one finding one second before, at and one second after `t`.
#[track_caller]
pub fn threshold(
    spec: &SupportPolicySpec,
    snap: &ClusterSnapshot,
    rule: RuleId,
    subject: &str,
    t: &str,
    before: Option<Severity>,
    after: Option<Severity>,
) {
    let t = at(t);
    let sev = |now| severity_of(&evaluate(spec, snap, now), rule, subject);
    assert_eq!(sev(t - SEC), before, "{rule} {subject} one second before {t}");
    assert_eq!(sev(t), after, "{rule} {subject} at {t}");
    assert_eq!(sev(t + SEC), after, "{rule} {subject} one second after {t}");
}
