//! The operator against the in-process Kubernetes API emulator: the shared scenarios, plus
//! those that need the emulator's fault injection, request log or raw objects, or the real binary.

mod scenarios;

#[path = "operator/openreports.rs"]
mod openreports;
#[path = "operator/security.rs"]
mod security;

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::TimeDelta;
use kube::api::{Api, Patch, PatchParams};
use scenarios::*;
use serde_json::json;
use serde_json::Value;
use support_operator::controller::clock::ShiftedClock;
use support_operator::crd::v1alpha1::{SupportPolicy, Verdict};
use test_apiserver::{ApiServer, Fault, Gvr, RequestRecord};

async fn setup(scenario: &str) -> (ApiServer, Cluster, Operator) {
    let server =
        ApiServer::builder().git_version("v1.35.3").bookmark_interval(Duration::from_millis(500)).start().await;
    let cluster = Cluster::new(server.config(), scenario);
    let op = cluster.start_operator().await;
    (server, cluster, op)
}

/// An emulator and a scenario's view of it, with no operator yet.
async fn emulator(scenario: &str) -> (ApiServer, Cluster) {
    let server =
        ApiServer::builder().git_version("v1.35.3").bookmark_interval(Duration::from_millis(500)).start().await;
    let cluster = Cluster::new(server.config(), scenario);
    (server, cluster)
}

/// A kubeconfig pointing at the emulator, in `dir`.
fn kubeconfig(server: &ApiServer, dir: &std::path::Path) -> std::path::PathBuf {
    server.write_kubeconfig(&dir.join("config"))
}

