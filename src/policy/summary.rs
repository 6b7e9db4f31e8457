//! The summaries of an evaluation: the control plane, node counts, pools and the samples the
//! metrics export.

use foldhash::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::outcome::{ControlPlane, ImageOrigin, NotReadyNode, Pool, Samples};
use super::rules::{InScope, Output, KUBELET_VERSION_END_OF_SUPPORT, KUBELET_VERSION_SKEW, NODE_IMAGE_OUTDATED};
use super::tally::Tally;
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
    pool_names: &[&Arc<str>],
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
    // One pass over the signals: each node signal's severity now, read once. Nodes are told
    // apart by the address of their name in the snapshot (each node holds its own; nodes are
    // unique by name), which reads nothing of the node.
    let (mut warning, mut outdated, mut unsupported): (HashSet<*const Arc<str>>, HashSet<_>, HashSet<_>) =
        Default::default();
    for s in &out.signals {
        let Some(node) = s.about.node() else { continue };
        let Some(severity) = s.at(now).filter(|sev| *sev >= Severity::Warning) else { continue };
        let node = std::ptr::from_ref(node);
        warning.insert(node);
        if s.rule == NODE_IMAGE_OUTDATED {
            outdated.insert(node);
        }
        if severity >= Severity::Unsupported && [KUBELET_VERSION_END_OF_SUPPORT, KUBELET_VERSION_SKEW].contains(&s.rule)
        {
            unsupported.insert(node);
        }
    }
    for (image, node) in samples.node_images.iter_mut().zip(&out.image_nodes) {
        image.warning = warning.contains(&std::ptr::from_ref(*node));
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
    let ready = nodes.iter().filter(|n| n.readiness.is_ready()).count() as u32;
    let counts = NodeCounts {
        total: nodes.len() as u32,
        ready,
        not_ready: nodes.len() as u32 - ready,
        stopped: nodes.iter().filter(|n| n.shutdown).count() as u32,
        outdated_image: outdated.len() as u32,
        unsupported_kubelet: unsupported.len() as u32,
    };
    Summary { control_plane, nodes: counts, pools: pools(nodes, pool_names, &samples), samples }
}

fn pools(nodes: &[InScope<'_>], names: &[&Arc<str>], samples: &Samples) -> Vec<Pool> {
    // Counted per pool (by the nodes' pool indices), then ordered by value.
    let mut kubelets: Vec<Tally<Option<&Arc<str>>>> = vec![Tally::default(); names.len()];
    let mut images: Vec<Tally<&ImageOrigin>> = vec![Tally::default(); names.len()];
    let mut pools: Vec<Pool> = names.iter().map(|name| Pool { name: name.to_string(), ..Default::default() }).collect();
    for node in nodes {
        let i = node.pool_id as usize;
        pools[i].nodes += 1;
        pools[i].ready += u32::from(node.readiness.is_ready());
        kubelets[i].add(node.kubelet_version);
    }
    // Images come from the nodes in scope, so their pools are among the nodes' (compared by
    // address first: nodes of a pool come one after the other, with the pool's interned name).
    let index: HashMap<&str, usize> = names.iter().enumerate().map(|(i, name)| (&***name, i)).collect();
    let mut last: Option<(&Arc<str>, usize)> = None;
    for image in &samples.node_images {
        let i = match last {
            Some((pool, i)) if Arc::ptr_eq(pool, &image.pool) => i,
            _ => match index.get(&*image.pool) {
                Some(i) => *i,
                None => continue,
            },
        };
        last = Some((&image.pool, i));
        images[i].add(&image.image);
        let day = image.released.date_naive();
        pools[i].oldest_image = Some(pools[i].oldest_image.map_or(day, |o| o.min(day)));
    }
    for ((pool, kubelets), images) in pools.iter_mut().zip(kubelets).zip(images) {
        pool.kubelets = kubelets.values().iter().map(|(k, n)| (k.cloned(), *n)).collect();
        pool.images = images.values().iter().map(|(image, n)| ((*image).clone(), *n)).collect();
    }
    pools.retain(|p| p.nodes > 0);
    pools.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    pools
}
