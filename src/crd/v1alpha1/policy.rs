//! `SupportPolicy`: the rules and numbers users write.

use chrono::{DateTime, NaiveDate, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Severity;

/// The support rules of a managed Kubernetes platform and the numbers they use.
///
/// A `platform` preset supplies the release calendar and the default of every number; each
/// number set here overrides the preset's. With `platform: Custom` there is no calendar and no
/// default: a rule whose section is absent is not evaluated.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "support.compliance.dev",
    version = "v1alpha1",
    kind = "SupportPolicy",
    plural = "supportpolicies",
    doc = "The support rules of a managed Kubernetes platform (a preset) and the numbers they use. The operator writes one SupportStatus of the same name.",
    shortname = "spol",
    category = "support",
    printcolumn = r#"{"name":"Platform","type":"string","jsonPath":".spec.platform"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SupportPolicySpec {
    /// The platform preset that supplies the release calendar and the default numbers.
    pub platform: Platform,

    /// Which nodes the policy governs (default: all nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<LabelSelector>,

    /// Control-plane and kubelet version support (rules KubernetesVersionEndOfSupport,
    /// KubernetesVersionUnknown, KubeletVersionEndOfSupport, KubeletVersionSkew).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<KubernetesVersionSpec>,

    /// Node image age (rules NodeImageOutdated, NodeImageUnknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_image: Option<NodeImageSpec>,

    /// Nodes that are not Ready or shut down, and the cluster with no Ready node (rules
    /// NodeNotReady, ClusterStopped, ClusterNotUpgradable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_nodes: Option<StoppedNodesSpec>,

    /// Leases the cluster renews to prove a connection (rule HeartbeatStale).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub heartbeats: Vec<HeartbeatSpec>,

    /// Dated facts the cluster cannot see, declared by you (rule AttestationExpired).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub attestations: Vec<AttestationSpec>,

    /// Whether built-in API groups served at an alpha version are allowed (rule AlphaApiServed).
    /// Default: Forbid on AKS and AKSArc, Allow elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha_apis: Option<AlphaApis>,

    /// Node labels the platform sets and that must be left alone (rule SystemMetadataChanged).
    /// Default: the platform's reserved labels on AKS and AKSArc; not evaluated elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_metadata: Option<SystemMetadataSpec>,

    /// How many days ahead the upgrade plan (`status.plan`) keeps the cluster supported, and
    /// how far ahead a stale calendar is a Warning (rule CalendarStale). Default: 90.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3650))]
    pub plan_horizon_days: Option<u32>,
}

/// A platform preset.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Platform {
    /// Azure Kubernetes Service.
    #[default]
    #[serde(rename = "AKS")]
    Aks,
    /// AKS enabled by Azure Arc (Azure Local, Windows Server).
    #[serde(rename = "AKSArc")]
    AksArc,
    /// Amazon Elastic Kubernetes Service.
    #[serde(rename = "EKS")]
    Eks,
    /// Google Kubernetes Engine.
    #[serde(rename = "GKE")]
    Gke,
    /// Upstream Kubernetes (kubernetes.io release calendar).
    Upstream,
    /// No calendar and no defaults.
    Custom,
}

impl Platform {
    /// Every platform, in the order of the docs.
    pub const ALL: [Platform; 6] =
        [Platform::Aks, Platform::AksArc, Platform::Eks, Platform::Gke, Platform::Upstream, Platform::Custom];

    /// The name used in the API (`AKS`, `AKSArc`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Aks => "AKS",
            Platform::AksArc => "AKSArc",
            Platform::Eks => "EKS",
            Platform::Gke => "GKE",
            Platform::Upstream => "Upstream",
            Platform::Custom => "Custom",
        }
    }
}

/// Kubernetes version support: a release calendar and the numbers applied to it.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KubernetesVersionSpec {
    /// Calendar entries merged over the preset's calendar by minor (an entry for a minor the
    /// preset knows replaces it; a new minor is added).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub releases: Vec<ReleaseSpec>,

    /// Support window, in days from `released`, of a minor whose entry has no `endOfSupport`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3650))]
    pub support_window_days: Option<u32>,

    /// Only the N newest minors released at the time of evaluation are supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 20))]
    pub supported_minors: Option<u32>,

    /// Days before end of support at which a version finding becomes a Warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 3650))]
    pub warn_before_days: Option<u32>,

    /// How many minors a kubelet may be older than the control plane (upstream: 3). A kubelet
    /// newer than the control plane is always Unsupported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 10))]
    pub max_kubelet_skew_minors: Option<u32>,

    /// At end of support the incremental upgrade path is gone (AKS Arc removes the minor from
    /// its update servers): findings say the cluster must move to the latest release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_path_removed_at_end_of_support: Option<bool>,

    /// Count `ltsEndOfSupport` (AKS long-term support, EKS extended support) instead of
    /// `endOfSupport` where a release has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_term_support: Option<bool>,
}

/// One minor of a release calendar. Dates are that day at 00:00:00 UTC.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = kube::core::Rule::new("!has(self.endOfSupport) || self.endOfSupport > self.released").message("endOfSupport must be after released"))]
#[x_kube(validation = kube::core::Rule::new("!has(self.ltsEndOfSupport) || self.ltsEndOfSupport > self.released").message("ltsEndOfSupport must be after released"))]
pub struct ReleaseSpec {
    /// The minor, `MAJOR.MINOR` (e.g. `1.31`).
    #[schemars(regex(pattern = r"^[0-9]+\.[0-9]+$"))]
    pub minor: String,
    /// The day the platform made the minor generally available.
    pub released: NaiveDate,
    /// The day support ends (else `released + supportWindowDays`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_of_support: Option<NaiveDate>,
    /// The day long-term (or extended) support ends, counted when `longTermSupport` is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lts_end_of_support: Option<NaiveDate>,
}

