//! `evaluate`: the families' signals → findings, verdict, next deadline and upcoming
//! transitions (the summaries come from `summary`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::ids::{RuleId, Subject, POLICY_INVALID};
use super::model::Policy;
use super::outcome::{Evaluation, Finding, Transition};
use super::plan;
use super::rules::{Input, Output};
use super::settings::PolicyError;
use super::signal::{PoolGroup, Signal, Who};
use super::summary;
use crate::crd::v1alpha1::{Severity, SupportPolicySpec, Verdict};
use crate::snapshot::{ClusterSnapshot, NodeInfo};
use crate::time::{minus_days, plus_days};

/// How far ahead `upcoming` looks.
pub const HORIZON_DAYS: u32 = 180;
/// At most this many entries in `upcoming`.
pub const MAX_UPCOMING: usize = 20;

/// Resolves the policy and evaluates it. An invalid policy gives verdict `Unknown` with a
/// `PolicyInvalid` finding naming every bad field; nothing else is evaluated.
pub fn evaluate(spec: &SupportPolicySpec, snapshot: &ClusterSnapshot, now: DateTime<Utc>) -> Evaluation {
    match Policy::resolve(spec) {
        Ok(policy) => evaluate_resolved(&policy, snapshot, now),
        Err(errors) => invalid(errors),
    }
}

/// The evaluation of a policy that cannot be used: verdict `Unknown`, one `PolicyInvalid`
/// finding naming every bad field.
pub fn invalid(errors: Vec<PolicyError>) -> Evaluation {
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    Evaluation {
        verdict: Verdict::Unknown,
        findings: vec![Finding {
            rule: POLICY_INVALID,
            severity: Severity::Warning,
            subject: Subject::Policy,
            message: format!("The policy is invalid and was not evaluated: {}. Fix the policy.", text.join("; ")),
            since: None,
            deadline: None,
        }],
        policy_errors: errors,
        ..Default::default()
    }
}

/// Evaluates a resolved policy against a snapshot at `now`.
pub fn evaluate_resolved(policy: &Policy, snapshot: &ClusterSnapshot, now: DateTime<Utc>) -> Evaluation {
    use kube::core::SelectorExt;
    let nodes: Vec<&NodeInfo> = snapshot
        .nodes
        .iter()
        .map(AsRef::as_ref)
        .filter(|n| policy.selector.as_ref().is_none_or(|s| s.matches(&n.labels)))
        .collect();
    let input = Input { snapshot, nodes: &nodes, now };
    let mut out = Output::default();
    for rules in &policy.rules {
        rules.evaluate(&input, &mut out);
    }

    let (findings, transitions) = findings(&out.signals, now);
    let next_deadline = transitions.first().cloned();
    let horizon = plus_days(now, HORIZON_DAYS);
    // The status changes at every step, and when a transition enters the horizon of `upcoming`.
    let next_change = out
        .signals
        .iter()
        .flat_map(|s| s.steps.iter().map(|(at, _)| *at))
        .chain(transitions.iter().filter(|t| t.at > horizon).map(|t| minus_days(t.at, HORIZON_DAYS)))
        .filter(|at| *at > now)
        .min();
    // The plan reads the signals; it changes at instants of its own too.
    let plan = plan::plan(&plan::Input {
        upgrades: out.upgrades.as_ref(),
        signals: &out.signals,
        now,
        horizon_days: policy.plan_horizon_days,
    });
    let next_change = next_change.into_iter().chain(plan.next_change).min();
    let upcoming: Vec<Transition> = transitions.into_iter().filter(|t| t.at <= horizon).take(MAX_UPCOMING).collect();
    let verdict = match findings.iter().map(|f| f.severity).max() {
        Some(Severity::Unsupported) => Verdict::Unsupported,
        Some(Severity::Warning) => Verdict::AtRisk,
        _ => Verdict::Supported,
    };
    let summary = summary::summarise(snapshot, &nodes, out, now);
    Evaluation {
        verdict,
        policy_errors: Vec::new(),
        control_plane: summary.control_plane,
        nodes: summary.nodes,
        pools: summary.pools,
        findings,
        next_deadline,
        upcoming,
        next_change,
        samples: summary.samples,
        plan: plan.steps,
    }
}

