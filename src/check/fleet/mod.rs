//! `check --context A --context B` and `check --all-contexts`: the engine against the clusters
//! of several kubeconfig contexts, a bounded number at a time, each within its own deadline. A
//! cluster that cannot be read, or has no policy to evaluate, is a row with verdict `Unknown`
//! and the reason; it never stops the others.

mod cluster;
mod render;

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kube::config::Kubeconfig;

use super::input::{self, InputError};
use super::{exit_code, looks_like_path, Color, FailOn, Output, PolicyFault};
use crate::crd::v1alpha1::{SupportPolicy, SupportStatus, Verdict};
pub use render::first_plan_step;

/// `--policy in-cluster`: every SupportPolicy found in each cluster.
pub const IN_CLUSTER: &str = "in-cluster";
/// The most contexts one run evaluates.
pub const MAX_CONTEXTS: usize = 1000;
/// The most SupportPolicies evaluated in one cluster with `--policy in-cluster`.
pub const MAX_POLICIES_PER_CLUSTER: usize = 100;
/// Characters of an error in a row.
pub const ERROR_CHARS: usize = 300;

/// Everything a fleet check needs, already parsed.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// The contexts named with `--context`, in order.
    pub contexts: Vec<String>,
    /// Every context of the kubeconfig instead.
    pub all_contexts: bool,
    /// A file, a preset, a policy name in each cluster, or `in-cluster`.
    pub policy: String,
    /// Evaluate as of this instant.
    pub now: Option<DateTime<Utc>>,
    /// Table, JSON or YAML.
    pub output: Output,
    /// Exit 1 when the worst row is at or above it.
    pub fail_on: Option<FailOn>,
    /// Colour of the table.
    pub color: Color,
    /// Clusters evaluated at the same time.
    pub concurrency: usize,
    /// How long one cluster may take.
    pub cluster_timeout: Duration,
}

/// Why the fleet check could not start (exit code 2). What goes wrong in one cluster is a row.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The kubeconfig cannot be read.
    #[error("cannot read the kubeconfig: {0}")]
    Kubeconfig(String),
    /// A context that the kubeconfig does not have.
    #[error("--context {name}: no such context in the kubeconfig (it has: {known})")]
    UnknownContext {
        /// The name given.
        name: String,
        /// The contexts it has.
        known: String,
    },
    /// `--all-contexts` on a kubeconfig without any.
    #[error("--all-contexts: the kubeconfig has no context")]
    NoContexts,
    /// More contexts than [`MAX_CONTEXTS`].
    #[error("{count} contexts, more than {MAX_CONTEXTS} at once")]
    TooManyContexts {
        /// How many.
        count: usize,
    },
    /// The policy given on the command line cannot be used.
    #[error(transparent)]
    Policy(#[from] PolicyFault),
}

/// Where each cluster's policies come from.
#[derive(Debug, Clone)]
pub(crate) enum PolicySource {
    /// A file or a preset, the same for every cluster.
    Given(Box<SupportPolicy>),
    /// A SupportPolicy of this name in each cluster.
    Named(String),
    /// Every SupportPolicy in each cluster.
    InCluster,
}

/// One line of the fleet: a policy evaluated in a cluster, or why there is none.
#[derive(Debug, Clone)]
pub struct Row {
    /// The kubeconfig context.
    pub context: String,
    /// The policy's name, when there is one.
    pub policy: Option<String>,
    /// The SupportStatus as the operator would write it, when the policy was evaluated.
    pub status: Option<SupportStatus>,
    /// Why it was not (or not entirely) evaluated.
    pub error: Option<String>,
}

impl Row {
    /// The row's verdict: `Unknown` when nothing was evaluated.
    pub fn verdict(&self) -> Verdict {
        self.status.as_ref().and_then(|s| s.status.as_ref()).and_then(|s| s.verdict).unwrap_or(Verdict::Unknown)
    }

    pub(crate) fn failed(context: &str, policy: Option<String>, error: String) -> Row {
        Row { context: context.to_string(), policy, status: None, error: Some(error) }
    }
}

