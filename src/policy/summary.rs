//! The summaries of an evaluation: the control plane, node counts, pools and the samples the
//! metrics export.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};

use super::ids::{RuleId, Subject};
use super::outcome::{ControlPlane, NotReadyNode, Pool, Samples};
use super::rules::{pool_of, Output, KUBELET_VERSION_END_OF_SUPPORT, KUBELET_VERSION_SKEW, NODE_IMAGE_OUTDATED};
use super::signal::Signal;
use crate::crd::v1alpha1::{NodeCounts, Severity, SupportState};
use crate::snapshot::{ClusterSnapshot, NodeInfo, Readiness};
use crate::version::parse_version;

/// What `summarise` returns.
pub(super) struct Summary {
    pub control_plane: Option<ControlPlane>,
    pub nodes: NodeCounts,
    pub pools: Vec<Pool>,
    pub samples: Samples,
}

/// The summaries of the families' output for the nodes in scope.
pub(super) fn summarise(snapshot: &ClusterSnapshot, nodes: &[&NodeInfo], out: Output, now: DateTime<Utc>) -> Summary {
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
    samples.not_ready = nodes
        .iter()
        .filter_map(|n| match n.readiness {
            Readiness::NotReady { since: Some(since) } => {
                Some(NotReadyNode { node: n.name.clone(), pool: pool_of(n).into(), since })
            }
            _ => None,
        })
        .collect();
    Summary { control_plane, nodes: counts(nodes, &out.signals, now), pools: pools(nodes, &samples), samples }
}

fn counts(nodes: &[&NodeInfo], signals: &[Signal], now: DateTime<Utc>) -> NodeCounts {
    let ready = nodes.iter().filter(|n| n.readiness.is_ready()).count() as u32;
    // Nodes with a signal of `rules` at `min` or worse.
    let nodes_at = |rules: &[RuleId], min: Severity| -> u32 {
        let hit: HashSet<&Subject> = signals
            .iter()
            .filter(|s| rules.contains(&s.rule) && s.at(now).is_some_and(|sev| sev >= min))
            .map(|s| &s.subject)
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

fn pools(nodes: &[&NodeInfo], samples: &Samples) -> Vec<Pool> {
    let mut by_pool: BTreeMap<&str, Pool> = BTreeMap::new();
    for node in nodes {
        let pool = by_pool.entry(pool_of(node)).or_default();
        pool.nodes += 1;
        pool.ready += u32::from(node.readiness.is_ready());
        *pool.kubelets.entry(node.kubelet_version.clone()).or_default() += 1;
    }
    for image in &samples.node_images {
        if let Some(pool) = by_pool.get_mut(image.pool.as_str()) {
            *pool.images.entry(image.image.clone()).or_default() += 1;
            let day = image.released.date_naive();
            pool.oldest_image = Some(pool.oldest_image.map_or(day, |o| o.min(day)));
        }
    }
    by_pool.into_iter().map(|(name, pool)| Pool { name: name.to_string(), ..pool }).collect()
}
