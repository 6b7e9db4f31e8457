//! The plan on the examples' shapes and at its thresholds (`replay` has the properties on
//! random clusters).

use crate::crd::v1alpha1::{KubernetesVersionSpec, PlanAction, Platform, StoppedNodesSpec, SupportPolicySpec};
use crate::policy::outcome::{Due, Step};
use crate::policy::testing::*;
use crate::snapshot::ClusterSnapshot;

fn plan(s: &SupportPolicySpec, c: &ClusterSnapshot, now: &str) -> Vec<Step> {
    evaluate(s, c, at(now)).plan
}

/// `ACTION subject from→to by` per step, for compact assertions.
pub(super) fn shape(steps: &[Step]) -> Vec<String> {
    steps
        .iter()
        .map(|s| {
            let v = match (s.from, s.to) {
                (Some(f), Some(t)) => format!(" {f}→{t}"),
                _ => String::new(),
            };
            let by = s.by.instant().map(|t| t.to_rfc3339()).unwrap_or_else(|| "already".into());
            format!("{} {}{v} by {by}", s.action.as_str(), s.subject)
        })
        .collect()
}

fn image(day: &str) -> String {
    format!("AKSUbuntu-2204gen2containerd-{}.0", at(day).format("%Y%m.%d"))
}

#[test]
fn the_neglected_aks_cluster_upgrades_the_control_plane_then_every_pool() {
    // 1.34 ends 2026-11-30; the user pool runs 1.33 (out of support since 2026-06-30).
    let c = cluster(
        "v1.34.2",
        vec![
            node("s1").pool("system").kubelet("v1.34.2").image(&image("2026-11-10")),
            node("u1").pool("user").kubelet("v1.33.5").image(&image("2026-09-20")),
            node("u2").pool("user").kubelet("v1.33.5").image(&image("2026-09-20")),
        ],
    );
    let steps = plan(&spec(Platform::Aks), &c, "2026-11-25T12:00:00Z");
    assert_eq!(
        shape(&steps),
        [
            // Its own date is 2026-11-30, but the user pool waits on it and is overdue.
            "UpgradeControlPlane ControlPlane/kube-apiserver 1.34→1.35 by 2026-06-30T00:00:00+00:00",
            "UpgradeNodePool NodePool/user 1.33→1.35 by 2026-06-30T00:00:00+00:00",
            "UpgradeNodePool NodePool/system 1.34→1.35 by 2026-11-30T00:00:00+00:00",
        ]
    );
    assert_eq!(steps[0].prevents.rule.as_str(), "KubernetesVersionEndOfSupport");
    assert_eq!(steps[0].prevents.at, Due::At(at("2026-11-30")));
    assert!(
        steps[0].message.contains("Its date is that of the upgrade of node pool 'user' to 1.35"),
        "{}",
        steps[0].message
    );
    // The user pool's upgrade lays down a new image before its own deadline (2026-12-19).
    assert!(steps[1].message.contains("NodeImageOutdated on NodePool/user (Unsupported from 2026-12-19)"));
    assert!(steps[1].message.contains("new node image too"));
}

#[test]
fn the_target_is_the_oldest_minor_supported_through_the_horizon_or_the_newest() {
    let c = cluster("v1.34.2", vec![node("n").kubelet("v1.34.2").image(&image("2026-11-20"))]);
    // On 2026-11-01 with 90 days: 1.35 (ends 2027-03-31) lasts past 2027-01-30.
    let steps = plan(&spec(Platform::Aks), &c, "2026-11-01");
    assert_eq!(steps[0].to, "1.35".parse().ok());
    // With 200 days, 1.35 ends too soon: 1.36 (ends 2027-06-30); one minor at a time.
    let mut s = spec(Platform::Aks);
    s.plan_horizon_days = Some(200);
    let cp: Vec<String> = plan(&s, &c, "2026-11-01")
        .iter()
        .filter(|s| s.action == PlanAction::UpgradeControlPlane)
        .map(|s| format!("{}→{}", s.from.unwrap(), s.to.unwrap()))
        .collect();
    assert_eq!(cp, ["1.34→1.35", "1.35→1.36"]);
    // With 300 days no released minor lasts (1.37 is planned): the newest, and it says so.
    s.plan_horizon_days = Some(300);
    let steps = plan(&s, &c, "2026-11-01");
    let last = steps.iter().rfind(|s| s.action == PlanAction::UpgradeControlPlane).unwrap();
    assert_eq!(last.to, "1.36".parse().ok());
    assert!(last.message.contains("No released minor stays supported for the whole 300-day plan horizon"));
}

