//! The ClusterReport builder: mapping, stable dates, bounds, and the upstream schema.

use super::build::*;
use super::*;
use crate::crd::v1alpha1::{Finding, Severity, SupportReport};
use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::ObjectReference;
use serde_json::Value;
use std::collections::BTreeMap;

const UID: &str = "0b5c-policy-uid";

fn at(s: &str) -> DateTime<Utc> {
    crate::time::parse_rfc3339(s).unwrap()
}

fn finding(rule: &str, severity: Severity, subject: &str) -> Finding {
    Finding {
        rule: rule.into(),
        severity,
        subject: subject.into(),
        message: format!("{rule} on {subject}"),
        since: Some(at("2026-09-20T00:00:00Z")),
        deadline: (severity == Severity::Warning).then(|| at("2026-12-19T00:00:00Z")),
    }
}

fn status(findings: Vec<Finding>) -> SupportReport {
    SupportReport { findings_total: findings.len() as u32, findings, ..Default::default() }
}

fn neglected() -> SupportReport {
    status(vec![
        finding("NodeImageOutdated", Severity::Unsupported, "NodePool/win"),
        finding("KubeletVersionEndOfSupport", Severity::Warning, "NodePool/system"),
        finding("NodeNotReady", Severity::Info, "Node/aks-user-3"),
        finding("PolicyInvalid", Severity::Warning, "SupportPolicy/spec.nodeImage.datePattern"),
    ])
}

#[test]
fn each_finding_is_a_result_with_its_outcome_severity_and_subject() {
    let r = build("aks", UID, &neglected(), None, at("2026-11-25T12:00:00.750Z"));
    let outcomes: Vec<_> = r.results.iter().map(|r| (r.result.unwrap(), r.severity.unwrap())).collect();
    assert_eq!(
        outcomes,
        [
            (Outcome::Fail, ResultSeverity::Critical),
            (Outcome::Warn, ResultSeverity::Medium),
            (Outcome::Pass, ResultSeverity::Info),
            (Outcome::Error, ResultSeverity::Medium),
        ]
    );
    assert_eq!(r.summary, ReportSummary { pass: 1, fail: 1, warn: 1, error: 1, skip: 0 });
    assert!(
        r.results.iter().all(|x| x.source == SOURCE && x.policy == "aks"),
        "Policy Reporter reads the results' source"
    );
    assert_eq!(r.source, SOURCE);
    let first = &r.results[0];
    assert_eq!(first.rule.as_deref(), Some("NodeImageOutdated"));
    assert_eq!(first.category.as_deref(), Some("Node image"));
    assert_eq!(first.message.as_deref(), Some("NodeImageOutdated on NodePool/win"));
    assert_eq!(
        first.subjects,
        [ObjectReference { kind: Some("NodePool".into()), name: Some("win".into()), ..Default::default() }]
    );
    assert_eq!(first.properties, BTreeMap::from([("since".to_string(), "2026-09-20T00:00:00Z".to_string())]));
    assert_eq!(r.results[1].properties["deadline"], "2026-12-19T00:00:00Z");
    let node = &r.results[2].subjects[0];
    assert_eq!(
        (node.api_version.as_deref(), node.kind.as_deref(), node.name.as_deref()),
        (Some("v1"), Some("Node"), Some("aks-user-3"))
    );
    let spec = &r.results[3].subjects[0];
    assert_eq!(
        (spec.kind.as_deref(), spec.name.as_deref(), spec.uid.as_deref()),
        (Some("SupportPolicy"), Some("aks"), Some(UID))
    );
    assert_eq!(spec.field_path.as_deref(), Some("spec.nodeImage.datePattern"));
    assert_eq!(first.timestamp, Timestamp { seconds: at("2026-11-25T12:00:00Z").timestamp(), nanos: 0 });
    // Owned by the policy: deleted with it.
    let owner = &r.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()), ("SupportPolicy", "aks", UID));
    assert_eq!((owner.controller, owner.block_owner_deletion), (Some(true), Some(true)));
    assert_eq!(r.metadata.name.as_deref(), Some("aks"));
    assert!(r.metadata.annotations.is_none(), "nothing omitted");
}

#[test]
fn an_unchanged_status_gives_the_same_report_later_and_a_changed_result_is_dated_anew() {
    let t0 = at("2026-11-25T12:00:00Z");
    let t1 = at("2026-11-26T08:30:00Z");
    let first = build("aks", UID, &neglected(), None, t0);
    let again = build("aks", UID, &neglected(), Some(&first), t1);
    assert_eq!(again, first, "a heartbeat later: identical, nothing to write");
    assert!(same_content(&first, &again));

    // The Warning becomes Unsupported: that result is new (found at t1); the others keep t0.
    let mut worse = neglected();
    worse.findings[1].severity = Severity::Unsupported;
    let next = build("aks", UID, &worse, Some(&again), t1);
    assert!(!same_content(&again, &next));
    let stamps: Vec<i64> = next.results.iter().map(|r| r.timestamp.seconds).collect();
    assert_eq!(stamps, [t0.timestamp(), t1.timestamp(), t0.timestamp(), t0.timestamp()]);
    // A message that changes (one more node) is the same result: its date stays.
    let mut more = neglected();
    more.findings[0].message = "5 nodes …".into();
    let reworded = build("aks", UID, &more, Some(&first), t1);
    assert_eq!(reworded.results[0].timestamp, first.results[0].timestamp);
    assert!(!same_content(&first, &reworded));
}

