//! The lenient readers: a Node or a Lease from what `wire` read of it. Only an object without
//! a usable name fails; every other garbage field becomes a problem of that object.

use chrono::{DateTime, Utc};
use serde::de::DeserializeSeed;
use serde_json::Value;

use super::labels::{Labels, NodeKeys};
use super::wire::{Ctx, ListRead, MapRead, Object, ObjectRead, Scalar};
use super::{LeaseInfo, NodeField, NodeInfo, NodeProblem, ObjectError, Readiness};
use crate::text::snippet;
use crate::time::parse_rfc3339;

fn obj_err(field: &str, reason: impl Into<String>) -> ObjectError {
    ObjectError { field: field.to_string(), reason: reason.into() }
}

impl NodeInfo {
    /// Reads a Node from its JSON form, with every label and annotation. Fails only when the
    /// object has no usable name; every other garbage field becomes a `NodeProblem`.
    pub fn from_value(v: &Value) -> Result<NodeInfo, ObjectError> {
        NodeInfo::from_value_keeping(v, &NodeKeys::all())
    }

    /// [`NodeInfo::from_value`], keeping only the labels and annotations of `keys`.
    pub fn from_value_keeping(v: &Value, keys: &NodeKeys) -> Result<NodeInfo, ObjectError> {
        read_value(v, keys)?.node()
    }
}

impl LeaseInfo {
    /// Reads a Lease from its JSON form. Fails only without a name.
    pub fn from_value(v: &Value) -> Result<LeaseInfo, ObjectError> {
        read_value(v, &NodeKeys::none())?.lease()
    }
}

fn read_value(v: &Value, keys: &NodeKeys) -> Result<ObjectRead, ObjectError> {
    let read = Object(Ctx { keys, interner: None }).deserialize(v);
    // A Value always deserializes; only a value that is not an object has no metadata.
    read.ok().flatten().ok_or_else(|| obj_err("metadata", "missing"))
}

impl ObjectRead {
    /// The object's `metadata` with a usable name.
    fn named(&mut self) -> Result<(std::sync::Arc<str>, &mut super::wire::MetaRead), ObjectError> {
        let meta = match &mut self.metadata {
            None => return Err(obj_err("metadata", "missing")),
            Some(None) => return Err(obj_err("metadata.name", "missing or not a string")),
            Some(Some(meta)) => meta,
        };
        match &meta.name {
            Scalar::Str(name) if !name.is_empty() => Ok((name.clone(), meta)),
            _ => Err(obj_err("metadata.name", "missing or not a string")),
        }
    }

