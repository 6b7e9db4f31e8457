//! Counting values nodes share: a pool's nodes mostly carry the same interned string, so the
//! value counted last is compared by address first; other values are found by content (a hash
//! map), so a pool where every node carries its own value costs no more than one per node.

use std::hash::Hash;
use std::sync::Arc;

use foldhash::{HashMap, HashMapExt};

use super::outcome::ImageOrigin;

/// A value that may be told equal to another without reading it.
pub(crate) trait Shared: Copy + Eq + Hash {
    /// True only if `self == other` (false says nothing).
    fn same(self, other: Self) -> bool;
}

impl Shared for &Arc<str> {
    fn same(self, other: Self) -> bool {
        Arc::ptr_eq(self, other)
    }
}

impl Shared for Option<&Arc<str>> {
    fn same(self, other: Self) -> bool {
        match (self, other) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }
}

impl Shared for &ImageOrigin {
    fn same(self, other: Self) -> bool {
        match (self, other) {
            (ImageOrigin::Version(a), ImageOrigin::Version(b)) => Arc::ptr_eq(a, b),
            (ImageOrigin::NodeCreation, ImageOrigin::NodeCreation) => true,
            _ => false,
        }
    }
}

/// Distinct values (by content) in the order first counted, each with its count.
#[derive(Debug, Clone)]
pub(crate) struct Tally<K> {
    values: Vec<(K, u32)>,
    index: HashMap<K, usize>,
    last: usize,
}

impl<K> Default for Tally<K> {
    fn default() -> Self {
        Tally { values: Vec::new(), index: HashMap::new(), last: 0 }
    }
}

impl<K: Shared> Tally<K> {
    /// Counts `value` once more.
    pub fn add(&mut self, value: K) {
        if let Some((v, n)) = self.values.get_mut(self.last) {
            if v.same(value) {
                *n += 1;
                return;
            }
        }
        let values = &mut self.values;
        self.last = *self.index.entry(value).or_insert_with(|| {
            values.push((value, 0));
            values.len() - 1
        });
        self.values[self.last].1 += 1;
    }

    /// Every distinct value with its count, in the order first counted.
    pub fn values(&self) -> &[(K, u32)] {
        &self.values
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_counted_by_content_whether_shared_or_not() {
        let (a, b, a2) = (Arc::<str>::from("a"), Arc::<str>::from("b"), Arc::<str>::from("a"));
        let mut t = Tally::default();
        for v in [&a, &a, &b, &a2, &a, &b] {
            t.add(v);
        }
        let counts: Vec<(&str, u32)> = t.values().iter().map(|(v, n)| (&***v, *n)).collect();
        assert_eq!(counts, [("a", 4), ("b", 2)]);
        let mut t = Tally::default();
        for v in [None, Some(&a), None, Some(&a2)] {
            t.add(v);
        }
        assert_eq!(t.values(), [(None, 2), (Some(&a), 2)]);
    }

    #[test]
    fn a_value_per_node_is_counted_in_linear_time() {
        // 100,000 distinct values (every node of a pool its own): found by hash, not by scan.
        let values: Vec<Arc<str>> = (0..100_000).map(|i| Arc::from(format!("v{i}"))).collect();
        let mut t = Tally::default();
        for v in values.iter().chain(&values) {
            t.add(v);
        }
        assert_eq!(t.values().len(), 100_000);
        assert!(t.values().iter().all(|(_, n)| *n == 2));
    }
}
