//! The fleet check (`check --context …`, `--all-contexts`): the real binary against several
//! API emulators at once, through one kubeconfig with a context per emulator, plus one that
//! points at a closed port.

mod scenarios;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use scenarios::*;
use serde_json::{json, Value};
use test_apiserver::{default_resources, ApiServer, Gvr};

const BIN: &str = env!("CARGO_BIN_EXE_support-operator");

/// Every emulator's nodes carry the same run label, so that one policy selects them all.
const RUN: &str = "fleet";

/// A kubeconfig with one context per (name, server URL); the first is current.
fn kubeconfig(dir: &Path, contexts: &[(&str, String)]) -> PathBuf {
    let contexts: Vec<(&str, &str)> = contexts.iter().map(|(n, u)| (*n, u.as_str())).collect();
    let path = dir.join("kubeconfig");
    std::fs::write(&path, test_apiserver::kubeconfig(&contexts)).unwrap();
    path
}

/// An address where nothing listens.
fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

/// An emulator at `version` with two Ready nodes whose image is `image_age_days` old.
async fn cluster(version: &str, image_age_days: i64) -> (ApiServer, Cluster) {
    let server = ApiServer::builder().git_version(version).start().await;
    let c = Cluster::new(server.config(), RUN);
    for n in ["a", "b"] {
        c.create_node(n, &day(-image_age_days), true, now() - TimeDelta::days(1)).await;
    }
    (server, c)
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Vec<Value> {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}\n{}", self.stdout, self.stderr))
    }
}

async fn check(kubeconfig: &Path, args: &[&str]) -> Run {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.arg("check").args(["--now", NOW]).args(args).env("KUBECONFIG", kubeconfig).env("NO_COLOR", "1");
    for var in ["SUPPORT_CHECK_SNAPSHOT", "SUPPORT_CHECK_SERVER_VERSION", "SUPPORT_CHECK_CONTEXT"] {
        cmd.env_remove(var);
    }
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output()).await.expect("check ends").unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The Custom policy of the scenarios (image warn 30 days, unsupported 90), as a file.
fn policy_file(dir: &Path, c: &Cluster) -> String {
    let path = dir.join("policy.json");
    std::fs::write(&path, serde_json::to_string(&c.policy("fleet", json!({}))).unwrap()).unwrap();
    path.display().to_string()
}

fn column<'a>(rows: &'a [Value], key: &str) -> Vec<&'a str> {
    rows.iter().map(|r| r[key].as_str().unwrap_or("-")).collect()
}

/// Three emulated clusters with different verdicts and one unreachable: one row each, in the
/// order given, the unreachable one `Unknown` with its error; `--fail-on` counts the worst row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_clusters_and_an_unreachable_one() {
    let (healthy, c) = cluster("v1.35.3", 10).await;
    let (at_risk, _) = cluster("v1.34.2", 40).await;
    let (unsupported, _) = cluster("v1.33.1", 100).await;
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(
        dir.path(),
        &[
            ("healthy", healthy.url()),
            ("at-risk", at_risk.url()),
            ("unsupported", unsupported.url()),
            ("gone", closed_port()),
        ],
    );
    let policy = policy_file(dir.path(), &c);
    let all = ["--context", "unsupported", "--context", "gone,healthy", "--context", "at-risk"];

    let run = check(&config, &[&["--policy", &policy, "-o", "json"][..], &all].concat()).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let rows = run.json();
    assert_eq!(column(&rows, "context"), ["unsupported", "gone", "healthy", "at-risk"], "the order given");
    assert_eq!(column(&rows, "verdict"), ["Unsupported", "Unknown", "Supported", "AtRisk"]);
    assert_eq!(column(&rows, "policy"), [c.name("fleet").as_str(); 4]);
    let gone = &rows[1];
    assert!(gone["error"].as_str().unwrap().starts_with("cannot read the cluster: "), "{gone}");
    assert!(gone["error"].as_str().unwrap().contains("Connection refused"), "{gone}");
    assert!(gone.get("supportStatus").is_none());
    let status = &rows[0]["supportStatus"];
    assert_eq!(status["kind"], "SupportStatus");
    assert_eq!(status["status"]["verdict"], "Unsupported");
    assert_eq!(status["status"]["controlPlane"]["version"], "v1.33.1");
    assert_eq!(status["status"]["nodes"]["total"], 2);
    assert!(rows[2].get("error").is_none());
    assert!(
        run.stderr.starts_with(
            "4 clusters: 1 Supported, 1 AtRisk, 1 Unsupported, 1 Unknown (each by its worst policy; 1 not \
             evaluated). Next deadline 2026-12-15 (in 19 days) in healthy, policy fleet-"
        ),
        "{}",
        run.stderr
    );

    // The table: a row per cluster, the error in place of the figures, and the summary.
    let run = check(&config, &[&["--policy", &policy][..], &all].concat()).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].starts_with("CONTEXT      POLICY"), "{}", run.stdout);
    assert!(
        lines[0].ends_with("VERDICT      VERSION  NODES  FINDINGS  NEXT DEADLINE            FIRST PLAN STEP"),
        "{}",
        run.stdout
    );
    assert!(lines[1].starts_with("unsupported  fleet-"));
    // The plan column: the first step of each cluster's plan, with its date or "overdue".
    assert!(
        lines[1].ends_with(
            "Unsupported  v1.33.1  2      1         -                        RefreshNodeImage NodePool/pool1 overdue"
        ),
        "{}",
        lines[1]
    );
    assert!(lines[2].contains("Unknown      error: cannot read the cluster: "), "{}", lines[2]);
    assert!(
        lines[4].ends_with("AtRisk       v1.34.2  2      1         2027-01-14 (in 49 days)  RefreshNodeImage NodePool/pool1 by 2027-01-14"),
        "{}",
        lines[4]
    );
    assert!(lines[6].starts_with("4 clusters: 1 Supported, 1 AtRisk, 1 Unsupported, 1 Unknown"), "{}", run.stdout);
    assert!(!run.stderr.contains('\r') && !run.stderr.contains('\u{1b}'), "no progress bar when piped");

    // --fail-on counts the worst row, an unreachable cluster included.
    let gate = |contexts: &'static [&'static str], level: &'static str| {
        let (config, policy) = (config.clone(), policy.clone());
        async move {
            let mut args = vec!["--policy", policy.as_str(), "--fail-on", level, "-o", "json"];
            for c in contexts {
                args.extend(["--context", c]);
            }
            check(&config, &args).await.code
        }
    };
    assert_eq!(gate(&["healthy", "at-risk"], "unsupported").await, Some(0));
    assert_eq!(gate(&["healthy", "at-risk"], "warning").await, Some(1));
    assert_eq!(gate(&["healthy"], "warning").await, Some(0));
    assert_eq!(gate(&["healthy", "unsupported"], "unsupported").await, Some(1));
    assert_eq!(gate(&["healthy", "gone"], "unsupported").await, Some(1), "Unknown fails every gate");
}

