//! The version rules at their threshold instants.

use super::*;
use crate::crd::v1alpha1::{KubernetesVersionSpec, Platform, SupportPolicySpec, Verdict};
use crate::policy::testing::*;

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
        let sev =
            |now| severity_of(&evaluate(&s, &c, now), KUBERNETES_VERSION_END_OF_SUPPORT, "ControlPlane/kube-apiserver");
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
    // One node in scope (a cluster without any is a Warning of its own, NoNodesInScope).
    let newer = evaluate(&s, &cluster("v1.40.0", vec![node("n").kubelet("v1.40.0")]), at("2026-11-25"));
    assert_eq!(severity_of(&newer, KUBERNETES_VERSION_UNKNOWN, "ControlPlane/kube-apiserver"), Some(Info));
    // The calendar is stale for this cluster: that, not the version, makes it AtRisk.
    assert_eq!(severity_of(&newer, RuleId::new("CalendarStale"), "Calendar/1.40"), Some(W));
    assert_eq!(newer.verdict, Verdict::AtRisk);
    let older = evaluate(&s, &cluster("v1.20.0", vec![]), at("2026-11-25"));
    assert_eq!(severity_of(&older, KUBERNETES_VERSION_END_OF_SUPPORT, "ControlPlane/kube-apiserver"), Some(U));
    let garbage = evaluate(&s, &cluster("banana", vec![]), at("2026-11-25"));
    assert_eq!(severity_of(&garbage, KUBERNETES_VERSION_UNKNOWN, "ControlPlane/kube-apiserver"), Some(Info));
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
    threshold(&s, &c, KUBELET_VERSION_END_OF_SUPPORT, "NodePool/p", "2026-11-30", Some(W), Some(U));
    threshold(&s, &c, KUBELET_VERSION_END_OF_SUPPORT, "Node/c", "2026-11-30", Some(W), Some(U));
    let e = evaluate(&s, &c, at("2026-12-01"));
    assert_eq!(e.nodes.unsupported_kubelet, 3);
    assert!(e
        .findings
        .iter()
        .any(|f| f.subject.to_string() == "NodePool/p" && f.message.starts_with("2 nodes in pool 'p' (a, b)")));
}

#[test]
fn kubelet_skew() {
    let s = spec(Platform::Aks);
    let now = at("2026-07-01");
    for (kubelet, want) in [("v1.36.1", None), ("v1.33.1", None), ("v1.32.9", Some(U)), ("v1.37.0", Some(U))] {
        let e = evaluate(&s, &cluster("v1.36.2", vec![node("n").kubelet(kubelet)]), now);
        assert_eq!(severity_of(&e, KUBELET_VERSION_SKEW, "Node/n"), want, "{kubelet}");
    }
    let mut s = spec(Platform::Aks);
    s.kubernetes_version = Some(KubernetesVersionSpec { max_kubelet_skew_minors: Some(2), ..Default::default() });
    let e = evaluate(&s, &cluster("v1.36.2", vec![node("n").kubelet("v1.33.1")]), now);
    assert_eq!(severity_of(&e, KUBELET_VERSION_SKEW, "Node/n"), Some(U));
}