/// The contexts to evaluate, in order, each once.
fn contexts(kubeconfig: &Kubeconfig, opts: &FleetOptions) -> Result<Vec<String>, FleetError> {
    let known: Vec<&str> = kubeconfig.contexts.iter().map(|c| c.name.as_str()).collect();
    let wanted: Vec<String> =
        if opts.all_contexts { known.iter().map(|c| c.to_string()).collect() } else { opts.contexts.clone() };
    let mut seen = BTreeSet::new();
    let wanted: Vec<String> = wanted.into_iter().filter(|c| seen.insert(c.clone())).collect();
    if wanted.is_empty() {
        return Err(FleetError::NoContexts);
    }
    if wanted.len() > MAX_CONTEXTS {
        return Err(FleetError::TooManyContexts { count: wanted.len() });
    }
    if let Some(missing) = wanted.iter().find(|c| !known.contains(&c.as_str())) {
        let mut list = known.iter().take(20).map(|c| render::printable(c)).collect::<Vec<_>>().join(", ");
        if known.len() > 20 {
            list.push_str(&format!(", … {} more", known.len() - 20));
        }
        return Err(FleetError::UnknownContext { name: render::printable(missing), known: list });
    }
    Ok(wanted)
}

/// What `--policy` names, read once.
fn policy_source(policy: &str) -> Result<PolicySource, FleetError> {
    if policy == IN_CLUSTER {
        return Ok(PolicySource::InCluster);
    }
    if Path::new(policy).is_file() {
        return Ok(PolicySource::Given(Box::new(input::load_policy(Path::new(policy)).map_err(PolicyFault::File)?)));
    }
    if let Some(preset) = input::preset_policy(policy) {
        return Ok(PolicySource::Given(Box::new(preset)));
    }
    if looks_like_path(policy) {
        let missing = InputError::Read { file: policy.to_string(), reason: "no such file".into() };
        return Err(PolicyFault::File(missing).into());
    }
    Ok(PolicySource::Named(policy.to_string()))
}

/// Runs the fleet check: the table (or JSON, YAML) on stdout, progress on stderr when it is a
/// terminal; returns the exit code (0, or 1 when the worst row is at or above `--fail-on`).
pub async fn run(opts: FleetOptions) -> Result<u8, FleetError> {
    let now = opts.now.unwrap_or_else(Utc::now);
    let kubeconfig = Kubeconfig::read().map_err(|e| FleetError::Kubeconfig(render::printable(&e.to_string())))?;
    let contexts = contexts(&kubeconfig, &opts)?;
    let source = policy_source(&opts.policy)?;

    let bar = progress_bar(contexts.len());
    let in_flight: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let show = |bar: &ProgressBar, in_flight: &BTreeSet<String>| {
        let names: Vec<String> = in_flight.iter().map(|c| render::printable(c)).collect();
        bar.set_message(crate::text::cap(&names.join(", "), 200));
    };
    let checks = contexts.iter().enumerate().map(|(index, context)| {
        let (kubeconfig, source, bar, in_flight) = (&kubeconfig, &source, &bar, in_flight.clone());
        async move {
            if let Ok(mut set) = in_flight.lock() {
                set.insert(context.clone());
                show(bar, &set);
            }
            let rows = cluster::check(kubeconfig, context, source, now, opts.cluster_timeout).await;
            if let Ok(mut set) = in_flight.lock() {
                set.remove(context);
                show(bar, &set);
            }
            bar.inc(1);
            (index, rows)
        }
    });
    let mut done: Vec<(usize, Vec<Row>)> =
        futures::stream::iter(checks).buffer_unordered(opts.concurrency).collect().await;
    bar.finish_and_clear();
    done.sort_by_key(|(index, _)| *index);
    let rows: Vec<Row> = done.into_iter().flat_map(|(_, rows)| rows).collect();

    let summary = render::summary(&rows, now);
    let out = match opts.output {
        Output::Table => format!("{}\n{summary}\n", render::table(&rows, now, opts.color.enabled())),
        // The summary goes to stderr, so that stdout is the document alone.
        Output::Json => {
            eprintln!("{summary}");
            format!("{}\n", serde_json::to_string_pretty(&render::entries(&rows)).expect("rows serialise"))
        }
        Output::Yaml => {
            eprintln!("{summary}");
            crate::yaml::to_string(&render::entries(&rows)).expect("rows serialise")
        }
    };
    crate::text::to_stdout(&out);
    let worst = rows.iter().map(Row::verdict).max().unwrap_or(Verdict::Unknown);
    Ok(exit_code(worst, opts.fail_on))
}

/// A bar on stderr when it is a terminal: clusters done of all, and those in flight.
fn progress_bar(len: usize) -> ProgressBar {
    let target =
        if std::io::stderr().is_terminal() { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
    let bar = ProgressBar::with_draw_target(Some(len as u64), target);
    if let Ok(style) = ProgressStyle::with_template("{spinner} {bar:30} {pos}/{len} clusters  {wide_msg}") {
        bar.set_style(style);
    }
    if !bar.is_hidden() {
        bar.enable_steady_tick(Duration::from_millis(120));
    }
    bar
}

#[cfg(test)]
mod tests;
