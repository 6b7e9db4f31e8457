//! The operator: SupportPolicy is the primary resource; Nodes, the Leases policies name, the
//! owned SupportStatus objects, discovery, leadership and clock jumps trigger re-evaluation.
//! Every reconcile is gather (caches only) → evaluate (the pure engine) → write (only changes).

pub mod clock;
mod reconcile;
mod triggers;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use kube::core::DeserializeGuard;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use tokio::sync::watch;

use crate::crd::v1alpha1::{SupportPolicy, SupportReport, SupportStatus};
use crate::k8s::leader::{self, LeaderConfig, Leadership};
use crate::k8s::objects::{CachedLease, CachedNode};
use crate::metrics::Metrics;
use crate::server::{self, ServerState};
use crate::snapshot::ClusterSnapshot;
use clock::Clock;

/// How the operator runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address of /metrics, /healthz, /readyz (port 0: any).
    pub metrics_addr: SocketAddr,
    /// Leader election, if enabled.
    pub leader: Option<LeaderConfig>,
    /// Longest time between two evaluations of a policy.
    pub resync: Duration,
    /// Time between two discovery refreshes.
    pub discovery_interval: Duration,
    /// This replica's identity (Event reporter instance).
    pub identity: String,
    /// Told the address the HTTP server bound (useful with port 0).
    pub report_addr: Option<tokio::sync::mpsc::UnboundedSender<SocketAddr>>,
}

/// Errors of one reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("Kubernetes API error: {0}")]
    Api(#[from] kube::Error),
}

impl Error {
    /// A bounded label value for metrics and Event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Api(kube::Error::Api(s)) if s.code == 409 => "conflict",
            Error::Api(_) => "api",
        }
    }
}

