//! Small time helpers for `tok`'s output and arguments (RFC 3339 comes from the protocol
//! crate's `clock`, which the daemon's token files use too).

use std::time::Duration;

/// RFC 3339 UTC timestamp (`2026-11-22T22:51:16Z`) for seconds since the Unix epoch.
pub(crate) use tokend_protocol::clock::rfc3339;

/// Human form of a remaining duration: `1h02m`, `5m10s`, `42s`.
pub(crate) fn human(duration: Duration) -> String {
    let secs = duration.as_secs();
    if secs >= 3600 {
        format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60)
    } else if secs >= 60 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humanizes() {
        assert_eq!(human(Duration::from_secs(42)), "42s");
        assert_eq!(human(Duration::from_secs(310)), "5m10s");
        assert_eq!(human(Duration::from_secs(3720)), "1h02m");
    }
}
