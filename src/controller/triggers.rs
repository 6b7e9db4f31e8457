//! What makes the controller re-evaluate every policy: node content changes (not heartbeats),
//! changes of the Leases policies name (see `leases`), discovery, leadership and clock jumps.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::core::DeserializeGuard;
use kube::runtime::watcher::Event;
use kube::Resource;
use tokio::sync::watch;

use super::{ClusterInfo, Context};
use crate::k8s::gather::served_api_versions;
use crate::k8s::objects::CachedNode;
use crate::k8s::openreports;
use crate::metrics::Metrics;

/// The name of the discovery loop in `/healthz`.
const DISCOVERY: &str = "discovery";

/// The deadline of one discovery call.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(30);

fn fingerprint<T: Hash>(t: &T) -> u64 {
    let mut h = DefaultHasher::new();
    t.hash(&mut h);
    h.finish()
}

type Key = (Option<String>, Option<String>);

/// The fingerprints of what the rules read of each object of a watch, to tell content changes
/// from heartbeats and unrelated fields.
#[derive(Debug, Default)]
pub(super) struct Fingerprints {
    seen: HashMap<Key, u64>,
    /// Collected during a (re)list, between `Init` and `InitDone`.
    listing: Option<HashMap<Key, u64>>,
}

impl Fingerprints {
    /// Whether `event` changes what the rules read. An object whose fingerprint is unchanged
    /// (a heartbeat) changes nothing, whether it was last seen in a list or an event; a relist
    /// changes something only if an object appeared, changed or vanished meanwhile (a deletion
    /// missed while the watch was down counts).
    pub(super) fn changes<K: Resource>(
        &mut self,
        event: &Event<DeserializeGuard<K>>,
        fingerprint: impl Fn(&K) -> u64,
    ) -> bool {
        let key = |o: &DeserializeGuard<K>| (o.meta().namespace.clone(), o.meta().name.clone());
        match event {
            Event::Init => {
                self.listing = Some(HashMap::new());
                false
            }
            Event::InitApply(obj) => {
                if let (Some(listing), Ok(o)) = (self.listing.as_mut(), &obj.0) {
                    listing.insert(key(obj), fingerprint(o));
                }
                false
            }
            Event::InitDone => {
                let listed = self.listing.take().unwrap_or_default();
                std::mem::replace(&mut self.seen, listed) != self.seen
            }
            // An object that cannot be read is left out of the snapshot, as if deleted.
            Event::Apply(obj) => match &obj.0 {
                Ok(o) => self.seen.insert(key(obj), fingerprint(o)) != Some(fingerprint(o)),
                Err(_) => self.seen.remove(&key(obj)).is_some(),
            },
            Event::Delete(obj) => self.seen.remove(&key(obj)).is_some(),
        }
    }
}

/// Node content changes, and nodes that cannot be read (skipped, counted).
pub(super) fn node_changes(
    events: impl Stream<Item = Event<DeserializeGuard<CachedNode>>> + Send + 'static,
    metrics: Arc<Metrics>,
) -> impl Stream<Item = ()> + Send {
    let mut fingerprints = Fingerprints::default();
    events.filter_map(move |event| {
        if let Event::Apply(node) | Event::InitApply(node) = &event {
            if let Err(invalid) = &node.0 {
                tracing::warn!(name = ?invalid.metadata.name, error = %invalid.error, "skipping a Node that cannot be read");
                metrics.skipped_objects.with_label_values(&["Node"]).inc();
            }
        }
        let changed = fingerprints.changes(&event, |n: &CachedNode| fingerprint(&*n.info));
        std::future::ready(changed.then_some(()))
    })
}

/// Every change of a watch channel.
pub(super) fn watch_changes(rx: watch::Receiver<()>) -> impl Stream<Item = ()> + Send {
    futures::stream::unfold(rx, |mut rx| async move { rx.changed().await.ok().map(|_| ((), rx)) })
}

