//! The plan replayed step by step on random clusters of every preset: the skew holds, the end
//! is supported, `by` is not too late, nothing to do is an empty plan, and the plan changes only
//! when the engine says.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;

use super::tests::shape;
use crate::calendar::{merged_calendar, Standing, SupportCalendar};
use crate::crd::v1alpha1::{KubernetesVersionSpec, PlanAction, Platform, SupportPolicySpec};
use crate::policy::outcome::Step;
use crate::policy::rules::pool_of;
use crate::policy::settings::Sources;
use crate::policy::testing::*;
use crate::snapshot::{ClusterSnapshot, NodeInfo, Readiness};
use crate::time::{plus_days, start_of_day};
use crate::version::{parse_version, Minor};

/// The calendar of a policy, read as the plan reads it (for the properties' preconditions).
fn calendar(spec: &SupportPolicySpec) -> Option<SupportCalendar> {
    let s = Sources::of(spec).section(|s| s.kubernetes_version.as_ref())?;
    Some(SupportCalendar {
        releases: merged_calendar(spec.platform, &s.releases).ok()?,
        support_window_days: s.support_window_days,
        supported_minors: s.supported_minors,
        long_term_support: s.long_term_support.unwrap_or(false),
    })
}

/// Some released minor at or above `floor` is supported through `horizon_end`.
fn some_minor_lasts(cal: &SupportCalendar, floor: Minor, now: DateTime<Utc>, horizon_end: DateTime<Utc>) -> bool {
    cal.releases.iter().filter(|r| r.minor >= floor && !r.planned && start_of_day(r.released) <= now).any(|r| match cal
        .standing(r.minor)
    {
        Standing::Known { end, .. } => end.is_none_or(|e| e > horizon_end),
        _ => false,
    })
}

/// Nodes whose kubelet is newer than the control plane or more than `skew` minors behind.
fn out_of_skew(snap: &ClusterSnapshot, skew: u32) -> BTreeSet<String> {
    let Some(cp) = snap.server_version.as_deref().and_then(|v| parse_version(v).ok()) else { return BTreeSet::new() };
    snap.nodes
        .iter()
        .filter(|n| {
            n.kubelet_version.as_deref().and_then(|v| parse_version(v).ok()).is_some_and(|k| {
                let behind = k.minors_behind(cp);
                behind < 0 || behind > i64::from(skew)
            })
        })
        .map(|n| n.name.to_string())
        .collect()
}

/// The cluster after `step`, done at `t` (new nodes or images are as old as `t`).
fn apply(snap: &mut ClusterSnapshot, step: &Step, t: DateTime<Utc>) {
    let version = step.to.map(|m| format!("v{m}.0"));
    let refresh = |n: &mut NodeInfo| {
        n.created = Some(t);
        if n.labels.contains_key("kubernetes.azure.com/node-image-version") {
            n.labels.insert(
                "kubernetes.azure.com/node-image-version".into(),
                format!("AKSUbuntu-2204gen2containerd-{}.0", t.format("%Y%m.%d")).into(),
            );
        }
    };
    let in_subject = |n: &NodeInfo| match &step.subject {
        crate::policy::Subject::NodePool(p) => **pool_of(n) == **p,
        crate::policy::Subject::Node(name) => n.name == *name,
        _ => true,
    };
    match step.action {
        PlanAction::UpgradeControlPlane | PlanAction::UpgradeCluster => snap.server_version = version.clone(),
        _ => {}
    }
    for n in snap.nodes.iter_mut() {
        let n = Arc::make_mut(n);
        match step.action {
            PlanAction::StartCluster => n.readiness = Readiness::Ready,
            PlanAction::StartNodes if in_subject(n) => n.readiness = Readiness::Ready,
            PlanAction::UpgradeCluster | PlanAction::UpgradeNodePool if in_subject(n) => {
                n.kubelet_version = version.as_deref().map(Arc::from);
                refresh(n);
            }
            PlanAction::RefreshNodeImage if in_subject(n) => refresh(n),
            _ => {}
        }
    }
}

/// The version and stopped-cluster findings that are Unsupported at `t`.
fn unsupported_at(spec: &SupportPolicySpec, snap: &ClusterSnapshot, t: DateTime<Utc>) -> Vec<String> {
    let rules = [
        "KubernetesVersionEndOfSupport",
        "KubeletVersionEndOfSupport",
        "KubeletVersionSkew",
        "ClusterStopped",
        "ClusterNotUpgradable",
    ];
    evaluate(spec, snap, t)
        .findings
        .iter()
        .filter(|f| f.severity == U && rules.contains(&f.rule.as_str()))
        .map(|f| format!("{} {}", f.rule, f.subject))
        .collect()
}

