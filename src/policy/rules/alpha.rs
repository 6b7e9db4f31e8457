//! `alphaApis`: built-in API groups served at an alpha version, where the policy forbids them.

use std::sync::Arc;

use super::{Family, Input, Output, Rules};
use crate::crd::v1alpha1::{AlphaApis, Severity};
use crate::policy::ids::{RuleId, Subject};
use crate::policy::signal::{Fact, Signal, Who};
use crate::text::name;

/// A built-in group served at an alpha version.
pub(crate) const ALPHA_API_SERVED: RuleId = RuleId::new("AlphaApiServed");

pub(super) const FAMILY: Family = Family {
    rules: &[ALPHA_API_SERVED],
    resolve: |sources| {
        let setting = sources.spec.alpha_apis.or(sources.preset.and_then(|p| p.spec.alpha_apis));
        Ok((setting == Some(AlphaApis::Forbid)).then(|| Box::new(ForbidAlpha) as Box<dyn Rules>))
    },
};

#[derive(Debug)]
struct ForbidAlpha;

impl Rules for ForbidAlpha {
    fn evaluate<'a>(&self, input: &Input<'a>, out: &mut Output<'a>) {
        for gv in input.snapshot.api_versions.iter().flatten().filter(|gv| is_builtin_alpha(gv)) {
            let fact = Arc::new(AlphaFact { group_version: gv.clone() });
            let signal = Signal::one(ALPHA_API_SERVED, Subject::ApiVersion(gv.clone()), fact);
            out.signals.push(signal.base(Severity::Unsupported));
        }
    }
}

/// A built-in API group (core, `*.k8s.io`, or one of the historic unsuffixed groups) served at
/// an alpha version.
fn is_builtin_alpha(group_version: &str) -> bool {
    let (group, version) = group_version.rsplit_once('/').unwrap_or(("", group_version));
    let builtin = group.is_empty()
        || group.ends_with(".k8s.io")
        || ["apps", "batch", "autoscaling", "policy", "extensions"].contains(&group);
    let alpha = version.strip_prefix('v').and_then(|v| v.split_once("alpha")).is_some_and(|(major, n)| {
        !major.is_empty() && major.bytes().all(|b| b.is_ascii_digit()) && n.bytes().all(|b| b.is_ascii_digit())
    });
    builtin && alpha
}

#[derive(Debug)]
struct AlphaFact {
    group_version: String,
}

impl Fact for AlphaFact {
    fn message(&self, _: &Who<'_>, _: Severity) -> String {
        format!(
            "The API server serves the alpha API {}: alpha features are not supported. Disable the feature gate or \
             runtime config that enables it.",
            name(&self.group_version)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::v1alpha1::Platform;
    use crate::policy::testing::*;

    #[test]
    fn alpha_detection_is_for_builtin_groups_only() {
        assert!(is_builtin_alpha("resource.k8s.io/v1alpha3"));
        assert!(is_builtin_alpha("v1alpha1"));
        assert!(is_builtin_alpha("batch/v2alpha1"));
        assert!(!is_builtin_alpha("resource.k8s.io/v1beta1"));
        assert!(!is_builtin_alpha("gateway.networking.x-k8s.io/v1alpha2"));
        assert!(!is_builtin_alpha("example.com/v1alpha1"));
        assert!(!is_builtin_alpha("apps/v1"));
        assert!(!is_builtin_alpha("apps/valphabet"));
    }

    #[test]
    fn alpha_apis_are_unsupported_where_forbidden() {
        let mut c = cluster("v1.35.1", vec![]);
        c.api_versions =
            Some(vec!["v1".into(), "apps/v1".into(), "resource.k8s.io/v1alpha3".into(), "example.com/v1alpha1".into()]);
        let now = at("2026-11-25");
        let aks = evaluate(&spec(Platform::Aks), &c, now);
        assert_eq!(severity_of(&aks, ALPHA_API_SERVED, "APIVersion/resource.k8s.io/v1alpha3"), Some(U));
        assert_eq!(aks.findings.iter().filter(|f| f.rule == ALPHA_API_SERVED).count(), 1);
        let eks = evaluate(&spec(Platform::Eks), &c, now);
        assert!(eks.findings.iter().all(|f| f.rule != ALPHA_API_SERVED));
    }
}