/// Why the operator stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The metrics server could not start or failed.
    #[error("metrics server: {0}")]
    Server(#[from] std::io::Error),
    /// The leader elector stopped.
    #[error("leader election: {0}")]
    Leader(#[from] leader::LeaderError),
    /// A supervised task panicked or ended unexpectedly.
    #[error("task {0} ended unexpectedly")]
    Task(&'static str),
}

/// What discovery tells: refreshed in the background, read on the hot path.
#[derive(Debug, Clone, Default, PartialEq)]
struct ClusterInfo {
    server_version: Option<String>,
    api_versions: Option<Vec<String>>,
}

/// Shared state of reconciles.
pub struct Context {
    client: Client,
    clock: Arc<dyn Clock>,
    nodes: Store<DeserializeGuard<CachedNode>>,
    leases: Store<DeserializeGuard<CachedLease>>,
    statuses: Store<DeserializeGuard<SupportStatus>>,
    policies: Store<DeserializeGuard<SupportPolicy>>,
    cluster: RwLock<ClusterInfo>,
    metrics: Arc<Metrics>,
    leadership: Leadership,
    recorder: Recorder,
    /// The status last written per policy with its resourceVersion, until the cache shows it
    /// (the cache lags our own writes by a watch event).
    written: Mutex<HashMap<String, (Option<String>, SupportReport)>>,
    /// Consecutive failures per policy, for the backoff.
    failures: Mutex<HashMap<String, u32>>,
    resync: Duration,
    /// True once every cache synced and discovery answered: no evaluation before (a half-filled
    /// cache would write a wrong status, then the right one, with Events for both).
    ready: watch::Receiver<bool>,
}

impl Context {
    /// The snapshot of the caches that `policy_leases` needs: no API call.
    fn snapshot(&self, policy_leases: &[(String, String)]) -> ClusterSnapshot {
        let nodes = self.nodes.state().iter().filter_map(|n| n.0.as_ref().ok().map(|n| n.info.clone())).collect();
        let leases = policy_leases
            .iter()
            .filter_map(|(ns, name)| {
                let lease = self.leases.get(&ObjectRef::new(name).within(ns))?;
                lease.0.as_ref().ok().map(|l| ((ns.clone(), name.clone()), l.info.clone()))
            })
            .collect::<BTreeMap<_, _>>();
        let info = self.cluster.read().unwrap_or_else(|e| e.into_inner()).clone();
        ClusterSnapshot { server_version: info.server_version, nodes, leases, api_versions: info.api_versions }
    }

    /// Forgets what was written for policies that no longer exist.
    fn prune_written(&self) {
        self.written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|p, _| self.policies.get(&ObjectRef::new(p)).is_some());
    }
}

/// Runs the operator until `shutdown` turns true. Returns an error when a supervised task
/// (server, leader election) dies, so the process exits non-zero.
pub async fn run(
    client: Client,
    settings: Settings,
    clock: Arc<dyn Clock>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), RunError> {
    let metrics = Arc::new(Metrics::new());
    let ready = Arc::new(AtomicBool::new(false));

    // HTTP server.
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    let server_state = ServerState { metrics: metrics.clone(), ready: ready.clone() };
    let mut server_shutdown = shutdown.clone();
    let server = tokio::spawn(server::serve(settings.metrics_addr, server_state, bound_tx, async move {
        let _ = server_shutdown.wait_for(|s| *s).await;
    }));
    if let Ok(addr) = bound_rx.await {
        tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
        if let Some(tx) = &settings.report_addr {
            let _ = tx.send(addr);
        }
    }

    // Leadership.
    let leadership = match &settings.leader {
        None => Leadership::always(),
        Some(_) => Leadership::elected(),
    };
    let elector = settings.leader.clone().map(|cfg| {
        let api: Api<Lease> = Api::namespaced(client.clone(), &cfg.namespace);
        tokio::spawn(leader::run(api, cfg, leadership.clone(), shutdown.clone()))
    });

    // Caches. Each is driven by a task of its own, so it syncs whatever the controller does, and
    // reports its first complete list (InitDone) for /readyz. (Readiness is not taken from
    // `Store::wait_until_ready`: its one-shot wakes a single waiter, and the controller waits
    // on the policy store itself.)
    let (synced_tx, synced_rx) = watch::channel(0u8);
    let synced_tx = Arc::new(synced_tx);

    let (policy_store, policy_writer) = reflector::store();
    let policy_events =
        watcher(Api::<DeserializeGuard<SupportPolicy>>::all(client.clone()), watcher::Config::default().any_semantic())
            .default_backoff()
            .reflect(policy_writer)
            .inspect(mark_synced(synced_tx.clone(), SYNCED_POLICIES))
            .applied_objects();
    let (nodes, node_writer) = reflector::store();
    let node_events =
        watcher(Api::<DeserializeGuard<CachedNode>>::all(client.clone()), watcher::Config::default().any_semantic())
            .default_backoff()
            .reflect(node_writer)
            .inspect(mark_synced(synced_tx.clone(), SYNCED_NODES));
    let (leases, lease_writer) = reflector::store();
    // Kubelet heartbeats (kube-node-lease) are the bulk of Lease traffic and never a policy's.
    let lease_events = watcher(
        Api::<DeserializeGuard<CachedLease>>::all(client.clone()),
        watcher::Config::default().any_semantic().fields("metadata.namespace!=kube-node-lease"),
    )
    .default_backoff()
    .reflect(lease_writer)
    .inspect(mark_synced(synced_tx.clone(), SYNCED_LEASES));
    let (statuses, status_writer) = reflector::store();
    let status_events =
        watcher(Api::<DeserializeGuard<SupportStatus>>::all(client.clone()), watcher::Config::default().any_semantic())
            .default_backoff()
            .reflect(status_writer)
            .inspect(mark_synced(synced_tx.clone(), SYNCED_STATUSES))
            .applied_objects();

    let (ready_tx, ready_rx) = watch::channel(false);
    let ctx = Arc::new(Context {
        client: client.clone(),
        clock: clock.clone(),
        nodes: nodes.clone(),
        leases: leases.clone(),
        statuses: statuses.clone(),
        policies: policy_store.clone(),
        cluster: RwLock::new(ClusterInfo::default()),
        metrics: metrics.clone(),
        leadership: leadership.clone(),
        recorder: Recorder::new(
            client.clone(),
            Reporter { controller: "support-operator".into(), instance: Some(settings.identity.clone()) },
        ),
        written: Mutex::new(HashMap::new()),
        failures: Mutex::new(HashMap::new()),
        resync: settings.resync,
        ready: ready_rx,
    });

    {
        let policies = policy_store.clone();
        metrics.set_policy_filter(move |p| policies.get(&ObjectRef::new(p)).is_some());
    }

    // Discovery, refreshed in the background; a change re-evaluates every policy.
    let (discovery_tx, discovery_rx) = watch::channel(());
    let discovery = tokio::spawn(triggers::discovery_loop(
        ctx.clone(),
        settings.discovery_interval,
        discovery_tx,
        shutdown.clone(),
    ));

    // Readiness: every cache synced and discovery answered once.
    {
        let (ctx, ready) = (ctx.clone(), ready.clone());
        let (mut synced, mut discovered) = (synced_rx, discovery_rx.clone());
        tokio::spawn(async move {
            if synced.wait_for(|m| *m == SYNCED_ALL).await.is_err() {
                return;
            }
            while ctx.cluster.read().unwrap_or_else(|e| e.into_inner()).server_version.is_none() {
                if discovered.changed().await.is_err() {
                    return;
                }
            }
            ready.store(true, Ordering::Release);
            ready_tx.send_replace(true);
            tracing::info!("caches synced; ready");
        });
    }

    // The caches are driven by their own tasks, so they sync whatever the controller does;
    // their content changes coalesce into one "re-evaluate everything" signal.
    let changed = Arc::new(watch::channel(()).0);
    let signal = |changed: Arc<watch::Sender<()>>| {
        move |()| {
            changed.send_replace(());
            std::future::ready(())
        }
    };
    let (status_tx, status_rx) = futures::channel::mpsc::unbounded();
    let (policy_tx, policy_rx) = futures::channel::mpsc::unbounded();
    let mut drivers = AbortOnDrop(vec![
        tokio::spawn(policy_events.for_each(move |event| {
            match event {
                Ok(policy) => {
                    let _ = policy_tx.unbounded_send(Ok(policy));
                }
                Err(e) => tracing::warn!(error = %e, "SupportPolicy watch error; the watcher retries with backoff"),
            }
            std::future::ready(())
        })),
        tokio::spawn(triggers::node_changes(node_events, metrics.clone()).for_each(signal(changed.clone()))),
        tokio::spawn(
            triggers::lease_changes(lease_events, policy_store.clone(), metrics.clone())
                .for_each(signal(changed.clone())),
        ),
        tokio::spawn(status_events.for_each(move |event| {
            if let Ok(status) = event {
                let _ = status_tx.unbounded_send(Ok(status));
            }
            std::future::ready(())
        })),
    ]);
    let triggers = futures::stream::select_all::<Vec<std::pin::Pin<Box<dyn Stream<Item = ()> + Send>>>>(vec![
        Box::pin(triggers::watch_changes(changed.subscribe())),
        Box::pin(triggers::watch_changes(discovery_rx)),
        Box::pin(triggers::leadership_changes(leadership.subscribe(), metrics.clone())),
        Box::pin(triggers::clock_jumps(clock.jumps())),
    ]);

    let mut controller_shutdown = shutdown.clone();
    let controller = Controller::for_stream(policy_rx, policy_store.clone())
        .owns_stream(status_rx)
        .reconcile_all_on(triggers)
        .graceful_shutdown_on(async move {
            let _ = controller_shutdown.wait_for(|s| *s).await;
        })
        .run(reconcile::reconcile, reconcile::error_policy, ctx.clone())
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "controller event");
            }
        });

    let elector_done = async {
        match elector {
            Some(handle) => match handle.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(RunError::Leader(e)),
                Err(_) => Err(RunError::Task("leader election")),
            },
            None => std::future::pending().await,
        }
    };
    let mut shutdown_wait = shutdown.clone();
    tokio::select! {
        _ = controller => {}
        r = server => {
            return match r {
                Ok(Ok(())) if *shutdown_wait.borrow() => Ok(()),
                Ok(Err(e)) => Err(RunError::Server(e)),
                _ => Err(RunError::Task("metrics server")),
            };
        }
        r = elector_done => {
            if !*shutdown_wait.borrow() {
                r?;
                return Err(RunError::Task("leader election"));
            }
        }
        _ = discovery => {
            if !*shutdown_wait.borrow() {
                return Err(RunError::Task("discovery"));
            }
        }
        _ = futures::future::select_all(drivers.0.iter_mut()) => {
            if !*shutdown_wait.borrow() {
                return Err(RunError::Task("watch"));
            }
        }
    }
    drop(drivers);
    let _ = shutdown_wait.wait_for(|s| *s).await;
    metrics.leader.set(0);
    tracing::info!("stopped");
    Ok(())
}

