//! The object store: objects, the resourceVersion counter, the event history, watch
//! subscribers, the write semantics and garbage collection.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::crds;
use super::errors::{ApiError, Cause, Subject};
use super::fields::{self, Apply, FieldConflict};
use super::meta::{
    has_finalizers, is_dns_label, is_dns_subdomain, meta_str, name_suffix, new_uid, now_rfc3339, owner_uids,
    remove_meta, set_meta,
};
use super::resources::{NameRule, Registry, ResourceDef};
use super::selectors::{FieldSelector, LabelSelector};

/// `(namespace, name)`; the namespace is empty for cluster-scoped objects.
pub(crate) type Key = (String, String);

/// The type of a watch event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// `ADDED`
    Added,
    /// `MODIFIED`
    Modified,
    /// `DELETED`
    Deleted,
}

impl EventType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// Which part of an object a write addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sub {
    Main,
    Status,
}

impl Sub {
    fn name(self) -> Option<&'static str> {
        match self {
            Sub::Main => None,
            Sub::Status => Some("status"),
        }
    }
}

/// Who writes and how.
#[derive(Clone, Debug)]
pub(crate) struct WriteCtx {
    pub(crate) sub: Sub,
    /// The field manager; `None` for direct test-helper writes (no managedFields tracking).
    pub(crate) manager: Option<String>,
    pub(crate) dry_run: bool,
}

/// A patch, already decoded.
pub(crate) enum PatchBody {
    Merge(Value),
    Json(json_patch::Patch),
}

/// `propagationPolicy` of a delete.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Propagation {
    #[default]
    Background,
    Foreground,
    Orphan,
}

/// Options of a delete.
#[derive(Clone, Debug, Default)]
pub(crate) struct DeleteOpts {
    pub(crate) propagation: Propagation,
    pub(crate) uid: Option<String>,
    pub(crate) resource_version: Option<String>,
    pub(crate) dry_run: bool,
}

/// The result of a delete.
pub(crate) enum Deleted {
    /// Removed from the store (the last state, with the deletion's resourceVersion).
    Gone(Arc<Value>),
    /// Finalizers pending: `deletionTimestamp` is set.
    Pending(Arc<Value>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RvMatch {
    NotOlderThan,
    Exact,
}

/// A list request.
pub(crate) struct ListQuery {
    pub(crate) namespace: Option<String>,
    pub(crate) labels: LabelSelector,
    pub(crate) fields: FieldSelector,
    pub(crate) limit: Option<usize>,
    pub(crate) continue_token: Option<String>,
    pub(crate) resource_version: Option<String>,
    pub(crate) rv_match: Option<RvMatch>,
}

/// One page of a list.
pub(crate) struct ListPage {
    pub(crate) items: Vec<Arc<Value>>,
    pub(crate) resource_version: u64,
    pub(crate) continue_token: Option<String>,
    pub(crate) remaining: Option<u64>,
}

/// A watch request.
pub(crate) struct WatchQuery {
    pub(crate) namespace: Option<String>,
    pub(crate) labels: LabelSelector,
    pub(crate) fields: FieldSelector,
    pub(crate) resource_version: Option<String>,
    pub(crate) send_initial_events: Option<bool>,
    pub(crate) bookmarks: bool,
}

/// What a watch stream receives after it started.
#[derive(Debug)]
pub(crate) enum WatchMsg {
    Event(EventType, Arc<Value>),
    Bookmark(u64),
}

/// A registered watch: what to send first, then the live channel.
pub(crate) struct WatchSub {
    pub(crate) id: u64,
    pub(crate) initial: Vec<(EventType, Arc<Value>)>,
    /// `Some(rv)`: send a `k8s.io/initial-events-end` bookmark after `initial`.
    pub(crate) initial_end: Option<u64>,
    pub(crate) rx: mpsc::UnboundedReceiver<WatchMsg>,
}

struct HistoryEvent {
    rv: u64,
    kind: EventType,
    key: Key,
    obj: Arc<Value>,
    prev: Option<Arc<Value>>,
}

struct Subscriber {
    id: u64,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    bookmarks: bool,
    tx: mpsc::UnboundedSender<WatchMsg>,
}

impl Subscriber {
    fn selects(&self, key: &Key, obj: &Value) -> bool {
        self.namespace.as_ref().is_none_or(|ns| *ns == key.0) && self.labels.matches(obj) && self.fields.matches(obj)
    }

    /// The event this subscriber sees (objects entering or leaving its selection are
    /// ADDED or DELETED for it, as with a real watch cache).
    fn translate(&self, e: &HistoryEvent) -> Option<EventType> {
        let now = self.selects(&e.key, &e.obj);
        match e.kind {
            EventType::Added | EventType::Deleted => now.then_some(e.kind),
            EventType::Modified => {
                let before = e.prev.as_ref().is_some_and(|p| self.selects(&e.key, p));
                match (before, now) {
                    (true, true) => Some(EventType::Modified),
                    (false, true) => Some(EventType::Added),
                    (true, false) => Some(EventType::Deleted),
                    (false, false) => None,
                }
            }
        }
    }
}

struct ResourceState {
    def: Arc<ResourceDef>,
    objects: BTreeMap<Key, Arc<Value>>,
    history: VecDeque<HistoryEvent>,
    /// Events with `rv <= compacted_rv` may have been dropped from `history`.
    compacted_rv: u64,
    subscribers: Vec<Subscriber>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct ObjRef {
    res: usize,
    key: Key,
}

/// Counters the tests can read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Writes that changed nothing and so were not persisted (no resourceVersion bump).
    pub noop_writes: u64,
    /// Objects removed by ownerReference garbage collection.
    pub garbage_collected: u64,
}

pub(crate) struct Store {
    resources: Vec<ResourceState>,
    rv: u64,
    /// Every resourceVersion below this one is expired (410).
    min_valid_rv: u64,
    history_limit: usize,
    next_sub_id: u64,
    uids: HashMap<String, ObjRef>,
    dependents: HashMap<String, BTreeSet<ObjRef>>,
    pub(crate) stats: StoreStats,
}

fn subject(def: &ResourceDef, name: &str) -> Subject {
    Subject { group: def.group.clone(), kind: def.plural.clone(), qualified: def.qualified(), name: name.to_owned() }
}

fn invalid_subject(def: &ResourceDef, name: &str) -> Subject {
    Subject {
        group: def.group.clone(),
        kind: def.kind.clone(),
        qualified: if def.group.is_empty() { def.kind.clone() } else { format!("{}.{}", def.kind, def.group) },
        name: name.to_owned(),
    }
}

fn modified_conflict(def: &ResourceDef, name: &str) -> ApiError {
    ApiError::Conflict {
        subject: subject(def, name),
        reason: "the object has been modified; please apply your changes to the latest version and try again"
            .to_owned(),
    }
}

/// The field validation of built-in types that clients can trip over (the rest of the OpenAPI
/// validation is not modelled): `events.k8s.io/v1` Event `note` is at most 1 KiB in bytes.
fn validate_fields(def: &ResourceDef, name: &str, obj: &Value) -> Result<(), ApiError> {
    const NOTE_LIMIT: usize = 1024;
    if def.group == "events.k8s.io" && def.plural == "events" {
        let note = obj.get("note").and_then(Value::as_str).unwrap_or_default();
        if note.len() > NOTE_LIMIT {
            return Err(ApiError::invalid(
                invalid_subject(def, name),
                "note",
                "FieldValueTooLong",
                format!("Too long: may not be more than {NOTE_LIMIT} bytes"),
            ));
        }
    }
    Ok(())
}

/// Checks `apiVersion` and `kind` of a request body.
fn check_type_meta(def: &ResourceDef, obj: &Value) -> Result<(), ApiError> {
    let Some(map) = obj.as_object() else {
        return Err(ApiError::BadRequest(
            "the body of the request was in an unknown format: expected a JSON object".to_owned(),
        ));
    };
    let kind = map.get("kind").and_then(Value::as_str).unwrap_or_default();
    let api_version = map.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    if kind.is_empty() {
        return Err(ApiError::BadRequest("Object 'Kind' is missing in the request body".to_owned()));
    }
    if api_version.is_empty() {
        return Err(ApiError::BadRequest("Object 'apiVersion' is missing in the request body".to_owned()));
    }
    if api_version != def.api_version() {
        return Err(ApiError::BadRequest(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({})",
            def.api_version()
        )));
    }
    if kind != def.kind {
        return Err(ApiError::BadRequest(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            def.kind
        )));
    }
    Ok(())
}

