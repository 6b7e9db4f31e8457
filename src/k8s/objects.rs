//! Nodes and Leases as the operator caches them: only what the rules read, parsed leniently.
//!
//! `CachedNode` is a `kube::Resource` that deserialises straight from the API's JSON into a
//! `NodeInfo`: no managedFields, no `status.images`, no other status. Garbage inside a node
//! becomes a problem of that node (a finding), so it never stalls a watch; only an object
//! without a name fails, and the watcher skips it (see `controller`).

use std::borrow::Cow;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::{ClusterResourceScope, NamespaceResourceScope};
use kube::Resource;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::snapshot::{LeaseInfo, NodeInfo};

/// A Node, trimmed to what the rules read.
#[derive(Clone, Debug)]
pub struct CachedNode {
    /// Name and resourceVersion only.
    pub metadata: ObjectMeta,
    /// What the rules read.
    pub info: Arc<NodeInfo>,
}

/// A Lease, trimmed to what the rules read.
#[derive(Clone, Debug)]
pub struct CachedLease {
    /// Name, namespace and resourceVersion only.
    pub metadata: ObjectMeta,
    /// What the rules read.
    pub info: LeaseInfo,
}

fn slim_meta(v: &Value) -> ObjectMeta {
    let s = |k: &str| v.pointer(&format!("/metadata/{k}")).and_then(Value::as_str).map(str::to_string);
    ObjectMeta {
        name: s("name"),
        namespace: s("namespace"),
        resource_version: s("resourceVersion"),
        uid: s("uid"),
        ..Default::default()
    }
}

impl<'de> Deserialize<'de> for CachedNode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let info = NodeInfo::from_value(&v).map_err(serde::de::Error::custom)?;
        Ok(CachedNode { metadata: slim_meta(&v), info: Arc::new(info) })
    }
}

impl<'de> Deserialize<'de> for CachedLease {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let info = LeaseInfo::from_value(&v).map_err(serde::de::Error::custom)?;
        Ok(CachedLease { metadata: slim_meta(&v), info })
    }
}

impl Resource for CachedNode {
    type DynamicType = ();
    type Scope = ClusterResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "Node".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "nodes".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl Resource for CachedLease {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "Lease".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "coordination.k8s.io".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "leases".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_with_garbage_still_deserialises_and_nameless_fails() {
        let n: CachedNode = serde_json::from_str(
            r#"{"metadata": {"name": "n", "resourceVersion": "7", "managedFields": [{}]},
                "status": {"images": [{"names": ["x"]}], "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "never"}]}}"#,
        )
        .unwrap();
        assert_eq!(n.metadata.resource_version.as_deref(), Some("7"));
        assert!(n.metadata.managed_fields.is_none());
        assert_eq!(n.info.problems.len(), 1);
        assert!(serde_json::from_str::<CachedNode>(r#"{"metadata": {}}"#).is_err());
    }
}
