//! A `SupportPolicySpec` resolved against its preset: every family's settings merged, checked
//! and ready. What the schema's CEL rules reject is rejected here too, so a policy that reaches
//! the engine some other way (a file, an old CRD) is reported on, never crashed on.

use std::fmt;

use kube::core::Selector;

use super::rules::{Rules, FAMILIES, POOL_LABELS};
use super::selector::NodeSelector;
use super::settings::{Errors, PolicyError, Sources, DEFAULT_PLAN_HORIZON_DAYS};
use crate::crd::v1alpha1::{LeaseReference, Platform, SupportPolicySpec};
use crate::snapshot::NodeKeys;

/// The resolved policy the engine evaluates.
pub struct Policy {
    /// The preset.
    pub platform: Platform,
    /// Which nodes are in scope (`None`: all).
    pub selector: Option<NodeSelector>,
    /// The families that are evaluated, with their settings.
    pub(crate) rules: Vec<Box<dyn Rules>>,
    /// How many days ahead the upgrade plan keeps the cluster supported.
    pub plan_horizon_days: u32,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy").field("platform", &self.platform).field("rules", &self.rules).finish_non_exhaustive()
    }
}

impl Policy {
    /// Resolves a spec against its preset. Returns every problem found, each naming its field.
    pub fn resolve(spec: &SupportPolicySpec) -> Result<Policy, Vec<PolicyError>> {
        // What the CRD bounds is bounded here first: nothing oversized is compiled or read.
        let oversized = super::limits::exceeded(spec);
        if !oversized.is_empty() {
            return Err(oversized);
        }
        let mut errors = Errors::default();
        let selector = spec.node_selector.clone().and_then(|sel| match Selector::try_from(sel) {
            Ok(s) => Some(s.into()),
            Err(e) => {
                errors.push("spec.nodeSelector", e.to_string());
                None
            }
        });
        let sources = Sources::of(spec);
        let plan_horizon_days = sources.plan_horizon_days().unwrap_or_else(|e| {
            errors.extend(vec![e]);
            DEFAULT_PLAN_HORIZON_DAYS
        });
        let mut rules = Vec::new();
        for family in FAMILIES {
            match (family.resolve)(&sources) {
                Ok(Some(r)) => rules.push(r),
                Ok(None) => {}
                Err(e) => errors.extend(e),
            }
        }
        errors.into_result(Policy { platform: spec.platform, selector, rules, plan_horizon_days })
    }

    /// The Leases the policy reads (its heartbeats), for the operator's cache and `check`.
    pub fn leases(&self) -> Vec<LeaseReference> {
        self.rules.iter().flat_map(|r| r.leases()).collect()
    }

