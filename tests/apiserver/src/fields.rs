//! Field ownership (`metadata.managedFields`) and server-side apply.
//!
//! A field set is a set of paths of object keys. Maps are merged key by key; every other value
//! (scalars, lists, empty maps) is a leaf: lists are *atomic*, as for a CRD without
//! `x-kubernetes-list-type` markers. Sets are serialised as `FieldsV1` tries (`f:` keys, `.`
//! for a node that is owned itself and has owned children).

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

/// A path of object keys from the object root.
pub(crate) type Path = Vec<String>;

/// A set of owned field paths.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FieldSet(pub(crate) BTreeSet<Path>);

impl FieldSet {
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn contains(&self, p: &[String]) -> bool {
        self.0.contains(p)
    }

    /// Whether a path strictly below `p` is in the set.
    fn has_descendant(&self, p: &[String]) -> bool {
        self.0
            .range::<[String], _>((std::ops::Bound::Excluded(p), std::ops::Bound::Unbounded))
            .next()
            .is_some_and(|q| q.starts_with(p))
    }

    /// Whether a path strictly above `p` is in the set.
    fn has_ancestor(&self, p: &[String]) -> bool {
        (1..p.len()).any(|n| self.0.contains(&p[..n]))
    }

    fn overlaps(&self, p: &[String]) -> bool {
        self.contains(p) || self.has_descendant(p) || self.has_ancestor(p)
    }

    fn remove_all(&mut self, other: &FieldSet) {
        if !other.is_empty() {
            self.0.retain(|p| !other.0.contains(p));
        }
    }
}

const IGNORED_META: [&str; 10] = [
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// Fields never tracked: identity and server-maintained metadata.
fn ignored(path: &[String]) -> bool {
    match path {
        [k] => k == "apiVersion" || k == "kind",
        [m, k, ..] => m == "metadata" && IGNORED_META.contains(&k.as_str()),
        _ => false,
    }
}

/// Removes the ignored fields from an applied configuration.
pub(crate) fn strip_ignored(v: &mut Value) {
    if let Some(obj) = v.as_object_mut() {
        obj.remove("apiVersion");
        obj.remove("kind");
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            for k in IGNORED_META {
                meta.remove(k);
            }
            if meta.is_empty() {
                obj.remove("metadata");
            }
        }
    }
}

fn collect(v: &Value, path: &mut Path, out: &mut FieldSet) {
    if ignored(path) {
        return;
    }
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, c) in m {
                path.push(k.clone());
                collect(c, path, out);
                path.pop();
            }
        }
        Value::Null if path.is_empty() => {}
        _ if path.is_empty() => {}
        _ => {
            out.0.insert(path.clone());
        }
    }
}

/// The leaf paths of an object (scalars, lists, empty maps; null values excluded).
pub(crate) fn leaves(v: &Value) -> FieldSet {
    let mut out = FieldSet::default();
    collect(v, &mut Vec::new(), &mut out);
    out.0.retain(|p| !matches!(get_path(v, p), Some(Value::Null)));
    out
}

/// Paths set (added or changed) and paths removed between two versions of an object.
pub(crate) fn diff(old: &Value, new: &Value) -> (FieldSet, FieldSet) {
    let mut set = FieldSet::default();
    let mut removed = FieldSet::default();
    diff_rec(Some(old), Some(new), &mut Vec::new(), &mut set, &mut removed);
    (set, removed)
}

fn diff_rec(old: Option<&Value>, new: Option<&Value>, path: &mut Path, set: &mut FieldSet, removed: &mut FieldSet) {
    if ignored(path) {
        return;
    }
    match (old, new) {
        (Some(Value::Object(o)), Some(Value::Object(n))) if !o.is_empty() && !n.is_empty() => {
            let keys: BTreeSet<&String> = o.keys().chain(n.keys()).collect();
            for k in keys {
                path.push(k.clone());
                diff_rec(o.get(k), n.get(k), path, set, removed);
                path.pop();
            }
        }
        (Some(o), Some(n)) if o == n => {}
        (o, n) => {
            if let Some(o) = o {
                collect(o, path, removed);
            }
            if let Some(n) = n {
                collect(n, path, set);
            }
        }
    }
}

