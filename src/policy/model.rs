//! A `SupportPolicySpec` resolved against its preset: every number known, every pattern
//! compiled, every cross-field invariant checked. What the schema's CEL rules reject is rejected
//! here too, so a policy that reaches the engine some other way (a file, an old CRD) is reported
//! on, never crashed on.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Utc};
use kube::core::Selector;

use super::image::ImageDateParser;
use crate::calendar::{self, Release};
use crate::crd::v1alpha1::{AlphaApis, NodeImageSource, Platform, SupportPolicySpec};

/// Largest number of days any threshold may hold (ten years), as the schema says.
pub const MAX_DAYS: u32 = 3650;

/// A field of a policy that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// Path of the field, `spec.nodeImage.datePattern`.
    pub field: String,
    /// Why.
    pub reason: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// The resolved policy the rules read.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The preset.
    pub platform: Platform,
    /// Which nodes are in scope (`None`: all).
    pub selector: Option<Selector>,
    /// Version rules, if evaluated.
    pub version: Option<VersionRule>,
    /// Node image rule, if evaluated.
    pub image: Option<ImageRule>,
    /// Stopped node and cluster rules, if evaluated.
    pub stopped: Option<StoppedRule>,
    /// Heartbeat Leases.
    pub heartbeats: Vec<HeartbeatRule>,
    /// Attestations.
    pub attestations: Vec<AttestationRule>,
    /// AlphaApiServed is evaluated.
    pub forbid_alpha: bool,
}

/// Version support.
#[derive(Debug, Clone)]
pub struct VersionRule {
    /// The merged calendar, sorted by minor.
    pub calendar: Vec<Release>,
    pub support_window_days: Option<u32>,
    pub supported_minors: Option<u32>,
    pub warn_before_days: u32,
    pub max_kubelet_skew_minors: u32,
    pub upgrade_path_removed: bool,
    pub long_term_support: bool,
}

/// Where the image version comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// A label key.
    Label(String),
    /// An annotation key.
    Annotation(String),
    /// The node's creation time.
    NodeCreation,
}

/// Node image age.
#[derive(Debug, Clone)]
pub struct ImageRule {
    pub source: ImageSource,
    /// Compiled date patterns (unused for `NodeCreation`).
    pub parser: ImageDateParser,
    pub warn_after_days: Option<u32>,
    pub unsupported_after_days: Option<u32>,
}

/// Stopped nodes and cluster.
#[derive(Debug, Clone, Default)]
pub struct StoppedRule {
    pub warn_after_days: Option<u32>,
    pub unsupported_after_days: Option<u32>,
    pub cluster_unsupported_after_days: Option<u32>,
    pub cluster_not_upgradable_after_days: Option<u32>,
}

/// A heartbeat Lease.
#[derive(Debug, Clone)]
pub struct HeartbeatRule {
    pub name: String,
    pub namespace: String,
    pub lease: String,
    pub warn_after_days: Option<u32>,
    pub unsupported_after_days: Option<u32>,
}

/// An attestation.
#[derive(Debug, Clone)]
pub struct AttestationRule {
    pub name: String,
    pub since: DateTime<Utc>,
    pub unsupported_after_days: u32,
    pub description: Option<String>,
}

