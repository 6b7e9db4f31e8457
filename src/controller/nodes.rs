//! The node cache: what the rules read of every node, with only the labels and annotations
//! some policy reads (`NodeKeys`) and the strings nodes share stored once, so that memory grows
//! with the nodes, not with what the kubelet and the cloud write on them.
//!
//! It is its own store (not a kube reflector): it compares each event with what it holds, so a
//! heartbeat (nothing the rules read changed) costs one comparison and no evaluation, and it
//! follows the policies: when they name a key it does not hold, the node watch restarts and
//! the relist reads it; until then the policies that need it wait (`holds`).

use std::collections::BTreeMap;
use std::pin::pin;
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::Store;
use kube::runtime::watcher::{self, watcher, Event};
use kube::Api;
use tokio::sync::watch;

use super::watches::{resilient, WatchReport};
use crate::crd::v1alpha1::{Platform, SupportPolicy, SupportPolicySpec};
use crate::health::Health;
use crate::k8s::objects::CachedNode;
use crate::metrics::Metrics;
use crate::policy::rules::POOL_LABELS;
use crate::policy::Policy;
use crate::snapshot::{Interner, NodeInfo, NodeKeys};

type Nodes = BTreeMap<Arc<str>, Arc<NodeInfo>>;

/// A (re)list under way. Listed nodes replace the held ones as they come (a node read with new
/// keys frees its previous copy at once: the cache is never held twice); those the list did not
/// name are removed when it ends.
#[derive(Debug, Default)]
struct Listing {
    /// The names listed so far.
    seen: std::collections::HashSet<Arc<str>>,
    /// Whether a listed node differed from the one held.
    changed: bool,
}

#[derive(Debug, Default)]
struct State {
    /// Every readable node, by name.
    nodes: Nodes,
    /// What `nodes` holds of each node.
    holds: NodeKeys,
    /// During a (re)list, between `Init` and `InitDone`: what it listed so far.
    listing: Option<Listing>,
    /// What nodes read from now on keep.
    keeps: NodeKeys,
    interner: Interner,
    /// Strings interned when the interner last shrank.
    interned: usize,
}

impl State {
    /// `node` with only the kept keys, its shared strings interned.
    fn trim(&mut self, node: NodeInfo) -> NodeInfo {
        node.trimmed(&self.keeps, &mut self.interner)
    }

    /// The node to store: the one held when nothing the rules read changed (a heartbeat).
    fn shared(&self, node: NodeInfo) -> (Arc<NodeInfo>, bool) {
        match self.nodes.get(&node.name) {
            Some(held) if **held == node => (held.clone(), false),
            _ => (Arc::new(node), true),
        }
    }

    fn shrink(&mut self) {
        if self.interner.len() > 2 * self.interned.max(64) {
            self.interner.shrink();
            self.interned = self.interner.len();
        }
    }
}

/// What the rules read of every node.
#[derive(Debug, Default)]
pub(super) struct NodeCache {
    state: RwLock<State>,
}

impl NodeCache {
    /// A cache whose first list keeps `keys`.
    #[cfg(test)]
    pub(super) fn new(keys: NodeKeys) -> Self {
        NodeCache { state: RwLock::new(State { keeps: keys, ..Default::default() }) }
    }

    /// Every node, by name.
    pub(super) fn nodes(&self) -> Vec<Arc<NodeInfo>> {
        self.state.read().unwrap_or_else(|e| e.into_inner()).nodes.values().cloned().collect()
    }

    /// Whether every node holds what `keys` names (else a relist that reads it is under way).
    pub(super) fn holds(&self, keys: &NodeKeys) -> bool {
        self.state.read().unwrap_or_else(|e| e.into_inner()).holds.covers(keys)
    }

    /// Keeps only `keys` from now on; what is held is trimmed to them at once when it covers
    /// them. Returns false when it does not: only a relist can read the missing keys.
    pub(super) fn keep(&self, keys: NodeKeys) -> bool {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        let covered = state.holds.covers(&keys);
        if covered && state.holds != keys {
            let nodes = std::mem::take(&mut state.nodes);
            state.keeps = keys.clone();
            state.nodes = nodes.into_iter().map(|(name, n)| (name, Arc::new(state.trim((*n).clone())))).collect();
            state.holds = keys.clone();
            state.shrink();
        }
        state.keeps = keys;
        covered
    }

