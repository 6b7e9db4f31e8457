//! The human-readable report of `check -o table`.

use std::borrow::Cow;
use std::fmt::Write as _;

use anstyle::{AnsiColor, Style};
use chrono::{DateTime, Utc};

use crate::crd::v1alpha1::{PlanStep, Platform, Severity, SupportReport, SupportState, Transition, Verdict};
use crate::policy::evaluate::HORIZON_DAYS;
use crate::text::printable;
use crate::time::{format, when as short};

/// Renders a status as a report for a terminal. With `color` false the output is plain text.
/// Every string that comes from the cluster or the policy is escaped (`text::printable`): a node
/// name or a label cannot move the cursor, recolour or hide the report.
pub fn render(policy: &str, platform: Platform, status: &SupportReport, now: DateTime<Utc>, color: bool) -> String {
    let status = &printable_status(status);
    let policy = &*printable(policy);
    let p = Painter(color);
    let mut out = String::new();
    let verdict = status.verdict.unwrap_or(Verdict::Unknown);
    let label = |s: &str| format!("{s:<14}");

    let _ = writeln!(out, "{}{} ({} preset), evaluated at {}", label("Policy"), policy, platform.as_str(), format(now));
    let _ = writeln!(out, "{}{}", label("Verdict"), p.verdict(verdict));
    if let Some(cp) = &status.control_plane {
        match cp.version.as_deref() {
            None => {
                let _ = writeln!(
                    out,
                    "{}version unknown (pass --server-version when evaluating a snapshot)",
                    label("Control plane")
                );
            }
            Some(version) => {
                let eos = cp.end_of_support.map(|d| format!(", end of support {d}")).unwrap_or_default();
                let minor = cp.minor.as_deref().map(|m| format!(" (minor {m})")).unwrap_or_default();
                let _ = writeln!(out, "{}{version}{minor}: {}{eos}", label("Control plane"), p.state(cp.state));
            }
        }
    }
    if let Some(n) = &status.nodes {
        let _ = writeln!(
            out,
            "{}{} in scope: {} Ready, {} not Ready ({} shut down); {} with an outdated image, {} with an unsupported \
             kubelet",
            label("Nodes"),
            n.total,
            n.ready,
            n.not_ready,
            n.stopped,
            n.outdated_image,
            n.unsupported_kubelet
        );
    }

    if !status.pools.is_empty() {
        let _ = writeln!(out, "\n{}", p.bold("Pools"));
        let mut rows = vec![vec![
            "POOL".to_string(),
            "NODES".into(),
            "READY".into(),
            "KUBELET".into(),
            "IMAGES".into(),
            "OLDEST IMAGE".into(),
        ]];
        for pool in &status.pools {
            let list = |v: &[crate::crd::v1alpha1::VersionCount]| {
                if v.is_empty() {
                    "-".to_string()
                } else {
                    v.iter().map(|c| format!("{} ×{}", c.version, c.count)).collect::<Vec<_>>().join(", ")
                }
            };
            rows.push(vec![
                pool.name.clone(),
                pool.nodes.to_string(),
                pool.ready.to_string(),
                list(&pool.kubelet_versions),
                list(&pool.images),
                pool.oldest_image_date.map(|d| d.to_string()).unwrap_or_else(|| "-".into()),
            ]);
        }
        out.push_str(&columns(&rows, "  "));
        if status.pools_omitted > 0 {
            let _ = writeln!(out, "  … and {} more pools", status.pools_omitted);
        }
    }

    let _ = writeln!(out, "\n{}", p.bold(&format!("Findings ({})", status.findings_total)));
    if status.findings.is_empty() {
        let _ = writeln!(out, "  none");
    }
    let sev_width = status.findings.iter().map(|f| f.severity.as_str().len()).max().unwrap_or(0);
    let rule_width = status.findings.iter().map(|f| f.rule.len()).max().unwrap_or(0);
    for f in &status.findings {
        let deadline = f.deadline.map(|d| format!("  deadline {}", short(d))).unwrap_or_default();
        let _ = writeln!(
            out,
            "  {} {}  {:<rule_width$}  {}{}",
            p.marker(f.severity),
            p.severity(f.severity, &format!("{:<sev_width$}", f.severity.as_str())),
            f.rule,
            f.subject,
            deadline
        );
        let _ = writeln!(out, "      {}", f.message);
    }
    if status.findings_omitted > 0 {
        let _ =
            writeln!(out, "  … {} more findings not shown (the status keeps the 50 worst)", status.findings_omitted);
    }

    let _ = writeln!(out);
    match &status.next_deadline {
        Some(t) => {
            let _ = writeln!(
                out,
                "{}{} ({}): {} on {} becomes {}",
                label("Next deadline"),
                short(t.at),
                relative(t.at, now),
                t.rule,
                t.subject,
                p.severity(t.severity, t.severity.as_str())
            );
        }
        None => {
            let _ = writeln!(out, "{}none: nothing changes unless the cluster does", label("Next deadline"));
        }
    }

    let _ = writeln!(out, "\n{}", p.bold(&format!("Timeline (next {HORIZON_DAYS} days)")));
    if status.upcoming.is_empty() {
        let _ = writeln!(out, "  no transition");
    } else {
        out.push_str(&timeline(&status.upcoming, now, &p));
    }

    let total = status.plan.len() + status.plan_omitted as usize;
    let _ =
        writeln!(out, "\n{}", p.bold(&format!("Plan ({total} step{}, in order)", if total == 1 { "" } else { "s" })));
    if status.plan.is_empty() {
        let _ = writeln!(out, "  nothing to do: the cluster stays supported through the plan horizon");
    } else {
        out.push_str(&plan(&status.plan, now, &p));
    }
    if status.plan_omitted > 0 {
        let _ = writeln!(out, "  … {} more steps not shown (the status keeps the first 50)", status.plan_omitted);
    }
    out
}

