//! `ClusterSnapshot`: the plain value the engine evaluates. The operator builds it from its
//! caches, `check` from a kubeconfig or from files; both go through the lenient readers of
//! `read`, so garbage inside one object becomes a problem of that object, never an error for
//! the rest.

mod labels;
mod read;
#[cfg(test)]
mod reference;
pub(crate) mod wire;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};

pub use labels::{Interner, Keep, Labels, NodeKeys};

/// The taint a cloud provider puts on a node whose VM is shut down.
pub const SHUTDOWN_TAINT: &str = "node.cloudprovider.kubernetes.io/shutdown";

/// Everything the rules read about a cluster at one moment.
#[derive(Debug, Clone, Default)]
pub struct ClusterSnapshot {
    /// The API server's `gitVersion`, when known.
    pub server_version: Option<String>,
    /// Every node (the policy's selector picks its own).
    pub nodes: Vec<Arc<NodeInfo>>,
    /// Leases by (namespace, name); only those a policy names need be present.
    pub leases: BTreeMap<(String, String), LeaseInfo>,
    /// Group-versions the API server serves (`apps/v1`, `resource.k8s.io/v1alpha3`); `None`
    /// when discovery was not available (offline), which leaves AlphaApiServed unevaluated.
    pub api_versions: Option<Vec<String>>,
}

/// What the rules read about one node. Strings nodes share (label values, kubelet versions)
/// are shared when the reader interns them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct NodeInfo {
    /// `metadata.name`.
    pub name: Arc<str>,
    /// `metadata.labels` (empty when unusable; see `problems`); readers keep only the keys
    /// policies read (`NodeKeys`).
    pub labels: Labels,
    /// `metadata.annotations`, as `labels`.
    pub annotations: Labels,
    /// `metadata.creationTimestamp`.
    pub created: Option<DateTime<Utc>>,
    /// `status.nodeInfo.kubeletVersion`, verbatim.
    pub kubelet_version: Option<Arc<str>>,
    /// Ready or not, and since when.
    pub readiness: Readiness,
    /// The node carries the shutdown taint.
    pub shutdown: bool,
    /// Fields that could not be read, each reported as an Info finding about this node.
    pub problems: Vec<NodeProblem>,
}

/// Whether a node is Ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Readiness {
    /// `Ready` is `True` and there is no shutdown taint.
    Ready,
    /// Otherwise; since when, if known.
    NotReady {
        /// The instant it stopped being Ready.
        since: Option<DateTime<Utc>>,
    },
    /// Not yet known (a default only; converters always decide).
    #[default]
    Unknown,
}

impl NodeInfo {
    /// This node with only the labels and annotations of `keys`, the strings nodes share taken
    /// from `interner`.
    pub fn trimmed(mut self, keys: &NodeKeys, interner: &mut Interner) -> NodeInfo {
        self.labels.retain(|k| keys.labels.keeps(k));
        self.annotations.retain(|k| keys.annotations.keeps(k));
        self.labels = self.labels.interned(interner);
        self.annotations = self.annotations.interned(interner);
        self.kubelet_version = self.kubelet_version.map(|v| interner.intern(&v));
        self
    }
}

impl Readiness {
    /// True only for `Ready`.
    pub fn is_ready(self) -> bool {
        matches!(self, Readiness::Ready)
    }
}

/// A field of a node that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeProblem {
    /// The field.
    pub field: NodeField,
    /// Why it is unusable.
    pub reason: String,
}

/// The fields of a Node the rules read, each of which can be garbage on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NodeField {
    /// `metadata.labels`.
    Labels,
    /// `metadata.annotations`.
    Annotations,
    /// `metadata.creationTimestamp`.
    CreationTimestamp,
    /// `status.nodeInfo.kubeletVersion`.
    KubeletVersion,
    /// `spec.taints`.
    Taints,
    /// `status.conditions`.
    Conditions,
    /// The `lastTransitionTime` of the Ready condition.
    ReadyTransition,
}

impl NodeField {
    /// The field's path in the Node object.
    pub fn path(self) -> &'static str {
        match self {
            NodeField::Labels => "metadata.labels",
            NodeField::Annotations => "metadata.annotations",
            NodeField::CreationTimestamp => "metadata.creationTimestamp",
            NodeField::KubeletVersion => "status.nodeInfo.kubeletVersion",
            NodeField::Taints => "spec.taints",
            NodeField::Conditions => "status.conditions",
            NodeField::ReadyTransition => "status.conditions[Ready].lastTransitionTime",
        }
    }
}

impl fmt::Display for NodeField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.path())
    }
}

/// What the rules read about one Lease.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct LeaseInfo {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `spec.renewTime`, else `spec.acquireTime`.
    pub renewed: Option<DateTime<Utc>>,
    /// Why `renewed` is missing, if a field was garbage.
    pub problem: Option<String>,
}

/// An object that could not be used at all (no name, not an object).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ObjectError {
    /// JSON path of the offending field.
    pub field: String,
    /// Why.
    pub reason: String,
}
