//! The `status` of a SupportStatus, built from an `Evaluation`: the one place where typed
//! findings become v1alpha1 wire types. Every string from the cluster or a user is capped,
//! lists are bounded, and the whole status stays within a byte budget (`budget`) for any input.

mod budget;

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Resource;

use super::ids::Subject;
use super::outcome::{self, Evaluation};
use crate::crd::v1alpha1::{
    ControlPlaneStatus, Finding, PlanReason, PlanStep, PoolSummary, SupportPolicy, SupportReport, SupportStatus,
    SupportStatusSpec, Transition, Verdict, VersionCount,
};
use crate::text::{cap, name};
use crate::time::to_k8s;
pub use budget::MAX_STATUS_BYTES;

/// The SupportStatus object for a policy, as the operator applies it and `check -o json`
/// prints it: same name as the policy, owned by it when its uid is known.
pub fn status_object(policy: &SupportPolicy, status: SupportReport) -> SupportStatus {
    let name = policy.metadata.name.clone().unwrap_or_default();
    let mut object = SupportStatus::new(&name, SupportStatusSpec { policy: name.clone() });
    object.metadata.owner_references = policy.controller_owner_ref(&()).map(|mut o| {
        o.block_owner_deletion = Some(true);
        vec![o]
    });
    object.status = Some(status);
    object
}

/// At most this many findings in the status.
pub const MAX_FINDINGS: usize = 50;
/// At most this many plan steps in the status.
pub const MAX_PLAN_STEPS: usize = 50;
/// At most this many pools in the status.
pub const MAX_POOLS: usize = 100;
/// At most this many versions (kubelet, image) per pool in the status.
pub const MAX_VERSIONS_PER_POOL: usize = 10;
/// Characters of a version or an image in the status.
pub const VERSION_CHARS: usize = 128;
/// Characters of a finding's message.
pub const MESSAGE_CHARS: usize = 2048;
/// Characters of a condition's message (the API allows 32,768; the budget wants less).
pub const CONDITION_MESSAGE_CHARS: usize = 4096;

/// Condition type: the cluster is supported under the policy.
pub const CONDITION_SUPPORTED: &str = "Supported";
/// Condition type: the policy is valid.
pub const CONDITION_POLICY_VALID: &str = "PolicyValid";

/// Builds the status. `previous` is the status as last written (its conditions keep their
/// `lastTransitionTime` unless their status changes); `now` stamps new transitions.
pub fn report(
    eval: &Evaluation,
    previous: Option<&SupportReport>,
    generation: Option<i64>,
    now: DateTime<Utc>,
) -> SupportReport {
    let total = eval.findings.len();
    let findings: Vec<Finding> = eval.findings.iter().take(MAX_FINDINGS).map(finding).collect();
    let pools: Vec<PoolSummary> = eval.pools.iter().take(MAX_POOLS).map(pool).collect();
    let plan: Vec<PlanStep> = eval.plan.iter().take(MAX_PLAN_STEPS).map(step).collect();

    let (supported_status, supported_reason, supported_message) = match eval.verdict {
        Verdict::Supported => ("True", "Supported", "No finding is at Warning or worse.".to_string()),
        Verdict::AtRisk => ("False", "AtRisk", headline(&findings, "A deadline is near")),
        Verdict::Unsupported => ("False", "Unsupported", headline(&findings, "Out of support")),
        Verdict::Unknown => {
            ("Unknown", "PolicyInvalid", "The policy is invalid: see the PolicyValid condition.".to_string())
        }
    };
    let (valid_status, valid_reason, valid_message) = if eval.policy_errors.is_empty() {
        ("True", "Valid", "The policy resolved against its preset.".to_string())
    } else {
        let errs: Vec<String> = eval.policy_errors.iter().map(ToString::to_string).collect();
        ("False", "InvalidSpec", errs.join("; "))
    };
    let prev = previous.map(|p| p.conditions.as_slice()).unwrap_or_default();
    let conditions = vec![
        condition(prev, CONDITION_SUPPORTED, supported_status, supported_reason, supported_message, generation, now),
        condition(prev, CONDITION_POLICY_VALID, valid_status, valid_reason, valid_message, generation, now),
    ];

    let mut status = SupportReport {
        verdict: Some(eval.verdict),
        conditions,
        observed_generation: generation,
        control_plane: eval.control_plane.as_ref().map(|cp| ControlPlaneStatus {
            version: cp.version.as_deref().map(|v| cap(v, VERSION_CHARS)),
            minor: cp.minor.map(|m| m.to_string()),
            end_of_support: cp.end_of_support,
            state: cp.state,
        }),
        nodes: eval.policy_errors.is_empty().then(|| eval.nodes.clone()),
        pools_omitted: (eval.pools.len() - pools.len()) as u32,
        pools,
        findings_omitted: (total - findings.len()) as u32,
        findings,
        findings_total: total as u32,
        next_deadline: eval.next_deadline.as_ref().map(transition),
        upcoming: eval.upcoming.iter().map(transition).collect(),
        plan_omitted: (eval.plan.len() - plan.len()) as u32,
        plan,
    };
    budget::fit(&mut status);
    status
}

/// `Kind/name`, the name capped.
fn subject(s: &Subject) -> String {
    format!("{}/{}", s.kind(), name(s.name()))
}

fn finding(f: &outcome::Finding) -> Finding {
    Finding {
        rule: f.rule.to_string(),
        severity: f.severity,
        subject: subject(&f.subject),
        message: cap(&f.message, MESSAGE_CHARS),
        since: f.since,
        deadline: f.deadline,
    }
}

