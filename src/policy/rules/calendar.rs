//! `CalendarStale`: the calendar cannot tell how long the control plane's minor, or the next
//! one, is supported. Without an end of support no version rule has a deadline and the plan
//! has no target, so a stale calendar would otherwise pass silently.
//!
//! The control plane's minor without a known end (not listed, or listed with no
//! `endOfSupport` and no `supportWindowDays` to derive one) is a Warning at once. Otherwise,
//! when the next minor has no known end, it is Info, and a Warning from the instant the
//! control plane's end of support comes within `planHorizonDays` (its end − the horizon): the
//! plan needs the next minor's end from then on.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::version::VersionRules;
use super::{Family, Input, Output, Rules};
use crate::calendar::{Standing, SupportCalendar};
use crate::crd::v1alpha1::Severity;
use crate::policy::ids::{RuleId, Subject};
use crate::policy::signal::{Fact, Signal, Who};
use crate::time::{minus_days, when};
use crate::version::{parse_version, Minor};

/// The calendar has no end of support for the control plane's minor or the next one.
pub(crate) const CALENDAR_STALE: RuleId = RuleId::new("CalendarStale");

pub(super) const FAMILY: Family = Family {
    rules: &[CALENDAR_STALE],
    resolve: |sources| {
        let Some(section) = sources.section(|s| s.kubernetes_version.as_ref()) else { return Ok(None) };
        // The version family and `Policy::resolve` report what is wrong with these; a policy
        // with any problem is not evaluated at all.
        let (Ok(versions), Ok(horizon_days)) =
            (VersionRules::try_from((section, sources)), sources.plan_horizon_days())
        else {
            return Ok(None);
        };
        Ok(Some(Box::new(CalendarRules { calendar: versions.calendar, horizon_days })))
    },
};

/// The calendar and the plan horizon.
#[derive(Debug, Clone)]
struct CalendarRules {
    calendar: Arc<SupportCalendar>,
    horizon_days: u32,
}

/// The end of support the calendar gives a minor (`None`: not listed, or no end).
fn known_end(standing: &Standing) -> Option<DateTime<Utc>> {
    match standing {
        Standing::Known { end, .. } => *end,
        Standing::Unknown { .. } | Standing::TooOld { .. } => None,
    }
}

impl Rules for CalendarRules {
    fn evaluate<'a>(&self, input: &Input<'a>, out: &mut Output<'a>) {
        let Some(minor) = input.snapshot.server_version.as_deref().and_then(|v| parse_version(v).ok()) else {
            return; // the version family reports a version that is missing or does not parse
        };
        let standing = self.calendar.standing(minor);
        let newest = self.calendar.releases.last().map(|r| r.minor);
        let gap = |minor: Minor, standing: &Standing| Gap {
            minor,
            listed: matches!(standing, Standing::Known { .. }),
            newest,
        };
        let signal = match (&standing, known_end(&standing)) {
            (Standing::TooOld { .. }, _) => return, // out of support whatever the calendar says
            (_, None) => {
                let fact =
                    Arc::new(StaleFact { gap: gap(minor, &standing), own: None, horizon_days: self.horizon_days });
                Signal::one(CALENDAR_STALE, Subject::Calendar(minor.to_string()), fact).base(Severity::Warning)
            }
            (_, Some(end)) => {
                let next = Minor { major: minor.major, minor: minor.minor.saturating_add(1) };
                let next_standing = self.calendar.standing(next);
                if known_end(&next_standing).is_some() {
                    return;
                }
                let warn_at = minus_days(end, self.horizon_days);
                let fact = Arc::new(StaleFact {
                    gap: gap(next, &next_standing),
                    own: Some((minor, end, warn_at)),
                    horizon_days: self.horizon_days,
                });
                Signal::one(CALENDAR_STALE, Subject::Calendar(next.to_string()), fact)
                    .base(Severity::Info)
                    .steps(vec![(warn_at, Severity::Warning)])
            }
        };
        out.signals.push(signal);
    }
}

/// A minor the calendar gives no end for.
#[derive(Debug)]
struct Gap {
    minor: Minor,
    /// Listed, without an end (else not listed at all).
    listed: bool,
    /// The calendar's newest minor.
    newest: Option<Minor>,
}

#[derive(Debug)]
struct StaleFact {
    gap: Gap,
    /// For the next minor: the control plane's minor, its end, and when the Warning starts.
    own: Option<(Minor, DateTime<Utc>, DateTime<Utc>)>,
    horizon_days: u32,
}

