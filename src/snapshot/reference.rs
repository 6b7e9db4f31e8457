//! The readers as they were before the streaming ones (`wire`, `read`), kept as the oracle of
//! their property tests: on any JSON, both must read the same node and the same lease.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{LeaseInfo, NodeField, NodeInfo, NodeProblem, ObjectError, Readiness, SHUTDOWN_TAINT};
use crate::text::snippet;
use crate::time::parse_rfc3339;

fn obj_err(field: &str, reason: impl Into<String>) -> ObjectError {
    ObjectError { field: field.to_string(), reason: reason.into() }
}

/// A Node from its JSON form.
pub(super) fn node(v: &Value) -> Result<NodeInfo, ObjectError> {
    let meta = v.get("metadata").ok_or_else(|| obj_err("metadata", "missing"))?;
    let name = meta
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| obj_err("metadata.name", "missing or not a string"))?
        .to_string();
    let mut problems = Vec::new();
    let mut problem = |field: NodeField, reason: String| problems.push(NodeProblem { field, reason });

    let labels = string_map(meta.get("labels")).unwrap_or_else(|reason| {
        problem(NodeField::Labels, reason);
        BTreeMap::new()
    });
    let annotations = string_map(meta.get("annotations")).unwrap_or_else(|reason| {
        problem(NodeField::Annotations, reason);
        BTreeMap::new()
    });
    let created = match timestamp(meta.get("creationTimestamp")) {
        Ok(t) => t,
        Err(reason) => {
            problem(NodeField::CreationTimestamp, reason);
            None
        }
    };
    let kubelet_version = match v.pointer("/status/nodeInfo/kubeletVersion") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            problem(NodeField::KubeletVersion, format!("not a string: {}", short_json(other)));
            None
        }
    };

    let shutdown_taint = match v.pointer("/spec/taints") {
        None | Some(Value::Null) => None,
        Some(Value::Array(taints)) => taints
            .iter()
            .find(|t| t.get("key").and_then(Value::as_str) == Some(SHUTDOWN_TAINT))
            .map(|t| timestamp(t.get("timeAdded")).ok().flatten()),
        Some(other) => {
            problem(NodeField::Taints, format!("not a list: {}", short_json(other)));
            None
        }
    };

    let ready_condition = match v.pointer("/status/conditions") {
        None | Some(Value::Null) => None,
        Some(Value::Array(conds)) => conds.iter().find(|c| c.get("type").and_then(Value::as_str) == Some("Ready")),
        Some(other) => {
            problem(NodeField::Conditions, format!("not a list: {}", short_json(other)));
            None
        }
    };
    let (ready_true, transition) = match ready_condition {
        None => (false, created),
        Some(c) => {
            let is_true = c.get("status").and_then(Value::as_str) == Some("True");
            let since = match timestamp(c.get("lastTransitionTime")) {
                Ok(Some(t)) => Some(t),
                Ok(None) => created,
                Err(reason) => {
                    problem(NodeField::ReadyTransition, reason);
                    created
                }
            };
            (is_true, since)
        }
    };
    let readiness = match (ready_true, shutdown_taint) {
        (true, None) => Readiness::Ready,
        (true, Some(added)) => Readiness::NotReady { since: added.or(transition) },
        (false, _) => Readiness::NotReady { since: transition },
    };

    Ok(NodeInfo {
        name: name.into(),
        labels: labels.into(),
        annotations: annotations.into(),
        created,
        kubelet_version: kubelet_version.map(Into::into),
        readiness,
        shutdown: shutdown_taint.is_some(),
        problems,
    })
}

/// A Lease from its JSON form.
pub(super) fn lease(v: &Value) -> Result<LeaseInfo, ObjectError> {
    let meta = v.get("metadata").ok_or_else(|| obj_err("metadata", "missing"))?;
    let name = meta
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| obj_err("metadata.name", "missing or not a string"))?;
    let namespace = meta.get("namespace").and_then(Value::as_str).unwrap_or("default");
    let mut problem = None;
    let mut read = |field: &str| match timestamp(v.pointer(&format!("/spec/{field}"))) {
        Ok(t) => t,
        Err(reason) => {
            problem = Some(format!("spec.{field}: {reason}"));
            None
        }
    };
    let renewed = read("renewTime").or_else(|| read("acquireTime"));
    Ok(LeaseInfo { namespace: namespace.to_string(), name: name.to_string(), renewed, problem })
}

fn string_map(v: Option<&Value>) -> Result<BTreeMap<String, String>, String> {
    match v {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                other => Err(format!("value of '{}' is not a string: {}", snippet(k), short_json(other))),
            })
            .collect(),
        Some(other) => Err(format!("not a map of strings: {}", short_json(other))),
    }
}

fn timestamp(v: Option<&Value>) -> Result<Option<DateTime<Utc>>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            parse_rfc3339(s).map(Some).ok_or_else(|| format!("'{}' is not an RFC 3339 timestamp", snippet(s)))
        }
        Some(other) => Err(format!("not a timestamp: {}", short_json(other))),
    }
}

fn short_json(v: &Value) -> String {
    snippet(&v.to_string())
}
