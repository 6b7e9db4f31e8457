//! `SupportStatus`: what the operator writes, one per policy.

use chrono::{DateTime, NaiveDate, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The support status of the cluster under one SupportPolicy. Written by the operator: one per
/// policy, same name, owned by it.
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "support.compliance.dev",
    version = "v1alpha1",
    kind = "SupportStatus",
    plural = "supportstatuses",
    doc = "The support status of the cluster under the SupportPolicy of the same name: verdict, findings and next deadline. Written by support-operator.",
    shortname = "sst",
    category = "support",
    status = "SupportReport",
    printcolumn = r#"{"name":"Verdict","type":"string","jsonPath":".status.verdict"}"#,
    printcolumn = r#"{"name":"Version","type":"string","jsonPath":".status.controlPlane.version"}"#,
    printcolumn = r#"{"name":"Nodes","type":"integer","jsonPath":".status.nodes.total"}"#,
    printcolumn = r#"{"name":"Findings","type":"integer","jsonPath":".status.findingsTotal"}"#,
    printcolumn = r#"{"name":"Next-Deadline","type":"string","format":"date-time","jsonPath":".status.nextDeadline.at"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SupportStatusSpec {
    /// Name of the SupportPolicy this status reports on.
    pub policy: String,
}

/// What the operator found: the `status` of a SupportStatus. Its size does not grow with the
/// node count: per-node detail goes to metrics.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SupportReport {
    /// Supported, AtRisk (a Warning), Unsupported, or Unknown (the policy is invalid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// `Supported` and `PolicyValid`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The policy generation this status reflects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The control plane's version and its support.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane: Option<ControlPlaneStatus>,
    /// Node counts of the nodes in scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<NodeCounts>,
    /// One entry per node pool (at most 100).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<PoolSummary>,
    /// How many pools were left out of `pools`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pools_omitted: u32,
    /// At most 50 findings, worst first, then soonest deadline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
    /// How many findings there are in all.
    #[serde(default)]
    pub findings_total: u32,
    /// How many findings were left out of `findings`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub findings_omitted: u32,
    /// The earliest future instant at which the verdict or a finding changes with no change in
    /// the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_deadline: Option<Transition>,
    /// The transitions of the next 180 days, soonest first (at most 20).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upcoming: Vec<Transition>,
    /// The shortest ordered plan that keeps the cluster supported for the policy's
    /// `planHorizonDays`, in the order to do it (at most 50 steps). Empty: nothing to do.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plan: Vec<PlanStep>,
    /// How many steps were left out of `plan` (the last ones).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub plan_omitted: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The verdict of a policy, ordered from best to worst (`Unknown` last: nothing is known).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Verdict {
    /// No Warning or Unsupported finding.
    Supported,
    /// At least one Warning, no Unsupported finding.
    AtRisk,
    /// At least one Unsupported finding.
    Unsupported,
    /// The policy is invalid; nothing was evaluated.
    #[default]
    Unknown,
}

impl Verdict {
    /// Every verdict, in the order of the `support_verdict` metric.
    pub const ALL: [Verdict; 4] = [Verdict::Supported, Verdict::AtRisk, Verdict::Unsupported, Verdict::Unknown];

    /// The name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Supported => "Supported",
            Verdict::AtRisk => "AtRisk",
            Verdict::Unsupported => "Unsupported",
            Verdict::Unknown => "Unknown",
        }
    }
}

/// How bad a finding is.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// Worth knowing; no deadline.
    Info,
    /// A threshold is near: it becomes Unsupported at `deadline`.
    Warning,
    /// Out of support now.
    Unsupported,
}

impl Severity {
    /// The name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "Info",
            Severity::Warning => "Warning",
            Severity::Unsupported => "Unsupported",
        }
    }
}

/// The control plane's version and its support.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ControlPlaneStatus {
    /// The version the API server reports (`gitVersion`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Its minor, `MAJOR.MINOR`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minor: Option<String>,
    /// The day its support ends under this policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_of_support: Option<NaiveDate>,
    /// Supported, Warning, Unsupported or Unknown.
    pub state: SupportState,
}

/// How the control plane's minor stands under the policy.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SupportState {
    /// Supported, no deadline near.
    Supported,
    /// Its end of support is near.
    Warning,
    /// Out of support.
    Unsupported,
    /// Not known: no version, a version that does not parse or a minor not in the calendar.
    #[default]
    Unknown,
}

impl SupportState {
    /// The name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            SupportState::Supported => "Supported",
            SupportState::Warning => "Warning",
            SupportState::Unsupported => "Unsupported",
            SupportState::Unknown => "Unknown",
        }
    }
}