/// Sets `bit` in `synced` at the first complete list of a watch.
fn mark_synced<K>(synced: Arc<watch::Sender<u8>>, bit: u8) -> impl FnMut(&Result<watcher::Event<K>, watcher::Error>) {
    move |event| {
        if matches!(event, Ok(watcher::Event::InitDone)) {
            synced.send_if_modified(|m| std::mem::replace(m, *m | bit) != *m | bit);
        }
    }
}

const SYNCED_POLICIES: u8 = 1;
const SYNCED_NODES: u8 = 2;
const SYNCED_LEASES: u8 = 4;
const SYNCED_STATUSES: u8 = 8;
const SYNCED_ALL: u8 = 15;

/// Tasks that end with the operator, however it ends.
struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// The requeue after a successful evaluation: at the next change, bounded by the resync.
fn requeue_at(
    next_change: Option<chrono::DateTime<chrono::Utc>>,
    now: chrono::DateTime<chrono::Utc>,
    resync: Duration,
) -> Action {
    let until =
        next_change.and_then(|t| (t - now).to_std().ok()).map(|d| d + Duration::from_millis(50)).unwrap_or(resync);
    Action::requeue(until.min(resync))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requeue_is_the_next_change_bounded_by_the_resync() {
        let now = crate::time::parse_rfc3339("2026-11-25T00:00:00Z").unwrap();
        let hour = Duration::from_secs(3600);
        assert_eq!(requeue_at(None, now, hour), Action::requeue(hour));
        let soon = now + chrono::TimeDelta::seconds(5);
        assert_eq!(requeue_at(Some(soon), now, hour), Action::requeue(Duration::from_millis(5050)));
        let late = now + chrono::TimeDelta::days(30);
        assert_eq!(requeue_at(Some(late), now, hour), Action::requeue(hour));
    }
}