/// `--all-contexts --policy in-cluster`: every SupportPolicy of every cluster, a row each; a
/// cluster without any, one without the API, and an unreadable policy are rows that say so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_contexts_with_the_policies_in_each_cluster() {
    let (none, _) = cluster("v1.35.3", 10).await;
    let (one, c1) = cluster("v1.35.3", 40).await;
    c1.apply_policy(&c1.policy("only", json!({}))).await;
    let (two, c2) = cluster("v1.35.3", 40).await;
    c2.apply_policy(&c2.policy("strict", json!({"nodeImage": {"label": "example.com/image",
        "datePattern": r"img-(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})$", "warnAfterDays": 10, "unsupportedAfterDays": 20}})))
        .await;
    c2.apply_policy(&c2.policy("lenient", json!({}))).await;
    // A policy the API server stored but the CLI cannot read (a newer or broken schema).
    let policies = Gvr::new("support.compliance.dev", "v1alpha1", "supportpolicies");
    two.insert_raw(
        &policies,
        None,
        "broken",
        json!({"apiVersion": "support.compliance.dev/v1alpha1",
        "kind": "SupportPolicy", "metadata": {"name": "broken"}, "spec": {"platform": "Mars"}}),
    );
    let bare = ApiServer::builder()
        .without_default_resources()
        .resource(default_resources().into_iter().find(|r| r.plural == "nodes").unwrap())
        .start()
        .await;
    let dir = tempfile::tempdir().unwrap();
    let config =
        kubeconfig(dir.path(), &[("zero", none.url()), ("one", one.url()), ("two", two.url()), ("no-crd", bare.url())]);

    let run = check(&config, &["--all-contexts", "--policy", "in-cluster", "-o", "json"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let rows = run.json();
    let got: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|r| (r["context"].as_str().unwrap(), r["policy"].as_str().unwrap_or("-"), r["verdict"].as_str().unwrap()))
        .collect();
    let (only, strict, lenient) = (c1.name("only"), c2.name("strict"), c2.name("lenient"));
    assert_eq!(
        got,
        [
            ("zero", "-", "Unknown"),
            ("one", only.as_str(), "AtRisk"),
            ("two", "broken", "Unknown"),
            ("two", lenient.as_str(), "AtRisk"),
            ("two", strict.as_str(), "Unsupported"),
            ("no-crd", "-", "Unknown"),
        ]
    );
    assert_eq!(rows[0]["error"], "no SupportPolicy in this cluster");
    assert!(rows[2]["error"]
        .as_str()
        .unwrap()
        .starts_with("SupportPolicy cannot be read: spec.platform: unknown variant `Mars`"));
    assert_eq!(rows[5]["error"], "the SupportPolicy API is not served (CRDs not installed)");
    // Each cluster is read once, however many policies it has.
    assert_eq!(two.count(|r| r.resource == "nodes" && r.verb == "list"), 1);

    assert!(
        run.stderr.starts_with("4 clusters: 1 AtRisk, 3 Unknown (each by its worst policy; 2 not evaluated)"),
        "{}",
        run.stderr
    );
    // A policy by name: looked up in each cluster; where it is missing, a row says so.
    let run = check(&config, &["--context", "one", "--context", "zero", "--policy", &only, "-o", "json"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let rows = run.json();
    assert_eq!(column(&rows, "verdict"), ["AtRisk", "Unknown"]);
    assert_eq!(rows[1]["policy"], only.as_str());
    assert_eq!(rows[1]["error"], format!("no SupportPolicy {only} in this cluster"));
}

/// At most `MAX_POLICIES_PER_CLUSTER` (100) policies of one cluster are evaluated; beyond, a
/// warning says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_per_cluster_are_bounded() {
    let (server, c) = cluster("v1.35.3", 10).await;
    for i in 0..101 {
        c.apply_policy(&c.policy(&format!("p{i:03}"), json!({}))).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(dir.path(), &[("many", server.url())]);
    let run = check(&config, &["--context", "many", "--policy", "in-cluster", "-o", "json"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.json().len(), 100);
    assert!(
        run.stderr
            .starts_with("warning: context many: more than 100 SupportPolicies, only the first 100 are evaluated\n"),
        "{}",
        run.stderr
    );
}

/// A cluster that never answers is `Unknown` after `--cluster-timeout-seconds`; the others
/// are evaluated meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_cluster_times_out_alone() {
    let (hung, c) = cluster("v1.35.3", 10).await;
    hung.delay_when(Duration::from_secs(3600), |r| r.path == "/version");
    let (healthy, _) = cluster("v1.35.3", 10).await;
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(dir.path(), &[("hung", hung.url()), ("healthy", healthy.url())]);
    let policy = policy_file(dir.path(), &c);
    let args = ["--all-contexts", "--policy", policy.as_str(), "--cluster-timeout-seconds", "2", "-o", "json"];
    let run = check(&config, &args).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let rows = run.json();
    assert_eq!(column(&rows, "verdict"), ["Unknown", "Supported"]);
    assert_eq!(rows[0]["error"], "no answer within 2 s (--cluster-timeout-seconds)");
}

/// `--concurrency N`: never more than N clusters in flight. Each emulator counts its cluster
/// in flight from its `/version` request (held a second) to its node list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_is_bounded() {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let mut servers = Vec::new();
    let mut contexts = Vec::new();
    let mut policy = String::new();
    let dir = tempfile::tempdir().unwrap();
    for i in 0..5 {
        let (server, c) = cluster("v1.35.3", 10).await;
        let (in_flight, most) = (in_flight.clone(), most.clone());
        server.delay_when(Duration::from_secs(1), move |r| {
            if r.path == "/version" {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                return true;
            }
            if r.resource == "nodes" && r.verb == "list" {
                in_flight.fetch_sub(1, Ordering::SeqCst);
            }
            false
        });
        policy = policy_file(dir.path(), &c);
        contexts.push((format!("c{i}"), server.url()));
        servers.push(server);
    }
    let named: Vec<(&str, String)> = contexts.iter().map(|(n, u)| (n.as_str(), u.clone())).collect();
    let config = kubeconfig(dir.path(), &named);
    for (concurrency, expected) in [("2", 2), ("1", 1), ("8", 5)] {
        most.store(0, Ordering::SeqCst);
        let args = ["--all-contexts", "--policy", policy.as_str(), "--concurrency", concurrency, "-o", "json"];
        let run = check(&config, &args).await;
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert_eq!(column(&run.json(), "verdict"), ["Supported"; 5]);
        assert_eq!(in_flight.load(Ordering::SeqCst), 0);
        assert_eq!(most.load(Ordering::SeqCst), expected, "--concurrency {concurrency}");
    }
}

/// What cannot start is a usage error (exit 2) with one line; nothing is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_2_with_one_line() {
    let (server, _) = cluster("v1.35.3", 10).await;
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(dir.path(), &[("a", server.url()), ("b", server.url())]);
    let cases: [(&[&str], &str); 3] = [
        (
            &["--context", "a", "--context", "nope", "--policy", "aks"],
            "error: --context nope: no such context in the kubeconfig (it has: a, b)",
        ),
        (
            &["--context", "a", "--policy", "no/such/policy.yaml"],
            "error: no/such/policy.yaml: cannot read: no such file",
        ),
        (
            &["--context", "a", "--policy", "aks", "--snapshot", "x.json"],
            "error: the argument '--context <NAME>' cannot be used with '--snapshot <FILE>'",
        ),
    ];
    for (args, want) in cases {
        let run = check(&config, args).await;
        assert_eq!(run.code, Some(2), "{args:?}: {}", run.stderr);
        assert!(run.stderr.starts_with(want), "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty());
    }
    let run = check(&dir.path().join("missing"), &["--all-contexts", "--policy", "aks"]).await;
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.starts_with("error: cannot read the kubeconfig: "), "{}", run.stderr);
    assert_eq!(server.count(|r| r.path == "/version"), 0);
}
