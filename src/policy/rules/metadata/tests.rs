//! The system-metadata rule.

use super::*;
use crate::crd::v1alpha1::{Platform, SystemLabelSpec, SystemMetadataSpec};
use crate::policy::testing::*;
use crate::policy::Policy;
use crate::snapshot::NodeInfo;
use proptest::prelude::*;

/// An AKS node of `pool` with every label the preset requires.
fn aks(name: &str, pool: &str) -> N {
    let mut n = node(name).pool(pool).image("AKSUbuntu-2204gen2containerd-202611.10.0");
    for (k, v) in [
        ("kubernetes.azure.com/cluster", "MC_rg_aks_westeurope"),
        ("kubernetes.azure.com/mode", "user"),
        ("kubernetes.azure.com/role", "agent"),
    ] {
        n.0.labels.insert(k.into(), v.into());
    }
    n
}

fn without(mut n: N, key: &str) -> N {
    n.0.labels.retain(|k| k != key);
    n
}

fn with(mut n: N, key: &str, value: &str) -> N {
    n.0.labels.insert(key.into(), value.into());
    n
}

const RULE: RuleId = SYSTEM_METADATA_CHANGED;

#[test]
fn a_complete_aks_node_passes_and_a_missing_label_is_a_finding_grouped_per_pool() {
    let s = spec(Platform::Aks);
    let ok = cluster("v1.35.1", vec![aks("a", "user"), aks("b", "user")]);
    assert!(evaluate(&s, &ok, at("2026-11-25")).findings.iter().all(|f| f.rule != RULE));

    let key = "kubernetes.azure.com/cluster";
    let c = cluster(
        "v1.35.1",
        vec![
            without(aks("a", "user"), key),
            without(aks("b", "user"), key),
            aks("c", "user"),
            without(aks("d", "sys"), key),
        ],
    );
    let e = evaluate(&s, &c, at("2026-11-25"));
    assert_eq!(severity_of(&e, RULE, "NodePool/user"), Some(W));
    assert_eq!(severity_of(&e, RULE, "Node/d"), Some(W), "one node of its pool: about the node");
    let f = e.findings.iter().find(|f| f.subject.to_string() == "NodePool/user").unwrap();
    assert!(
        f.message.starts_with("2 nodes in pool 'user' (a, b) lack the label kubernetes.azure.com/cluster"),
        "{}",
        f.message
    );
    assert_eq!(e.verdict, crate::crd::v1alpha1::Verdict::AtRisk);
}

#[test]
fn nodes_that_disagree_with_their_pool_on_a_uniform_label_are_found() {
    let key = "kubernetes.azure.com/mode";
    let c = cluster(
        "v1.35.1",
        vec![aks("a", "user"), aks("b", "user"), with(aks("c", "user"), key, "system"), aks("d", "sys")],
    );
    let e = evaluate(&spec(Platform::Aks), &c, at("2026-11-25"));
    let f = e.findings.iter().find(|f| f.rule == RULE).expect("a finding");
    assert_eq!(f.subject.to_string(), "Node/c");
    assert!(
        f.message.contains("carries kubernetes.azure.com/mode=system while 2 other nodes of the pool carry user"),
        "{}",
        f.message
    );
    // The image version differs between nodes during an upgrade: not a pool-uniform label.
    let c =
        cluster("v1.35.1", vec![aks("a", "user"), aks("b", "user").image("AKSUbuntu-2204gen2containerd-202611.18.0")]);
    assert!(evaluate(&spec(Platform::Aks), &c, at("2026-11-25")).findings.iter().all(|f| f.rule != RULE));
}

#[test]
fn severity_and_labels_are_overridable_and_the_rule_can_be_turned_off() {
    let c = cluster("v1.35.1", vec![without(aks("a", "user"), "kubernetes.azure.com/role")]);
    let mut s = spec(Platform::Aks);
    s.system_metadata = Some(SystemMetadataSpec { severity: Some(U), ..Default::default() });
    assert_eq!(severity_of(&evaluate(&s, &c, at("2026-11-25")), RULE, "Node/a"), Some(U));

    s.system_metadata = Some(SystemMetadataSpec {
        labels: vec![SystemLabelSpec { key: "example.com/team".into(), uniform_in_pool: None }],
        ..Default::default()
    });
    let e = evaluate(&s, &c, at("2026-11-25"));
    let f = e.findings.iter().find(|f| f.rule == RULE).expect("the policy's list replaces the preset's");
    assert!(f.message.contains("example.com/team"), "{}", f.message);

    s.system_metadata = Some(SystemMetadataSpec { enabled: Some(false), ..Default::default() });
    assert!(evaluate(&s, &c, at("2026-11-25")).findings.iter().all(|f| f.rule != RULE));
    // Platforms without reserved labels in their preset do not evaluate it.
    assert!(evaluate(&spec(Platform::Eks), &c, at("2026-11-25")).findings.iter().all(|f| f.rule != RULE));
}

