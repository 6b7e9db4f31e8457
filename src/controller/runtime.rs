//! The operator's tasks, supervised (kubert's `Runtime` shape): every long-running task is owned
//! by one set, and one that ends or panics before the shutdown ends the operator with an error
//! naming it, so that the process exits non-zero. The ordered drain itself is in `run`.

use std::collections::HashMap;
use std::future::Future;

use tokio::task::{Id, JoinSet};

use std::sync::Arc;

use super::{RunError, Settings};
use crate::health::Health;
use crate::k8s::leader::LeaderError;
use crate::metrics::Metrics;
use crate::server::{self, Addresses, MetricsSecurity};

/// Tasks that must run until the shutdown.
#[derive(Default)]
pub(super) struct Tasks {
    set: JoinSet<Result<(), RunError>>,
    names: HashMap<Id, &'static str>,
}

impl Tasks {
    /// Spawns `task`; its end, whatever its result, is a failure of the operator.
    pub(super) fn spawn(
        &mut self,
        name: &'static str,
        task: impl Future<Output = Result<(), RunError>> + Send + 'static,
    ) {
        let handle = self.set.spawn(task);
        self.names.insert(handle.id(), name);
    }

    /// Spawns `task`, which never ends unless something is wrong.
    pub(super) fn spawn_forever(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        self.spawn(name, async move {
            task.await;
            Err(RunError::Task(name))
        });
    }

    /// The failure of the first task to end (never resolves while all run).
    pub(super) async fn first_failure(&mut self) -> RunError {
        match self.set.join_next_with_id().await {
            None => std::future::pending().await,
            Some(Ok((id, result))) => result.err().unwrap_or(RunError::Task(self.name(id))),
            Some(Err(e)) => RunError::Task(self.name(e.id())),
        }
    }

    fn name(&self, id: Id) -> &'static str {
        self.names.get(&id).copied().unwrap_or("unnamed")
    }

    /// Stops every task and waits until they are gone.
    pub(super) async fn shutdown(mut self) {
        self.set.shutdown().await;
    }
}

/// Starts the health and metrics servers as supervised tasks; returns once both are bound (or
/// with the failure of the first that could not start).
pub(super) async fn start_servers(
    tasks: &mut Tasks,
    settings: &Settings,
    metrics: &Arc<Metrics>,
    health: &Arc<Health>,
    client: &kube::Client,
) -> Result<Addresses, RunError> {
    let (health_tx, health_rx) = tokio::sync::oneshot::channel();
    let (health_addr, probes) = (settings.health_addr, health.clone());
    tasks.spawn("health server", async move {
        let served = server::serve_health(health_addr, probes, health_tx).await;
        Err(served.err().map_or(RunError::Task("health server"), |e| RunError::Server("health", e)))
    });
    let (metrics_tx, metrics_rx) = tokio::sync::oneshot::channel();
    let (addr, security, exported, reviews) =
        (settings.metrics_addr, settings.metrics_security.clone(), metrics.clone(), client.clone());
    tasks.spawn("metrics server", async move {
        let served = server::serve_metrics_endpoint(addr, exported, security, reviews, metrics_tx).await;
        Err(served.err().map_or(RunError::Task("metrics server"), |e| RunError::Server("metrics", e)))
    });
    match (metrics_rx.await, health_rx.await) {
        (Ok(metrics), Ok(health)) => {
            let secure = matches!(settings.metrics_security, MetricsSecurity::Secure(_));
            tracing::info!(%metrics, secure, %health, "serving /metrics, and /healthz and /readyz");
            Ok(Addresses { metrics, health })
        }
        _ => Err(tasks.first_failure().await),
    }
}

/// The end of the elector, if there is one (an error: it runs until released).
pub(super) async fn elector_end(elector: &mut Option<tokio::task::JoinHandle<Result<(), LeaderError>>>) -> RunError {
    let Some(handle) = elector.as_mut() else { return std::future::pending().await };
    let result = handle.await;
    *elector = None;
    match result {
        Ok(Err(e)) => RunError::Leader(e),
        _ => RunError::Task("leader election"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_that_ends_or_panics_is_a_named_failure() {
        let mut tasks = Tasks::default();
        tasks.spawn_forever("quiet", std::future::pending());
        tasks.spawn_forever("ends", async {});
        assert!(matches!(tasks.first_failure().await, RunError::Task("ends")));
        tasks.spawn_forever("panics", async { panic!("boom") });
        assert!(matches!(tasks.first_failure().await, RunError::Task("panics")));
        tasks.spawn("fails", async { Err(RunError::Server("metrics", std::io::Error::other("bind").into())) });
        assert!(matches!(tasks.first_failure().await, RunError::Server("metrics", _)));
        tasks.shutdown().await;
    }
}