fn status_writes(r: &RequestRecord, name: &str) -> bool {
    r.method == "PATCH"
        && r.resource == "supportstatuses"
        && r.subresource.as_deref() == Some("status")
        && r.name.as_deref() == Some(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_lifecycle_on_the_emulator() {
    let (_server, c, op) = setup("lifecycle").await;
    policy_lifecycle(&c, &op).await;
    op.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_stop_on_the_emulator() {
    let (_server, c, op) = setup("stop").await;
    nodes_stop(&c).await;
    op.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_passes_on_the_emulator() {
    let (server, c, op) = setup("deadline").await;
    deadline_passes(&c, &op).await;
    // No node changed: the only node writes are the scenario's create, status and cleanup.
    let writes = server.count(|r| r.method != "GET" && r.resource == "nodes");
    assert_eq!(writes, 3, "only the scenario's own node create, status patch and cleanup");
    op.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_heartbeats_cause_no_write() {
    let (server, c, op) = setup("heartbeats").await;
    heartbeats_do_not_write(&c, &op, 1000).await;
    // Counted at the emulator too: from the status with the three nodes Ready, then the one
    // NotReady change. (A status written before the last node's Ready condition reached the
    // operator's cache may come first: the scenario creates a node, then sets its status.)
    let writes: Vec<RequestRecord> = server.requests().into_iter().filter(|r| status_writes(r, &c.name("p"))).collect();
    let ready = |r: &RequestRecord| serde_json::from_str::<Value>(&r.body).unwrap()["status"]["nodes"]["ready"] == 3;
    let settled = writes.iter().position(ready).expect("a status with the three nodes Ready");
    assert_eq!(writes.len() - settled, 2, "{:#?}", writes.iter().map(|r| &r.body).collect::<Vec<_>>());
    op.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_policy_is_isolated_on_the_emulator() {
    let (server, c, op) = setup("invalid").await;
    invalid_policy_is_isolated(&c).await;
    assert_eq!(server.count(|r| status_writes(r, &c.name("bad"))), 1, "an invalid policy is written once, not retried");
    op.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_match_status_on_the_emulator() {
    let (_server, c, op) = setup("metrics").await;
    metrics_match_status(&c, &op).await;
    op.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovers_from_dropped_watches_410_and_bursts_of_errors() {
    let (server, c, op) = setup("faults").await;
    let since = now() - TimeDelta::days(3);
    c.create_node("a", &day(-1), true, since).await;
    c.create_node("b", &day(-1), true, since).await;
    c.apply_policy(&c.policy("p", json!({}))).await;
    c.wait_verdict("p", Verdict::Supported, "Supported").await;

    // A dropped watch: the watcher resumes from its resourceVersion, no change is lost.
    server.drop_watches();
    c.set_ready("a", false, now() - TimeDelta::days(8)).await;
    c.wait_status("p", "a not Ready", |s| {
        s.status.as_ref().is_some_and(|st| st.nodes.as_ref().is_some_and(|n| n.not_ready == 1))
    })
    .await;

    // History compacted: the resume is answered 410 Gone and the watcher relists.
    server.expire_resource_versions();
    server.drop_watches();
    c.set_ready("a", true, now()).await;
    c.wait_status("p", "a Ready again", |s| {
        s.status.as_ref().is_some_and(|st| st.nodes.as_ref().is_some_and(|n| n.not_ready == 0))
    })
    .await;
    assert!(
        server.stats().watch_errors_sent > 0 || server.count(|r| r.status == 410) > 0,
        "the 410 path was exercised"
    );

    // Bursts of 500s and 429s on the operator's reads and writes.
    // (The watcher backs off exponentially from 0.8 s: three failures in a row cost ~6 s.)
    server.fail_next(3, Fault::InternalError, |r| r.resource == "nodes" && r.verb != "patch");
    server.fail_next(3, Fault::TooManyRequests { retry_after_secs: 1 }, |r| r.resource == "supportstatuses");
    server.drop_watches();
    c.set_ready("b", false, now() - TimeDelta::days(9)).await;
    c.wait_status("p", "b not Ready despite the faults", |s| {
        s.status.as_ref().is_some_and(|st| {
            st.nodes.as_ref().is_some_and(|n| n.not_ready == 1) && st.verdict == Some(Verdict::AtRisk)
        })
    })
    .await;
    assert!(server.count(|r| r.status == 500) > 0 && server.count(|r| r.status == 429) > 0, "the faults were served");
    assert!(op.is_running(), "the operator stays up");
    let (code, _) = op.get("/healthz").await;
    assert_eq!(code, 200);
    op.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_objects_are_skipped_and_counted() {
    let (server, c, op) = setup("malformed").await;
    c.create_node("a", &day(-1), true, now() - TimeDelta::days(1)).await;
    c.apply_policy(&c.policy("good", json!({}))).await;
    // A policy whose spec does not deserialise (only a broken CRD or direct etcd write does
    // this on a real cluster), and a node with a garbage timestamp and version.
    server.insert_raw(
        &Gvr::support_policies(),
        None,
        &c.name("broken"),
        json!({"apiVersion": "support.compliance.dev/v1alpha1", "kind": "SupportPolicy",
               "metadata": {"name": c.name("broken"), "uid": "u-broken"}, "spec": {"platform": 42}}),
    );
    server.insert_raw(
        &Gvr::nodes(),
        None,
        &c.name("garbage"),
        json!({"apiVersion": "v1", "kind": "Node",
               "metadata": {"name": c.name("garbage"), "labels": {RUN_LABEL: c.run, "example.com/image": "img-2026-11-20"}},
               "status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "yesterday"}],
                          "nodeInfo": {"kubeletVersion": "v1.x"}}}),
    );
    let broken = c.wait_verdict("broken", Verdict::Unknown, "Unknown").await;
    let reason = broken.status.unwrap().conditions.into_iter().find(|c| c.type_ == "PolicyValid").unwrap();
    assert!(reason.message.contains("cannot be read"), "{}", reason.message);
    let garbage = format!("Node/{}", c.name("garbage"));
    let s = c
        .wait_status("good", "the garbage node evaluated", |s| {
            s.status.as_ref().is_some_and(|st| st.nodes.as_ref().is_some_and(|n| n.total == 2))
        })
        .await;
    assert!(
        finding(&s, "NodeNotReady", &garbage).is_some() || finding(&s, "KubernetesVersionUnknown", &garbage).is_some(),
        "{:#?}",
        s.status
    );
    eventually(WAIT, "the skipped policy is counted", || async {
        op.sample("support_watch_objects_skipped_total", &[("kind", "SupportPolicy")]).await.unwrap_or(0.0) >= 1.0
    })
    .await;
    op.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_only_after_every_cache_synced() {
    let server = ApiServer::builder().git_version("v1.35.3").start().await;
    server.set_delay(Duration::from_millis(1500));
    let op = Operator::start(server.client(), ShiftedClock::at(now()), None).await;
    assert_eq!(op.get("/readyz").await.0, 503, "not ready while the lists are in flight");
    assert_eq!(op.get("/healthz").await.0, 200);
    server.set_delay(Duration::ZERO);
    eventually(WAIT, "ready", || async { op.get("/readyz").await.0 == 200 }).await;
    op.stop().await;
}

/// Two replicas electing a leader, a node `n` and a policy `p`, Supported.
async fn two_replicas(run: &str) -> (ApiServer, Cluster, Operator, Operator) {
    let server = ApiServer::builder().git_version("v1.35.3").start().await;
    let c = Cluster::new(server.config(), run);
    let clock = ShiftedClock::at(now());
    let a = Operator::start(c.operator.clone(), clock.clone(), Some(("replica-a", "default"))).await;
    let b = Operator::start(c.operator.clone(), clock.clone(), Some(("replica-b", "default"))).await;
    c.create_node("n", &day(-1), true, now() - TimeDelta::days(1)).await;
    c.apply_policy(&c.policy("p", json!({}))).await;
    c.wait_verdict("p", Verdict::Supported, "Supported").await;
    (server, c, a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_replica_writes_and_the_other_takes_over() {
    let (_server, c, a, b) = two_replicas("ha").await;

    let is_leader = |v: Option<f64>| v == Some(1.0);
    let (la, lb) = (a.sample("support_leader", &[]).await, b.sample("support_leader", &[]).await);
    assert!(is_leader(la) ^ is_leader(lb), "exactly one leader: a={la:?} b={lb:?}");
    let (leader, follower) = if is_leader(la) { (a, b) } else { (b, a) };
    assert_eq!(follower.sample("support_status_writes_total", &[]).await, Some(0.0), "the follower never writes");
    assert!(
        follower.metrics().await.samples.iter().all(|s| s.metric != "support_verdict"),
        "per-policy series only on the leader"
    );

    c.set_ready("n", false, now() - TimeDelta::days(8)).await;
    c.wait_verdict("p", Verdict::AtRisk, "AtRisk").await;
    assert_eq!(follower.sample("support_status_writes_total", &[]).await, Some(0.0));

    // The leader stops (SIGTERM): it releases the Lease and the other replica takes over.
    leader.stop().await;
    eventually(WAIT, "the follower becomes the leader", || async {
        follower.sample("support_leader", &[]).await == Some(1.0)
    })
    .await;
    c.set_ready("n", true, now()).await;
    c.wait_verdict("p", Verdict::Supported, "Supported again, written by the new leader").await;
    // (The counter moves when the write's answer arrives, a moment after the emulator stored it.)
    eventually(WAIT, "the new leader counted its write", || async {
        follower.sample("support_status_writes_total", &[]).await.unwrap_or(0.0) >= 1.0
    })
    .await;
    follower.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_cannot_renew_stops_writing_within_the_lease_duration() {
    let server = ApiServer::builder().git_version("v1.35.3").start().await;
    let c = Cluster::new(server.config(), "fence");
    let a = Operator::start(c.operator.clone(), ShiftedClock::at(now()), Some(("replica-a", "default"))).await;
    c.create_node("n", &day(-1), true, now() - TimeDelta::days(1)).await;
    c.apply_policy(&c.policy("p", json!({}))).await;
    c.wait_verdict("p", Verdict::Supported, "Supported").await;
    // Every Lease request fails from now on: the leader cannot renew.
    server.fail_next(usize::MAX, Fault::InternalError, |r| r.resource == "leases");
    eventually(Duration::from_secs(10), "leadership lapses (lease duration 3 s)", || async {
        a.sample("support_leader", &[]).await == Some(0.0)
    })
    .await;
    let writes = server.count(|r| status_writes(r, &c.name("p")));
    c.set_ready("n", false, now() - TimeDelta::days(8)).await;
    // Give the operator ample time to (wrongly) write.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(server.count(|r| status_writes(r, &c.name("p"))), writes, "no write without the Lease");
    assert!(a.is_running());
    server.clear_faults();
    c.wait_verdict("p", Verdict::AtRisk, "written again once the Lease is back").await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpha_apis_in_discovery_are_reported() {
    use test_apiserver::ResourceDef;
    let server = ApiServer::builder()
        .git_version("v1.35.3")
        .resource(ResourceDef::cluster("resource.k8s.io", "v1alpha3", "deviceclasses", "DeviceClass"))
        .start()
        .await;
    let c = Cluster::new(server.config(), "alpha");
    let op = Operator::start(c.operator.clone(), ShiftedClock::at(now()), None).await;
    c.create_node("n", &day(-1), true, now() - TimeDelta::days(1)).await;
    c.apply_policy(&c.policy("p", json!({"alphaApis": "Forbid"}))).await;
    let s = c.wait_verdict("p", Verdict::Unsupported, "Unsupported").await;
    assert!(finding(&s, "AlphaApiServed", "APIVersion/resource.k8s.io/v1alpha3").is_some());
    // Editing the policy (generation 2) is reflected in observedGeneration.
    let api: Api<SupportPolicy> = Api::all(server.client());
    api.patch(
        &c.name("p"),
        &PatchParams::apply("scenario").force(),
        &Patch::Apply(json!({
        "apiVersion": "support.compliance.dev/v1alpha1", "kind": "SupportPolicy", "metadata": {"name": c.name("p")},
        "spec": serde_json::to_value(&c.policy("p", json!({"alphaApis": "Allow"})).spec).unwrap()})),
    )
    .await
    .unwrap();
    let s = c.wait_verdict("p", Verdict::Supported, "Supported after allowing alpha APIs").await;
    assert_eq!(s.status.unwrap().observed_generation, Some(2));
    op.stop().await;
}

/// `check` without `--snapshot` reads the cluster of the kubeconfig: nodes, Leases, `/version`
/// and discovery, and a policy by its name in the cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reads_a_live_cluster_from_the_kubeconfig() {
    let server = ApiServer::builder().git_version("v1.34.2").start().await;
    let c = Cluster::new(server.config(), "live");
    c.create_node("a", &day(-100), true, now() - TimeDelta::days(1)).await;
    c.create_node("b", &day(-2), false, now() - TimeDelta::days(9)).await;
    c.apply_policy(&c.policy("p", json!({}))).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = kubeconfig(&server, dir.path());
    let check = |policy: String| {
        let kubeconfig = kubeconfig.clone();
        async move {
            let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_support-operator"))
                .args(["check", "--policy", &policy, "--now", NOW, "-o", "json"])
                .env("KUBECONFIG", &kubeconfig)
                .output()
                .await
                .unwrap();
            assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
            serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
        }
    };
    // A policy from the cluster, by name: it selects this run's two nodes.
    let v = check(c.name("p")).await;
    assert_eq!(v["status"]["nodes"]["total"], 2);
    assert_eq!(v["status"]["nodes"]["notReady"], 1);
    assert_eq!(v["status"]["verdict"], "Unsupported", "the 100-day-old image");
    // A preset: the control-plane version comes from /version.
    let v = check("aks".into()).await;
    assert_eq!(v["status"]["controlPlane"]["version"], "v1.34.2");
    assert!(server.count(|r| r.path == "/version") >= 2);
}

/// A restarted operator finds the status it would write already stored and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_writes_nothing() {
    let (server, c, op) = setup("restart").await;
    c.create_node("a", &day(-40), true, now() - TimeDelta::days(3)).await;
    c.create_node("b", &day(-2), false, now() - TimeDelta::days(9)).await;
    c.apply_policy(&c.policy("p", json!({}))).await;
    c.wait_status("p", "both nodes seen", |s| {
        s.status.as_ref().is_some_and(|st| {
            st.verdict == Some(Verdict::AtRisk) && st.nodes.as_ref().is_some_and(|n| n.total == 2 && n.not_ready == 1)
        })
    })
    .await;
    // Let the first operator finish what it is writing (the status, its Event).
    let writes = || server.count(|r| r.method != "GET");
    let mut settled = writes();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if writes() == settled {
            break;
        }
        settled = writes();
    }
    op.stop().await;
    let before = server.requests().len();
    let op = Operator::start(c.operator.clone(), ShiftedClock::at(now()), None).await;
    eventually(WAIT, "ready", || async { op.get("/readyz").await.0 == 200 }).await;
    let policy = c.name("p");
    eventually(WAIT, "the policy evaluated again", || async {
        op.sample("support_verdict", &[("policy", &policy), ("verdict", "AtRisk")]).await == Some(1.0)
    })
    .await;
    let written: Vec<String> = server.requests()[before..]
        .iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(written.is_empty(), "a restart wrote {written:?}");
    op.stop().await;
}

/// The emulator registers SupportPolicy and SupportStatus by default: its registrations must
/// match the CRDs the operator generates (kind, scope, short names, categories, subresource).
#[tokio::test]
async fn the_emulator_registers_the_generated_crds() {
    use kube::CustomResourceExt;
    use support_operator::crd::v1alpha1::SupportStatus;
    use test_apiserver::ResourceDef;
    for (crd, gvr) in [(SupportPolicy::crd(), Gvr::support_policies()), (SupportStatus::crd(), Gvr::support_statuses())]
    {
        let from_crd = ResourceDef::from_crd(&crd);
        let def =
            test_apiserver::default_resources().into_iter().find(|d| d.gvr() == gvr).expect("registered by default");
        assert_eq!(from_crd.len(), 1);
        let c = &from_crd[0];
        assert_eq!(
            (&c.kind, c.namespaced, &c.short_names, &c.categories, c.status_subresource),
            (&def.kind, def.namespaced, &def.short_names, &def.categories, def.status_subresource),
            "{gvr}"
        );
    }
    // SupportStatus is written by the operator through its status subresource.
    assert!(ResourceDef::from_crd(&SupportStatus::crd())[0].status_subresource);
}

// ----- Shared scenarios that start their own operator ------------------------------------------

/// A shared scenario that starts its own operator, on an emulator of its own.
macro_rules! on_the_emulator {
    ($name:ident, $scenario:ident, $run:literal) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let (_server, c) = emulator($run).await;
            $scenario(&c).await;
        }
    };
}

on_the_emulator!(node_deleted_untouched_since_start_on_the_emulator, node_deleted_untouched_since_start, "untouched");
on_the_emulator!(
    first_heartbeats_after_start_evaluate_nothing_on_the_emulator,
    first_heartbeats_after_start_evaluate_nothing,
    "first-beats"
);
on_the_emulator!(named_lease_is_followed_on_the_emulator, named_lease_is_followed, "named-lease");
on_the_emulator!(long_event_notes_fit_the_api_limit_on_the_emulator, long_event_notes_fit_the_api_limit, "notes");
on_the_emulator!(
    tampered_status_is_restored_without_an_event_on_the_emulator,
    tampered_status_is_restored_without_an_event,
    "tamper"
);

// ----- Shutdown, leadership, a struggling API server -------------------------------------------

/// The real binary, run against the emulator with leader election.
fn operator_process(kubeconfig: &std::path::Path, identity: &str, metrics_addr: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_support-operator"));
    cmd.args(["run", "--leader-elect", "--lease-namespace", "default", "--identity", identity])
        .args(["--metrics-addr", metrics_addr, "--health-addr", "127.0.0.1:0", "--log-filter", "warn"])
        .env("KUBECONFIG", kubeconfig)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    cmd
}

async fn sigterm(child: &tokio::process::Child) {
    let pid = child.id().expect("running").to_string();
    let status = tokio::process::Command::new("kill").args(["-TERM", &pid]).status().await.unwrap();
    assert!(status.success());
}

/// SIGTERM releases the leader Lease before the process exits 0, every time: the next replica
/// takes over at once instead of after a lease duration. The real binary, as a subprocess, so
/// that nothing survives its runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_releases_the_lease_and_exits_0() {
    let (server, c) = emulator("sigterm").await;
    c.create_node("n", &day(-1), true, now() - TimeDelta::days(1)).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = kubeconfig(&server, dir.path());
    for round in 0..12 {
        let identity = format!("replica-{round}");
        let mut child = operator_process(&kubeconfig, &identity, "127.0.0.1:0").spawn().unwrap();
        eventually(WAIT, "the replica holds the Lease", || async {
            holder_of(&server, "support-operator-leader").as_deref() == Some(&identity)
        })
        .await;
        sigterm(&child).await;
        let out = tokio::time::timeout(WAIT, child.wait()).await.expect("the operator exits").unwrap();
        let mut stderr = String::new();
        if let Some(mut e) = child.stderr.take() {
            use tokio::io::AsyncReadExt;
            let _ = e.read_to_string(&mut stderr).await;
        }
        assert_eq!(out.code(), Some(0), "round {round}: {stderr}");
        assert_eq!(
            holder_of(&server, "support-operator-leader"),
            None,
            "round {round}: the Lease is released before the exit: {stderr}"
        );
    }
}

/// A supervised task that dies (here the metrics server, whose port is taken) ends the process
/// with a non-zero exit and a message naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_dies_ends_the_process_non_zero() {
    let (server, _c) = emulator("dies").await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = kubeconfig(&server, dir.path());
    let child = operator_process(&kubeconfig, "replica-x", &taken.local_addr().unwrap().to_string()).spawn().unwrap();
    let out = tokio::time::timeout(WAIT, child.wait_with_output()).await.expect("the operator exits").unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("metrics server"), "{stderr}");
}

/// A Lease renewal that hangs (the API server never answers) does not leave two leaders: the old
/// one stops counting itself leader and drops its per-policy series within the lease duration,
/// while the other replica takes over and writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_renewal_leaves_one_leader() {
    let (server, c, a, b) = two_replicas("hung").await;
    let leader_id = holder_of(&server, "support-operator-test-leader").expect("a leader");
    let (old, new) = if leader_id == "replica-a" { (&a, &b) } else { (&b, &a) };
    let policy = c.name("p");
    eventually(WAIT, "the leader exports the verdict", || async {
        old.sample("support_verdict", &[("policy", &policy)]).await.is_some()
    })
    .await;

    // The leader's renewals hang from now on (its reads still answer).
    let id = leader_id.clone();
    server.delay_when(Duration::from_secs(3600), move |r| {
        r.resource == "leases" && r.method == "PUT" && r.body.contains(&format!("\"{id}\""))
    });
    let hung = std::time::Instant::now();
    eventually(Duration::from_secs(10), "the old leader steps down", || async {
        old.sample("support_leader", &[]).await == Some(0.0)
            && old.sample("support_verdict", &[("policy", &policy)]).await.is_none()
    })
    .await;
    assert!(hung.elapsed() < Duration::from_secs(3 + 2), "within the lease duration (3 s): {:?}", hung.elapsed());
    eventually(WAIT, "the other replica leads", || async {
        new.sample("support_leader", &[]).await == Some(1.0)
            && new.sample("support_verdict", &[("policy", &policy)]).await.is_some()
    })
    .await;
    c.set_ready("n", false, now() - TimeDelta::days(8)).await;
    c.wait_verdict("p", Verdict::AtRisk, "AtRisk, written by the new leader").await;
    assert_eq!(old.sample("support_leader", &[]).await, Some(0.0));
    server.set_delay(Duration::ZERO);
    a.stop().await;
    b.stop().await;
}

/// The holder of the Lease `lease` in `default`, as stored.
fn holder_of(server: &ApiServer, lease: &str) -> Option<String> {
    server
        .get::<k8s_openapi::api::coordination::v1::Lease>(Some("default"), lease)
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
        .filter(|h| !h.is_empty())
}

/// Leadership lost while a status write is in flight: the reconcile that wrote does not record
/// per-policy series afterwards (a follower never keeps series).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_in_flight_when_leadership_ends_leaves_no_series() {
    let server = ApiServer::builder().git_version("v1.35.3").start().await;
    let c = Cluster::new(server.config(), "race");
    let op = Operator::start(c.operator.clone(), ShiftedClock::at(now()), Some(("replica-a", "default"))).await;
    c.create_node("n", &day(-1), true, now() - TimeDelta::days(1)).await;
    c.apply_policy(&c.policy("p", json!({}))).await;
    c.wait_verdict("p", Verdict::Supported, "Supported").await;
    let policy = c.name("p");
    let evaluations = op.settled(|| op.evaluations()).await;
    // From now on the Lease cannot be renewed (lease duration 3 s), and status writes take 4 s.
    server.fail_next(usize::MAX, Fault::InternalError, |r| r.resource == "leases");
    server.delay_when(Duration::from_secs(4), |r| r.resource == "supportstatuses" && r.method == "PATCH");
    c.set_ready("n", false, now() - TimeDelta::days(8)).await;
    // The reconcile of the change, then the one leadership's end triggers.
    eventually(Duration::from_secs(15), "both reconciles ended", || async {
        op.evaluations().await >= evaluations + 2.0
    })
    .await;
    assert_eq!(op.sample("support_leader", &[]).await, Some(0.0));
    let left: Vec<String> = op
        .metrics()
        .await
        .samples
        .iter()
        .filter(|s| s.labels.get("policy") == Some(policy.as_str()))
        .map(|s| s.metric.clone())
        .collect();
    assert!(left.is_empty(), "a replica that is not the leader exports {left:?}");
    server.clear_faults();
    server.set_delay(Duration::ZERO);
    c.wait_verdict("p", Verdict::AtRisk, "written once the Lease is back").await;
    op.stop().await;
}

/// Under a persistently failing list (500, and 403 as when RBAC is removed), each watch backs off
/// exponentially (0.8 s doubling to 30 s) instead of relisting every second; the errors are counted
/// as watch errors, not reconcile errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_back_off_under_persistent_errors() {
    let server = ApiServer::builder().git_version("v1.35.3").start().await;
    let forbidden = Fault::Status {
        code: 403,
        reason: "Forbidden".into(),
        message: "supportpolicies.support.compliance.dev is forbidden: User \"system:serviceaccount:ns:sa\" cannot list resource \"supportpolicies\"".into(),
    };
    server.fail_next(usize::MAX, Fault::InternalError, |r| r.resource == "nodes" && r.verb == "list");
    server.fail_next(usize::MAX, forbidden, |r| r.resource == "supportpolicies" && r.verb == "list");
    let started = std::time::Instant::now();
    let op = Operator::start(operator_client(&server), ShiftedClock::at(now()), None).await;
    let lists = |resource: &'static str| server.count(move |r| r.resource == resource && r.verb == "list");
    // Delays 0.8, 1.6, 3.2 and 6.4 s (±25 %) before the 2nd to 5th list: at least 9 s in all.
    eventually(Duration::from_secs(40), "five node and policy lists", || async {
        lists("nodes") >= 5 && lists("supportpolicies") >= 5
    })
    .await;
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_secs(8), "5 lists per watch within {elapsed:?}");
    assert!(lists("nodes") <= 6 && lists("supportpolicies") <= 6, "{} {}", lists("nodes"), lists("supportpolicies"));
    assert!(op.sample("support_watch_errors_total", &[("kind", "Node")]).await >= Some(4.0));
    assert!(op.sample("support_watch_errors_total", &[("kind", "SupportPolicy")]).await >= Some(4.0));
    assert_eq!(op.sample("support_reconcile_errors_total", &[("category", "api")]).await, Some(0.0));
    op.stop().await;
}

/// The relist rate of a watch under a persistent 500 and a persistent 403, over a minute or
/// `WINDOW` seconds (slow, so not run by default):
/// `WINDOW=180 cargo test --test operator -- --ignored watch_relist_rate --nocapture`.
/// Before the backoff fix: 49 and 48 lists in the first minute (about one a second, forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "takes a minute; prints the rate"]
async fn watch_relist_rate() {
    let window: u64 = std::env::var("WINDOW").ok().and_then(|w| w.parse().ok()).unwrap_or(60);
    let server = ApiServer::builder().git_version("v1.35.3").start().await;
    let forbidden = Fault::Status { code: 403, reason: "Forbidden".into(), message: "forbidden".into() };
    server.fail_next(usize::MAX, Fault::InternalError, |r| r.resource == "nodes" && r.verb == "list");
    server.fail_next(usize::MAX, forbidden, |r| r.resource == "supportpolicies" && r.verb == "list");
    let op = Operator::start(operator_client(&server), ShiftedClock::at(now()), None).await;
    tokio::time::sleep(Duration::from_secs(window)).await;
    let lists = |resource: &'static str| server.count(move |r| r.resource == resource && r.verb == "list");
    let (nodes, policies) = (lists("nodes"), lists("supportpolicies"));
    println!("in {window} s: {nodes} node lists (500), {policies} policy lists (403)");
    // 0.8, 1.6, 3.2, … 30 s (±25 %): 7 lists in the first minute, then about 2 a minute.
    let bound = 8 + 3 * window.saturating_sub(60).div_ceil(60) as usize;
    assert!(nodes <= bound && policies <= bound, "more than {bound} lists per watch");
    op.stop().await;
}

/// A client of the emulator with the operator's user agent.
fn operator_client(server: &ApiServer) -> kube::Client {
    kube::Client::try_from(operator_config(server.config())).unwrap()
}

/// Every documented error category is emitted where it happens: API failures, conflicts, objects
/// the API server refuses, and the operator's own faults; watch errors are counted apart, by kind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_counted_by_category_and_watch_errors_apart() {
    let (server, c, op) = setup("errors").await;
    c.create_node("n", &day(-1), true, now() - TimeDelta::days(1)).await;
    c.apply_policy(&c.policy("p", json!({}))).await;
    c.wait_verdict("p", Verdict::Supported, "Supported").await;
    let category = |c: &'static str| {
        let op = &op;
        async move { op.sample("support_reconcile_errors_total", &[("category", c)]).await.unwrap_or(0.0) }
    };
    let status_patch = |r: &RequestRecord| r.resource == "supportstatuses" && r.subresource.is_some();
    let faults = [
        ("api", Fault::InternalError),
        (
            "conflict",
            Fault::Status { code: 409, reason: "Conflict".into(), message: "the object has been modified".into() },
        ),
        (
            "invalid-object",
            Fault::Status {
                code: 422,
                reason: "Invalid".into(),
                message: "SupportStatus.support.compliance.dev \"p\" is invalid: status.findings: Too many".into(),
            },
        ),
    ];
    for (i, (name, fault)) in faults.into_iter().enumerate() {
        let before = category(name).await;
        server.fail_next(1, fault, status_patch);
        let ready = i % 2 == 1;
        c.set_ready("n", ready, now() - TimeDelta::days(8)).await;
        eventually(WAIT, name, || async { category(name).await > before }).await;
        // The retry writes it.
        let verdict = if ready { Verdict::Supported } else { Verdict::AtRisk };
        c.wait_verdict("p", verdict, "written on retry").await;
    }
    // A policy the operator cannot own its status for (no uid: only broken storage does this).
    server.insert_raw(
        &Gvr::support_policies(),
        None,
        &c.name("no-uid"),
        json!({"apiVersion": "support.compliance.dev/v1alpha1", "kind": "SupportPolicy",
               "metadata": {"name": c.name("no-uid")}, "spec": {"platform": "Custom"}}),
    );
    eventually(WAIT, "internal", || async { category("internal").await >= 1.0 }).await;

    // Watch errors: counted by kind, not as reconcile errors.
    let api_errors = category("api").await;
    for resource in ["supportstatuses", "supportpolicies"] {
        server.fail_next(2, Fault::InternalError, move |r| r.resource == resource && r.is_watch());
    }
    server.drop_watches();
    for kind in ["SupportStatus", "SupportPolicy"] {
        eventually(WAIT, kind, || async {
            op.sample("support_watch_errors_total", &[("kind", kind)]).await >= Some(1.0)
        })
        .await;
    }
    assert_eq!(category("api").await, api_errors, "watch errors are not reconcile errors");
    op.stop().await;
}