#[test]
fn a_pool_that_would_fall_out_of_skew_moves_first() {
    // AKS, skew 3. Control plane 1.33 (ended 2026-07-31), pool at 1.31: before the control
    // plane goes to 1.35 (target on 2026-09-01) the pool must be at 1.32 or newer.
    let mut s = spec(Platform::Aks);
    s.kubernetes_version = Some(KubernetesVersionSpec { long_term_support: Some(true), ..Default::default() });
    let c = cluster("v1.33.1", vec![node("old").pool("legacy").kubelet("v1.31.9").image(&image("2026-08-20"))]);
    let steps = plan(&s, &c, "2026-09-01");
    // LTS: 1.33 lasts until 2027-07-31; no control-plane step is needed at all.
    assert!(steps.iter().all(|s| s.action != PlanAction::UpgradeControlPlane), "{:?}", shape(&steps));
    let steps = plan(&spec(Platform::Aks), &c, "2026-09-01");
    assert_eq!(
        shape(&steps),
        [
            // 1.33 left the 3 newest minors when 1.36 was released.
            "UpgradeControlPlane ControlPlane/kube-apiserver 1.33→1.34 by 2026-06-30T00:00:00+00:00",
            "UpgradeNodePool NodePool/legacy 1.31→1.34 by 2025-11-01T00:00:00+00:00",
            "UpgradeControlPlane ControlPlane/kube-apiserver 1.34→1.35 by 2026-11-30T00:00:00+00:00",
            "UpgradeNodePool NodePool/legacy 1.34→1.35 by 2026-11-30T00:00:00+00:00",
        ]
    );
    assert!(steps[1].message.contains("before the control plane goes to 1.35"), "{}", steps[1].message);
    assert_eq!(steps[1].prevents.subject.to_string(), "Node/old", "a pool of one node: the finding is about the node");
}

#[test]
fn where_the_path_is_removed_the_plan_jumps_and_says_redeploy() {
    let s = spec(Platform::AksArc);
    let c = cluster("v1.30.5", vec![node("a").kubelet("v1.30.5"), node("b").kubelet("v1.30.5")]);
    // 1.30 ended 2026-03-01 (365 days from 2025-03-01). On 2026-04-01 the released minors that
    // last 90 days: 1.31 (to 2026-08-01).
    let steps = plan(&s, &c, "2026-04-01");
    assert_eq!(shape(&steps), ["UpgradeCluster Cluster/cluster 1.30→1.31 by 2026-03-01T00:00:00+00:00"]);
    assert!(steps[0].redeploy);
    assert!(steps[0].message.contains("may need a redeploy"));
    // Before 1.30's end the path exists: one minor at a time, no redeploy.
    let steps = plan(&s, &c, "2026-02-01");
    assert!(
        steps.iter().all(|s| !s.redeploy) && steps[0].action == PlanAction::UpgradeControlPlane,
        "{:?}",
        shape(&steps)
    );
    // A jump over several minors: 1.29 (ended 2025-10-31) straight to 1.32.
    let c = cluster("v1.29.2", vec![node("a").kubelet("v1.29.2")]);
    let steps = plan(&s, &c, "2026-06-15");
    // (1.29 left the 3 newest minors when 1.32 was released, 2025-10-01.)
    assert_eq!(shape(&steps), ["UpgradeCluster Cluster/cluster 1.29→1.32 by 2025-10-01T00:00:00+00:00"]);
}

