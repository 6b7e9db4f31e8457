//! Time at the boundary. The domain does its date arithmetic in `chrono`; Kubernetes objects
//! (k8s-openapi 0.29) carry timestamps as `jiff`. Every conversion between the two is here.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// One day, as the contract counts it: exactly 86,400 seconds.
pub const DAY_SECONDS: i64 = 86_400;

/// A calendar day at 00:00:00 UTC.
pub fn start_of_day(day: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0).expect("midnight exists"))
}

/// `t + days × 86,400 s`, saturating instead of overflowing on absurd inputs.
pub fn plus_days(t: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    t.checked_add_signed(chrono::TimeDelta::seconds(i64::from(days) * DAY_SECONDS)).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `t − days × 86,400 s`, saturating.
pub fn minus_days(t: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    t.checked_sub_signed(chrono::TimeDelta::seconds(i64::from(days) * DAY_SECONDS)).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// A Kubernetes `metav1.Time` as a chrono instant.
pub fn from_k8s(t: &Time) -> DateTime<Utc> {
    from_jiff(t.0)
}

/// A jiff timestamp as a chrono instant.
pub fn from_jiff(t: jiff::Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp(t.as_second(), t.subsec_nanosecond().max(0) as u32).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// A chrono instant as a Kubernetes `metav1.Time` (whole seconds, as the API serialises them).
pub fn to_k8s(t: DateTime<Utc>) -> Time {
    Time(jiff::Timestamp::from_second(t.timestamp()).unwrap_or(jiff::Timestamp::UNIX_EPOCH))
}

/// Parses an RFC 3339 timestamp as Kubernetes writes them (`2026-11-01T08:00:00Z`).
pub fn parse_rfc3339(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

/// Formats an instant the way the API does: RFC 3339, seconds, `Z`.
pub fn format(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// An instant for people: the day when it is midnight UTC (`2026-11-30`), else RFC 3339.
pub fn when(t: DateTime<Utc>) -> String {
    if t.time() == chrono::NaiveTime::MIN {
        t.date_naive().to_string()
    } else {
        format(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k8s_round_trip_keeps_the_second() {
        let t = parse_rfc3339("2026-11-25T12:34:56Z").unwrap();
        assert_eq!(from_k8s(&to_k8s(t)), t);
    }

    #[test]
    fn days_are_86400_seconds_and_saturate() {
        let t = start_of_day(NaiveDate::from_ymd_opt(2025, 10, 28).unwrap());
        assert_eq!(format(plus_days(t, 1)), "2025-10-29T00:00:00Z");
        assert_eq!(format(minus_days(t, 60)), "2025-08-29T00:00:00Z");
        assert_eq!(plus_days(DateTime::<Utc>::MAX_UTC, 1), DateTime::<Utc>::MAX_UTC);
    }

    #[test]
    fn instants_for_people_are_days_at_midnight() {
        assert_eq!(when(parse_rfc3339("2026-11-30T00:00:00Z").unwrap()), "2026-11-30");
        assert_eq!(when(parse_rfc3339("2026-11-30T00:00:01Z").unwrap()), "2026-11-30T00:00:01Z");
    }
}
