//! Nodes and Leases read straight from their serialized form (a JSON stream from the API or a
//! file, or a `serde_json::Value`) into the few fields the rules read. Every other field is
//! skipped as it is read (`IgnoredAny`: `managedFields`, `status.images` cost no allocation),
//! labels and annotations no policy reads are checked and dropped, kept strings are interned.
//!
//! Every level is lenient: a field of the wrong type is kept as a small `Value` for the
//! message that says so (see `read`), so garbage inside one object never fails the stream.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

use super::labels::{Interner, Keep, Labels, NodeKeys};
use super::{LeaseInfo, NodeInfo, ObjectError};

/// The `visit_*` methods of a lenient visitor for every value that is not the one it reads
/// (null, a boolean, a number, a string): `None`, nothing read, nothing failed.
macro_rules! scalars_are_none {
    () => {
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok(None)
        }
    };
}

/// What readers share: which keys to keep, and where to intern kept strings.
#[derive(Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub keys: &'a NodeKeys,
    pub interner: Option<&'a RefCell<Interner>>,
}

impl Ctx<'_> {
    fn shared(&self, s: &str) -> Arc<str> {
        match self.interner {
            Some(i) => i.borrow_mut().intern(s),
            None => Arc::from(s),
        }
    }
}

/// A field that should hold a string: absent or null, a string, or anything else.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) enum Scalar {
    #[default]
    Null,
    Str(Arc<str>),
    /// A string that was not kept.
    Dropped,
    Other(Value),
}

impl Scalar {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Scalar::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Reads a [`Scalar`]; a string is kept only with `keep` (else it is `Dropped`).
struct ScalarSeed<'a> {
    ctx: Option<Ctx<'a>>,
    keep: bool,
}