#[test]
fn aks_arc_requires_its_node_pool_label() {
    let mut n = node("moc-1");
    n.0.labels.insert("msft.microsoft/nodepool-name".into(), "edge-abc-linux".into());
    let e = evaluate(&spec(Platform::AksArc), &cluster("v1.32.6", vec![n, node("moc-2")]), at("2026-11-25"));
    assert_eq!(severity_of(&e, RULE, "Node/moc-2"), Some(W));
    assert!(e.findings.iter().all(|f| !(f.rule == RULE && f.subject.to_string() == "Node/moc-1")));
}

#[test]
fn bad_label_lists_name_the_field() {
    let mut s = spec(Platform::Custom);
    let label = |key: &str| SystemLabelSpec { key: key.into(), uniform_in_pool: None };
    s.system_metadata = Some(SystemMetadataSpec::default());
    let err = Policy::resolve(&s).unwrap_err();
    assert_eq!(err[0].to_string(), "spec.systemMetadata.labels: name at least one label (or set enabled: false)");
    s.system_metadata = Some(SystemMetadataSpec {
        labels: vec![label("a.example/x"), label("a.example/x"), label("Bad_Prefix/x"), label("x/-y"), label("")],
        ..Default::default()
    });
    let err: Vec<String> = Policy::resolve(&s).unwrap_err().iter().map(ToString::to_string).collect();
    assert_eq!(err[0], "spec.systemMetadata.labels[1].key: 'a.example/x' is listed twice");
    assert!(
        err[1].starts_with("spec.systemMetadata.labels[2].key: 'Bad_Prefix/x' is not a label key: the prefix"),
        "{err:?}"
    );
    assert!(err[2].starts_with("spec.systemMetadata.labels[3].key: 'x/-y' is not a label key: the name"), "{err:?}");
    assert!(err[3].starts_with("spec.systemMetadata.labels[4].key"), "{err:?}");
}

#[test]
fn sixty_four_labels_are_checked_and_sixty_five_are_refused() {
    let labels = |n: usize| (0..n).map(|i| SystemLabelSpec { key: format!("example.com/l{i}"), uniform_in_pool: None });
    let mut s = spec(Platform::Custom);
    s.system_metadata = Some(SystemMetadataSpec { labels: labels(64).collect(), ..Default::default() });
    let mut n = node("a");
    for l in labels(63) {
        n.0.labels.insert(l.key.into(), "x".into());
    }
    let e = evaluate(&s, &cluster("v1.35.1", vec![n]), at("2026-11-25"));
    let f = e.findings.iter().find(|f| f.rule == RULE).expect("the 64th label is missing");
    assert!(f.message.starts_with("Node a lacks the label example.com/l63,"), "{}", f.message);
    s.system_metadata = Some(SystemMetadataSpec { labels: labels(65).collect(), ..Default::default() });
    let err = Policy::resolve(&s).unwrap_err();
    assert_eq!(err[0].to_string(), "spec.systemMetadata.labels: 65 entries, more than the 64 the CRD allows");
}

#[test]
fn the_policy_declares_every_label_key_it_reads() {
    let mut s = spec(Platform::Aks);
    s.node_selector = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
        match_labels: Some([("tier".to_string(), "prod".to_string())].into()),
        match_expressions: None,
    });
    let keys = Policy::resolve(&s).unwrap().node_keys();
    for k in [
        "tier",
        "kubernetes.azure.com/agentpool",
        "kubernetes.azure.com/cluster",
        "kubernetes.azure.com/mode",
        "kubernetes.azure.com/node-image-version",
        "msft.microsoft/nodepool-name",
        "eks.amazonaws.com/nodegroup",
    ] {
        assert!(keys.labels.keeps(k), "{k} missing from {keys:?}");
    }
    // Evaluating nodes stripped of every other label gives the same result.
    let mut full = aks("a", "user");
    full.0.labels.insert("example.com/noise".into(), "1".into());
    full.0.labels.insert("tier".into(), "prod".into());
    full = without(full, "kubernetes.azure.com/role");
    let mut stripped = full.clone();
    stripped.0.labels.retain(|k| keys.labels.keeps(k));
    let now = at("2026-11-25");
    let a = evaluate(&s, &cluster("v1.35.1", vec![full.clone()]), now);
    let b = evaluate(&s, &cluster("v1.35.1", vec![stripped]), now);
    assert_eq!(a.findings, b.findings);
}