/// The value at a path.
pub(crate) fn get_path<'a>(v: &'a Value, p: &[String]) -> Option<&'a Value> {
    p.iter().try_fold(v, |cur, k| cur.as_object()?.get(k))
}

/// Removes the value at a path, then removes parent maps that became empty, are not
/// top-level and are not themselves owned by anyone (`keep`).
fn remove_path(v: &mut Value, p: &[String], keep: &dyn Fn(&[String]) -> bool) {
    let Some((last, parent)) = p.split_last() else {
        return;
    };
    let Some(obj) = get_path_mut(v, parent).and_then(Value::as_object_mut) else {
        return;
    };
    obj.remove(last);
    if obj.is_empty() && parent.len() > 1 && !keep(parent) {
        remove_path(v, parent, keep);
    }
}

fn get_path_mut<'a>(v: &'a mut Value, p: &[String]) -> Option<&'a mut Value> {
    p.iter().try_fold(v, |cur, k| cur.as_object_mut()?.get_mut(k))
}

/// Merges an applied configuration into an object: maps key by key, other values replaced,
/// `null` removes.
pub(crate) fn merge_applied(target: &mut Value, applied: &Value) {
    let (Some(t), Some(a)) = (target.as_object_mut(), applied.as_object()) else {
        *target = applied.clone();
        return;
    };
    for (k, av) in a {
        match (t.get_mut(k), av) {
            (_, Value::Null) => {
                t.remove(k);
            }
            (Some(tv), Value::Object(am)) if tv.is_object() && !am.is_empty() => {
                merge_applied(tv, av);
            }
            (Some(tv), Value::Object(_)) if tv.is_object() => {}
            _ => {
                t.insert(k.clone(), av.clone());
            }
        }
    }
}

/// One `metadata.managedFields` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ManagedEntry {
    pub(crate) manager: String,
    pub(crate) operation: String,
    pub(crate) api_version: String,
    pub(crate) time: String,
    pub(crate) subresource: Option<String>,
    pub(crate) fields: FieldSet,
}

impl ManagedEntry {
    fn same_key(&self, manager: &str, operation: &str, sub: Option<&str>) -> bool {
        self.manager == manager && self.operation == operation && self.subresource.as_deref() == sub
    }

    fn to_json(&self) -> Value {
        let mut v = json!({
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": fields_to_v1(&self.fields),
        });
        if let Some(s) = &self.subresource {
            v["subresource"] = json!(s);
        }
        v
    }
}

/// Parses `metadata.managedFields`, skipping malformed entries.
pub(crate) fn read_managed(obj: &Value) -> Vec<ManagedEntry> {
    let Some(list) = obj.pointer("/metadata/managedFields").and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|e| {
            let s = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_owned);
            let mut fields = FieldSet::default();
            if let Some(f) = e.get("fieldsV1") {
                fields_from_v1(f, &mut Vec::new(), &mut fields);
            }
            Some(ManagedEntry {
                manager: s("manager")?,
                operation: s("operation").unwrap_or_else(|| "Update".to_owned()),
                api_version: s("apiVersion").unwrap_or_default(),
                time: s("time").unwrap_or_default(),
                subresource: s("subresource"),
                fields,
            })
        })
        .collect()
}

/// Writes `metadata.managedFields` (removing it when there are no entries).
pub(crate) fn write_managed(obj: &mut Value, entries: &[ManagedEntry]) {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    if entries.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".to_owned(), entries.iter().map(ManagedEntry::to_json).collect());
    }
}

/// Keeps the time of entries whose fields did not change, so that a write that changes
/// nothing but timestamps stays a no-op.
pub(crate) fn keep_unchanged_times(old: &[ManagedEntry], new: &mut [ManagedEntry]) {
    for e in new.iter_mut() {
        if let Some(o) = old.iter().find(|o| {
            o.same_key(&e.manager, &e.operation, e.subresource.as_deref())
                && o.api_version == e.api_version
                && o.fields == e.fields
        }) {
            e.time = o.time.clone();
        }
    }
}

fn fields_to_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for p in &set.0 {
        let mut node = &mut root;
        for k in p {
            let entry = node.entry(format!("f:{k}")).or_insert_with(|| Value::Object(Map::new()));
            // Every node is an object by construction.
            let Value::Object(next) = entry else { unreachable!("FieldsV1 nodes are objects") };
            node = next;
        }
    }
    for p in &set.0 {
        let mut node = &mut root;
        for k in p {
            let Some(Value::Object(next)) = node.get_mut(&format!("f:{k}")) else {
                unreachable!("FieldsV1 nodes were inserted above")
            };
            node = next;
        }
        if !node.is_empty() {
            node.insert(".".to_owned(), json!({}));
        }
    }
    Value::Object(root)
}

