//! What makes the controller re-evaluate every policy: node content changes (not heartbeats:
//! see `nodes`), changes of the Leases policies name (see `leases`), discovery, leadership and
//! clock jumps.

use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::sync::watch;

use super::{ClusterInfo, Context};
use crate::k8s::gather::served_api_versions;
use crate::k8s::openreports;

/// The name of the discovery loop in `/healthz`.
const DISCOVERY: &str = "discovery";

/// The deadline of one discovery call.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(30);

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
