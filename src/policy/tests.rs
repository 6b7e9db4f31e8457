//! The engine's behaviour per rule at the exact threshold instants (one second before, at,
//! one second after), and properties that hold for any cluster and any instant.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;

use super::*;
use crate::crd::v1alpha1::*;
use crate::snapshot::{ClusterSnapshot, LeaseInfo, NodeInfo, Readiness};
use crate::time::parse_rfc3339;

fn at(s: &str) -> DateTime<Utc> {
    parse_rfc3339(s).unwrap_or_else(|| parse_rfc3339(&format!("{s}T00:00:00Z")).unwrap())
}

const SEC: TimeDelta = TimeDelta::seconds(1);

#[derive(Clone)]
struct N(NodeInfo);

fn node(name: &str) -> N {
    N(NodeInfo {
        name: name.into(),
        created: Some(at("2026-01-01")),
        kubelet_version: Some("v1.35.3".into()),
        readiness: Readiness::Ready,
        ..Default::default()
    })
}

impl N {
    fn pool(mut self, p: &str) -> Self {
        self.0.labels.insert("kubernetes.azure.com/agentpool".into(), p.into());
        self
    }
    fn image(mut self, v: &str) -> Self {
        self.0.labels.insert("kubernetes.azure.com/node-image-version".into(), v.into());
        self
    }
    fn kubelet(mut self, v: &str) -> Self {
        self.0.kubelet_version = Some(v.into());
        self
    }
    fn created(mut self, t: &str) -> Self {
        self.0.created = Some(at(t));
        self
    }
    fn not_ready(mut self, since: &str) -> Self {
        self.0.readiness = Readiness::NotReady { since: Some(at(since)) };
        self
    }
}

fn cluster(version: &str, nodes: Vec<N>) -> ClusterSnapshot {
    ClusterSnapshot {
        server_version: Some(version.into()),
        nodes: nodes.into_iter().map(|n| Arc::new(n.0)).collect(),
        ..Default::default()
    }
}

fn spec(platform: Platform) -> SupportPolicySpec {
    SupportPolicySpec { platform, ..Default::default() }
}

fn severity_of(e: &Evaluation, rule: RuleId, subject: &str) -> Option<Severity> {
    e.findings.iter().find(|f| f.rule == rule.as_str() && f.subject == subject).map(|f| f.severity)
}

/// Asserts the severity of one finding one second before, at and one second after `t`.
#[track_caller]
fn threshold(
    spec: &SupportPolicySpec,
    snap: &ClusterSnapshot,
    rule: RuleId,
    subject: &str,
    t: &str,
    before: Option<Severity>,
    after: Option<Severity>,
) {
    let t = at(t);
    let sev = |now| severity_of(&evaluate(spec, snap, now), rule, subject);
    assert_eq!(sev(t - SEC), before, "{rule} {subject} one second before {t}");
    assert_eq!(sev(t), after, "{rule} {subject} at {t}");
    assert_eq!(sev(t + SEC), after, "{rule} {subject} one second after {t}");
}

use Severity::{Info, Unsupported as U, Warning as W};

/// One threshold of the control plane's version: (case, platform, spec tweak, version, instant,
/// severity before, severity from the instant on).
type VersionCase = (
    &'static str,
    Platform,
    fn(&mut SupportPolicySpec),
    &'static str,
    &'static str,
    Option<Severity>,
    Option<Severity>,
);