prop_compose! {
    /// A node `behind` minors behind the control plane, with the age of its image and of the
    /// node in days (dated in `arb_case`); a tidy node is near the control plane and new.
    fn arb_node(tidy: bool)(
        pool in 0usize..3,
        behind in if tidy { 0i64..2 } else { -1i64..6 },
        image_age in if tidy { 0i64..20 } else { 0i64..200 },
        created_age in 0i64..200,
        stopped in prop::bool::weighted(if tidy { 0.0 } else { 0.15 }),
    ) -> (usize, i64, i64, i64, bool) {
        (pool, behind, image_age, created_age, stopped)
    }
}

/// A policy, a cluster and an instant. Half are tidy: a control plane supported at the
/// instant, kubelets near it, new images, nothing stopped (so that the plan is on time).
fn arb_case() -> impl Strategy<Value = (SupportPolicySpec, ClusterSnapshot, DateTime<Utc>)> {
    let platform =
        prop::sample::select(vec![Platform::Aks, Platform::AksArc, Platform::Eks, Platform::Gke, Platform::Upstream]);
    (
        platform,
        24u32..38,
        0i64..1400,
        prop::sample::select(vec![30u32, 90, 200]),
        0u32..4,
        any::<Option<bool>>(),
        any::<bool>(),
    )
        .prop_flat_map(|(platform, cp, day, horizon, skew, removed, tidy)| {
            let nodes = (1usize..7).prop_flat_map(move |n| (0..n).map(|_| arb_node(tidy)).collect::<Vec<_>>());
            (Just((platform, cp, day, horizon, skew, removed, tidy)), nodes)
        })
        .prop_map(|((platform, cp, day, horizon, skew, removed, tidy), nodes)| {
            let now = at("2024-06-01") + TimeDelta::days(day) + TimeDelta::hours(7);
            let mut spec = spec(platform);
            spec.plan_horizon_days = Some(horizon);
            spec.kubernetes_version = Some(KubernetesVersionSpec {
                max_kubelet_skew_minors: (skew > 0).then_some(skew),
                upgrade_path_removed_at_end_of_support: removed,
                ..Default::default()
            });
            // A tidy control plane runs a minor supported at the instant (the `cp`-th of them).
            let supported: Vec<Minor> = calendar(&spec)
                .map(|cal| {
                    cal.releases
                        .iter()
                        .filter(|r| !r.planned && start_of_day(r.released) <= now)
                        .filter(|r| matches!(cal.standing(r.minor), Standing::Known { end: Some(e), .. } if e > now))
                        .map(|r| r.minor)
                        .collect()
                })
                .unwrap_or_default();
            let cp = match (tidy, supported.is_empty()) {
                (true, false) => supported[cp as usize % supported.len()].minor,
                _ => cp,
            };
            let nodes = nodes
                .into_iter()
                .enumerate()
                .map(|(i, (pool, behind, image_age, created_age, stopped))| {
                    let minor = (i64::from(cp) - behind).max(20);
                    let mut n = node(&format!("n{i}"))
                        .pool(["system", "user", "gpu"][pool])
                        .kubelet(&format!("v1.{minor}.3"))
                        .image(&format!(
                            "AKSUbuntu-2204gen2containerd-{}.0",
                            (now - TimeDelta::days(image_age)).format("%Y%m.%d")
                        ));
                    n.0.created = Some(now - TimeDelta::days(if tidy { image_age } else { created_age }));
                    if stopped {
                        n.0.readiness = Readiness::NotReady { since: Some(now - TimeDelta::days(created_age / 2)) };
                    }
                    n
                })
                .collect();
            (spec, cluster(&format!("v1.{cp}.1"), nodes), now)
        })
}

