//! `support-operator check`: the engine once, against files or the current kubeconfig.

pub mod fleet;
pub mod input;
pub mod table;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use clap::ValueEnum;
use kube::api::Api;

use crate::crd::v1alpha1::{SupportPolicy, Verdict};
use crate::k8s::gather;
use crate::policy::{self, report, Policy, PolicyError};
use input::InputError;

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// A report for people (colour on a terminal).
    Table,
    /// The SupportStatus object, as JSON.
    Json,
    /// The SupportStatus object, as YAML.
    Yaml,
}

/// The verdict at or above which `check` exits 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    /// AtRisk or Unsupported.
    Warning,
    /// Unsupported only.
    Unsupported,
}

/// When to colour the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Color {
    /// On a terminal, unless NO_COLOR is set.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

impl Color {
    /// Whether to colour what goes to stdout.
    pub fn enabled(self) -> bool {
        match self {
            Color::Always => true,
            Color::Never => false,
            Color::Auto => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        }
    }
}

/// Everything `check` needs, already parsed.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    pub policy: String,
    pub snapshots: Vec<PathBuf>,
    pub server_version: Option<String>,
    pub now: Option<DateTime<Utc>>,
    pub output: Output,
    pub fail_on: Option<FailOn>,
    pub color: Color,
}

/// Why `check` could not evaluate (exit code 2): the policy, a snapshot or the cluster is at
/// fault.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The policy: a file that cannot be used, a name that is nothing, an invalid policy.
    #[error(transparent)]
    Policy(#[from] PolicyFault),
    /// A snapshot file.
    #[error(transparent)]
    Snapshot(InputError),
    /// The cluster could not be reached or read.
    #[error(transparent)]
    Cluster(#[from] ClusterFault),
}

/// What is wrong with the policy.
#[derive(Debug, thiserror::Error)]
pub enum PolicyFault {
    /// Its file cannot be used.
    #[error(transparent)]
    File(#[from] InputError),
    /// The name is no file, no preset and no SupportPolicy in the cluster.
    #[error("--policy {name}: no such file, preset ({}) or SupportPolicy in the cluster", preset_list())]
    NotFound {
        /// The name given.
        name: String,
    },
    /// The SupportPolicy in the cluster is invalid.
    #[error("SupportPolicy {name} is invalid: {}", joined(errors))]
    Invalid {
        /// Its name.
        name: String,
        /// Every bad field.
        errors: Vec<PolicyError>,
    },
}

/// What went wrong with the cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterFault {
    /// No cluster answers from the current kubeconfig.
    #[error(
        "cannot reach a cluster from the current kubeconfig ({source}); pass --snapshot FILE to evaluate offline{hint}"
    )]
    Unreachable {
        /// Why.
        source: kube::Error,
        /// What else to pass.
        hint: String,
    },
    /// A read failed.
    #[error("cannot read {what}: {source}")]
    Read {
        /// What was read.
        what: String,
        /// Why it failed.
        source: kube::Error,
    },
}