impl Policy {
    /// Resolves a spec against its preset. Returns every problem found, each naming its field.
    pub fn resolve(spec: &SupportPolicySpec) -> Result<Policy, Vec<PolicyError>> {
        let mut errors = Errors::default();
        let preset = calendar::preset(spec.platform);
        let defaults = preset.map(|p| p.defaults.clone()).unwrap_or_default();
        let has_preset = preset.is_some();

        let selector = spec.node_selector.clone().and_then(|sel| match Selector::try_from(sel) {
            Ok(s) => Some(s),
            Err(e) => {
                errors.push("spec.nodeSelector", e.to_string());
                None
            }
        });

        // Versions.
        let version = match (&spec.kubernetes_version, has_preset) {
            (None, false) => None,
            (section, _) => {
                let s = section.clone().unwrap_or_default();
                let d = &defaults.kubernetes_version;
                let calendar = calendar::merged_calendar(spec.platform, &s.releases).unwrap_or_else(|e| {
                    let (field, reason) = e.split_once(": ").unwrap_or(("spec.kubernetesVersion.releases", &e));
                    errors.push(field, reason);
                    Vec::new()
                });
                for (i, r) in s.releases.iter().enumerate() {
                    for (name, end) in [("endOfSupport", r.end_of_support), ("ltsEndOfSupport", r.lts_end_of_support)] {
                        if end.is_some_and(|end| end <= r.released) {
                            errors
                                .push(format!("spec.kubernetesVersion.releases[{i}].{name}"), "must be after released");
                        }
                    }
                }
                let mut seen = BTreeSet::new();
                for (i, r) in s.releases.iter().enumerate() {
                    if !seen.insert(r.minor.clone()) {
                        errors.push(
                            format!("spec.kubernetesVersion.releases[{i}].minor"),
                            format!("{} is listed twice", r.minor),
                        );
                    }
                }
                let field = |name: &str| format!("spec.kubernetesVersion.{name}");
                let window = s.support_window_days.or(d.support_window_days);
                errors.days(&field("supportWindowDays"), window);
                if window == Some(0) {
                    errors.push(field("supportWindowDays"), "must be at least 1");
                }
                let supported_minors = s.supported_minors.or(d.supported_minors);
                if supported_minors == Some(0) {
                    errors.push(field("supportedMinors"), "must be at least 1");
                }
                let warn_before_days = s.warn_before_days.or(d.warn_before_days).unwrap_or(0);
                errors.days(&field("warnBeforeDays"), Some(warn_before_days));
                let max_skew = s.max_kubelet_skew_minors.or(d.max_kubelet_skew_minors).unwrap_or(3);
                if max_skew > 10 {
                    errors.push(field("maxKubeletSkewMinors"), format!("{max_skew} is more than 10"));
                }
                Some(VersionRule {
                    calendar,
                    support_window_days: window,
                    supported_minors,
                    warn_before_days,
                    max_kubelet_skew_minors: max_skew,
                    upgrade_path_removed: s
                        .upgrade_path_removed_at_end_of_support
                        .or(d.upgrade_path_removed_at_end_of_support)
                        .unwrap_or(false),
                    long_term_support: s.long_term_support.or(d.long_term_support).unwrap_or(false),
                })
            }
        };

        // Node image.
        let image = match (&spec.node_image, has_preset) {
            (None, false) => None,
            (section, _) => {
                let s = section.clone().unwrap_or_default();
                let d = &defaults.node_image;
                if s.label.is_some() && s.annotation.is_some() {
                    errors.push("spec.nodeImage", "set label or annotation, not both");
                }
                let explicit = s.source.or(if s.label.is_some() {
                    Some(NodeImageSource::Label)
                } else if s.annotation.is_some() {
                    Some(NodeImageSource::Annotation)
                } else {
                    None
                });
                let source = match explicit.or(d.source) {
                    Some(NodeImageSource::Label) => s.label.clone().or_else(|| d.label.clone()).map(ImageSource::Label),
                    Some(NodeImageSource::Annotation) => {
                        s.annotation.clone().or_else(|| d.annotation.clone()).map(ImageSource::Annotation)
                    }
                    Some(NodeImageSource::NodeCreation) => Some(ImageSource::NodeCreation),
                    None => None,
                };
                let source = source.unwrap_or_else(|| {
                    match explicit {
                        Some(NodeImageSource::Annotation) => {
                            errors.push("spec.nodeImage.annotation", "required with source: Annotation")
                        }
                        Some(NodeImageSource::Label) => {
                            errors.push("spec.nodeImage.label", "required with source: Label")
                        }
                        _ => errors
                            .push("spec.nodeImage.source", "required: set label, annotation or source: NodeCreation"),
                    }
                    ImageSource::NodeCreation
                });
                let patterns: Vec<String> = match &s.date_pattern {
                    Some(p) => vec![p.clone()],
                    None => d.date_patterns.clone(),
                };
                if patterns.is_empty() && source != ImageSource::NodeCreation {
                    errors.push(
                        "spec.nodeImage.datePattern",
                        "required when the image version comes from a label or annotation",
                    );
                }
                let parser = ImageDateParser::new(&patterns).unwrap_or_else(|(_, e)| {
                    errors.push("spec.nodeImage.datePattern", e.to_string());
                    ImageDateParser::new::<&str>(&[]).expect("no patterns compile")
                });
                let warn = s.warn_after_days.or(d.warn_after_days);
                let unsupported = s.unsupported_after_days.or(d.unsupported_after_days);
                errors.pair("spec.nodeImage", warn, unsupported);
                if warn.is_none() && unsupported.is_none() {
                    errors.push("spec.nodeImage.warnAfterDays", "set warnAfterDays or unsupportedAfterDays");
                }
                Some(ImageRule { source, parser, warn_after_days: warn, unsupported_after_days: unsupported })
            }
        };

        // Stopped nodes and cluster.
        let stopped = match (&spec.stopped_nodes, has_preset) {
            (None, false) => None,
            (section, _) => {
                let s = section.clone().unwrap_or_default();
                let d = &defaults.stopped_nodes;
                let rule = StoppedRule {
                    warn_after_days: s.warn_after_days.or(d.warn_after_days),
                    unsupported_after_days: s.unsupported_after_days.or(d.unsupported_after_days),
                    cluster_unsupported_after_days: s
                        .cluster_unsupported_after_days
                        .or(d.cluster_unsupported_after_days),
                    cluster_not_upgradable_after_days: s
                        .cluster_not_upgradable_after_days
                        .or(d.cluster_not_upgradable_after_days),
                };
                errors.pair("spec.stoppedNodes", rule.warn_after_days, rule.unsupported_after_days);
                errors.days("spec.stoppedNodes.clusterUnsupportedAfterDays", rule.cluster_unsupported_after_days);
                errors.days("spec.stoppedNodes.clusterNotUpgradableAfterDays", rule.cluster_not_upgradable_after_days);
                if let (Some(u), Some(n)) =
                    (rule.cluster_unsupported_after_days, rule.cluster_not_upgradable_after_days)
                {
                    if u > n {
                        errors.push(
                            "spec.stoppedNodes.clusterUnsupportedAfterDays",
                            format!("{u} exceeds clusterNotUpgradableAfterDays ({n})"),
                        );
                    }
                }
                Some(rule)
            }
        };

        // Heartbeats.
        let mut names = BTreeSet::new();
        let heartbeats = spec
            .heartbeats
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let field = format!("spec.heartbeats[{i}]");
                if !names.insert(h.name.clone()) {
                    errors.push(format!("{field}.name"), format!("'{}' is used twice", h.name));
                }
                errors.name(&format!("{field}.name"), &h.name);
                if h.lease.namespace.is_empty() || h.lease.name.is_empty() {
                    errors.push(format!("{field}.lease"), "namespace and name are required");
                }
                let warn = h.warn_after_days.or(defaults.heartbeat.warn_after_days);
                let unsupported = h.unsupported_after_days.or(defaults.heartbeat.unsupported_after_days);
                errors.pair(&field, warn, unsupported);
                if warn.is_none() && unsupported.is_none() {
                    errors.push(format!("{field}.unsupportedAfterDays"), "required (platform Custom has no default)");
                }
                HeartbeatRule {
                    name: h.name.clone(),
                    namespace: h.lease.namespace.clone(),
                    lease: h.lease.name.clone(),
                    warn_after_days: warn,
                    unsupported_after_days: unsupported,
                }
            })
            .collect();

        // Attestations.
        let mut names = BTreeSet::new();
        let attestations = spec
            .attestations
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let field = format!("spec.attestations[{i}]");
                if !names.insert(a.name.clone()) {
                    errors.push(format!("{field}.name"), format!("'{}' is used twice", a.name));
                }
                errors.name(&format!("{field}.name"), &a.name);
                let days = a.unsupported_after_days.or(defaults.attestation.unsupported_after_days);
                errors.days(&format!("{field}.unsupportedAfterDays"), days);
                if days.is_none() {
                    errors.push(format!("{field}.unsupportedAfterDays"), "required (this platform has no default)");
                }
                AttestationRule {
                    name: a.name.clone(),
                    since: a.since,
                    unsupported_after_days: days.unwrap_or(0),
                    description: a.description.clone(),
                }
            })
            .collect();

        let forbid_alpha = spec.alpha_apis.or(defaults.alpha_apis) == Some(AlphaApis::Forbid);

        errors.into_result(Policy {
            platform: spec.platform,
            selector,
            version,
            image,
            stopped,
            heartbeats,
            attestations,
            forbid_alpha,
        })
    }

    /// The annotation keys the rules read (the operator's cache keeps only these).
    pub fn annotation_keys(&self) -> Vec<String> {
        match &self.image {
            Some(ImageRule { source: ImageSource::Annotation(key), .. }) => vec![key.clone()],
            _ => Vec::new(),
        }
    }
}

