//! The operator's two HTTP servers:
//!
//! - **metrics**: `/metrics` (Prometheus text), by default over HTTPS and only for callers the
//!   API server authenticates (TokenReview) and allows to `get` the URL (SubjectAccessReview),
//!   see [`auth`]; with `--metrics-secure=false`, plain HTTP for anyone who reaches the port;
//! - **health**: `/healthz` (no supervised loop is stuck) and `/readyz` (the caches synced and no
//!   watch keeps failing), plain HTTP on a port of its own for the kubelet's probes. See
//!   [`crate::health`].

pub mod auth;
mod cache;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::health::Health;
use crate::metrics::Metrics;
pub use auth::AuthCache;

/// The addresses the operator's HTTP servers bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addresses {
    /// `/metrics`.
    pub metrics: SocketAddr,
    /// `/healthz` and `/readyz`.
    pub health: SocketAddr,
}

/// How `/metrics` is served.
#[derive(Debug, Clone)]
pub enum MetricsSecurity {
    /// Plain HTTP, no authentication (`--metrics-secure=false`).
    Plain,
    /// HTTPS, each caller authenticated and authorized by the API server.
    Secure(SecureMetrics),
}

/// The HTTPS side of `/metrics`.
#[derive(Debug, Clone)]
pub struct SecureMetrics {
    /// The directory of `tls.crt` and `tls.key` (re-read when they change); `None`: a self-signed
    /// certificate generated at start.
    pub cert_dir: Option<PathBuf>,
    /// How often the certificate files are checked for a change.
    pub reload_interval: Duration,
    /// How long review answers are kept, and how many.
    pub cache: AuthCache,
}

impl Default for SecureMetrics {
    fn default() -> Self {
        SecureMetrics { cert_dir: None, reload_interval: Duration::from_secs(10), cache: AuthCache::default() }
    }
}

/// Why a server cannot start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Binding or serving failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The certificate is unusable.
    #[error("certificate: {0}")]
    Tls(#[from] tls::TlsError),
}

/// The `/metrics` router; behind the review guard when `reviewer` is given.
pub fn metrics_router(metrics: Arc<Metrics>, reviewer: Option<Arc<auth::Reviewer>>) -> Router {
    let router = Router::new().route("/metrics", get(serve_metrics)).with_state(metrics);
    match reviewer {
        Some(reviewer) => router.layer(axum::middleware::from_fn_with_state(reviewer, auth::guard)),
        None => router,
    }
}

/// The `/healthz` and `/readyz` router.
pub fn health_router(health: Arc<Health>) -> Router {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).with_state(health)
}

async fn serve_metrics(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], metrics.encode())
}

async fn healthz(State(health): State<Arc<Health>>) -> impl IntoResponse {
    answer(health.liveness())
}

async fn readyz(State(health): State<Arc<Health>>) -> impl IntoResponse {
    answer(health.readiness())
}

fn answer(result: Result<String, String>) -> (StatusCode, String) {
    match result {
        Ok(report) => (StatusCode::OK, report),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
    }
}

/// Serves `/healthz` and `/readyz` on `addr` (plain HTTP) until an error; tells `bound` the address.
pub async fn serve_health(
    addr: SocketAddr,
    health: Arc<Health>,
    bound: tokio::sync::oneshot::Sender<SocketAddr>,
) -> Result<(), ServeError> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let _ = bound.send(listener.local_addr()?);
    axum::serve(listener, health_router(health)).await?;
    Ok(())
}

/// Serves `/metrics` on `addr` as `security` says (reviews through `client`) until an error;
/// tells `bound` the address. A certificate that cannot be read or generated fails at once.
pub async fn serve_metrics_endpoint(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    security: MetricsSecurity,
    client: kube::Client,
    bound: tokio::sync::oneshot::Sender<SocketAddr>,
) -> Result<(), ServeError> {
    let secure = match security {
        MetricsSecurity::Plain => {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            let _ = bound.send(listener.local_addr()?);
            axum::serve(listener, metrics_router(metrics, None)).await?;
            return Ok(());
        }
        MetricsSecurity::Secure(secure) => secure,
    };
    let (certificate, follow) = match &secure.cert_dir {
        None => (tls::Certificate::new(tls::self_signed()?), None),
        Some(dir) => {
            let files = tls::PemFiles::read(dir)?;
            let certificate = tls::Certificate::new(files.parse(dir)?);
            let follow = certificate.clone().follow(dir.clone(), files, secure.reload_interval);
            (certificate, Some(follow))
        }
    };
    let listener = tls::TlsListener::new(tokio::net::TcpListener::bind(addr).await?, certificate.server_config()?)?;
    let _ = bound.send(addr_of(&listener)?);
    let reviewer = auth::Reviewer::new(client, secure.cache);
    let router = metrics_router(metrics, Some(reviewer));
    let serve = async move { axum::serve(listener, router).await };
    match follow {
        None => serve.await?,
        Some(follow) => tokio::select! {
            served = serve => served?,
            () = follow => {}
        },
    }
    Ok(())
}

fn addr_of(listener: &tls::TlsListener) -> std::io::Result<SocketAddr> {
    axum::serve::Listener::local_addr(listener)
}