/// Where a node's image version comes from.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeImageSource {
    /// A node label (`label`).
    Label,
    /// A node annotation (`annotation`).
    Annotation,
    /// The node's creation time, a lower bound of its image age, for platforms that patch by
    /// replacing nodes and label no image version (AKS Arc, EKS, GKE).
    NodeCreation,
}

/// Node image age.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = kube::core::Rule::new("!has(self.label) || !has(self.annotation)").message("set label or annotation, not both"))]
#[x_kube(validation = kube::core::Rule::new("!has(self.warnAfterDays) || !has(self.unsupportedAfterDays) || self.warnAfterDays <= self.unsupportedAfterDays").message("warnAfterDays must not exceed unsupportedAfterDays"))]
pub struct NodeImageSpec {
    /// Where the image version is read. Default: `Label` when `label` is set, `Annotation` when
    /// `annotation` is set, else the preset's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<NodeImageSource>,
    /// Label key holding the image version (AKS: `kubernetes.azure.com/node-image-version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Annotation key holding the image version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotation: Option<String>,
    /// Regular expression with named groups `year` (two digits mean 20yy), `month` and `day`
    /// that finds the image's release date in its version. Replaces the preset's patterns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub date_pattern: Option<String>,
    /// Days after the image's release date at which it becomes a Warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 3650))]
    pub warn_after_days: Option<u32>,
    /// Days after the image's release date at which it is Unsupported (AKS: 90).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 3650))]
    pub unsupported_after_days: Option<u32>,
}

/// Nodes that are not Ready and the cluster with no Ready node.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = kube::core::Rule::new("!has(self.warnAfterDays) || !has(self.unsupportedAfterDays) || self.warnAfterDays <= self.unsupportedAfterDays").message("warnAfterDays must not exceed unsupportedAfterDays"))]
#[x_kube(validation = kube::core::Rule::new("!has(self.clusterUnsupportedAfterDays) || !has(self.clusterNotUpgradableAfterDays) || self.clusterUnsupportedAfterDays <= self.clusterNotUpgradableAfterDays").message("clusterUnsupportedAfterDays must not exceed clusterNotUpgradableAfterDays"))]
pub struct StoppedNodesSpec {
    /// Days a single node may be not Ready (or shut down) before a Warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 3650))]
    pub warn_after_days: Option<u32>,
    /// Days a single node may be not Ready before it is Unsupported (unset: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 3650))]
    pub unsupported_after_days: Option<u32>,
    /// Days the cluster may have no Ready node before it is Unsupported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 3650))]
    pub cluster_unsupported_after_days: Option<u32>,
    /// Days the cluster may have no Ready node before it can no longer be upgraded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 3650))]
    pub cluster_not_upgradable_after_days: Option<u32>,
}

/// A Lease the cluster renews, whose `renewTime` proves a connection is alive.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = kube::core::Rule::new("!has(self.warnAfterDays) || !has(self.unsupportedAfterDays) || self.warnAfterDays <= self.unsupportedAfterDays").message("warnAfterDays must not exceed unsupportedAfterDays"))]
pub struct HeartbeatSpec {
    /// Name of the heartbeat, used as the finding's subject and the metric label.
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,
    /// The Lease.
    pub lease: LeaseReference,
    /// Days after the Lease's last renewal at which it becomes a Warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 3650))]
    pub warn_after_days: Option<u32>,
    /// Days after the Lease's last renewal at which it is Unsupported (AKS Arc: 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 3650))]
    pub unsupported_after_days: Option<u32>,
}

/// A namespaced reference to a `coordination.k8s.io/v1` Lease.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(deny_unknown_fields)]
pub struct LeaseReference {
    /// Namespace of the Lease.
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,
    /// Name of the Lease.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A dated fact the cluster cannot observe (e.g. "subscription suspended since …").
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttestationSpec {
    /// Name of the attestation, used as the finding's subject.
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,
    /// Since when the fact holds (RFC 3339).
    pub since: DateTime<Utc>,
    /// Days after `since` at which the cluster is Unsupported (AKS Arc subscription suspended:
    /// 60). It is a Warning from `since` on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 3650))]
    pub unsupported_after_days: Option<u32>,
    /// What the fact is, for the finding's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub description: Option<String>,
}

/// Whether built-in API groups served at an alpha version are allowed.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlphaApis {
    /// An alpha version of a built-in group makes the cluster Unsupported.
    Forbid,
    /// Alpha versions are not evaluated.
    Allow,
}

/// System-created node metadata: labels the platform sets on every node, which changing makes
/// the cluster unsupported (adding labels of your own is fine).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SystemMetadataSpec {
    /// Evaluate the rule (default: true). `false` turns it off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Severity of a finding: Info, Warning (default) or Unsupported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    /// The labels every node must carry. Replaces the preset's list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub labels: Vec<SystemLabelSpec>,
}

/// A label the platform sets on every node.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SystemLabelSpec {
    /// The label key, `prefix/name` (e.g. `kubernetes.azure.com/mode`).
    #[schemars(length(min = 1, max = 317))]
    pub key: String,
    /// Every node of a pool carries the same value (default: false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uniform_in_pool: Option<bool>,
}
