//! `systemMetadata`: labels the platform sets on every node, which must be left alone (seed
//! rule R9: changing system-created metadata makes a cluster unsupported; adding labels is
//! fine). A node that lacks one is a finding; so are the nodes of a pool whose value of a
//! label the platform sets alike on a whole pool differs from the rest of the pool. Grouped
//! per pool and cause like the other node rules.

use std::collections::BTreeSet;

use foldhash::{HashMap, HashMapExt};
use std::sync::Arc;

use super::{Column, Family, InScope, Input, Output, Rules};
use crate::crd::v1alpha1::{Severity, SystemMetadataSpec};
use crate::policy::ids::RuleId;
use crate::policy::settings::{Errors, PolicyError};
use crate::policy::signal::{Cause, Fact, Signal, Who};
use crate::policy::tally::Tally;
use crate::snapshot::{NodeField, NodeKeys};
use crate::text::snippet;

/// At most this many system labels (the schema says so too).
const MAX_LABELS: usize = 64;

/// A system label missing from a node, or changed on some nodes of a pool.
pub(crate) const SYSTEM_METADATA_CHANGED: RuleId = RuleId::new("SystemMetadataChanged");

pub(super) const FAMILY: Family = Family {
    rules: &[SYSTEM_METADATA_CHANGED],
    resolve: |sources| {
        let Some(section) = sources.section(|s| s.system_metadata.as_ref()) else { return Ok(None) };
        if section.enabled == Some(false) {
            return Ok(None);
        }
        Ok(Some(Box::new(MetadataRules::try_from(section)?)))
    },
};

/// The system-metadata settings, resolved.
#[derive(Debug, Clone)]
struct MetadataRules {
    severity: Severity,
    /// Label keys, each with whether a pool's nodes all carry the same value.
    labels: Vec<(String, bool)>,
}

/// A label key as Kubernetes accepts one: an optional DNS-subdomain prefix (at most 253
/// characters) and `/`, then a name of at most 63 alphanumerics, `-`, `_`, `.`, starting and
/// ending alphanumeric.
fn label_key_problem(key: &str) -> Option<&'static str> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let alnum_ends = |s: &str| {
        s.starts_with(|c: char| c.is_ascii_alphanumeric()) && s.ends_with(|c: char| c.is_ascii_alphanumeric())
    };
    if name.is_empty() || name.len() > 63 || !alnum_ends(name) {
        return Some("the name must be 1 to 63 characters, starting and ending with a letter or digit");
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
        return Some("the name may hold only letters, digits, '-', '_' and '.'");
    }
    if let Some(prefix) = prefix {
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && alnum_ends(l)
                && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        if prefix.len() > 253 || !prefix.split('.').all(label_ok) {
            return Some("the prefix must be a DNS subdomain (lowercase, at most 253 characters)");
        }
    }
    None
}

impl TryFrom<SystemMetadataSpec> for MetadataRules {
    type Error = Vec<PolicyError>;

    fn try_from(s: SystemMetadataSpec) -> Result<Self, Self::Error> {
        let mut errors = Errors::default();
        if s.labels.is_empty() {
            errors.push("spec.systemMetadata.labels", "name at least one label (or set enabled: false)");
        }
        if s.labels.len() > MAX_LABELS {
            errors.push("spec.systemMetadata.labels", format!("{} labels are more than {MAX_LABELS}", s.labels.len()));
        }
        let mut seen = BTreeSet::new();
        for (i, l) in s.labels.iter().enumerate() {
            let field = format!("spec.systemMetadata.labels[{i}].key");
            if let Some(problem) = label_key_problem(&l.key) {
                errors.push(&field, format!("'{}' is not a label key: {problem}", snippet(&l.key)));
            } else if !seen.insert(l.key.as_str()) {
                errors.push(&field, format!("'{}' is listed twice", snippet(&l.key)));
            }
        }
        let labels = s.labels.iter().map(|l| (l.key.clone(), l.uniform_in_pool.unwrap_or(false))).collect();
        errors.into_result(MetadataRules { severity: s.severity.unwrap_or(Severity::Warning), labels })
    }
}

impl Rules for MetadataRules {
    fn node_keys(&self, keys: &mut NodeKeys) {
        for (key, _) in &self.labels {
            keys.label(key);
        }
    }