#[test]
fn control_plane_version_thresholds() {
    fn preset(_: &mut SupportPolicySpec) {}
    fn lts(s: &mut SupportPolicySpec) {
        s.kubernetes_version = Some(KubernetesVersionSpec { long_term_support: Some(true), ..Default::default() });
    }
    let table: &[VersionCase] = &[
        (
            "AKS 1.31: Warning 60 days before its end of life",
            Platform::Aks,
            preset,
            "v1.31.4",
            "2025-09-02",
            None,
            Some(W),
        ),
        ("AKS 1.31: end of life", Platform::Aks, preset, "v1.31.4", "2025-11-01", Some(W), Some(U)),
        ("AKS 1.31 with LTS: end of long-term support", Platform::Aks, lts, "v1.31.4", "2026-11-30", Some(W), Some(U)),
        (
            "AKS 1.34: the planned 1.37 does not displace it",
            Platform::Aks,
            preset,
            "v1.34.2",
            "2026-11-30",
            Some(W),
            Some(U),
        ),
        (
            "Upstream 1.33: out of the 3 newest when 1.36 ships",
            Platform::Upstream,
            preset,
            "v1.33.1",
            "2026-04-22",
            Some(W),
            Some(U),
        ),
        (
            "AKS Arc 1.30: 365 days after its first release",
            Platform::AksArc,
            preset,
            "v1.30.4",
            "2026-03-01",
            Some(W),
            Some(U),
        ),
        (
            "EKS 1.33: end of standard support",
            Platform::Eks,
            preset,
            "v1.33.4-eks-1a2b3c",
            "2026-07-29",
            Some(W),
            Some(U),
        ),
        ("EKS 1.33 with extended support", Platform::Eks, lts, "v1.33.4-eks-1a2b3c", "2027-07-29", Some(W), Some(U)),
        (
            "GKE 1.33: end of standard support",
            Platform::Gke,
            preset,
            "v1.33.2-gke.1049000",
            "2026-08-03",
            Some(W),
            Some(U),
        ),
    ];
    for (case, platform, tweak, version, t, before, after) in table {
        let mut s = spec(*platform);
        tweak(&mut s);
        let c = cluster(version, vec![]);
        let t = at(t);
        let sev = |now| {
            severity_of(&evaluate(&s, &c, now), RuleId::KubernetesVersionEndOfSupport, "ControlPlane/kube-apiserver")
        };
        assert_eq!(sev(t - SEC), *before, "{case}: one second before {t}");
        assert_eq!(sev(t), *after, "{case}: at {t}");
        assert_eq!(sev(t + SEC), *after, "{case}: one second after {t}");
    }
}

#[test]
fn version_findings_say_why_and_what_to_do() {
    let e = evaluate(&spec(Platform::Aks), &cluster("v1.31.4", vec![]), at("2025-10-01"));
    assert_eq!(e.findings[0].deadline, Some(at("2025-11-01")));
    assert_eq!(e.control_plane.as_ref().unwrap().end_of_support, Some("2025-11-01".parse().unwrap()));
    assert_eq!(e.verdict, Verdict::AtRisk);
    let msg = &evaluate(&spec(Platform::Upstream), &cluster("v1.33.1", vec![]), at("2026-05-01")).findings[0].message;
    assert!(msg.contains("no longer among the 3 newest minors"), "{msg}");
    let msg = &evaluate(&spec(Platform::AksArc), &cluster("v1.30.4", vec![]), at("2026-03-02")).findings[0].message;
    assert!(msg.contains("incremental upgrade path is gone"), "{msg}");
}

#[test]
fn minors_outside_the_calendar() {
    let s = spec(Platform::Aks);
    let newer = evaluate(&s, &cluster("v1.40.0", vec![]), at("2026-11-25"));
    assert_eq!(severity_of(&newer, RuleId::KubernetesVersionUnknown, "ControlPlane/kube-apiserver"), Some(Info));
    assert_eq!(newer.verdict, Verdict::Supported);
    let older = evaluate(&s, &cluster("v1.20.0", vec![]), at("2026-11-25"));
    assert_eq!(severity_of(&older, RuleId::KubernetesVersionEndOfSupport, "ControlPlane/kube-apiserver"), Some(U));
    let garbage = evaluate(&s, &cluster("banana", vec![]), at("2026-11-25"));
    assert_eq!(severity_of(&garbage, RuleId::KubernetesVersionUnknown, "ControlPlane/kube-apiserver"), Some(Info));
}