/// The preconditions under which the plan can keep the cluster supported: the control plane's
/// minor is in the calendar (or older than it) and a released minor at or above every known
/// kubelet lasts through the horizon.
fn can_be_kept_supported(spec: &SupportPolicySpec, snap: &ClusterSnapshot, now: DateTime<Utc>) -> bool {
    let Some(cal) = calendar(spec) else { return false };
    let Some(cp) = snap.server_version.as_deref().and_then(|v| parse_version(v).ok()) else { return false };
    if matches!(cal.standing(cp), Standing::Unknown { .. }) {
        return false;
    }
    let kubelets = snap.nodes.iter().filter_map(|n| n.kubelet_version.as_deref().and_then(|v| parse_version(v).ok()));
    let floor = kubelets.filter(|k| !matches!(cal.standing(*k), Standing::Unknown { .. })).fold(cp, Minor::max);
    let horizon_end = plus_days(now, spec.plan_horizon_days.unwrap_or(90));
    some_minor_lasts(&cal, floor, now, horizon_end)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Replaying the plan step by step never puts a kubelet out of skew (newer than the control
    /// plane or too far behind), and ends with no version finding Unsupported within the
    /// horizon wherever a released minor lasts that long. Every step is due within it.
    #[test]
    fn replaying_the_plan_keeps_the_skew_and_ends_supported((spec, snap, now) in arb_case()) {
        let e = evaluate(&spec, &snap, now);
        let horizon_end = plus_days(now, spec.plan_horizon_days.unwrap_or(90));
        let skew = spec.kubernetes_version.as_ref().and_then(|v| v.max_kubelet_skew_minors).unwrap_or(3);
        prop_assert!(e.plan.iter().all(|s| s.by.by(horizon_end)), "{:?}", shape(&e.plan));
        let mut state = snap.clone();
        let mut broken = out_of_skew(&state, skew);
        for step in &e.plan {
            apply(&mut state, step, now);
            let after = out_of_skew(&state, skew);
            prop_assert!(after.is_subset(&broken), "{} put {:?} out of skew; plan {:?}", step.message, after.difference(&broken).collect::<Vec<_>>(), shape(&e.plan));
            broken = after;
        }
        if can_be_kept_supported(&spec, &snap, now) {
            prop_assert!(broken.is_empty(), "still out of skew: {broken:?}; plan {:?}", shape(&e.plan));
            let left = unsupported_at(&spec, &state, horizon_end - SEC);
            let left: Vec<_> = left.into_iter().filter(|f| !f.starts_with("Cluster")).collect();
            prop_assert!(left.is_empty(), "{left:?} after the plan {:?}", shape(&e.plan));
        }
    }

    /// Doing each step one second before its `by`, in order, keeps every version and stopped
    /// finding below Unsupported at every one of those instants and to the end of the horizon:
    /// `by` is not too late.
    #[test]
    fn doing_each_step_just_before_its_date_keeps_the_cluster_supported((spec, snap, now) in arb_case()) {
        let e = evaluate(&spec, &snap, now);
        let horizon_end = plus_days(now, spec.plan_horizon_days.unwrap_or(90));
        let on_time = e.plan.iter().all(|s| !s.by.by(now));
        if !on_time || !can_be_kept_supported(&spec, &snap, now) || !unsupported_at(&spec, &snap, now).is_empty() {
            return Ok(());
        }
        let mut state = snap.clone();
        for step in &e.plan {
            let t = step.by.instant().expect("dated") - SEC;
            let broken = unsupported_at(&spec, &state, t);
            prop_assert!(broken.is_empty(), "{broken:?} at {t} before {}; plan {:?}", step.message, shape(&e.plan));
            apply(&mut state, step, t);
        }
        let broken = unsupported_at(&spec, &state, horizon_end - SEC);
        prop_assert!(broken.is_empty(), "{broken:?} at the end of the horizon; plan {:?}", shape(&e.plan));
    }

    /// A cluster whose findings the plan reads stay below Unsupported through the horizon has
    /// nothing to do.
    #[test]
    fn nothing_to_do_is_an_empty_plan((spec, snap, now) in arb_case()) {
        let horizon_end = plus_days(now, spec.plan_horizon_days.unwrap_or(90));
        let later = evaluate(&spec, &snap, horizon_end);
        let plan_rules = ["KubernetesVersionEndOfSupport", "KubeletVersionEndOfSupport", "KubeletVersionSkew", "NodeImageOutdated", "ClusterStopped", "ClusterNotUpgradable", "NodeNotReady"];
        if later.findings.iter().any(|f| f.severity == U && plan_rules.contains(&f.rule.as_str())) {
            return Ok(());
        }
        let e = evaluate(&spec, &snap, now);
        prop_assert!(e.plan.is_empty(), "{:?}", shape(&e.plan));
    }

    /// The plan is part of the status: with every horizon, skew and path setting, the status
    /// is the same until the instant the operator re-evaluates at.
    #[test]
    fn the_plan_changes_only_when_the_engine_says((spec, snap, now) in arb_case()) {
        let e = evaluate(&spec, &snap, now);
        let status = crate::policy::report::report(&e, None, Some(1), now);
        let until = e.next_change.map(|t| t - SEC).unwrap_or(now + TimeDelta::days(3650));
        let later = crate::policy::report::report(&evaluate(&spec, &snap, until), Some(&status), Some(1), until);
        prop_assert_eq!(later.plan, status.plan);
    }
}
