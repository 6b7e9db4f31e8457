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

use chrono::{DateTime, Utc};

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

use super::labels::{Interner, Keep, Labels, NodeKeys};
use crate::time::parse_rfc3339;

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

mod objects;

pub(crate) use objects::*;

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
    /// A string read as a time ([`KeepStr::Time`]): kept parsed, without an allocation.
    Time(DateTime<Utc>),
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

/// Reads a [`Scalar`]; a string is kept only as `keep` says (else it is `Dropped`).
struct ScalarSeed<'a> {
    ctx: Option<Ctx<'a>>,
    keep: KeepStr,
}

/// Which strings a [`ScalarSeed`] keeps (an unkept string costs no allocation).
#[derive(Clone, Copy)]
enum KeepStr {
    Every,
    None,
    /// Only this one.
    Only(&'static str),
    /// An RFC 3339 time, parsed ([`Scalar::Time`]); any other string as it is.
    Time,
}

impl KeepStr {
    /// `then`, unless nothing is kept.
    fn and(self, then: KeepStr) -> KeepStr {
        match self {
            KeepStr::None => KeepStr::None,
            _ => then,
        }
    }
}

impl From<bool> for KeepStr {
    fn from(keep: bool) -> Self {
        if keep {
            KeepStr::Every
        } else {
            KeepStr::None
        }
    }
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
        let keep = match self.keep {
            KeepStr::Every => true,
            KeepStr::None => false,
            KeepStr::Only(only) => s == only,
            KeepStr::Time => match parse_rfc3339(s) {
                Some(t) => return Ok(Scalar::Time(t)),
                None => true,
            },
        };
        Ok(match (keep, self.ctx) {
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
        ScalarSeed { ctx: None, keep: KeepStr::Every }.deserialize(d)
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
        Ok(self.keep.kept(s, |s| self.ctx.shared(s)))
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
        // Room for most keys at once (a key may be 316 bytes: grown once then).
        let text = RefCell::new(String::with_capacity(128));
        while let Some(shared) = map.next_key_seed(Key { ctx: self.ctx, keep: self.keep, text: &text })? {
            let value = map.next_value_seed(ScalarSeed { ctx: Some(self.ctx), keep: shared.is_some().into() })?;
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
                Scalar::Dropped | Scalar::Time(_) => {
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

fn skip<'de, A: MapAccess<'de>>(map: &mut A) -> Result<(), A::Error> {
    map.next_value::<IgnoredAny>().map(|_| ())
}
