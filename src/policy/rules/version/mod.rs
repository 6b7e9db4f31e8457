//! `kubernetesVersion`: the control plane's and every kubelet's minor against the calendar,
//! and the kubelets' skew to the control plane.

#[cfg(test)]
mod tests;
mod text;

use std::collections::BTreeSet;

use foldhash::{HashMap, HashMapExt};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{Family, Input, Output, Rules, Upgrades};
use crate::calendar::{merged_calendar, Standing, SupportCalendar};
use crate::crd::v1alpha1::{KubernetesVersionSpec, Severity, SupportState};
use crate::policy::ids::{RuleId, Subject};
use crate::policy::outcome::{Component, ControlPlane, VersionEnd};
use crate::policy::settings::{Errors, PolicyError, Sources};
use crate::policy::signal::{Cause, Fact, Signal, Steps};
use crate::snapshot::NodeField;
use crate::time::minus_days;
use crate::version::{parse_version, Minor};
use text::{SkewFact, UnparsedFact, VersionFact};

/// A minor at or past its end of support (Warning before it).
pub(crate) const KUBERNETES_VERSION_END_OF_SUPPORT: RuleId = RuleId::new("KubernetesVersionEndOfSupport");
/// A version that is not in the calendar or does not parse.
pub(crate) const KUBERNETES_VERSION_UNKNOWN: RuleId = RuleId::new("KubernetesVersionUnknown");
/// A kubelet's minor at or past its end of support.
pub(crate) const KUBELET_VERSION_END_OF_SUPPORT: RuleId = RuleId::new("KubeletVersionEndOfSupport");
/// A kubelet newer than the control plane, or too many minors older.
pub(crate) const KUBELET_VERSION_SKEW: RuleId = RuleId::new("KubeletVersionSkew");

pub(super) const FAMILY: Family = Family {
    rules: &[
        KUBERNETES_VERSION_END_OF_SUPPORT,
        KUBERNETES_VERSION_UNKNOWN,
        KUBELET_VERSION_END_OF_SUPPORT,
        KUBELET_VERSION_SKEW,
    ],
    resolve: |sources| {
        let Some(section) = sources.section(|s| s.kubernetes_version.as_ref()) else { return Ok(None) };
        Ok(Some(Box::new(VersionRules::try_from((section, sources))?)))
    },
};

/// The version settings, resolved.
#[derive(Debug, Clone)]
pub(super) struct VersionRules {
    /// The calendar with the policy's numbers (shared with the plan).
    pub calendar: Arc<SupportCalendar>,
    warn_before_days: u32,
    max_kubelet_skew_minors: u32,
    upgrade_path_removed: bool,
}