/// Follows leadership: sets `support_leader`; losing it drops every per-policy series (only the
/// leader exports them) and what this replica remembers of its writes, atomically with the
/// reconciles recording series (`Leadership::while_leader`); gaining it re-evaluates (and
/// writes) everything. Runs until the leadership channel closes.
pub(super) async fn follow_leadership(ctx: Arc<Context>, changed: Arc<watch::Sender<()>>) {
    let mut rx = ctx.leadership.subscribe();
    loop {
        let leader = *rx.borrow_and_update();
        ctx.metrics.leader.set(i64::from(leader));
        if !leader {
            ctx.leadership.unless_leader(|| {
                ctx.metrics.forget_all();
                ctx.forget_writes();
            });
        }
        changed.send_replace(());
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Jumps of a test clock.
pub(super) fn clock_jumps(rx: Option<watch::Receiver<()>>) -> impl Stream<Item = ()> + Send {
    match rx {
        Some(rx) => watch_changes(rx).boxed(),
        None => futures::stream::pending().boxed(),
    }
}

/// Refreshes `/version` and discovery every `interval` (each call within a deadline); tells
/// `changed` when they change. Failures are counted as watch errors of kind `Discovery`.
pub(super) async fn discovery_loop(ctx: Arc<Context>, interval: Duration, changed: watch::Sender<()>) {
    let mut delay = Duration::from_millis(200);
    loop {
        ctx.health.beat(DISCOVERY, interval.max(Duration::from_secs(30)) + DISCOVERY_TIMEOUT * 2);
        let result = async {
            let version = ctx.client.apiserver_version().await?.git_version;
            let api_versions = served_api_versions(&ctx.client).await?;
            let openreports = ctx.reports.enabled() && api_versions.iter().any(|v| v == openreports::API_VERSION);
            let cluster_reports = openreports && openreports::served(&ctx.client).await?;
            Ok::<_, kube::Error>(ClusterInfo {
                server_version: Some(version),
                api_versions: Some(api_versions),
                cluster_reports,
            })
        };
        let wait = match tokio::time::timeout(DISCOVERY_TIMEOUT * 2, result).await {
            Ok(Ok(info)) => {
                let mut current = ctx.cluster.write().unwrap_or_else(|e| e.into_inner());
                if ctx.reports.enabled() && current.cluster_reports != info.cluster_reports {
                    match info.cluster_reports {
                        true => tracing::info!("ClusterReports are served: writing an OpenReports report per policy"),
                        false => tracing::warn!("ClusterReports are not served (the openreports.io CRD is not installed): no OpenReports reports"),
                    }
                    ctx.reports.forget_all();
                }
                if *current != info {
                    *current = info;
                    drop(current);
                    changed.send_replace(());
                }
                delay = Duration::from_millis(200);
                interval
            }
            failed => {
                let error = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no answer within {:?}", DISCOVERY_TIMEOUT * 2),
                };
                tracing::warn!(%error, "discovery failed; retrying");
                ctx.metrics.watch_errors.with_label_values(&["Discovery"]).inc();
                delay = (delay * 2).min(Duration::from_secs(30));
                delay
            }
        };
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::ObjectMeta;

    fn node(name: &str, version: &str) -> DeserializeGuard<CachedNode> {
        let info = crate::snapshot::NodeInfo {
            name: name.into(),
            kubelet_version: Some(version.into()),
            ..Default::default()
        };
        let metadata = ObjectMeta { name: Some(name.into()), ..Default::default() };
        DeserializeGuard(Ok(CachedNode { metadata, info: Arc::new(info) }))
    }

    fn changes(f: &mut Fingerprints, event: Event<DeserializeGuard<CachedNode>>) -> bool {
        f.changes(&event, |n: &CachedNode| fingerprint(&*n.info))
    }

    #[test]
    fn listed_nodes_are_known_so_heartbeats_and_deletions_are_told_apart() {
        let mut f = Fingerprints::default();
        assert!(!changes(&mut f, Event::Init));
        assert!(!changes(&mut f, Event::InitApply(node("a", "v1.35.0"))));
        assert!(!changes(&mut f, Event::InitApply(node("b", "v1.35.0"))));
        assert!(changes(&mut f, Event::InitDone), "the first list");
        assert!(!changes(&mut f, Event::Apply(node("a", "v1.35.0"))), "a heartbeat of a listed node");
        assert!(changes(&mut f, Event::Apply(node("a", "v1.35.1"))));
        assert!(changes(&mut f, Event::Delete(node("b", "v1.35.0"))), "a listed node deleted");
        assert!(!changes(&mut f, Event::Delete(node("b", "v1.35.0"))), "already gone");
    }

    #[test]
    fn a_relist_changes_something_only_when_the_nodes_did() {
        let mut f = Fingerprints::default();
        for event in
            [Event::Init, Event::InitApply(node("a", "v1")), Event::InitApply(node("b", "v1")), Event::InitDone]
        {
            changes(&mut f, event);
        }
        let relist = |f: &mut Fingerprints, nodes: &[&str]| {
            changes(f, Event::Init);
            for n in nodes {
                changes(f, Event::InitApply(node(n, "v1")));
            }
            changes(f, Event::InitDone)
        };
        assert!(!relist(&mut f, &["a", "b"]), "the same nodes");
        assert!(relist(&mut f, &["a"]), "b vanished while the watch was down");
        assert!(!changes(&mut f, Event::Apply(node("a", "v1"))));
        assert!(relist(&mut f, &["a", "c"]), "c appeared");
    }

    #[test]
    fn a_node_that_becomes_unreadable_leaves_the_snapshot() {
        let mut f = Fingerprints::default();
        assert!(changes(&mut f, Event::Apply(node("a", "v1"))));
        let meta = ObjectMeta { name: Some("a".into()), ..Default::default() };
        let broken =
            DeserializeGuard(Err(kube::core::error_boundary::InvalidObject { error: "bad".into(), metadata: meta }));
        assert!(changes(&mut f, Event::Apply(broken)));
    }
}