/// Runs `check`: prints the report on stdout, warnings on stderr, and returns the exit code
/// (0 compliant, 1 at or above `--fail-on`).
pub async fn run(opts: CheckOptions) -> Result<u8, CheckError> {
    let now = opts.now.unwrap_or_else(Utc::now);
    let interactive = std::io::stderr().is_terminal();
    let progress = |what: &str| {
        if interactive {
            eprint!("\r\x1b[2K{what}…");
        }
    };

    let offline = !opts.snapshots.is_empty();
    let client = if offline && !needs_cluster_for_policy(&opts.policy) {
        None
    } else {
        progress("connecting to the cluster from the current kubeconfig");
        Some(kube::Client::try_default().await.map_err(|source| ClusterFault::Unreachable {
            source,
            hint: if needs_cluster_for_policy(&opts.policy) {
                format!(", and --policy with a file or a preset ({}) instead of '{}'", preset_list(), opts.policy)
            } else {
                String::new()
            },
        })?)
    };

    let policy = match (input::preset_policy(&opts.policy), input::is_readable(&opts.policy)) {
        (_, true) => input::load_policy(Path::new(&opts.policy)).map_err(PolicyFault::File)?,
        (Some(p), false) => p,
        (None, false) if looks_like_path(&opts.policy) => {
            let missing = InputError::Read { file: opts.policy.clone(), reason: "no such file".into() };
            return Err(PolicyFault::File(missing).into());
        }
        (None, false) => {
            let client = client.clone().expect("a cluster policy name always connects");
            progress(&format!("reading SupportPolicy {}", opts.policy));
            let api: Api<SupportPolicy> = Api::all(client);
            api.get_opt(&opts.policy)
                .await
                .map_err(|source| ClusterFault::Read { what: format!("SupportPolicy {}", opts.policy), source })?
                .ok_or_else(|| PolicyFault::NotFound { name: opts.policy.clone() })?
        }
    };
    let resolved =
        Policy::resolve(&policy.spec).map_err(|errors| PolicyFault::Invalid { name: opts.policy.clone(), errors })?;

    let mut snapshot = if offline {
        let (snapshot, warnings) =
            input::load_snapshots(&opts.snapshots, &resolved.node_keys()).map_err(CheckError::Snapshot)?;
        for w in warnings {
            eprintln!("warning: {}", crate::text::printable(&w.0));
        }
        snapshot
    } else {
        let client = client.expect("live mode connects");
        gather::live_snapshot(&client, &resolved, &progress)
            .await
            .map_err(|source| ClusterFault::Read { what: "the cluster".into(), source })?
    };
    if interactive {
        eprint!("\r\x1b[2K");
    }
    if let Some(v) = &opts.server_version {
        snapshot.server_version = Some(v.clone());
    }

    let evaluation = policy::evaluate_resolved(&resolved, &snapshot, now);
    let status = report::report(&evaluation, None, policy.metadata.generation, now);
    let name = policy.metadata.name.clone().unwrap_or_default();
    match opts.output {
        Output::Table => {
            crate::text::to_stdout(&table::render(&name, policy.spec.platform, &status, now, opts.color.enabled()));
        }
        Output::Json => {
            let object = report::status_object(&policy, status);
            crate::text::to_stdout(&(serde_json::to_string_pretty(&object).expect("status serialises") + "\n"));
        }
        Output::Yaml => {
            let object = report::status_object(&policy, status);
            crate::text::to_stdout(&crate::yaml::to_string(&object).expect("status serialises"));
        }
    }
    Ok(exit_code(evaluation.verdict, opts.fail_on))
}

/// 1 when the verdict is at or above the `--fail-on` threshold, else 0.
pub fn exit_code(verdict: Verdict, fail_on: Option<FailOn>) -> u8 {
    let failing = match (fail_on, verdict) {
        (None, _) => false,
        (Some(FailOn::Warning), Verdict::AtRisk | Verdict::Unsupported | Verdict::Unknown) => true,
        (Some(FailOn::Unsupported), Verdict::Unsupported | Verdict::Unknown) => true,
        _ => false,
    };
    u8::from(failing)
}

fn joined(errors: &[PolicyError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

fn preset_list() -> String {
    input::PRESET_NAMES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

pub(crate) fn looks_like_path(s: &str) -> bool {
    s.contains('/') || s.contains('\\') || [".yaml", ".yml", ".json"].iter().any(|e| s.ends_with(e))
}

/// A policy argument that is neither a file nor a preset names a policy in the cluster.
fn needs_cluster_for_policy(policy: &str) -> bool {
    input::preset_policy(policy).is_none() && !input::is_readable(policy) && !looks_like_path(policy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_threshold() {
        assert_eq!(exit_code(Verdict::Unsupported, None), 0);
        assert_eq!(exit_code(Verdict::AtRisk, Some(FailOn::Warning)), 1);
        assert_eq!(exit_code(Verdict::AtRisk, Some(FailOn::Unsupported)), 0);
        assert_eq!(exit_code(Verdict::Unsupported, Some(FailOn::Unsupported)), 1);
        assert_eq!(exit_code(Verdict::Supported, Some(FailOn::Warning)), 0);
    }

    /// Each error says whose fault it is: the policy's, a snapshot's or the cluster's.
    #[tokio::test]
    async fn errors_name_the_input_at_fault() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.yaml");
        std::fs::write(&bad, "{ not: yaml: [").unwrap();
        let good =
            std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/snapshots/aks-healthy.json"));
        let opts = |policy: &str, snapshot: &std::path::Path| CheckOptions {
            policy: policy.to_string(),
            snapshots: vec![snapshot.to_path_buf()],
            server_version: None,
            now: None,
            output: Output::Json,
            fail_on: None,
            color: Color::Never,
        };
        let policy = run(opts(&bad.display().to_string(), &good)).await.unwrap_err();
        assert!(matches!(policy, CheckError::Policy(PolicyFault::File(_))), "{policy:?}");
        let missing = run(opts("no/such/policy.yaml", &good)).await.unwrap_err();
        assert!(matches!(missing, CheckError::Policy(PolicyFault::File(_))), "{missing:?}");
        let snapshot = run(opts("aks", &bad)).await.unwrap_err();
        assert!(matches!(snapshot, CheckError::Snapshot(_)), "{snapshot:?}");
    }
}