/// `/healthz` fails while a supervised loop makes no progress (here a reconcile stuck in a slow
/// write longer than the bound) and recovers with it; `/readyz` fails while a watch keeps failing
/// longer than its bound, and recovers with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_the_loops_and_readiness_the_watches() {
    let server = ApiServer::builder().git_version("v1.35.3").start().await;
    let c = Cluster::new(server.config(), "health");
    let op = Operator::start_with(c.operator.clone(), ShiftedClock::at(now()), None, |s| {
        s.health.stalled_after = Duration::from_secs(1);
        s.health.unready_after = Duration::from_secs(1);
    })
    .await;
    c.create_node("n", &day(-1), true, now() - TimeDelta::days(1)).await;
    c.apply_policy(&c.policy("p", json!({}))).await;
    c.wait_verdict("p", Verdict::Supported, "Supported").await;
    assert_eq!(op.get("/healthz").await.0, 200);
    assert_eq!(op.get("/readyz").await.0, 200);

    server.delay_when(Duration::from_secs(3), |r| r.resource == "supportstatuses" && r.method == "PATCH");
    c.set_ready("n", false, now() - TimeDelta::days(8)).await;
    eventually(WAIT, "not live while the reconcile is stuck", || async {
        let (code, body) = op.get("/healthz").await;
        code == 503 && body.contains("controller")
    })
    .await;
    eventually(WAIT, "live again", || async { op.get("/healthz").await.0 == 200 }).await;
    server.set_delay(Duration::ZERO);

    server.fail_next(usize::MAX, Fault::InternalError, |r| r.resource == "nodes" && r.method == "GET");
    server.drop_watches();
    eventually(WAIT, "not ready while the node watch fails", || async {
        let (code, body) = op.get("/readyz").await;
        code == 503 && body.contains("Node")
    })
    .await;
    assert_eq!(op.get("/healthz").await.0, 200, "a failing watch is not a dead process");
    server.clear_faults();
    eventually(WAIT, "ready again", || async { op.get("/readyz").await.0 == 200 }).await;
    op.stop().await;
}