/// The plan: one aligned line per step (number, date, action, subject, versions), then its
/// message.
fn plan(steps: &[PlanStep], now: DateTime<Utc>, p: &Painter) -> String {
    let rows: Vec<Vec<String>> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let by = match s.by {
                Some(t) if t > now => format!("{} ({})", short(t), relative(t, now)),
                Some(t) => format!("now (overdue since {})", short(t)),
                None => "now (overdue)".to_string(),
            };
            let versions = match (&s.from, &s.to) {
                (Some(f), Some(t)) => format!("{f} → {t}"),
                _ => String::new(),
            };
            vec![format!("{}.", i + 1), by, s.action.as_str().to_string(), s.subject.clone(), versions]
        })
        .collect();
    let plain = columns(&rows, "  ");
    let mut out = String::new();
    for (line, s) in plain.lines().zip(steps) {
        // Overdue steps in the colour of Unsupported, after alignment (escape codes have no width).
        let line = match line.find("now (overdue") {
            Some(i) if s.by.is_none_or(|t| t <= now) => {
                let end = line[i..].find(')').map_or(line.len(), |e| i + e + 1);
                format!("{}{}{}", &line[..i], p.severity(Severity::Unsupported, &line[i..end]), &line[end..])
            }
            _ => line.to_string(),
        };
        let _ = writeln!(out, "{line}");
        let _ = writeln!(out, "      {}", s.message);
    }
    out
}

fn timeline(upcoming: &[Transition], now: DateTime<Utc>, p: &Painter) -> String {
    let rows: Vec<Vec<String>> = upcoming
        .iter()
        .map(|t| {
            vec![short(t.at), relative(t.at, now), t.severity.as_str().to_string(), t.rule.clone(), t.subject.clone()]
        })
        .collect();
    // Colour the severity column after alignment so escape codes do not skew widths.
    let plain = columns(&rows, "  ");
    plain
        .lines()
        .zip(upcoming)
        .map(|(line, t)| {
            let sev = t.severity.as_str();
            match line.find(&format!("  {sev}  ")) {
                Some(i) => format!("{}{}{}\n", &line[..i + 2], p.severity(t.severity, sev), &line[i + 2 + sev.len()..]),
                None => format!("{line}\n"),
            }
        })
        .collect()
}

/// The status with every string escaped for a terminal.
fn printable_status(status: &SupportReport) -> SupportReport {
    let clean = |s: &mut String| {
        if let Cow::Owned(escaped) = printable(s) {
            *s = escaped;
        }
    };
    let mut status = status.clone();
    if let Some(cp) = &mut status.control_plane {
        cp.version.iter_mut().chain(cp.minor.iter_mut()).for_each(clean);
    }
    for pool in &mut status.pools {
        clean(&mut pool.name);
        for v in pool.kubelet_versions.iter_mut().chain(pool.images.iter_mut()) {
            clean(&mut v.version);
        }
    }
    for f in &mut status.findings {
        clean(&mut f.rule);
        clean(&mut f.subject);
        clean(&mut f.message);
    }
    for t in status.next_deadline.iter_mut().chain(status.upcoming.iter_mut()) {
        clean(&mut t.rule);
        clean(&mut t.subject);
    }
    status
}