fn fields_from_v1(v: &Value, path: &mut Path, out: &mut FieldSet) {
    let Some(obj) = v.as_object() else {
        return;
    };
    for (k, child) in obj {
        if k == "." {
            out.0.insert(path.clone());
        } else if let Some(name) = k.strip_prefix("f:") {
            path.push(name.to_owned());
            if child.as_object().is_some_and(Map::is_empty) {
                out.0.insert(path.clone());
            } else {
                fields_from_v1(child, path, out);
            }
            path.pop();
        } else if !path.is_empty() {
            // `k:`/`v:`/`i:` keys of associative lists: this model treats lists as atomic.
            out.0.insert(path.clone());
        }
    }
}

/// Records an update (any write that is not an apply) by `manager`: it takes ownership of the
/// fields it set; removed fields are owned by nobody.
pub(crate) fn record_update(
    entries: &mut Vec<ManagedEntry>,
    old: &Value,
    new: &Value,
    manager: &str,
    api_version: &str,
    sub: Option<&str>,
    now: &str,
) {
    let (set, removed) = diff(old, new);
    if set.is_empty() && removed.is_empty() {
        return;
    }
    for e in entries.iter_mut() {
        e.fields.remove_all(&removed);
        if !e.same_key(manager, "Update", sub) {
            e.fields.remove_all(&set);
        }
    }
    match entries.iter_mut().find(|e| e.same_key(manager, "Update", sub)) {
        Some(e) => {
            e.fields.0.extend(set.0);
            e.time = now.to_owned();
            e.api_version = api_version.to_owned();
        }
        None if !set.is_empty() => entries.push(ManagedEntry {
            manager: manager.to_owned(),
            operation: "Update".to_owned(),
            api_version: api_version.to_owned(),
            time: now.to_owned(),
            subresource: sub.map(str::to_owned),
            fields: set,
        }),
        None => {}
    }
    entries.retain(|e| !e.fields.is_empty());
}

/// A field another manager owns with a different value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FieldConflict {
    pub(crate) manager: String,
    pub(crate) api_version: String,
    pub(crate) path: Path,
}

impl FieldConflict {
    /// `.spec.platform`
    pub(crate) fn dotted(&self) -> String {
        self.path.iter().map(|k| format!(".{k}")).collect()
    }
}

/// What a server-side apply needs besides the live object.
pub(crate) struct Apply<'a> {
    pub(crate) manager: &'a str,
    pub(crate) api_version: &'a str,
    pub(crate) subresource: Option<&'a str>,
    pub(crate) force: bool,
    pub(crate) now: &'a str,
}