impl Fact for StaleFact {
    fn message(&self, _: &Who<'_>, severity: Severity) -> String {
        let g = &self.gap;
        let why = match (g.listed, g.newest) {
            (true, _) => "it is listed without endOfSupport, and no supportWindowDays applies".to_string(),
            (false, Some(newest)) => format!("it is not listed; the newest listed minor is {newest}"),
            (false, None) => "the calendar is empty".to_string(),
        };
        let fix = format!(
            "Add {} with its end of support under spec.kubernetesVersion.releases, or update support-operator.",
            g.minor
        );
        match self.own {
            None => format!(
                "The calendar has no end of support for {}, the control plane's minor ({why}): no version deadline \
                 and no upgrade plan can be computed. {fix}",
                g.minor
            ),
            Some((own, end, warn_at)) if severity < Severity::Warning => format!(
                "The calendar has no end of support for {}, the minor after the control plane's {own} ({why}). The \
                 upgrade plan needs it from {}, when {own}'s end of support ({}) comes within the {}-day plan \
                 horizon. {fix}",
                g.minor,
                when(warn_at),
                when(end),
                self.horizon_days
            ),
            Some((own, end, _)) => format!(
                "The calendar has no end of support for {}, the minor after the control plane's {own} ({why}), and \
                 {own}'s end of support ({}) is within the {}-day plan horizon: the upgrade plan cannot tell whether \
                 {} keeps the cluster supported. {fix}",
                g.minor,
                when(end),
                self.horizon_days,
                g.minor
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::crd::v1alpha1::{KubernetesVersionSpec, Platform, ReleaseSpec};
    use crate::policy::testing::*;

    fn release(minor: &str, released: &str, end: Option<&str>) -> ReleaseSpec {
        ReleaseSpec {
            minor: minor.into(),
            released: released.parse().unwrap(),
            end_of_support: end.map(|e| e.parse().unwrap()),
            lts_end_of_support: None,
        }
    }

    /// A Custom calendar of 1.34 (ends 2027-06-30) and, optionally, 1.35.
    fn custom(next: Option<ReleaseSpec>, horizon: Option<u32>) -> crate::crd::v1alpha1::SupportPolicySpec {
        let mut s = spec(Platform::Custom);
        s.plan_horizon_days = horizon;
        s.kubernetes_version = Some(KubernetesVersionSpec {
            releases: [Some(release("1.34", "2026-01-01", Some("2027-06-30"))), next].into_iter().flatten().collect(),
            ..Default::default()
        });
        s
    }

    #[test]
    fn an_unknown_next_minor_is_info_then_a_warning_once_the_end_is_within_the_horizon() {
        let c = cluster("v1.34.2", vec![node("n").kubelet("v1.34.2")]);
        // 1.34 ends 2027-06-30; with the default 90-day horizon the Warning starts 90 days before.
        let s = custom(None, None);
        threshold(&s, &c, super::CALENDAR_STALE, "Calendar/1.35", "2027-04-01", Some(Info), Some(W));
        let e = evaluate(&s, &c, at("2026-12-01"));
        assert!(e.findings[0].message.contains("needs it from 2027-04-01"), "{}", e.findings[0].message);
        assert_eq!(e.verdict, crate::crd::v1alpha1::Verdict::Supported, "Info only");
        // A horizon of 30 days moves the threshold.
        threshold(
            &custom(None, Some(30)),
            &c,
            super::CALENDAR_STALE,
            "Calendar/1.35",
            "2027-05-31",
            Some(Info),
            Some(W),
        );
        // An end for 1.35 ends the finding; a listed 1.35 without one keeps it.
        let known = custom(Some(release("1.35", "2026-06-01", Some("2027-09-01"))), None);
        assert_eq!(severity_of(&evaluate(&known, &c, at("2027-05-01")), super::CALENDAR_STALE, "Calendar/1.35"), None);
        let listed = custom(Some(release("1.35", "2026-06-01", None)), None);
        let e = evaluate(&listed, &c, at("2027-05-01"));
        assert_eq!(severity_of(&e, super::CALENDAR_STALE, "Calendar/1.35"), Some(W));
        assert!(e.findings.iter().any(|f| f.message.contains("listed without endOfSupport")));
    }

    #[test]
    fn a_control_plane_minor_without_an_end_is_a_warning_at_once() {
        // Newer than every entry of the AKS calendar.
        let e =
            evaluate(&spec(Platform::Aks), &cluster("v1.41.0", vec![node("n").kubelet("v1.41.0")]), at("2026-11-25"));
        assert_eq!(severity_of(&e, super::CALENDAR_STALE, "Calendar/1.41"), Some(W));
        assert_eq!(e.verdict, crate::crd::v1alpha1::Verdict::AtRisk);
        // Listed without an end in a calendar that has no window to derive one.
        let mut s = custom(None, None);
        s.kubernetes_version.as_mut().unwrap().releases[0].end_of_support = None;
        let e = evaluate(&s, &cluster("v1.34.2", vec![node("n").kubelet("v1.34.2")]), at("2026-11-25"));
        assert_eq!(severity_of(&e, super::CALENDAR_STALE, "Calendar/1.34"), Some(W));
        // A window gives every listed minor an end: nothing is stale.
        s.kubernetes_version.as_mut().unwrap().support_window_days = Some(365);
        s.kubernetes_version.as_mut().unwrap().releases.push(release("1.35", "2026-05-01", None));
        let e = evaluate(&s, &cluster("v1.34.2", vec![node("n").kubelet("v1.34.2")]), at("2026-11-25"));
        assert!(e.findings.iter().all(|f| f.rule != super::CALENDAR_STALE), "{:?}", e.findings);
    }

    #[test]
    fn a_minor_older_than_the_calendar_is_not_stale_and_the_presets_are_current() {
        let old = evaluate(&spec(Platform::Aks), &cluster("v1.20.1", vec![]), at("2026-11-25"));
        assert!(old.findings.iter().all(|f| f.rule != super::CALENDAR_STALE));
        // The examples' control planes: every preset knows the next minor.
        for (platform, version) in [
            (Platform::Aks, "v1.34.2"),
            (Platform::Aks, "v1.35.3"),
            (Platform::Eks, "v1.34.1"),
            (Platform::AksArc, "v1.32.6"),
        ] {
            let e = evaluate(&spec(platform), &cluster(version, vec![]), at("2026-11-25"));
            assert!(e.findings.iter().all(|f| f.rule != super::CALENDAR_STALE), "{platform:?} {version}");
        }
    }
}
