//! The Kubernetes objects of a snapshot, read with the lenient readers of `wire`: a node's
//! metadata, spec and status as far as the rules read them, Leases, Lists and documents.

use std::fmt;
use std::sync::Arc;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::super::{LeaseInfo, NodeInfo, ObjectError};
use super::*;

/// A taint: its key and when it was added.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct TaintRead {
    pub key: Scalar,
    pub time_added: Scalar,
}

#[derive(Clone, Copy)]
struct Taint;

impl<'de> ObjectSeed<'de> for Taint {
    type Value = TaintRead;
    fn visit<A: MapAccess<'de>>(self, mut map: A) -> Result<TaintRead, A::Error> {
        let mut t = TaintRead::default();
        while let Some(field) = map.next_key_seed(Field(&["key", "timeAdded"]))? {
            match field {
                Some(0) => {
                    t.key = map
                        .next_value_seed(ScalarSeed { ctx: None, keep: KeepStr::Only(super::super::SHUTDOWN_TAINT) })?
                }
                Some(1) => t.time_added = map.next_value_seed(ScalarSeed { ctx: None, keep: KeepStr::Time })?,
                _ => skip(&mut map)?,
            }
        }
        Ok(t)
    }
}

impl<'de> Element<'de> for Taint {
    fn wanted(t: &TaintRead) -> bool {
        t.key.as_str() == Some(super::super::SHUTDOWN_TAINT)
    }
}

/// A node condition: the Ready one is read.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct ConditionRead {
    pub type_: Scalar,
    pub status: Scalar,
    pub last_transition: Scalar,
}

#[derive(Clone, Copy)]
struct Condition;

impl<'de> ObjectSeed<'de> for Condition {
    type Value = ConditionRead;
    fn visit<A: MapAccess<'de>>(self, mut map: A) -> Result<ConditionRead, A::Error> {
        let mut c = ConditionRead::default();
        // Once the type is read and is not Ready, nothing else of the condition is kept: the API
        // server writes the type first, so the other conditions cost no allocation.
        let mut kept = KeepStr::Every;
        let scalar = |keep| ScalarSeed { ctx: None, keep };
        while let Some(field) = map.next_key_seed(Field(&["type", "status", "lastTransitionTime"]))? {
            match field {
                Some(0) => {
                    c.type_ = map.next_value_seed(scalar(KeepStr::Only("Ready")))?;
                    kept = if Self::wanted(&c) { KeepStr::Every } else { KeepStr::None };
                }
                // Only `True` is read of a status.
                Some(1) => c.status = map.next_value_seed(scalar(kept.and(KeepStr::Only("True"))))?,
                Some(2) => c.last_transition = map.next_value_seed(scalar(kept.and(KeepStr::Time)))?,
                _ => skip(&mut map)?,
            }
        }
        Ok(c)
    }
}

impl<'de> Element<'de> for Condition {
    fn wanted(c: &ConditionRead) -> bool {
        c.type_.as_str() == Some("Ready")
    }
}

/// `metadata`, as far as the rules read it.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct MetaRead {
    pub name: Scalar,
    pub namespace: Scalar,
    pub resource_version: Scalar,
    pub labels: MapRead,
    pub annotations: MapRead,
    pub creation: Scalar,
}

#[derive(Clone, Copy)]
struct Meta<'a>(Ctx<'a>);

impl<'de> ObjectSeed<'de> for Meta<'_> {
    type Value = MetaRead;
    fn visit<A: MapAccess<'de>>(self, mut map: A) -> Result<MetaRead, A::Error> {
        const FIELDS: &[&str] = &["name", "namespace", "resourceVersion", "labels", "annotations", "creationTimestamp"];
        let ctx = self.0;
        let mut m = MetaRead::default();
        while let Some(field) = map.next_key_seed(Field(FIELDS))? {
            match field {
                Some(0) => m.name = map.next_value()?,
                Some(1) => m.namespace = map.next_value()?,
                Some(2) => m.resource_version = map.next_value()?,
                Some(3) => m.labels = map.next_value_seed(MapSeed { ctx, keep: &ctx.keys.labels })?,
                Some(4) => m.annotations = map.next_value_seed(MapSeed { ctx, keep: &ctx.keys.annotations })?,
                Some(5) => m.creation = map.next_value_seed(ScalarSeed { ctx: None, keep: KeepStr::Time })?,
                _ => skip(&mut map)?,
            }
        }
        Ok(m)
    }
}

