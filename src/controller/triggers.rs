//! What makes the controller re-evaluate every policy: node content changes (not heartbeats),
//! changes of the Leases policies name, discovery, leadership and clock jumps.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::core::DeserializeGuard;
use kube::runtime::reflector::Store;
use kube::runtime::watcher::{self, Event};
use kube::Resource;
use tokio::sync::watch;

use super::{ClusterInfo, Context};
use crate::crd::v1alpha1::SupportPolicy;
use crate::k8s::gather::served_api_versions;
use crate::k8s::objects::{CachedLease, CachedNode};
use crate::metrics::Metrics;

fn fingerprint<T: Hash>(t: &T) -> u64 {
    let mut h = DefaultHasher::new();
    t.hash(&mut h);
    h.finish()
}

/// Filters a reflected watch stream down to content changes: an object whose fingerprint is
/// unchanged (a heartbeat, an unrelated field) triggers nothing; a relist triggers once.
fn content_changes<K, F>(
    events: impl Stream<Item = Result<Event<DeserializeGuard<K>>, watcher::Error>> + Send + 'static,
    kind: &'static str,
    metrics: Arc<Metrics>,
    mut relevant: F,
) -> impl Stream<Item = ()> + Send
where
    K: Resource + Send + 'static,
    F: FnMut(&K) -> Option<u64> + Send + 'static,
{
    let mut seen: HashMap<(Option<String>, Option<String>), u64> = HashMap::new();
    events.filter_map(move |event| {
        let out = match event {
            Err(e) => {
                tracing::warn!(kind, error = %e, "watch error; the watcher retries with backoff");
                metrics.reconcile_errors.with_label_values(&["api"]).inc();
                None
            }
            Ok(Event::Init | Event::InitApply(_)) => None,
            Ok(Event::InitDone) => Some(()),
            Ok(Event::Apply(obj)) => match &obj.0 {
                Err(invalid) => {
                    tracing::warn!(kind, name = ?invalid.metadata.name, error = %invalid.error, "skipping an object that cannot be read");
                    metrics.skipped_objects.with_label_values(&[kind]).inc();
                    None
                }
                Ok(o) => {
                    let key = (o.meta().namespace.clone(), o.meta().name.clone());
                    match relevant(o) {
                        Some(fp) => (seen.insert(key, fp) != Some(fp)).then_some(()),
                        None => None,
                    }
                }
            },
            Ok(Event::Delete(obj)) => {
                let key = (obj.meta().namespace.clone(), obj.meta().name.clone());
                seen.remove(&key).map(|_| ())
            }
        };
        std::future::ready(out)
    })
}

/// Node content changes.
pub(super) fn node_changes(
    events: impl Stream<Item = Result<Event<DeserializeGuard<CachedNode>>, watcher::Error>> + Send + 'static,
    metrics: Arc<Metrics>,
) -> impl Stream<Item = ()> + Send {
    content_changes(events, "Node", metrics, |n: &CachedNode| Some(fingerprint(&*n.info)))
}

/// Changes of Leases that some policy names.
pub(super) fn lease_changes(
    events: impl Stream<Item = Result<Event<DeserializeGuard<CachedLease>>, watcher::Error>> + Send + 'static,
    policies: Store<DeserializeGuard<SupportPolicy>>,
    metrics: Arc<Metrics>,
) -> impl Stream<Item = ()> + Send {
    content_changes(events, "Lease", metrics, move |l: &CachedLease| {
        let named = policies.state().iter().filter_map(|p| p.0.as_ref().ok()).any(|p| {
            p.spec.heartbeats.iter().any(|h| h.lease.namespace == l.info.namespace && h.lease.name == l.info.name)
        });
        named.then(|| fingerprint(&l.info))
    })
}

/// Every change of a watch channel.
pub(super) fn watch_changes(rx: watch::Receiver<()>) -> impl Stream<Item = ()> + Send {
    futures::stream::unfold(rx, |mut rx| async move { rx.changed().await.ok().map(|_| ((), rx)) })
}

/// Leadership changes: gaining it re-evaluates (and writes) everything; losing it drops the
/// per-policy series, which only the leader exports.
pub(super) fn leadership_changes(rx: watch::Receiver<bool>, metrics: Arc<Metrics>) -> impl Stream<Item = ()> + Send {
    metrics.leader.set(i64::from(*rx.borrow()));
    futures::stream::unfold((rx, metrics), |(mut rx, metrics)| async move {
        rx.changed().await.ok()?;
        let leader = *rx.borrow_and_update();
        metrics.leader.set(i64::from(leader));
        if !leader {
            metrics.forget_all();
        }
        Some(((), (rx, metrics)))
    })
}

/// Jumps of a test clock.
pub(super) fn clock_jumps(rx: Option<watch::Receiver<()>>) -> impl Stream<Item = ()> + Send {
    match rx {
        Some(rx) => watch_changes(rx).boxed(),
        None => futures::stream::pending().boxed(),
    }
}

/// Refreshes `/version` and discovery every `interval`; tells `changed` when they change.
pub(super) async fn discovery_loop(
    ctx: Arc<Context>,
    interval: Duration,
    changed: watch::Sender<()>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut delay = Duration::from_millis(200);
    loop {
        let result = async {
            let version = ctx.client.apiserver_version().await?.git_version;
            let api_versions = served_api_versions(&ctx.client).await?;
            Ok::<_, kube::Error>(ClusterInfo { server_version: Some(version), api_versions: Some(api_versions) })
        }
        .await;
        let wait = match result {
            Ok(info) => {
                let mut current = ctx.cluster.write().unwrap_or_else(|e| e.into_inner());
                if *current != info {
                    *current = info;
                    drop(current);
                    changed.send_replace(());
                }
                delay = Duration::from_millis(200);
                interval
            }
            Err(e) => {
                tracing::warn!(error = %e, "discovery failed; retrying");
                ctx.metrics.reconcile_errors.with_label_values(&["api"]).inc();
                delay = (delay * 2).min(Duration::from_secs(30));
                delay
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}
