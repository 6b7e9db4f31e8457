//! `make bench`: how the engine scales with the node count, as ratios against a baseline
//! measured in the same run (reading the same nodes from JSON, which every list or watch of
//! the operator does anyway). Medians of repeated runs; timings vary by machine, ratios less.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support_operator::crd::v1alpha1::{Platform, SupportPolicySpec};
use support_operator::policy::{self, report, Policy};
use support_operator::snapshot::{ClusterSnapshot, NodeInfo};

fn node(i: usize) -> Value {
    let pool = format!("pool{}", i % 12);
    let image = format!("AKSUbuntu-2204gen2containerd-2026{:02}.{:02}.0", 1 + i % 11, 1 + i % 28);
    let kubelet = ["v1.33.5", "v1.34.2", "v1.35.3"][i % 3];
    let ready = if i.is_multiple_of(50) { "False" } else { "True" };
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": format!("aks-{pool}-{i:06}"), "creationTimestamp": "2026-06-01T00:00:00Z",
            "labels": {"kubernetes.azure.com/agentpool": pool, "kubernetes.azure.com/node-image-version": image,
                       "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"},
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
        "status": {"conditions": [{"type": "Ready", "status": ready, "lastTransitionTime": "2026-11-01T00:00:00Z"}],
                   "nodeInfo": {"kubeletVersion": kubelet}}
    })
}

fn median(mut f: impl FnMut(), min_runs: usize, budget: Duration) -> Duration {
    let mut samples = Vec::new();
    let start = Instant::now();
    while samples.len() < min_runs || (start.elapsed() < budget && samples.len() < 1000) {
        let t = Instant::now();
        f();
        samples.push(t.elapsed());
    }
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let now = support_operator::time::parse_rfc3339("2026-11-25T12:00:00Z").unwrap();
    let spec = SupportPolicySpec { platform: Platform::Aks, ..Default::default() };
    let policy = Policy::resolve(&spec).unwrap();
    println!(
        "{:>6}  {:>12}  {:>12}  {:>12}  {:>10}  {:>9}",
        "nodes", "read JSON", "evaluate", "status", "eval/read", "bytes"
    );
    let mut per_node = Vec::new();
    for n in [100usize, 1_000, 5_000] {
        let values: Vec<Value> = (0..n).map(node).collect();
        let read = median(
            || {
                let nodes: Vec<NodeInfo> = values.iter().map(|v| NodeInfo::from_value(v).unwrap()).collect();
                black_box(nodes);
            },
            5,
            Duration::from_secs(2),
        );
        let snapshot = ClusterSnapshot {
            server_version: Some("v1.35.1".into()),
            nodes: values.iter().map(|v| Arc::new(NodeInfo::from_value(v).unwrap())).collect(),
            ..Default::default()
        };
        let eval =
            median(|| drop(black_box(policy::evaluate_resolved(&policy, &snapshot, now))), 5, Duration::from_secs(2));
        let evaluation = policy::evaluate_resolved(&policy, &snapshot, now);
        let status =
            median(|| drop(black_box(report::report(&evaluation, None, Some(1), now))), 5, Duration::from_secs(1));
        let bytes = serde_json::to_vec(&report::report(&evaluation, None, Some(1), now)).unwrap().len();
        println!(
            "{n:>6}  {:>10.2?}  {:>10.2?}  {:>10.2?}  {:>9.2}×  {bytes:>9}",
            read,
            eval,
            status,
            eval.as_secs_f64() / read.as_secs_f64()
        );
        per_node.push((n, eval.as_secs_f64() / n as f64));
    }
    let (n0, base) = per_node[0];
    for (n, t) in &per_node[1..] {
        println!("evaluate time per node at {n} nodes / at {n0} nodes: {:.2}×", t / base);
    }
}