/// Only the Leases policies name are watched, each by namespace and name (kube-node-lease and
/// every other controller's leader Lease never reach the operator); the watches follow the
/// policies, and more than a few names in one namespace share one watch of that namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_named_leases_are_watched() {
    let (server, c, op) = setup("lease-watch").await;
    c.put_lease("kube-system", "controller-manager", now()).await;
    c.put_lease("agents", "a", now() - TimeDelta::days(1)).await;
    c.create_node("n", &day(-1), true, now() - TimeDelta::days(1)).await;
    let heartbeat = |names: &[&str]| -> Value {
        names
            .iter()
            .map(|n| json!({"name": n, "lease": {"namespace": "agents", "name": c.name(n)}, "warnAfterDays": 20}))
            .collect()
    };
    c.apply_policy(&c.policy("p", json!({"heartbeats": heartbeat(&["a"])}))).await;
    c.wait_status("p", "evaluated", |s| s.status.is_some()).await;
    let lease_watches = || -> Vec<(Option<String>, Option<String>)> {
        server
            .requests()
            .iter()
            .filter(|r| r.user_agent.as_deref() == Some(OPERATOR_AGENT) && r.resource == "leases")
            .filter(|r| r.verb == "list" || r.verb == "watch")
            .map(|r| (r.namespace.clone(), r.query_param("fieldSelector")))
            .collect()
    };
    let by_name = |n: &str| (Some("agents".to_string()), Some(format!("metadata.name={}", c.name(n))));
    let seen = lease_watches();
    assert!(!seen.is_empty());
    assert!(seen.iter().all(|w| *w == by_name("a")), "{seen:?}");

    // A second heartbeat: a watch of its own.
    c.apply_policy(&c.policy("p", json!({"heartbeats": heartbeat(&["a", "b"])}))).await;
    c.wait_status("p", "the missing Lease b", |s| finding(s, "HeartbeatStale", "Heartbeat/b").is_some()).await;
    assert!(lease_watches().contains(&by_name("b")), "{:?}", lease_watches());

    // Five in one namespace: one watch of the namespace.
    server.clear_requests();
    c.apply_policy(&c.policy("p", json!({"heartbeats": heartbeat(&["a", "b", "c", "d", "e"])}))).await;
    c.wait_status("p", "five heartbeats", |s| finding(s, "HeartbeatStale", "Heartbeat/e").is_some()).await;
    let seen = lease_watches();
    assert!(seen.iter().all(|w| *w == (Some("agents".to_string()), None)), "{seen:?}");
    op.stop().await;
}