    fn evaluate<'a>(&self, input: &Input<'a>, out: &mut Output<'a>) {
        // Unreadable labels are reported as a problem of the node.
        let readable = |n: &&'a InScope<'a>| !n.problems.iter().any(|p| p.field == NodeField::Labels);
        let uniform = self.labels.iter().filter(|(_, u)| *u).count();
        // Per pool and uniform label, the values its nodes carry.
        let mut tallies: Vec<Vec<Tally<&'a Arc<str>>>> = Vec::new();
        tallies.resize_with(input.pools.len(), || (0..uniform).map(|_| Tally::default()).collect());
        // A node lacking labels: one signal naming them all, grouped with the pool's nodes that
        // lack the same ones. Nodes share the cause and the words of the same missing set (a
        // bit per label: at most 64 labels, as the schema says).
        let mut shared: HashMap<u64, (Cause, Arc<MetadataFact>)> = HashMap::new();
        let columns: Vec<Column<'_, 'a>> = self.labels.iter().map(|(key, _)| input.columns.column(key)).collect();
        // One pass over the nodes, each label looked up once.
        for node in input.nodes.iter().filter(readable) {
            let mut missing = 0u64;
            let mut u = 0;
            for (i, ((_, is_uniform), column)) in self.labels.iter().zip(&columns).enumerate() {
                let value = column.get(node);
                if value.is_none() {
                    missing |= 1u64.checked_shl(i as u32).unwrap_or(0);
                }
                if *is_uniform {
                    if let Some(value) = value {
                        tallies[node.pool_id as usize][u].add(value);
                    }
                    u += 1;
                }
            }
            if missing == 0 {
                continue;
            }
            let (cause, fact) = shared.entry(missing).or_insert_with(|| {
                let keys: Vec<String> = (0..self.labels.len().min(64))
                    .filter(|i| missing & (1 << i) != 0)
                    .map(|i| self.labels[i].0.clone())
                    .collect();
                (Cause::Value(format!("missing {}", keys.join(" ")).into()), Arc::new(MetadataFact::Missing(keys)))
            });
            let signal = Signal::node(SYSTEM_METADATA_CHANGED, node.name, node.pool, cause.clone(), fact.clone());
            out.signals.push(signal.base(self.severity));
        }
        if tallies.iter().flatten().all(|t| t.values().len() <= 1) {
            return; // every pool carries one value of each uniform label (the usual case)
        }
        // The nodes of each pool, in order, and the pools by name.
        let mut members: Vec<Vec<&'a InScope<'a>>> = vec![Vec::new(); input.pools.len()];
        for node in input.nodes.iter().filter(readable) {
            members[node.pool_id as usize].push(node);
        }
        let mut by_name: Vec<usize> = (0..input.pools.len()).collect();
        by_name.sort_by(|a, b| input.pools[*a].cmp(input.pools[*b]));
        let uniform = self.labels.iter().zip(&columns).filter(|((_, uniform), _)| *uniform);
        for (u, ((key, _), column)) in uniform.enumerate() {
            for &p in &by_name {
                self.differing(key, column, input.pools[p], &tallies[p][u], &members[p], out);
            }
        }
    }
}

impl MetadataRules {
    /// The nodes of `pool` whose value of the uniform label `key` differs from the one most of
    /// the pool's nodes carry (on a tie, the first by value): the values in order, each value's
    /// nodes in the order of the snapshot.
    fn differing<'a>(
        &self,
        key: &str,
        column: &Column<'_, 'a>,
        pool: &'a Arc<str>,
        tally: &Tally<&'a Arc<str>>,
        members: &[&'a InScope<'a>],
        out: &mut Output<'a>,
    ) {
        if tally.values().len() <= 1 {
            return;
        }
        let mut values: Vec<(&'a Arc<str>, u32)> = tally.values().to_vec();
        values.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let Some(&(usual, majority)) = values.iter().max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(a.0))) else {
            return;
        };
        let index: HashMap<&str, usize> = values.iter().enumerate().map(|(i, (v, _))| (&***v, i)).collect();
        let mut names: Vec<Vec<&'a Arc<str>>> = vec![Vec::new(); values.len()];
        for node in members {
            if let Some(i) = column.get(node).and_then(|v| index.get(&**v)) {
                names[*i].push(node.name);
            }
        }
        for ((value, _), names) in values.iter().zip(names).filter(|((v, _), _)| **v != *usual) {
            let fact = Arc::new(MetadataFact::Differs {
                key: key.to_string(),
                value: value.to_string(),
                usual: usual.to_string(),
                majority: majority as usize,
            });
            let cause = Cause::Value(format!("{key}={value}").into());
            for name in names {
                let signal = Signal::node(SYSTEM_METADATA_CHANGED, name, pool, cause.clone(), fact.clone());
                out.signals.push(signal.base(self.severity));
            }
        }
    }
}

/// How system labels were changed.
#[derive(Debug)]
enum MetadataFact {
    /// These labels are missing.
    Missing(Vec<String>),
    /// The node's value of `key`, the pool's usual one, and how many nodes carry the usual one.
    Differs { key: String, value: String, usual: String, majority: usize },
}

const RESTORE: &str = "system-created metadata was changed, which the platform does not support. Restore it (or \
                       replace the nodes through the platform).";

impl Fact for MetadataFact {
    fn message(&self, who: &Who<'_>, _: Severity) -> String {
        match self {
            MetadataFact::Missing(keys) => {
                let shown: Vec<String> = keys.iter().map(|k| snippet(k)).collect();
                let (noun, list) = match shown.split_last() {
                    Some((last, [])) => ("label", last.clone()),
                    Some((last, rest)) => ("labels", format!("{} and {last}", rest.join(", "))),
                    None => ("labels", String::new()),
                };
                format!(
                    "{} lack{} the {noun} {list}, which the platform sets on every node: {RESTORE}",
                    who.subject(),
                    who.s()
                )
            }
            MetadataFact::Differs { key, value, usual, majority } => format!(
                "{} carr{} {}={} while {majority} other node{} of the pool carr{} {}: the platform sets this label \
                 alike on every node of a pool, so {RESTORE}",
                who.subject(),
                if who.one() { "ies" } else { "y" },
                snippet(key),
                snippet(value),
                if *majority == 1 { "" } else { "s" },
                if *majority == 1 { "ies" } else { "y" },
                snippet(usual),
            ),
        }
    }
}

#[cfg(test)]
mod tests;
