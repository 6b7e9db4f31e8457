//! The operator against the in-process Kubernetes API emulator: the shared scenarios, plus
//! those that need the emulator's fault injection, request log or raw objects.

mod scenarios;

use std::time::Duration;

use chrono::TimeDelta;
use kube::api::{Api, Patch, PatchParams};
use scenarios::*;
use serde_json::json;
use support_operator::controller::clock::ShiftedClock;
use support_operator::crd::v1alpha1::{SupportPolicy, Verdict};
use test_apiserver::{ApiServer, Fault, Gvr, RequestRecord};

async fn setup(scenario: &str) -> (ApiServer, Cluster, Operator) {
    let server =
        ApiServer::builder().git_version("v1.35.3").bookmark_interval(Duration::from_millis(500)).start().await;
    let cluster = Cluster::new(server.client(), scenario);
    let op = Operator::start(server.client(), ShiftedClock::at(now()), None).await;
    (server, cluster, op)
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
    let before = server.count(|r| status_writes(r, &c.name("p")));
    heartbeats_do_not_write(&c, &op, 1000).await;
    // Counted at the emulator too: the first status, then the one NotReady change.
    assert_eq!(server.count(|r| status_writes(r, &c.name("p"))) - before, 2);
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
    c.wait_status("p", "Supported", |s| s.status.as_ref().is_some_and(|st| st.verdict == Some(Verdict::Supported)))
        .await;

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
    let broken = c
        .wait_status("broken", "Unknown", |s| s.status.as_ref().is_some_and(|st| st.verdict == Some(Verdict::Unknown)))
        .await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_replica_writes_and_the_other_takes_over() {
    let server = ApiServer::builder().git_version("v1.35.3").start().await;
    let c = Cluster::new(server.client(), "ha");
    let clock = ShiftedClock::at(now());
    let a = Operator::start(server.client(), clock.clone(), Some(("replica-a", "default"))).await;
    let b = Operator::start(server.client(), clock.clone(), Some(("replica-b", "default"))).await;
    c.create_node("n", &day(-1), true, now() - TimeDelta::days(1)).await;
    c.apply_policy(&c.policy("p", json!({}))).await;
    c.wait_status("p", "Supported", |s| s.status.as_ref().is_some_and(|st| st.verdict == Some(Verdict::Supported)))
        .await;

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
    c.wait_status("p", "AtRisk", |s| s.status.as_ref().is_some_and(|st| st.verdict == Some(Verdict::AtRisk))).await;
    assert_eq!(follower.sample("support_status_writes_total", &[]).await, Some(0.0));

    // The leader stops (SIGTERM): it releases the Lease and the other replica takes over.
    leader.stop().await;
    eventually(WAIT, "the follower becomes the leader", || async {
        follower.sample("support_leader", &[]).await == Some(1.0)
    })
    .await;
    c.set_ready("n", true, now()).await;
    c.wait_status("p", "Supported again, written by the new leader", |s| {
        s.status.as_ref().is_some_and(|st| st.verdict == Some(Verdict::Supported))
    })
    .await;
    assert!(follower.sample("support_status_writes_total", &[]).await.unwrap_or(0.0) >= 1.0);
    follower.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_cannot_renew_stops_writing_within_the_lease_duration() {
    let server = ApiServer::builder().git_version("v1.35.3").start().await;
    let c = Cluster::new(server.client(), "fence");
    let a = Operator::start(server.client(), ShiftedClock::at(now()), Some(("replica-a", "default"))).await;
    c.create_node("n", &day(-1), true, now() - TimeDelta::days(1)).await;
    c.apply_policy(&c.policy("p", json!({}))).await;
    c.wait_status("p", "Supported", |s| s.status.as_ref().is_some_and(|st| st.verdict == Some(Verdict::Supported)))
        .await;
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
    c.wait_status("p", "written again once the Lease is back", |s| {
        s.status.as_ref().is_some_and(|st| st.verdict == Some(Verdict::AtRisk))
    })
    .await;
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
    let c = Cluster::new(server.client(), "alpha");
    let op = Operator::start(server.client(), ShiftedClock::at(now()), None).await;
    c.create_node("n", &day(-1), true, now() - TimeDelta::days(1)).await;
    c.apply_policy(&c.policy("p", json!({"alphaApis": "Forbid"}))).await;
    let s = c
        .wait_status("p", "Unsupported", |s| {
            s.status.as_ref().is_some_and(|st| st.verdict == Some(Verdict::Unsupported))
        })
        .await;
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
    let s = c
        .wait_status("p", "Supported after allowing alpha APIs", |s| {
            s.status.as_ref().is_some_and(|st| st.verdict == Some(Verdict::Supported))
        })
        .await;
    assert_eq!(s.status.unwrap().observed_generation, Some(2));
    op.stop().await;
}

/// `check` without `--snapshot` reads the cluster of the kubeconfig: nodes, Leases, `/version`
/// and discovery, and a policy by its name in the cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reads_a_live_cluster_from_the_kubeconfig() {
    let server = ApiServer::builder().git_version("v1.34.2").start().await;
    let c = Cluster::new(server.client(), "live");
    c.create_node("a", &day(-100), true, now() - TimeDelta::days(1)).await;
    c.create_node("b", &day(-2), false, now() - TimeDelta::days(9)).await;
    c.apply_policy(&c.policy("p", json!({}))).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("config");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: emu\nclusters:\n- name: emu\n  cluster: {{server: \"{}\"}}\n\
             contexts:\n- name: emu\n  context: {{cluster: emu, user: emu}}\nusers:\n- name: emu\n  user: {{}}\n",
            server.url()
        ),
    )
    .unwrap();
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
    let op = Operator::start(server.client(), ShiftedClock::at(now()), None).await;
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

/// A status changed by someone else is put back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_status_is_restored() {
    let (server, c, op) = setup("tamper").await;
    c.create_node("a", &day(-40), true, now() - TimeDelta::days(3)).await;
    c.apply_policy(&c.policy("p", json!({}))).await;
    c.wait_status("p", "AtRisk", |s| s.status.as_ref().is_some_and(|st| st.verdict == Some(Verdict::AtRisk))).await;
    let api: Api<support_operator::crd::v1alpha1::SupportStatus> = Api::all(server.client());
    api.patch_status(&c.name("p"), &PatchParams::default(), &Patch::Merge(json!({"status": {"verdict": "Supported"}})))
        .await
        .unwrap();
    c.wait_status("p", "AtRisk again", |s| s.status.as_ref().is_some_and(|st| st.verdict == Some(Verdict::AtRisk)))
        .await;
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