#[test]
fn kubelets_follow_the_calendar_and_group_by_pool() {
    let s = spec(Platform::Aks);
    let c = cluster(
        "v1.35.1",
        vec![
            node("a").pool("p").kubelet("v1.34.2"),
            node("b").pool("p").kubelet("v1.34.1"),
            node("c").pool("q").kubelet("v1.34.2"),
        ],
    );
    threshold(&s, &c, RuleId::KubeletVersionEndOfSupport, "NodePool/p", "2026-11-30", Some(W), Some(U));
    threshold(&s, &c, RuleId::KubeletVersionEndOfSupport, "Node/c", "2026-11-30", Some(W), Some(U));
    let e = evaluate(&s, &c, at("2026-12-01"));
    assert_eq!(e.nodes.unsupported_kubelet, 3);
    assert!(e
        .findings
        .iter()
        .any(|f| f.subject == "NodePool/p" && f.message.starts_with("2 nodes in pool 'p' (a, b)")));
}

#[test]
fn kubelet_skew() {
    let s = spec(Platform::Aks);
    let now = at("2026-07-01");
    for (kubelet, want) in [("v1.36.1", None), ("v1.33.1", None), ("v1.32.9", Some(U)), ("v1.37.0", Some(U))] {
        let e = evaluate(&s, &cluster("v1.36.2", vec![node("n").kubelet(kubelet)]), now);
        assert_eq!(severity_of(&e, RuleId::KubeletVersionSkew, "Node/n"), want, "{kubelet}");
    }
    let mut s = spec(Platform::Aks);
    s.kubernetes_version = Some(KubernetesVersionSpec { max_kubelet_skew_minors: Some(2), ..Default::default() });
    let e = evaluate(&s, &cluster("v1.36.2", vec![node("n").kubelet("v1.33.1")]), now);
    assert_eq!(severity_of(&e, RuleId::KubeletVersionSkew, "Node/n"), Some(U));
}

#[test]
fn node_image_age_from_the_aks_label() {
    // Image of 2026-09-20: Warning at +30 days (2026-10-20), Unsupported at +90 (2026-12-19).
    let s = spec(Platform::Aks);
    let c = cluster("v1.35.1", vec![node("n").image("AKSUbuntu-2204gen2containerd-202609.20.0")]);
    threshold(&s, &c, RuleId::NodeImageOutdated, "Node/n", "2026-10-20", None, Some(W));
    threshold(&s, &c, RuleId::NodeImageOutdated, "Node/n", "2026-12-19", Some(W), Some(U));
    let windows = cluster("v1.35.1", vec![node("w").image("AKSWindows-2022-containerd-20348.4052.260815")]);
    threshold(&s, &windows, RuleId::NodeImageOutdated, "Node/w", "2026-11-13", Some(W), Some(U));
    let patched = cluster("v1.35.1", vec![node("p").image("AKSUbuntu-2204gen2containerd-202410.27.0-2026.10.01")]);
    threshold(&s, &patched, RuleId::NodeImageOutdated, "Node/p", "2026-10-31", None, Some(W));
}

#[test]
fn node_image_unknown_when_unlabelled_or_unparseable() {
    let s = spec(Platform::Aks);
    let e =
        evaluate(&s, &cluster("v1.35.1", vec![node("a"), node("b").image("AKSWindows-23H2-gen2")]), at("2026-11-25"));
    assert_eq!(severity_of(&e, RuleId::NodeImageUnknown, "Node/a"), Some(Info));
    let b = e.findings.iter().find(|f| f.subject == "Node/b").unwrap();
    assert!(b.message.contains("no date pattern matches its image version 'AKSWindows-23H2-gen2'"), "{}", b.message);
}

#[test]
fn node_creation_bounds_the_image_age() {
    let mut s = spec(Platform::Eks);
    s.node_image = Some(NodeImageSpec { unsupported_after_days: Some(180), ..Default::default() });
    let c = cluster("v1.34.1-eks-2d5f260", vec![node("n").created("2026-06-03T14:00:00Z")]);
    threshold(&s, &c, RuleId::NodeImageOutdated, "Node/n", "2026-09-01T14:00:00Z", None, Some(W));
    threshold(&s, &c, RuleId::NodeImageOutdated, "Node/n", "2026-11-30T14:00:00Z", Some(W), Some(U));
}