/// Server-side apply of `applied` (already stripped of ignored fields and of the parts the
/// subresource does not write) onto `live` (`None`: the object is being created). Returns the
/// merged object with updated `managedFields`, or the conflicts.
pub(crate) fn apply(live: Option<&Value>, applied: &Value, req: &Apply<'_>) -> Result<Value, Vec<FieldConflict>> {
    let base = live.cloned().unwrap_or_else(|| json!({"metadata": {}}));
    let mut entries = read_managed(&base);
    if live.is_some() && entries.is_empty() {
        let existing = leaves(&base);
        if !existing.is_empty() {
            entries.push(ManagedEntry {
                manager: "before-first-apply".to_owned(),
                operation: "Update".to_owned(),
                api_version: req.api_version.to_owned(),
                time: req.now.to_owned(),
                subresource: None,
                fields: existing,
            });
        }
    }

    let new_set = leaves(applied);
    let own = |e: &ManagedEntry| e.same_key(req.manager, "Apply", req.subresource);

    let mut conflicts = Vec::new();
    for p in &new_set.0 {
        let Some(value) = get_path(applied, p) else {
            continue;
        };
        let live = get_path(&base, p);
        // Equal values are shared ownership; maps merge key by key.
        if live == Some(value) || (value.is_object() && live.is_some_and(Value::is_object)) {
            continue;
        }
        for e in entries.iter().filter(|e| e.manager != req.manager) {
            let exact = e.fields.contains(p);
            let below = !value.is_object() && e.fields.has_descendant(p);
            let above = (1..p.len())
                .any(|n| e.fields.contains(&p[..n]) && !get_path(&base, &p[..n]).is_some_and(Value::is_object));
            if exact || below || above {
                let c =
                    FieldConflict { manager: e.manager.clone(), api_version: e.api_version.clone(), path: p.clone() };
                if !conflicts.contains(&c) {
                    conflicts.push(c);
                }
            }
        }
    }
    if !conflicts.is_empty() {
        if !req.force {
            return Err(conflicts);
        }
        for e in entries.iter_mut().filter(|e| e.manager != req.manager) {
            for c in &conflicts {
                let p = &c.path;
                e.fields.0.retain(|q| !(q.starts_with(p) || p.starts_with(q.as_slice())));
            }
        }
    }

    let mut merged = base.clone();
    merge_applied(&mut merged, applied);

    let old_set = entries.iter().find(|e| own(e)).map(|e| e.fields.clone()).unwrap_or_default();
    let others: Vec<&ManagedEntry> = entries.iter().filter(|e| !own(e)).collect();
    for p in old_set.0.difference(&new_set.0) {
        if others.iter().any(|e| e.fields.overlaps(p)) {
            continue;
        }
        let keep = |q: &[String]| new_set.overlaps(q) || others.iter().any(|e| e.fields.contains(q));
        remove_path(&mut merged, p, &keep);
    }

    entries.retain(|e| !own(e));
    if !new_set.is_empty() {
        entries.push(ManagedEntry {
            manager: req.manager.to_owned(),
            operation: "Apply".to_owned(),
            api_version: req.api_version.to_owned(),
            time: req.now.to_owned(),
            subresource: req.subresource.map(str::to_owned),
            fields: new_set,
        });
    }
    entries.retain(|e| !e.fields.is_empty());
    write_managed(&mut merged, &entries);
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Path {
        s.split('.').map(str::to_owned).collect()
    }

    #[test]
    fn fields_v1_round_trip() {
        let mut set = FieldSet::default();
        set.0.insert(p("metadata.labels"));
        set.0.insert(p("metadata.labels.a"));
        set.0.insert(p("spec.x"));
        let v1 = fields_to_v1(&set);
        assert_eq!(v1, json!({"f:metadata": {"f:labels": {".": {}, "f:a": {}}}, "f:spec": {"f:x": {}}}));
        let mut back = FieldSet::default();
        fields_from_v1(&v1, &mut Vec::new(), &mut back);
        assert_eq!(back, set);
    }

    #[test]
    fn leaves_skip_identity() {
        let v = json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "a", "labels": {"k": "v"}}, "spec": {"l": [1], "e": {}}});
        let l: Vec<Path> = leaves(&v).0.into_iter().collect();
        assert_eq!(l, vec![p("metadata.labels.k"), p("spec.e"), p("spec.l")]);
    }

    #[test]
    fn apply_removes_fields_dropped_by_their_only_owner() {
        let req = Apply { manager: "a", api_version: "v1", subresource: None, force: false, now: "t" };
        let first = apply(None, &json!({"spec": {"x": 1, "y": 2}}), &req).unwrap();
        let second = apply(Some(&first), &json!({"spec": {"x": 1}}), &req).unwrap();
        assert_eq!(second["spec"], json!({"x": 1}));
    }

    #[test]
    fn apply_conflicts_with_other_owner() {
        let a = Apply { manager: "a", api_version: "v1", subresource: None, force: false, now: "t" };
        let b = Apply { manager: "b", ..a };
        let first = apply(None, &json!({"spec": {"x": 1}}), &a).unwrap();
        // Same value: shared ownership, no conflict.
        let shared = apply(Some(&first), &json!({"spec": {"x": 1}}), &b).unwrap();
        let err = apply(Some(&shared), &json!({"spec": {"x": 2}}), &b).unwrap_err();
        assert_eq!(err[0].manager, "a");
        assert_eq!(err[0].dotted(), ".spec.x");
        let forced = apply(Some(&shared), &json!({"spec": {"x": 2}}), &Apply { force: true, ..b });
        assert_eq!(forced.unwrap()["spec"]["x"], 2);
    }
}
