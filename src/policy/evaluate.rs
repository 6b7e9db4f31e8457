//! `evaluate`: the families' signals → findings, verdict, next deadline and upcoming
//! transitions (the summaries come from `summary`).

use foldhash::{HashSet, HashSetExt};

use chrono::{DateTime, Utc};

use super::group::{grouped, Grouped};
use super::ids::{Subject, POLICY_INVALID};
use super::model::Policy;
use super::outcome::{Evaluation, Finding, Transition};
use super::plan;
use super::rules::{Input, Nodes, Output};
use super::settings::PolicyError;
use super::signal::{Signal, Who, SHOWN};
use super::summary;
use crate::crd::v1alpha1::{Severity, SupportPolicySpec, Verdict};
use crate::snapshot::{ClusterSnapshot, Keep, NodeKeys};
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
    // Columns of the labels the families read of each node.
    let mut keys = NodeKeys::none();
    for rules in &policy.rules {
        rules.node_keys(&mut keys);
    }
    let keys = match keys.labels {
        Keep::Only(keys) => keys.iter().map(|k| k.to_string()).collect(),
        Keep::All => Vec::new(),
    };
    let in_scope = Nodes::new(
        snapshot.nodes.iter().filter(|n| policy.selector.as_ref().is_none_or(|s| s.matches(&n.labels))).map(|n| &**n),
        keys,
    );
    let nodes = &in_scope.nodes;
    let input = Input { snapshot, nodes, pools: &in_scope.pools, columns: &in_scope.columns, now };
    // Most families emit a signal or two per node.
    let mut out = Output { signals: Vec::with_capacity(2 * nodes.len()), ..Default::default() };
    for rules in &policy.rules {
        rules.evaluate(&input, &mut out);
    }

    let groups = grouped(&out.signals);
    let (findings, transitions) = findings(&groups, now);
    let next_deadline = transitions.first().cloned();
    let horizon = plus_days(now, HORIZON_DAYS);
    // The status changes at every step of a signal (the plan's next change holds those), and
    // when a transition enters the horizon of `upcoming`.
    let next_change = transitions.iter().filter(|t| t.at > horizon).map(|t| minus_days(t.at, HORIZON_DAYS));
    // The plan reads the groups; it changes at instants of its own too.
    let plan = plan::plan(&plan::Input {
        upgrades: out.upgrades.as_ref(),
        steps: plan::next_steps(&out.signals, now, policy.plan_horizon_days),
        groups: &groups,
        now,
        horizon_days: policy.plan_horizon_days,
    });
    let next_change = next_change.filter(|at| *at > now).chain(plan.next_change).min();
    let upcoming: Vec<Transition> = transitions.into_iter().filter(|t| t.at <= horizon).take(MAX_UPCOMING).collect();
    let verdict = match findings.iter().map(|f| f.severity).max() {
        Some(Severity::Unsupported) => Verdict::Unsupported,
        Some(Severity::Warning) => Verdict::AtRisk,
        _ => Verdict::Supported,
    };
    let summary = summary::summarise(snapshot, nodes, &in_scope.pools, out, now);
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

/// Where a group's severity rises after `now`: the steps of its members, each distinct list
/// once (members with the same fact share theirs).
fn future_steps(members: &[(Option<Severity>, &Signal<'_>)], now: DateTime<Utc>) -> Vec<(DateTime<Utc>, Severity)> {
    let mut seen: HashSet<*const (DateTime<Utc>, Severity)> = HashSet::new();
    let mut future: Vec<(DateTime<Utc>, Severity)> = members
        .iter()
        .filter(|(_, m)| !m.steps.is_empty() && seen.insert(m.steps.as_ptr()))
        .flat_map(|(_, m)| m.steps.iter().copied())
        .filter(|(at, _)| *at > now)
        .collect();
    future.sort_unstable();
    future
}

/// Moves the first [`SHOWN`] signals by (origin, subject) to the front, in that order (the
/// rest keep no order). One pass: each signal is compared with the last of the front once, by
/// origin first, so a name is read only when origins tie.
fn first_in_order(signals: &mut [&Signal<'_>]) {
    let order = |a: &Signal<'_>, b: &Signal<'_>| a.origin.cmp(&b.origin).then_with(|| a.about.cmp(&b.about));
    let shown = SHOWN.min(signals.len());
    signals[..shown].sort_unstable_by(|a, b| order(a, b));
    for i in shown..signals.len() {
        if order(signals[i], signals[shown - 1]).is_lt() {
            signals.swap(i, shown - 1);
            // Bubble the newcomer into place among the front.
            let mut j = shown - 1;
            while j > 0 && order(signals[j], signals[j - 1]).is_lt() {
                signals.swap(j, j - 1);
                j -= 1;
            }
        }
    }
}

/// Findings (sorted worst first, then soonest deadline, rule and subject) and every future
/// transition (soonest first).
fn findings(groups: &[Grouped<'_, '_>], now: DateTime<Utc>) -> (Vec<Finding>, Vec<Transition>) {
    let mut findings = Vec::new();
    let mut transitions = Vec::new();
    for ((rule, _), signals) in groups {
        let rule = *rule;
        // Each member's severity now, read once.
        let members: Vec<(Option<Severity>, &Signal<'_>)> = signals.iter().map(|m| (m.at(now), *m)).collect();
        let pool = members[0].1.group.as_ref().map(|g| &**g.pool);
        let subject = if members.len() > 1 {
            Subject::NodePool(pool.unwrap_or("default").to_string())
        } else {
            members[0].1.about.subject()
        };
        let current = members.iter().filter_map(|(sev, _)| *sev).max();

        // Where the group's severity rises after now.
        let future = future_steps(&members, now);
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
            .filter_map(|(_, m)| {
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
                    .filter_map(|(_, m)| {
                        m.steps.iter().find(|(at, s)| *s == Severity::Unsupported && *at > now).map(|(at, _)| *at)
                    })
                    .min()
            })
            .flatten();
        // The members at the group's severity speak for it: the first by origin, then by name.
        let mut speaking: Vec<&Signal<'_>> =
            members.iter().filter(|(sev, _)| *sev == Some(severity)).map(|(_, m)| *m).collect();
        first_in_order(&mut speaking);
        let who = Who { nodes: speaking.iter().filter_map(|m| m.about.node().map(|n| &**n)).collect(), pool };
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