#[test]
fn a_stopped_cluster_starts_first_and_every_step_waits_on_it() {
    let c = cluster(
        "v1.34.2",
        vec![
            node("a").pool("p").kubelet("v1.34.2").image(&image("2026-11-10")).not_ready("2026-11-20"),
            node("b").pool("p").kubelet("v1.34.2").image(&image("2026-11-10")).not_ready("2026-11-20"),
        ],
    );
    let steps = plan(&spec(Platform::Aks), &c, "2026-11-25");
    assert_eq!(steps[0].action, PlanAction::StartCluster);
    assert_eq!(steps[0].by, Due::At(at("2026-11-30")), "the control-plane step waits on it");
    assert!(steps[0].message.contains("ClusterStopped on Cluster/cluster (Unsupported from 2026-12-20)"));
    // Stopped with nothing else to do and no deadline within the horizon: no step.
    let mut s = spec(Platform::Eks);
    s.stopped_nodes = Some(StoppedNodesSpec { warn_after_days: Some(7), ..Default::default() });
    let c = cluster("v1.35.1", vec![node("a").kubelet("v1.35.1").created("2026-11-01").not_ready("2026-11-20")]);
    assert!(plan(&s, &c, "2026-11-25").is_empty());
}

#[test]
fn images_and_nodes_have_steps_of_their_own_when_no_upgrade_covers_them() {
    // Current versions; the image leaves support on 2026-12-19 (90 days after 2026-09-20).
    let c = cluster("v1.35.1", vec![node("a").pool("p").kubelet("v1.35.1").image(&image("2026-09-20"))]);
    let steps = plan(&spec(Platform::Aks), &c, "2026-11-25");
    assert_eq!(shape(&steps), ["RefreshNodeImage NodePool/p by 2026-12-19T00:00:00+00:00"]);
    assert!(steps[0].message.starts_with("Upgrade the node image of pool 'p' before 2026-12-19."));
    // A node not Ready, with an unsupported threshold in the policy.
    let mut s = spec(Platform::Custom);
    s.stopped_nodes =
        Some(StoppedNodesSpec { warn_after_days: Some(7), unsupported_after_days: Some(14), ..Default::default() });
    let c = cluster("v1.35.1", vec![node("up"), node("down").not_ready("2026-11-20")]);
    assert_eq!(shape(&plan(&s, &c, "2026-11-25")), ["StartNodes Node/down by 2026-12-04T00:00:00+00:00"]);
}

#[test]
fn a_step_is_due_only_from_its_date_and_nothing_is_planned_beyond_the_horizon() {
    let c = cluster("v1.35.1", vec![node("a").pool("p").kubelet("v1.35.1").image(&image("2026-09-20"))]);
    let s = spec(Platform::Aks);
    // The refresh is due 2026-12-19: it enters the 90-day horizon on 2026-09-20.
    assert!(plan(&s, &c, "2026-09-19T23:59:59Z").is_empty());
    assert_eq!(plan(&s, &c, "2026-09-20").len(), 1);
    let before = plan(&s, &c, "2026-12-18T23:59:59Z");
    assert!(before[0].message.contains("before 2026-12-19"));
    let at_it = plan(&s, &c, "2026-12-19");
    assert!(at_it[0].message.contains(" now."), "{}", at_it[0].message);
    // The operator re-evaluates at each of these instants.
    let e = evaluate(&s, &c, at("2026-09-19T12:00:00Z"));
    assert!(e.next_change.is_some_and(|t| t <= at("2026-09-20")), "{:?}", e.next_change);
}

#[test]
fn a_cluster_with_nothing_to_do_has_an_empty_plan() {
    // Within 60 days nothing leaves support (the image does on 2027-02-18).
    let c = cluster("v1.35.1", vec![node("a").kubelet("v1.35.1").image(&image("2026-11-20"))]);
    let mut s = spec(Platform::Aks);
    s.plan_horizon_days = Some(60);
    assert!(plan(&s, &c, "2026-11-21").is_empty());
    s.plan_horizon_days = Some(90);
    assert_eq!(shape(&plan(&s, &c, "2026-11-21")), ["RefreshNodeImage NodePool/default by 2027-02-18T00:00:00+00:00"]);
    // No version section, no image section: nothing to plan with.
    assert!(plan(&spec(Platform::Custom), &c, "2026-11-21").is_empty());
}
