//! One settings type per section: the CRD's own section types. A preset is a partial policy in
//! those types (`calendar::Preset::spec`); the policy's section is merged over the preset's
//! field by field (`Merge`), and each rule family validates the merged section once into the
//! settings it evaluates with. Nothing reads the raw spec after that.

use crate::calendar::{self, Preset};
use crate::crd::v1alpha1::{
    KubernetesVersionSpec, NodeImageSpec, StoppedNodesSpec, SupportPolicySpec, SystemMetadataSpec,
};

/// Largest number of days any threshold may hold (ten years), as the schema says.
pub const MAX_DAYS: u32 = 3650;

/// `planHorizonDays` when neither the policy nor its preset sets it.
pub const DEFAULT_PLAN_HORIZON_DAYS: u32 = 90;

/// A field of a policy that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct PolicyError {
    /// Path of the field, `spec.nodeImage.datePattern`.
    pub field: String,
    /// Why.
    pub reason: String,
}

/// A section merged over another: every field set in `over` wins.
pub trait Merge {
    /// `self` (the preset's) with `over` (the policy's) merged over it.
    fn merge(self, over: Self) -> Self;
}

impl<T> Merge for Option<T> {
    fn merge(self, over: Self) -> Self {
        over.or(self)
    }
}

impl<T> Merge for Vec<T> {
    fn merge(self, over: Self) -> Self {
        if over.is_empty() {
            self
        } else {
            over
        }
    }
}

/// `Merge` field by field; a field added to the type and not listed here does not compile.
macro_rules! merge_fields {
    ($($ty:ty { $($field:ident),* $(,)? })*) => {$(
        impl Merge for $ty {
            fn merge(self, over: Self) -> Self {
                Self { $($field: Merge::merge(self.$field, over.$field)),* }
            }
        }
    )*};
}

merge_fields! {
    KubernetesVersionSpec {
        releases,
        support_window_days,
        supported_minors,
        warn_before_days,
        max_kubelet_skew_minors,
        upgrade_path_removed_at_end_of_support,
        long_term_support,
    }
    NodeImageSpec { source, label, annotation, date_pattern, warn_after_days, unsupported_after_days }
    StoppedNodesSpec {
        warn_after_days,
        unsupported_after_days,
        cluster_unsupported_after_days,
        cluster_not_upgradable_after_days,
    }
    SystemMetadataSpec { enabled, severity, labels }
}

/// Where a family's settings come from: the policy's spec and its platform's preset.
#[derive(Debug, Clone, Copy)]
pub struct Sources<'a> {
    /// The policy's spec.
    pub spec: &'a SupportPolicySpec,
    /// The preset of its platform (`None` for `Custom`).
    pub preset: Option<&'static Preset>,
}

impl<'a> Sources<'a> {
    /// The sources of `spec`.
    pub fn of(spec: &'a SupportPolicySpec) -> Self {
        Sources { spec, preset: calendar::preset(spec.platform) }
    }

    /// `planHorizonDays`: the policy's, else the preset's, else 90; within 1..=3650 (a value
    /// out of range is an error of the policy, reported once by `Policy::resolve`).
    pub fn plan_horizon_days(&self) -> Result<u32, PolicyError> {
        let days = self
            .spec
            .plan_horizon_days
            .or_else(|| self.preset.and_then(|p| p.spec.plan_horizon_days))
            .unwrap_or(DEFAULT_PLAN_HORIZON_DAYS);
        if (1..=MAX_DAYS).contains(&days) {
            Ok(days)
        } else {
            Err(PolicyError {
                field: "spec.planHorizonDays".into(),
                reason: format!("{days} is not within 1 and {MAX_DAYS}"),
            })
        }
    }

    /// A section with the policy's merged over the preset's; `None` when neither has it (the
    /// family is then not evaluated).
    pub fn section<S: Merge + Clone>(&self, pick: impl Fn(&SupportPolicySpec) -> Option<&S>) -> Option<S> {
        merged(self.preset.and_then(|p| pick(&p.spec)).cloned(), pick(self.spec).cloned())
    }
}

/// The policy's section merged over the preset's; `None` when neither has it.
pub fn merged<S: Merge>(preset: Option<S>, policy: Option<S>) -> Option<S> {
    match (preset, policy) {
        (Some(p), Some(s)) => Some(p.merge(s)),
        (p, s) => s.or(p),
    }
}

/// Collects every problem of a policy, each naming its field.
#[derive(Debug, Default)]
pub struct Errors(Vec<PolicyError>);

impl Errors {
    /// A problem of `field`.
    pub fn push(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.0.push(PolicyError { field: field.into(), reason: reason.into() });
    }

    /// A number of days within the schema's range.
    pub fn days(&mut self, field: &str, days: Option<u32>) {
        if let Some(d) = days.filter(|d| *d > MAX_DAYS) {
            self.push(field, format!("{d} days is more than {MAX_DAYS}"));
        }
    }

    /// `warnAfterDays <= unsupportedAfterDays` under `prefix`.
    pub fn pair(&mut self, prefix: &str, warn: Option<u32>, unsupported: Option<u32>) {
        self.days(&format!("{prefix}.warnAfterDays"), warn);
        self.days(&format!("{prefix}.unsupportedAfterDays"), unsupported);
        if let (Some(w), Some(u)) = (warn, unsupported) {
            if w > u {
                self.push(format!("{prefix}.warnAfterDays"), format!("{w} exceeds unsupportedAfterDays ({u})"));
            }
        }
    }

    /// A DNS label (a heartbeat's or an attestation's name).
    pub fn dns_label(&mut self, field: &str, name: &str) {
        let ok = !name.is_empty()
            && name.len() <= 63
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !name.starts_with('-')
            && !name.ends_with('-');
        if !ok {
            let shown = crate::text::snippet(name);
            self.push(field, format!("'{shown}' is not a DNS label (lowercase letters, digits and '-')"));
        }
    }

    /// Adds the problems of another stage.
    pub fn extend(&mut self, more: Vec<PolicyError>) {
        self.0.extend(more);
    }

    /// `value` when no problem was found, else every problem.
    pub fn into_result<T>(self, value: T) -> Result<T, Vec<PolicyError>> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self.0)
        }
    }
}
