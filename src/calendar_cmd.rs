//! `support-operator calendar import | show`: refresh a policy's calendar from a public source,
//! and show the calendar a policy evaluates with (its preset's, with the policy's entries
//! merged over it), row by row with where each comes from.

use std::fmt::Write as _;
use std::io::Read;
use std::path::Path;

use clap::ValueEnum;

use crate::calendar::import::{import_endoflife, render, ImportError, MAX_INPUT_BYTES};
use crate::calendar::{self, EndReason, Standing, SupportCalendar};
use crate::check::input::{self, InputError};
use crate::check::table::columns;
use crate::crd::v1alpha1::{Platform, SupportPolicy};
use crate::policy::settings::Sources;

/// The format of an imported calendar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CalendarFormat {
    /// The JSON of the endoflife.date API v1, `GET /api/v1/products/PRODUCT`.
    Endoflife,
}

/// Why a calendar command failed (exit code 2), naming the input.
#[derive(Debug, thiserror::Error)]
pub enum CalendarCmdError {
    /// The file cannot be read.
    #[error("{file}: cannot read: {reason}")]
    Read {
        /// The file (`-`: standard input).
        file: String,
        /// Why.
        reason: String,
    },
    /// The file cannot be imported.
    #[error("{file}: {source}")]
    Import {
        /// The file.
        file: String,
        /// What is wrong in it.
        source: ImportError,
    },
    /// The policy file cannot be used.
    #[error(transparent)]
    Policy(#[from] InputError),
    /// `--policy` names no file and no preset.
    #[error("--policy {0}: no such file or preset (aks, aks-arc, eks, gke, upstream)")]
    NoPolicy(String),
    /// `--platform` and the policy's platform differ.
    #[error("--platform {given}: the policy is for {policy}")]
    PlatformMismatch {
        /// `--platform`.
        given: &'static str,
        /// The policy's.
        policy: &'static str,
    },
    /// `--policy-name` is not an object name.
    #[error("--policy-name {0}: not a Kubernetes object name (lowercase letters, digits, '-' and '.', at most 253)")]
    PolicyName(String),
}

/// Reads at most [`MAX_INPUT_BYTES`] + 1 bytes of `file` (`-`: standard input).
fn read_bounded(file: &Path) -> Result<Vec<u8>, CalendarCmdError> {
    let name = file.display().to_string();
    let err = |e: std::io::Error| CalendarCmdError::Read { file: name.clone(), reason: e.to_string() };
    let mut bytes = Vec::new();
    let limit = MAX_INPUT_BYTES as u64 + 1;
    if file == Path::new("-") {
        std::io::stdin().lock().take(limit).read_to_end(&mut bytes).map_err(err)?;
    } else {
        std::fs::File::open(file).map_err(err)?.take(limit).read_to_end(&mut bytes).map_err(err)?;
    }
    Ok(bytes)
}

fn is_object_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|part| {
            !part.is_empty()
                && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

/// `calendar import`: the `kubernetesVersion.releases` block (or a SupportPolicy patch named
/// `policy_name`) for `platform`, from `file`.
pub fn import(
    format: CalendarFormat,
    file: &Path,
    platform: Platform,
    policy_name: Option<&str>,
) -> Result<String, CalendarCmdError> {
    if let Some(name) = policy_name.filter(|n| !is_object_name(n)) {
        return Err(CalendarCmdError::PolicyName(crate::text::snippet(&name.escape_default().to_string())));
    }
    let bytes = read_bounded(file)?;
    let imported = match format {
        CalendarFormat::Endoflife => import_endoflife(&bytes, platform),
    }
    .map_err(|source| CalendarCmdError::Import { file: file.display().to_string(), source })?;
    if imported.left_out > 0 {
        eprintln!(
            "warning: {}: the {} oldest release cycles are left out (a policy holds at most {})",
            file.display(),
            imported.left_out,
            calendar::import::MAX_RELEASES
        );
    }
    Ok(render(&imported, platform, policy_name))
}

/// `calendar show`: the effective calendar of `policy` (a file or a preset name) or of the
/// `platform`'s preset, as a table.
pub fn show(platform: Option<Platform>, policy: Option<&str>) -> Result<String, CalendarCmdError> {
    let (policy, origin) = match policy {
        Some(p) if Path::new(p).is_file() => (input::load_policy(Path::new(p))?, format!("policy {p}")),
        Some(p) => match input::preset_policy(p) {
            Some(preset) => (preset, "preset".to_string()),
            None => return Err(CalendarCmdError::NoPolicy(p.to_string())),
        },
        None => {
            let platform = platform.unwrap_or(Platform::Upstream);
            let mut preset = SupportPolicy::new("", Default::default());
            preset.spec.platform = platform;
            (preset, "preset".to_string())
        }
    };
    let spec = &policy.spec;
    if let Some(given) = platform.filter(|p| *p != spec.platform) {
        return Err(CalendarCmdError::PlatformMismatch { given: given.as_str(), policy: spec.platform.as_str() });
    }
    let mut out = String::new();
    let source_of_preset = calendar::preset(spec.platform).map(|_| format!("{} preset", spec.platform.as_str()));
    let title = match (&source_of_preset, origin.as_str()) {
        (Some(preset), "preset") => preset.clone(),
        (Some(preset), policy) => format!("{policy} over the {preset}"),
        (None, policy) => format!("{policy} (Custom: no preset)"),
    };
    let _ = writeln!(out, "Calendar      {title}");
    let Some(section) = Sources::of(spec).section(|s| s.kubernetes_version.as_ref()) else {
        let _ = writeln!(out, "\nNo calendar: without kubernetesVersion, no version rule is evaluated.");
        return Ok(out);
    };
    let releases = calendar::merged_calendar(spec.platform, &section.releases).map_err(|e| InputError::Field {
        file: origin.trim_start_matches("policy ").to_string(),
        field: format!("spec.kubernetesVersion.releases[{}].minor", e.index),
        reason: e.source.to_string(),
    })?;
    let cal = SupportCalendar {
        releases,
        support_window_days: section.support_window_days,
        supported_minors: section.supported_minors,
        long_term_support: section.long_term_support.unwrap_or(false),
    };
    let number = |n: Option<u32>| n.map_or("-".to_string(), |n| n.to_string());
    let _ = writeln!(
        out,
        "Numbers       supportWindowDays {}, supportedMinors {}, longTermSupport {}",
        number(cal.support_window_days),
        number(cal.supported_minors),
        cal.long_term_support
    );
    let inline: Vec<&str> =
        spec.kubernetes_version.iter().flat_map(|k| &k.releases).map(|r| r.minor.as_str()).collect();
    let day = |d: Option<chrono::NaiveDate>| d.map_or("-".to_string(), |d| d.to_string());
    let mut rows = vec![["MINOR", "RELEASED", "END OF SUPPORT", "LTS END", "SUPPORT ENDS", "WHY", "SOURCE"]
        .map(String::from)
        .to_vec()];
    for r in &cal.releases {
        let (ends, why) = match cal.standing(r.minor) {
            Standing::Known { end, reason, .. } => (end.map(crate::time::when), why(&reason, end.is_some())),
            _ => (None, String::new()),
        };
        let source = if inline.iter().any(|m| m.parse().ok() == Some(r.minor)) {
            origin.clone()
        } else {
            format!("preset{}: {}", if r.planned { " (planned)" } else { "" }, r.source)
        };
        rows.push(vec![
            r.minor.to_string(),
            r.released.to_string(),
            day(r.end_of_support),
            day(r.lts_end_of_support),
            ends.unwrap_or_else(|| "unknown".into()),
            why,
            source,
        ]);
    }
    let _ = writeln!(out);
    out.push_str(&columns(&rows, ""));
    Ok(out)
}

/// Why a minor's support ends when it does, in the policy's words.
fn why(reason: &EndReason, known: bool) -> String {
    match reason {
        EndReason::Calendar if known => "endOfSupport".into(),
        EndReason::Calendar => "no endOfSupport, no supportWindowDays".into(),
        EndReason::Lts => "ltsEndOfSupport (longTermSupport)".into(),
        EndReason::Window(days) => format!("released + {days} days (supportWindowDays)"),
        EndReason::Displaced { n, by } => {
            let by: Vec<String> = by.iter().map(ToString::to_string).collect();
            format!("{n} newer minors released ({}: supportedMinors)", by.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_are_checked() {
        for ok in ["edge", "edge-clusters", "a.b-c", "x1"] {
            assert!(is_object_name(ok), "{ok}");
        }
        for bad in ["", "Edge", "-a", "a-", "a..b", "a b", "a\nb", &"a".repeat(254)] {
            assert!(!is_object_name(bad), "{bad}");
        }
    }

    #[test]
    fn the_preset_calendar_names_each_rows_source_and_why_it_ends() {
        let text = show(Some(Platform::Aks), None).unwrap();
        assert!(text.starts_with("Calendar      AKS preset\nNumbers       supportWindowDays 365, supportedMinors 3"));
        // 1.33 ends when the third newer minor (1.36) is released, before its endOfSupport.
        let row = text.lines().find(|l| l.starts_with("1.33 ")).unwrap();
        assert!(row.contains("2025-06-17  2026-07-31      2027-07-31  2026-06-30"), "{row}");
        assert!(row.contains("3 newer minors released (1.34, 1.35, 1.36: supportedMinors)"), "{row}");
        assert!(row.ends_with("  preset: AKS-DOCS @ f988e7e8; EOL-MD"), "{row}");
        let row = text.lines().find(|l| l.starts_with("1.34 ")).unwrap();
        assert!(row.contains("2026-11-30    endOfSupport  "), "{row}");
        let planned = text.lines().find(|l| l.starts_with("1.37 ")).unwrap();
        assert!(planned.contains("preset (planned): "), "{planned}");
    }
}