#[test]
fn node_not_ready() {
    let mut s = spec(Platform::Custom);
    s.stopped_nodes =
        Some(StoppedNodesSpec { warn_after_days: Some(7), unsupported_after_days: Some(14), ..Default::default() });
    let c = cluster("v1.35.1", vec![node("down").not_ready("2026-11-01T10:00:00Z"), node("up")]);
    threshold(&s, &c, RuleId::NodeNotReady, "Node/down", "2026-11-01T10:00:00Z", None, Some(Info));
    threshold(&s, &c, RuleId::NodeNotReady, "Node/down", "2026-11-08T10:00:00Z", Some(Info), Some(W));
    threshold(&s, &c, RuleId::NodeNotReady, "Node/down", "2026-11-15T10:00:00Z", Some(W), Some(U));
    let e = evaluate(&s, &c, at("2026-11-20"));
    assert_eq!((e.nodes.ready, e.nodes.not_ready), (1, 1));
    assert!(severity_of(&e, RuleId::ClusterStopped, "Cluster/cluster").is_none(), "one node is Ready");
}

#[test]
fn cluster_stopped_counts_from_the_last_node_to_stop() {
    // AKS Arc: Warning from the instant, Unsupported at +30 days, not upgradable at +90.
    let s = spec(Platform::AksArc);
    let c = cluster(
        "v1.32.6",
        vec![node("a").not_ready("2026-10-01T00:00:00Z"), node("b").not_ready("2026-10-16T06:00:00Z")],
    );
    threshold(&s, &c, RuleId::ClusterStopped, "Cluster/cluster", "2026-10-16T06:00:00Z", None, Some(W));
    threshold(&s, &c, RuleId::ClusterStopped, "Cluster/cluster", "2026-11-15T06:00:00Z", Some(W), Some(U));
    threshold(&s, &c, RuleId::ClusterNotUpgradable, "Cluster/cluster", "2027-01-14T06:00:00Z", Some(W), Some(U));
    let e = evaluate(&s, &c, at("2026-11-25"));
    assert_eq!(e.samples.cluster_stopped_since, Some(at("2026-10-16T06:00:00Z")));
    let empty = evaluate(&s, &cluster("v1.32.6", vec![]), at("2026-11-25"));
    assert!(
        severity_of(&empty, RuleId::ClusterStopped, "Cluster/cluster").is_none(),
        "no node in scope is not a stopped cluster"
    );
}

#[test]
fn node_selector_limits_the_scope() {
    let mut s = spec(Platform::AksArc);
    s.node_selector = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
        match_labels: Some([("kubernetes.azure.com/agentpool".to_string(), "edge".to_string())].into()),
        match_expressions: None,
    });
    let c = cluster("v1.32.6", vec![node("a").pool("edge").not_ready("2026-10-01"), node("b").pool("core")]);
    let e = evaluate(&s, &c, at("2026-11-25"));
    assert_eq!(e.nodes.total, 1);
    assert_eq!(severity_of(&e, RuleId::ClusterStopped, "Cluster/cluster"), Some(U), "the Ready node is out of scope");
}

#[test]
fn heartbeat_lease_age() {
    let mut s = spec(Platform::AksArc);
    s.heartbeats = vec![HeartbeatSpec {
        name: "arc".into(),
        lease: LeaseReference { namespace: "azure-arc".into(), name: "hb".into() },
        warn_after_days: None,
        unsupported_after_days: None,
    }];
    let mut c = cluster("v1.32.6", vec![]);
    let missing = evaluate(&s, &c, at("2026-11-25"));
    assert_eq!(severity_of(&missing, RuleId::HeartbeatStale, "Heartbeat/arc"), Some(W));
    c.leases.insert(
        ("azure-arc".into(), "hb".into()),
        LeaseInfo {
            namespace: "azure-arc".into(),
            name: "hb".into(),
            renewed: Some(at("2026-10-16T01:02:44Z")),
            problem: None,
        },
    );
    threshold(&s, &c, RuleId::HeartbeatStale, "Heartbeat/arc", "2026-11-05T01:02:44Z", None, Some(W));
    threshold(&s, &c, RuleId::HeartbeatStale, "Heartbeat/arc", "2026-11-15T01:02:44Z", Some(W), Some(U));
}

