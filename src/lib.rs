//! support-operator: makes managed-Kubernetes support policies visible and alertable.
//!
//! `policy` is the pure engine; `snapshot` the value it reads; `calendar` the release data;
//! `crd` the API types. The operator (`controller`, `k8s`) and the `check` command are thin
//! shells around them.

#[cfg(test)]
mod allocations;
pub mod calendar;
pub mod calendar_cmd;
pub mod check;
pub mod cli;
pub mod controller;
pub mod crd;
pub mod health;
pub mod k8s;
pub mod metrics;
pub mod policy;
pub mod server;
pub mod snapshot;
pub mod telemetry;
pub mod text;
pub mod time;
pub mod version;
pub mod yaml;

/// `support-operator run`: the operator until SIGTERM or Ctrl-C.
pub fn run(args: cli::RunArgs) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let metrics_security = args.metrics_security().map_err(anyhow::Error::msg)?;
    telemetry::init(args.log_format, &args.log_filter);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    runtime.block_on(async move {
        let mut config = kube::Config::infer().await.context("reading the kubeconfig or in-cluster configuration")?;
        // Every call has a deadline: connecting and sending are bounded here; a response by the
        // read timeout, which must outlast the server's watch timeout (290 s) as watches share the
        // client; each non-watch call of the operator has a shorter deadline of its own.
        config.connect_timeout = Some(std::time::Duration::from_secs(10));
        config.write_timeout = Some(std::time::Duration::from_secs(30));
        config.read_timeout = Some(std::time::Duration::from_secs(330));
        config.reset_reader_on_write = true;
        let agent = format!("support-operator/{}", env!("CARGO_PKG_VERSION"));
        config.headers.push((http::header::USER_AGENT, http::HeaderValue::from_str(&agent).context("user agent")?));
        let default_namespace = config.default_namespace.clone();
        let client = kube::Client::try_from(config).context("building the Kubernetes client")?;
        let identity = args
            .identity
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| format!("support-operator-{}", std::process::id()));
        let leader = args.leader_elect.then(|| k8s::leader::LeaderConfig {
            namespace: args.lease_namespace.clone().unwrap_or(default_namespace),
            name: args.lease_name.clone(),
            identity: identity.clone(),
            duration: std::time::Duration::from_secs(args.lease_duration_seconds),
        });
        let settings = controller::Settings {
            metrics_addr: args.metrics_addr,
            metrics_security,
            health_addr: args.health_addr,
            openreports: args.openreports,
            leader,
            resync: args.resync(),
            discovery_interval: std::time::Duration::from_secs(args.discovery_seconds),
            identity,
            report_addr: None,
            health: health::HealthSettings::default(),
            node_metrics: args.node_metrics,
        };
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutting down");
            let _ = stop_tx.send(true);
        });
        controller::run(client, settings, std::sync::Arc::new(controller::clock::SystemClock), stop_rx).await?;
        Ok(())
    })
}

/// SIGTERM (Kubernetes) or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
