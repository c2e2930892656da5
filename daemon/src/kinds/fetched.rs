//! What a fetch yields: a token with its lifetime (and, for refresh-token grants, the rotated
//! refresh token), or a [`FetchError`] that says how the provider reacts: a configuration
//! problem, a transient failure worth retrying later, or a rejection that no retry will fix.
//!
//! Messages of a kind never name the provider: the provider adds `provider `NAME`: ` once
//! ([`FetchError::in_provider`]). They name the URL (without query) and what was wrong, never a
//! secret or a response body.

use std::time::Duration;

use serde_json::Value;
use tokend_protocol::{ErrorCode, Secret, clock};
use tokio::time::Instant;

/// A token just obtained.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub(crate) token: Secret,
    pub(crate) lifetime: Lifetime,
    /// A new refresh token returned with the access token (rotation).
    pub(crate) refresh_token: Option<Secret>,
    /// The OpenID Connect id_token returned with it, if any: served on its own (`tok get
    /// --id-token`) with the expiry of its own `exp` claim.
    pub(crate) id_token: Option<Secret>,
    /// The instant `lifetime` counts from: when the answer was read, which the provider moves
    /// back to when the request was sent (an `expires_in` counts from the server's answer, no
    /// earlier than the request), so that neither a slow answer nor the time spent storing
    /// the token makes it look longer-lived than it is.
    pub(crate) since: Instant,
}

impl Fetched {
    /// A token read just now, with no refresh token and no id_token.
    pub(crate) fn new(token: Secret, lifetime: Lifetime) -> Self {
        Self {
            token,
            lifetime,
            refresh_token: None,
            id_token: None,
            since: Instant::now(),
        }
    }

    /// Time left from now (`None`: valid until invalidated; zero: expired already).
    pub(crate) fn remaining(&self) -> Option<Duration> {
        match self.lifetime {
            Lifetime::Expires(lifetime) => Some(
                self.since
                    .checked_add(lifetime)
                    .map_or(lifetime, |expires| {
                        expires.saturating_duration_since(Instant::now())
                    }),
            ),
            Lifetime::Unbounded => None,
        }
    }
}

/// How long a fetched token lives, counted from [`Fetched::since`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lifetime {
    Expires(Duration),
    /// Valid until invalidated (static secrets, exchanges without expiry).
    Unbounded,
}

/// Why a fetch failed, and so how the engine reacts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FetchError {
    /// The provider's configuration cannot work (for example a secret reference that does not
    /// resolve). Not retried until a caller asks again.
    Config(String),
    /// Worth retrying later: network trouble, timeouts, 5xx, 429, malformed answers.
    Transient {
        message: String,
        retry_after: Option<Duration>,
    },
    /// The token endpoint refused the credentials (`invalid_client`, `invalid_grant`, 401,
    /// 403, …): retrying cannot help. `needs_login` when only a person can fix it.
    Rejected { message: String, needs_login: bool },
    /// Another provider whose token this one needs (`${provider:NAME}`, a rotation's `auth`)
    /// gave none: reported with that provider's error code (login required stays login
    /// required), and not held against this provider (that one backs off by itself; once it is
    /// fixed, this one works at once).
    Referenced { message: String, code: ErrorCode },
}

impl FetchError {
    pub(crate) fn message(&self) -> &str {
        match self {
            Self::Config(message)
            | Self::Transient { message, .. }
            | Self::Rejected { message, .. }
            | Self::Referenced { message, .. } => message,
        }
    }

    /// The same error, its message prefixed with where it happened (`token endpoint URL`).
    #[must_use]
    pub(crate) fn at(self, where_: &str) -> Self {
        self.map_message(|message| format!("{where_}: {message}"))
    }

    /// The same error, its message prefixed with the provider that met it.
    #[must_use]
    pub(crate) fn in_provider(self, name: &str) -> Self {
        self.map_message(|message| format!("provider `{name}`: {message}"))
    }

