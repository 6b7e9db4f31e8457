//! The `status` of a SupportStatus, built from an `Evaluation`: bounded lists and standard
//! conditions whose `lastTransitionTime` only moves when their status flips.

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use super::evaluate::Evaluation;
use kube::Resource;

use crate::crd::v1alpha1::{SupportPolicy, SupportReport, SupportStatus, SupportStatusSpec, Verdict};
use crate::time::to_k8s;

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
    let findings: Vec<_> = eval.findings.iter().take(MAX_FINDINGS).cloned().collect();

    let (supported_status, supported_reason, supported_message) = match eval.verdict {
        Verdict::Supported => ("True", "Supported", "No finding is at Warning or worse.".to_string()),
        Verdict::AtRisk => ("False", "AtRisk", headline(eval, "A deadline is near")),
        Verdict::Unsupported => ("False", "Unsupported", headline(eval, "Out of support")),
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

    SupportReport {
        verdict: Some(eval.verdict),
        conditions,
        observed_generation: generation,
        control_plane: eval.control_plane.clone(),
        nodes: eval.policy_errors.is_empty().then(|| eval.nodes.clone()),
        pools: eval.pools.clone(),
        pools_omitted: eval.pools_omitted,
        findings,
        findings_total: total as u32,
        findings_omitted: total.saturating_sub(MAX_FINDINGS) as u32,
        next_deadline: eval.next_deadline.clone(),
        upcoming: eval.upcoming.clone(),
    }
}

fn headline(eval: &Evaluation, lead: &str) -> String {
    match eval.findings.first() {
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
        message: message.chars().take(32_768).collect(),
        observed_generation: generation,
        last_transition_time,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::v1alpha1::{Finding, Severity};
    use crate::time::parse_rfc3339;

    fn finding(i: usize) -> Finding {
        Finding {
            rule: "NodeNotReady".into(),
            severity: Severity::Warning,
            subject: format!("Node/n{i}"),
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