#[derive(Default)]
struct Errors(Vec<PolicyError>);

impl Errors {
    fn push(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.0.push(PolicyError { field: field.into(), reason: reason.into() });
    }

    fn days(&mut self, field: &str, days: Option<u32>) {
        if let Some(d) = days.filter(|d| *d > MAX_DAYS) {
            self.push(field, format!("{d} days is more than {MAX_DAYS}"));
        }
    }

    /// `warnAfterDays <= unsupportedAfterDays` under `prefix`.
    fn pair(&mut self, prefix: &str, warn: Option<u32>, unsupported: Option<u32>) {
        self.days(&format!("{prefix}.warnAfterDays"), warn);
        self.days(&format!("{prefix}.unsupportedAfterDays"), unsupported);
        if let (Some(w), Some(u)) = (warn, unsupported) {
            if w > u {
                self.push(format!("{prefix}.warnAfterDays"), format!("{w} exceeds unsupportedAfterDays ({u})"));
            }
        }
    }

    fn name(&mut self, field: &str, name: &str) {
        let ok = !name.is_empty()
            && name.len() <= 63
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !name.starts_with('-')
            && !name.ends_with('-');
        if !ok {
            self.push(field, format!("'{name}' is not a DNS label (lowercase letters, digits and '-')"));
        }
    }