// ----- RBAC --------------------------------------------------------------------------------------

/// One permission: group, resource (with `/subresource`), verb, and the object name a rule may
/// be limited to (`resourceNames`).
type Grant = (String, String, String, Option<String>);

/// The rules of an RBAC manifest, one entry per permission they grant.
fn granted(path: &str) -> BTreeSet<Grant> {
    let text = std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let role: Value = support_operator::yaml::documents(&text).unwrap().remove(0);
    let strings = |v: &Value| -> Vec<String> {
        v.as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect()
    };
    let mut out = BTreeSet::new();
    for rule in role["rules"].as_array().unwrap() {
        let names: Vec<Option<String>> = match strings(&rule["resourceNames"]) {
            n if n.is_empty() => vec![None],
            n => n.into_iter().map(Some).collect(),
        };
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                for verb in strings(&rule["verbs"]) {
                    for name in &names {
                        out.insert((group.clone(), resource.clone(), verb.clone(), name.clone()));
                    }
                }
            }
        }
    }
    out
}

/// What the operator's requests need, as RBAC authorizes them: each request's verb on its
/// resource; an apply that created its object needs `create` too; an ownerReference with
/// `blockOwnerDeletion` needs `update` on the owner's finalizers (OwnerReferencesPermissionEnforcement).
/// Requests on the leader-election Lease go to the Role, all others to the ClusterRole.
fn needed(requests: &[RequestRecord], lease_namespace: &str, lease: &str) -> (BTreeSet<Grant>, BTreeSet<Grant>) {
    let (mut cluster, mut role) = (BTreeSet::new(), BTreeSet::new());
    for r in requests.iter().filter(|r| r.user_agent.as_deref() == Some(OPERATOR_AGENT) && !r.resource.is_empty()) {
        let resource = match &r.subresource {
            Some(sub) => format!("{}/{sub}", r.resource),
            None => r.resource.clone(),
        };
        let mut verbs = vec![r.verb.clone()];
        if r.is_apply() && r.status == 201 {
            verbs.push("create".into());
        }
        let election = r.resource == "leases"
            && r.namespace.as_deref() == Some(lease_namespace)
            && (r.name.as_deref() == Some(lease) || (r.verb == "create" && r.body.contains(lease)));
        for verb in verbs {
            if election {
                let name = (verb != "create").then(|| lease.to_string());
                role.insert((r.group.clone(), resource.clone(), verb, name));
            } else {
                cluster.insert((r.group.clone(), resource.clone(), verb, None));
            }
        }
        let body: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
        for owner in body.pointer("/metadata/ownerReferences").and_then(Value::as_array).into_iter().flatten() {
            if owner["blockOwnerDeletion"] == true {
                assert_eq!(owner["kind"], "SupportPolicy", "{owner}");
                let group = "support.compliance.dev".to_string();
                cluster.insert((group, "supportpolicies/finalizers".into(), "update".into(), None));
            }
        }
    }
    (cluster, role)
}

