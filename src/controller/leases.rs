//! The Leases that policies name, and only those: one watch per named Lease (a field selector on
//! its name, in its namespace), or one watch of a namespace when more than [`PER_NAMESPACE`] of
//! its Leases are named. The watches follow the policies: a Lease no policy names any more is
//! forgotten, a newly named one is watched (and the policies naming it are evaluated once it has
//! been read). Every other Lease of the cluster (kubelet heartbeats, other controllers' leader
//! Leases, renewed every few seconds) never reaches the operator.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::Store;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, ResourceExt};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::watches::{self, WatchReport};
use crate::crd::v1alpha1::SupportPolicy;
use crate::health::Health;
use crate::k8s::objects::CachedLease;
use crate::metrics::Metrics;
use crate::policy::Policy;
use crate::snapshot::LeaseInfo;

/// Above this many named Leases in one namespace, the namespace is watched as a whole.
pub(super) const PER_NAMESPACE: usize = 4;

/// A Lease by namespace and name.
pub(super) type LeaseKey = (String, String);

/// What the watches read: `None` until a Lease's watch delivered its first list, then whether
/// it exists.
#[derive(Debug, Default)]
pub(super) struct LeaseCache {
    entries: RwLock<HashMap<LeaseKey, Option<Option<LeaseInfo>>>>,
}

impl LeaseCache {
    /// The Leases `keys`, or `None` if one of them has not been read yet.
    pub(super) fn get(&self, keys: &[LeaseKey]) -> Option<BTreeMap<LeaseKey, LeaseInfo>> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let mut out = BTreeMap::new();
        for key in keys {
            if let Some(lease) = entries.get(key)?.clone()? {
                out.insert(key.clone(), lease);
            }
        }
        Some(out)
    }

    /// Sets what is known of `key`; true when that changed.
    fn set(&self, key: &LeaseKey, value: Option<Option<LeaseInfo>>) -> bool {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        match entries.get(key) {
            Some(current) if *current == value => false,
            _ => {
                entries.insert(key.clone(), value);
                true
            }
        }
    }

    fn remove(&self, key: &LeaseKey) {
        self.entries.write().unwrap_or_else(|e| e.into_inner()).remove(key);
    }
}

/// One watch: a namespace and the names it serves (by a field selector when there is one).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Target {
    namespace: String,
    names: BTreeSet<String>,
}

impl Target {
    fn by_name(&self) -> Option<&String> {
        match self.names.len() {
            1 => self.names.first(),
            _ => None,
        }
    }

    fn label(&self) -> String {
        match self.by_name() {
            Some(name) => format!("Lease {}/{name}", self.namespace),
            None => format!("Lease {}/*", self.namespace),
        }
    }

    fn keys(&self) -> impl Iterator<Item = LeaseKey> + '_ {
        self.names.iter().map(|n| (self.namespace.clone(), n.clone()))
    }
}

/// The Leases the valid policies name.
fn named(policies: &Store<DeserializeGuard<SupportPolicy>>) -> BTreeSet<LeaseKey> {
    let policies = policies.state();
    let resolved = policies.iter().filter_map(|p| p.0.as_ref().ok()).filter_map(|p| Policy::resolve(&p.spec).ok());
    resolved.flat_map(|p| p.leases().into_iter().map(|l| (l.namespace, l.name))).collect()
}

/// The watches that serve `leases`.
fn targets(leases: &BTreeSet<LeaseKey>) -> BTreeSet<Target> {
    let mut by_namespace: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (namespace, name) in leases {
        by_namespace.entry(namespace).or_default().insert(name.clone());
    }
    let mut out = BTreeSet::new();
    for (namespace, names) in by_namespace {
        if names.len() > PER_NAMESPACE {
            out.insert(Target { namespace: namespace.to_string(), names });
        } else {
            for name in names {
                out.insert(Target { namespace: namespace.to_string(), names: BTreeSet::from([name]) });
            }
        }
    }
    out
}

/// What the Lease watches need.
pub(super) struct LeaseWatches {
    pub(super) client: Client,
    pub(super) cache: Arc<LeaseCache>,
    pub(super) policies: Store<DeserializeGuard<SupportPolicy>>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) health: Arc<Health>,
    /// Told when the Leases read change (re-evaluates every policy).
    pub(super) changed: Arc<watch::Sender<()>>,
}

