//! The ClusterReport of a policy, built from the SupportStatus's `status` as written (the wire
//! [`SupportReport`]), never from engine internals: one result per finding listed in the status.
//!
//! - outcome and severity: Unsupported → `fail`/`critical`, Warning → `warn`/`medium`, Info →
//!   `pass`/`info`; `PolicyInvalid` (the policy could not be evaluated) → `error`/`medium`;
//! - `timestamp`: when this operator first reported the same rule, subjects and outcome (kept from
//!   the previous report), else `now` to the second: an unchanged cluster gives an identical
//!   report, so nothing is written;
//! - `properties`: `since` and `deadline` of the finding (RFC 3339), when it has them;
//! - bounded: at most [`MAX_RESULTS`] results, messages cut to [`MAX_MESSAGE_BYTES`], and the whole
//!   object within [`MAX_REPORT_BYTES`] (the bound the SupportStatus is held to); results cut are
//!   counted in the annotation [`OMITTED_ANNOTATION`], with the status's own `findingsOmitted`.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::{
    ClusterReport, Limits, Outcome, ReportConfiguration, ReportResult, ReportSummary, ResultSeverity, Timestamp, SOURCE,
};
use kube::Resource;

use crate::crd::v1alpha1::{Finding, Severity, SupportPolicy, SupportReport};
use crate::text::cut_to_bytes;

/// At most this many results (the SupportStatus lists at most 50 findings).
pub const MAX_RESULTS: usize = 50;
/// A result's message is cut to this many bytes.
pub const MAX_MESSAGE_BYTES: usize = 4096;
/// The serialised report stays under this many bytes, as the SupportStatus does.
pub const MAX_REPORT_BYTES: usize = 256 * 1024;
/// The label marking the reports this operator writes.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "support-operator");
/// How many findings the report leaves out (the status's and its own cuts), when any.
pub const OMITTED_ANNOTATION: &str = "support.compliance.dev/results-omitted";

/// The outcome and severity of a finding.
fn outcome(f: &Finding) -> (Outcome, ResultSeverity) {
    match (f.rule.as_str(), f.severity) {
        ("PolicyInvalid", _) => (Outcome::Error, ResultSeverity::Medium),
        (_, Severity::Unsupported) => (Outcome::Fail, ResultSeverity::Critical),
        (_, Severity::Warning) => (Outcome::Warn, ResultSeverity::Medium),
        (_, Severity::Info) => (Outcome::Pass, ResultSeverity::Info),
    }
}

/// The family of a rule: the section of the SupportPolicy spec it reads (`Support` for a rule
/// this version does not know, from a newer status).
fn category(rule: &str) -> &'static str {
    match rule {
        r if r.starts_with("KubernetesVersion") || r.starts_with("KubeletVersion") => "Kubernetes version",
        "CalendarStale" => "Kubernetes version",
        r if r.starts_with("NodeImage") => "Node image",
        "NodeNotReady" | "ClusterStopped" | "ClusterNotUpgradable" => "Stopped nodes",
        "HeartbeatStale" => "Heartbeat",
        "AttestationExpired" => "Attestation",
        "AlphaApiServed" => "Alpha APIs",
        "SystemMetadataChanged" => "System metadata",
        "PolicyInvalid" | "NoNodesInScope" => "Policy",
        _ => "Support",
    }
}

/// The subject `Kind/name` as an object reference: a Node is a core/v1 object; the policy's own
/// spec is the SupportPolicy with the field as `fieldPath`; other subjects (NodePool, Cluster,
/// ControlPlane, Heartbeat, …) are named by kind and name only.
fn subject(s: &str, policy: &str, uid: &str) -> ObjectReference {
    let (kind, name) = s.split_once('/').unwrap_or(("", s));
    let name = cut_to_bytes(name, 253);
    match kind {
        "Node" => ObjectReference {
            api_version: Some("v1".into()),
            kind: Some(kind.into()),
            name: Some(name),
            ..Default::default()
        },
        "SupportPolicy" => ObjectReference {
            api_version: Some(SupportPolicy::api_version(&()).into_owned()),
            kind: Some(kind.into()),
            name: Some(policy.into()),
            uid: Some(uid.into()),
            field_path: Some(name),
            ..Default::default()
        },
        "" => ObjectReference { name: Some(name), ..Default::default() },
        _ => ObjectReference { kind: Some(cut_to_bytes(kind, 63)), name: Some(name), ..Default::default() },
    }
}

/// What identifies a result across reports (its timestamp is kept while it stays).
fn identity(r: &ReportResult) -> (Option<String>, String, Option<Outcome>) {
    (r.rule.clone(), serde_json::to_string(&r.subjects).unwrap_or_default(), r.result)
}