/// `spec`: a node's taints, a lease's times.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct SpecRead {
    pub taints: ListRead<TaintRead>,
    pub renew_time: Scalar,
    pub acquire_time: Scalar,
}

#[derive(Clone, Copy)]
struct Spec;

impl<'de> ObjectSeed<'de> for Spec {
    type Value = SpecRead;
    fn visit<A: MapAccess<'de>>(self, mut map: A) -> Result<SpecRead, A::Error> {
        let mut s = SpecRead::default();
        while let Some(field) = map.next_key_seed(Field(&["taints", "renewTime", "acquireTime"]))? {
            match field {
                Some(0) => s.taints = map.next_value_seed(FirstOf(Taint))?,
                Some(1) => s.renew_time = map.next_value()?,
                Some(2) => s.acquire_time = map.next_value()?,
                _ => skip(&mut map)?,
            }
        }
        Ok(s)
    }
}

/// `status`: a node's conditions and kubelet version.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct StatusRead {
    pub conditions: ListRead<ConditionRead>,
    pub kubelet_version: Scalar,
}

#[derive(Clone, Copy)]
struct Status<'a>(Ctx<'a>);

/// `status.nodeInfo`: the kubelet version, interned (nodes share a handful).
#[derive(Clone, Copy)]
struct NodeSystemInfo<'a>(Ctx<'a>);

impl<'de> ObjectSeed<'de> for NodeSystemInfo<'_> {
    type Value = Scalar;
    fn visit<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
        let mut version = Scalar::Null;
        while let Some(field) = map.next_key_seed(Field(&["kubeletVersion"]))? {
            match field {
                Some(0) => version = map.next_value_seed(ScalarSeed { ctx: Some(self.0), keep: KeepStr::Every })?,
                _ => skip(&mut map)?,
            }
        }
        Ok(version)
    }
}

impl<'de> ObjectSeed<'de> for Status<'_> {
    type Value = StatusRead;
    fn visit<A: MapAccess<'de>>(self, mut map: A) -> Result<StatusRead, A::Error> {
        let mut s = StatusRead::default();
        while let Some(field) = map.next_key_seed(Field(&["conditions", "nodeInfo"]))? {
            match field {
                Some(0) => s.conditions = map.next_value_seed(FirstOf(Condition))?,
                Some(1) => {
                    s.kubelet_version = map.next_value_seed(Lenient(NodeSystemInfo(self.0)))?.unwrap_or_default()
                }
                _ => skip(&mut map)?,
            }
        }
        Ok(s)
    }
}

/// A Node or a Lease (or anything with a `kind`), as far as the rules read it.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct ObjectRead {
    pub kind: Scalar,
    /// `None`: absent; `Some(None)`: not an object.
    pub metadata: Option<Option<MetaRead>>,
    /// `None`: absent or not an object.
    pub spec: Option<SpecRead>,
    pub status: Option<StatusRead>,
}

/// An item of a List, read as it streams by: a Node or a Lease is converted at once (so the
/// List is never held), an item without a kind waits for the List's kind.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ItemRead {
    Node(Result<NodeInfo, ObjectError>),
    Lease(Result<LeaseInfo, ObjectError>),
    /// Another kind (maybe empty).
    Other(String),
    /// No kind: the List's kind decides (`NodeList`, `LeaseList`).
    Kindless(Box<ObjectRead>),
}

impl From<ObjectRead> for ItemRead {
    fn from(read: ObjectRead) -> Self {
        let (node, lease) = match read.kind() {
            Some(kind) => (kind == "Node", kind == "Lease"),
            None => return ItemRead::Kindless(Box::new(read)),
        };
        match (node, lease) {
            (true, _) => ItemRead::Node(read.node()),
            (_, true) => ItemRead::Lease(read.lease()),
            _ => ItemRead::Other(read.kind().unwrap_or_default().to_string()),
        }
    }
}

