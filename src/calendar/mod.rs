//! Release calendars and presets, one data file per platform (`src/calendar/data/`), embedded
//! in the binary. A new minor is one line in a data file. `support` reads a calendar: when a
//! minor's support ends under a policy's numbers, and why.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use chrono::NaiveDate;
use serde::Deserialize;

use crate::crd::v1alpha1::{Platform, ReleaseSpec, SupportPolicySpec};
use crate::version::{Minor, VersionError};

pub mod import;
mod support;
pub use support::{EndReason, Standing, SupportCalendar};

/// One minor of a calendar.
#[derive(Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Release {
    /// The minor.
    pub minor: Minor,
    /// The day the platform made it generally available.
    pub released: NaiveDate,
    /// The day support ends, when published.
    #[serde(default)]
    pub end_of_support: Option<NaiveDate>,
    /// The day long-term (extended) support ends, when published.
    #[serde(default)]
    pub lts_end_of_support: Option<NaiveDate>,
    /// The scheduled end where it differs from the actual one (informational).
    #[serde(default)]
    pub scheduled_end_of_support: Option<NaiveDate>,
    /// Announced, not observed in the sources: a planned minor does not count as released for
    /// `supportedMinors`.
    #[serde(default)]
    pub planned: bool,
    /// Where the dates come from.
    #[serde(default)]
    pub source: String,
}

/// Defaults of every entry of a list section (`heartbeats`, `attestations`).
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EntryDefaults {
    /// Days to a Warning.
    pub warn_after_days: Option<u32>,
    /// Days to Unsupported.
    pub unsupported_after_days: Option<u32>,
}

/// A platform preset: its settings and its calendar.
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Preset {
    /// The preset's settings: a partial SupportPolicy spec, in the CRD's own types. A policy's
    /// spec is merged over it.
    pub spec: SupportPolicySpec,
    /// The forms of node image versions the preset reads, tried in order (`nodeImage.datePattern`
    /// holds one regex, and the forms cannot share named groups in one).
    #[serde(default)]
    pub node_image_date_patterns: Vec<String>,
    /// What every entry of `spec.heartbeats` starts from.
    #[serde(default)]
    pub heartbeat_defaults: EntryDefaults,
    /// What every entry of `spec.attestations` starts from.
    #[serde(default)]
    pub attestation_defaults: EntryDefaults,
    /// The calendar, in the order of the file.
    pub releases: Vec<Release>,
}

/// An inline release of a policy that cannot be merged into the calendar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("releases[{index}].minor: {source}")]
pub struct CalendarError {
    /// Index in `kubernetesVersion.releases`.
    pub index: usize,
    /// Why the minor is not one.
    pub source: VersionError,
}

const DATA: [(Platform, &str, &str); 5] = [
    (Platform::Aks, "aks.yaml", include_str!("data/aks.yaml")),
    (Platform::AksArc, "aks-arc.yaml", include_str!("data/aks-arc.yaml")),
    (Platform::Eks, "eks.yaml", include_str!("data/eks.yaml")),
    (Platform::Gke, "gke.yaml", include_str!("data/gke.yaml")),
    (Platform::Upstream, "upstream.yaml", include_str!("data/upstream.yaml")),
];

fn presets() -> &'static BTreeMap<&'static str, Preset> {
    static PRESETS: OnceLock<BTreeMap<&'static str, Preset>> = OnceLock::new();
    PRESETS.get_or_init(|| {
        DATA.iter()
            .map(|(platform, file, text)| {
                // The data files are part of the binary and covered by tests: a broken one is a
                // build defect, not an input error.
                let preset: Preset =
                    serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("embedded calendar {file} is invalid: {e}"));
                assert_eq!(preset.spec.platform, *platform, "{file} names the wrong platform");
                (platform.as_str(), preset)
            })
            .collect()
    })
}

/// The preset of a platform; `None` for `Custom`.
pub fn preset(platform: Platform) -> Option<&'static Preset> {
    presets().get(platform.as_str())
}

