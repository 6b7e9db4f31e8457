//! The lenient readers: a Node or a Lease from its JSON form. Only an object without a usable
//! name fails; every other garbage field becomes a problem of that object.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{LeaseInfo, NodeField, NodeInfo, NodeProblem, ObjectError, Readiness, SHUTDOWN_TAINT};
use crate::text::snippet;
use crate::time::parse_rfc3339;

fn obj_err(field: &str, reason: impl Into<String>) -> ObjectError {
    ObjectError { field: field.to_string(), reason: reason.into() }
}

impl NodeInfo {
    /// Reads a Node from its JSON form. Fails only when the object has no usable name;
    /// every other garbage field becomes a `NodeProblem`.
    pub fn from_value(v: &Value) -> Result<NodeInfo, ObjectError> {
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
            name,
            labels,
            annotations,
            created,
            kubelet_version,
            readiness,
            shutdown: shutdown_taint.is_some(),
            problems,
        })
    }
}

impl LeaseInfo {
    /// Reads a Lease from its JSON form. Fails only without a name.
    pub fn from_value(v: &Value) -> Result<LeaseInfo, ObjectError> {
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
}

fn string_map(v: Option<&Value>) -> Result<BTreeMap<String, String>, String> {
    match v {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                other => Err(format!("value of '{k}' is not a string: {}", short_json(other))),
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ts(s: &str) -> DateTime<Utc> {
        parse_rfc3339(s).unwrap()
    }

    fn node(conditions: Value, taints: Value) -> Value {
        json!({
            "metadata": {"name": "n1", "creationTimestamp": "2026-01-01T00:00:00Z", "labels": {"a": "b"}},
            "spec": {"taints": taints},
            "status": {"conditions": conditions, "nodeInfo": {"kubeletVersion": "v1.31.4"}}
        })
    }

    #[test]
    fn ready_node() {
        let n = NodeInfo::from_value(&node(
            json!([{"type": "Ready", "status": "True", "lastTransitionTime": "2026-02-01T00:00:00Z"}]),
            Value::Null,
        ))
        .unwrap();
        assert_eq!(n.readiness, Readiness::Ready);
        assert_eq!(n.kubelet_version.as_deref(), Some("v1.31.4"));
        assert!(n.problems.is_empty());
    }

    #[test]
    fn not_ready_since_the_transition_and_unknown_counts_as_not_ready() {
        for status in ["False", "Unknown"] {
            let n = NodeInfo::from_value(&node(
                json!([{"type": "Ready", "status": status, "lastTransitionTime": "2026-02-01T00:00:00Z"}]),
                Value::Null,
            ))
            .unwrap();
            assert_eq!(n.readiness, Readiness::NotReady { since: Some(ts("2026-02-01T00:00:00Z")) });
        }
    }

    #[test]
    fn absent_ready_condition_counts_from_creation() {
        let n = NodeInfo::from_value(&node(json!([]), Value::Null)).unwrap();
        assert_eq!(n.readiness, Readiness::NotReady { since: Some(ts("2026-01-01T00:00:00Z")) });
    }

    #[test]
    fn shutdown_taint_makes_a_ready_node_not_ready() {
        let n = NodeInfo::from_value(&node(
            json!([{"type": "Ready", "status": "True", "lastTransitionTime": "2026-02-01T00:00:00Z"}]),
            json!([{"key": SHUTDOWN_TAINT, "effect": "NoSchedule", "timeAdded": "2026-03-01T00:00:00Z"}]),
        ))
        .unwrap();
        assert!(n.shutdown);
        assert_eq!(n.readiness, Readiness::NotReady { since: Some(ts("2026-03-01T00:00:00Z")) });
    }

    #[test]
    fn garbage_fields_become_problems_not_errors() {
        let v = json!({
            "metadata": {"name": "bad", "creationTimestamp": "yesterday", "labels": ["x"]},
            "status": {
                "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": 42}],
                "nodeInfo": {"kubeletVersion": {"major": 1}}
            }
        });
        let n = NodeInfo::from_value(&v).unwrap();
        let fields: Vec<_> = n.problems.iter().map(|p| p.field.path()).collect();
        assert_eq!(
            fields,
            [
                "metadata.labels",
                "metadata.creationTimestamp",
                "status.nodeInfo.kubeletVersion",
                "status.conditions[Ready].lastTransitionTime"
            ]
        );
        assert_eq!(n.readiness, Readiness::NotReady { since: None });
    }

    #[test]
    fn nameless_objects_are_rejected_with_the_field() {
        let err = NodeInfo::from_value(&json!({"metadata": {}})).unwrap_err();
        assert_eq!(err.field, "metadata.name");
        assert!(NodeInfo::from_value(&json!("node")).is_err());
        assert!(LeaseInfo::from_value(&json!({"metadata": {"name": ""}})).is_err());
    }

    #[test]
    fn lease_renew_time_falls_back_to_acquire_time() {
        let l = LeaseInfo::from_value(&json!({
            "metadata": {"name": "hb", "namespace": "arc"},
            "spec": {"acquireTime": "2026-01-01T00:00:00.000000Z"}
        }))
        .unwrap();
        assert_eq!(l.renewed, Some(ts("2026-01-01T00:00:00Z")));
        let l = LeaseInfo::from_value(&json!({"metadata": {"name": "hb"}, "spec": {"renewTime": "soon"}})).unwrap();
        assert_eq!(l.renewed, None);
        assert!(l.problem.unwrap().contains("spec.renewTime"));
    }

    fn arb_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "\\PC{0,20}".prop_map(Value::String),
            prop::sample::select(vec!["Ready", "True", "False", "2026-01-01T00:00:00Z", "v1.31.4", SHUTDOWN_TAINT])
                .prop_map(|s| Value::String(s.to_string())),
        ];
        leaf.prop_recursive(4, 64, 6, |inner| {
            let keys = prop::sample::select(vec![
                "metadata",
                "name",
                "labels",
                "annotations",
                "creationTimestamp",
                "status",
                "conditions",
                "type",
                "status",
                "lastTransitionTime",
                "nodeInfo",
                "kubeletVersion",
                "spec",
                "taints",
                "key",
                "timeAdded",
                "renewTime",
                "acquireTime",
                "namespace",
            ]);
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(keys.prop_map(str::to_string), inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// Whatever a cluster or a file hands us, reading a node or a lease never panics.
        #[test]
        fn readers_never_panic_on_arbitrary_json(v in arb_json(), name in "[a-z]{1,5}") {
            let _ = NodeInfo::from_value(&v);
            let _ = LeaseInfo::from_value(&v);
            // Also with a valid name, so the other fields are reached.
            let mut with_name = v.clone();
            if let Value::Object(m) = &mut with_name {
                m.insert("metadata".into(), json!({"name": name}));
                if let Some(meta) = v.get("metadata").and_then(Value::as_object) {
                    for (k, val) in meta {
                        if k != "name" {
                            m["metadata"][k] = val.clone();
                        }
                    }
                }
            }
            let _ = NodeInfo::from_value(&with_name);
            let _ = LeaseInfo::from_value(&with_name);
        }
    }
}