#[test]
fn the_stored_object_with_server_metadata_has_the_same_content() {
    let desired = build("aks", UID, &neglected(), None, at("2026-11-25T12:00:00Z"));
    let mut stored = desired.clone();
    stored.metadata.uid = Some("server-uid".into());
    stored.metadata.resource_version = Some("42".into());
    stored.metadata.labels.as_mut().unwrap().insert("team".into(), "platform".into());
    assert!(same_content(&stored, &desired));
    stored.metadata.owner_references = None;
    assert!(!same_content(&stored, &desired), "a report that lost its owner is written again");
}

#[test]
fn the_report_is_bounded_in_results_messages_and_bytes() {
    // More findings than a status lists (a newer engine may list more): 50 results.
    let mut many: Vec<Finding> =
        (0..70).map(|i| finding("NodeNotReady", Severity::Warning, &format!("Node/n{i}"))).collect();
    many[0].message = "ä".repeat(10_000);
    let mut st = status(many);
    st.findings_omitted = 5;
    let r = build("aks", UID, &st, None, at("2026-11-25T12:00:00Z"));
    assert_eq!(r.results.len(), MAX_RESULTS);
    assert_eq!(r.metadata.annotations.as_ref().unwrap()[OMITTED_ANNOTATION], "25", "5 by the status, 20 here");
    let message = r.results[0].message.as_deref().unwrap();
    assert!(message.len() <= MAX_MESSAGE_BYTES && message.ends_with('…'), "{} bytes", message.len());

    // At the bound: every field as long as the wire allows, plus subjects far beyond any name.
    let huge: Vec<Finding> = (0..50)
        .map(|i| Finding {
            rule: "R".repeat(500),
            severity: Severity::Unsupported,
            subject: format!("{}/{}{i}", "K".repeat(500), "n".repeat(50_000)),
            message: "m".repeat(50_000),
            since: Some(at("2026-01-01T00:00:00Z")),
            deadline: Some(at("2027-01-01T00:00:00Z")),
        })
        .collect();
    let r = build(&"p".repeat(253), UID, &status(huge), None, at("2026-11-25T12:00:00Z"));
    let bytes = serde_json::to_vec(&r).unwrap().len();
    assert!(bytes <= MAX_REPORT_BYTES, "{bytes} bytes");
    assert_eq!(r.results.len(), 50, "cut fields keep every result within the budget");
    assert!(r.results.iter().all(|x| x.subjects[0].name.as_ref().unwrap().len() <= 253));
}

#[test]
fn the_budget_drops_the_last_results_and_counts_them() {
    // Control characters are escaped as `\u0001` in JSON: each message byte costs six, so the
    // field cuts alone cannot keep 50 results within the budget.
    let findings: Vec<Finding> = (0..50)
        .map(|i| {
            let mut f = finding("HeartbeatStale", Severity::Info, &format!("Heartbeat/h{i}"));
            f.message = "\u{1}".repeat(MAX_MESSAGE_BYTES);
            f
        })
        .collect();
    let r = build("aks", UID, &status(findings), None, at("2026-11-25T12:00:00Z"));
    let bytes = serde_json::to_vec(&r).unwrap().len();
    assert!(bytes <= MAX_REPORT_BYTES, "{bytes} bytes");
    assert!(r.results.len() < 50 && r.results.len() > 5, "{} results", r.results.len());
    let omitted: usize = r.metadata.annotations.as_ref().unwrap()[OMITTED_ANNOTATION].parse().unwrap();
    assert_eq!(omitted + r.results.len(), 50, "every result cut is counted");
    assert_eq!(r.summary.pass as usize, r.results.len(), "the summary counts the results listed");
    assert_eq!(r.results.last().unwrap().subjects[0].name.as_deref(), Some(&*format!("h{}", r.results.len() - 1)));
}

/// Every field written is one the upstream CRD (vendored in tests/openreports) defines, with an
/// allowed value: an API server with that CRD would store the report as written (no pruning).
#[test]
fn the_written_object_fits_the_upstream_crd_schema() {
    fn check(value: &Value, schema: &Value, path: &str) {
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
            assert!(allowed.contains(value), "{path}: {value} is not one of {allowed:?}");
        }
        match (value, schema["type"].as_str()) {
            (Value::Object(map), Some("object")) => {
                for (key, v) in map {
                    let sub = schema["properties"].get(key).or_else(|| schema.get("additionalProperties"));
                    match sub {
                        Some(sub) => check(v, sub, &format!("{path}.{key}")),
                        None if path == ".metadata" || schema.get("properties").is_none() => {}
                        None => panic!("{path}.{key} is not in the upstream schema"),
                    }
                }
                for required in schema["required"].as_array().into_iter().flatten() {
                    assert!(map.contains_key(required.as_str().unwrap()), "{path}: {required} is required");
                }
            }
            (Value::Array(items), Some("array")) => {
                items.iter().enumerate().for_each(|(i, v)| check(v, &schema["items"], &format!("{path}[{i}]")))
            }
            (Value::String(_), Some("string")) | (Value::Bool(_), Some("boolean")) => {}
            (Value::Number(n), Some("integer")) => assert!(n.is_i64(), "{path}: {n}"),
            (v, t) => panic!("{path}: {v} is not of type {t:?}"),
        }
    }
    let crd: Value =
        crate::yaml::documents(include_str!("../../../tests/openreports/openreports.io_clusterreports.yaml"))
            .expect("the vendored CRD")
            .remove(0);
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let mut st = neglected();
    st.findings_omitted = 3;
    let mut written = serde_json::to_value(build("aks", UID, &st, None, at("2026-11-25T12:00:00Z"))).unwrap();
    written["apiVersion"] = API_VERSION.into();
    written["kind"] = "ClusterReport".into();
    check(&written, schema, "");
    assert!(written["results"][0].get("resources").is_some(), "subjects are `resources` on the wire");
}
