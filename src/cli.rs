//! The command line: `support-operator run | check | calendar | crd`. Every flag can also be set through
//! the environment variable named in its help.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};

use crate::calendar_cmd::CalendarFormat;
use crate::check::{Color, FailOn, Output};
use crate::crd::v1alpha1::Platform;
use crate::metrics::NodeMetrics;
pub use crate::telemetry::LogFormat;

/// Makes managed-Kubernetes support policies visible and alertable, before the deadline.
#[derive(Parser, Debug)]
#[command(name = "support-operator", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the operator: watch policies, nodes and leases; write SupportStatus, events and metrics.
    Run(RunArgs),
    /// Evaluate a policy once against a snapshot file or the current kubeconfig, then exit.
    ///
    /// Exit codes: 0 compliant (or no --fail-on), 1 verdict at or above --fail-on, 2 unusable
    /// input or usage error (one line on stderr says which file, field and why).
    Check(CheckArgs),
    /// Release calendars: import one from a public source, show the one a policy uses.
    #[command(subcommand)]
    Calendar(CalendarCommand),
    /// Print the CustomResourceDefinitions (what `make crds` writes to crds/).
    Crd,
}

/// Flags of `check`.
#[derive(Args, Debug, Clone)]
pub struct CheckArgs {
    /// A SupportPolicy YAML file (`-`: standard input), a preset (aks, aks-arc, eks, gke,
    /// upstream) or the name of a SupportPolicy in the cluster.
    #[arg(long, env = "SUPPORT_CHECK_POLICY", value_name = "FILE|NAME")]
    pub policy: String,
    /// A snapshot to evaluate offline: `kubectl get nodes,leases -A -o json`, a multi-document
    /// YAML of Nodes and Leases, or `kubectl version -o json`; a file, a FIFO, `/dev/stdin` or
    /// `-` (standard input). Repeatable; the environment variable takes a comma-separated list.
    /// Without it, the cluster of the current kubeconfig is read.
    #[arg(long = "snapshot", env = "SUPPORT_CHECK_SNAPSHOT", value_name = "FILE")]
    pub snapshots: Vec<PathBuf>,
    /// The control-plane version when evaluating offline (e.g. v1.31.4).
    #[arg(long, env = "SUPPORT_CHECK_SERVER_VERSION", value_name = "VERSION")]
    pub server_version: Option<String>,
    /// Evaluate as of this instant (RFC 3339, e.g. 2026-12-01T00:00:00Z) instead of now.
    #[arg(long, env = "SUPPORT_CHECK_NOW", value_name = "RFC3339", value_parser = parse_now)]
    pub now: Option<DateTime<Utc>>,
    /// Output: a table for people, or the SupportStatus object as JSON or YAML.
    #[arg(short = 'o', long, env = "SUPPORT_CHECK_OUTPUT", value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Exit 1 when the verdict is at or above this level (for CI gates).
    #[arg(long, env = "SUPPORT_CHECK_FAIL_ON", value_enum)]
    pub fail_on: Option<FailOn>,
    /// Colour the table: auto (on a terminal, unless NO_COLOR is set), always or never.
    #[arg(long, env = "SUPPORT_CHECK_COLOR", value_enum, default_value_t = Color::Auto)]
    pub color: Color,
    /// Evaluate the cluster of this kubeconfig context (repeatable; several at once make a fleet
    /// table). With --policy in-cluster, every SupportPolicy found in each cluster.
    #[arg(long = "context", env = "SUPPORT_CHECK_CONTEXT", value_name = "NAME", value_delimiter = ',',
          conflicts_with_all = ["snapshots", "server_version", "all_contexts"])]
    pub contexts: Vec<String>,
    /// Evaluate the cluster of every context of the kubeconfig (a fleet table).
    #[arg(long, env = "SUPPORT_CHECK_ALL_CONTEXTS", conflicts_with_all = ["snapshots", "server_version"])]
    pub all_contexts: bool,
    /// With --context or --all-contexts: how many clusters are read at the same time.
    #[arg(long, env = "SUPPORT_CHECK_CONCURRENCY", value_name = "N", default_value_t = 8,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// With --context or --all-contexts: seconds one cluster may take (connecting, reading,
    /// evaluating); past them its row is Unknown and the others go on.
    #[arg(long, env = "SUPPORT_CHECK_CLUSTER_TIMEOUT_SECONDS", value_name = "SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub cluster_timeout_seconds: u64,
}