    /// The same error with its message changed by `change`.
    #[must_use]
    pub(crate) fn map_message(self, change: impl FnOnce(String) -> String) -> Self {
        let prefix = change;
        match self {
            Self::Config(message) => Self::Config(prefix(message)),
            Self::Transient {
                message,
                retry_after,
            } => Self::Transient {
                message: prefix(message),
                retry_after,
            },
            Self::Rejected {
                message,
                needs_login,
            } => Self::Rejected {
                message: prefix(message),
                needs_login,
            },
            Self::Referenced { message, code } => Self::Referenced {
                message: prefix(message),
                code,
            },
        }
    }
}

/// Upstream text shown in one line, bounded.
pub(crate) fn one_line(text: &str) -> String {
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    line.trim().to_owned()
}

// ---------------------------------------------------------------------------------------------
// Expiry

/// The lifetime of a token: `expires_in` if given, else the JWT `exp` claim, else `ttl`, else
/// unbounded. With `jwt_expected`, a missing `exp` is logged. A token that is a JWT whose `exp`
/// cannot be read (not a number, claims that are not JSON) takes `ttl`, or is refused: nothing
/// says how long it lives.
pub(crate) fn lifetime_of(
    expires_in: Option<Duration>,
    token: &Secret,
    ttl: Option<Duration>,
    jwt_expected: bool,
) -> Result<Lifetime, FetchError> {
    if let Some(expires_in) = expires_in {
        return Ok(Lifetime::Expires(expires_in));
    }
    match jwt_expiry(token.expose()) {
        JwtExpiry::Remaining(remaining) => return Ok(Lifetime::Expires(remaining)),
        JwtExpiry::Unusable(problem) => match ttl {
            Some(ttl) => {
                tracing::warn!(
                    "the token is a JWT whose {problem}; assuming {} s",
                    ttl.as_secs()
                );
            }
            None => {
                return Err(FetchError::Transient {
                    message: format!(
                        "the token is a JWT whose {problem}, and no expires_in came with it, so \
                         its lifetime is unknown; the token was not served (set `ttl` to assume \
                         one)"
                    ),
                    retry_after: None,
                });
            }
        },
        JwtExpiry::NoExp | JwtExpiry::NotJwt if jwt_expected => {
            tracing::warn!(
                "the token has no JWT `exp` claim; {}",
                ttl.map_or_else(
                    || "treating it as valid until invalidated".to_owned(),
                    |t| format!("assuming {} s", t.as_secs())
                )
            );
        }
        JwtExpiry::NoExp | JwtExpiry::NotJwt => {}
    }
    Ok(ttl.map_or(Lifetime::Unbounded, Lifetime::Expires))
}

/// What a token's JWT `exp` claim says. The signature is not checked: the token is not ours to
/// verify, only to schedule.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum JwtExpiry {
    /// Not a JWT (an opaque token).
    NotJwt,
    /// A JWT without `exp`.
    NoExp,
    /// Time left until `exp` (zero when it has passed, however long ago).
    Remaining(Duration),
    /// A JWT whose `exp` cannot be read; the text says why.
    Unusable(&'static str),
}

/// Reads the `exp` claim of `token` if it is a JWT: `header.claims.signature`, base64url, a JSON
/// header with `alg`. `exp` is seconds since the epoch: an integer, a float, or a numeric string
/// as CRM.COM sends it; a negative or past one means expired.
pub(crate) fn jwt_expiry(token: &str) -> JwtExpiry {
    use base64::Engine as _;
    let decode = |part: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part.trim_end_matches('='))
            .ok()
    };
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return JwtExpiry::NotJwt;
    };
    let is_header = decode(header)
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .is_some_and(|header| header.get("alg").is_some());
    if !is_header {
        return JwtExpiry::NotJwt;
    }
    let Some(claims) = decode(claims) else {
        return JwtExpiry::Unusable("claims are not base64url");
    };
    let Ok(claims) = serde_json::from_slice::<Value>(&claims) else {
        return JwtExpiry::Unusable("claims are not JSON (or hold a number out of range)");
    };
    let Some(exp) = claims.get("exp") else {
        return JwtExpiry::NoExp;
    };
    match seconds(exp) {
        // Measured against the clock to the nanosecond: `exp` is a whole second, and the
        // current second may be nearly over.
        Some(exp) => JwtExpiry::Remaining(clock::until_unix_secs(exp).unwrap_or(Duration::MAX)),
        None => JwtExpiry::Unusable("`exp` claim is not a number of seconds"),
    }
}