/// The preset's calendar with the policy's inline releases merged over it by minor, sorted by
/// minor. An inline entry replaces the preset's entry for the same minor.
pub fn merged_calendar(platform: Platform, inline: &[ReleaseSpec]) -> Result<Vec<Release>, CalendarError> {
    let mut by_minor: BTreeMap<Minor, Release> =
        preset(platform).map(|p| p.releases.iter().map(|r| (r.minor, r.clone())).collect()).unwrap_or_default();
    for (i, spec) in inline.iter().enumerate() {
        let minor: Minor = spec.minor.parse().map_err(|source| CalendarError { index: i, source })?;
        by_minor.insert(
            minor,
            Release {
                minor,
                released: spec.released,
                end_of_support: spec.end_of_support,
                lts_end_of_support: spec.lts_end_of_support,
                scheduled_end_of_support: None,
                planned: false,
                source: "inline in the SupportPolicy".into(),
            },
        );
    }
    Ok(by_minor.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_loads_with_sourced_ordered_releases() {
        for platform in Platform::ALL {
            let Some(preset) = preset(platform) else {
                assert_eq!(platform, Platform::Custom);
                continue;
            };
            assert!(!preset.releases.is_empty(), "{platform:?} has no releases");
            for pair in preset.releases.windows(2) {
                assert!(pair[0].minor < pair[1].minor, "{platform:?}: {:?} out of order", pair[1].minor);
            }
            for r in &preset.releases {
                assert!(!r.source.is_empty(), "{platform:?} {} has no source", r.minor);
                if let Some(eos) = r.end_of_support {
                    assert!(eos > r.released, "{platform:?} {} ends before release", r.minor);
                }
                if let (Some(eos), Some(lts)) = (r.end_of_support, r.lts_end_of_support) {
                    assert!(lts > eos, "{platform:?} {} LTS ends before standard support", r.minor);
                }
            }
        }
    }

    #[test]
    fn reference_dates_are_the_ones_in_the_calendar() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        let find = |p: Platform, m: &str| {
            preset(p).unwrap().releases.iter().find(|r| r.minor == m.parse().unwrap()).unwrap().clone()
        };
        assert_eq!(find(Platform::Aks, "1.31").end_of_support, Some(d("2025-11-01")));
        assert_eq!(find(Platform::Aks, "1.31").lts_end_of_support, Some(d("2026-11-30")));
        assert_eq!(find(Platform::Upstream, "1.31").end_of_support, Some(d("2025-11-11")));
        assert_eq!(find(Platform::Upstream, "1.31").scheduled_end_of_support, Some(d("2025-10-28")));
        assert_eq!(find(Platform::Eks, "1.34").lts_end_of_support, Some(d("2027-12-02")));
        assert_eq!(find(Platform::Gke, "1.33").end_of_support, Some(d("2026-08-03")));
        assert_eq!(find(Platform::AksArc, "1.29").end_of_support, Some(d("2025-10-31")));
        assert!(find(Platform::Aks, "1.37").planned);
    }

    #[test]
    fn inline_releases_override_and_extend_by_minor() {
        let inline = vec![
            ReleaseSpec {
                minor: "1.31".into(),
                released: "2024-08-13".parse().unwrap(),
                end_of_support: Some("2025-10-28".parse().unwrap()),
                lts_end_of_support: None,
            },
            ReleaseSpec {
                minor: "1.40".into(),
                released: "2027-10-01".parse().unwrap(),
                end_of_support: None,
                lts_end_of_support: None,
            },
        ];
        let cal = merged_calendar(Platform::AksArc, &inline).unwrap();
        let m131 = cal.iter().find(|r| r.minor == "1.31".parse().unwrap()).unwrap();
        assert_eq!(m131.end_of_support, Some("2025-10-28".parse().unwrap()));
        assert_eq!(cal.last().unwrap().minor, "1.40".parse().unwrap());
        assert_eq!(cal.len(), preset(Platform::AksArc).unwrap().releases.len() + 1);
    }

    #[test]
    fn inline_release_with_a_bad_minor_names_the_field() {
        let inline = vec![ReleaseSpec {
            minor: "one.two".into(),
            released: "2024-08-13".parse().unwrap(),
            end_of_support: None,
            lts_end_of_support: None,
        }];
        let err = merged_calendar(Platform::Custom, &inline).unwrap_err();
        assert_eq!(err.index, 0);
        assert!(err.to_string().starts_with("releases[0].minor: 'one.two' is not a Kubernetes version"), "{err}");
    }
}