fn assert_same(what: &str, needed: &BTreeSet<Grant>, granted: &BTreeSet<Grant>) {
    let unused: Vec<&Grant> = granted.difference(needed).collect();
    let missing: Vec<&Grant> = needed.difference(granted).collect();
    assert!(
        unused.is_empty() && missing.is_empty(),
        "{what}: granted, never needed: {unused:?}; needed, not granted: {missing:?}"
    );
}

/// The RBAC in `config/rbac` grants exactly what the operator calls: the verbs are derived from
/// the emulator's request log (the operator's own requests, told apart by their user agent)
/// across the scenario suite, with leader election and its release, and compared with the
/// ClusterRole and the leader-election Role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_grants_exactly_what_the_operator_calls() {
    // The API server serves ClusterReports, and knows the token the scenarios scrape with.
    let builder = ApiServer::builder().git_version("v1.35.3").bookmark_interval(Duration::from_millis(500));
    let server = openreports::with_cluster_reports(with_metrics_reader(builder)).start().await;
    let scenario = |name: &str| Cluster::new(server.config(), name);
    // Scenarios that start operators of their own (without leader election).
    node_deleted_untouched_since_start(&scenario("rbac-untouched")).await;
    first_heartbeats_after_start_evaluate_nothing(&scenario("rbac-first-beats")).await;
    named_lease_is_followed(&scenario("rbac-lease")).await;
    long_event_notes_fit_the_api_limit(&scenario("rbac-notes")).await;
    tampered_status_is_restored_without_an_event(&scenario("rbac-tamper")).await;

    // One elected operator as deployed (the Lease name the Role names, secure /metrics scraped
    // with a token, OpenReports on), through the rest.
    let lead = scenario("rbac");
    let op = Operator::start_with(lead.operator.clone(), ShiftedClock::at(now()), Some(("rbac", "default")), |s| {
        if let Some(leader) = s.leader.as_mut() {
            leader.name = "support-operator-leader".into();
        }
        s.metrics_security = secure_metrics();
        s.openreports = true;
    })
    .await
    .with_token(SCRAPE_TOKEN);
    eventually(WAIT, "the operator leads", || async { op.sample("support_leader", &[]).await == Some(1.0) }).await;
    policy_lifecycle(&scenario("rbac-lifecycle"), &op).await;
    nodes_stop(&scenario("rbac-stop")).await;
    deadline_passes(&scenario("rbac-deadline"), &op).await;
    heartbeats_do_not_write(&scenario("rbac-beats"), &op, 30).await;
    invalid_policy_is_isolated(&scenario("rbac-invalid")).await;
    metrics_match_status(&scenario("rbac-metrics"), &op).await;
    // Five heartbeat Leases in one namespace (one watch of the namespace).
    let names = ["a", "b", "c", "d", "e"];
    let heartbeats: Vec<Value> = names
        .iter()
        .map(|n| json!({"name": n, "lease": {"namespace": "agents", "name": lead.name(n)}, "warnAfterDays": 20}))
        .collect();
    lead.create_node("n", &day(-1), true, now() - TimeDelta::days(1)).await;
    lead.apply_policy(&lead.policy("p", json!({"heartbeats": heartbeats}))).await;
    lead.wait_status("p", "five heartbeats", |s| finding(s, "HeartbeatStale", "Heartbeat/e").is_some()).await;
    lead.delete_policy("p").await;
    // A verdict that comes back: its Event's series is patched.
    lead.apply_policy(&lead.policy("flap", json!({}))).await;
    for (ready, verdict) in [(false, Verdict::AtRisk), (true, Verdict::Supported), (false, Verdict::AtRisk)] {
        lead.set_ready("n", ready, now() - TimeDelta::days(8)).await;
        lead.wait_verdict("flap", verdict, "flapping").await;
    }
    eventually(WAIT, "a repeated verdict Event", || async {
        lead.events_about("flap").await.iter().any(|e| e.series.as_ref().is_some_and(|s| s.count >= 2))
    })
    .await;
    lead.cleanup(&["flap"]).await;
    op.stop().await;

    let requests = server.requests();
    for resource in ["tokenreviews", "subjectaccessreviews", "clusterreports"] {
        assert!(requests.iter().any(|r| r.resource == resource), "the run exercised {resource}");
    }
    let (cluster, role) = needed(&requests, "default", "support-operator-leader");
    assert_same("config/rbac/cluster_role.yaml", &cluster, &granted("config/rbac/cluster_role.yaml"));
    assert_same("config/rbac/leader_election_role.yaml", &role, &granted("config/rbac/leader_election_role.yaml"));
}