/// The evaluation as it was before it read each node once (a map of pools, of values, of
/// names per uniform label): the oracle of the property test below.
fn reference<'a>(rules: &MetadataRules, input: &Input<'a>, out: &mut Output<'a>) {
    use std::collections::{BTreeMap, HashMap};
    let nodes: Vec<&InScope<'a>> =
        input.nodes.iter().filter(|n| !n.problems.iter().any(|p| p.field == NodeField::Labels)).collect();
    let mut shared: HashMap<u64, (Cause, Arc<MetadataFact>)> = HashMap::new();
    for node in &nodes {
        let missing = rules
            .labels
            .iter()
            .enumerate()
            .filter(|(_, (k, _))| !node.node.labels.contains_key(k))
            .fold(0u64, |set, (i, _)| set | 1u64.checked_shl(i as u32).unwrap_or(0));
        if missing == 0 {
            continue;
        }
        let (cause, fact) = shared.entry(missing).or_insert_with(|| {
            let keys: Vec<String> = (0..rules.labels.len().min(64))
                .filter(|i| missing & (1 << i) != 0)
                .map(|i| rules.labels[i].0.clone())
                .collect();
            (Cause::Value(format!("missing {}", keys.join(" ")).into()), Arc::new(MetadataFact::Missing(keys)))
        });
        let signal = Signal::node(SYSTEM_METADATA_CHANGED, &node.node.name, node.pool, cause.clone(), fact.clone());
        out.signals.push(signal.base(rules.severity));
    }
    for (key, _) in rules.labels.iter().filter(|(_, uniform)| *uniform) {
        let mut pools: BTreeMap<&'a Arc<str>, BTreeMap<&'a str, Vec<&'a Arc<str>>>> = BTreeMap::new();
        for node in &nodes {
            if let Some(value) = node.node.labels.get(key) {
                pools.entry(node.pool).or_default().entry(value).or_default().push(&node.node.name);
            }
        }
        for (pool, values) in pools.into_iter().filter(|(_, v)| v.len() > 1) {
            let Some((&usual, majority)) =
                values.iter().max_by(|a, b| a.1.len().cmp(&b.1.len()).then_with(|| b.0.cmp(a.0)))
            else {
                continue;
            };
            let majority = majority.len();
            for (&value, names) in values.iter().filter(|(v, _)| **v != usual) {
                let fact = Arc::new(MetadataFact::Differs {
                    key: key.clone(),
                    value: value.to_string(),
                    usual: usual.to_string(),
                    majority,
                });
                for name in names {
                    let cause = Cause::Value(format!("{key}={value}").into());
                    let signal = Signal::node(SYSTEM_METADATA_CHANGED, name, pool, cause, fact.clone());
                    out.signals.push(signal.base(rules.severity));
                }
            }
        }
    }
}

/// Nodes of a few pools, each label of the rule absent or one of a few values, the strings
/// shared or not (as with and without an interner), some nodes with unreadable labels.
fn arb_nodes() -> impl Strategy<Value = Vec<NodeInfo>> {
    let node = (0..4usize, proptest::collection::vec(0..4usize, 3), any::<bool>(), 0..12usize);
    proptest::collection::vec(node, 0..40).prop_map(|nodes| {
        let mut interner = crate::snapshot::Interner::default();
        nodes
            .into_iter()
            .enumerate()
            .map(|(i, (pool, values, interned, broken))| {
                let mut n = aks(&format!("n{i}"), &format!("p{pool}")).0;
                for (key, v) in ["kubernetes.azure.com/cluster", "kubernetes.azure.com/mode", "example.com/x"]
                    .into_iter()
                    .zip(values)
                {
                    match v {
                        0 => n.labels.retain(|k| k != key),
                        v => n.labels.insert(key.into(), format!("v{v}").into()),
                    }
                }
                if broken == 0 {
                    n.problems.push(crate::snapshot::NodeProblem { field: NodeField::Labels, reason: "bad".into() });
                }
                if interned {
                    n.labels = n.labels.interned(&mut interner);
                }
                n
            })
            .collect()
    })
}

proptest::proptest! {
    /// Each node read once gives the signals the maps of pools and values gave, in order.
    #[test]
    fn one_pass_gives_the_signals_of_the_reference(nodes in arb_nodes()) {
        let label = |key: &str, uniform| SystemLabelSpec { key: key.into(), uniform_in_pool: Some(uniform) };
        let rules = MetadataRules::try_from(SystemMetadataSpec {
            labels: vec![
                label("kubernetes.azure.com/cluster", true),
                label("kubernetes.azure.com/mode", true),
                label("kubernetes.azure.com/role", false),
                label("example.com/x", true),
            ],
            ..Default::default()
        })
        .unwrap();
        let snapshot = crate::snapshot::ClusterSnapshot::default();
        // With the policy's columns and without any (each node's labels read).
        for keys in [rules.labels.iter().map(|(k, _)| k.clone()).collect(), Vec::new()] {
            let n = crate::policy::rules::Nodes::new(nodes.iter(), keys);
            let input = Input { snapshot: &snapshot, nodes: &n.nodes, pools: &n.pools, columns: &n.columns, now: at("2026-11-25") };
            let (mut fast, mut slow) = (Output::default(), Output::default());
            rules.evaluate(&input, &mut fast);
            reference(&rules, &input, &mut slow);
            proptest::prop_assert_eq!(format!("{:?}", fast.signals), format!("{:?}", slow.signals));
        }
    }
}
