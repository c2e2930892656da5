//! The one duration grammar of tokend: the config file (`ttl = "1d"`, `timeout = "5s"`) and
//! `tok` (`--min-ttl 10m`) both read durations with [`parse`] and show them with [`format`].
//!
//! A duration is a whole number followed by an optional unit: `ms`, `s` (the default), `m`, `h`
//! or `d`, e.g. `250ms`, `90`, `90s`, `15m`, `2h`, `1d`. Surrounding spaces are ignored. Zero is a valid
//! duration here; where zero makes no sense (a token lifetime, a timeout) the caller refuses it.

use std::time::Duration;

/// Why a text is not a duration. Each message quotes the text and says what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// No number where one was expected (`soon`, `m5`, ``).
    #[error("`{0}` is not a duration; use e.g. 90s, 15m, 2h or 1d")]
    NotADuration(String),
    /// A number with a unit other than `s`, `m`, `h`, `d` (`2w`, `5 min`).
    #[error("`{0}` has an unknown unit; use ms, s, m, h or d")]
    UnknownUnit(String),
    /// More seconds than fit in 64 bits.
    #[error("`{0}` is too long")]
    TooLong(String),
}

/// Parses a duration such as `90`, `90s`, `15m`, `2h` or `1d`.
///
/// # Errors
/// [`DurationError`] naming the text and the accepted forms.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(split);
    let value: u64 = digits
        .parse()
        .map_err(|_| DurationError::NotADuration(trimmed.to_owned()))?;
    if unit == "ms" {
        return Ok(Duration::from_millis(value));
    }
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(DurationError::UnknownUnit(trimmed.to_owned())),
    };
    value
        .checked_mul(scale)
        .map(Duration::from_secs)
        .ok_or_else(|| DurationError::TooLong(trimmed.to_owned()))
}

/// A duration as the config writes it: the largest whole unit (`250ms`, `90s`, `15m`, `2h`,
/// `1d`).
#[must_use]
pub fn format(duration: Duration) -> String {
    if duration.subsec_millis() != 0 {
        return format!("{}ms", duration.as_millis());
    }
    let secs = duration.as_secs();
    match secs {
        0 => "0s".to_owned(),
        _ if secs.is_multiple_of(86_400) => format!("{}d", secs / 86_400),
        _ if secs.is_multiple_of(3_600) => format!("{}h", secs / 3_600),
        _ if secs.is_multiple_of(60) => format!("{}m", secs / 60),
        _ => format!("{secs}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit_parses() {
        assert_eq!(parse("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse(" 90s "), Ok(Duration::from_secs(90)));
        assert_eq!(parse("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
    }

    #[test]
    fn errors_name_the_text() {
        let err = parse("2w").unwrap_err();
        assert_eq!(err, DurationError::UnknownUnit("2w".into()));
        assert!(err.to_string().contains("unknown unit"));
        assert!(
            parse("soon")
                .unwrap_err()
                .to_string()
                .contains("not a duration")
        );
        assert!(
            parse("")
                .unwrap_err()
                .to_string()
                .contains("not a duration")
        );
        assert!(matches!(
            parse("99999999999999999999d"),
            Err(DurationError::NotADuration(_))
        ));
        assert!(matches!(
            parse("999999999999999999d"),
            Err(DurationError::TooLong(_))
        ));
    }

    #[test]
    fn format_round_trips() {
        for text in ["250ms", "1s", "90s", "15m", "2h", "1d", "36h", "1500ms"] {
            assert_eq!(format(parse(text).unwrap()), text);
        }
        assert_eq!(format(Duration::ZERO), "0s");
    }
}
