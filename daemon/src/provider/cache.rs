//! The cache entry of a provider: the token ready to serve with its response frame already
//! encoded ([`CachedGrant`]; with the id_token that came with it, ready the same way), its
//! expiry and the start of its advisory window (and the id_token's own), how a fetch's outcome
//! becomes the entry callers get (or the failure they get instead), and what drops it (`tok
//! invalidate`, a changed user secret).

use std::sync::Arc;
use std::time::SystemTime;

use tokend_protocol::frame::FrameBuf;
use tokend_protocol::{
    HeaderLine, Invalidation, MAX_FRAME_LEN, Response, TokenGrant, clock, codec,
};
use tokio::time::Instant;

use super::refresh::{Failure, backoff};
use super::{
    ADVISORY_DIVISOR, Current, INVALIDATE_INTERVAL, MAX_LIFETIME, MIN_ADVISORY, Origin, Provider,
    REFERENCED_HOLD, Trigger,
};
use crate::kinds::{FetchError, Fetched, Lifetime, ProviderKind};

/// A token ready to serve: the grant, and the `Response::Token` frame that carries it; and the
/// id_token that came with it, ready the same way.
#[derive(Debug)]
pub(crate) struct CachedGrant {
    pub(super) grant: TokenGrant,
    frame: FrameBuf,
    pub(super) id: Option<Box<CachedGrant>>,
}

impl CachedGrant {
    fn new(grant: TokenGrant) -> Result<Self, String> {
        let frame = codec::encode_frame(&Response::Token(grant.clone())).map_err(|err| {
            format!(
                "provider `{}`: its token cannot be sent ({err}; tokens must fit in {} KiB)",
                grant.provider,
                MAX_FRAME_LEN / 1024
            )
        })?;
        Ok(Self {
            grant,
            frame,
            id: None,
        })
    }

    /// The token and how to present it.
    pub(crate) fn grant(&self) -> &TokenGrant {
        &self.grant
    }

    /// The encoded `Response::Token` frame, length prefix included.
    pub(crate) fn frame(&self) -> &[u8] {
        &self.frame
    }

    /// The id_token that came with the token (presented as `Authorization: Bearer`), if any.
    pub(crate) fn id_token(&self) -> Option<&CachedGrant> {
        self.id.as_deref()
    }
}

/// Start of the advisory window of a token obtained at `obtained` that expires at `expires`.
pub(super) fn advisory_start(obtained: Instant, expires: Instant) -> Instant {
    let lifetime = expires.saturating_duration_since(obtained);
    let window = (lifetime / ADVISORY_DIVISOR)
        .max(MIN_ADVISORY)
        .min(lifetime / 2);
    // Jitter: up to a fifth more, so that many tokens issued together are not all refreshed in
    // the same instant.
    let jitter = window.mul_f64(fastrand::f64() / 5.0);
    expires
        .checked_sub(window + jitter)
        .unwrap_or(obtained)
        .max(obtained)
}

