//! A calendar read with a policy's numbers: when a minor's support ends, and why.

use chrono::{DateTime, Utc};

use super::Release;
use crate::time::{plus_days, start_of_day};
use crate::version::Minor;

/// A merged calendar and the numbers that apply to it.
#[derive(Debug, Clone, PartialEq)]
pub struct SupportCalendar {
    /// The releases, sorted by minor.
    pub releases: Vec<Release>,
    /// Support of a release without `endOfSupport`: `released + N days`.
    pub support_window_days: Option<u32>,
    /// Only the N newest released minors are supported.
    pub supported_minors: Option<u32>,
    /// Count `ltsEndOfSupport` where a release has one.
    pub long_term_support: bool,
}

/// How a minor stands in the calendar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// In the calendar; support ends at `end` (if known) for `reason`.
    Known {
        /// The minor.
        minor: Minor,
        /// When its support ends.
        end: Option<DateTime<Utc>>,
        /// Why then.
        reason: EndReason,
        /// The oldest minor still supported at `end` (what to upgrade to).
        oldest_supported_at_end: Option<Minor>,
    },
    /// Newer than every entry, or in a gap.
    Unknown {
        /// The minor.
        minor: Minor,
        /// The calendar's newest minor.
        newest: Option<Minor>,
    },
    /// Older than every entry.
    TooOld {
        /// The minor.
        minor: Minor,
        /// The calendar's oldest minor.
        oldest: Minor,
        /// The calendar's newest minor.
        newest: Option<Minor>,
    },
}

impl Standing {
    /// The minor.
    pub fn minor(&self) -> Minor {
        match self {
            Standing::Known { minor, .. } | Standing::Unknown { minor, .. } | Standing::TooOld { minor, .. } => *minor,
        }
    }
}

/// Why a minor's support ends when it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// The calendar's `endOfSupport`.
    Calendar,
    /// The calendar's `ltsEndOfSupport`.
    Lts,
    /// `released + supportWindowDays`.
    Window(u32),
    /// It falls out of the N newest released minors when these are released.
    Displaced {
        /// N.
        n: u32,
        /// The N newer minors, in release order.
        by: Vec<Minor>,
    },
}

impl SupportCalendar {
    /// The end of support of a calendar entry, and why.
    fn entry_end(&self, idx: usize) -> (Option<DateTime<Utc>>, EndReason) {
        let r = &self.releases[idx];
        let (mut end, mut reason) = match (self.long_term_support, r.lts_end_of_support, r.end_of_support) {
            (true, Some(lts), _) => (Some(start_of_day(lts)), EndReason::Lts),
            (_, _, Some(eos)) => (Some(start_of_day(eos)), EndReason::Calendar),
            (_, _, None) => match self.support_window_days {
                Some(days) => (Some(plus_days(start_of_day(r.released), days)), EndReason::Window(days)),
                None => (None, EndReason::Calendar),
            },
        };
        let lts_applies = self.long_term_support && r.lts_end_of_support.is_some();
        if let (Some(n), false) = (self.supported_minors.filter(|n| *n > 0), lts_applies) {
            let mut newer: Vec<_> = self
                .releases
                .iter()
                .filter(|o| o.minor > r.minor && !o.planned)
                .map(|o| (o.released, o.minor))
                .collect();
            newer.sort();
            if let Some((released, _)) = newer.get(n as usize - 1) {
                let displaced = start_of_day(*released);
                if end.is_none_or(|e| displaced < e) {
                    end = Some(displaced);
                    reason = EndReason::Displaced { n, by: newer[..n as usize].iter().map(|(_, m)| *m).collect() };
                }
            }
        }
        (end, reason)
    }

    /// The oldest minor still supported at `t` (to tell people what to upgrade to).
    fn oldest_supported(&self, t: DateTime<Utc>) -> Option<Minor> {
        (0..self.releases.len())
            .filter(|&i| start_of_day(self.releases[i].released) <= t)
            .find(|&i| self.entry_end(i).0.is_none_or(|end| end > t))
            .map(|i| self.releases[i].minor)
    }

    /// When the support of a listed `minor` ends (`None`: not listed, or no end), without the
    /// rest of its standing.
    pub fn end_of(&self, minor: Minor) -> Option<DateTime<Utc>> {
        self.releases.iter().position(|r| r.minor == minor).and_then(|i| self.entry_end(i).0)
    }

    /// How `minor` stands.
    pub fn standing(&self, minor: Minor) -> Standing {
        let newest = self.releases.last().map(|r| r.minor);
        let Some(idx) = self.releases.iter().position(|r| r.minor == minor) else {
            return match self.releases.first().map(|r| r.minor) {
                Some(oldest) if minor < oldest => Standing::TooOld { minor, oldest, newest },
                _ => Standing::Unknown { minor, newest },
            };
        };
        let (end, reason) = self.entry_end(idx);
        Standing::Known { minor, end, reason, oldest_supported_at_end: end.and_then(|e| self.oldest_supported(e)) }
    }
}
