//! What an evaluation returns, typed: rules, subjects, severities and origins as values, not
//! strings. `report` turns it into the v1alpha1 status; `metrics` into series.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};

use super::ids::{RuleId, Subject};
use super::settings::PolicyError;
use crate::crd::v1alpha1::{NodeCounts, PlanAction, Severity, SupportState, Verdict};
use crate::version::Minor;

/// The outcome of one evaluation. It grows with the node count (pools, per-node samples); the
/// status built from it (`report`) is bounded.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Evaluation {
    /// Verdict (`Unknown` when the policy is invalid).
    pub verdict: Verdict,
    /// Why the policy is invalid (empty when valid).
    pub policy_errors: Vec<PolicyError>,
    /// The control plane.
    pub control_plane: Option<ControlPlane>,
    /// Node counts.
    pub nodes: NodeCounts,
    /// Every pool, by name.
    pub pools: Vec<Pool>,
    /// Every finding, worst first, then soonest deadline, then rule and subject.
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
    /// The upgrade plan: what to do, in order, to stay supported through the plan horizon.
    pub plan: Vec<Step>,
}

/// One step of the upgrade plan (`plan`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// What to do.
    pub action: PlanAction,
    /// What it is done to.
    pub subject: Subject,
    /// The minor it moves from (a pool's oldest).
    pub from: Option<Minor>,
    /// The minor it moves to.
    pub to: Option<Minor>,
    /// Do it before then: the earliest of its own reasons and of the steps that wait on it.
    pub by: Due,
    /// The finding it prevents.
    pub prevents: Reason,
    /// The cluster may need a redeploy.
    pub redeploy: bool,
    /// What to do and why, with dates.
    pub message: String,
}

/// A finding a plan step prevents, and when it is (or became) Unsupported without the step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    /// The finding's rule.
    pub rule: RuleId,
    /// The finding's subject.
    pub subject: Subject,
    /// When it is Unsupported without the step: `Already` (since an instant not known), `At`,
    /// or `Never` on its own (it follows another step).
    pub at: Due,
}

/// When something is due. Ordered: `Already` < `At(t)` < `Never`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Due {
    /// Due already, since an instant not known.
    Already,
    /// Due at that instant.
    At(DateTime<Utc>),
    /// Not due on its own.
    Never,
}

impl Due {
    /// The instant, when there is one.
    pub fn instant(self) -> Option<DateTime<Utc>> {
        match self {
            Due::At(t) => Some(t),
            Due::Already | Due::Never => None,
        }
    }

    /// Due at or before `t`.
    pub fn by(self, t: DateTime<Utc>) -> bool {
        self <= Due::At(t)
    }
}

/// Something a person should know or do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The rule.
    pub rule: RuleId,
    /// How bad.
    pub severity: Severity,
    /// What it is about.
    pub subject: Subject,
    /// What is wrong and what to do, by when.
    pub message: String,
    /// When the finding reached its severity.
    pub since: Option<DateTime<Utc>>,
    /// When a Warning becomes Unsupported.
    pub deadline: Option<DateTime<Utc>>,
}

/// A future change of a finding with no change in the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// When.
    pub at: DateTime<Utc>,
    /// The rule.
    pub rule: RuleId,
    /// The subject.
    pub subject: Subject,
    /// The finding's severity from that instant on.
    pub severity: Severity,
}

/// The control plane's version and its support.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlPlane {
    /// The version the API server reports.
    pub version: Option<String>,
    /// Its minor, when it parses.
    pub minor: Option<Minor>,
    /// The day its support ends under the policy.
    pub end_of_support: Option<NaiveDate>,
    /// Its state now.
    pub state: SupportState,
}

/// One node pool.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pool {
    /// The pool's name.
    pub name: String,
    /// Nodes in scope in the pool.
    pub nodes: u32,
    /// Of which Ready.
    pub ready: u32,
    /// Kubelet versions (`None`: the node reports none) with their node counts.
    pub kubelets: BTreeMap<Option<Arc<str>>, u32>,
    /// Node images with their node counts.
    pub images: BTreeMap<ImageOrigin, u32>,
    /// The release day of the oldest image.
    pub oldest_image: Option<NaiveDate>,
}

/// Where a node's image age comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ImageOrigin {
    /// The image version read from a label or an annotation.
    Version(Arc<str>),
    /// The node's creation time (a lower bound of its image's age).
    NodeCreation,
}

impl ImageOrigin {
    /// How the status and the `image` metric label show it.
    pub fn label(&self) -> &str {
        match self {
            ImageOrigin::Version(v) => v,
            ImageOrigin::NodeCreation => "(from node creation)",
        }
    }
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

/// Which component a version belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Component {
    /// The API server.
    ControlPlane,
    /// A node's kubelet.
    Kubelet,
}

impl Component {
    /// The `component` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Component::ControlPlane => "control-plane",
            Component::Kubelet => "kubelet",
        }
    }
}

/// The end of support of a minor in use.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct VersionEnd {
    /// Which component runs it.
    pub component: Component,
    /// The minor.
    pub minor: Minor,
    /// When support ends.
    pub end: DateTime<Utc>,
}

/// A node's image and its release instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeImage {
    /// The node.
    pub node: Arc<str>,
    /// Its pool.
    pub pool: Arc<str>,
    /// The image.
    pub image: ImageOrigin,
    /// Its release instant (the node's creation with `ImageOrigin::NodeCreation`).
    pub released: DateTime<Utc>,
    /// The node has a finding at Warning or worse now (of any rule): it is unhealthy, and
    /// the metrics export it on its own.
    pub warning: bool,
}

/// A not-Ready node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotReadyNode {
    /// The node.
    pub node: Arc<str>,
    /// Its pool.
    pub pool: Arc<str>,
    /// Since when.
    pub since: DateTime<Utc>,
}
