//! Signals grouped as findings: signals of nodes with the same (rule, pool, cause) make one
//! finding; every other signal is a finding of its own. Grouped once per evaluation: the
//! findings and the upgrade plan read the same groups.

use std::collections::hash_map::Entry;
use std::sync::Arc;

use foldhash::{HashMap, HashMapExt};

use super::ids::RuleId;
use super::signal::{About, Cause, PoolGroup, Signal};

/// Signals of nodes with the same (rule, pool, cause) make one finding; every other signal is
/// a finding of its own. Ordered as the groups were when they were keyed by value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Group<'a> {
    /// A signal of its own (about one subject).
    One(&'a About<'a>),
    /// The node signals of a pool with one cause.
    Pool(&'a PoolGroup<'a>),
}

/// Whether two node signals are of one group, comparing shared strings by address first
/// (a family emits a pool's nodes one after the other, with the pool's strings).
fn same_group(a: &Signal<'_>, b: &Signal<'_>) -> bool {
    let same = |x: &Arc<str>, y: &Arc<str>| Arc::ptr_eq(x, y) || x == y;
    match (&a.group, &b.group) {
        (Some(x), Some(y)) => {
            a.rule == b.rule
                && same(x.pool, y.pool)
                && match (&x.cause, &y.cause) {
                    (Cause::Value(v), Cause::Value(w)) => same(v, w),
                    (c, d) => c == d,
                }
        }
        _ => false,
    }
}

/// The signals of one (rule, group), in the order they were emitted.
pub(crate) type Grouped<'s, 'a> = ((RuleId, Group<'s>), Vec<&'s Signal<'a>>);

/// The signals of each (rule, group), in the order of their keys.
pub(crate) fn grouped<'s, 'a>(signals: &'s [Signal<'a>]) -> Vec<Grouped<'s, 'a>> {
    let mut index: HashMap<(RuleId, Group<'s>), usize> = HashMap::new();
    let mut groups: Vec<((RuleId, Group<'s>), Vec<&'s Signal<'a>>)> = Vec::new();
    let mut last: Option<(&'s Signal<'a>, usize)> = None;
    for s in signals {
        if let Some((previous, i)) = last.filter(|(previous, _)| same_group(previous, s)) {
            groups[i].1.push(s);
            last = Some((previous, i));
            continue;
        }
        let group = match &s.group {
            Some(g) => Group::Pool(g),
            None => Group::One(&s.about),
        };
        let i = match index.entry((s.rule, group)) {
            Entry::Occupied(e) => {
                groups[*e.get()].1.push(s);
                *e.get()
            }
            Entry::Vacant(e) => {
                e.insert(groups.len());
                groups.push(((s.rule, group), vec![s]));
                groups.len() - 1
            }
        };
        last = Some((s, i));
    }
    groups.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    groups
}