fn transition(t: &outcome::Transition) -> Transition {
    Transition { at: t.at, rule: t.rule.to_string(), subject: subject(&t.subject), severity: t.severity }
}

fn step(s: &outcome::Step) -> PlanStep {
    PlanStep {
        action: s.action,
        subject: subject(&s.subject),
        from: s.from.map(|m| m.to_string()),
        to: s.to.map(|m| m.to_string()),
        by: s.by.instant(),
        prevents: PlanReason {
            rule: s.prevents.rule.to_string(),
            subject: subject(&s.prevents.subject),
            at: s.prevents.at.instant(),
        },
        redeploy: s.redeploy,
        message: cap(&s.message, MESSAGE_CHARS),
    }
}

fn pool(p: &outcome::Pool) -> PoolSummary {
    // Capped values can coincide: count them together.
    let top = |values: Vec<(&str, u32)>| {
        let mut counts = std::collections::BTreeMap::<String, u32>::new();
        for (v, n) in values {
            *counts.entry(cap(v, VERSION_CHARS)).or_default() += n;
        }
        let mut v: Vec<VersionCount> =
            counts.into_iter().map(|(version, count)| VersionCount { version, count }).collect();
        v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.version.cmp(&b.version)));
        v.truncate(MAX_VERSIONS_PER_POOL);
        v
    };
    PoolSummary {
        name: name(&p.name),
        nodes: p.nodes,
        ready: p.ready,
        kubelet_versions: top(p.kubelets.iter().map(|(v, n)| (v.as_deref().unwrap_or("unknown"), *n)).collect()),
        images: top(p.images.iter().map(|(i, n)| (i.label(), *n)).collect()),
        oldest_image_date: p.oldest_image,
    }
}

fn headline(findings: &[Finding], lead: &str) -> String {
    match findings.first() {
        Some(f) => format!("{lead}: {} ({}): {}", f.rule, f.subject, f.message),
        None => lead.to_string(),
    }
}

/// A condition that keeps the previous `lastTransitionTime` when its status is unchanged.
pub fn condition(
    previous: &[Condition],
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: DateTime<Utc>,
) -> Condition {
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| to_k8s(now));
    Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message: cap(&message, CONDITION_MESSAGE_CHARS),
        observed_generation: generation,
        last_transition_time,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::v1alpha1::Severity;
    use crate::policy::ids::RuleId;
    use crate::time::parse_rfc3339;

    fn finding(i: usize) -> outcome::Finding {
        outcome::Finding {
            rule: RuleId::new("NodeNotReady"),
            severity: Severity::Warning,
            subject: Subject::Node(format!("n{i}").into()),
            message: "m".into(),
            since: None,
            deadline: None,
        }
    }

    #[test]
    fn findings_are_bounded_and_the_cut_is_counted() {
        let eval =
            Evaluation { verdict: Verdict::AtRisk, findings: (0..70).map(finding).collect(), ..Default::default() };
        let r = report(&eval, None, Some(3), parse_rfc3339("2026-11-25T00:00:00Z").unwrap());
        assert_eq!((r.findings.len(), r.findings_total, r.findings_omitted), (50, 70, 20));
        assert_eq!(r.observed_generation, Some(3));
        assert_eq!(r.conditions[0].status, "False");
        assert_eq!(r.conditions[0].reason, "AtRisk");
    }

    #[test]
    fn plan_steps_are_bounded_and_the_cut_is_counted() {
        let step = |i: u32| outcome::Step {
            action: crate::crd::v1alpha1::PlanAction::RefreshNodeImage,
            subject: Subject::NodePool(format!("p{i}")),
            from: None,
            to: None,
            by: outcome::Due::At(parse_rfc3339("2026-12-01T00:00:00Z").unwrap()),
            prevents: outcome::Reason {
                rule: RuleId::new("NodeImageOutdated"),
                subject: Subject::NodePool(format!("p{i}")),
                at: outcome::Due::Already,
            },
            redeploy: false,
            message: "m".repeat(3000),
        };
        let eval = Evaluation { plan: (0..70).map(step).collect(), ..Default::default() };
        let r = report(&eval, None, Some(1), parse_rfc3339("2026-11-25T00:00:00Z").unwrap());
        assert_eq!((r.plan.len(), r.plan_omitted), (MAX_PLAN_STEPS, 20));
        assert_eq!(r.plan[49].subject, "NodePool/p49", "the first steps are kept, in order");
        assert_eq!(r.plan[0].message.chars().count(), MESSAGE_CHARS, "messages are capped");
        assert_eq!(r.plan[0].prevents.at, None, "due already: no instant");
    }

    #[test]
    fn transition_time_moves_only_when_the_status_flips() {
        let t0 = parse_rfc3339("2026-11-01T00:00:00Z").unwrap();
        let t1 = parse_rfc3339("2026-11-02T00:00:00Z").unwrap();
        let supported = Evaluation { verdict: Verdict::Supported, ..Default::default() };
        let first = report(&supported, None, Some(1), t0);
        let again = report(&supported, Some(&first), Some(1), t1);
        assert_eq!(again.conditions, first.conditions, "unchanged status keeps lastTransitionTime");
        let at_risk = Evaluation { verdict: Verdict::AtRisk, findings: vec![finding(0)], ..Default::default() };
        let flipped = report(&at_risk, Some(&again), Some(1), t1);
        assert_eq!(flipped.conditions[0].last_transition_time, to_k8s(t1));
        assert_eq!(flipped.conditions[1].last_transition_time, to_k8s(t0), "PolicyValid did not flip");
    }
}