impl CheckArgs {
    /// Several clusters (`--context`, `--all-contexts`): the fleet check.
    pub fn is_fleet(&self) -> bool {
        !self.contexts.is_empty() || self.all_contexts
    }
}

/// `calendar` subcommands.
#[derive(Subcommand, Debug)]
pub enum CalendarCommand {
    /// Print the kubernetesVersion.releases block of a SupportPolicy from a published calendar
    /// (the endoflife.date API v1), to refresh a policy and review the diff.
    Import(CalendarImportArgs),
    /// Print the effective calendar (preset with the policy's releases merged over it) as a
    /// table, with the source of each row and why each minor's support ends when it does.
    Show(CalendarShowArgs),
}

/// Flags of `calendar import`.
#[derive(Args, Debug, Clone)]
pub struct CalendarImportArgs {
    /// The format of FILE: endoflife is what https://endoflife.date/api/v1/products/PRODUCT serves.
    #[arg(long, env = "SUPPORT_CALENDAR_FORMAT", value_enum)]
    pub format: CalendarFormat,
    /// The platform FILE is the calendar of: AKS (product azure-kubernetes-service), EKS
    /// (amazon-eks), GKE (google-kubernetes-engine) or Upstream (kubernetes).
    #[arg(long, env = "SUPPORT_CALENDAR_PLATFORM", value_parser = parse_platform)]
    pub platform: Platform,
    /// Print a SupportPolicy patch of this name (for a kustomize overlay) instead of the block.
    #[arg(long, env = "SUPPORT_CALENDAR_POLICY_NAME", value_name = "NAME")]
    pub policy_name: Option<String>,
    /// The JSON file, or - for standard input.
    #[arg(env = "SUPPORT_CALENDAR_FILE", value_name = "FILE")]
    pub file: PathBuf,
}

/// Flags of `calendar show`.
#[derive(Args, Debug, Clone)]
#[command(group(clap::ArgGroup::new("calendar").required(true).multiple(true).args(["platform", "policy"])))]
pub struct CalendarShowArgs {
    /// The preset's calendar: AKS, AKSArc, EKS, GKE or Upstream (with --policy: must be its platform).
    #[arg(long, env = "SUPPORT_CALENDAR_PLATFORM", value_parser = parse_platform)]
    pub platform: Option<Platform>,
    /// A SupportPolicy YAML file (or a preset name): its releases merged over its preset's.
    #[arg(long, env = "SUPPORT_CALENDAR_POLICY", value_name = "FILE")]
    pub policy: Option<String>,
}

/// Flags of `run`.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Address of /metrics: HTTPS for callers the API server authenticates and allows to get
    /// /metrics (unless --metrics-secure=false).
    #[arg(long, env = "SUPPORT_METRICS_ADDR", default_value = "0.0.0.0:8443")]
    pub metrics_addr: SocketAddr,
    /// Serve /metrics over HTTPS and check each caller's bearer token (TokenReview) and its
    /// right to get /metrics (SubjectAccessReview); false: plain HTTP, open to anyone who reaches it.
    #[arg(long, env = "SUPPORT_METRICS_SECURE", value_name = "BOOL", default_value_t = true,
          action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub metrics_secure: bool,
    /// Directory holding tls.crt and tls.key for /metrics (e.g. a mounted kubernetes.io/tls
    /// Secret), re-read when they change; without it a self-signed certificate is generated.
    #[arg(long, env = "SUPPORT_METRICS_CERT_DIR", value_name = "DIR")]
    pub metrics_cert_dir: Option<PathBuf>,
    /// Address of /healthz and /readyz (plain HTTP, for the kubelet's probes).
    #[arg(long, env = "SUPPORT_HEALTH_ADDR", default_value = "0.0.0.0:8081")]
    pub health_addr: SocketAddr,
    /// Also write an openreports.io/v1alpha1 ClusterReport per policy (when that CRD is installed).
    #[arg(long, env = "SUPPORT_OPENREPORTS")]
    pub openreports: bool,
    /// Elect a leader with a coordination.k8s.io Lease: every replica watches and evaluates,
    /// only the leader writes status, events and per-policy metrics.
    #[arg(long, env = "SUPPORT_LEADER_ELECT")]
    pub leader_elect: bool,
    /// Name of the leader-election Lease.
    #[arg(long, env = "SUPPORT_LEASE_NAME", default_value = "support-operator-leader")]
    pub lease_name: String,
    /// Namespace of the leader-election Lease (default: POD_NAMESPACE, else the kubeconfig's).
    #[arg(long, env = "POD_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Seconds a leader's Lease is valid without renewal; a leader that cannot renew stops
    /// writing within this time.
    #[arg(long, env = "SUPPORT_LEASE_DURATION_SECONDS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(2..=600))]
    pub lease_duration_seconds: u64,
    /// Identity of this replica in the Lease (default: POD_NAME, else the hostname).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Longest time between two evaluations of a policy when nothing changes.
    #[arg(long, env = "SUPPORT_RESYNC_SECONDS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub resync_seconds: u64,
    /// Seconds between two refreshes of API discovery (for AlphaApiServed).
    #[arg(long, env = "SUPPORT_DISCOVERY_SECONDS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub discovery_seconds: u64,
    /// Which nodes have series of their own on /metrics: all, unhealthy (a finding at Warning or
    /// worse, or not Ready) or none. Every pool is summed either way (support_pool_*).
    #[arg(long, env = "SUPPORT_NODE_METRICS", value_enum, default_value_t = NodeMetrics::Unhealthy)]
    pub node_metrics: NodeMetrics,
    /// Log format.
    #[arg(long, env = "SUPPORT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Plain)]
    pub log_format: LogFormat,
    /// Log filter (tracing EnvFilter syntax).
    #[arg(long, env = "RUST_LOG", default_value = crate::telemetry::DEFAULT_FILTER)]
    pub log_filter: String,
}