/// Aligns rows into columns, each line indented by `indent`.
pub(crate) fn columns(rows: &[Vec<String>], indent: &str) -> String {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> =
        (0..n).map(|i| rows.iter().filter_map(|r| r.get(i)).map(|c| c.chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in rows {
        let mut line = indent.to_string();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&" ".repeat(widths[i] - cell.chars().count() + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `in 6 days`, `in 3 hours`, `2 days ago`.
pub(crate) fn relative(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (t - now).num_seconds();
    let (n, unit) = match secs.abs() {
        s if s >= 2 * 86_400 => (s / 86_400, "days"),
        s if s >= 86_400 => (1, "day"),
        s if s >= 7_200 => (s / 3_600, "hours"),
        s if s >= 3_600 => (1, "hour"),
        s if s >= 120 => (s / 60, "minutes"),
        s => (s, "seconds"),
    };
    if secs >= 0 {
        format!("in {n} {unit}")
    } else {
        format!("{n} {unit} ago")
    }
}

pub(crate) struct Painter(pub(crate) bool);

impl Painter {
    fn paint(&self, style: Style, text: &str) -> String {
        if self.0 {
            format!("{style}{text}{style:#}")
        } else {
            text.to_string()
        }
    }

    fn bold(&self, text: &str) -> String {
        self.paint(Style::new().bold(), text)
    }

    fn severity(&self, s: Severity, text: &str) -> String {
        let style = match s {
            Severity::Unsupported => Style::new().fg_color(Some(AnsiColor::Red.into())).bold(),
            Severity::Warning => Style::new().fg_color(Some(AnsiColor::Yellow.into())).bold(),
            Severity::Info => Style::new().fg_color(Some(AnsiColor::Cyan.into())),
        };
        self.paint(style, text)
    }

    fn marker(&self, s: Severity) -> String {
        let m = match s {
            Severity::Unsupported => "✗",
            Severity::Warning => "!",
            Severity::Info => "i",
        };
        self.severity(s, m)
    }

    pub(crate) fn verdict(&self, v: Verdict) -> String {
        let style = match v {
            Verdict::Supported => Style::new().fg_color(Some(AnsiColor::Green.into())).bold(),
            Verdict::AtRisk => Style::new().fg_color(Some(AnsiColor::Yellow.into())).bold(),
            Verdict::Unsupported => Style::new().fg_color(Some(AnsiColor::Red.into())).bold(),
            Verdict::Unknown => Style::new().bold(),
        };
        self.paint(style, v.as_str())
    }

    fn state(&self, state: SupportState) -> String {
        let text = state.as_str();
        match state {
            SupportState::Unsupported => self.severity(Severity::Unsupported, text),
            SupportState::Warning => self.severity(Severity::Warning, text),
            SupportState::Supported => self.paint(Style::new().fg_color(Some(AnsiColor::Green.into())), text),
            SupportState::Unknown => text.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_naturally() {
        let now = crate::time::parse_rfc3339("2026-11-25T00:00:00Z").unwrap();
        let at = |s: &str| crate::time::parse_rfc3339(s).unwrap();
        assert_eq!(relative(at("2026-12-01T00:00:00Z"), now), "in 6 days");
        assert_eq!(relative(at("2026-11-26T00:00:00Z"), now), "in 1 day");
        assert_eq!(relative(at("2026-11-25T05:00:00Z"), now), "in 5 hours");
        assert_eq!(relative(at("2026-11-20T00:00:00Z"), now), "5 days ago");
    }

    /// A node name, a pool, an image or a kubelet version from the cluster cannot reach the
    /// terminal with its control characters: they are escaped, so nothing is hidden or forged.
    #[test]
    fn strings_from_the_cluster_are_escaped() {
        use crate::policy::testing::*;
        let evil = "\u{1b}[2J\u{1b}[31mFAKE\r";
        let node =
            node(&format!("n{evil}")).pool(&format!("p{evil}")).image(&format!("AKSUbuntu-{evil}")).kubelet(evil);
        let e = evaluate(&spec(crate::crd::v1alpha1::Platform::Aks), &cluster("v1.35.1", vec![node]), at("2026-11-25"));
        let now = at("2026-11-25");
        let status = crate::policy::report::report(&e, None, Some(1), now);
        for color in [false, true] {
            let out = render(&format!("policy{evil}"), Platform::Aks, &status, now, color);
            assert!(!out.contains('\r') && !out.contains("\u{1b}[2J") && !out.contains("\u{1b}[31mFAKE"), "{out}");
            assert!(out.contains("p\\u{1b}[2J\\u{1b}[31mFAKE\\r"), "the pool, escaped: {out}");
        }
    }

    #[test]
    fn plain_output_has_no_escape_codes_and_colour_has_them() {
        let status = SupportReport { verdict: Some(Verdict::Unsupported), ..Default::default() };
        let now = crate::time::parse_rfc3339("2026-11-25T00:00:00Z").unwrap();
        assert!(!render("p", Platform::Aks, &status, now, false).contains('\u{1b}'));
        assert!(render("p", Platform::Aks, &status, now, true).contains('\u{1b}'));
    }
}