    fn into_result<T>(self, value: T) -> Result<T, Vec<PolicyError>> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::v1alpha1::*;

    fn spec(platform: Platform) -> SupportPolicySpec {
        SupportPolicySpec { platform, ..Default::default() }
    }

    fn first_error(spec: &SupportPolicySpec) -> String {
        Policy::resolve(spec).unwrap_err()[0].to_string()
    }

    #[test]
    fn presets_supply_every_rule() {
        let aks = Policy::resolve(&spec(Platform::Aks)).unwrap();
        let v = aks.version.unwrap();
        assert_eq!((v.supported_minors, v.warn_before_days, v.max_kubelet_skew_minors), (Some(3), 60, 3));
        let img = aks.image.unwrap();
        assert_eq!(img.source, ImageSource::Label("kubernetes.azure.com/node-image-version".into()));
        assert_eq!((img.warn_after_days, img.unsupported_after_days), (Some(30), Some(90)));
        assert!(aks.forbid_alpha);
        let arc = Policy::resolve(&spec(Platform::AksArc)).unwrap();
        assert!(arc.version.unwrap().upgrade_path_removed);
        let stopped = arc.stopped.unwrap();
        assert_eq!(
            (stopped.cluster_unsupported_after_days, stopped.cluster_not_upgradable_after_days),
            (Some(30), Some(90))
        );
        assert_eq!(arc.image.unwrap().source, ImageSource::NodeCreation);
        assert!(!Policy::resolve(&spec(Platform::Eks)).unwrap().forbid_alpha);
    }

    #[test]
    fn custom_evaluates_only_the_sections_it_has() {
        let p = Policy::resolve(&spec(Platform::Custom)).unwrap();
        assert!(p.version.is_none() && p.image.is_none() && p.stopped.is_none() && !p.forbid_alpha);
        let mut s = spec(Platform::Custom);
        s.stopped_nodes = Some(StoppedNodesSpec { warn_after_days: Some(3), ..Default::default() });
        let p = Policy::resolve(&s).unwrap();
        assert_eq!(p.stopped.unwrap().warn_after_days, Some(3));
        assert!(p.version.is_none());
    }

    #[test]
    fn spec_numbers_override_the_preset() {
        let mut s = spec(Platform::Aks);
        s.node_image = Some(NodeImageSpec { unsupported_after_days: Some(60), ..Default::default() });
        let img = Policy::resolve(&s).unwrap().image.unwrap();
        assert_eq!((img.warn_after_days, img.unsupported_after_days), (Some(30), Some(60)));
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
        assert_eq!(Policy::resolve(&s).unwrap().attestations[0].unsupported_after_days, 60);
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
    }

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
}