/// Signals of nodes with the same (rule, pool, cause) make one finding; every other signal is
/// a finding of its own.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Group {
    One(Subject),
    Pool(PoolGroup),
}

/// Findings (sorted worst first, then soonest deadline, rule and subject) and every future
/// transition (soonest first).
fn findings(signals: &[Signal], now: DateTime<Utc>) -> (Vec<Finding>, Vec<Transition>) {
    let mut groups: BTreeMap<(RuleId, Group), Vec<&Signal>> = BTreeMap::new();
    for s in signals {
        let group = match &s.group {
            Some(g) => Group::Pool(g.clone()),
            None => Group::One(s.subject.clone()),
        };
        groups.entry((s.rule, group)).or_default().push(s);
    }

    let mut findings = Vec::new();
    let mut transitions = Vec::new();
    for ((rule, _), mut members) in groups {
        // Worst member first (its fact speaks for the group), then by name.
        members.sort_by(|a, b| {
            b.at(now).cmp(&a.at(now)).then_with(|| a.origin.cmp(&b.origin)).then_with(|| a.subject.cmp(&b.subject))
        });
        let pool = members[0].group.as_ref().map(|g| g.pool.as_str());
        let subject = if members.len() > 1 {
            Subject::NodePool(pool.unwrap_or("default").to_string())
        } else {
            members[0].subject.clone()
        };
        let current = members.iter().filter_map(|m| m.at(now)).max();

        // Where the group's severity rises after now.
        let mut future: Vec<(DateTime<Utc>, Severity)> =
            members.iter().flat_map(|m| m.steps.iter().copied()).filter(|(at, _)| *at > now).collect();
        future.sort();
        let mut running = current;
        let mut i = 0;
        while i < future.len() {
            let at = future[i].0;
            let mut sev = future[i].1;
            while i < future.len() && future[i].0 == at {
                sev = sev.max(future[i].1);
                i += 1;
            }
            if Some(sev) > running {
                running = Some(sev);
                transitions.push(Transition { at, rule, subject: subject.clone(), severity: sev });
            }
        }

        let Some(severity) = current else { continue };
        let since = members
            .iter()
            .filter_map(|m| {
                if m.base.is_some_and(|b| b >= severity) {
                    m.origin
                } else {
                    m.steps.iter().find(|(at, s)| *s >= severity && *at <= now).map(|(at, _)| *at)
                }
            })
            .min();
        let deadline = (severity < Severity::Unsupported)
            .then(|| {
                members
                    .iter()
                    .filter_map(|m| {
                        m.steps.iter().find(|(at, s)| *s == Severity::Unsupported && *at > now).map(|(at, _)| *at)
                    })
                    .min()
            })
            .flatten();
        let worst: Vec<&Signal> = members.iter().copied().filter(|m| m.at(now) == Some(severity)).collect();
        let speaking = if worst.is_empty() { &members } else { &worst };
        let who = Who {
            nodes: speaking
                .iter()
                .filter_map(|m| match &m.subject {
                    Subject::Node(n) => Some(n.as_str()),
                    _ => None,
                })
                .collect(),
            pool,
        };
        let mut message = speaking[0].fact.message(&who, severity);
        if speaking.len() < members.len() {
            message.push_str(&format!(
                " ({} more nodes of the pool share the cause at a lower severity.)",
                members.len() - speaking.len()
            ));
        }
        findings.push(Finding { rule, severity, subject, message, since, deadline });
    }

    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| match (a.deadline, b.deadline) {
                (Some(x), Some(y)) => x.cmp(&y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            })
            .then_with(|| a.rule.cmp(&b.rule))
            .then_with(|| a.subject.cmp(&b.subject))
    });
    transitions
        .sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.rule.cmp(&b.rule)).then_with(|| a.subject.cmp(&b.subject)));
    (findings, transitions)
}