#[test]
fn attestation_counts_down_from_since() {
    let mut s = spec(Platform::AksArc);
    s.attestations = vec![AttestationSpec {
        name: "subscription-suspended".into(),
        since: at("2026-11-01"),
        unsupported_after_days: None,
        description: Some("Subscription suspended".into()),
    }];
    let c = cluster("v1.34.0", vec![]);
    threshold(&s, &c, RuleId::AttestationExpired, "Attestation/subscription-suspended", "2026-11-01", None, Some(W));
    threshold(&s, &c, RuleId::AttestationExpired, "Attestation/subscription-suspended", "2026-12-31", Some(W), Some(U));
}

#[test]
fn alpha_apis_are_unsupported_where_forbidden() {
    let mut c = cluster("v1.35.1", vec![]);
    c.api_versions =
        Some(vec!["v1".into(), "apps/v1".into(), "resource.k8s.io/v1alpha3".into(), "example.com/v1alpha1".into()]);
    let now = at("2026-11-25");
    let aks = evaluate(&spec(Platform::Aks), &c, now);
    assert_eq!(severity_of(&aks, RuleId::AlphaApiServed, "APIVersion/resource.k8s.io/v1alpha3"), Some(U));
    assert_eq!(aks.findings.iter().filter(|f| f.rule == "AlphaApiServed").count(), 1);
    let eks = evaluate(&spec(Platform::Eks), &c, now);
    assert!(eks.findings.iter().all(|f| f.rule != "AlphaApiServed"));
}

#[test]
fn an_invalid_policy_is_unknown_and_names_the_field() {
    let mut s = spec(Platform::Aks);
    s.node_image = Some(NodeImageSpec { date_pattern: Some("(".into()), ..Default::default() });
    let e = evaluate(&s, &cluster("v1.35.1", vec![node("n")]), at("2026-11-25"));
    assert_eq!(e.verdict, Verdict::Unknown);
    assert_eq!(e.findings[0].rule, "PolicyInvalid");
    assert!(e.findings[0].message.contains("spec.nodeImage.datePattern"), "{}", e.findings[0].message);
}

#[test]
fn garbage_in_one_node_is_a_finding_about_it_and_the_rest_is_evaluated() {
    let v = serde_json::json!({
        "metadata": {"name": "bad", "labels": {"kubernetes.azure.com/agentpool": 7}},
        "status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "noon"}], "nodeInfo": {"kubeletVersion": "v1.x"}}
    });
    let bad = NodeInfo::from_value(&v).unwrap();
    let mut c = cluster("v1.35.1", vec![node("good").image("AKSUbuntu-2204gen2containerd-202601.01.0")]);
    c.nodes.push(Arc::new(bad));
    let e = evaluate(&spec(Platform::Aks), &c, at("2026-11-25"));
    let about_bad: Vec<_> = e.findings.iter().filter(|f| f.subject == "Node/bad").map(|f| f.rule.as_str()).collect();
    assert!(about_bad.contains(&"NodeImageUnknown"), "{about_bad:?}");
    assert!(about_bad.contains(&"KubernetesVersionUnknown"), "{about_bad:?}");
    assert_eq!(severity_of(&e, RuleId::NodeImageOutdated, "Node/good"), Some(U));
}

