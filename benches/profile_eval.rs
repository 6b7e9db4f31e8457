use std::sync::Arc;
use support_operator::crd::v1alpha1::{Platform, SupportPolicySpec};
use support_operator::policy::{self, Policy};
use support_operator::snapshot::{ClusterSnapshot, Interner, NodeInfo};
use test_apiserver::generate::ClusterShape;

fn main() {
    let n: usize = std::env::var("N").ok().and_then(|s| s.parse().ok()).unwrap_or(20000);
    let runs: u32 = std::env::var("RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    let shape = ClusterShape::new(n);
    let aks = SupportPolicySpec { platform: Platform::Aks, ..Default::default() };
    let policy = Policy::resolve(&aks).unwrap();
    let keys = policy.node_keys();
    let mut interner = Interner::default();
    let nodes: Vec<Arc<NodeInfo>> =
        (0..n).map(|i| Arc::new(NodeInfo::from_value(&shape.node(i)).unwrap().trimmed(&keys, &mut interner))).collect();
    let snapshot = ClusterSnapshot { server_version: Some("v1.35.3".into()), nodes, ..Default::default() };
    let now = support_operator::time::parse_rfc3339("2026-11-25T12:00:00Z").unwrap();
    let preset = support_operator::calendar::preset(Platform::Aks).unwrap().spec.clone();
    let only = std::env::var("ONLY").unwrap_or_default();
    let mut spec = SupportPolicySpec { platform: Platform::Custom, ..Default::default() };
    for part in only.split(',') {
        match part {
            "version" => spec.kubernetes_version = preset.kubernetes_version.clone(),
            "image" => {
                spec.node_image = preset.node_image.clone();
                // A custom policy has no preset patterns: the form the generated images take.
                let image = spec.node_image.get_or_insert_with(Default::default);
                image.date_pattern = Some(r"(?:^|-)(?P<year>\d{4})(?P<month>\d{2})\.(?P<day>\d{2})\.\d+$".into());
            }
            "stopped" => spec.stopped_nodes = preset.stopped_nodes.clone(),
            _ => {}
        }
    }
    let policy = if only.is_empty() { policy } else { Policy::resolve(&spec).unwrap() };
    // DUMP=file writes the evaluation (to compare the output before and after a change).
    if let Ok(path) = std::env::var("DUMP") {
        std::fs::write(path, format!("{:#?}", policy::evaluate_resolved(&policy, &snapshot, now))).unwrap();
    }
    let mut best = std::time::Duration::MAX;
    for _ in 0..runs {
        let t = std::time::Instant::now();
        std::hint::black_box(policy::evaluate_resolved(&policy, &snapshot, now));
        best = best.min(t.elapsed());
    }
    let per = best / n as u32;
    println!("{n} nodes, {only:?}: {per:?} per node (best of {runs})");
}
