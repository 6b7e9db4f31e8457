//! The nodes in scope as the families read them: what each family reads of a node copied once
//! into one array (a family's pass over the nodes then reads memory in order, instead of each
//! node's own allocations once per family), with the label values the policy reads in columns.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use foldhash::{HashMap, HashMapExt};

use super::pool_of;
use crate::snapshot::{NodeInfo, NodeProblem, Readiness};

/// A node the policy's selector picks, with its pool (read once per evaluation: every family
/// groups by it).
#[derive(Clone, Copy)]
pub(crate) struct InScope<'a> {
    /// The node (what is not copied here: annotations, labels no column holds).
    pub node: &'a NodeInfo,
    /// `metadata.name`.
    pub name: &'a Arc<str>,
    /// Its pool (`pool_of`).
    pub pool: &'a Arc<str>,
    /// The index of its pool in `Nodes::pools`.
    pub pool_id: u32,
    /// Its row in `Nodes::columns`.
    pub row: u32,
    /// `status.nodeInfo.kubeletVersion`.
    pub kubelet_version: Option<&'a Arc<str>>,
    /// Ready or not.
    pub readiness: Readiness,
    /// The shutdown taint.
    pub shutdown: bool,
    /// `metadata.creationTimestamp`.
    pub created: Option<DateTime<Utc>>,
    /// Fields that could not be read.
    pub problems: &'a [NodeProblem],
}

/// The nodes in scope, their pools and the label values the policy reads.
#[derive(Default)]
pub(crate) struct Nodes<'a> {
    /// The nodes, in the order of the snapshot.
    pub nodes: Vec<InScope<'a>>,
    /// Each distinct pool name once, in the order first met (`InScope::pool_id` indexes it).
    pub pools: Vec<&'a Arc<str>>,
    /// The label values of every node, a row per node.
    pub columns: Columns<'a>,
}

/// Label values, a row per node and a column per key.
#[derive(Default)]
pub(crate) struct Columns<'a> {
    keys: Vec<String>,
    values: Vec<Option<&'a Arc<str>>>,
}

/// One label's values (`Columns::column`).
#[derive(Clone, Copy)]
pub(crate) struct Column<'c, 'a> {
    key: &'c str,
    /// The column's index, when the columns hold the key.
    at: Option<usize>,
    columns: &'c Columns<'a>,
}

impl<'a> Column<'_, 'a> {
    /// The value `node` carries.
    pub fn get(&self, node: &InScope<'a>) -> Option<&'a Arc<str>> {
        match self.at {
            Some(k) => self.columns.values[node.row as usize * self.columns.keys.len() + k],
            None => node.node.labels.shared(self.key),
        }
    }
}

impl<'a> Columns<'a> {
    /// The values of label `key` (read from each node's labels if no column holds it).
    pub fn column<'c>(&'c self, key: &'c str) -> Column<'c, 'a> {
        Column { key, at: self.keys.iter().position(|k| k == key), columns: self }
    }
}

impl<'a> Nodes<'a> {
    /// `nodes` with the values of the labels `keys` (the labels a policy reads), each node read
    /// once. Pools are told apart by name; the address of the last pool is compared first,
    /// since nodes of a pool share the interned name.
    pub fn new(nodes: impl Iterator<Item = &'a NodeInfo>, keys: Vec<String>) -> Self {
        let mut out = Nodes { columns: Columns { keys, values: Vec::new() }, ..Default::default() };
        // Pools by the address of their name, then by name.
        let mut by_address: HashMap<*const u8, u32> = HashMap::new();
        let mut index: HashMap<&'a str, u32> = HashMap::new();
        let mut last: Option<(&'a Arc<str>, u32)> = None;
        let mut canon = Canon::default();
        for node in nodes {
            let row = out.nodes.len() as u32;
            out.columns.values.extend(out.columns.keys.iter().map(|k| node.labels.shared(k).map(|v| canon.get(v))));
            let pool = pool_of(node);
            let pool_id = match last {
                Some((l, id)) if Arc::ptr_eq(l, pool) => id,
                _ => match by_address.get(&pool.as_ptr()) {
                    Some(id) => *id,
                    None => {
                        let id = *index.entry(&**pool).or_insert_with(|| {
                            out.pools.push(pool);
                            out.pools.len() as u32 - 1
                        });
                        if by_address.len() < CANON_MAX {
                            by_address.insert(pool.as_ptr(), id);
                        }
                        id
                    }
                },
            };
            last = Some((pool, pool_id));
            out.nodes.push(InScope {
                node,
                name: &node.name,
                pool: out.pools[pool_id as usize],
                pool_id,
                row,
                kubelet_version: node.kubelet_version.as_ref().map(|v| canon.get(v)),
                readiness: node.readiness,
                shutdown: node.shutdown,
                created: node.created,
                problems: &node.problems,
            });
        }
        out
    }
}

/// At most this many distinct strings are made canonical per evaluation (a cluster of interned
/// strings has a few hundred; past the bound strings are used as they are, which is as right
/// and only slower).
pub(crate) const CANON_MAX: usize = 4096;

/// The first reference met to each shared string (by its address): the values families compare
/// and clone are then read from a few hot places, not from each node's own memory.
#[derive(Default)]
pub(crate) struct Canon<'a>(HashMap<*const u8, &'a Arc<str>>);

impl<'a> Canon<'a> {
    /// The canonical reference to the string `value` shares.
    pub fn get(&mut self, value: &'a Arc<str>) -> &'a Arc<str> {
        match self.0.get(&value.as_ptr()) {
            Some(first) => first,
            None => {
                if self.0.len() < CANON_MAX {
                    self.0.insert(value.as_ptr(), value);
                }
                value
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_references_are_bounded_and_equal_to_their_strings() {
        let shared: Arc<str> = Arc::from("v1.35.3");
        let copies: Vec<Arc<str>> = (0..3).map(|_| shared.clone()).collect();
        let distinct: Vec<Arc<str>> = (0..CANON_MAX + 10).map(|i| Arc::from(format!("v{i}"))).collect();
        let mut canon = Canon::default();
        let first = canon.get(&copies[0]);
        assert!(copies.iter().all(|c| std::ptr::eq(canon.get(c), first)), "one reference per shared string");
        for d in &distinct {
            assert_eq!(canon.get(d), d);
        }
        assert_eq!(canon.0.len(), CANON_MAX, "bounded");
        // Past the bound a string is its own reference.
        assert!(std::ptr::eq(canon.get(&distinct[CANON_MAX + 5]), &distinct[CANON_MAX + 5]));
    }
}
