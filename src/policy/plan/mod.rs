//! The upgrade plan: the shortest ordered list of steps that keeps the cluster supported for
//! `planHorizonDays` after now. It is a family of outputs, not a rule: it reads what the rule
//! families emitted (their signals, and the version family's calendar and numbers through
//! `Output::upgrades`) and adds no finding.
//!
//! `build` drafts the steps and what each waits on; here each step gets its `by` (the earliest
//! of its own reasons and of the `by` of every step that waits on it), the steps are ordered by
//! `by` (a step never comes before one it waits on), and worded (`text`).
//!
//! The plan is part of the status, so it may change only at instants the engine reports
//! (`next_change`): it compares `now` and `now + horizon` only with instants of the calendar
//! (releases, ends) and of the signals, and `next_change` holds each of those and each minus
//! the horizon.

mod build;
#[cfg(test)]
mod replay;
#[cfg(test)]
mod tests;
mod text;
mod versions;

use chrono::{DateTime, Utc};

use super::group::Grouped;
use super::outcome::{Due, Step};
use super::rules::Upgrades;
use super::signal::Signal;
use crate::time::{minus_days, plus_days};
use versions::Calendar;

/// What the plan reads.
pub(super) struct Input<'a> {
    /// The version settings (`None`: the policy has no version rules).
    pub upgrades: Option<&'a Upgrades>,
    /// The earliest instant after now of the signals' steps, each also minus the horizon
    /// (`next_steps`).
    pub steps: Option<DateTime<Utc>>,
    /// The signals grouped as findings.
    pub groups: &'a [Grouped<'a, 'a>],
    /// The instant of evaluation.
    pub now: DateTime<Utc>,
    /// How far ahead the plan keeps the cluster supported.
    pub horizon_days: u32,
}

/// The plan and the next instant it can change.
pub(super) struct Planned {
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// The earliest instant after now at which the plan can change with no change in the
    /// cluster.
    pub next_change: Option<DateTime<Utc>>,
}

/// The plan of a cluster at `input.now`.
pub(super) fn plan(input: &Input<'_>) -> Planned {
    let horizon_end = plus_days(input.now, input.horizon_days);
    let calendar = input.upgrades.map(|u| Calendar::new(&u.calendar, input.now, horizon_end));
    let drafts = build::drafts(input, calendar.as_ref());
    let n = drafts.len();
    // Own due: the earliest reason. Then, from the last step back, the earliest of its own and
    // of every step that waits on it (those come later in the drafts).
    let own: Vec<Due> = drafts.iter().map(|d| d.reasons.iter().map(|r| r.at).min().unwrap_or(Due::Never)).collect();
    let mut due = own.clone();
    let mut set_by: Vec<Option<usize>> = vec![None; n];
    for j in (0..n).rev() {
        for &i in &drafts[j].after {
            if due[j] < due[i] {
                due[i] = due[j];
                set_by[i] = Some(set_by[j].unwrap_or(j));
            }
        }
    }
    // In that order a step never comes before one it waits on.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| (due[i], i));
    let steps = order
        .iter()
        .map(|&i| {
            // Overdue on its own: its own date says since when (any past date means now).
            let (by, waiting) =
                if own[i].by(input.now) { (own[i], None) } else { (due[i], set_by[i].map(|j| &drafts[j])) };
            text::step(&drafts[i], by, waiting, input)
        })
        .collect();
    Planned { steps, next_change: next_change(input, calendar.as_ref()) }
}

/// The instants the plan compares `now` with (calendar releases and ends, signal steps), each
/// also minus the horizon (it compares `now + horizon` with them too): the earliest after now.
fn next_change(input: &Input<'_>, calendar: Option<&Calendar<'_>>) -> Option<DateTime<Utc>> {
    calendar
        .into_iter()
        .flat_map(Calendar::instants)
        .flat_map(|t| [t, minus_days(t, input.horizon_days)])
        .filter(|t| *t > input.now)
        .chain(input.steps)
        .min()
}

/// The instants at which the signals' severities step, each also minus `horizon_days`: the
/// earliest after `now` (every step is an instant the status can change at, and the plan's).
/// Shifting is monotonic, so an instant is shifted only when it can give a new earliest.
pub(super) fn next_steps(signals: &[Signal<'_>], now: DateTime<Utc>, horizon_days: u32) -> Option<DateTime<Utc>> {
    let mut next: Option<DateTime<Utc>> = None;
    // The least instant whose shifted value is after now (with that value), and the greatest
    // whose shifted value is not.
    let mut shifted: Option<(DateTime<Utc>, DateTime<Utc>)> = None;
    let mut before: Option<DateTime<Utc>> = None;
    for t in signals.iter().flat_map(|s| s.steps.iter().map(|(t, _)| *t)) {
        if t <= now {
            continue; // shifted, it is not after now either
        }
        next = Some(next.map_or(t, |n| n.min(t)));
        if shifted.is_some_and(|(u, _)| t >= u) || before.is_some_and(|b| t <= b) {
            continue;
        }
        let m = minus_days(t, horizon_days);
        if m > now {
            shifted = Some((t, m));
        } else {
            before = Some(t);
        }
    }
    next.into_iter().chain(shifted.map(|(_, m)| m)).min()
}