#[test]
fn findings_are_ordered_worst_first_then_soonest_deadline() {
    let s = spec(Platform::Aks);
    let c = cluster(
        "v1.34.2",
        vec![
            node("late").pool("a").image("AKSUbuntu-2204gen2containerd-202610.10.0").kubelet("v1.35.0"),
            node("soon").pool("b").image("AKSUbuntu-2204gen2containerd-202609.20.0").kubelet("v1.34.0"),
            node("old").pool("c").image("AKSUbuntu-2204gen2containerd-202601.20.0").kubelet("v1.34.0"),
        ],
    );
    let e = evaluate(&s, &c, at("2026-11-25"));
    let order: Vec<(Severity, Option<DateTime<Utc>>)> = e.findings.iter().map(|f| (f.severity, f.deadline)).collect();
    let mut sorted = order.clone();
    sorted.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then_with(|| a.1.unwrap_or(DateTime::<Utc>::MAX_UTC).cmp(&b.1.unwrap_or(DateTime::<Utc>::MAX_UTC)))
    });
    assert_eq!(order, sorted);
    assert_eq!(e.findings[0].severity, U);
}

#[test]
fn status_stays_bounded_with_five_thousand_nodes() {
    let nodes: Vec<N> = (0..5000)
        .map(|i| {
            node(&format!("n{i}"))
                .pool(&format!("p{}", i % 150))
                .image(&format!("AKSUbuntu-2204gen2containerd-2026{:02}.{:02}.0", 1 + i % 12, 1 + i % 28))
                .kubelet(["v1.33.1", "v1.34.2", "v1.35.3"][i % 3])
        })
        .collect();
    let e = evaluate(&spec(Platform::Aks), &cluster("v1.35.1", nodes), at("2026-11-25"));
    let status = report::report(&e, None, Some(1), at("2026-11-25"));
    let bytes = serde_json::to_vec(&status).unwrap().len();
    assert!(status.findings.len() <= report::MAX_FINDINGS);
    assert_eq!(status.pools.len(), evaluate::MAX_POOLS);
    assert_eq!(status.pools_omitted, 50);
    assert!(bytes < 256 * 1024, "status is {bytes} bytes");
}

/// What the contract says must stay equal between deadlines: the verdict and the set of
/// (rule, severity, subject).
fn key(e: &Evaluation) -> (Verdict, BTreeSet<(String, Severity, String)>) {
    (e.verdict, e.findings.iter().map(|f| (f.rule.clone(), f.severity, f.subject.clone())).collect())
}

prop_compose! {
    fn instant()(secs in 1_640_995_200i64..1_830_297_600i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }
}

prop_compose! {
    fn arb_node(i: usize)(
        pool in prop::sample::select(vec!["system", "user", "gpu"]),
        kubelet in prop::sample::select(vec!["v1.29.4", "v1.31.2", "v1.33.5", "v1.34.2", "v1.35.3", "v1.36.1", "garbage", "v1.40.0"]),
        image_day in 0i64..1600,
        image_form in 0u8..4,
        created in instant(),
        ready in any::<bool>(),
        since in instant(),
    ) -> NodeInfo {
        let d = (at("2022-06-01") + TimeDelta::days(image_day)).date_naive();
        let image = match image_form {
            0 => format!("AKSUbuntu-2204gen2containerd-{}.0", d.format("%Y%m.%d")),
            1 => format!("AKSWindows-2022-containerd-20348.1.{}", d.format("%y%m%d")),
            2 => format!("AKSUbuntu-1804-{}", d.format("%Y.%m.%d")),
            _ => "no-date".to_string(),
        };
        let mut n = node(&format!("n{i}")).pool(pool).kubelet(kubelet).image(&image).0;
        n.created = Some(created);
        if !ready {
            n.readiness = Readiness::NotReady { since: Some(since) };
        }
        n
    }
}

