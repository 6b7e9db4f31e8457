//! Nodes and Leases as the operator and `check` read them from the API: only what the rules
//! read, parsed leniently, straight from the JSON stream (`snapshot::wire`: no `Value`, no
//! managedFields, no `status.images`).
//!
//! Reading never fails for an object: garbage inside a node becomes a problem of that node (a
//! finding), and a node without a name reads as an error value the caller skips and counts.
//! So one malformed object cannot stall a watch, without kube's `DeserializeGuard` (which
//! buffers every object twice).

use std::borrow::Cow;
use std::future::Future;
use std::sync::{Arc, LazyLock};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::{ClusterResourceScope, NamespaceResourceScope};
use kube::Resource;
use serde::de::{DeserializeSeed, Error as _};
use serde::{Deserialize, Deserializer};

use crate::snapshot::wire::{Ctx, Object, ObjectRead};
use crate::snapshot::{LeaseInfo, NodeInfo, NodeKeys, ObjectError};

/// A Node, trimmed to what the rules read, with the labels and annotations of
/// [`CachedNode::reading`] (every one outside it; the node cache keeps those policies read).
#[derive(Clone, Debug)]
pub struct CachedNode {
    /// Name and resourceVersion only (what the watcher needs).
    pub metadata: ObjectMeta,
    /// What the rules read, or why the node cannot be used.
    pub info: Result<NodeInfo, ObjectError>,
}

/// A Lease, trimmed to what the rules read. A Lease without a name fails to read (the
/// operator watches a handful of Leases through `DeserializeGuard`, which skips it).
#[derive(Clone, Debug)]
pub struct CachedLease {
    /// Name, namespace and resourceVersion only.
    pub metadata: ObjectMeta,
    /// What the rules read.
    pub info: LeaseInfo,
}

static ALL: LazyLock<NodeKeys> = LazyLock::new(NodeKeys::all);

tokio::task_local! {
    /// The labels and annotations the nodes a task reads keep.
    static NODE_KEYS: Arc<NodeKeys>;
}

impl CachedNode {
    /// Runs `task` with the nodes it reads keeping only the labels and annotations `keys`
    /// names: the others are skipped by the parser, not allocated and dropped (a heartbeat of a
    /// node with a hundred labels then allocates a handful of strings). A watch's nodes are
    /// read while its stream is polled, so the stream must be polled inside `task`.
    pub fn reading<F: Future>(keys: Arc<NodeKeys>, task: F) -> impl Future<Output = F::Output> {
        NODE_KEYS.scope(keys, task)
    }
}

/// Reads an object, keeping the labels and annotations `keys` names; only a value that is not
/// an object at all fails.
fn read<'de, D: Deserializer<'de>>(d: D, what: &str, keys: &NodeKeys) -> Result<(ObjectMeta, ObjectRead), D::Error> {
    let read = Object(Ctx { keys, interner: None })
        .deserialize(d)?
        .ok_or_else(|| D::Error::custom(format!("a {what} is an object")))?;
    let metadata = ObjectMeta {
        name: read.name().map(str::to_string),
        namespace: read.namespace().map(str::to_string),
        resource_version: read.resource_version().map(str::to_string),
        ..Default::default()
    };
    Ok((metadata, read))
}

impl<'de> Deserialize<'de> for CachedNode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let keys = NODE_KEYS.try_with(Arc::clone).ok();
        let (metadata, read) = read(d, "Node", keys.as_deref().unwrap_or(&ALL))?;
        Ok(CachedNode { metadata, info: read.node() })
    }
}

impl<'de> Deserialize<'de> for CachedLease {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (metadata, read) = read(d, "Lease", &ALL)?;
        Ok(CachedLease { metadata, info: read.lease().map_err(D::Error::custom)? })
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
    fn a_node_with_garbage_still_reads_and_a_nameless_one_reads_as_an_error() {
        let n: CachedNode = serde_json::from_str(
            r#"{"metadata": {"name": "n", "resourceVersion": "7", "managedFields": [{}]},
                "status": {"images": [{"names": ["x"]}], "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "never"}]}}"#,
        )
        .unwrap();
        assert_eq!(n.metadata.resource_version.as_deref(), Some("7"));
        assert!(n.metadata.managed_fields.is_none());
        assert_eq!(n.info.unwrap().problems.len(), 1);
        let nameless: CachedNode = serde_json::from_str(r#"{"metadata": {"resourceVersion": "8"}}"#).unwrap();
        assert_eq!(nameless.info.unwrap_err().field, "metadata.name");
        assert_eq!(nameless.metadata.resource_version.as_deref(), Some("8"), "the watch still moves on");
        assert!(serde_json::from_str::<CachedNode>("[]").is_err());
    }

    #[tokio::test]
    async fn nodes_read_for_a_task_keep_only_its_keys() {
        let json = r#"{"metadata": {"name": "n", "labels": {"agentpool": "a", "kubernetes.io/os": "linux"},
                        "annotations": {"note": "x", "other": "y"}}}"#;
        let labels = |n: CachedNode| {
            let info = n.info.unwrap();
            (info.labels.len(), info.annotations.iter().map(|(k, _)| k.to_string()).collect::<Vec<_>>())
        };
        let mut keys = NodeKeys::none();
        keys.label("agentpool").annotation("note");
        let read = CachedNode::reading(Arc::new(keys), async { serde_json::from_str::<CachedNode>(json).unwrap() });
        assert_eq!(labels(read.await), (1, vec!["note".to_string()]));
        assert_eq!(labels(serde_json::from_str(json).unwrap()).0, 2, "outside a task's keys, every label is read");
    }
}
