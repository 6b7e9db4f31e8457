//! The release date encoded in a node image version, found with the first of a list of
//! patterns that matches.

use chrono::NaiveDate;
use regex::Regex;

/// Why a date pattern cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// The regular expression does not compile.
    #[error("does not compile: {0}")]
    Syntax(String),
    /// A named group is missing.
    #[error("lacks the named group '{0}' (needs year, month and day)")]
    MissingGroup(&'static str),
}

/// Finds an image's release date in its version string with the first pattern that matches.
#[derive(Debug, Clone, Default)]
pub struct ImageDateParser {
    patterns: Vec<Regex>,
}

/// Why no date was found in an image version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageDateError {
    /// No pattern matches.
    #[error("no date pattern matches '{0}'")]
    NoMatch(String),
    /// A pattern matches but the digits are not a calendar day.
    #[error("'{0}' encodes {1}, which is not a calendar day")]
    NotADay(String, String),
}

impl ImageDateParser {
    /// Compiles the patterns; each must have the named groups `year`, `month` and `day`.
    /// The error carries the index of the offending pattern.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, (usize, PatternError)> {
        let patterns = patterns
            .iter()
            .enumerate()
            .map(|(i, p)| compile(p.as_ref()).map_err(|e| (i, e)))
            .collect::<Result<_, _>>()?;
        Ok(Self { patterns })
    }

    /// The release date encoded in `value`. A two-digit year means 20yy.
    pub fn parse(&self, value: &str) -> Result<NaiveDate, ImageDateError> {
        let shown = crate::text::snippet(value);
        for re in &self.patterns {
            let Some(caps) = re.captures(value) else { continue };
            let field = |name: &str| caps.name(name).map(|m| m.as_str()).unwrap_or_default();
            let (y, m, d) = (field("year"), field("month"), field("day"));
            let not_a_day = || ImageDateError::NotADay(shown.clone(), format!("year {y}, month {m}, day {d}"));
            let year: i32 = parse_small(y).ok_or_else(not_a_day)?;
            let year = if y.len() == 2 { 2000 + year } else { year };
            let month = parse_small(m).ok_or_else(not_a_day)?;
            let day = parse_small(d).ok_or_else(not_a_day)?;
            return NaiveDate::from_ymd_opt(year, month as u32, day as u32).ok_or_else(not_a_day);
        }
        Err(ImageDateError::NoMatch(shown))
    }
}

fn parse_small(s: &str) -> Option<i32> {
    if s.is_empty() || s.len() > 4 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn compile(pattern: &str) -> Result<Regex, PatternError> {
    let re = regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| PatternError::Syntax(e.to_string().lines().last().unwrap_or_default().trim().to_string()))?;
    for group in ["year", "month", "day"] {
        if !re.capture_names().flatten().any(|n| n == group) {
            return Err(PatternError::MissingGroup(group));
        }
    }
    Ok(re)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar;
    use crate::crd::v1alpha1::Platform;
    use proptest::prelude::*;

    fn aks() -> ImageDateParser {
        ImageDateParser::new(&calendar::preset(Platform::Aks).unwrap().node_image_date_patterns).unwrap()
    }

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn aks_preset_reads_every_documented_form() {
        let p = aks();
        for (value, want) in [
            ("AKSUbuntu-2204gen2containerd-202512.18.0", "2025-12-18"),
            ("AKSUbuntu-2204gen2containerd-202405.03.0", "2024-05-03"),
            ("AKSAzureLinux-V3gen2-202602.13.5", "2026-02-13"),
            ("AKSCBLMariner-V2gen2-202512.18.0", "2025-12-18"),
            ("AKSUbuntu-2204gen2containerd-2022.10.03", "2022-10-03"),
            ("AKSUbuntu-1804-2020.03.05", "2020-03-05"),
            ("AKSUbuntu-2204gen2containerd-202410.27.0-2024.12.01", "2024-12-01"),
            ("AKSWindows-2022-containerd-20348.3207.250214", "2025-02-14"),
            ("AKSWindows-23H2-gen2-25398.1425.250214", "2025-02-14"),
            ("AKSWindows-2019-containerd-17763.8146.251212", "2025-12-12"),
            ("202512.18.0", "2025-12-18"),
        ] {
            assert_eq!(p.parse(value), Ok(day(want)), "{value}");
        }
    }

    #[test]
    fn values_without_a_date_are_reported() {
        let p = aks();
        assert!(matches!(p.parse("AKSWindows-23H2-gen2"), Err(ImageDateError::NoMatch(_))));
        assert!(matches!(p.parse("ami-0f8d6052f6e3a19d2"), Err(ImageDateError::NoMatch(_))));
        assert!(matches!(p.parse(""), Err(ImageDateError::NoMatch(_))));
        let err = p.parse("AKSUbuntu-2204gen2containerd-202513.45.0").unwrap_err();
        assert!(matches!(err, ImageDateError::NotADay(..)), "{err}");
        assert!(err.to_string().contains("month 13"), "{err}");
    }

    #[test]
    fn bad_patterns_are_named() {
        assert!(matches!(ImageDateParser::new(&["(?P<year>"]), Err((0, PatternError::Syntax(_)))));
        let err = ImageDateParser::new(&[r"(?P<year>\d{4})", r"(?P<year>\d{4})(?P<month>\d\d)"]).unwrap_err();
        assert_eq!(err, (0, PatternError::MissingGroup("month")));
        assert_eq!(
            ImageDateParser::new(&[r"(?P<year>\d{4})(?P<month>\d\d)"]).unwrap_err(),
            (0, PatternError::MissingGroup("day"))
        );
    }

    #[test]
    fn a_custom_pattern_with_two_digit_years() {
        let p = ImageDateParser::new(&[r"v(?P<day>\d\d)(?P<month>\d\d)(?P<year>\d\d)"]).unwrap();
        assert_eq!(p.parse("img-v311225"), Ok(day("2025-12-31")));
    }

    proptest! {
        #[test]
        fn parser_never_panics(s in "\\PC*") {
            let _ = aks().parse(&s);
        }

        #[test]
        fn digit_soup_never_panics(s in "[0-9.\\-]{0,40}") {
            let _ = aks().parse(&s);
        }

        #[test]
        fn linux_form_round_trips(y in 2000i32..2100, m in 1u32..13, d in 1u32..29, rev in 0u32..100) {
            let v = format!("AKSUbuntu-2204gen2containerd-{y:04}{m:02}.{d:02}.{rev}");
            prop_assert_eq!(aks().parse(&v), Ok(NaiveDate::from_ymd_opt(y, m, d).unwrap()));
        }
    }
}