    /// The Node this object is.
    pub(crate) fn node(mut self) -> Result<NodeInfo, ObjectError> {
        let (name, meta) = self.named()?;
        let mut problems = Vec::new();
        let mut problem = |field: NodeField, reason: String| problems.push(NodeProblem { field, reason });
        let labels = string_map(std::mem::take(&mut meta.labels)).unwrap_or_else(|reason| {
            problem(NodeField::Labels, reason);
            Labels::new()
        });
        let annotations = string_map(std::mem::take(&mut meta.annotations)).unwrap_or_else(|reason| {
            problem(NodeField::Annotations, reason);
            Labels::new()
        });
        let created = timestamp(&meta.creation).unwrap_or_else(|reason| {
            problem(NodeField::CreationTimestamp, reason);
            None
        });
        let (spec, status) = (self.spec.unwrap_or_default(), self.status.unwrap_or_default());
        let kubelet_version = match status.kubelet_version {
            Scalar::Str(s) => Some(s),
            Scalar::Other(other) => {
                problem(NodeField::KubeletVersion, format!("not a string: {}", short_json(&other)));
                None
            }
            Scalar::Null | Scalar::Dropped | Scalar::Time(_) => None,
        };
        let shutdown_taint = match spec.taints {
            ListRead::Null => None,
            ListRead::List(first) => first.map(|t| timestamp(&t.time_added).ok().flatten()),
            ListRead::Other(other) => {
                problem(NodeField::Taints, format!("not a list: {}", short_json(&other)));
                None
            }
        };
        let ready_condition = match status.conditions {
            ListRead::Null => None,
            ListRead::List(first) => first,
            ListRead::Other(other) => {
                problem(NodeField::Conditions, format!("not a list: {}", short_json(&other)));
                None
            }
        };
        let (ready_true, transition) = match ready_condition {
            None => (false, created),
            Some(c) => {
                let since = match timestamp(&c.last_transition) {
                    Ok(Some(t)) => Some(t),
                    Ok(None) => created,
                    Err(reason) => {
                        problem(NodeField::ReadyTransition, reason);
                        created
                    }
                };
                (c.status.as_str() == Some("True"), since)
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

    /// The Lease this object is.
    pub(crate) fn lease(mut self) -> Result<LeaseInfo, ObjectError> {
        let (name, meta) = self.named()?;
        let namespace = meta.namespace.as_str().unwrap_or("default").to_string();
        let spec = self.spec.unwrap_or_default();
        let mut problem = None;
        let mut read = |field: &str, value: &Scalar| match timestamp(value) {
            Ok(t) => t,
            Err(reason) => {
                problem = Some(format!("spec.{field}: {reason}"));
                None
            }
        };
        let renewed = read("renewTime", &spec.renew_time).or_else(|| read("acquireTime", &spec.acquire_time));
        Ok(LeaseInfo { namespace, name: name.to_string(), renewed, problem })
    }

    /// `kind`, when a string.
    pub(crate) fn kind(&self) -> Option<&str> {
        self.kind.as_str()
    }

    /// `metadata.resourceVersion`, when a string.
    pub(crate) fn resource_version(&self) -> Option<&str> {
        self.metadata.as_ref()?.as_ref()?.resource_version.as_str()
    }

    /// `metadata.name`, when a string.
    pub(crate) fn name(&self) -> Option<&str> {
        self.metadata.as_ref()?.as_ref()?.name.as_str()
    }

    /// `metadata.namespace`, when a string.
    pub(crate) fn namespace(&self) -> Option<&str> {
        self.metadata.as_ref()?.as_ref()?.namespace.as_str()
    }
}

fn string_map(read: MapRead) -> Result<Labels, String> {
    match read {
        MapRead::Null => Ok(Labels::new()),
        MapRead::Map { kept, bad } => match bad.first_key_value() {
            None => Ok(kept),
            Some((k, v)) => Err(format!("value of '{}' is not a string: {}", snippet(k), short_json(v))),
        },
        MapRead::Other(other) => Err(format!("not a map of strings: {}", short_json(&other))),
    }
}

fn timestamp(v: &Scalar) -> Result<Option<DateTime<Utc>>, String> {
    match v {
        Scalar::Null | Scalar::Dropped => Ok(None),
        Scalar::Time(t) => Ok(Some(*t)),
        Scalar::Str(s) => {
            parse_rfc3339(s).map(Some).ok_or_else(|| format!("'{}' is not an RFC 3339 timestamp", snippet(s)))
        }
        Scalar::Other(other) => Err(format!("not a timestamp: {}", short_json(other))),
    }
}

fn short_json(v: &Value) -> String {
    snippet(&v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::SHUTDOWN_TAINT;
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

    /// `value` with a usable name, so that the other fields are reached.
    fn named(v: &Value, name: &str) -> Value {
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
        with_name
    }

    /// Reads `text` as the operator's watch and `check` do: streamed, never held as a `Value`.
    fn streamed(text: &str, keys: &NodeKeys) -> (Result<NodeInfo, ObjectError>, Result<LeaseInfo, ObjectError>) {
        let mut de = serde_json::Deserializer::from_reader(text.as_bytes());
        let read = Object(Ctx { keys, interner: None }).deserialize(&mut de).unwrap();
        let read = read.ok_or_else(|| obj_err("metadata", "missing"));
        (read.clone().and_then(ObjectRead::node), read.and_then(ObjectRead::lease))
    }

    /// As the API server writes a condition (its type first), and in any other order: the
    /// Ready one is read whole, the others skipped.
    #[test]
    fn the_ready_condition_is_read_in_any_field_order() {
        let node = |conditions: &str| {
            let text = format!(r#"{{"metadata": {{"name": "n"}}, "status": {{"conditions": [{conditions}]}}}}"#);
            streamed(&text, &NodeKeys::none()).0.unwrap()
        };
        let since = |n: NodeInfo| match n.readiness {
            Readiness::NotReady { since } => (false, since, n.problems),
            _ => (true, None, n.problems),
        };
        let pressure = r#"{"type": "MemoryPressure", "status": "True", "lastTransitionTime": "junk"}"#;
        for ready in [
            r#"{"type": "Ready", "status": "False", "lastTransitionTime": "2026-03-01T00:00:00Z"}"#,
            r#"{"lastTransitionTime": "2026-03-01T00:00:00Z", "status": "False", "type": "Ready"}"#,
        ] {
            assert_eq!(since(node(&format!("{pressure}, {ready}"))), (false, Some(ts("2026-03-01T00:00:00Z")), vec![]));
        }
        let ready_true = r#"{"status": "True", "type": "Ready", "lastTransitionTime": "2026-03-01T00:00:00Z"}"#;
        assert!(since(node(ready_true)).0, "Ready and True");
        let bad_time = node(r#"{"type": "Ready", "status": "False", "lastTransitionTime": "yesterday"}"#);
        assert_eq!(bad_time.problems[0].field, NodeField::ReadyTransition);
        assert_eq!(bad_time.problems[0].reason, "'yesterday' is not an RFC 3339 timestamp");
    }

    #[test]
    fn only_the_kept_labels_and_annotations_are_kept_and_garbage_in_others_still_counts() {
        let v = json!({"metadata": {"name": "n", "labels": {"pool": "a", "zone": "1", "host": "n"},
                       "annotations": {"image": "x", "csi": "{}"}}});
        let mut keys = NodeKeys::none();
        keys.label("pool").annotation("image");
        let n = NodeInfo::from_value_keeping(&v, &keys).unwrap();
        assert_eq!(n.labels.iter().collect::<Vec<_>>(), [("pool", "a")]);
        assert_eq!(n.annotations.iter().collect::<Vec<_>>(), [("image", "x")]);
        let bad = json!({"metadata": {"name": "n", "labels": {"pool": "a", "zone": 3}}});
        let n = NodeInfo::from_value_keeping(&bad, &keys).unwrap();
        assert_eq!(n.problems[0].reason, "value of 'zone' is not a string: 3");
        assert!(n.labels.is_empty());
    }

    proptest::proptest! {
        /// Whatever a cluster or a file hands us, reading a node or a lease never panics, and
        /// reads what the reader before streaming read.
        #[test]
        fn readers_read_what_the_value_readers_read(v in arb_json(), name in "[a-z]{1,5}") {
            for v in [v.clone(), named(&v, &name)] {
                proptest::prop_assert_eq!(NodeInfo::from_value(&v), super::super::reference::node(&v));
                proptest::prop_assert_eq!(LeaseInfo::from_value(&v), super::super::reference::lease(&v));
            }
        }

        /// Streamed from JSON text, an object reads as from its `Value`, with the same kept keys.
        #[test]
        fn streaming_reads_what_the_value_reads(v in arb_json(), name in "[a-z]{1,5}", keep_all in proptest::bool::ANY) {
            let mut keys = NodeKeys::none();
            keys.label("labels").annotation("name");
            let keys = if keep_all { NodeKeys::all() } else { keys };
            for v in [v.clone(), named(&v, &name)] {
                let (node, lease) = streamed(&v.to_string(), &keys);
                proptest::prop_assert_eq!(node, NodeInfo::from_value_keeping(&v, &keys));
                proptest::prop_assert_eq!(lease, LeaseInfo::from_value(&v));
            }
        }
    }
}
