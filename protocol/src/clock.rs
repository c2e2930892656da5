//! Wall-clock seconds since the Unix epoch, as the wire carries expiry times
//! (`expires_at_unix`) and the store keeps them, and their RFC 3339 form for people and JSON.

use std::time::{Duration, SystemTime};

/// Seconds since the Unix epoch at `time`; 0 for a time before it.
#[must_use]
pub fn unix_secs(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// Seconds since the Unix epoch now.
#[must_use]
pub fn unix_now() -> u64 {
    unix_secs(SystemTime::now())
}

/// The point in time `secs` seconds after the Unix epoch; `None` past what the platform's
/// clock can represent.
#[must_use]
pub fn from_unix_secs(secs: u64) -> Option<SystemTime> {
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// Time left until `secs` seconds after the Unix epoch, to the nanosecond (zero once it has
/// passed); `None` past what the platform's clock can represent.
#[must_use]
pub fn until_unix_secs(secs: u64) -> Option<Duration> {
    let at = from_unix_secs(secs)?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// RFC 3339 UTC timestamp (`2026-11-22T22:51:16Z`) for `secs` seconds since the Unix epoch (as
/// the wire carries times; [`unix_secs`] converts a `SystemTime`).
#[must_use]
pub fn rfc3339(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX);
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_387_876), "2026-11-22T22:51:16Z");
    }

    #[test]
    fn round_trip() {
        assert_eq!(
            unix_secs(from_unix_secs(1_795_387_876).unwrap()),
            1_795_387_876
        );
        assert_eq!(
            unix_secs(SystemTime::UNIX_EPOCH - Duration::from_secs(5)),
            0
        );
        assert!(unix_now() > 1_700_000_000);
    }
}
