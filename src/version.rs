//! Kubernetes versions, parsed leniently: `v1.31.4`, `1.31.4-aks.1`, `v1.30.2+k3s1`,
//! `v1.29.8-eks-1a2b3c` and `v1.35.6-gke.1049000` all have a minor.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

use crate::text::snippet;

/// A Kubernetes minor, `MAJOR.MINOR`, ordered numerically (1.9 < 1.10).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Minor {
    /// Major version (1).
    pub major: u32,
    /// Minor version.
    pub minor: u32,
}

impl Minor {
    /// How many minors `self` is behind `newer` (negative when it is ahead). Only meaningful
    /// within one major, as every Kubernetes release so far.
    pub fn minors_behind(self, newer: Minor) -> i64 {
        if self.major != newer.major {
            return (i64::from(newer.major) - i64::from(self.major)) * 1000;
        }
        i64::from(newer.minor) - i64::from(self.minor)
    }
}

impl fmt::Display for Minor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Why a string is not a Kubernetes version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a Kubernetes version (expected MAJOR.MINOR[.PATCH], e.g. v1.31.4)")]
pub struct VersionError(pub String);

impl FromStr for Minor {
    type Err = VersionError;

    /// Strict `MAJOR.MINOR`, as calendar entries write it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || VersionError(snippet(s));
        let (major, minor) = s.split_once('.').ok_or_else(err)?;
        Ok(Minor { major: number(major).ok_or_else(err)?, minor: number(minor).ok_or_else(err)? })
    }
}

impl<'de> Deserialize<'de> for Minor {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The minor of a version string as a kubelet or an API server reports it. Accepts a leading
/// `v`, an optional patch and any `-…` or `+…` suffix.
pub fn parse_version(s: &str) -> Result<Minor, VersionError> {
    let err = || VersionError(snippet(s));
    let t = s.trim();
    let t = t.strip_prefix(['v', 'V']).unwrap_or(t);
    let core = t.split(['-', '+']).next().unwrap_or_default();
    let mut parts = core.split('.');
    let major = parts.next().and_then(number).ok_or_else(err)?;
    let minor = parts.next().and_then(number).ok_or_else(err)?;
    match parts.next() {
        None => {}
        Some(patch) if number(patch).is_some() => {}
        Some(_) => return Err(err()),
    }
    if parts.next().is_some() {
        return Err(err());
    }
    Ok(Minor { major, minor })
}

fn number(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 6 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(major: u32, minor: u32) -> Minor {
        Minor { major, minor }
    }

    #[test]
    fn lenient_forms_have_a_minor() {
        for (input, want) in [
            ("v1.31.4", m(1, 31)),
            ("1.31.4-aks.1", m(1, 31)),
            ("v1.30.2+k3s1", m(1, 30)),
            ("v1.29.8-eks-1a2b3c", m(1, 29)),
            ("v1.35.6-gke.1049000", m(1, 35)),
            ("1.28.103-akslts", m(1, 28)),
            ("v1.31", m(1, 31)),
            (" v1.9.0 ", m(1, 9)),
        ] {
            assert_eq!(parse_version(input), Ok(want), "{input}");
        }
    }

    #[test]
    fn garbage_is_an_error_naming_the_input() {
        for input in ["", "v", "garbage", "1", "1.", ".31", "v1.x.3", "1.31.4.5", "v-1.2", "1.99999999999"] {
            let err = parse_version(input).unwrap_err();
            assert!(err.to_string().contains("is not a Kubernetes version"), "{input}");
        }
    }

    #[test]
    fn minors_order_numerically() {
        assert!(m(1, 9) < m(1, 10));
        assert_eq!("1.10".parse::<Minor>().unwrap().minors_behind(m(1, 13)), 3);
        assert_eq!(m(1, 14).minors_behind(m(1, 13)), -1);
    }

    proptest! {
        #[test]
        fn parser_never_panics(s in "\\PC*") {
            let _ = parse_version(&s);
            let _ = s.parse::<Minor>();
        }

        #[test]
        fn well_formed_versions_round_trip(
            major in 0u32..100,
            minor in 0u32..1000,
            patch in 0u32..1000,
            suffix in "(-[a-z0-9.]{1,10})?",
        ) {
            let s = format!("v{major}.{minor}.{patch}{suffix}");
            prop_assert_eq!(parse_version(&s), Ok(m(major, minor)));
        }
    }
}
