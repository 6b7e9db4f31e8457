//! The fleet's outputs: the table, the summary line, and the entries of `-o json|yaml`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Row;
use crate::check::table::{columns, relative, Painter};
use crate::crd::v1alpha1::{SupportReport, SupportStatus, Verdict};
use crate::time::when;

/// The first step of the cluster's upgrade plan, for the fleet table's `FIRST PLAN STEP`
/// column (`UpgradeControlPlane 1.34→1.35 by 2026-11-30`, `overdue` when its date has passed or
/// is unknown); `None` for an empty plan, and the column shows `-`.
pub fn first_plan_step(report: &SupportReport, now: DateTime<Utc>) -> Option<String> {
    let step = report.plan.first()?;
    let versions = match (&step.from, &step.to) {
        (Some(from), Some(to)) => format!(" {from}→{to}"),
        _ => String::new(),
    };
    let by = match step.by {
        Some(t) if t > now => format!("by {}", when(t)),
        _ => "overdue".to_string(),
    };
    Some(printable(&format!("{} {}{versions} {by}", step.action.as_str(), step.subject)))
}

/// `s` with control characters (escape sequences, newlines) written as escapes: contexts come
/// from a kubeconfig and errors from API servers, and neither may drive the terminal.
pub(crate) fn printable(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

fn report(row: &Row) -> Option<&SupportReport> {
    row.status.as_ref().and_then(|s| s.status.as_ref())
}

/// The table: one row per policy and cluster, the error in place of the figures when there is
/// one (it does not widen the columns).
pub(super) fn table(rows: &[Row], now: DateTime<Utc>, color: bool) -> String {
    let header = ["CONTEXT", "POLICY", "VERDICT", "VERSION", "NODES", "FINDINGS", "NEXT DEADLINE", "FIRST PLAN STEP"];
    let mut cells: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for row in rows {
        let mut line = vec![
            printable(&row.context),
            row.policy.as_deref().map(printable).unwrap_or_else(|| "-".into()),
            row.verdict().as_str().to_string(),
        ];
        if let (None, Some(r)) = (&row.error, report(row)) {
            let dash = || "-".to_string();
            line.push(r.control_plane.as_ref().and_then(|c| c.version.as_deref()).map(printable).unwrap_or_else(dash));
            line.push(r.nodes.as_ref().map(|n| n.total.to_string()).unwrap_or_else(dash));
            line.push(r.findings_total.to_string());
            let deadline = r.next_deadline.as_ref().map(|t| format!("{} ({})", when(t.at), relative(t.at, now)));
            line.push(deadline.unwrap_or_else(dash));
            line.push(first_plan_step(r, now).unwrap_or_else(dash));
        }
        cells.push(line);
    }
    let width = |i: usize| cells.iter().filter_map(|r| r.get(i)).map(|c| c.chars().count()).max().unwrap_or(0) + 2;
    // Where the verdict starts, and where an error does (after the verdict).
    let (verdict_at, error_at) = (width(0) + width(1), width(0) + width(1) + width(2));
    let painter = Painter(color);
    let mut out = String::new();
    for (line, row) in columns(&cells, "").lines().zip(std::iter::once(None).chain(rows.iter().map(Some))) {
        let Some(row) = row else {
            let _ = writeln!(out, "{line}");
            continue;
        };
        let mut line = line.to_string();
        if let Some(error) = &row.error {
            let pad = error_at.saturating_sub(line.chars().count());
            let _ = write!(line, "{}error: {}", " ".repeat(pad), printable(error));
        }
        // Colour the verdict after alignment, so that escape codes do not skew the widths.
        let verdict = row.verdict();
        let at = line.char_indices().nth(verdict_at).map_or(line.len(), |(i, _)| i);
        match line[at..].strip_prefix(verdict.as_str()) {
            Some(after) if color => {
                let _ = writeln!(out, "{}{}{after}", &line[..at], painter.verdict(verdict));
            }
            _ => {
                let _ = writeln!(out, "{line}");
            }
        }
    }
    out
}

/// One line: the clusters by their worst verdict, those not evaluated, and the soonest
/// deadline across the fleet.
pub(super) fn summary(rows: &[Row], now: DateTime<Utc>) -> String {
    // Per context: its worst verdict, and whether any of its policies was evaluated.
    let mut worst: BTreeMap<&str, (Verdict, bool)> = BTreeMap::new();
    for row in rows {
        let (v, evaluated) = worst.entry(&row.context).or_insert((Verdict::Supported, false));
        *v = (*v).max(row.verdict());
        *evaluated |= row.status.is_some();
    }
    let failed = worst.values().filter(|(_, evaluated)| !evaluated).count();
    let counts: Vec<String> = Verdict::ALL
        .iter()
        .map(|v| (v, worst.values().filter(|(w, _)| w == v).count()))
        .filter(|(_, n)| *n > 0)
        .map(|(v, n)| format!("{n} {}", v.as_str()))
        .collect();
    let clusters = worst.len();
    let mut line = format!(
        "{clusters} cluster{}: {} (each by its worst policy",
        if clusters == 1 { "" } else { "s" },
        counts.join(", ")
    );
    if failed > 0 {
        let _ = write!(line, "; {failed} not evaluated");
    }
    line.push(')');
    let next = rows
        .iter()
        .filter_map(|r| report(r).and_then(|s| s.next_deadline.as_ref()).map(|t| (t.at, r)))
        .min_by_key(|(at, _)| *at);
    match next {
        Some((at, row)) => {
            let policy = row.policy.as_deref().map(|p| format!(", policy {}", printable(p))).unwrap_or_default();
            let _ = write!(
                line,
                ". Next deadline {} ({}) in {}{policy}.",
                when(at),
                relative(at, now),
                printable(&row.context)
            );
        }
        None => line.push_str(". No deadline ahead."),
    }
    line
}

/// An entry of `-o json|yaml`: the SupportStatus with its context.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub(super) struct Entry<'a> {
    context: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy: Option<&'a str>,
    verdict: Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    support_status: Option<&'a SupportStatus>,
}

pub(super) fn entries(rows: &[Row]) -> Vec<Entry<'_>> {
    rows.iter()
        .map(|r| Entry {
            context: &r.context,
            policy: r.policy.as_deref(),
            verdict: r.verdict(),
            error: r.error.as_deref(),
            support_status: r.status.as_ref(),
        })
        .collect()
}