    /// Applies a watch event; true when what the rules read changed. A node that cannot be
    /// read is left out, as if deleted (and counted in `metrics`).
    pub(super) fn apply(&self, event: Event<CachedNode>, metrics: &Metrics) -> bool {
        let skip = |node: &CachedNode| {
            if let Err(e) = &node.info {
                tracing::warn!(name = ?node.metadata.name, error = %e, "skipping a Node that cannot be read");
                metrics.skipped_objects.with_label_values(&["Node"]).inc();
            }
        };
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        match event {
            Event::Init => {
                state.listing = Some(Listing::default());
                // Until the list ends, nodes hold either the old keys or the new ones: only what
                // both name is certain (a policy that needs more waits for the end).
                state.holds = state.holds.common(&state.keeps);
                false
            }
            Event::InitApply(node) => {
                skip(&node);
                if let (Ok(info), true) = (node.info, state.listing.is_some()) {
                    let info = state.trim(info);
                    let (node, changed) = state.shared(info);
                    let name = node.name.clone();
                    if changed {
                        state.nodes.insert(name.clone(), node);
                    }
                    let listing = state.listing.get_or_insert_default();
                    listing.changed |= changed;
                    listing.seen.insert(name);
                }
                false
            }
            Event::InitDone => {
                let listing = state.listing.take().unwrap_or_default();
                let before = state.nodes.len();
                state.nodes.retain(|name, _| listing.seen.contains(name));
                let changed = listing.changed || state.nodes.len() != before || state.holds != state.keeps;
                state.holds = state.keeps.clone();
                state.shrink();
                drop(state);
                super::memory::release_free_pages();
                changed
            }
            Event::Apply(node) => {
                skip(&node);
                match node.info {
                    Ok(info) => {
                        let info = state.trim(info);
                        let (node, changed) = state.shared(info);
                        if changed {
                            state.nodes.insert(node.name.clone(), node);
                            state.shrink();
                        }
                        changed
                    }
                    Err(_) => node.metadata.name.is_some_and(|n| state.nodes.remove(n.as_str()).is_some()),
                }
            }
            Event::Delete(node) => node.metadata.name.is_some_and(|n| state.nodes.remove(n.as_str()).is_some()),
        }
    }
}

/// What every preset reads (the pool labels, AKS' image label): the node watch starts with
/// these before the policies are listed, so a policy that only names its preset never makes it
/// list the nodes again.
pub(super) fn preset_keys() -> NodeKeys {
    let mut keys = NodeKeys::none();
    for label in POOL_LABELS {
        keys.label(label);
    }
    for platform in Platform::ALL {
        if let Ok(preset) = Policy::resolve(&SupportPolicySpec { platform, ..Default::default() }) {
            keys.extend(&preset.node_keys());
        }
    }
    keys
}

/// The keys the presets and the valid policies read.
pub(super) fn policy_keys(policies: &Store<DeserializeGuard<SupportPolicy>>) -> NodeKeys {
    let mut keys = preset_keys();
    for policy in policies.state().iter().filter_map(|p| p.0.as_ref().ok()) {
        if let Ok(resolved) = Policy::resolve(&policy.spec) {
            keys.extend(&resolved.node_keys());
        }
    }
    keys
}

/// What the node watch needs.
pub(super) struct NodeWatch {
    pub api: Api<CachedNode>,
    pub cache: Arc<NodeCache>,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    /// Told every change of what the rules read.
    pub changed: Arc<watch::Sender<()>>,
    /// Told the first complete list.
    pub synced: Box<dyn Fn() + Send + Sync>,
}

impl NodeWatch {
    /// Watches the nodes into the cache, keeping what `keys` names; restarts the watch (a
    /// relist) when the keys grow beyond what the cache holds. Returns when `keys` closes or the
    /// watch ends.
    pub(super) async fn run(self, mut keys: watch::Receiver<NodeKeys>) {
        loop {
            let reads = keys.borrow_and_update().clone();
            self.cache.keep(reads.clone());
            // The parser skips what the cache would drop (a relist starts when keys grow).
            if !CachedNode::reading(Arc::new(reads), self.follow(&mut keys)).await {
                return;
            }
        }
    }

