//! A node's labels and annotations as the engine keeps them: only the keys some policy reads
//! (`NodeKeys`), sorted, with the strings nodes share (pool names, image versions, kubelet
//! versions) stored once (`Interner`).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

/// Labels or annotations: unique keys, sorted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Labels(Vec<(Arc<str>, Arc<str>)>);

impl Labels {
    /// No label.
    pub fn new() -> Self {
        Labels(Vec::new())
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| (**k).cmp(key))
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.shared(key).map(|v| &**v)
    }

    /// The value of `key`, shared (cloning it copies no string).
    pub fn shared(&self, key: &str) -> Option<&Arc<str>> {
        // The engine holds a handful of keys, most of different lengths, that share prefixes
        // (`kubernetes.azure.com/…`): comparing lengths first beats a binary search.
        if self.0.len() <= 16 {
            return self.0.iter().find(|(k, _)| k.len() == key.len() && **k == *key).map(|(_, v)| v);
        }
        self.find(key).ok().map(|i| &self.0[i].1)
    }

    /// Whether `key` is set.
    pub fn contains_key(&self, key: &str) -> bool {
        self.find(key).is_ok()
    }

    /// Sets `key` to `value` (replacing a previous value).
    pub fn insert(&mut self, key: Arc<str>, value: Arc<str>) {
        match self.find(&key) {
            Ok(i) => self.0[i].1 = value,
            Err(i) => self.0.insert(i, (key, value)),
        }
    }

    /// Keeps only the keys `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.0.retain(|(k, _)| keep(k));
    }

    /// Every (key, value), by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (&**k, &**v))
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No key.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The same labels with every string taken from `interner`, without spare capacity.
    pub fn interned(&self, interner: &mut Interner) -> Labels {
        Labels(self.0.iter().map(|(k, v)| (interner.intern(k), interner.intern(v))).collect())
    }
}

impl<K: Into<Arc<str>>, V: Into<Arc<str>>> FromIterator<(K, V)> for Labels {
    fn from_iter<T: IntoIterator<Item = (K, V)>>(iter: T) -> Self {
        let mut labels = Labels::new();
        for (k, v) in iter {
            labels.insert(k.into(), v.into());
        }
        labels
    }
}

impl<K: Into<Arc<str>>, V: Into<Arc<str>>, const N: usize> From<[(K, V); N]> for Labels {
    fn from(pairs: [(K, V); N]) -> Self {
        pairs.into_iter().collect()
    }
}

impl From<BTreeMap<String, String>> for Labels {
    fn from(map: BTreeMap<String, String>) -> Self {
        // Already sorted and unique.
        Labels(map.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}

/// Which keys of a map are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keep {
    /// Every key (reading a file for a policy not known yet, tests).
    All,
    /// Only these (shared: a reader hands out these keys instead of copies).
    Only(BTreeSet<Arc<str>>),
}

impl Keep {
    /// Whether `key` is kept.
    pub fn keeps(&self, key: &str) -> bool {
        match self {
            Keep::All => true,
            Keep::Only(keys) => keys.contains(key),
        }
    }

    /// `key`, when it is kept: shared with this set when it names it (no allocation), else
    /// made by `copy`.
    pub fn kept(&self, key: &str, copy: impl FnOnce(&str) -> Arc<str>) -> Option<Arc<str>> {
        match self {
            Keep::All => Some(copy(key)),
            Keep::Only(keys) => keys.get(key).cloned(),
        }
    }

    /// Whether every key `other` keeps is kept here too.
    pub fn covers(&self, other: &Keep) -> bool {
        match (self, other) {
            (Keep::All, _) => true,
            (Keep::Only(_), Keep::All) => false,
            (Keep::Only(mine), Keep::Only(theirs)) => theirs.is_subset(mine),
        }
    }

    /// What both keep.
    pub fn common(&self, other: &Keep) -> Keep {
        match (self, other) {
            (Keep::All, k) | (k, Keep::All) => k.clone(),
            (Keep::Only(a), Keep::Only(b)) => Keep::Only(a.intersection(b).cloned().collect()),
        }
    }