impl<'de> DeserializeSeed<'de> for ScalarSeed<'_> {
    type Value = Scalar;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Scalar, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ScalarSeed<'_> {
    type Value = Scalar;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_unit<E>(self) -> Result<Scalar, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E>(self) -> Result<Scalar, E> {
        Ok(Scalar::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Scalar, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_str<E>(self, s: &str) -> Result<Scalar, E> {
        Ok(match (self.keep, self.ctx) {
            (false, _) => Scalar::Dropped,
            (true, Some(ctx)) => Scalar::Str(ctx.shared(s)),
            (true, None) => Scalar::Str(Arc::from(s)),
        })
    }
    fn visit_bool<E>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar::Other(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::Other(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar::Other(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Scalar, E> {
        Ok(Scalar::Other(v.into()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Scalar, A::Error> {
        Value::deserialize(SeqAccessDeserializer::new(seq)).map(Scalar::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Scalar, A::Error> {
        Value::deserialize(MapAccessDeserializer::new(map)).map(Scalar::Other)
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Scalar, D::Error> {
        ScalarSeed { ctx: None, keep: true }.deserialize(d)
    }
}

/// The position of a map key in `names`, or `None` for any other key (read without allocating).
struct Field(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for Field {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Field {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E>(self, s: &str) -> Result<Option<usize>, E> {
        Ok(self.0.iter().position(|n| *n == s))
    }
}

/// Reads the fields of an object from a map; `Lenient` turns anything else into `None`.
trait ObjectSeed<'de>: Sized {
    type Value;
    fn visit<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error>;
}

/// An object, or `None` when the value is anything else (null, a list, a string).
struct Lenient<S>(S);

impl<'de, S: ObjectSeed<'de>> DeserializeSeed<'de> for Lenient<S> {
    type Value = Option<S::Value>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, S: ObjectSeed<'de>> Visitor<'de> for Lenient<S> {
    type Value = Option<S::Value>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.0.visit(map).map(Some)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    scalars_are_none!();
}

/// Labels or annotations as found.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) enum MapRead {
    /// Absent or null.
    #[default]
    Null,
    /// A map: the kept keys, and the keys whose value is not a string (with that value).
    Map { kept: Labels, bad: BTreeMap<String, Value> },
    /// Not a map.
    Other(Value),
}

struct MapSeed<'a> {
    ctx: Ctx<'a>,
    keep: &'a Keep,
}

impl<'de> DeserializeSeed<'de> for MapSeed<'_> {
    type Value = MapRead;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<MapRead, D::Error> {
        d.deserialize_any(self)
    }
}

/// A map key: its text goes to `text` (a buffer reused for every key: no allocation), and
/// its shared copy is returned when it is kept.
struct Key<'a> {
    ctx: Ctx<'a>,
    keep: &'a Keep,
    text: &'a RefCell<String>,
}

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = Option<Arc<str>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = Option<Arc<str>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        let mut text = self.text.borrow_mut();
        text.clear();
        text.push_str(s);
        Ok(self.keep.keeps(s).then(|| self.ctx.shared(s)))
    }
}

impl<'de> Visitor<'de> for MapSeed<'_> {
    type Value = MapRead;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map of strings")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MapRead, A::Error> {
        let mut kept = Labels::new();
        // Keys whose (last) value is not a string: the smallest is reported, as a map orders them.
        let mut bad: BTreeMap<String, Value> = BTreeMap::new();
        let text = RefCell::new(String::new());
        while let Some(shared) = map.next_key_seed(Key { ctx: self.ctx, keep: self.keep, text: &text })? {
            let value = map.next_value_seed(ScalarSeed { ctx: Some(self.ctx), keep: shared.is_some() })?;
            let key = text.borrow();
            match value {
                Scalar::Str(v) => {
                    if !bad.is_empty() {
                        bad.remove(key.as_str());
                    }
                    if let Some(k) = &shared {
                        kept.insert(k.clone(), v);
                    }
                }
                Scalar::Dropped => {
                    if !bad.is_empty() {
                        bad.remove(key.as_str());
                    }
                }
                Scalar::Null => {
                    bad.insert(key.clone(), Value::Null);
                }
                Scalar::Other(v) => {
                    bad.insert(key.clone(), v);
                }
            }
            if let (Some(k), true) = (&shared, bad.contains_key(key.as_str())) {
                kept.retain(|x| x != &**k);
            }
        }
        Ok(MapRead::Map { kept, bad })
    }
    fn visit_unit<E>(self) -> Result<MapRead, E> {
        Ok(MapRead::Null)
    }
    fn visit_none<E>(self) -> Result<MapRead, E> {
        Ok(MapRead::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<MapRead, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_str<E>(self, s: &str) -> Result<MapRead, E> {
        Ok(MapRead::Other(Value::String(s.to_string())))
    }
    fn visit_bool<E>(self, v: bool) -> Result<MapRead, E> {
        Ok(MapRead::Other(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<MapRead, E> {
        Ok(MapRead::Other(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<MapRead, E> {
        Ok(MapRead::Other(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<MapRead, E> {
        Ok(MapRead::Other(v.into()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<MapRead, A::Error> {
        Value::deserialize(SeqAccessDeserializer::new(seq)).map(MapRead::Other)
    }
}

/// A list field (taints, conditions) as found: absent or null, the first element that matters,
/// or not a list.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) enum ListRead<T> {
    #[default]
    Null,
    List(Option<T>),
    Other(Value),
}

/// Reads a list, keeping its first object that `S` accepts.
struct FirstOf<S>(S);

/// An element type of a list field.
trait Element<'de>: ObjectSeed<'de> + Copy {
    fn wanted(value: &Self::Value) -> bool;
}

impl<'de, S: Element<'de>> DeserializeSeed<'de> for FirstOf<S> {
    type Value = ListRead<S::Value>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, S: Element<'de>> Visitor<'de> for FirstOf<S> {
    type Value = ListRead<S::Value>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut first = None;
        while let Some(element) = seq.next_element_seed(Lenient(self.0))? {
            if first.is_none() {
                first = element.filter(S::wanted);
            }
        }
        Ok(ListRead::List(first))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(ListRead::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(ListRead::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(ListRead::Other(Value::String(s.to_string())))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(ListRead::Other(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(ListRead::Other(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(ListRead::Other(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(ListRead::Other(v.into()))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        Value::deserialize(MapAccessDeserializer::new(map)).map(ListRead::Other)
    }
}

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
                Some(0) => t.key = map.next_value()?,
                Some(1) => t.time_added = map.next_value()?,
                _ => skip(&mut map)?,
            }
        }
        Ok(t)
    }
}

impl<'de> Element<'de> for Taint {
    fn wanted(t: &TaintRead) -> bool {
        t.key.as_str() == Some(super::SHUTDOWN_TAINT)
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
        while let Some(field) = map.next_key_seed(Field(&["type", "status", "lastTransitionTime"]))? {
            match field {
                Some(0) => c.type_ = map.next_value()?,
                Some(1) => c.status = map.next_value()?,
                Some(2) => c.last_transition = map.next_value()?,
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

fn skip<'de, A: MapAccess<'de>>(map: &mut A) -> Result<(), A::Error> {
    map.next_value::<IgnoredAny>().map(|_| ())
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
                Some(5) => m.creation = map.next_value()?,
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
                Some(0) => version = map.next_value_seed(ScalarSeed { ctx: Some(self.0), keep: true })?,
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
