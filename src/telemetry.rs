//! Logs with `tracing`: plain or JSON lines, filtered by an EnvFilter.

use tracing_subscriber::{fmt, prelude::*, EnvFilter};

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Plain,
    /// One JSON object per line.
    Json,
}

/// The default filter. kube-runtime's watcher warns at every retry of a failing watch (a 403
/// every few seconds); the operator logs watch errors itself, once per change of their cause.
pub const DEFAULT_FILTER: &str = "info,kube=warn,kube_runtime::watcher=error";

/// Installs the global subscriber. An invalid filter falls back to [`DEFAULT_FILTER`] with a
/// warning, rather than failing to start.
pub fn init(format: LogFormat, filter: &str) {
    let (filter, bad) = match EnvFilter::try_new(filter) {
        Ok(f) => (f, None),
        Err(e) => (EnvFilter::new(DEFAULT_FILTER), Some(e)),
    };
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Json => registry.with(fmt::layer().json().flatten_event(true).with_current_span(true)).try_init(),
        LogFormat::Plain => registry.with(fmt::layer()).try_init(),
    };
    if result.is_err() {
        return; // already installed (tests)
    }
    if let Some(e) = bad {
        tracing::warn!(error = %e, "invalid log filter, using {DEFAULT_FILTER}");
    }
}