fn summary(results: &[ReportResult]) -> ReportSummary {
    let mut s = ReportSummary::default();
    for r in results {
        match r.result {
            Some(Outcome::Pass) => s.pass += 1,
            Some(Outcome::Fail) => s.fail += 1,
            Some(Outcome::Warn) => s.warn += 1,
            Some(Outcome::Error) => s.error += 1,
            Some(Outcome::Skip) => s.skip += 1,
            None => {}
        }
    }
    s
}

/// The ClusterReport of the policy `policy` (uid `uid`) whose status is `status`. `previous` is
/// the report as last written or read, whose result timestamps are kept; `now` dates new results.
pub fn build(
    policy: &str,
    uid: &str,
    status: &SupportReport,
    previous: Option<&ClusterReport>,
    now: DateTime<Utc>,
) -> ClusterReport {
    let found: HashMap<_, Timestamp> =
        previous.into_iter().flat_map(|p| &p.results).map(|r| (identity(r), r.timestamp)).collect();
    let mut results: Vec<ReportResult> = status
        .findings
        .iter()
        .take(MAX_RESULTS)
        .map(|f| {
            let (result, severity) = outcome(f);
            let mut properties = BTreeMap::new();
            for (key, at) in [("since", f.since), ("deadline", f.deadline)] {
                if let Some(at) = at {
                    properties.insert(key.to_string(), crate::time::format(at));
                }
            }
            let mut r = ReportResult {
                source: SOURCE.into(),
                policy: policy.into(),
                rule: Some(cut_to_bytes(&f.rule, 63)),
                category: Some(category(&f.rule).into()),
                severity: Some(severity),
                timestamp: Timestamp { seconds: now.timestamp(), nanos: 0 },
                result: Some(result),
                scored: false,
                subjects: vec![subject(&f.subject, policy, uid)],
                message: Some(cut_to_bytes(&f.message, MAX_MESSAGE_BYTES)),
                properties,
            };
            if let Some(t) = found.get(&identity(&r)) {
                r.timestamp = *t;
            }
            r
        })
        .collect();
    loop {
        let omitted = status.findings_omitted as usize + status.findings.len() - results.len();
        let candidate = report(policy, uid, results.clone(), omitted);
        if results.is_empty() || serde_json::to_vec(&candidate).map_or(0, |b| b.len()) <= MAX_REPORT_BYTES {
            return candidate;
        }
        results.pop();
    }
}

/// The report around `results`, with its metadata.
fn report(policy: &str, uid: &str, results: Vec<ReportResult>, omitted: usize) -> ClusterReport {
    let owner = OwnerReference {
        api_version: SupportPolicy::api_version(&()).into_owned(),
        kind: "SupportPolicy".into(),
        name: policy.into(),
        uid: uid.into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    let mut report = ClusterReport {
        source: SOURCE.into(),
        configuration: Some(ReportConfiguration { limits: Limits { max_results: MAX_RESULTS as i64 } }),
        summary: summary(&results),
        results,
        ..Default::default()
    };
    report.metadata.name = Some(policy.into());
    report.metadata.labels = Some([(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string())].into());
    if omitted > 0 {
        report.metadata.annotations = Some([(OMITTED_ANNOTATION.to_string(), omitted.to_string())].into());
    }
    report.metadata.owner_references = Some(vec![owner]);
    report
}

/// Whether the stored report `stored` already says what `desired` says (the fields this operator
/// writes; the API server's own metadata and other managers' labels aside).
pub fn same_content(stored: &ClusterReport, desired: &ClusterReport) -> bool {
    let label = |r: &ClusterReport| r.metadata.labels.as_ref().and_then(|l| l.get(MANAGED_BY.0)).cloned();
    let omitted = |r: &ClusterReport| r.metadata.annotations.as_ref().and_then(|a| a.get(OMITTED_ANNOTATION)).cloned();
    let owners = |r: &ClusterReport| r.metadata.owner_references.clone().unwrap_or_default();
    stored.source == desired.source
        && stored.scope == desired.scope
        && stored.configuration == desired.configuration
        && stored.summary == desired.summary
        && stored.results == desired.results
        && label(stored) == label(desired)
        && omitted(stored) == omitted(desired)
        && owners(stored) == owners(desired)
}

#[cfg(test)]
mod category_tests {
    /// Every rule the engine can report has a category of its own: a new rule cannot silently
    /// land in the catch-all.
    #[test]
    fn every_rule_has_a_category() {
        for rule in crate::policy::all_rules() {
            assert_ne!(super::category(rule.as_str()), "Support", "{rule} has no OpenReports category");
        }
    }
}