/// A number of seconds as upstream writes it: an integer, a float (rounded down) or a numeric
/// string; negative ones are zero. `None` for anything else (text, `NaN`, objects).
pub(crate) fn seconds(value: &Value) -> Option<u64> {
    let number = |value: &Value| -> Option<u64> {
        if let Some(secs) = value.as_u64() {
            return Some(secs);
        }
        if value.as_i64().is_some() {
            // Negative: in the past.
            return Some(0);
        }
        let float = value.as_f64().filter(|f| f.is_finite())?;
        // Saturating casts: huge values are capped later, negative ones are in the past.
        Some(if float <= 0.0 { 0 } else { float as u64 })
    };
    match value {
        Value::String(text) => {
            let parsed: Value = serde_json::from_str(text.trim()).ok()?;
            parsed.is_number().then(|| number(&parsed)).flatten()
        }
        other => number(other),
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;

    fn jwt(claims: &str) -> String {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!(
            "{}.{}.sig",
            b64(r#"{"alg":"HS256","typ":"JWT"}"#),
            b64(claims)
        )
    }

    fn now() -> u64 {
        tokend_protocol::clock::unix_now()
    }

    fn remaining(token: &str) -> Option<Duration> {
        match jwt_expiry(token) {
            JwtExpiry::Remaining(left) => Some(left),
            _ => None,
        }
    }

    #[test]
    fn jwt_exp_as_number_or_string() {
        let in_an_hour = now() + 3600;
        let numeric = jwt(&format!(r#"{{"exp":{in_an_hour}}}"#));
        let remaining = remaining(&numeric).unwrap().as_secs();
        assert!((3590..=3600).contains(&remaining), "{remaining}");
        // CRM.COM sends exp as a string.
        let stringy = jwt(&format!(r#"{{"exp":"{in_an_hour}"}}"#));
        assert!(remaining_of(&stringy).is_some());
        assert_eq!(jwt_expiry(&jwt(r#"{"sub":"x"}"#)), JwtExpiry::NoExp);
        assert_eq!(jwt_expiry("not-a-jwt"), JwtExpiry::NotJwt);
        let past = jwt(r#"{"exp":1000}"#);
        assert_eq!(remaining_of(&past), Some(Duration::ZERO));
    }

    #[test]
    fn jwt_time_left_is_never_more_than_the_clock_says() {
        // `exp` is a whole second and the current one may be nearly over: what is left must be
        // measured to the nanosecond (the soak found tokens served 0.9 s short of the minimum
        // lifetime asked when it was counted in whole seconds).
        let exp = now() + 2;
        let token = jwt(&format!(r#"{{"exp":{exp}}}"#));
        let before = std::time::SystemTime::now();
        let left = remaining(&token).unwrap();
        let deadline = before + left;
        assert!(
            deadline <= tokend_protocol::clock::from_unix_secs(exp).unwrap(),
            "{left:?} runs past exp"
        );
    }

    fn remaining_of(token: &str) -> Option<Duration> {
        remaining(token)
    }

    #[test]
    fn every_exp_form_gives_a_lifetime_or_says_why_not() {
        let in_an_hour = now() + 3600;
        // Past, negative and zero: expired (zero left), never "no expiry".
        for exp in ["1000", "-5", "0", "-1e10", "\"-30\"", "0.0"] {
            let token = jwt(&format!(r#"{{"exp":{exp}}}"#));
            assert_eq!(remaining_of(&token), Some(Duration::ZERO), "exp {exp}");
        }
        // Floats and numeric strings: rounded down.
        for exp in [
            format!("{in_an_hour}.9"),
            format!("\"{in_an_hour}\""),
            format!("\" {in_an_hour} \""),
        ] {
            let token = jwt(&format!(r#"{{"exp":{exp}}}"#));
            let left = remaining_of(&token).unwrap().as_secs();
            assert!((3590..=3600).contains(&left), "exp {exp}: {left}");
        }
        // Huge: a long lifetime (the provider caps it at ten years).
        let huge = jwt(r#"{"exp":1e300}"#);
        assert!(remaining_of(&huge).unwrap() > Duration::from_secs(100 * 365 * 86_400));
        let huge = jwt(&format!(r#"{{"exp":{}}}"#, u64::MAX));
        assert!(remaining_of(&huge).is_some());
        // Unreadable: said, not guessed.
        for (claims, why) in [
            (r#"{"exp":"soon"}"#, "not a number"),
            (r#"{"exp":null}"#, "not a number"),
            (r#"{"exp":{"at":1}}"#, "not a number"),
            (r#"{"exp":1e309}"#, "not JSON"),
            (r#"not json"#, "not JSON"),
        ] {
            match jwt_expiry(&jwt(claims)) {
                JwtExpiry::Unusable(problem) => {
                    assert!(problem.contains(why), "{claims}: {problem}");
                }
                other => panic!("{claims}: {other:?}"),
            }
        }
        let opaque = Secret::from("opaque");
        let broken = Secret::new(jwt(r#"{"exp":"soon"}"#));
        assert!(matches!(
            lifetime_of(None, &broken, None, false),
            Err(FetchError::Transient { message, .. }) if message.contains("lifetime is unknown")
        ));
        let hour = Duration::from_secs(3600);
        assert_eq!(
            lifetime_of(None, &broken, Some(hour), false).unwrap(),
            Lifetime::Expires(hour)
        );
        assert_eq!(
            lifetime_of(None, &opaque, None, false).unwrap(),
            Lifetime::Unbounded
        );
    }

    #[test]
    fn seconds_forms() {
        use serde_json::json;
        assert_eq!(seconds(&json!(3600)), Some(3600));
        assert_eq!(seconds(&json!(-1)), Some(0));
        assert_eq!(seconds(&json!(3600.7)), Some(3600));
        assert_eq!(seconds(&json!("3600")), Some(3600));
        assert_eq!(seconds(&json!("-3600")), Some(0));
        assert_eq!(seconds(&json!("1e3")), Some(1000));
        assert_eq!(seconds(&json!("soon")), None);
        assert_eq!(seconds(&json!(true)), None);
        assert_eq!(seconds(&json!(null)), None);
    }

    #[test]
    fn lifetime_prefers_expires_in_then_jwt_then_ttl() {
        let hour = Duration::from_secs(3600);
        let opaque = Secret::from("opaque");
        assert_eq!(
            lifetime_of(Some(hour), &opaque, None, false).unwrap(),
            Lifetime::Expires(hour)
        );
        assert_eq!(
            lifetime_of(None, &opaque, Some(hour), false).unwrap(),
            Lifetime::Expires(hour)
        );
        assert_eq!(
            lifetime_of(None, &opaque, None, false).unwrap(),
            Lifetime::Unbounded
        );
        let token = Secret::new(jwt(&format!(r#"{{"exp":{}}}"#, now() + 60)));
        assert!(
            matches!(lifetime_of(None, &token, Some(hour), true), Ok(Lifetime::Expires(d)) if d <= Duration::from_secs(60))
        );
    }
}