impl Provider {
    /// Records a fetch's outcome; returns the new token or the failure.
    pub(super) fn cache(
        self: &Arc<Self>,
        outcome: Result<Fetched, FetchError>,
        trigger: Trigger,
        origin: Origin,
    ) -> Result<Arc<CachedGrant>, FetchError> {
        let now = Instant::now();
        let outcome = outcome.and_then(|fetched| self.cache_entry(fetched, now));
        let mut inner = self.inner();
        inner.attempts += 1;
        inner.refreshing = false;
        match outcome {
            Ok(mut current) => {
                // A caller uses the id_token: refresh ahead of whichever expires first (not
                // of an id_token that came expired, nor of the one carried over from the token
                // before: a refresh brings no new one, that would refresh in a loop).
                let carried = match (&inner.current, current.cached.id_token()) {
                    (Some(before), Some(id)) => before
                        .cached
                        .id_token()
                        .is_some_and(|previous| previous.grant.token == id.grant.token),
                    _ => false,
                };
                if inner.id_used
                    && !carried
                    && let Some(id) = current.id
                    && id.expires.is_none_or(|expires| expires > now)
                    && let Some(id_at) = id.refresh_at
                {
                    current.refresh_at = Some(current.refresh_at.map_or(id_at, |at| at.min(id_at)));
                }
                inner.last_id_lifetime = current
                    .id
                    .and_then(|id| id.expires)
                    .map(|expires| (now, expires.saturating_duration_since(now)));
                current.key_epoch = inner.key_epoch;
                let cached = Arc::clone(&current.cached);
                let refresh_at = current.refresh_at;
                let current_lifetime = current.expires.map(|e| e.saturating_duration_since(now));
                inner.current = Some(current);
                inner.origin = origin;
                inner.failure = None;
                inner.last_error = None;
                inner.last_refresh = Some(SystemTime::now());
                inner.last_lifetime = current_lifetime.map(|lifetime| (now, lifetime));
                inner.generation += 1;
                // A caller is about to use this token. A background refresh starts the new token
                // unused: if nobody asks for it, its own refresh stands down (idle providers are
                // not kept warm forever).
                inner.used = trigger == Trigger::Caller;
                let generation = inner.generation;
                drop(inner);
                self.announce(generation);
                tracing::info!(provider = %self.config.name, "obtained a new token");
                if let Some(at) = refresh_at {
                    self.schedule(generation, at);
                }
                Ok(cached)
            }
            Err(error) => {
                // Another provider's failure repeats at every caller's attempt (nothing holds
                // them back): logged when it changes.
                if matches!(error, FetchError::Referenced { .. })
                    && inner.last_error.as_deref() == Some(error.message())
                {
                    tracing::debug!(provider = %self.config.name, "{}", error.message());
                } else {
                    tracing::warn!(provider = %self.config.name, "{}", error.message());
                }
                inner.last_error = Some(error.message().to_owned());
                let retry_at = match &error {
                    FetchError::Transient { retry_after, .. } => {
                        let streak = match &inner.failure {
                            Some(Failure::Backoff { streak, .. }) => streak + 1,
                            _ => 1,
                        };
                        let until = now + backoff(streak, *retry_after);
                        inner.failure = Some(Failure::Backoff {
                            until,
                            streak,
                            error: error.clone(),
                        });
                        Some(until)
                    }
                    FetchError::Rejected { .. } => {
                        inner.failure = Some(Failure::Rejected {
                            since: now,
                            error: error.clone(),
                        });
                        None
                    }
                    // Not this provider's failure: nothing to back off from (see `Failure`).
                    FetchError::Referenced { .. } => {
                        inner.failure = Some(Failure::Referenced {
                            since: now,
                            error: error.clone(),
                        });
                        Some(now + REFERENCED_HOLD)
                    }
                    // Local problems (a secret that does not resolve, a command that fails) back
                    // off as well, so that concurrent and repeated callers do not re-run them.
                    FetchError::Config(_) => {
                        let streak = match &inner.failure {
                            Some(Failure::Backoff { streak, .. }) => streak + 1,
                            _ => 1,
                        };
                        let until = now + backoff(streak, None);
                        inner.failure = Some(Failure::Backoff {
                            until,
                            streak,
                            error: error.clone(),
                        });
                        None
                    }
                };
                let generation = inner.generation;
                let keep_warm =
                    self.wanted(&inner) && inner.current.as_ref().is_some_and(|c| c.valid(now));
                drop(inner);
                // While a still-valid token is in use, keep trying in the background.
                if let Some(at) = retry_at
                    && keep_warm
                {
                    self.schedule(generation, at);
                }
                Err(error)
            }
        }
    }

