//! `attestations`: dated facts the cluster cannot see, declared in the policy; a Warning from
//! `since`, Unsupported after the policy's days.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{Family, Input, Output, Rules};
use crate::crd::v1alpha1::Severity;
use crate::policy::ids::{RuleId, Subject};
use crate::policy::settings::{Errors, PolicyError, Sources};
use crate::policy::signal::{Fact, Signal, Who};
use crate::text::{cap, snippet};
use crate::time::{plus_days, when};

/// An attested fact past its days.
pub(crate) const ATTESTATION_EXPIRED: RuleId = RuleId::new("AttestationExpired");

pub(super) const FAMILY: Family = Family {
    rules: &[ATTESTATION_EXPIRED],
    resolve: |sources| {
        let attestations = Attestations::try_from(sources)?;
        Ok((!attestations.0.is_empty()).then(|| Box::new(attestations) as Box<dyn Rules>))
    },
};

#[derive(Debug, Clone)]
struct Attestation {
    name: String,
    since: DateTime<Utc>,
    unsupported_after_days: u32,
    description: Option<String>,
}

/// The attestations, resolved.
#[derive(Debug, Clone)]
struct Attestations(Vec<Attestation>);

impl TryFrom<&Sources<'_>> for Attestations {
    type Error = Vec<PolicyError>;

    fn try_from(sources: &Sources<'_>) -> Result<Self, Self::Error> {
        let mut errors = Errors::default();
        let default = sources.preset.and_then(|p| p.attestation_defaults.unsupported_after_days);
        let mut names = BTreeSet::new();
        let attestations = sources
            .spec
            .attestations
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let field = format!("spec.attestations[{i}]");
                if !names.insert(a.name.clone()) {
                    errors.push(format!("{field}.name"), format!("'{}' is used twice", snippet(&a.name)));
                }
                errors.dns_label(&format!("{field}.name"), &a.name);
                let days = a.unsupported_after_days.or(default);
                errors.days(&format!("{field}.unsupportedAfterDays"), days);
                if days.is_none() {
                    errors.push(format!("{field}.unsupportedAfterDays"), "required (this platform has no default)");
                }
                Attestation {
                    name: a.name.clone(),
                    since: a.since,
                    unsupported_after_days: days.unwrap_or(0),
                    description: a.description.clone(),
                }
            })
            .collect();
        errors.into_result(Attestations(attestations))
    }
}

impl Rules for Attestations {
    fn evaluate(&self, _: &Input<'_>, out: &mut Output<'_>) {
        for a in &self.0 {
            let unsupported_at = plus_days(a.since, a.unsupported_after_days);
            let mut steps = vec![(unsupported_at, Severity::Unsupported)];
            if a.since < unsupported_at {
                steps.insert(0, (a.since, Severity::Warning));
            }
            let fact = Arc::new(AttestationFact {
                name: a.name.clone(),
                description: a.description.clone(),
                since: a.since,
                unsupported_at,
            });
            let subject = Subject::Attestation(a.name.clone());
            out.signals.push(Signal::one(ATTESTATION_EXPIRED, subject, fact).steps(steps).origin(Some(a.since)));
        }
    }
}

#[derive(Debug)]
struct AttestationFact {
    name: String,
    description: Option<String>,
    since: DateTime<Utc>,
    unsupported_at: DateTime<Utc>,
}

impl Fact for AttestationFact {
    fn message(&self, _: &Who<'_>, severity: Severity) -> String {
        let what = match &self.description {
            Some(d) => cap(d, 256),
            None => format!("Attestation '{}'", snippet(&self.name)),
        };
        let (since, until) = (when(self.since), when(self.unsupported_at));
        if severity == Severity::Unsupported {
            format!("{what} (since {since}): out of support since {until}. Resolve it, then remove the attestation.")
        } else {
            format!("{what} (since {since}): out of support from {until}. Resolve it before then.")
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::crd::v1alpha1::{AttestationSpec, Platform};
    use crate::policy::testing::*;

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
        let subject = "Attestation/subscription-suspended";
        threshold(&s, &c, super::ATTESTATION_EXPIRED, subject, "2026-11-01", None, Some(W));
        threshold(&s, &c, super::ATTESTATION_EXPIRED, subject, "2026-12-31", Some(W), Some(U));
    }
}
