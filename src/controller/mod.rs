//! The operator: SupportPolicy is the primary resource; Nodes, the Leases policies name, the
//! owned SupportStatus objects, discovery, leadership and clock jumps trigger re-evaluation.
//! Every reconcile is gather (caches only) → evaluate (the pure engine) → write (only changes).

pub mod clock;
pub mod error;
mod leases;
mod memory;
mod nodes;
mod reconcile;
mod reports;
mod runtime;
mod triggers;
mod watches;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use kube::core::DeserializeGuard;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::Event;
use kube::{Api, Client};
use tokio::sync::watch;

use crate::crd::v1alpha1::{SupportPolicy, SupportReport, SupportStatus, Verdict};
use crate::health::{Health, HealthSettings};
use crate::k8s::leader::{self, LeaderConfig, Leadership};
use crate::k8s::objects::CachedNode;
use crate::metrics::{Metrics, NodeMetrics};
use crate::server::{self, Addresses, MetricsSecurity};
use crate::snapshot::ClusterSnapshot;
use clock::Clock;
pub use error::{Category, Error};
use leases::{LeaseCache, LeaseWatches};
use nodes::{policy_keys, preset_keys, NodeCache, NodeWatch};
use runtime::{elector_end, Tasks};
use watches::{applied, watch_all, SYNCED_ALL, SYNCED_NODES, SYNCED_POLICIES, SYNCED_STATUSES};

/// How long in-flight reconciles may finish their writes after SIGTERM before they are abandoned.
const DRAIN: Duration = Duration::from_secs(10);

/// How the operator runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address of /metrics (port 0: any).
    pub metrics_addr: SocketAddr,
    /// HTTPS with authentication and authorization, or plain HTTP.
    pub metrics_security: MetricsSecurity,
    /// Address of /healthz and /readyz, plain HTTP (port 0: any).
    pub health_addr: SocketAddr,
    /// Leader election, if enabled.
    pub leader: Option<LeaderConfig>,
    /// Longest time between two evaluations of a policy.
    pub resync: Duration,
    /// Time between two discovery refreshes.
    pub discovery_interval: Duration,
    /// This replica's identity (Event reporter instance).
    pub identity: String,
    /// Told the addresses the HTTP servers bound (useful with port 0).
    pub report_addr: Option<tokio::sync::mpsc::UnboundedSender<Addresses>>,
    /// The bounds of /healthz and /readyz.
    pub health: HealthSettings,
    /// Which nodes have series of their own on /metrics.
    pub node_metrics: NodeMetrics,
    /// Also write an OpenReports ClusterReport per policy (when its CRD is installed).
    pub openreports: bool,
}

/// Why the operator stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// An HTTP server could not start or failed.
    #[error("{0} server: {1}")]
    Server(&'static str, server::ServeError),
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
    /// The API server serves openreports.io ClusterReports (asked only with `--openreports`).
    cluster_reports: bool,
}

/// Shared state of reconciles.
pub struct Context {
    client: Client,
    clock: Arc<dyn Clock>,
    nodes: Arc<NodeCache>,
    leases: Arc<LeaseCache>,
    statuses: Store<DeserializeGuard<SupportStatus>>,
    policies: Store<DeserializeGuard<SupportPolicy>>,
    cluster: RwLock<ClusterInfo>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    leadership: Leadership,
    recorder: Recorder,
    /// The status last written per policy with its resourceVersion, until the cache shows it
    /// (the cache lags our own writes by a watch event).
    written: Mutex<HashMap<String, (Option<String>, SupportReport)>>,
    /// The verdict this replica last wrote per policy (what a verdict Event compares with).
    verdicts: Mutex<HashMap<String, Option<Verdict>>>,
    /// Consecutive failures per policy, for the backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// The OpenReports ClusterReports.
    reports: reports::Reports,
    resync: Duration,
    /// True once every cache synced and discovery answered: no evaluation before (a half-filled
    /// cache would write a wrong status, then the right one, with Events for both).
    ready: watch::Receiver<bool>,
    /// True once the operator stops: no evaluation starts.
    stopping: watch::Receiver<bool>,
}

impl Context {
    /// The snapshot of the caches with the Leases `policy_leases` (no API call); `None` while
    /// one of those Leases has not been read yet.
    fn snapshot(&self, policy_leases: &[(String, String)]) -> Option<ClusterSnapshot> {
        let leases = self.leases.get(policy_leases)?;
        let nodes = self.nodes.nodes();
        let info = self.cluster.read().unwrap_or_else(|e| e.into_inner()).clone();
        let (server_version, api_versions) = (info.server_version, info.api_versions);
        Some(ClusterSnapshot { server_version, nodes, leases, api_versions })
    }