/// Node counts of the nodes in scope.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct NodeCounts {
    /// Nodes the policy's nodeSelector selects.
    pub total: u32,
    /// Nodes whose Ready condition is True and that carry no shutdown taint.
    pub ready: u32,
    /// The other nodes.
    pub not_ready: u32,
    /// Not-ready nodes that carry the `node.cloudprovider.kubernetes.io/shutdown` taint.
    pub stopped: u32,
    /// Nodes whose image is past its warning age.
    pub outdated_image: u32,
    /// Nodes whose kubelet is out of support or outside the version skew.
    pub unsupported_kubelet: u32,
}

/// One node pool.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PoolSummary {
    /// The pool's name (from the platform's pool label, else `default`).
    pub name: String,
    /// Nodes in the pool.
    pub nodes: u32,
    /// Ready nodes in the pool.
    pub ready: u32,
    /// Kubelet versions with their node counts (at most 10, most common first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kubelet_versions: Vec<VersionCount>,
    /// Node image versions with their node counts (at most 10, most common first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<VersionCount>,
    /// The release date of the oldest node image in the pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_image_date: Option<NaiveDate>,
}

/// A version and how many nodes run it.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
pub struct VersionCount {
    /// The version.
    pub version: String,
    /// Node count.
    pub count: u32,
}

/// Something a person should know or do.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// The rule identifier (e.g. `NodeImageOutdated`).
    pub rule: String,
    /// Unsupported, Warning or Info.
    pub severity: Severity,
    /// What it is about, `Kind/name` (e.g. `Node/aks-user-1`, `NodePool/user`, `Cluster/cluster`).
    pub subject: String,
    /// What is wrong and what to do, by when.
    pub message: String,
    /// When the finding reached its severity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// When a Warning becomes Unsupported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<DateTime<Utc>>,
}

/// A future change of the status with no change in the cluster.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Transition {
    /// When it happens.
    pub at: DateTime<Utc>,
    /// The rule.
    pub rule: String,
    /// The subject, `Kind/name`.
    pub subject: String,
    /// The finding's severity from that instant on.
    pub severity: Severity,
}

/// One step of the upgrade plan.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PlanStep {
    /// What to do.
    pub action: PlanAction,
    /// What it is done to, `Kind/name` (`ControlPlane/kube-apiserver`, `NodePool/user`,
    /// `Cluster/cluster`, `Node/aks-user-1`).
    pub subject: String,
    /// The minor it moves from (version steps; a pool's oldest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The minor it moves to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Do it before this instant: from it on the cluster is out of support unless this step
    /// (and every step before it) is done. Absent: it is out of support already, since an
    /// instant the calendar does not tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<DateTime<Utc>>,
    /// The finding the step prevents (or ends).
    pub prevents: PlanReason,
    /// The cluster may need a redeploy (the incremental upgrade path is gone).
    #[serde(default, skip_serializing_if = "is_false")]
    pub redeploy: bool,
    /// What to do and why, with dates.
    pub message: String,
}

/// What a plan step does.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PlanAction {
    /// Start the stopped cluster (every step after it needs a running cluster).
    StartCluster,
    /// Start, repair or replace nodes that are not Ready.
    StartNodes,
    /// Upgrade the control plane by one minor.
    UpgradeControlPlane,
    /// Upgrade the control plane and every node pool directly to a minor (the incremental
    /// path is gone; the cluster may need a redeploy).
    UpgradeCluster,
    /// Upgrade a node pool's kubelets to a minor (this lays down a new node image too).
    UpgradeNodePool,
    /// Refresh a node pool's node image (upgrade the image, or replace the nodes).
    RefreshNodeImage,
}

impl PlanAction {
    /// The name used in the API and in the `action` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            PlanAction::StartCluster => "StartCluster",
            PlanAction::StartNodes => "StartNodes",
            PlanAction::UpgradeControlPlane => "UpgradeControlPlane",
            PlanAction::UpgradeCluster => "UpgradeCluster",
            PlanAction::UpgradeNodePool => "UpgradeNodePool",
            PlanAction::RefreshNodeImage => "RefreshNodeImage",
        }
    }
}

/// The finding a plan step prevents.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PlanReason {
    /// Its rule.
    pub rule: String,
    /// Its subject, `Kind/name`.
    pub subject: String,
    /// When it is (or became) Unsupported without the step. Absent: it has no instant of its
    /// own (it would follow the next control-plane step), or it is Unsupported since an instant
    /// the calendar does not tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
}