impl TryFrom<(KubernetesVersionSpec, &Sources<'_>)> for VersionRules {
    type Error = Vec<PolicyError>;

    fn try_from((s, sources): (KubernetesVersionSpec, &Sources<'_>)) -> Result<Self, Self::Error> {
        let mut errors = Errors::default();
        let field = |name: &str| format!("spec.kubernetesVersion.{name}");
        let releases = merged_calendar(sources.spec.platform, &s.releases).unwrap_or_else(|e| {
            errors.push(field(&format!("releases[{}].minor", e.index)), e.source.to_string());
            Vec::new()
        });
        let mut seen = BTreeSet::new();
        for (i, r) in s.releases.iter().enumerate() {
            for (name, end) in [("endOfSupport", r.end_of_support), ("ltsEndOfSupport", r.lts_end_of_support)] {
                if end.is_some_and(|end| end <= r.released) {
                    errors.push(field(&format!("releases[{i}].{name}")), "must be after released");
                }
            }
            if !seen.insert(r.minor.clone()) {
                let minor = crate::text::snippet(&r.minor);
                errors.push(field(&format!("releases[{i}].minor")), format!("{minor} is listed twice"));
            }
        }
        errors.days(&field("supportWindowDays"), s.support_window_days);
        if s.support_window_days == Some(0) {
            errors.push(field("supportWindowDays"), "must be at least 1");
        }
        if s.supported_minors == Some(0) {
            errors.push(field("supportedMinors"), "must be at least 1");
        }
        let warn_before_days = s.warn_before_days.unwrap_or(0);
        errors.days(&field("warnBeforeDays"), Some(warn_before_days));
        let max_skew = s.max_kubelet_skew_minors.unwrap_or(3);
        if max_skew > 10 {
            errors.push(field("maxKubeletSkewMinors"), format!("{max_skew} is more than 10"));
        }
        errors.into_result(VersionRules {
            calendar: Arc::new(SupportCalendar {
                releases,
                support_window_days: s.support_window_days,
                supported_minors: s.supported_minors,
                long_term_support: s.long_term_support.unwrap_or(false),
            }),
            warn_before_days,
            max_kubelet_skew_minors: max_skew,
            upgrade_path_removed: s.upgrade_path_removed_at_end_of_support.unwrap_or(false),
        })
    }
}

/// A minor's rule, base severity and steps.
#[derive(Debug, Clone)]
struct Track {
    rule: RuleId,
    base: Option<Severity>,
    steps: Steps,
    standing: Standing,
}

impl VersionRules {
    fn track(&self, minor: Minor) -> Track {
        let standing = self.calendar.standing(minor);
        let (rule, base, steps) = match &standing {
            Standing::TooOld { .. } => (KUBERNETES_VERSION_END_OF_SUPPORT, Some(Severity::Unsupported), vec![]),
            Standing::Unknown { .. } => (KUBERNETES_VERSION_UNKNOWN, Some(Severity::Info), vec![]),
            Standing::Known { end, .. } => {
                let mut steps = Vec::new();
                if let Some(end) = *end {
                    let warn = minus_days(end, self.warn_before_days);
                    if warn < end {
                        steps.push((warn, Severity::Warning));
                    }
                    steps.push((end, Severity::Unsupported));
                }
                (KUBERNETES_VERSION_END_OF_SUPPORT, None, steps)
            }
        };
        Track { rule, base, steps: steps.into(), standing }
    }

    fn version_fact(&self, component: Component, version: &str, standing: Standing) -> Arc<VersionFact> {
        Arc::new(VersionFact {
            component,
            version: version.to_string(),
            standing,
            upgrade_path_removed: self.upgrade_path_removed,
        })
    }

    /// The control plane's signal and summary; its minor when known.
    fn control_plane(&self, input: &Input<'_>, out: &mut Output<'_>) -> Option<Minor> {
        let version = input.snapshot.server_version.as_deref();
        let unknown = |reason: String| {
            Signal::one(
                KUBERNETES_VERSION_UNKNOWN,
                Subject::ControlPlane,
                Arc::new(UnparsedFact::control_plane(reason)),
            )
            .base(Severity::Info)
        };
        let summary = |minor: Option<Minor>, end: Option<DateTime<Utc>>, state: SupportState| ControlPlane {
            version: version.map(str::to_string),
            minor,
            end_of_support: end.map(|e| e.date_naive()),
            state,
        };
        let Some(version) = version else {
            let reason = "the control-plane version is not known: run against the cluster or pass --server-version";
            out.signals.push(unknown(reason.into()));
            out.control_plane = Some(summary(None, None, SupportState::Unknown));
            return None;
        };
        let minor = match parse_version(version) {
            Ok(minor) => minor,
            Err(e) => {
                out.signals.push(unknown(e.to_string()));
                out.control_plane = Some(summary(None, None, SupportState::Unknown));
                return None;
            }
        };
        let Track { rule, base, steps, standing } = self.track(minor);
        let end = match &standing {
            Standing::Known { end, .. } => *end,
            _ => None,
        };
        let signal =
            Signal::one(rule, Subject::ControlPlane, self.version_fact(Component::ControlPlane, version, standing))
                .steps(steps);
        let signal = match base {
            Some(b) => signal.base(b),
            None => signal,
        };
        let state = match (rule == KUBERNETES_VERSION_UNKNOWN, signal.at(input.now)) {
            (true, _) => SupportState::Unknown,
            (false, None | Some(Severity::Info)) => SupportState::Supported,
            (false, Some(Severity::Warning)) => SupportState::Warning,
            (false, Some(Severity::Unsupported)) => SupportState::Unsupported,
        };
        if let Some(end) = end {
            out.samples.version_ends.push(VersionEnd { component: Component::ControlPlane, minor, end });
        }
        out.control_plane = Some(summary(Some(minor), end, state));
        out.signals.push(signal);
        Some(minor)
    }

    fn kubelets<'a>(&self, input: &Input<'a>, control_plane: Option<Minor>, out: &mut Output<'a>) {
        // Nodes share a handful of versions: each is judged once, its signals share its fact.
        // A pool's nodes mostly share one interned version: the last of each pool is compared
        // by address first.
        let mut judged: Vec<Kubelet> = Vec::new();
        let mut by_content: HashMap<&str, usize> = HashMap::new();
        let mut last: Vec<Option<(&Arc<str>, usize)>> = vec![None; input.pools.len()];
        let no_version: Arc<dyn Fact> = Arc::new(UnparsedFact::kubelet("the node reports no kubelet version".into()));
        for node in input.nodes {
            let pool = node.pool;
            let Some(version) = node.kubelet_version else {
                if node.problems.iter().any(|p| p.field == NodeField::KubeletVersion) {
                    continue; // reported as a problem of the node
                }
                out.signals.push(
                    Signal::node(KUBERNETES_VERSION_UNKNOWN, node.name, pool, Cause::Rule, no_version.clone())
                        .base(Severity::Info),
                );
                continue;
            };
            let pool_last = &mut last[node.pool_id as usize];
            let i = match pool_last {
                Some((v, i)) if std::ptr::eq(*v, version) || Arc::ptr_eq(v, version) => *i,
                _ => {
                    let i = *by_content.entry(&**version).or_insert_with(|| {
                        judged.push(self.kubelet(version, control_plane, out));
                        judged.len() - 1
                    });
                    *pool_last = Some((version, i));
                    i
                }
            };
            let kubelet = &judged[i];
            match kubelet {
                Kubelet::Unparsed(fact) => {
                    let cause = Cause::Value(version.clone());
                    out.signals.push(
                        Signal::node(KUBERNETES_VERSION_UNKNOWN, node.name, pool, cause, fact.clone())
                            .base(Severity::Info),
                    );
                }
                Kubelet::Parsed { minor, track, fact, skew } => {
                    let mut signal = Signal::node(track.rule, node.name, pool, Cause::Minor(*minor), fact.clone())
                        .steps(track.steps.clone());
                    signal.base = track.base;
                    out.signals.push(signal);
                    if let Some(skew) = skew {
                        out.signals.push(
                            Signal::node(KUBELET_VERSION_SKEW, node.name, pool, Cause::Minor(*minor), skew.clone())
                                .base(Severity::Unsupported),
                        );
                    }
                }
            }
        }
    }

    /// How a kubelet version stands (once per distinct version).
    fn kubelet(&self, version: &str, control_plane: Option<Minor>, out: &mut Output<'_>) -> Kubelet {
        let minor = match parse_version(version) {
            Ok(m) => m,
            Err(e) => return Kubelet::Unparsed(Arc::new(UnparsedFact::kubelet(e.to_string()))),
        };
        let mut track = self.track(minor);
        if let Standing::Known { end: Some(end), .. } = track.standing {
            out.samples.version_ends.push(VersionEnd { component: Component::Kubelet, minor, end });
        }
        if track.rule == KUBERNETES_VERSION_END_OF_SUPPORT {
            track.rule = KUBELET_VERSION_END_OF_SUPPORT;
        }
        let fact = self.version_fact(Component::Kubelet, version, track.standing.clone());
        let skew = control_plane.and_then(|cp| {
            let behind = minor.minors_behind(cp);
            (behind < 0 || behind > i64::from(self.max_kubelet_skew_minors)).then(|| {
                Arc::new(SkewFact { kubelet: minor, control_plane: cp, max: self.max_kubelet_skew_minors })
                    as Arc<dyn Fact>
            })
        });
        Kubelet::Parsed { minor, track, fact, skew }
    }
}

/// A kubelet version, judged.
enum Kubelet {
    Unparsed(Arc<dyn Fact>),
    Parsed { minor: Minor, track: Track, fact: Arc<dyn Fact>, skew: Option<Arc<dyn Fact>> },
}

impl Rules for VersionRules {
    fn evaluate<'a>(&self, input: &Input<'a>, out: &mut Output<'a>) {
        let control_plane = self.control_plane(input, out);
        self.kubelets(input, control_plane, out);
        out.upgrades = Some(Upgrades {
            calendar: Arc::clone(&self.calendar),
            max_kubelet_skew_minors: self.max_kubelet_skew_minors,
            upgrade_path_removed: self.upgrade_path_removed,
            control_plane,
        });
    }
}