    /// The labels and annotations of nodes the policy reads (its selector, the pool labels,
    /// what its families read): readers keep only those.
    pub fn node_keys(&self) -> NodeKeys {
        let mut keys = NodeKeys::none();
        for label in POOL_LABELS {
            keys.label(label);
        }
        if let Some(selector) = &self.selector {
            selector.keys(&mut keys);
        }
        for rules in &self.rules {
            rules.node_keys(&mut keys);
        }
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::v1alpha1::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

    fn spec(platform: Platform) -> SupportPolicySpec {
        SupportPolicySpec { platform, ..Default::default() }
    }

    fn first_error(spec: &SupportPolicySpec) -> String {
        Policy::resolve(spec).unwrap_err()[0].to_string()
    }

    /// The families a policy evaluates, by the names of their settings types.
    fn families(spec: &SupportPolicySpec) -> String {
        format!("{:?}", Policy::resolve(spec).unwrap().rules)
    }

    #[test]
    fn every_preset_resolves_every_node_family() {
        for platform in [Platform::Aks, Platform::AksArc, Platform::Eks, Platform::Gke, Platform::Upstream] {
            let f = families(&spec(platform));
            for family in ["VersionRules", "ImageRules", "StoppedRules", "Problems"] {
                assert!(f.contains(family), "{platform:?} lacks {family}: {f}");
            }
        }
        let aks = families(&spec(Platform::Aks));
        for setting in [
            "supported_minors: Some(3)",
            "warn_before_days: 60",
            "max_kubelet_skew_minors: 3",
            "source: Label(\"kubernetes.azure.com/node-image-version\")",
            "warn_after_days: Some(30), unsupported_after_days: Some(90)",
            "ForbidAlpha",
        ] {
            assert!(aks.contains(setting), "AKS lacks {setting}: {aks}");
        }
        let arc = families(&spec(Platform::AksArc));
        for setting in [
            "upgrade_path_removed: true",
            "cluster_unsupported_after_days: Some(30), cluster_not_upgradable_after_days: Some(90)",
            "source: NodeCreation",
        ] {
            assert!(arc.contains(setting), "AKSArc lacks {setting}: {arc}");
        }
        assert!(!families(&spec(Platform::Eks)).contains("ForbidAlpha"));
    }

    #[test]
    fn spec_numbers_override_the_preset() {
        let mut s = spec(Platform::Aks);
        s.node_image = Some(NodeImageSpec { unsupported_after_days: Some(60), ..Default::default() });
        assert!(families(&s).contains("warn_after_days: Some(30), unsupported_after_days: Some(60)"));
        // A label in the policy replaces the preset's source, even where it reads node creation.
        let mut s = spec(Platform::Eks);
        s.node_image = Some(NodeImageSpec {
            label: Some("example.com/image".into()),
            date_pattern: Some(r"(?P<year>\d{4})(?P<month>\d\d)(?P<day>\d\d)".into()),
            ..Default::default()
        });
        assert!(families(&s).contains("source: Label(\"example.com/image\")"));
    }

    #[test]
    fn custom_evaluates_only_the_sections_it_has() {
        let f = families(&spec(Platform::Custom));
        for family in ["VersionRules", "ImageRules", "StoppedRules", "ForbidAlpha"] {
            assert!(!f.contains(family), "{f}");
        }
        let mut s = spec(Platform::Custom);
        s.stopped_nodes = Some(StoppedNodesSpec { warn_after_days: Some(3), ..Default::default() });
        let f = families(&s);
        assert!(f.contains("warn_after_days: Some(3)") && !f.contains("VersionRules"), "{f}");
    }

    #[test]
    fn impossible_thresholds_name_the_field() {
        let mut s = spec(Platform::Aks);
        s.node_image = Some(NodeImageSpec { warn_after_days: Some(100), ..Default::default() });
        assert_eq!(first_error(&s), "spec.nodeImage.warnAfterDays: 100 exceeds unsupportedAfterDays (90)");

        let mut s = spec(Platform::AksArc);
        s.stopped_nodes = Some(StoppedNodesSpec { cluster_unsupported_after_days: Some(120), ..Default::default() });
        assert_eq!(
            first_error(&s),
            "spec.stoppedNodes.clusterUnsupportedAfterDays: 120 exceeds clusterNotUpgradableAfterDays (90)"
        );

        let mut s = spec(Platform::Aks);
        s.kubernetes_version = Some(KubernetesVersionSpec { supported_minors: Some(0), ..Default::default() });
        assert_eq!(first_error(&s), "spec.kubernetesVersion.supportedMinors: must be at least 1");
    }

    #[test]
    fn bad_patterns_and_missing_keys_name_the_field() {
        let mut s = spec(Platform::Aks);
        s.node_image = Some(NodeImageSpec { date_pattern: Some(r"(?P<year>\d{4})".into()), ..Default::default() });
        assert_eq!(
            first_error(&s),
            "spec.nodeImage.datePattern: lacks the named group 'month' (needs year, month and day)"
        );

        s.node_image = Some(NodeImageSpec { date_pattern: Some("([".into()), ..Default::default() });
        assert!(first_error(&s).starts_with("spec.nodeImage.datePattern: does not compile"));

        let mut s = spec(Platform::AksArc);
        s.node_image = Some(NodeImageSpec { label: Some("example.com/image".into()), ..Default::default() });
        assert_eq!(
            first_error(&s),
            "spec.nodeImage.datePattern: required when the image version comes from a label or annotation"
        );

        let mut s = spec(Platform::Custom);
        s.node_image = Some(NodeImageSpec { warn_after_days: Some(3), ..Default::default() });
        assert_eq!(first_error(&s), "spec.nodeImage.source: required: set label, annotation or source: NodeCreation");
    }

    #[test]
    fn bad_selector_and_duplicate_names_are_reported() {
        let mut s = spec(Platform::Aks);
        s.node_selector = Some(LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "pool".into(),
                operator: "Sometimes".into(),
                values: None,
            }]),
            match_labels: None,
        });
        assert!(first_error(&s).starts_with("spec.nodeSelector: "));

        let mut s = spec(Platform::AksArc);
        let hb = HeartbeatSpec {
            name: "arc".into(),
            lease: LeaseReference { namespace: "azure-arc".into(), name: "hb".into() },
            warn_after_days: None,
            unsupported_after_days: None,
        };
        s.heartbeats = vec![hb.clone(), hb];
        assert_eq!(first_error(&s), "spec.heartbeats[1].name: 'arc' is used twice");
        assert_eq!(Policy::resolve(&spec(Platform::AksArc)).unwrap().leases(), vec![]);
    }

    #[test]
    fn attestations_need_a_number_without_a_preset_default() {
        let mut s = spec(Platform::Eks);
        s.attestations = vec![AttestationSpec {
            name: "suspended".into(),
            since: "2026-11-01T00:00:00Z".parse().unwrap(),
            unsupported_after_days: None,
            description: None,
        }];
        assert_eq!(
            first_error(&s),
            "spec.attestations[0].unsupportedAfterDays: required (this platform has no default)"
        );
        s.platform = Platform::AksArc;
        assert!(families(&s).contains("unsupported_after_days: 60"));
    }

    #[test]
    fn inline_releases_are_checked() {
        let mut s = spec(Platform::Custom);
        s.kubernetes_version = Some(KubernetesVersionSpec {
            releases: vec![ReleaseSpec {
                minor: "1.31".into(),
                released: "2025-01-01".parse().unwrap(),
                end_of_support: Some("2024-01-01".parse().unwrap()),
                lts_end_of_support: None,
            }],
            ..Default::default()
        });
        assert_eq!(first_error(&s), "spec.kubernetesVersion.releases[0].endOfSupport: must be after released");
        s.kubernetes_version.as_mut().unwrap().releases[0].minor = "one.two".into();
        assert_eq!(
            first_error(&s),
            "spec.kubernetesVersion.releases[0].minor: 'one.two' is not a Kubernetes version (expected \
             MAJOR.MINOR[.PATCH], e.g. v1.31.4)"
        );
    }
}