impl LeaseWatches {
    /// Keeps one watch per target of the named Leases, following `policies_changed`, until
    /// that channel closes. A watch task never ends by itself; if one does, so does this.
    pub(super) async fn run(self, mut policies_changed: watch::Receiver<()>) -> Result<(), &'static str> {
        let this = Arc::new(self);
        let mut running: BTreeMap<Target, tokio::task::AbortHandle> = BTreeMap::new();
        let mut tasks = JoinSet::new();
        loop {
            let wanted = targets(&named(&this.policies));
            for (target, task) in std::mem::take(&mut running) {
                if wanted.contains(&target) {
                    running.insert(target, task);
                } else {
                    task.abort();
                    target.keys().for_each(|k| this.cache.remove(&k));
                    this.health.forget_watch(&target.label());
                }
            }
            for target in wanted {
                if let std::collections::btree_map::Entry::Vacant(slot) = running.entry(target) {
                    let task = tasks.spawn(this.clone().watch(slot.key().clone()));
                    slot.insert(task);
                }
            }
            tokio::select! {
                changed = policies_changed.changed() => if changed.is_err() { return Ok(()) },
                Some(ended) = tasks.join_next() => {
                    if !ended.as_ref().is_err_and(|e| e.is_cancelled()) {
                        return Err("Lease watch");
                    }
                }
            }
        }
    }

    /// Watches one target for as long as it is wanted.
    async fn watch(self: Arc<Self>, target: Target) {
        let api: Api<DeserializeGuard<CachedLease>> = Api::namespaced(self.client.clone(), &target.namespace);
        let mut config = watcher::Config::default().any_semantic();
        if let Some(name) = target.by_name() {
            config = config.fields(&format!("metadata.name={name}"));
        }
        let report = WatchReport::new("Lease", target.label(), self.metrics.clone(), self.health.clone());
        let mut events = watches::resilient(watcher::watcher(api, config), report).boxed();
        let mut listed: BTreeMap<String, LeaseInfo> = BTreeMap::new();
        while let Some(event) = events.next().await {
            let changed = match event {
                Event::Init => {
                    listed.clear();
                    false
                }
                Event::InitApply(lease) => {
                    if let Some(info) = self.read(&lease, &target) {
                        listed.insert(lease.name_any(), info);
                    }
                    false
                }
                Event::InitDone => {
                    let mut changed = false;
                    for key in target.keys() {
                        changed |= self.cache.set(&key, Some(listed.remove(&key.1)));
                    }
                    changed
                }
                Event::Apply(lease) => {
                    let key = (target.namespace.clone(), lease.name_any());
                    target.names.contains(&key.1) && self.cache.set(&key, Some(self.read(&lease, &target)))
                }
                Event::Delete(lease) => {
                    let key = (target.namespace.clone(), lease.name_any());
                    target.names.contains(&key.1) && self.cache.set(&key, Some(None))
                }
            };
            if changed {
                self.changed.send_replace(());
            }
        }
    }

    /// A named Lease as the rules read it; one that cannot be read is skipped (counted).
    fn read(&self, lease: &DeserializeGuard<CachedLease>, target: &Target) -> Option<LeaseInfo> {
        if !target.names.contains(&lease.name_any()) {
            return None;
        }
        match &lease.0 {
            Ok(l) => Some(l.info.clone()),
            Err(invalid) => {
                tracing::warn!(name = ?invalid.metadata.name, error = %invalid.error, "skipping a Lease that cannot be read");
                self.metrics.skipped_objects.with_label_values(&["Lease"]).inc();
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(list: &[(&str, &str)]) -> BTreeSet<LeaseKey> {
        list.iter().map(|(ns, n)| (ns.to_string(), n.to_string())).collect()
    }

    #[test]
    fn one_watch_per_lease_up_to_the_bound_then_one_per_namespace() {
        let few = targets(&keys(&[("a", "x"), ("a", "y"), ("b", "x")]));
        let labels: Vec<String> = few.iter().map(Target::label).collect();
        assert_eq!(labels, ["Lease a/x", "Lease a/y", "Lease b/x"]);
        let names = ["1", "2", "3", "4"];
        let at_bound: Vec<(&str, &str)> = names.iter().map(|n| ("a", *n)).collect();
        assert_eq!(targets(&keys(&at_bound)).len(), PER_NAMESPACE);
        let mut over = at_bound.clone();
        over.push(("a", "5"));
        over.push(("b", "x"));
        let labels: Vec<String> = targets(&keys(&over)).iter().map(Target::label).collect();
        assert_eq!(labels, ["Lease a/*", "Lease b/x"]);
    }

    #[test]
    fn the_cache_holds_back_leases_not_yet_read() {
        let cache = LeaseCache::default();
        let key = ("ns".to_string(), "l".to_string());
        assert!(cache.get(std::slice::from_ref(&key)).is_none(), "never listed");
        assert!(cache.set(&key, Some(None)));
        assert_eq!(cache.get(std::slice::from_ref(&key)), Some(BTreeMap::new()), "listed: does not exist");
        assert!(!cache.set(&key, Some(None)), "no change");
        let info = LeaseInfo { namespace: "ns".into(), name: "l".into(), renewed: None, problem: None };
        assert!(cache.set(&key, Some(Some(info.clone()))));
        assert_eq!(cache.get(std::slice::from_ref(&key)).unwrap()[&key], info);
        assert!(cache.get(&[]).unwrap().is_empty());
    }
}
