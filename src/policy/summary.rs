//! The summaries of an evaluation: the control plane, node counts, pools and the samples the
//! metrics export.

use foldhash::{HashMap, HashMapExt, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::ids::RuleId;
use super::outcome::{ControlPlane, NotReadyNode, Pool, Samples};
use super::rules::{InScope, Output, KUBELET_VERSION_END_OF_SUPPORT, KUBELET_VERSION_SKEW, NODE_IMAGE_OUTDATED};
use super::signal::Signal;
use crate::crd::v1alpha1::{NodeCounts, Severity, SupportState};
use crate::snapshot::{ClusterSnapshot, Readiness};
use crate::version::parse_version;

/// What `summarise` returns.
pub(super) struct Summary {
    pub control_plane: Option<ControlPlane>,
    pub nodes: NodeCounts,
    pub pools: Vec<Pool>,
    pub samples: Samples,
}

/// The summaries of the families' output for the nodes in scope.
pub(super) fn summarise(
    snapshot: &ClusterSnapshot,
    nodes: &[InScope<'_>],
    out: Output<'_>,
    now: DateTime<Utc>,
) -> Summary {
    // Without version rules the control plane is still shown, its support unknown.
    let control_plane = out.control_plane.or_else(|| {
        snapshot.server_version.as_ref().map(|v| ControlPlane {
            version: Some(v.clone()),
            minor: parse_version(v).ok(),
            end_of_support: None,
            state: SupportState::Unknown,
        })
    });
    let mut samples = out.samples;
    samples.version_ends.sort();
    samples.version_ends.dedup();
    // Nodes with a signal at Warning or worse now, by their name's address (each node of a
    // snapshot holds its own name; the samples share it).
    let warning: HashSet<*const u8> = out
        .signals
        .iter()
        .filter_map(|s| s.about.node().filter(|_| s.at(now).is_some_and(|sev| sev >= Severity::Warning)))
        .map(|n| n.as_ptr())
        .collect();
    for image in &mut samples.node_images {
        image.warning = warning.contains(&image.node.as_ptr());
    }
    samples.not_ready = nodes
        .iter()
        .filter_map(|n| match n.readiness {
            Readiness::NotReady { since: Some(since) } => {
                Some(NotReadyNode { node: n.name.clone(), pool: n.pool.clone(), since })
            }
            _ => None,
        })
        .collect();
    Summary { control_plane, nodes: counts(nodes, &out.signals, now), pools: pools(nodes, &samples), samples }
}

fn counts(nodes: &[InScope<'_>], signals: &[Signal<'_>], now: DateTime<Utc>) -> NodeCounts {
    let ready = nodes.iter().filter(|n| n.readiness.is_ready()).count() as u32;
    // Nodes with a signal of `rules` at `min` or worse, told apart by their name's address
    // (each node of a snapshot holds its own; nodes are unique by name).
    let nodes_at = |rules: &[RuleId], min: Severity| -> u32 {
        let hit: HashSet<*const u8> = signals
            .iter()
            .filter(|s| rules.contains(&s.rule))
            .filter_map(|s| s.about.node().filter(|_| s.at(now).is_some_and(|sev| sev >= min)))
            .map(|n| n.as_ptr())
            .collect();
        hit.len() as u32
    };
    NodeCounts {
        total: nodes.len() as u32,
        ready,
        not_ready: nodes.len() as u32 - ready,
        stopped: nodes.iter().filter(|n| n.shutdown).count() as u32,
        outdated_image: nodes_at(&[NODE_IMAGE_OUTDATED], Severity::Warning),
        unsupported_kubelet: nodes_at(&[KUBELET_VERSION_END_OF_SUPPORT, KUBELET_VERSION_SKEW], Severity::Unsupported),
    }
}

fn pools(nodes: &[InScope<'_>], samples: &Samples) -> Vec<Pool> {
    let mut index: HashMap<Arc<str>, usize> = HashMap::new();
    let mut pools: Vec<Pool> = Vec::new();
    let mut last: Option<(Arc<str>, usize)> = None;
    let mut pool_of_name = |name: &Arc<str>| -> usize {
        // Nodes of a pool come one after the other, with the pool's (interned) name.
        if let Some((_, i)) = last.as_ref().filter(|(l, _)| Arc::ptr_eq(l, name)) {
            return *i;
        }
        let i = match index.get(&**name) {
            Some(i) => *i,
            None => {
                pools.push(Pool { name: name.to_string(), ..Default::default() });
                index.insert(name.clone(), pools.len() - 1);
                pools.len() - 1
            }
        };
        last = Some((name.clone(), i));
        i
    };
    let at: Vec<usize> = nodes.iter().map(|node| pool_of_name(node.pool)).collect();
    let images: Vec<usize> = samples.node_images.iter().map(|image| pool_of_name(&image.pool)).collect();
    for (node, i) in nodes.iter().zip(at) {
        let pool = &mut pools[i];
        pool.nodes += 1;
        pool.ready += u32::from(node.readiness.is_ready());
        match pool.kubelets.get_mut(&node.kubelet_version) {
            Some(n) => *n += 1,
            None => {
                pool.kubelets.insert(node.kubelet_version.clone(), 1);
            }
        }
    }
    for (image, i) in samples.node_images.iter().zip(images) {
        let pool = &mut pools[i];
        match pool.images.get_mut(&image.image) {
            Some(n) => *n += 1,
            None => {
                pool.images.insert(image.image.clone(), 1);
            }
        }
        let day = image.released.date_naive();
        pool.oldest_image = Some(pool.oldest_image.map_or(day, |o| o.min(day)));
    }
    // Images of nodes out of scope have no pool here (samples come from the nodes in scope).
    pools.retain(|p| p.nodes > 0);
    pools.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    pools
}