fn arb_cluster() -> impl Strategy<Value = (SupportPolicySpec, ClusterSnapshot)> {
    let platform =
        prop::sample::select(vec![Platform::Aks, Platform::AksArc, Platform::Eks, Platform::Gke, Platform::Upstream]);
    let nodes = (0usize..8).prop_flat_map(|n| (0..n).map(arb_node).collect::<Vec<_>>());
    let version =
        prop::sample::select(vec!["v1.28.1", "v1.31.4", "v1.33.2", "v1.34.2", "v1.35.1", "v1.36.0", "v1.41.0"]);
    (platform, nodes, version, instant(), instant(), any::<bool>()).prop_map(
        |(platform, nodes, version, renewed, since, with_lease)| {
            let mut spec = spec(platform);
            spec.heartbeats = vec![HeartbeatSpec {
                name: "hb".into(),
                lease: LeaseReference { namespace: "ns".into(), name: "hb".into() },
                warn_after_days: Some(20),
                unsupported_after_days: Some(30),
            }];
            spec.attestations = vec![AttestationSpec {
                name: "att".into(),
                since,
                unsupported_after_days: Some(60),
                description: None,
            }];
            let mut snap = ClusterSnapshot {
                server_version: Some(version.into()),
                nodes: nodes.into_iter().map(Arc::new).collect(),
                ..Default::default()
            };
            if with_lease {
                snap.leases.insert(
                    ("ns".into(), "hb".into()),
                    LeaseInfo { namespace: "ns".into(), name: "hb".into(), renewed: Some(renewed), problem: None },
                );
            }
            (spec, snap)
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// For an unchanged cluster the verdict never improves as time passes.
    #[test]
    fn verdict_never_improves_with_time((spec, snap) in arb_cluster(), a in instant(), b in instant()) {
        let (early, late) = if a <= b { (a, b) } else { (b, a) };
        let v1 = evaluate(&spec, &snap, early).verdict;
        let v2 = evaluate(&spec, &snap, late).verdict;
        prop_assert!(v2 >= v1, "{v1:?} at {early} became {v2:?} at {late}");
    }

    /// Nothing changes before nextDeadline; something changes at it.
    #[test]
    fn next_deadline_is_exactly_the_next_change((spec, snap) in arb_cluster(), now in instant()) {
        let e = evaluate(&spec, &snap, now);
        let k = key(&e);
        match &e.next_deadline {
            Some(t) => {
                prop_assert!(t.at > now);
                prop_assert_eq!(&key(&evaluate(&spec, &snap, t.at - SEC)), &k, "changed before {}", t.at);
                let then = evaluate(&spec, &snap, t.at);
                prop_assert_ne!(&key(&then), &k, "nothing changed at {}", t.at);
                prop_assert!(then.findings.iter().any(|f| f.rule == t.rule && f.subject == t.subject && f.severity == t.severity));
            }
            None => {
                // Far in the future the result is the same.
                let later = evaluate(&spec, &snap, now + TimeDelta::days(20 * 365));
                prop_assert_eq!(key(&later), k);
            }
        }
    }

    /// The status only changes at instants the operator re-evaluates at.
    #[test]
    fn status_is_constant_until_next_change((spec, snap) in arb_cluster(), now in instant()) {
        let e = evaluate(&spec, &snap, now);
        let status = report::report(&e, None, Some(1), now);
        let until = e.next_change.map(|t| t - SEC).unwrap_or(now + TimeDelta::days(3650));
        let later = report::report(&evaluate(&spec, &snap, until), Some(&status), Some(1), until);
        prop_assert_eq!(later, status);
    }

    /// The status reads back from JSON exactly as written, so a restarted operator compares
    /// equal against what the API server stores and writes nothing.
    #[test]
    fn status_round_trips_through_json((spec, snap) in arb_cluster(), now in instant()) {
        let status = report::report(&evaluate(&spec, &snap, now), None, Some(1), now);
        let back: SupportReport = serde_json::from_value(serde_json::to_value(&status).unwrap()).unwrap();
        prop_assert_eq!(back, status);
    }

    /// Upcoming transitions are ordered, within the horizon, and start with nextDeadline.
    #[test]
    fn upcoming_is_ordered_and_bounded((spec, snap) in arb_cluster(), now in instant()) {
        let e = evaluate(&spec, &snap, now);
        prop_assert!(e.upcoming.len() <= evaluate::MAX_UPCOMING);
        prop_assert!(e.upcoming.windows(2).all(|w| w[0].at <= w[1].at));
        prop_assert!(e.upcoming.iter().all(|t| t.at > now && t.at <= now + TimeDelta::days(180)));
        if let Some(first) = e.upcoming.first() {
            prop_assert_eq!(Some(first), e.next_deadline.as_ref());
        }
    }
}