    /// One watch, until the keys grow beyond what the cache holds (true: relist) or the watch
    /// or `keys` ends (false).
    async fn follow(&self, keys: &mut watch::Receiver<NodeKeys>) -> bool {
        let report = WatchReport::new("Node", "Node".into(), self.metrics.clone(), self.health.clone());
        let events = watcher(self.api.clone(), watcher::Config::default().any_semantic());
        let mut events = pin!(resilient(events, report));
        loop {
            tokio::select! {
                event = events.next() => {
                    let Some(event) = event else { return false };
                    let done = matches!(event, Event::InitDone);
                    if self.cache.apply(event, &self.metrics) {
                        self.changed.send_replace(());
                    }
                    if done {
                        (self.synced)();
                    }
                }
                changed = keys.changed() => {
                    if changed.is_err() {
                        return false;
                    }
                    let wanted = keys.borrow_and_update().clone();
                    if !self.cache.keep(wanted) {
                        tracing::info!("policies read node labels or annotations not cached yet: relisting nodes");
                        return true;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocations::counted;
    use kube::core::{ObjectMeta, WatchEvent};
    use serde_json::json;
    use test_apiserver::generate::ClusterShape;

    fn node(name: &str, version: &str, pool: &str) -> CachedNode {
        let info = NodeInfo {
            name: name.into(),
            kubelet_version: Some(version.into()),
            labels: [("agentpool", pool), ("kubernetes.io/hostname", name)].into(),
            ..Default::default()
        };
        CachedNode { metadata: ObjectMeta { name: Some(name.into()), ..Default::default() }, info: Ok(info) }
    }

    fn keys(labels: &[&str]) -> NodeKeys {
        let mut k = NodeKeys::none();
        for l in labels {
            k.label(l);
        }
        k
    }

    /// A node's heartbeat as a watch line, with `extra` more labels, annotations and conditions
    /// than the generated node (none of which any policy reads).
    fn heartbeat_line(shape: &ClusterShape, i: usize, at: &str, extra: usize) -> String {
        let mut node = shape.heartbeat(i, at);
        for k in 0..extra {
            node["metadata"]["labels"][format!("example.com/label-{k}")] = json!(format!("value-{k}"));
            node["metadata"]["annotations"][format!("example.com/note-{k}")] = json!("x".repeat(100));
            node["status"]["conditions"].as_array_mut().unwrap().push(json!({
                "type": format!("Extra{k}"), "status": "False", "reason": "Fine", "message": "all good",
                "lastHeartbeatTime": at, "lastTransitionTime": "2026-11-01T00:00:00Z"}));
        }
        // As the API server writes it: the type first (after the object, kube's reader would
        // buffer the whole node before reading it).
        format!(r#"{{"type":"MODIFIED","object":{node}}}"#)
    }

    /// A heartbeat costs the same handful of allocations whatever else the kubelet and the
    /// cloud write on the node: what no policy reads is skipped by the parser, not read and
    /// dropped (at 65,000 nodes each allocation is likely a cache miss in a fragmented heap).
    #[tokio::test]
    async fn a_heartbeat_allocates_a_handful_whatever_the_node_carries() {
        let (shape, m) = (ClusterShape::new(10), Metrics::new());
        let cache = NodeCache::new(preset_keys());
        let listed: CachedNode = serde_json::from_value(shape.node(3)).unwrap();
        for event in [Event::Init, Event::InitApply(listed), Event::InitDone] {
            cache.apply(event, &m);
        }
        let beat = |line: &str| {
            counted(|| match serde_json::from_str::<WatchEvent<CachedNode>>(line).unwrap() {
                WatchEvent::Modified(node) => cache.apply(Event::Apply(node), &m),
                other => panic!("{other:?}"),
            })
        };
        let reads = Arc::new(preset_keys());
        let (plain, crowded) = CachedNode::reading(reads, async {
            (
                beat(&heartbeat_line(&shape, 3, "2026-11-25T12:00:10Z", 0)),
                beat(&heartbeat_line(&shape, 3, "2026-11-25T12:00:20Z", 200)),
            )
        })
        .await;
        assert_eq!((plain.0, crowded.0), (false, false), "heartbeats change nothing the rules read");
        assert_eq!(plain.1, crowded.1, "200 more labels, annotations and conditions cost no allocation");
        // 24 when written: the kind, the name and resourceVersion (the cache's and the
        // watcher's), the kept labels' values, the kubelet version, the Ready condition's type
        // and status, a key buffer per map, the parser's buffer for a string with escapes, the
        // trimmed labels.
        assert!(plain.1 <= 32, "a heartbeat allocates {} blocks", plain.1);
    }

    #[test]
    fn heartbeats_change_nothing_and_listed_nodes_are_known() {
        let (cache, m) = (NodeCache::new(keys(&["agentpool"])), Metrics::new());
        assert!(!cache.apply(Event::Init, &m));
        assert!(!cache.apply(Event::InitApply(node("a", "v1.35.0", "p")), &m));
        assert!(!cache.apply(Event::InitApply(node("b", "v1.35.0", "p")), &m));
        assert!(cache.apply(Event::InitDone, &m), "the first list");
        let before = cache.nodes();
        assert!(!cache.apply(Event::Apply(node("a", "v1.35.0", "p")), &m), "a heartbeat of a listed node");
        assert!(Arc::ptr_eq(&before[0], &cache.nodes()[0]), "the node held is kept");
        assert!(cache.apply(Event::Apply(node("a", "v1.35.1", "p")), &m));
        assert!(cache.apply(Event::Delete(node("b", "v1.35.0", "p")), &m), "a listed node deleted");
        assert!(!cache.apply(Event::Delete(node("b", "v1.35.0", "p")), &m), "already gone");
        assert_eq!(cache.nodes().len(), 1);
    }

    #[test]
    fn only_the_kept_labels_are_held_and_shared_strings_are_stored_once() {
        let (cache, m) = (NodeCache::new(keys(&["agentpool"])), Metrics::new());
        for event in [Event::Init, Event::InitApply(node("a", "v1", "p")), Event::InitApply(node("b", "v1", "p"))] {
            cache.apply(event, &m);
        }
        cache.apply(Event::InitDone, &m);
        let nodes = cache.nodes();
        assert_eq!(nodes[0].labels.iter().collect::<Vec<_>>(), [("agentpool", "p")], "the hostname is not read");
        let pool = |n: &NodeInfo| n.labels.shared("agentpool").unwrap().clone();
        assert!(Arc::ptr_eq(&pool(&nodes[0]), &pool(&nodes[1])));
        assert!(Arc::ptr_eq(nodes[0].kubelet_version.as_ref().unwrap(), nodes[1].kubelet_version.as_ref().unwrap()));
    }

    /// A relist for other keys replaces each node as it is listed (the cache is never held
    /// twice); meanwhile only the keys both the old and the new nodes hold count as held, so a
    /// policy reading a key the relist drops waits for it to end instead of reading half the nodes.
    #[test]
    fn a_relist_for_other_keys_replaces_nodes_as_listed_and_holds_only_what_both_name() {
        let (cache, m) = (NodeCache::new(keys(&["agentpool", "kubernetes.io/hostname"])), Metrics::new());
        for event in [Event::Init, Event::InitApply(node("a", "v1", "p")), Event::InitApply(node("b", "v1", "p"))] {
            cache.apply(event, &m);
        }
        cache.apply(Event::InitDone, &m);
        let other = keys(&["agentpool", "zone"]);
        assert!(!cache.keep(other.clone()), "the zone was never read");
        cache.apply(Event::Init, &m);
        assert!(cache.holds(&keys(&["agentpool"])), "held by the old nodes and the new");
        assert!(!cache.holds(&keys(&["kubernetes.io/hostname"])), "the new nodes lack it");
        assert!(!cache.holds(&other));
        cache.apply(Event::InitApply(node("a", "v2", "p")), &m);
        let held: Vec<_> = cache.nodes().iter().map(|n| (n.name.to_string(), n.labels.len())).collect();
        assert_eq!(held, [("a".to_string(), 1), ("b".to_string(), 2)], "a replaced at once, b not listed yet");
        assert!(cache.apply(Event::InitDone, &m), "a changed and b is gone");
        assert_eq!(cache.nodes().len(), 1);
        assert!(cache.holds(&other));
    }

    #[test]
    fn keys_that_grow_need_a_relist_keys_that_shrink_trim_at_once() {
        let (cache, m) = (NodeCache::new(keys(&["agentpool"])), Metrics::new());
        for event in [Event::Init, Event::InitApply(node("a", "v1", "p")), Event::InitDone] {
            cache.apply(event, &m);
        }
        let more = keys(&["agentpool", "kubernetes.io/hostname"]);
        assert!(!cache.keep(more.clone()), "the hostname was never read");
        assert!(!cache.holds(&more), "policies that read it wait");
        for event in [Event::Init, Event::InitApply(node("a", "v1", "p"))] {
            cache.apply(event, &m);
        }
        assert!(cache.apply(Event::InitDone, &m), "the relist read what the policies read");
        assert!(cache.holds(&more));
        assert_eq!(cache.nodes()[0].labels.len(), 2);
        assert!(cache.keep(keys(&["agentpool"])));
        assert_eq!(cache.nodes()[0].labels.len(), 1, "trimmed without a relist");
    }

    #[test]
    fn a_relist_changes_something_only_when_the_nodes_did_and_unreadable_nodes_leave() {
        let (cache, m) = (NodeCache::new(keys(&["agentpool"])), Metrics::new());
        let relist = |nodes: &[&str]| {
            cache.apply(Event::Init, &m);
            for n in nodes {
                cache.apply(Event::InitApply(node(n, "v1", "p")), &m);
            }
            cache.apply(Event::InitDone, &m)
        };
        assert!(relist(&["a", "b"]));
        assert!(!relist(&["a", "b"]), "the same nodes");
        assert!(relist(&["a"]), "b vanished while the watch was down");
        assert!(relist(&["a", "c"]), "c appeared");
        let broken = CachedNode {
            metadata: ObjectMeta { name: Some("a".into()), ..Default::default() },
            info: Err(crate::snapshot::ObjectError { field: "metadata.name".into(), reason: "bad".into() }),
        };
        assert!(cache.apply(Event::Apply(broken), &m), "an unreadable node leaves the snapshot");
        assert_eq!(m.skipped_objects.with_label_values(&["Node"]).get(), 1);
        assert_eq!(cache.nodes().iter().map(|n| &*n.name).collect::<Vec<_>>(), ["c"]);
    }
}
