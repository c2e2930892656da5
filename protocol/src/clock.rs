//! Wall-clock seconds since the Unix epoch, as the wire carries expiry times
//! (`expires_at_unix`) and the store keeps them.

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

#[cfg(test)]
mod tests {
    use super::*;

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
