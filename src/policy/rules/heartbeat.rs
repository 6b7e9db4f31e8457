//! `heartbeats`: Leases the cluster renews to prove a connection; stale when not renewed for
//! the policy's days (a missing or never renewed Lease is a Warning at once).

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{Family, Input, Output, Rules};
use crate::crd::v1alpha1::{LeaseReference, Severity};
use crate::policy::ids::{RuleId, Subject};
use crate::policy::settings::{Errors, PolicyError, Sources};
use crate::policy::signal::{escalation, Fact, Signal, Who};
use crate::text::{name, snippet};
use crate::time::{plus_days, when};

/// A heartbeat Lease not renewed for too long.
pub(crate) const HEARTBEAT_STALE: RuleId = RuleId::new("HeartbeatStale");

pub(super) const FAMILY: Family = Family {
    rules: &[HEARTBEAT_STALE],
    resolve: |sources| {
        let heartbeats = Heartbeats::try_from(sources)?;
        Ok((!heartbeats.0.is_empty()).then(|| Box::new(heartbeats) as Box<dyn Rules>))
    },
};

#[derive(Debug, Clone)]
struct Heartbeat {
    name: String,
    lease: LeaseReference,
    warn_after_days: Option<u32>,
    unsupported_after_days: Option<u32>,
}

/// The heartbeats, resolved.
#[derive(Debug, Clone)]
struct Heartbeats(Vec<Heartbeat>);

impl TryFrom<&Sources<'_>> for Heartbeats {
    type Error = Vec<PolicyError>;

    fn try_from(sources: &Sources<'_>) -> Result<Self, Self::Error> {
        let mut errors = Errors::default();
        let defaults = sources.preset.map(|p| p.heartbeat_defaults.clone()).unwrap_or_default();
        let mut names = BTreeSet::new();
        let heartbeats = sources
            .spec
            .heartbeats
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let field = format!("spec.heartbeats[{i}]");
                if !names.insert(h.name.clone()) {
                    errors.push(format!("{field}.name"), format!("'{}' is used twice", snippet(&h.name)));
                }
                errors.dns_label(&format!("{field}.name"), &h.name);
                if h.lease.namespace.is_empty() || h.lease.name.is_empty() {
                    errors.push(format!("{field}.lease"), "namespace and name are required");
                }
                let warn = h.warn_after_days.or(defaults.warn_after_days);
                let unsupported = h.unsupported_after_days.or(defaults.unsupported_after_days);
                errors.pair(&field, warn, unsupported);
                if warn.is_none() && unsupported.is_none() {
                    errors.push(format!("{field}.unsupportedAfterDays"), "required (platform Custom has no default)");
                }
                Heartbeat {
                    name: h.name.clone(),
                    lease: h.lease.clone(),
                    warn_after_days: warn,
                    unsupported_after_days: unsupported,
                }
            })
            .collect();
        errors.into_result(Heartbeats(heartbeats))
    }
}

impl Rules for Heartbeats {
    fn evaluate<'a>(&self, input: &Input<'a>, out: &mut Output<'a>) {
        for h in &self.0 {
            let lease = input.snapshot.leases.get(&(h.lease.namespace.clone(), h.lease.name.clone()));
            let renewed = lease.and_then(|l| l.renewed);
            let problem = match lease {
                None => Some("the Lease does not exist".to_string()),
                Some(l) if l.renewed.is_none() => {
                    Some(l.problem.clone().unwrap_or_else(|| "the Lease has never been renewed".into()))
                }
                Some(_) => None,
            };
            if let Some(r) = renewed {
                out.samples.heartbeats.push((h.name.clone(), r));
            }
            let warn_at = renewed.and_then(|r| h.warn_after_days.map(|d| plus_days(r, d)));
            let unsupported_at = renewed.and_then(|r| h.unsupported_after_days.map(|d| plus_days(r, d)));
            let base = problem.as_ref().map(|_| Severity::Warning);
            let fact = Arc::new(HeartbeatFact { lease: h.lease.clone(), renewed, problem, unsupported_at });
            let mut signal = Signal::one(HEARTBEAT_STALE, Subject::Heartbeat(h.name.clone()), fact);
            signal.base = base;
            out.signals.push(signal.steps(escalation(warn_at, unsupported_at)).origin(renewed));
        }
    }

    fn leases(&self) -> Vec<LeaseReference> {
        self.0.iter().map(|h| h.lease.clone()).collect()
    }
}

#[derive(Debug)]
struct HeartbeatFact {
    lease: LeaseReference,
    renewed: Option<DateTime<Utc>>,
    problem: Option<String>,
    unsupported_at: Option<DateTime<Utc>>,
}

impl Fact for HeartbeatFact {
    fn message(&self, _: &Who<'_>, severity: Severity) -> String {
        let l = format!("Lease {}/{}", name(&self.lease.namespace), name(&self.lease.name));
        match (&self.problem, self.renewed) {
            (Some(p), _) => {
                format!(
                    "{l}: {p}. The connection it proves cannot be checked: make sure the agent that renews it runs."
                )
            }
            (None, Some(r)) => match (severity, self.unsupported_at) {
                (Severity::Unsupported, Some(u)) => {
                    format!(
                        "{l} was last renewed on {}: out of support since {}. Restore the connection.",
                        when(r),
                        when(u)
                    )
                }
                (_, Some(u)) => format!(
                    "{l} was last renewed on {}: out of support from {}. Restore the connection before then.",
                    when(r),
                    when(u)
                ),
                _ => format!("{l} was last renewed on {}. Restore the connection.", when(r)),
            },
            (None, None) => format!("{l} has never been renewed."),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::crd::v1alpha1::{HeartbeatSpec, LeaseReference, Platform};
    use crate::policy::testing::*;
    use crate::snapshot::LeaseInfo;

    #[test]
    fn heartbeat_lease_age() {
        let mut s = spec(Platform::AksArc);
        s.heartbeats = vec![HeartbeatSpec {
            name: "arc".into(),
            lease: LeaseReference { namespace: "azure-arc".into(), name: "hb".into() },
            warn_after_days: None,
            unsupported_after_days: None,
        }];
        let mut c = cluster("v1.32.6", vec![]);
        let missing = evaluate(&s, &c, at("2026-11-25"));
        assert_eq!(severity_of(&missing, super::HEARTBEAT_STALE, "Heartbeat/arc"), Some(W));
        c.leases.insert(
            ("azure-arc".into(), "hb".into()),
            LeaseInfo {
                namespace: "azure-arc".into(),
                name: "hb".into(),
                renewed: Some(at("2026-10-16T01:02:44Z")),
                problem: None,
            },
        );
        threshold(&s, &c, super::HEARTBEAT_STALE, "Heartbeat/arc", "2026-11-05T01:02:44Z", None, Some(W));
        threshold(&s, &c, super::HEARTBEAT_STALE, "Heartbeat/arc", "2026-11-15T01:02:44Z", Some(W), Some(U));
    }
}