    /// Builds the cache entry for a fetched token.
    pub(super) fn cache_entry(
        &self,
        fetched: Fetched,
        now: Instant,
    ) -> Result<Current, FetchError> {
        // The token becomes an HTTP header value (`tok header`, `tok curl`, the library's
        // `Header`): a CR or LF in it would let the token endpoint add headers of its choosing
        // to the caller's requests. No control character is valid in a header value's token.
        if let Some(bad) = fetched.token.expose().chars().find(|c| c.is_control()) {
            return Err(FetchError::Transient {
                message: format!(
                    "provider `{}`: the token endpoint returned a token with a control \
                     character (U+{:04X}), which would corrupt the HTTP header it is sent in; \
                     it was refused, not served",
                    self.config.name,
                    u32::from(bad)
                ),
                retry_after: None,
            });
        }
        let since = fetched.since;
        let (expires, expires_at_unix) = match fetched.lifetime {
            Lifetime::Unbounded => (None, None),
            Lifetime::Expires(lifetime) => {
                // Upstream lifetimes are untrusted: a huge `expires_in` must not overflow.
                let expires = since + lifetime.min(MAX_LIFETIME);
                if lifetime.is_zero() || expires <= now {
                    return Err(FetchError::Transient {
                        message: format!(
                            "provider `{}`: the token endpoint returned a token that has already expired",
                            self.config.name
                        ),
                        retry_after: None,
                    });
                }
                let left = expires - now;
                (
                    Some(expires),
                    Some(clock::unix_secs(SystemTime::now() + left)),
                )
            }
        };
        let header = match self.config.kind {
            // Anonymous access sends no header at all.
            ProviderKind::Anonymous => None,
            _ => Some(HeaderLine {
                name: self.config.presentation.header.clone(),
                value: self.config.presentation.header_value(&fetched.token),
            }),
        };
        let grant = TokenGrant {
            provider: self.config.name.clone(),
            token: fetched.token,
            header,
            expires_at_unix,
        };
        // A token too large for a frame will be too large next time as well: no retry loop.
        let too_large = |message| FetchError::Rejected {
            message,
            needs_login: false,
        };
        let mut cached = CachedGrant::new(grant).map_err(too_large)?;
        let id = match fetched.id_token {
            Some(id_token) => self.id_entry(id_token, now, expires, expires_at_unix),
            None => None,
        };
        let id = match id {
            Some((grant, id)) => {
                cached.id = Some(Box::new(CachedGrant::new(grant).map_err(too_large)?));
                Some(id)
            }
            None => None,
        };
        Ok(Current {
            cached: Arc::new(cached),
            // The caller sets the turn's (see `cache`).
            key_epoch: 0,
            expires,
            refresh_at: expires.map(|expires| advisory_start(since, expires)),
            id,
        })
    }
}

impl Provider {
    /// The user secret `name` was set or removed: a static provider whose secret refers to it
    /// drops its cached value (and any failure), so the next request resolves it anew. Fetching
    /// kinds resolve their credentials at each fetch anyway.
    pub(crate) fn secret_changed(&self, name: &str) {
        let ProviderKind::Static { secret, .. } = &self.config.kind else {
            return;
        };
        if !secret.refers_to_secret(name) {
            return;
        }
        let mut inner = self.inner();
        inner.current = None;
        inner.failure = None;
        inner.last_error = None;
        inner.generation += 1;
        let generation = inner.generation;
        drop(inner);
        self.announce(generation);
    }

    /// Drops the cached token (the API rejected it) and clears failures, so the next request
    /// fetches anew. Rate-limited.
    pub(crate) fn invalidate(&self) -> Invalidation {
        let now = Instant::now();
        let mut inner = self.inner();
        if let Some(last) = inner.last_invalidation
            && now.saturating_duration_since(last) < INVALIDATE_INTERVAL
        {
            return Invalidation {
                dropped: false,
                message: format!(
                    "provider `{}` was invalidated less than {} s ago; ignored (rate limit)",
                    self.config.name,
                    INVALIDATE_INTERVAL.as_secs()
                ),
            };
        }
        inner.last_invalidation = Some(now);
        inner.failure = None;
        inner.generation += 1;
        let generation = inner.generation;
        let dropped_token = inner.current.take();
        let dropped = dropped_token.is_some();
        let scheduled = inner.scheduled.take();
        drop(inner);
        self.cancel(scheduled);
        self.announce(generation);
        if let Some(current) = &dropped_token {
            self.invalidate_shared(current.cached.grant.token.clone());
        }
        if let (Some(current), Some(store)) = (dropped_token, &self.store) {
            // A rejected token must not come back after a restart. Removed only if it is still
            // the stored one: this runs on its own, and a newer token may be stored first.
            let store = Arc::clone(store);
            let name = self.config.name.clone();
            tokio::task::spawn_blocking(move || {
                let token = &current.cached.grant.token;
                let written = store.update(|contents| {
                    if contents
                        .access_tokens
                        .get(&name)
                        .is_some_and(|a| &a.token == token)
                    {
                        contents.access_tokens.remove(&name);
                    }
                });
                if let Err(err) = written {
                    tracing::warn!(provider = %name, "{err}");
                }
            });
        }
        tracing::info!(provider = %self.config.name, dropped, "invalidated");
        Invalidation {
            dropped,
            message: if dropped {
                format!(
                    "provider `{}`: token dropped; the next request fetches a new one",
                    self.config.name
                )
            } else {
                format!(
                    "provider `{}`: no token was cached; failures cleared",
                    self.config.name
                )
            },
        }
    }
}