/// A document of a snapshot file: an object, maybe a List (`items`), maybe `kubectl version`.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct DocRead {
    pub object: ObjectRead,
    /// `None`: absent; `Some(None)`: not a list.
    pub items: Option<Option<Vec<ItemRead>>>,
    /// `serverVersion.gitVersion`, when a string.
    pub git_version: Option<Arc<str>>,
}

/// Reads an object (or a document, with `items`) with what `ctx` keeps.
#[derive(Clone, Copy)]
pub(crate) struct Object<'a>(pub Ctx<'a>);

impl<'a> Object<'a> {
    fn field<'de, A: MapAccess<'de>>(self, map: &mut A, o: &mut ObjectRead, field: usize) -> Result<(), A::Error> {
        match field {
            0 => o.kind = map.next_value()?,
            1 => o.metadata = Some(map.next_value_seed(Lenient(Meta(self.0)))?),
            2 => o.spec = map.next_value_seed(Lenient(Spec))?,
            _ => o.status = map.next_value_seed(Lenient(Status(self.0)))?,
        }
        Ok(())
    }
}

const OBJECT_FIELDS: &[&str] = &["kind", "metadata", "spec", "status", "items", "serverVersion"];

impl<'de> ObjectSeed<'de> for Object<'_> {
    type Value = ObjectRead;
    fn visit<A: MapAccess<'de>>(self, mut map: A) -> Result<ObjectRead, A::Error> {
        let mut o = ObjectRead::default();
        while let Some(field) = map.next_key_seed(Field(&OBJECT_FIELDS[..4]))? {
            match field {
                Some(i) => self.field(&mut map, &mut o, i)?,
                None => skip(&mut map)?,
            }
        }
        Ok(o)
    }
}

impl<'de> DeserializeSeed<'de> for Object<'_> {
    type Value = Option<ObjectRead>;
    /// `None` when the value is not an object.
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<ObjectRead>, D::Error> {
        Lenient(self).deserialize(d)
    }
}

/// Reads a document of a snapshot file.
#[derive(Clone, Copy)]
pub(crate) struct Document<'a>(pub Ctx<'a>);

struct Items<'a>(Ctx<'a>);

impl<'de> DeserializeSeed<'de> for Items<'_> {
    type Value = Option<Vec<ItemRead>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Items<'_> {
    type Value = Option<Vec<ItemRead>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Object(self.0))? {
            items.push(ItemRead::from(item.unwrap_or_default()));
        }
        Ok(Some(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    scalars_are_none!();
}

#[derive(Clone, Copy)]
struct ServerVersion;

impl<'de> ObjectSeed<'de> for ServerVersion {
    type Value = Option<Arc<str>>;
    fn visit<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut version = None;
        while let Some(field) = map.next_key_seed(Field(&["gitVersion"]))? {
            match field {
                Some(0) => version = map.next_value::<Scalar>()?.as_str().map(Arc::from),
                _ => skip(&mut map)?,
            }
        }
        Ok(version)
    }
}

impl<'de> ObjectSeed<'de> for Document<'_> {
    type Value = DocRead;
    fn visit<A: MapAccess<'de>>(self, mut map: A) -> Result<DocRead, A::Error> {
        let mut doc = DocRead::default();
        while let Some(field) = map.next_key_seed(Field(OBJECT_FIELDS))? {
            match field {
                Some(4) => doc.items = Some(map.next_value_seed(Items(self.0))?),
                Some(5) => doc.git_version = map.next_value_seed(Lenient(ServerVersion))?.flatten(),
                Some(i) => Object(self.0).field(&mut map, &mut doc.object, i)?,
                None => skip(&mut map)?,
            }
        }
        Ok(doc)
    }
}

impl<'de> DeserializeSeed<'de> for Document<'_> {
    type Value = DocRead;
    /// A document that is not an object reads as one without a kind.
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<DocRead, D::Error> {
        Lenient(self).deserialize(d).map(Option::unwrap_or_default)
    }
}
