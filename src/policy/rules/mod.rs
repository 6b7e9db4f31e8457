//! The rule families. Each module owns one section of the policy (or none): its settings and
//! their resolution from preset + policy, the signals it emits, their wording, and its tests.
//! The engine runs the families of `FAMILIES` in order; adding a family is a module and a line
//! there (README, "Adding a rule").

mod alpha;
mod attestation;
mod calendar;
mod heartbeat;
mod image;
mod metadata;
mod nodes;
mod problems;
mod scope;
mod stopped;
mod version;

use std::fmt;
use std::sync::{Arc, LazyLock};

use chrono::{DateTime, Utc};

use super::ids::{RuleId, POLICY_INVALID};
use super::outcome::{ControlPlane, Samples};
use super::settings::{PolicyError, Sources};
use super::signal::Signal;
use crate::calendar::SupportCalendar;
use crate::crd::v1alpha1::LeaseReference;
use crate::snapshot::{ClusterSnapshot, NodeInfo, NodeKeys};
use crate::version::Minor;

pub(crate) use image::NODE_IMAGE_OUTDATED;
pub(crate) use nodes::{Column, Columns, InScope, Nodes};
pub(crate) use stopped::{CLUSTER_NOT_UPGRADABLE, CLUSTER_STOPPED, NODE_NOT_READY};
pub(crate) use version::{
    KUBELET_VERSION_END_OF_SUPPORT, KUBELET_VERSION_SKEW, KUBERNETES_VERSION_END_OF_SUPPORT, KUBERNETES_VERSION_UNKNOWN,
};

/// A rule family, as the engine knows it.
pub(crate) struct Family {
    /// The rules it reports.
    pub rules: &'static [RuleId],
    /// Its settings from the policy and the preset; `None` when it is not evaluated.
    pub resolve: fn(&Sources<'_>) -> Resolved,
}

/// A family's settings resolved: evaluated (`Some`), not evaluated (`None`), or every problem.
pub(crate) type Resolved = Result<Option<Box<dyn Rules>>, Vec<PolicyError>>;

/// Every family, in the order they run.
pub(crate) const FAMILIES: &[Family] = &[
    version::FAMILY,
    image::FAMILY,
    stopped::FAMILY,
    problems::FAMILY,
    heartbeat::FAMILY,
    attestation::FAMILY,
    alpha::FAMILY,
    metadata::FAMILY,
    calendar::FAMILY,
    scope::FAMILY,
];

/// Every rule identifier, by name: what `rule` can hold.
pub fn all_rules() -> Vec<RuleId> {
    let mut all: Vec<RuleId> = FAMILIES.iter().flat_map(|f| f.rules.iter().copied()).collect();
    all.push(POLICY_INVALID);
    all.sort();
    all.dedup();
    all
}

/// What a family reads.
pub(crate) struct Input<'a> {
    /// The whole snapshot (Leases, discovery, every node).
    pub snapshot: &'a ClusterSnapshot,
    /// The nodes the policy's selector picks.
    pub nodes: &'a [InScope<'a>],
    /// Their pools, each once (`InScope::pool_id` is an index here).
    pub pools: &'a [&'a Arc<str>],
    /// The label values of the nodes (`InScope::row` is a row here).
    pub columns: &'a Columns<'a>,
    /// The instant of evaluation.
    pub now: DateTime<Utc>,
}

/// What families write: signals may borrow the names of the nodes of the input.
#[derive(Default)]
pub(crate) struct Output<'a> {
    /// Every signal.
    pub signals: Vec<Signal<'a>>,
    /// The control plane, from the version family.
    pub control_plane: Option<ControlPlane>,
    /// Detail for metrics (and the pools' images).
    pub samples: Samples,
    /// The name of the node of each entry of `samples.node_images`, as the snapshot holds it:
    /// the summary tells nodes apart by its address, without reading the node.
    pub image_nodes: Vec<&'a Arc<str>>,
    /// What the upgrade plan needs of the version settings, from the version family.
    pub upgrades: Option<Upgrades>,
}

/// The version settings the upgrade plan reads (the rest it reads from the signals).
#[derive(Debug, Clone)]
pub(crate) struct Upgrades {
    /// The calendar, with the policy's numbers.
    pub calendar: Arc<SupportCalendar>,
    /// How many minors a kubelet may be behind the control plane.
    pub max_kubelet_skew_minors: u32,
    /// At end of support a minor leaves the update servers: no incremental path from it.
    pub upgrade_path_removed: bool,
    /// The control plane's minor, when it parses.
    pub control_plane: Option<Minor>,
}

/// A family with its settings resolved: it evaluates a snapshot.
pub(crate) trait Rules: fmt::Debug + Send + Sync {
    /// Emits the signals of `input` (and what the summaries need) into `out`.
    fn evaluate<'a>(&self, input: &Input<'a>, out: &mut Output<'a>);

    /// The Leases it reads (the operator caches those, `check` reads those).
    fn leases(&self) -> Vec<LeaseReference> {
        Vec::new()
    }

    /// Adds the node labels and annotations it reads to `keys` (readers drop the others).
    fn node_keys(&self, _keys: &mut NodeKeys) {}
}

/// Labels that name a node's pool, in the order they are tried.
pub const POOL_LABELS: [&str; 5] = [
    "kubernetes.azure.com/agentpool",
    "agentpool",
    "msft.microsoft/nodepool-name",
    "eks.amazonaws.com/nodegroup",
    "cloud.google.com/gke-nodepool",
];

/// The pool of nodes without a pool label.
static DEFAULT_POOL: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from("default"));

/// The pool a node belongs to (`default` when no pool label is set), shared with the node.
pub fn pool_of(node: &NodeInfo) -> &Arc<str> {
    POOL_LABELS.iter().find_map(|k| node.labels.shared(k)).unwrap_or(&DEFAULT_POOL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_names_are_unique_across_families_unless_shared_on_purpose() {
        // Node read problems report under the rule of the family that reads the field.
        let shared = [image::NODE_IMAGE_UNKNOWN, stopped::NODE_NOT_READY, version::KUBERNETES_VERSION_UNKNOWN];
        let mut seen = std::collections::BTreeMap::new();
        for (i, f) in FAMILIES.iter().enumerate() {
            for r in f.rules {
                if let Some(j) = seen.insert(*r, i) {
                    assert!(shared.contains(r), "{r} is declared by families {j} and {i}");
                }
            }
        }
    }

    /// The README lists every rule; the list cannot drift from the code.
    #[test]
    fn the_readme_lists_every_rule() {
        let readme = include_str!("../../../README.md");
        let start = readme.find("\nRules: ").expect("a paragraph 'Rules: …' in the README") + "\nRules: ".len();
        let paragraph = readme[start..].split("\n\n").next().unwrap_or_default().replace('\n', " ");
        let mut listed: Vec<String> =
            paragraph.split(", ").map(|r| r.trim().trim_matches(['`', '.']).to_string()).collect();
        listed.sort();
        let all: Vec<String> = all_rules().iter().map(|r| r.to_string()).collect();
        assert_eq!(listed, all);
    }
}