    /// Forgets what was written for policies that no longer exist.
    fn prune_written(&self) {
        let exists = |p: &String| self.policies.get(&ObjectRef::new(p)).is_some();
        self.written.lock().unwrap_or_else(|e| e.into_inner()).retain(|p, _| exists(p));
        self.verdicts.lock().unwrap_or_else(|e| e.into_inner()).retain(|p, _| exists(p));
        self.reports.retain(exists);
    }

    /// Forgets every write (leadership lost: another replica writes meanwhile).
    fn forget_writes(&self) {
        self.written.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.verdicts.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.reports.forget_all();
    }
}

/// Runs the operator until `shutdown` turns true, then drains in order: no new evaluation,
/// in-flight writes finish (or are abandoned after `DRAIN`), the Lease is released (within a
/// deadline), every task stops. Returns an error when a supervised task dies first, so that the
/// process exits non-zero (after the same drain).
pub async fn run(
    client: Client,
    settings: Settings,
    clock: Arc<dyn Clock>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), RunError> {
    let metrics = Arc::new(Metrics::with_node_metrics(settings.node_metrics));
    for c in Category::ALL {
        metrics.reconcile_errors.with_label_values(&[c.as_str()]);
    }
    let health = Arc::new(Health::new(settings.health));
    let mut tasks = Tasks::default();

    // HTTP servers, up until the very end.
    let addresses = runtime::start_servers(&mut tasks, &settings, &metrics, &health, &client).await?;
    if let Some(tx) = &settings.report_addr {
        let _ = tx.send(addresses);
    }

    // Leadership.
    let leadership = match &settings.leader {
        None => Leadership::always(),
        Some(cfg) => Leadership::elected(cfg.period()),
    };
    let (release_tx, release_rx) = watch::channel(false);
    let mut elector = settings.leader.clone().map(|cfg| {
        let api: Api<Lease> = Api::namespaced(client.clone(), &cfg.namespace);
        tokio::spawn(leader::run(api, cfg, leadership.clone(), health.clone(), release_rx))
    });

    // Caches, each driven by a task of its own so that it syncs whatever the controller does.
    let (synced_tx, synced_rx) = watch::channel(0u8);
    let synced_tx = Arc::new(synced_tx);
    let (policy_store, policy_writer) = reflector::store();
    let policy_events = watch_all(
        Api::<DeserializeGuard<SupportPolicy>>::all(client.clone()),
        policy_writer,
        "SupportPolicy",
        &metrics,
        &health,
        (synced_tx.clone(), SYNCED_POLICIES),
    );
    let nodes = Arc::new(NodeCache::default());
    let (statuses, status_writer) = reflector::store();
    let status_events = watch_all(
        Api::<DeserializeGuard<SupportStatus>>::all(client.clone()),
        status_writer,
        "SupportStatus",
        &metrics,
        &health,
        (synced_tx.clone(), SYNCED_STATUSES),
    );

    let (ready_tx, ready_rx) = watch::channel(false);
    let (stop_tx, stop_rx) = watch::channel(false);
    let lease_cache = Arc::new(LeaseCache::default());
    let ctx = Arc::new(Context {
        client: client.clone(),
        clock: clock.clone(),
        nodes: nodes.clone(),
        leases: lease_cache.clone(),
        statuses: statuses.clone(),
        policies: policy_store.clone(),
        cluster: RwLock::new(ClusterInfo::default()),
        metrics: metrics.clone(),
        health: health.clone(),
        leadership: leadership.clone(),
        recorder: Recorder::new(
            client.clone(),
            Reporter { controller: "support-operator".into(), instance: Some(settings.identity.clone()) },
        ),
        written: Mutex::new(HashMap::new()),
        verdicts: Mutex::new(HashMap::new()),
        failures: Mutex::new(HashMap::new()),
        reports: reports::Reports::new(settings.openreports),
        resync: settings.resync,
        ready: ready_rx,
        stopping: stop_rx.clone(),
    });
    {
        let policies = policy_store.clone();
        metrics.set_policy_filter(move |p| policies.get(&ObjectRef::new(p)).is_some());
    }

    // Discovery, refreshed in the background; a change re-evaluates every policy.
    let (discovery_tx, discovery_rx) = watch::channel(());
    tasks.spawn_forever("discovery", triggers::discovery_loop(ctx.clone(), settings.discovery_interval, discovery_tx));

    // Readiness: every cache synced and discovery answered once.
    {
        let (ctx, mut synced, mut discovered) = (ctx.clone(), synced_rx, discovery_rx.clone());
        tasks.spawn("readiness", async move {
            let _ = synced.wait_for(|m| *m == SYNCED_ALL).await;
            while ctx.cluster.read().unwrap_or_else(|e| e.into_inner()).server_version.is_none() {
                if discovered.changed().await.is_err() {
                    return Err(RunError::Task("readiness"));
                }
            }
            ctx.health.set_synced();
            ready_tx.send_replace(true);
            tracing::info!("caches synced; ready");
            std::future::pending().await
        });
    }

    // Content changes of the caches coalesce into one "re-evaluate everything" signal.
    let changed = Arc::new(watch::channel(()).0);
    let (policies_changed_tx, policies_changed_rx) = watch::channel(());
    let (policy_tx, policy_rx) = futures::channel::mpsc::unbounded();
    // What the node cache keeps: what the presets read, then what the policies read too.
    let (node_keys_tx, node_keys_rx) = watch::channel(preset_keys());
    let keys_of = policy_store.clone();
    tasks.spawn_forever(
        "SupportPolicy watch",
        policy_events.for_each(move |event| {
            if !matches!(event, Event::Init | Event::InitApply(_)) {
                policies_changed_tx.send_replace(());
                let keys = policy_keys(&keys_of);
                node_keys_tx.send_if_modified(|current| std::mem::replace(current, keys.clone()) != keys);
            }
            if let Some(policy) = applied(event) {
                let _ = policy_tx.unbounded_send(policy);
            }
            std::future::ready(())
        }),
    );
    let node_watch = NodeWatch {
        api: Api::<CachedNode>::all(client.clone()),
        cache: nodes.clone(),
        metrics: metrics.clone(),
        health: health.clone(),
        changed: changed.clone(),
        synced: {
            let tx = synced_tx.clone();
            Box::new(move || {
                tx.send_if_modified(|m| std::mem::replace(m, *m | SYNCED_NODES) != *m | SYNCED_NODES);
            })
        },
    };
    tasks.spawn_forever("Node watch", node_watch.run(node_keys_rx));
    let (status_tx, status_rx) = futures::channel::mpsc::unbounded();
    tasks.spawn_forever(
        "SupportStatus watch",
        status_events.for_each(move |event| {
            if let Some(status) = applied(event) {
                let _ = status_tx.unbounded_send(status);
            }
            std::future::ready(())
        }),
    );
    let lease_watches = LeaseWatches {
        client: client.clone(),
        cache: lease_cache,
        policies: policy_store.clone(),
        metrics: metrics.clone(),
        health: health.clone(),
        changed: changed.clone(),
    };
    tasks.spawn("Lease watches", async move {
        lease_watches.run(policies_changed_rx).await.map_err(RunError::Task)?;
        Err(RunError::Task("Lease watches"))
    });
    tasks.spawn_forever("leadership", triggers::follow_leadership(ctx.clone(), changed.clone()));

    let triggers = futures::stream::select_all::<Vec<std::pin::Pin<Box<dyn Stream<Item = ()> + Send>>>>(vec![
        Box::pin(triggers::watch_changes(changed.subscribe())),
        Box::pin(triggers::watch_changes(discovery_rx)),
        Box::pin(triggers::clock_jumps(clock.jumps())),
    ]);
    let mut stop_evaluating = stop_rx;
    let mut controller = tokio::spawn(
        Controller::for_stream(policy_rx, policy_store.clone())
            .owns_stream(status_rx)
            .reconcile_all_on(triggers)
            .graceful_shutdown_on(async move {
                let _ = stop_evaluating.wait_for(|s| *s).await;
            })
            .run(reconcile::reconcile, reconcile::error_policy, ctx.clone())
            .for_each(|result| async move {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "controller event");
                }
            }),
    );

    let outcome = tokio::select! {
        _ = shutdown.wait_for(|s| *s) => Ok(()), // also when the sender is gone
        e = tasks.first_failure() => Err(e),
        _ = &mut controller => Err(RunError::Task("controller")),
        r = elector_end(&mut elector) => Err(r),
    };
    match &outcome {
        Ok(()) => tracing::info!("shutting down"),
        Err(e) => tracing::error!(error = %e, "shutting down after a failure"),
    }

    // 1. No new evaluation; in-flight reconciles finish their writes, within DRAIN.
    stop_tx.send_replace(true);
    if tokio::time::timeout(DRAIN, &mut controller).await.is_err() {
        tracing::warn!(after = ?DRAIN, "abandoning the writes still in flight");
        controller.abort();
    }
    // 2. The Lease is released (the elector bounds the release by a deadline of its own).
    release_tx.send_replace(true);
    let released = match (elector.take(), &settings.leader) {
        (Some(handle), Some(cfg)) => match tokio::time::timeout(cfg.duration, handle).await {
            Ok(Ok(result)) => result.map_err(RunError::from),
            Ok(Err(_)) => Err(RunError::Task("leader election")),
            Err(_) => Err(RunError::Task("leader election (release)")),
        },
        _ => Ok(()),
    };
    // 3. Every other task stops.
    tasks.shutdown().await;
    metrics.leader.set(0);
    tracing::info!("stopped");
    outcome.and(released)
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
