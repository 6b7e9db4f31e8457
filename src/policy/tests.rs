//! Properties of the engine that hold for any cluster, any policy and any instant, and the
//! behaviour across families. Each family's own rules are tested in its module.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;

use super::ids::Subject;
use super::outcome::Finding;
use super::report;
use super::testing::*;
use crate::crd::v1alpha1::*;
use crate::snapshot::{ClusterSnapshot, LeaseInfo, NodeInfo, Readiness};

#[test]
fn an_invalid_policy_is_unknown_and_names_the_field() {
    let mut s = spec(Platform::Aks);
    s.node_image = Some(NodeImageSpec { date_pattern: Some("(".into()), ..Default::default() });
    let e = evaluate(&s, &cluster("v1.35.1", vec![node("n")]), at("2026-11-25"));
    assert_eq!(e.verdict, Verdict::Unknown);
    assert_eq!(e.findings[0].rule.as_str(), "PolicyInvalid");
    assert!(e.findings[0].message.contains("spec.nodeImage.datePattern"), "{}", e.findings[0].message);
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
    assert_eq!(status.pools.len(), report::MAX_POOLS);
    assert_eq!(status.pools_omitted, 50);
    assert!(bytes < 256 * 1024, "status is {bytes} bytes");
}

/// What the contract says must stay equal between deadlines: the verdict and the set of
/// (rule, severity, subject).
fn key(e: &Evaluation) -> (Verdict, BTreeSet<(RuleId, Severity, Subject)>) {
    (e.verdict, e.findings.iter().map(|f| (f.rule, f.severity, f.subject.clone())).collect())
}

prop_compose! {
    fn instant()(secs in 1_640_995_200i64..1_830_297_600i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }
}

prop_compose! {
    fn arb_node(i: usize)(
        pool in prop::sample::select(vec!["system", "user", "gpu"]),
        kubelet in prop::sample::select(vec![
            "v1.29.4", "v1.31.2", "v1.33.5", "v1.34.2", "v1.35.3", "v1.36.1", "garbage", "v1.40.0",
        ]),
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
                let reached = |f: &Finding| f.rule == t.rule && f.subject == t.subject && f.severity == t.severity;
                prop_assert!(then.findings.iter().any(reached));
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
        prop_assert!(e.upcoming.len() <= super::evaluate::MAX_UPCOMING);
        prop_assert!(e.upcoming.windows(2).all(|w| w[0].at <= w[1].at));
        prop_assert!(e.upcoming.iter().all(|t| t.at > now && t.at <= now + TimeDelta::days(180)));
        if let Some(first) = e.upcoming.first() {
            prop_assert_eq!(Some(first), e.next_deadline.as_ref());
        }
    }
}
