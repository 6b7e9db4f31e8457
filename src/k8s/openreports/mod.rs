//! OpenReports (`openreports.io/v1alpha1`): the `ClusterReport` type as the upstream API defines
//! it (openreports/reports-api, `apis/openreports.io/v1alpha1`; its CRD is vendored in
//! `tests/openreports/`), how the operator builds one per policy from the SupportStatus it wrote
//! ([`build`]), and the calls that read and apply it.
//!
//! Policy Reporter and other consumers read `results[]` (`source`, `policy`, `rule`, `category`,
//! `severity`, `result`, `timestamp`, `resources`, `message`, `properties`) and `summary`. Note
//! that a result's subjects are serialised as `resources` (upstream's JSON name for `Subjects`).

pub mod build;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, Patch, PatchParams};
use kube::core::{ClusterResourceScope, ObjectMeta};
use serde::{Deserialize, Serialize};

pub use build::{
    build, same_content, MANAGED_BY, MAX_MESSAGE_BYTES, MAX_REPORT_BYTES, MAX_RESULTS, OMITTED_ANNOTATION,
};

/// The API group.
pub const GROUP: &str = "openreports.io";
/// The API version.
pub const VERSION: &str = "v1alpha1";
/// `group/version`.
pub const API_VERSION: &str = "openreports.io/v1alpha1";
/// The resource.
pub const PLURAL: &str = "clusterreports";
/// The `source` of the report and of each result (Policy Reporter groups by the results' source).
pub const SOURCE: &str = "support-operator";

/// `openreports.io/v1alpha1` ClusterReport: the results of one producer about cluster-scoped
/// subjects. It has no spec and no status: every field is at the top level.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ClusterReport {
    /// Standard object metadata.
    pub metadata: ObjectMeta,
    /// Who produced the report.
    #[serde(default)]
    pub source: String,
    /// What the report is about, when it is about one object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<ObjectReference>,
    /// A contract between producer and consumers (here: the cap on results).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration: Option<ReportConfiguration>,
    /// Result counts.
    #[serde(default)]
    pub summary: ReportSummary,
    /// One per finding.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<ReportResult>,
}

/// `configuration`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ReportConfiguration {
    /// `limits`.
    pub limits: Limits,
}

/// `configuration.limits`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// The most results the report holds.
    #[serde(default)]
    pub max_results: i64,
}

/// `summary`: how many results have each outcome.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ReportSummary {
    /// Requirements met.
    #[serde(default)]
    pub pass: i64,
    /// Requirements not met.
    #[serde(default)]
    pub fail: i64,
    /// Requirements not met, not scored (here: still supported, a deadline is near).
    #[serde(default)]
    pub warn: i64,
    /// Could not be evaluated.
    #[serde(default)]
    pub error: i64,
    /// Not selected.
    #[serde(default)]
    pub skip: i64,
}

/// The outcome of a result.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Requirements met.
    Pass,
    /// Requirements not met.
    Fail,
    /// Not met, not scored.
    Warn,
    /// Could not be evaluated.
    Error,
    /// Not selected.
    Skip,
}

/// How much a result matters.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum ResultSeverity {
    /// Critical.
    Critical,
    /// High.
    High,
    /// Medium.
    Medium,
    /// Low.
    Low,
    /// Informational.
    Info,
}

/// `metav1.Timestamp`: seconds and nanoseconds since the epoch.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Timestamp {
    /// Seconds since 1970-01-01T00:00:00Z.
    pub seconds: i64,
    /// Nanoseconds within the second.
    pub nanos: i32,
}

/// One result: a finding of a rule of a policy about its subjects.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ReportResult {
    /// Who produced it.
    #[serde(default)]
    pub source: String,
    /// The policy.
    pub policy: String,
    /// The rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The family of the rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// How much it matters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<ResultSeverity>,
    /// When the result was found.
    #[serde(default)]
    pub timestamp: Timestamp,
    /// The outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Outcome>,
    /// Whether the result is scored.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub scored: bool,
    /// What it is about (upstream's `Subjects`, serialised as `resources`).
    #[serde(rename = "resources", default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<ObjectReference>,
    /// What is wrong and what to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// More about it (here: `since`, `deadline`, `subject`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
}

impl kube::Resource for ClusterReport {
    type DynamicType = ();
    type Scope = ClusterResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "ClusterReport".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        GROUP.into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        VERSION.into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        PLURAL.into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// Whether the API server serves ClusterReports (their CRD is installed), from discovery.
pub async fn served(client: &kube::Client) -> Result<bool, kube::Error> {
    match client.list_api_group_resources(API_VERSION).await {
        Ok(list) => Ok(list.resources.iter().any(|r| r.name == PLURAL)),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
        Err(e) => Err(e),
    }
}

/// The stored report of `name`, if any.
pub async fn get(api: &Api<ClusterReport>, name: &str) -> Result<Option<ClusterReport>, kube::Error> {
    api.get_opt(name).await
}

/// Applies `report` (server-side apply, field manager `support-operator`, forced).
pub async fn apply(api: &Api<ClusterReport>, report: &ClusterReport) -> Result<(), kube::Error> {
    let name = report.metadata.name.clone().unwrap_or_default();
    let mut body = serde_json::to_value(report).map_err(kube::Error::SerdeError)?;
    body["apiVersion"] = API_VERSION.into();
    body["kind"] = "ClusterReport".into();
    let params = PatchParams::apply(crate::k8s::status::FIELD_MANAGER).force();
    api.patch(&name, &params, &Patch::Apply(body)).await.map(|_| ())
}
