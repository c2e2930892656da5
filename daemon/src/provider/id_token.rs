//! The OpenID Connect id_token that came with a provider's token, served on its own (`tok get
//! --id-token`) by its own expiry (its `exp` claim): which token a caller wants ([`Wanted`]),
//! the id_token's cache entry and advisory window, what a caller is told when there is none, and
//! the id_token carried over when a refresh answer leaves it out.

use std::time::{Duration, SystemTime};

use tokend_protocol::{ErrorCode, HeaderLine, Response, TokenGrant, clock};
use tokio::time::Instant;

use super::cache::advisory_start;
use super::{Current, MAX_LIFETIME, Provider, lasts};
use crate::kinds::Fetched;
use crate::kinds::fetched::{JwtExpiry, jwt_expiry};

/// Which of a provider's tokens a caller wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wanted {
    /// The token (an access token, a key…).
    Access,
    /// The OpenID Connect id_token that came with it.
    IdToken,
}

/// When a cached id_token expires, and when its advisory window starts.
#[derive(Debug, Clone, Copy)]
pub(super) struct IdToken {
    pub(super) expires: Option<Instant>,
    pub(super) refresh_at: Option<Instant>,
}

impl Current {
    /// Whether the token `wanted` stays valid for `min_ttl` from `now`.
    pub(super) fn serves_for(&self, wanted: Wanted, now: Instant, min_ttl: Duration) -> bool {
        match wanted {
            Wanted::Access => self.serves(now, min_ttl),
            Wanted::IdToken => self
                .id
                .as_ref()
                .is_some_and(|id| lasts(id.expires, now, min_ttl)),
        }
    }

    /// When the token `wanted` expires (`None`: it does not, or there is no id_token).
    pub(super) fn expires_of(&self, wanted: Wanted) -> Option<Instant> {
        match wanted {
            Wanted::Access => self.expires,
            Wanted::IdToken => self.id.and_then(|id| id.expires),
        }
    }

    /// When the advisory window of the token `wanted` starts.
    pub(super) fn refresh_at_for(&self, wanted: Wanted) -> Option<Instant> {
        match wanted {
            Wanted::Access => self.refresh_at,
            Wanted::IdToken => self.id.as_ref().and_then(|id| id.refresh_at),
        }
    }
}

impl Provider {
    /// A refresh answer may leave the id_token out (OpenID Connect Core 1.0, 12.2): the one
    /// that came before goes on with the new token while its own `exp` lasts (one without a
    /// readable `exp` had the access token's expiry, and so does not).
    pub(super) fn carry_id_token(&self, fetched: &mut Fetched) {
        if fetched.id_token.is_some() {
            return;
        }
        let now = Instant::now();
        let inner = self.inner();
        let Some(current) = &inner.current else {
            return;
        };
        if let (Some(id), Some(cached)) = (current.id, current.cached.id_token())
            && id.expires.is_some_and(|expires| expires > now)
            && matches!(
                jwt_expiry(cached.grant.token.expose()),
                JwtExpiry::Remaining(_)
            )
        {
            fetched.id_token = Some(cached.grant.token.clone());
        }
    }

    /// The answer to a caller who wants an id_token when the grant returned none.
    pub(super) fn no_id_token(&self) -> Response {
        Response::error(
            ErrorCode::Upstream,
            format!(
                "provider `{}`: its token came without an id_token (only OpenID Connect grants \
                 return one: ask for the `openid` scope), so there is none to serve; then run \
                 `tok invalidate {}`",
                self.config.name, self.config.name
            ),
        )
    }

    /// The cache entry of an id_token: its own expiry from its `exp` claim (the access token's
    /// when it has none that can be read); `None` for one that cannot be sent. One that has
    /// expired (kept in the store past its `exp`) is kept as expired: a caller who wants it gets
    /// a fetch, not "there is none".
    pub(super) fn id_entry(
        &self,
        id_token: tokend_protocol::Secret,
        now: Instant,
        access_expires: Option<Instant>,
        access_expires_unix: Option<u64>,
    ) -> Option<(TokenGrant, IdToken)> {
        if id_token.expose().chars().any(char::is_control) {
            tracing::warn!(provider = %self.config.name, "the id_token has a control character; not kept");
            return None;
        }
        let (expires, expires_at_unix) = match jwt_expiry(id_token.expose()) {
            JwtExpiry::Remaining(left) => {
                let left = left.min(MAX_LIFETIME);
                (
                    Some(now + left),
                    Some(clock::unix_secs(SystemTime::now() + left)),
                )
            }
            JwtExpiry::NotJwt | JwtExpiry::NoExp | JwtExpiry::Unusable(_) => {
                (access_expires, access_expires_unix)
            }
        };
        let header = HeaderLine {
            name: "Authorization".to_owned(),
            value: tokend_protocol::Secret::new(format!("Bearer {}", id_token.expose())),
        };
        let grant = TokenGrant {
            provider: self.config.name.clone(),
            token: id_token,
            header: Some(header),
            expires_at_unix,
        };
        let id = IdToken {
            expires,
            refresh_at: expires.map(|expires| advisory_start(now, expires)),
        };
        Some((grant, id))
    }
}
