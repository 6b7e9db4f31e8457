//! The node image rules at their threshold instants.

use super::*;
use crate::crd::v1alpha1::{NodeImageSpec, Platform};
use crate::policy::testing::*;

#[test]
fn node_image_age_from_the_aks_label() {
    // Image of 2026-09-20: Warning at +30 days (2026-10-20), Unsupported at +90 (2026-12-19).
    let s = spec(Platform::Aks);
    let c = cluster("v1.35.1", vec![node("n").image("AKSUbuntu-2204gen2containerd-202609.20.0")]);
    threshold(&s, &c, NODE_IMAGE_OUTDATED, "Node/n", "2026-10-20", None, Some(W));
    threshold(&s, &c, NODE_IMAGE_OUTDATED, "Node/n", "2026-12-19", Some(W), Some(U));
    let windows = cluster("v1.35.1", vec![node("w").image("AKSWindows-2022-containerd-20348.4052.260815")]);
    threshold(&s, &windows, NODE_IMAGE_OUTDATED, "Node/w", "2026-11-13", Some(W), Some(U));
    let patched = cluster("v1.35.1", vec![node("p").image("AKSUbuntu-2204gen2containerd-202410.27.0-2026.10.01")]);
    threshold(&s, &patched, NODE_IMAGE_OUTDATED, "Node/p", "2026-10-31", None, Some(W));
}

#[test]
fn node_image_unknown_when_unlabelled_or_unparseable() {
    let s = spec(Platform::Aks);
    let e =
        evaluate(&s, &cluster("v1.35.1", vec![node("a"), node("b").image("AKSWindows-23H2-gen2")]), at("2026-11-25"));
    assert_eq!(severity_of(&e, NODE_IMAGE_UNKNOWN, "Node/a"), Some(Info));
    let b = e.findings.iter().find(|f| f.rule == NODE_IMAGE_UNKNOWN && f.subject.to_string() == "Node/b").unwrap();
    assert!(b.message.contains("no date pattern matches its image version 'AKSWindows-23H2-gen2'"), "{}", b.message);
}

#[test]
fn node_creation_bounds_the_image_age() {
    let mut s = spec(Platform::Eks);
    s.node_image = Some(NodeImageSpec { unsupported_after_days: Some(180), ..Default::default() });
    let c = cluster("v1.34.1-eks-2d5f260", vec![node("n").created("2026-06-03T14:00:00Z")]);
    threshold(&s, &c, NODE_IMAGE_OUTDATED, "Node/n", "2026-09-01T14:00:00Z", None, Some(W));
    threshold(&s, &c, NODE_IMAGE_OUTDATED, "Node/n", "2026-11-30T14:00:00Z", Some(W), Some(U));
}