impl RunArgs {
    /// The resync interval.
    pub fn resync(&self) -> Duration {
        Duration::from_secs(self.resync_seconds)
    }

    /// How /metrics is served; an error for flags that contradict each other.
    pub fn metrics_security(&self) -> Result<crate::server::MetricsSecurity, String> {
        use crate::server::{MetricsSecurity, SecureMetrics};
        match (self.metrics_secure, &self.metrics_cert_dir) {
            (false, Some(_)) => Err("--metrics-cert-dir needs --metrics-secure=true".into()),
            (false, None) => Ok(MetricsSecurity::Plain),
            (true, dir) => Ok(MetricsSecurity::Secure(SecureMetrics { cert_dir: dir.clone(), ..Default::default() })),
        }
    }
}

fn parse_platform(s: &str) -> Result<Platform, String> {
    let wanted = s.replace('-', "");
    Platform::ALL
        .into_iter()
        .find(|p| p.as_str().eq_ignore_ascii_case(&wanted))
        .ok_or_else(|| format!("'{s}' is not a platform (AKS, AKSArc, EKS, GKE, Upstream, Custom)"))
}

impl Cli {
    /// Parses the command line (`args`, the program name first) and the environment. A path
    /// may hold a comma, so `--snapshot` values are taken whole; only SUPPORT_CHECK_SNAPSHOT,
    /// which holds one string, is a comma-separated list.
    pub fn from_args<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Cli::command().try_get_matches_from(args)?;
        let mut cli = Cli::from_arg_matches(&matches)?;
        if let (Command::Check(check), Some(("check", sub))) = (&mut cli.command, matches.subcommand()) {
            if sub.value_source("snapshots") == Some(clap::parser::ValueSource::EnvVariable) {
                check.snapshots = check
                    .snapshots
                    .iter()
                    .flat_map(|p| p.to_string_lossy().split(',').map(PathBuf::from).collect::<Vec<_>>())
                    .filter(|p| !p.as_os_str().is_empty())
                    .collect();
            }
        }
        Ok(cli)
    }
}