    fn add(&mut self, key: &str) {
        if let Keep::Only(keys) = self {
            keys.insert(Arc::from(key));
        }
    }

    fn extend(&mut self, other: &Keep) {
        match (&mut *self, other) {
            (Keep::All, _) => {}
            (_, Keep::All) => *self = Keep::All,
            (Keep::Only(mine), Keep::Only(theirs)) => mine.extend(theirs.iter().cloned()),
        }
    }
}

/// The labels and annotations of nodes that rules read: what a cache or a reader keeps of
/// each node (the rest is dropped as it is read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeKeys {
    /// Label keys.
    pub labels: Keep,
    /// Annotation keys.
    pub annotations: Keep,
}

impl Default for NodeKeys {
    fn default() -> Self {
        NodeKeys::none()
    }
}

impl NodeKeys {
    /// Every label and annotation.
    pub fn all() -> Self {
        NodeKeys { labels: Keep::All, annotations: Keep::All }
    }

    /// No label and no annotation.
    pub fn none() -> Self {
        NodeKeys { labels: Keep::Only(BTreeSet::new()), annotations: Keep::Only(BTreeSet::new()) }
    }

    /// Keeps label `key`.
    pub fn label(&mut self, key: &str) -> &mut Self {
        self.labels.add(key);
        self
    }

    /// Keeps annotation `key`.
    pub fn annotation(&mut self, key: &str) -> &mut Self {
        self.annotations.add(key);
        self
    }

    /// Keeps what `other` keeps too.
    pub fn extend(&mut self, other: &NodeKeys) {
        self.labels.extend(&other.labels);
        self.annotations.extend(&other.annotations);
    }

    /// What both keep.
    pub fn common(&self, other: &NodeKeys) -> NodeKeys {
        NodeKeys { labels: self.labels.common(&other.labels), annotations: self.annotations.common(&other.annotations) }
    }

    /// Whether everything `other` keeps is kept here.
    pub fn covers(&self, other: &NodeKeys) -> bool {
        self.labels.covers(&other.labels) && self.annotations.covers(&other.annotations)
    }
}

/// Strings shared between nodes, stored once. Bounded by the distinct strings of the nodes
/// that hold them: `shrink` drops those no node holds any more.
#[derive(Debug, Default)]
pub struct Interner(HashSet<Arc<str>>);

impl Interner {
    /// The shared copy of `s`.
    pub fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(shared) = self.0.get(s) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(s);
        self.0.insert(shared.clone());
        shared
    }

    /// Forgets the strings only the interner holds.
    pub fn shrink(&mut self) {
        self.0.retain(|s| Arc::strong_count(s) > 1);
    }

    /// Distinct strings held.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No string held.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_stay_sorted_and_unique() {
        let mut l: Labels = [("b", "2"), ("a", "1")].into();
        l.insert("b".into(), "3".into());
        l.insert("c".into(), "4".into());
        assert_eq!(l.iter().collect::<Vec<_>>(), [("a", "1"), ("b", "3"), ("c", "4")]);
        assert_eq!(l.get("b"), Some("3"));
        assert!(l.get("z").is_none() && l.contains_key("a"));
        l.retain(|k| k != "a");
        assert_eq!(l.len(), 2);
    }

    #[test]
    fn keys_cover_and_extend() {
        let mut a = NodeKeys::none();
        a.label("pool");
        let mut b = NodeKeys::none();
        b.label("pool").annotation("image");
        assert!(b.covers(&a) && !a.covers(&b));
        a.extend(&b);
        assert_eq!(a, b);
        assert!(NodeKeys::all().covers(&a) && !a.covers(&NodeKeys::all()));
    }

    #[test]
    fn interned_strings_are_shared_and_shrink_forgets_unused_ones() {
        let mut i = Interner::default();
        let a = i.intern("pool1");
        let b = i.intern("pool1");
        assert!(Arc::ptr_eq(&a, &b));
        let _c = i.intern("pool2");
        drop(_c);
        i.shrink();
        assert_eq!(i.len(), 1);
    }
}
