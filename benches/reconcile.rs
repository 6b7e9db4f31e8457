//! `make bench` (second part): the operator against the in-process API emulator loaded with N
//! nodes. Reported as ratios against a baseline measured in the same run: one plain paged list
//! of the same N nodes through the same client (what any cache sync costs at least).
//! - cold start: from starting the operator to the first status of a new policy;
//! - one change: from one node turning NotReady to the status showing it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;
use support_operator::controller::clock::ShiftedClock;
use support_operator::controller::{self, Settings};
use support_operator::crd::v1alpha1::SupportStatus;
use test_apiserver::ApiServer;

const NOW: &str = "2026-11-25T12:00:00Z";

fn node(i: usize) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": format!("node-{i:05}"), "creationTimestamp": "2026-06-01T00:00:00Z",
            "labels": {"kubernetes.azure.com/agentpool": format!("pool{}", i % 10),
                       "kubernetes.azure.com/node-image-version": format!("AKSUbuntu-2204gen2containerd-2026{:02}.{:02}.0", 1 + i % 10, 1 + i % 28)}},
        "status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-11-01T00:00:00Z",
                                   "lastHeartbeatTime": NOW}],
                   "nodeInfo": {"kubeletVersion": "v1.35.3"}}
    })
}

async fn wait(what: &str, mut cond: impl AsyncFnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !cond().await {
        assert!(start.elapsed() < Duration::from_secs(120), "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    start.elapsed()
}

async fn run(n: usize) -> (Duration, Duration, Duration) {
    let server = ApiServer::builder().git_version("v1.35.3").start().await;
    for i in 0..n {
        server.apply_object(node(i));
    }
    let client = server.client();

    // Baseline: one paged list of the nodes.
    let nodes: Api<Node> = Api::all(client.clone());
    let start = Instant::now();
    let mut params = ListParams::default().limit(500);
    let mut seen = 0;
    loop {
        let page = nodes.list(&params).await.unwrap();
        seen += page.items.len();
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => params = params.continue_token(&c),
            None => break,
        }
    }
    assert_eq!(seen, n);
    let baseline = start.elapsed();

    server.apply_object(json!({"apiVersion": "support.compliance.dev/v1alpha1", "kind": "SupportPolicy",
        "metadata": {"name": "aks"}, "spec": {"platform": "AKS"}}));
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let settings = Settings {
        metrics_addr: "127.0.0.1:0".parse().unwrap(),
        metrics_security: support_operator::server::MetricsSecurity::Plain,
        health_addr: "127.0.0.1:0".parse().unwrap(),
        openreports: false,
        leader: None,
        resync: Duration::from_secs(3600),
        discovery_interval: Duration::from_secs(600),
        identity: "bench".into(),
        report_addr: None,
        health: Default::default(),
        node_metrics: Default::default(),
    };
    let clock = ShiftedClock::at(support_operator::time::parse_rfc3339(NOW).unwrap());
    let statuses: Api<SupportStatus> = Api::all(client.clone());
    let start = Instant::now();
    let handle = tokio::spawn(controller::run(client.clone(), settings, Arc::new(clock), stop_rx));
    let total = |s: &Option<SupportStatus>| {
        s.as_ref().and_then(|s| s.status.as_ref()).and_then(|s| s.nodes.as_ref()).map(|n| (n.total, n.not_ready))
    };
    wait("first status", async || total(&statuses.get_opt("aks").await.unwrap()) == Some((n as u32, 0))).await;
    let cold = start.elapsed();

    let start = Instant::now();
    nodes
        .patch_status(
            "node-00007",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": [
            {"type": "Ready", "status": "False", "lastTransitionTime": NOW, "lastHeartbeatTime": NOW}]}})),
        )
        .await
        .unwrap();
    wait("the change", async || total(&statuses.get_opt("aks").await.unwrap()) == Some((n as u32, 1))).await;
    let change = start.elapsed();

    let _ = stop.send(true);
    let _ = handle.await;
    (baseline, cold, change)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    println!(
        "{:>6}  {:>12}  {:>12}  {:>12}  {:>10}  {:>10}",
        "nodes", "list (base)", "cold start", "one change", "cold/list", "change/list"
    );
    for n in [1_000usize, 5_000] {
        // Median of three runs of each.
        let mut runs: Vec<(Duration, Duration, Duration)> = (0..3).map(|_| rt.block_on(run(n))).collect();
        let med = |f: fn(&(Duration, Duration, Duration)) -> Duration,
                   runs: &mut Vec<(Duration, Duration, Duration)>| {
            let mut v: Vec<Duration> = runs.iter().map(f).collect();
            v.sort();
            v[1]
        };
        let (base, cold, change) = (med(|r| r.0, &mut runs), med(|r| r.1, &mut runs), med(|r| r.2, &mut runs));
        println!(
            "{n:>6}  {base:>12.2?}  {cold:>12.2?}  {change:>12.2?}  {:>9.2}×  {:>9.2}×",
            cold.as_secs_f64() / base.as_secs_f64(),
            change.as_secs_f64() / base.as_secs_f64()
        );
    }
}
