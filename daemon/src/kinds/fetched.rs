//! What a fetch yields: a token with its lifetime (and, for refresh-token grants, the rotated
//! refresh token), or a [`FetchError`] that says how the provider reacts: a configuration
//! problem, a transient failure worth retrying later, or a rejection that no retry will fix.
//!
//! Messages of a kind never name the provider: the provider adds `provider `NAME`: ` once
//! ([`FetchError::in_provider`]). They name the URL (without query) and what was wrong, never a
//! secret or a response body.

use std::time::Duration;

use serde_json::Value;
use tokend_protocol::{Secret, clock};

/// A token just obtained.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub(crate) token: Secret,
    pub(crate) lifetime: Lifetime,
    /// A new refresh token returned with the access token (rotation).
    pub(crate) refresh_token: Option<Secret>,
}

/// How long a fetched token lives, counted from when its response arrived.
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
}

impl FetchError {
    pub(crate) fn message(&self) -> &str {
        match self {
            Self::Config(message)
            | Self::Transient { message, .. }
            | Self::Rejected { message, .. } => message,
        }
    }

    /// The same error, its message prefixed with the provider that met it.
    #[must_use]
    pub(crate) fn in_provider(self, name: &str) -> Self {
        let prefix = |message: String| format!("provider `{name}`: {message}");
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
/// unbounded. With `jwt_expected`, a missing or unusable `exp` is logged.
pub(crate) fn lifetime_of(
    expires_in: Option<Duration>,
    token: &Secret,
    ttl: Option<Duration>,
    jwt_expected: bool,
) -> Lifetime {
    if let Some(expires_in) = expires_in {
        return Lifetime::Expires(expires_in);
    }
    if let Some(remaining) = jwt_remaining(token.expose()) {
        return Lifetime::Expires(remaining);
    }
    if jwt_expected {
        tracing::warn!(
            "the token has no usable JWT `exp` claim; {}",
            ttl.map_or_else(
                || "treating it as valid until invalidated".to_owned(),
                |t| format!("assuming {} s", t.as_secs())
            )
        );
    }
    ttl.map_or(Lifetime::Unbounded, Lifetime::Expires)
}

/// Time left until a JWT's `exp` claim (a number, or a numeric string as CRM.COM sends it).
/// The signature is not checked: the token is not ours to verify, only to schedule.
pub(crate) fn jwt_remaining(token: &str) -> Option<Duration> {
    let data = jsonwebtoken::dangerous::insecure_decode::<Value>(token).ok()?;
    let exp = data.claims.get("exp")?;
    let exp = exp
        .as_u64()
        .or_else(|| exp.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
        .or_else(|| exp.as_str().and_then(|s| s.trim().parse().ok()))?;
    Some(Duration::from_secs(exp.saturating_sub(clock::unix_now())))
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

    #[test]
    fn jwt_exp_as_number_or_string() {
        let in_an_hour = now() + 3600;
        let numeric = jwt(&format!(r#"{{"exp":{in_an_hour}}}"#));
        let remaining = jwt_remaining(&numeric).unwrap().as_secs();
        assert!((3590..=3600).contains(&remaining), "{remaining}");
        // CRM.COM sends exp as a string.
        let stringy = jwt(&format!(r#"{{"exp":"{in_an_hour}"}}"#));
        assert!(jwt_remaining(&stringy).is_some());
        assert_eq!(jwt_remaining(&jwt(r#"{"sub":"x"}"#)), None);
        assert_eq!(jwt_remaining("not-a-jwt"), None);
        let past = jwt(r#"{"exp":1000}"#);
        assert_eq!(jwt_remaining(&past), Some(Duration::ZERO));
    }

    #[test]
    fn lifetime_prefers_expires_in_then_jwt_then_ttl() {
        let hour = Duration::from_secs(3600);
        let opaque = Secret::from("opaque");
        assert_eq!(
            lifetime_of(Some(hour), &opaque, None, false),
            Lifetime::Expires(hour)
        );
        assert_eq!(
            lifetime_of(None, &opaque, Some(hour), false),
            Lifetime::Expires(hour)
        );
        assert_eq!(lifetime_of(None, &opaque, None, false), Lifetime::Unbounded);
        let token = Secret::new(jwt(&format!(r#"{{"exp":{}}}"#, now() + 60)));
        assert!(
            matches!(lifetime_of(None, &token, Some(hour), true), Lifetime::Expires(d) if d <= Duration::from_secs(60))
        );
    }
}