fn parse_now(s: &str) -> Result<DateTime<Utc>, String> {
    crate::time::parse_rfc3339(s).ok_or_else(|| format!("'{s}' is not an RFC 3339 instant (e.g. 2026-12-01T00:00:00Z)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_flag_has_an_env_var_and_help() {
        fn check(path: &str, cmd: &clap::Command, seen: &mut usize) {
            for sub in cmd.get_subcommands() {
                let path = format!("{path} {}", sub.get_name());
                for arg in sub.get_arguments().filter(|a| !matches!(a.get_id().as_str(), "help" | "version")) {
                    assert!(arg.get_env().is_some(), "{path} --{} has no env var", arg.get_id());
                    assert!(arg.get_help().is_some(), "{path} --{} has no help", arg.get_id());
                    *seen += 1;
                }
                check(&path, sub, seen);
            }
        }
        let mut seen = 0;
        check("support-operator", &Cli::command(), &mut seen);
        // Nested subcommands (calendar import, calendar show) are visited too.
        let calendar = Cli::command().find_subcommand("calendar").cloned().unwrap();
        assert!(calendar.find_subcommand("import").unwrap().get_arguments().any(|a| a.get_id() == "format"));
        assert!(seen > 25, "only {seen} flags seen");
    }

    #[test]
    fn fleet_flags_are_bounded_and_exclusive_with_offline_input() {
        let parse =
            |args: &[&str]| Cli::try_parse_from([&["support-operator", "check", "--policy", "aks"], args].concat());
        let Command::Check(ok) = parse(&["--context", "a,b", "--context", "c"]).unwrap().command else { panic!() };
        assert_eq!(ok.contexts, ["a", "b", "c"]);
        assert!(ok.is_fleet());
        assert_eq!((ok.concurrency, ok.cluster_timeout_seconds), (8, 60));
        assert!(parse(&["--all-contexts", "--concurrency", "64", "--cluster-timeout-seconds", "3600"]).is_ok());
        for bad in [
            &["--all-contexts", "--concurrency", "0"][..],
            &["--all-contexts", "--concurrency", "65"],
            &["--all-contexts", "--cluster-timeout-seconds", "0"],
            &["--all-contexts", "--cluster-timeout-seconds", "3601"],
            &["--context", "a", "--all-contexts"],
            &["--context", "a", "--snapshot", "x.json"],
            &["--all-contexts", "--server-version", "v1.31.0"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
        let Command::Check(single) = parse(&[]).unwrap().command else { panic!() };
        assert!(!single.is_fleet());
    }

    #[test]
    fn platforms_parse_by_their_api_name_in_any_case() {
        assert_eq!(parse_platform("EKS"), Ok(Platform::Eks));
        assert_eq!(parse_platform("aks-arc"), Ok(Platform::AksArc));
        assert_eq!(parse_platform("upstream"), Ok(Platform::Upstream));
        assert!(parse_platform("openshift").unwrap_err().contains("not a platform"));
        assert!(Cli::try_parse_from(["support-operator", "calendar", "show"]).is_err(), "--platform or --policy");
    }

    fn run_args(args: &[&str]) -> RunArgs {
        let argv = ["support-operator", "run"].iter().chain(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Run(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn metrics_are_secure_unless_turned_off() {
        use crate::server::MetricsSecurity;
        let default = run_args(&[]);
        assert!(matches!(default.metrics_security(), Ok(MetricsSecurity::Secure(ref s)) if s.cert_dir.is_none()));
        assert_eq!(default.metrics_addr.port(), 8443);
        assert_eq!(default.health_addr.port(), 8081);
        assert!(!default.openreports);
        for off in [&["--metrics-secure=false"][..], &["--metrics-secure", "false"]] {
            assert!(matches!(run_args(off).metrics_security(), Ok(MetricsSecurity::Plain)), "{off:?}");
        }
        assert!(run_args(&["--metrics-secure"]).metrics_secure);
        let mounted = run_args(&["--metrics-cert-dir", "/certs"]).metrics_security();
        assert!(
            matches!(mounted, Ok(MetricsSecurity::Secure(ref s)) if s.cert_dir.as_deref() == Some(std::path::Path::new("/certs")))
        );
        let both = run_args(&["--metrics-secure=false", "--metrics-cert-dir", "/certs"]).metrics_security();
        assert!(both.unwrap_err().contains("--metrics-cert-dir"));
        assert!(Cli::try_parse_from(["support-operator", "run", "--metrics-secure=maybe"]).is_err());
    }

    /// A path may hold a comma: only the environment variable is a list.
    #[test]
    fn snapshot_paths_split_on_commas_only_in_the_environment() {
        let paths = |cli: Cli| match cli.command {
            Command::Check(c) => c.snapshots,
            _ => unreachable!(),
        };
        let args = ["support-operator", "check", "--policy", "aks", "--snapshot", "a,b.json", "--snapshot", "c"];
        assert_eq!(paths(Cli::from_args(args).unwrap()), [PathBuf::from("a,b.json"), PathBuf::from("c")]);
        // The environment variable is split (tests/cli.rs runs the binary with it set).
    }

    #[test]
    fn bad_now_is_a_usage_error() {
        let err =
            Cli::try_parse_from(["support-operator", "check", "--policy", "aks", "--now", "tomorrow"]).unwrap_err();
        assert!(err.to_string().contains("not an RFC 3339 instant"));
    }
}