/// Whether anything outside `metadata` (and `status`, when it is a subresource) differs.
fn spec_changed(old: &Value, new: &Value, status_is_subresource: bool) -> bool {
    let skip = |k: &str| k == "metadata" || (status_is_subresource && k == "status");
    let (Some(o), Some(n)) = (old.as_object(), new.as_object()) else {
        return old != new;
    };
    let keys: BTreeSet<&String> = o.keys().chain(n.keys()).collect();
    keys.into_iter().any(|k| !skip(k) && o.get(k) != n.get(k))
}

fn generation(obj: &Value) -> Option<i64> {
    obj.pointer("/metadata/generation").and_then(Value::as_i64)
}

fn parse_rv(s: &str) -> Result<u64, ApiError> {
    s.parse::<u64>().map_err(|_| ApiError::BadRequest(format!("invalid resource version: {s:?}")))
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

fn encode_continue(rv: u64, key: &Key) -> String {
    hex_encode(json!({ "rv": rv, "start": [key.0, key.1] }).to_string().as_bytes())
}

fn decode_continue(token: &str) -> Result<(u64, Key), ApiError> {
    let bad = || ApiError::BadRequest(format!("continue key is not valid: {token:?}"));
    let bytes = hex_decode(token).ok_or_else(bad)?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let rv = v.get("rv").and_then(Value::as_u64).ok_or_else(bad)?;
    let ns = v.pointer("/start/0").and_then(Value::as_str).ok_or_else(bad)?;
    let name = v.pointer("/start/1").and_then(Value::as_str).ok_or_else(bad)?;
    Ok((rv, (ns.to_owned(), name.to_owned())))
}

impl Store {
    pub(crate) fn new(registry: &Registry, history_limit: usize) -> Self {
        let resources = registry
            .iter()
            .map(|(_, def)| ResourceState {
                def: def.clone(),
                objects: BTreeMap::new(),
                history: VecDeque::new(),
                compacted_rv: 0,
                subscribers: Vec::new(),
            })
            .collect();
        Self {
            resources,
            rv: 1,
            min_valid_rv: 0,
            history_limit: history_limit.max(1),
            next_sub_id: 0,
            uids: HashMap::new(),
            dependents: HashMap::new(),
            stats: StoreStats::default(),
        }
    }

    /// The current (latest) resourceVersion.
    pub(crate) fn current_rv(&self) -> u64 {
        self.rv
    }

    fn def(&self, res: usize) -> Arc<ResourceDef> {
        self.resources[res].def.clone()
    }

    fn key(&self, res: usize, ns: &str, name: &str) -> Key {
        let ns = if self.resources[res].def.namespaced { ns } else { "" };
        (ns.to_owned(), name.to_owned())
    }

    // ----- low-level commits -------------------------------------------------------------

    fn index(&mut self, r: &ObjRef, old: Option<&Value>, new: Option<&Value>) {
        let old_uid = old.and_then(|o| meta_str(o, "uid")).map(str::to_owned);
        let new_uid = new.and_then(|o| meta_str(o, "uid")).map(str::to_owned);
        if old_uid != new_uid {
            if let Some(u) = &old_uid {
                self.uids.remove(u);
            }
        }
        if let Some(u) = new_uid {
            self.uids.insert(u, r.clone());
        }
        let old_owners = old.map(owner_uids).unwrap_or_default();
        let new_owners = new.map(owner_uids).unwrap_or_default();
        if old_owners != new_owners {
            for o in &old_owners {
                if let Some(set) = self.dependents.get_mut(o) {
                    set.remove(r);
                    if set.is_empty() {
                        self.dependents.remove(o);
                    }
                }
            }
            for o in new_owners {
                self.dependents.entry(o).or_default().insert(r.clone());
            }
        }
    }

    fn record(&mut self, res: usize, event: HistoryEvent) {
        let state = &mut self.resources[res];
        state.subscribers.retain(|s| match s.translate(&event) {
            Some(kind) => s.tx.send(WatchMsg::Event(kind, event.obj.clone())).is_ok(),
            None => !s.tx.is_closed(),
        });
        if state.history.len() >= self.history_limit {
            if let Some(dropped) = state.history.pop_front() {
                state.compacted_rv = dropped.rv;
            }
        }
        state.history.push_back(event);
    }

    /// Stores a new version of an object with the next resourceVersion and emits the event.
    fn commit_put(&mut self, res: usize, key: Key, mut obj: Value) -> Arc<Value> {
        self.rv += 1;
        let rv = self.rv;
        if obj.is_object() {
            set_meta(&mut obj, "resourceVersion", json!(rv.to_string()));
        }
        let obj = Arc::new(obj);
        let prev = self.resources[res].objects.insert(key.clone(), obj.clone());
        let r = ObjRef { res, key: key.clone() };
        self.index(&r, prev.as_deref(), Some(&obj));
        let kind = if prev.is_some() { EventType::Modified } else { EventType::Added };
        self.record(res, HistoryEvent { rv, kind, key, obj: obj.clone(), prev });
        obj
    }

    /// Removes an object, emits DELETED, then garbage-collects its dependents.
    fn commit_remove(&mut self, res: usize, key: &Key, orphan: bool) -> Option<Arc<Value>> {
        let prev = self.resources[res].objects.remove(key)?;
        self.rv += 1;
        let rv = self.rv;
        let mut last = (*prev).clone();
        if last.is_object() {
            set_meta(&mut last, "resourceVersion", json!(rv.to_string()));
        }
        let last = Arc::new(last);
        let r = ObjRef { res, key: key.clone() };
        self.index(&r, Some(&prev), None);
        self.record(
            res,
            HistoryEvent { rv, kind: EventType::Deleted, key: key.clone(), obj: last.clone(), prev: Some(prev) },
        );
        if let Some(uid) = meta_str(&last, "uid") {
            self.collect_dependents(uid, orphan);
        }
        let def = self.def(res);
        if def.group.is_empty() && def.plural == "namespaces" {
            self.delete_namespace_contents(&key.1);
        }
        if crds::is_crd(&def) {
            self.delete_custom_resources(&last);
        }
        Some(last)
    }

    /// The objects of the resources a deleted CRD defined go with it.
    fn delete_custom_resources(&mut self, crd: &Value) {
        let (group, plural) = crds::defines(crd);
        let ids: Vec<usize> = (0..self.resources.len())
            .filter(|&i| {
                let d = &self.resources[i].def;
                d.custom && d.group == group && d.plural == plural
            })
            .collect();
        for id in ids {
            let keys: Vec<Key> = self.resources[id].objects.keys().cloned().collect();
            for key in keys {
                self.commit_remove(id, &key, false);
            }
        }
    }

    /// The stored CRD named `name`, if CRDs are registered.
    pub(crate) fn crd(&self, name: &str) -> Option<Arc<Value>> {
        let id = self.resources.iter().position(|r| crds::is_crd(&r.def))?;
        self.get(id, "", name)
    }

    /// Background garbage collection: dependents whose owners are all gone are deleted;
    /// dependents with another live owner (or when orphaning) lose the reference.
    fn collect_dependents(&mut self, owner_uid: &str, orphan: bool) {
        let Some(deps) = self.dependents.remove(owner_uid) else {
            return;
        };
        for dep in deps {
            let Some(obj) = self.resources[dep.res].objects.get(&dep.key).cloned() else {
                continue;
            };
            let other_owner_alive = owner_uids(&obj).iter().any(|u| u != owner_uid && self.uids.contains_key(u));
            if orphan || other_owner_alive {
                let mut new = (*obj).clone();
                if let Some(refs) = new.pointer_mut("/metadata/ownerReferences").and_then(Value::as_array_mut) {
                    refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid));
                    if refs.is_empty() {
                        remove_meta(&mut new, "ownerReferences");
                    }
                }
                self.commit_put(dep.res, dep.key, new);
            } else {
                self.stats.garbage_collected += 1;
                let (ns, name) = dep.key;
                // The dependent may have finalizers: then it is only marked for deletion.
                let _ = self.delete(dep.res, &ns, &name, &DeleteOpts::default());
            }
        }
    }

    fn delete_namespace_contents(&mut self, ns: &str) {
        for res in 0..self.resources.len() {
            if !self.resources[res].def.namespaced {
                continue;
            }
            let keys: Vec<Key> = self.resources[res]
                .objects
                .range((ns.to_owned(), String::new())..)
                .take_while(|(k, _)| k.0 == ns)
                .map(|(k, _)| k.clone())
                .collect();
            for (kns, name) in keys {
                let _ = self.delete(res, &kns, &name, &DeleteOpts::default());
            }
        }
    }

    // ----- reads ---------------------------------------------------------------------------

    pub(crate) fn get(&self, res: usize, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.resources[res].objects.get(&self.key(res, ns, name)).cloned()
    }

    pub(crate) fn get_or_404(&self, res: usize, ns: &str, name: &str) -> Result<Arc<Value>, ApiError> {
        self.get(res, ns, name).ok_or_else(|| ApiError::NotFound(subject(&self.resources[res].def, name)))
    }

    /// All objects of a resource (in one namespace if given), in key order.
    pub(crate) fn all(&self, res: usize, ns: Option<&str>) -> Vec<Arc<Value>> {
        let objects = &self.resources[res].objects;
        match ns {
            Some(ns) if self.resources[res].def.namespaced => objects
                .range((ns.to_owned(), String::new())..)
                .take_while(|(k, _)| k.0 == ns)
                .map(|(_, v)| v.clone())
                .collect(),
            _ => objects.values().cloned().collect(),
        }
    }

    /// The objects of a resource as they were at `rv` (undoing newer events from the history).
    fn snapshot_at(&self, res: usize, rv: u64) -> Result<BTreeMap<Key, Arc<Value>>, ApiError> {
        let state = &self.resources[res];
        if rv < self.min_valid_rv || rv < state.compacted_rv {
            return Err(ApiError::Expired(format!(
                "too old resource version: {rv} ({})",
                self.min_valid_rv.max(state.compacted_rv)
            )));
        }
        let mut objects = state.objects.clone();
        for e in state.history.iter().rev().take_while(|e| e.rv > rv) {
            match (&e.kind, &e.prev) {
                (EventType::Added, _) => {
                    objects.remove(&e.key);
                }
                (_, Some(prev)) => {
                    objects.insert(e.key.clone(), prev.clone());
                }
                (_, None) => {}
            }
        }
        Ok(objects)
    }

    fn too_large(&self, rv: u64) -> ApiError {
        ApiError::Timeout(format!("Too large resource version: {rv}, current: {}", self.rv))
    }

    pub(crate) fn list(&self, res: usize, q: &ListQuery) -> Result<ListPage, ApiError> {
        let state = &self.resources[res];
        let (snapshot_rv, start) = match &q.continue_token {
            Some(token) => {
                let (rv, key) = decode_continue(token)?;
                if rv < self.min_valid_rv || rv < state.compacted_rv {
                    return Err(ApiError::Expired(
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.".to_owned(),
                    ));
                }
                (rv, Some(key))
            }
            None => {
                let rv = match q.resource_version.as_deref() {
                    None | Some("") | Some("0") => self.rv,
                    Some(s) => {
                        let rv = parse_rv(s)?;
                        if rv > self.rv {
                            return Err(self.too_large(rv));
                        }
                        if q.rv_match == Some(RvMatch::Exact) {
                            rv
                        } else {
                            self.rv
                        }
                    }
                };
                (rv, None)
            }
        };
        let snapshot;
        let objects = if snapshot_rv == self.rv {
            &state.objects
        } else {
            snapshot = self.snapshot_at(res, snapshot_rv)?;
            &snapshot
        };
        let ns = q.namespace.clone().filter(|_| state.def.namespaced);
        let lower = match (&start, &ns) {
            (Some(k), _) => std::ops::Bound::Excluded(k.clone()),
            (None, Some(ns)) => std::ops::Bound::Included((ns.clone(), String::new())),
            (None, None) => std::ops::Bound::Unbounded,
        };
        let mut iter = objects
            .range((lower, std::ops::Bound::Unbounded))
            .take_while(|(k, _)| ns.as_ref().is_none_or(|ns| k.0 == *ns))
            .filter(|(_, v)| q.labels.matches(v) && q.fields.matches(v));
        let limit = q.limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
        let mut items = Vec::new();
        let mut last_key = None;
        for (k, v) in iter.by_ref() {
            items.push(v.clone());
            last_key = Some(k.clone());
            if items.len() == limit {
                break;
            }
        }
        let mut continue_token = None;
        let mut remaining = None;
        if items.len() == limit {
            let rest = iter.count() as u64;
            if rest > 0 {
                if let Some(k) = &last_key {
                    continue_token = Some(encode_continue(snapshot_rv, k));
                }
                if q.labels.is_empty() && q.fields.is_empty() {
                    remaining = Some(rest);
                }
            }
        }
        Ok(ListPage { items, resource_version: snapshot_rv, continue_token, remaining })
    }

    // ----- watch -----------------------------------------------------------------------

    pub(crate) fn watch(&mut self, res: usize, q: WatchQuery) -> Result<WatchSub, ApiError> {
        let current = self.rv;
        let state = &self.resources[res];
        let ns = q.namespace.clone().filter(|_| state.def.namespaced);
        let sub_probe = Subscriber {
            id: 0,
            namespace: ns.clone(),
            labels: q.labels.clone(),
            fields: q.fields.clone(),
            bookmarks: q.bookmarks,
            tx: mpsc::unbounded_channel().0,
        };
        let from = match q.resource_version.as_deref() {
            None | Some("") | Some("0") => None,
            Some(s) => {
                let rv = parse_rv(s)?;
                if rv > current {
                    return Err(self.too_large(rv));
                }
                Some(rv)
            }
        };
        let wants_initial = match q.send_initial_events {
            Some(send) => send,
            None => from.is_none(),
        };
        let mut initial = Vec::new();
        if wants_initial {
            let lower = match &ns {
                Some(ns) => std::ops::Bound::Included((ns.clone(), String::new())),
                None => std::ops::Bound::Unbounded,
            };
            initial = state
                .objects
                .range((lower, std::ops::Bound::Unbounded))
                .take_while(|(k, _)| ns.as_ref().is_none_or(|ns| k.0 == *ns))
                .filter(|(k, v)| sub_probe.selects(k, v))
                .map(|(_, v)| (EventType::Added, v.clone()))
                .collect();
        } else if let Some(rv) = from {
            if rv < self.min_valid_rv || rv < state.compacted_rv {
                return Err(ApiError::Expired(format!(
                    "too old resource version: {rv} ({})",
                    self.min_valid_rv.max(state.compacted_rv)
                )));
            }
            let first = state.history.partition_point(|e| e.rv <= rv);
            initial = state
                .history
                .range(first..)
                .filter_map(|e| sub_probe.translate(e).map(|k| (k, e.obj.clone())))
                .collect();
        }
        let initial_end = (q.send_initial_events == Some(true) && q.bookmarks).then_some(current);
        let (tx, rx) = mpsc::unbounded_channel();
        self.next_sub_id += 1;
        let id = self.next_sub_id;
        self.resources[res].subscribers.push(Subscriber { id, tx, ..sub_probe });
        Ok(WatchSub { id, initial, initial_end, rx })
    }

    pub(crate) fn unsubscribe(&mut self, res: usize, id: u64) {
        self.resources[res].subscribers.retain(|s| s.id != id);
    }

    /// Number of open watches.
    pub(crate) fn watch_count(&self) -> usize {
        self.resources.iter().map(|r| r.subscribers.iter().filter(|s| !s.tx.is_closed()).count()).sum()
    }

    /// Queues a BOOKMARK with the current resourceVersion on every watch that asked for them.
    pub(crate) fn bookmark_tick(&mut self) {
        let rv = self.rv;
        for state in &mut self.resources {
            state.subscribers.retain(|s| !s.bookmarks || s.tx.send(WatchMsg::Bookmark(rv)).is_ok());
        }
    }

    /// Ends every open watch.
    pub(crate) fn drop_watches(&mut self) {
        for state in &mut self.resources {
            state.subscribers.clear();
        }
    }

    /// Compacts: every resourceVersion handed out so far becomes expired.
    pub(crate) fn expire(&mut self) {
        self.rv += 1;
        self.min_valid_rv = self.rv;
        for state in &mut self.resources {
            state.history.clear();
            state.compacted_rv = self.rv;
        }
    }

    // ----- writes ----------------------------------------------------------------------

    /// POST.
    pub(crate) fn create(&mut self, res: usize, ns: &str, body: Value, ctx: &WriteCtx) -> Result<Arc<Value>, ApiError> {
        let def = self.def(res);
        check_type_meta(&def, &body)?;
        self.create_checked(res, ns, body, ctx, None)
    }

    /// Creation after the type check; `managed` carries the managedFields of an apply.
    fn create_checked(
        &mut self,
        res: usize,
        ns: &str,
        mut obj: Value,
        ctx: &WriteCtx,
        managed: Option<Vec<fields::ManagedEntry>>,
    ) -> Result<Arc<Value>, ApiError> {
        let def = self.def(res);
        let body_ns = meta_str(&obj, "namespace").unwrap_or_default().to_owned();
        if def.namespaced {
            if !body_ns.is_empty() && body_ns != ns {
                return Err(ApiError::BadRequest(
                    "the namespace of the provided object does not match the namespace sent on the request".to_owned(),
                ));
            }
            set_meta(&mut obj, "namespace", json!(ns));
        } else {
            remove_meta(&mut obj, "namespace");
        }
        let mut name = meta_str(&obj, "name").unwrap_or_default().to_owned();
        if name.is_empty() {
            let Some(prefix) = meta_str(&obj, "generateName").map(str::to_owned) else {
                return Err(ApiError::invalid(
                    invalid_subject(&def, ""),
                    "metadata.name",
                    "FieldValueRequired",
                    "Required value: name or generateName is required".to_owned(),
                ));
            };
            name = (0..16)
                .map(|_| format!("{prefix}{}", name_suffix()))
                .find(|n| self.get(res, ns, n).is_none())
                .ok_or_else(|| ApiError::AlreadyExists(subject(&def, &prefix)))?;
            set_meta(&mut obj, "name", json!(name));
        }
        let valid = match def.name_rule {
            NameRule::Subdomain => is_dns_subdomain(&name),
            NameRule::Label => is_dns_label(&name),
        };
        if !valid {
            return Err(ApiError::invalid(
                invalid_subject(&def, &name),
                "metadata.name",
                "FieldValueInvalid",
                format!("Invalid value: {name:?}: a lowercase RFC 1123 name must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"),
            ));
        }
        validate_fields(&def, &name, &obj)?;
        let key = self.key(res, ns, &name);
        if self.resources[res].objects.contains_key(&key) {
            return Err(ApiError::AlreadyExists(subject(&def, &name)));
        }
        for k in [
            "uid",
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "managedFields",
            "selfLink",
            "generation",
        ] {
            remove_meta(&mut obj, k);
        }
        if def.custom && def.status_subresource {
            if let Some(map) = obj.as_object_mut() {
                map.remove("status");
            }
        }
        let now = now_rfc3339();
        set_meta(&mut obj, "uid", json!(new_uid()));
        set_meta(&mut obj, "creationTimestamp", json!(now));
        if def.tracks_generation {
            set_meta(&mut obj, "generation", json!(1));
        }
        let entries = match (managed, &ctx.manager) {
            (Some(entries), _) => entries,
            (None, Some(manager)) => {
                let mut entries = Vec::new();
                fields::record_update(&mut entries, &json!({}), &obj, manager, &def.api_version(), None, &now);
                entries
            }
            (None, None) => Vec::new(),
        };
        fields::write_managed(&mut obj, &entries);
        if crds::is_crd(&def) {
            crds::admit(invalid_subject(&def, &name), None, &mut obj)?;
        }
        if ctx.dry_run {
            return Ok(Arc::new(obj));
        }
        Ok(self.commit_put(res, key, obj))
    }

    /// PUT (main resource or `/status`).
    pub(crate) fn update(
        &mut self,
        res: usize,
        ns: &str,
        name: &str,
        body: Value,
        ctx: &WriteCtx,
    ) -> Result<Arc<Value>, ApiError> {
        let def = self.def(res);
        check_type_meta(&def, &body)?;
        let old = self.get_or_404(res, ns, name)?;
        if meta_str(&body, "name") != Some(name) {
            return Err(ApiError::BadRequest(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                meta_str(&body, "name").unwrap_or_default()
            )));
        }
        if def.namespaced {
            if let Some(body_ns) = meta_str(&body, "namespace").filter(|n| !n.is_empty()) {
                if body_ns != ns {
                    return Err(ApiError::BadRequest(
                        "the namespace of the provided object does not match the namespace sent on the request"
                            .to_owned(),
                    ));
                }
            }
        }
        match meta_str(&body, "resourceVersion").filter(|rv| !rv.is_empty()) {
            Some(rv) if Some(rv) != meta_str(&old, "resourceVersion") => {
                return Err(modified_conflict(&def, name));
            }
            Some(_) => {}
            None if def.unconditional_update => {}
            None => {
                return Err(ApiError::invalid(
                    subject(&def, name),
                    "metadata.resourceVersion",
                    "FieldValueInvalid",
                    "Invalid value: 0x0: must be specified for an update".to_owned(),
                ));
            }
        }
        self.finish_update(res, &old, body, ctx, None)
    }

    /// PATCH with a merge or JSON patch.
    pub(crate) fn patch(
        &mut self,
        res: usize,
        ns: &str,
        name: &str,
        patch: &PatchBody,
        ctx: &WriteCtx,
    ) -> Result<Arc<Value>, ApiError> {
        let def = self.def(res);
        let old = self.get_or_404(res, ns, name)?;
        let mut candidate = (*old).clone();
        match patch {
            PatchBody::Merge(p) => {
                if !p.is_object() {
                    return Err(ApiError::BadRequest("a merge patch must be a JSON object".to_owned()));
                }
                json_patch::merge(&mut candidate, p);
            }
            PatchBody::Json(p) => {
                json_patch::patch(&mut candidate, p).map_err(|e| ApiError::Custom {
                    code: 422,
                    reason: "Invalid".to_owned(),
                    message: format!("the server rejected our request due to an error in our request: {e}"),
                })?;
            }
        }
        check_type_meta(&def, &candidate)?;
        if meta_str(&candidate, "resourceVersion") != meta_str(&old, "resourceVersion") {
            return Err(modified_conflict(&def, name));
        }
        for field in ["name", "namespace", "uid"] {
            if meta_str(&candidate, field) != meta_str(&old, field) {
                return Err(ApiError::invalid(
                    invalid_subject(&def, name),
                    &format!("metadata.{field}"),
                    "FieldValueInvalid",
                    "field is immutable".to_owned(),
                ));
            }
        }
        self.finish_update(res, &old, candidate, ctx, None)
    }

    /// PATCH with `application/apply-patch+yaml` (server-side apply). Creates the object if
    /// it does not exist (main resource only).
    pub(crate) fn apply(
        &mut self,
        res: usize,
        ns: &str,
        name: &str,
        body: Value,
        ctx: &WriteCtx,
        force: bool,
    ) -> Result<Arc<Value>, ApiError> {
        let def = self.def(res);
        check_type_meta(&def, &body)?;
        let manager = ctx.manager.clone().unwrap_or_default();
        if let Some(body_name) = meta_str(&body, "name").filter(|n| !n.is_empty()) {
            if body_name != name {
                return Err(ApiError::BadRequest(format!(
                    "the name of the object ({body_name}) does not match the name on the URL ({name})"
                )));
            }
        }
        if def.namespaced {
            if let Some(body_ns) = meta_str(&body, "namespace").filter(|n| !n.is_empty()) {
                if body_ns != ns {
                    return Err(ApiError::BadRequest(
                        "the namespace of the provided object does not match the namespace sent on the request"
                            .to_owned(),
                    ));
                }
            }
        }
        let old = self.get(res, ns, name);
        if let (Some(old), Some(rv)) = (&old, meta_str(&body, "resourceVersion").filter(|rv| !rv.is_empty())) {
            if Some(rv) != meta_str(old, "resourceVersion") {
                return Err(modified_conflict(&def, name));
            }
        }
        let mut applied = body.clone();
        fields::strip_ignored(&mut applied);
        match ctx.sub {
            Sub::Main if def.status_subresource => {
                if let Some(m) = applied.as_object_mut() {
                    m.remove("status");
                }
            }
            Sub::Main => {}
            Sub::Status => {
                applied = match applied.get("status") {
                    Some(s) => json!({ "status": s }),
                    None => json!({}),
                };
            }
        }
        let now = now_rfc3339();
        let api_version = def.api_version();
        let req = Apply { manager: &manager, api_version: &api_version, subresource: ctx.sub.name(), force, now: &now };
        let merged = fields::apply(old.as_deref(), &applied, &req).map_err(|c| apply_conflict(&def, name, &c))?;
        match old {
            Some(old) => {
                let entries = fields::read_managed(&merged);
                self.finish_update(res, &old, merged, ctx, Some(entries))
            }
            None if ctx.sub == Sub::Status => Err(ApiError::NotFound(subject(&def, name))),
            None => {
                let entries = fields::read_managed(&merged);
                let mut obj = merged;
                if let Some(m) = obj.as_object_mut() {
                    m.insert("apiVersion".to_owned(), json!(api_version));
                    m.insert("kind".to_owned(), json!(def.kind));
                }
                set_meta(&mut obj, "name", json!(name));
                self.create_checked(res, ns, obj, ctx, Some(entries))
            }
        }
    }

    /// The common tail of every update: subresource rules, system metadata, generation,
    /// managedFields, finalizer completion, no-op detection, commit.
    fn finish_update(
        &mut self,
        res: usize,
        old: &Arc<Value>,
        mut candidate: Value,
        ctx: &WriteCtx,
        managed: Option<Vec<fields::ManagedEntry>>,
    ) -> Result<Arc<Value>, ApiError> {
        let def = self.def(res);
        match ctx.sub {
            Sub::Main if def.status_subresource => {
                if let Some(m) = candidate.as_object_mut() {
                    match old.get("status") {
                        Some(s) => m.insert("status".to_owned(), s.clone()),
                        None => m.remove("status"),
                    };
                }
            }
            Sub::Main => {}
            Sub::Status => {
                let status = candidate.get("status").cloned();
                candidate = (**old).clone();
                if let Some(m) = candidate.as_object_mut() {
                    match status {
                        Some(s) => m.insert("status".to_owned(), s),
                        None => m.remove("status"),
                    };
                }
            }
        }
        for k in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "resourceVersion",
            "managedFields",
        ] {
            match old.get("metadata").and_then(|m| m.get(k)) {
                Some(v) => set_meta(&mut candidate, k, v.clone()),
                None => remove_meta(&mut candidate, k),
            }
        }
        remove_meta(&mut candidate, "selfLink");
        if def.tracks_generation && spec_changed(old, &candidate, def.status_subresource) {
            let next = generation(old).unwrap_or(0) + 1;
            set_meta(&mut candidate, "generation", json!(next));
        }
        let old_entries = fields::read_managed(old);
        let mut entries = match (managed, &ctx.manager) {
            (Some(entries), _) => entries,
            (None, Some(manager)) => {
                let mut entries = old_entries.clone();
                fields::record_update(
                    &mut entries,
                    old,
                    &candidate,
                    manager,
                    &def.api_version(),
                    ctx.sub.name(),
                    &now_rfc3339(),
                );
                entries
            }
            (None, None) => old_entries.clone(),
        };
        fields::keep_unchanged_times(&old_entries, &mut entries);
        fields::write_managed(&mut candidate, &entries);
        validate_fields(&def, meta_str(old, "name").unwrap_or_default(), &candidate)?;

        let key =
            self.key(res, meta_str(old, "namespace").unwrap_or_default(), meta_str(old, "name").unwrap_or_default());
        if candidate.pointer("/metadata/deletionTimestamp").is_some() && !has_finalizers(&candidate) {
            if ctx.dry_run {
                return Ok(Arc::new(candidate));
            }
            // The last finalizer is gone: the deletion completes.
            return Ok(self.commit_remove(res, &key, false).unwrap_or_else(|| old.clone()));
        }
        if crds::is_crd(&def) {
            crds::admit(invalid_subject(&def, meta_str(old, "name").unwrap_or_default()), Some(old), &mut candidate)?;
        }
        if candidate == **old {
            self.stats.noop_writes += 1;
            return Ok(old.clone());
        }
        if ctx.dry_run {
            return Ok(Arc::new(candidate));
        }
        Ok(self.commit_put(res, key, candidate))
    }

    /// DELETE.
    pub(crate) fn delete(&mut self, res: usize, ns: &str, name: &str, opts: &DeleteOpts) -> Result<Deleted, ApiError> {
        let def = self.def(res);
        let old = self.get_or_404(res, ns, name)?;
        if let Some(uid) = &opts.uid {
            let actual = meta_str(&old, "uid").unwrap_or_default();
            if uid != actual {
                return Err(ApiError::Conflict {
                    subject: subject(&def, name),
                    reason: format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"),
                });
            }
        }
        if let Some(rv) = &opts.resource_version {
            let actual = meta_str(&old, "resourceVersion").unwrap_or_default();
            if rv != actual {
                return Err(ApiError::Conflict {
                    subject: subject(&def, name),
                    reason: format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {actual}"
                    ),
                });
            }
        }
        let key = self.key(res, ns, name);
        if has_finalizers(&old) {
            if old.pointer("/metadata/deletionTimestamp").is_some() || opts.dry_run {
                return Ok(Deleted::Pending(old));
            }
            let mut new = (*old).clone();
            set_meta(&mut new, "deletionTimestamp", json!(now_rfc3339()));
            set_meta(&mut new, "deletionGracePeriodSeconds", json!(0));
            if let Some(g) = generation(&old) {
                set_meta(&mut new, "generation", json!(g + 1));
            }
            return Ok(Deleted::Pending(self.commit_put(res, key, new)));
        }
        if opts.dry_run {
            return Ok(Deleted::Gone(old));
        }
        if opts.propagation == Propagation::Foreground {
            if let Some(uid) = meta_str(&old, "uid") {
                self.collect_dependents(uid, false);
            }
        }
        let orphan = opts.propagation == Propagation::Orphan;
        match self.commit_remove(res, &key, orphan) {
            Some(last) => Ok(Deleted::Gone(last)),
            None => Err(ApiError::NotFound(subject(&def, name))),
        }
    }

    // ----- direct test-helper writes ------------------------------------------------------

    /// Creates or replaces an object without validation or managedFields tracking (the
    /// object's own metadata is kept; uid and creationTimestamp are filled in when missing).
    pub(crate) fn upsert(&mut self, res: usize, mut obj: Value) -> Result<Arc<Value>, ApiError> {
        let def = self.def(res);
        let ns = meta_str(&obj, "namespace").unwrap_or_default().to_owned();
        let Some(name) = meta_str(&obj, "name").map(str::to_owned) else {
            return Err(ApiError::BadRequest("metadata.name is required".to_owned()));
        };
        if def.namespaced && ns.is_empty() {
            return Err(ApiError::BadRequest(format!("{} is namespaced: metadata.namespace is required", def.plural)));
        }
        if let Some(m) = obj.as_object_mut() {
            m.entry("apiVersion").or_insert_with(|| json!(def.api_version()));
            m.entry("kind").or_insert_with(|| json!(def.kind));
        }
        let key = self.key(res, &ns, &name);
        let old = self.resources[res].objects.get(&key).cloned();
        for k in ["uid", "creationTimestamp"] {
            if obj.pointer(&format!("/metadata/{k}")).is_none() {
                let v = match &old {
                    Some(o) => o.get("metadata").and_then(|m| m.get(k)).cloned(),
                    None => None,
                }
                .unwrap_or_else(|| json!(if k == "uid" { new_uid() } else { now_rfc3339() }));
                set_meta(&mut obj, k, v);
            }
        }
        if def.tracks_generation && generation(&obj).is_none() {
            let g = match &old {
                Some(o) => generation(o).unwrap_or(1) + i64::from(spec_changed(o, &obj, def.status_subresource)),
                None => 1,
            };
            set_meta(&mut obj, "generation", json!(g));
        }
        if let Some(old) = &old {
            let mut same = obj.clone();
            if let Some(rv) = old.pointer("/metadata/resourceVersion") {
                set_meta(&mut same, "resourceVersion", rv.clone());
            }
            if same == **old {
                self.stats.noop_writes += 1;
                return Ok(old.clone());
            }
        }
        Ok(self.commit_put(res, key, obj))
    }

    /// Stores any JSON value under a key, bypassing every check.
    pub(crate) fn insert_raw(&mut self, res: usize, ns: &str, name: &str, obj: Value) -> Arc<Value> {
        let key = self.key(res, ns, name);
        self.commit_put(res, key, obj)
    }
}

fn apply_conflict(def: &ResourceDef, name: &str, conflicts: &[FieldConflict]) -> ApiError {
    ApiError::ApplyConflict {
        subject: subject(def, name),
        causes: conflicts
            .iter()
            .map(|c| Cause {
                reason: "FieldManagerConflict".to_owned(),
                message: format!("conflict with {:?} using {}", c.manager, c.api_version),
                field: c.dotted(),
            })
            .collect(),
    }
}
