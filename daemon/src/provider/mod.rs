//! The runtime of one provider: the token cache and single flight (here and [`cache`]), where
//! tokens come from ([`source`]), refresh-ahead and backoff ([`refresh`]), durable state and
//! the chain a reload's instances share ([`durable`]), id_tokens ([`id_token`]), login sessions
//! ([`session`]), key rotation ([`rotation`]), the fleet ([`fleet`]) and status ([`status`]).
//!
//! A token may come with an id_token (OpenID Connect). It is cached with it and served on its
//! own (`tok get --id-token`), by its own expiry: a caller that wants it waits for a fetch only
//! when the id_token, not the access token, would not last.
//!
//! Each provider caches one token (the cache key is the provider: its scopes and parameters are
//! part of its configuration; no secret is part of any key). A request is served from the cache
//! when the token will stay valid for the caller's minimum lifetime:
//!
//! - **Advisory window** (the last quarter of the lifetime, at least 60 s but at most half the
//!   lifetime, minus up to a fifth more as jitter): callers still get the cached token at once,
//!   and one background refresh starts. A refresh is also scheduled for that moment whenever a
//!   token that callers use is stored.
//! - **Mandatory window** (less left than the caller's minimum): the caller waits for a fetch.
//!
//! **Single flight:** fetches run under one async lock per provider; callers that waited on it
//! re-check the cache and the outcome of the fetch that ran meanwhile, so any number of
//! concurrent requests cause one upstream request.
//!
//! **Failures** never discard a still-valid token. Transient failures (network, timeouts, 5xx,
//! 429, malformed answers) are retried a couple of times within a waiting caller's budget, then
//! the provider backs off exponentially with jitter, honouring `Retry-After`. Rejections
//! (`invalid_client`, `invalid_grant`, 401, 403) are not retried: callers get the error at once
//! until `tok invalidate NAME`, a config reload, or a ten-minute cool-down.
//!
//! The cache keeps each token's response already encoded, so a cache hit is a lookup and one
//! write. All deadlines use tokio's monotonic clock (and so run under paused time in tests).
//!
//! **Durability:** with a [`Store`], a fetched token is written to it (fsync complete) before it
//! is cached or handed to any caller: the rotated refresh token always, the access token with its
//! absolute expiry unless the provider says `persist = false`. A new provider starts from what
//! the store holds, so a still-valid token is served after a restart without an upstream request.

mod cache;
mod durable;
mod fleet;
mod id_token;
mod refresh;
pub(crate) mod rotation;
mod session;
mod source;
mod status;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_rotation;
mod watch;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use tokend_protocol::{ErrorCode, Response, TokenGrant};
use tokio::time::Instant;

pub(crate) use self::cache::CachedGrant;
use self::id_token::IdToken;
pub(crate) use self::id_token::Wanted;
use self::refresh::{Failure, error_response};
use self::session::LoginState;
use self::source::Configured;
pub(crate) use self::source::{Fetch, NewKey};
use crate::config::ProviderConfig;
use crate::kinds::{FetchState, Services};
use crate::metrics::Counters;
use crate::secret::TokenFailure;
use crate::store::Store;

/// Advisory window: at least this long before expiry…
const MIN_ADVISORY: Duration = Duration::from_secs(60);
/// …and the last quarter of the lifetime (this divisor), capped at half of it.
const ADVISORY_DIVISOR: u32 = 4;
/// First backoff after a transient failure; doubles per consecutive failure.
const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Longest backoff from doubling.
const BACKOFF_CAP: Duration = Duration::from_secs(300);
/// Longest wait a `Retry-After` can impose.
const RETRY_AFTER_CAP: Duration = Duration::from_secs(900);
/// How long a waiting caller's fetch may spend on retries.
const RETRY_BUDGET: Duration = Duration::from_secs(20);
/// Retries of a transient failure while a caller waits.
const WAITING_RETRIES: u32 = 2;
/// After a rejection, callers get the error without an upstream request for this long.
const REJECTED_COOLDOWN: Duration = Duration::from_secs(600);
/// After another provider this one needs gave no token, background refreshes wait this long
/// (callers are not held back).
const REFERENCED_HOLD: Duration = Duration::from_secs(30);
/// Longest lifetime believed from upstream (`expires_in`, `exp`): ten years.
const MAX_LIFETIME: Duration = Duration::from_secs(10 * 365 * 86_400);
/// How long the lifetime of the last issued token is remembered to refuse longer `--min-ttl`s.
const LIFETIME_MEMORY: Duration = Duration::from_secs(60);
/// Invalidations closer together than this are ignored (rate limit).
const INVALIDATE_INTERVAL: Duration = Duration::from_secs(5);

/// A token handed to a caller, and whether it came straight from the cache.
#[derive(Debug)]
pub(crate) struct Served {
    pub(crate) cached: Arc<CachedGrant>,
    /// Served from the cache without waiting for a fetch.
    pub(crate) hit: bool,
}

/// One provider, its cache and its policies.
#[derive(Debug)]
pub(crate) struct Provider {
    /// Shared with its fetcher ([`Configured`]).
    config: Arc<ProviderConfig>,
    fetcher: Box<dyn Fetch>,
    inner: Mutex<Inner>,
    /// Single flight: held for the whole of every fetch; also owns the kind's state between
    /// fetches (the rotated refresh token, the discovered endpoints).
    flight: tokio::sync::Mutex<FetchState>,
    /// Removed or replaced by a reload: scheduled refreshes stand down.
    retired: std::sync::atomic::AtomicBool,
    /// Shared with the instance a reload puts in this one's place (see [`durable::Chain`]), so
    /// that a refresh or key rotation the replaced instance is still running saves its outcome
    /// before the new instance presents the chain's token (else it would present the superseded
    /// one), and the new one stops serving a key the old one is replacing.
    chain: Arc<durable::Chain>,
    counters: Counters,
    /// Where fetched tokens are made durable (none in engine tests).
    store: Option<Arc<Store>>,
    /// The secret resolver and the HTTP client of the daemon (logins use them directly).
    services: Arc<Services>,
    /// The login in progress or last ended (`tok login`); held while one starts, so two
    /// `tok login`s of one provider never both start a flow.
    login: tokio::sync::Mutex<Option<Box<LoginState>>>,
    /// Its place in the fleet, with `share` and `[fleet]` (boxed: most providers have none).
    shared: Option<Box<fleet::Shared>>,
    /// Tells followers (token files) that the token changed; see [`watch`]. Made when the
    /// first follower subscribes (most providers never have one).
    changes: std::sync::OnceLock<tokio::sync::watch::Sender<u64>>,
    /// Standing users (token files): they keep the provider warm.
    standing: std::sync::atomic::AtomicUsize,
    /// The schedule of a rotating key (`rotate.every`), while it runs.
    rotation_task: Mutex<Option<tokio::task::AbortHandle>>,
}

/// Where the cached token came from (for `tok status`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Origin {
    #[default]
    None,
    /// This daemon fetched it.
    Upstream,
    /// Another tokend of the fleet did.
    Fleet,
    /// Kept in the store across a restart.
    Store,
}

impl Origin {
    fn as_str(self) -> &'static str {
        match self {
            Self::None => "",
            Self::Upstream => "upstream",
            Self::Fleet => "fleet",
            Self::Store => "store",
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    current: Option<Current>,
    failure: Option<Failure>,
    last_error: Option<String>,
    last_refresh: Option<SystemTime>,
    /// A fetch is running (for status).
    refreshing: bool,
    /// Completed fetch attempts: a waiter that sees this change knows a fetch ran meanwhile.
    attempts: u64,
    /// Bumped whenever `current` changes; scheduled refreshes of an older token stand down.
    generation: u64,
    /// When the last token was stored and how long it was issued for.
    last_lifetime: Option<(Instant, Duration)>,
    /// The pending scheduled refresh (one per provider; a newer one replaces it).
    scheduled: Option<tokio::task::AbortHandle>,
    /// A caller asked for the current token (idle providers are not kept warm).
    used: bool,
    last_invalidation: Option<Instant>,
    /// An interactive provider holds a refresh token from `tok login`.
    has_session: bool,
    /// Where `current` came from.
    origin: Origin,
    /// A caller asked for the id_token: its expiry also schedules refreshes.
    id_used: bool,
    /// When the last id_token was stored and how long it was issued for.
    last_id_lifetime: Option<(Instant, Duration)>,
    /// The chain's key changes (see [`durable::Chain`]) when the last fetch took its turn: the
    /// cached token is served only while no key rotation started since.
    key_epoch: u64,
    /// Key rotation (`rotate`), for status.
    rotation: rotation::RotationState,
}

#[derive(Debug)]
struct Current {
    cached: Arc<CachedGrant>,
    /// The chain's key changes when it was obtained (see [`Inner::key_epoch`]).
    key_epoch: u64,
    expires: Option<Instant>,
    refresh_at: Option<Instant>,
    /// The id_token's own expiry and advisory window, when one came with the token.
    id: Option<IdToken>,
}

/// Whether something expiring at `expires` stays valid for `min_ttl` from `now`.
fn lasts(expires: Option<Instant>, now: Instant, min_ttl: Duration) -> bool {
    expires.is_none_or(|expires| expires.saturating_duration_since(now) >= min_ttl && expires > now)
}

impl Current {
    /// Whether this token stays valid for `min_ttl` from `now`.
    fn serves(&self, now: Instant, min_ttl: Duration) -> bool {
        lasts(self.expires, now, min_ttl)
    }

    fn valid(&self, now: Instant) -> bool {
        self.expires.is_none_or(|expires| expires > now)
    }
}

/// Clears `refreshing` if a fetch is abandoned before its outcome is stored (its future dropped),
/// so that the provider never stays "refreshing" forever; `store` clears it otherwise.
struct InFlight<'a>(Option<&'a Provider>);

impl InFlight<'_> {
    /// The outcome was stored (while the single-flight lock is still held).
    fn done(mut self) {
        self.0 = None;
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(provider) = self.0 {
            provider.inner().refreshing = false;
        }
    }
}

/// How a fetch was started (it decides who waits and whether idle tokens are refreshed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// A caller waits for the result.
    Caller,
    /// A caller hit the advisory window; it was served and does not wait.
    Advisory,
    /// The scheduled refresh (or retry) of generation `.0`.
    Scheduled(u64),
}

impl Provider {
    /// A provider with its configured kind, starting from what `store` holds for it.
    pub(crate) fn new(
        config: ProviderConfig,
        store: Option<Arc<Store>>,
        services: &Arc<Services>,
    ) -> Self {
        let config = Arc::new(config);
        let fetcher = Box::new(Configured {
            config: Arc::clone(&config),
            services: Arc::clone(services),
        });
        let shared = match (&config.share, &services.fleet) {
            (Some(share), Some(fleet)) => Some(fleet::Shared {
                fleet: Arc::clone(fleet),
                share: fleet.share(&share.name, &fleet::identity(&config.kind)),
                local_when_down: share.local_when_down,
            }),
            _ => None,
        };
        let mut provider = Self::with_fetcher(config, fetcher, Arc::clone(services));
        provider.shared = shared.map(Box::new);
        if let Some(store) = store {
            provider.restore(&store);
            provider.store = Some(store);
        }
        provider
    }

    /// A provider whose tokens come from `fetcher`, with no store.
    pub(crate) fn with_fetcher(
        config: impl Into<Arc<ProviderConfig>>,
        fetcher: Box<dyn Fetch>,
        services: Arc<Services>,
    ) -> Self {
        Self {
            config: config.into(),
            fetcher,
            inner: Mutex::new(Inner::default()),
            flight: tokio::sync::Mutex::new(FetchState::default()),
            retired: std::sync::atomic::AtomicBool::new(false),
            chain: Arc::default(),
            counters: Counters::default(),
            login: tokio::sync::Mutex::new(None),
            store: None,
            services,
            shared: None,
            changes: std::sync::OnceLock::new(),
            standing: std::sync::atomic::AtomicUsize::new(0),
            rotation_task: Mutex::new(None),
        }
    }

    /// Requests, hits, refreshes, failures and upstream latency.
    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The configuration this provider runs with (a reload compares it with the new one).
    pub(crate) fn config(&self) -> &ProviderConfig {
        &self.config
    }

    /// This instance replaces `previous` (a reload changed its config): their fetches take
    /// turns, so that one's rotation is saved before the other presents the chain's token.
    #[must_use]
    pub(crate) fn succeeding(mut self, previous: &Self) -> Self {
        self.chain = Arc::clone(&previous.chain);
        self
    }

    /// A reload removed or replaced this provider: no more background refreshes.
    pub(crate) fn retire(&self) {
        self.retired
            .store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(task) = self
            .rotation_task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
        // A login would end in a provider nobody can reach any more.
        if let Ok(mut login) = self.login.try_lock()
            && let Some(state) = login.take()
        {
            state.task.abort();
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        // Every write under this lock leaves the state consistent, so a poisoned lock (a panic
        // elsewhere while it was held) is still safe to use.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A token valid for at least `min_ttl`. Errors are ready-made responses.
    pub(crate) async fn token(self: &Arc<Self>, min_ttl: Duration) -> Result<Served, Response> {
        self.token_for(Wanted::Access, min_ttl).await
    }

    /// A token for another provider's `${provider:NAME}` (or a rotation's `auth`): its grant,
    /// or why there is none with this provider's error code.
    pub(crate) async fn token_for_reference(
        self: &Arc<Self>,
        min_ttl: Duration,
    ) -> Result<TokenGrant, TokenFailure> {
        match self.token(min_ttl).await {
            Ok(served) => Ok(served.cached.grant().clone()),
            Err(Response::Error(reply)) => Err(TokenFailure {
                code: reply.code,
                message: reply.message,
            }),
            Err(other) => Err(TokenFailure {
                code: ErrorCode::Internal,
                message: format!(
                    "provider `{}` gave no token but {other:?}",
                    self.config.name
                ),
            }),
        }
    }

    /// The token `wanted`, valid for at least `min_ttl` by its own expiry (the id_token's
    /// `CachedGrant` is [`CachedGrant::id_token`] of the one served). Errors are ready-made
    /// responses.
    pub(crate) async fn token_for(
        self: &Arc<Self>,
        wanted: Wanted,
        min_ttl: Duration,
    ) -> Result<Served, Response> {
        if wanted == Wanted::IdToken {
            self.inner().id_used = true;
            if self.shared.is_some() {
                return Err(Response::error(
                    ErrorCode::Config,
                    format!(
                        "provider `{}` is shared through the fleet, which shares access tokens \
                         only: its id_token is not kept; use a provider without `share` for \
                         id_tokens",
                        self.config.name
                    ),
                ));
            }
        }
        let seen = {
            let now = Instant::now();
            let mut inner = self.inner();
            if let Some(current) = self.in_force(&inner)
                && current.serves_for(wanted, now, min_ttl)
            {
                let cached = Arc::clone(&current.cached);
                let advisory = current.refresh_at_for(wanted).is_some_and(|at| at <= now);
                inner.used = true;
                self.counters.request(true);
                if advisory && !inner.refreshing && !inner.holds_background(now) {
                    inner.refreshing = true;
                    let me = Arc::clone(self);
                    tokio::spawn(async move { me.refresh(Trigger::Advisory).await });
                }
                return Ok(Served { cached, hit: true });
            }
            self.counters.request(false);
            if wanted == Wanted::IdToken
                && let Some(current) = self.in_force(&inner)
                && current.valid(now)
                && current.id.is_none()
            {
                return Err(self.no_id_token());
            }
            let id_lifetime = match (wanted, inner.last_id_lifetime) {
                (Wanted::IdToken, Some((at, lifetime)))
                    if min_ttl > lifetime
                        && now.saturating_duration_since(at) < LIFETIME_MEMORY =>
                {
                    Some(lifetime)
                }
                _ => None,
            };
            if let Some(lifetime) = id_lifetime {
                return Err(self.too_short(lifetime.as_secs(), min_ttl));
            }
            match inner.blocking(now) {
                // A shared provider that backs off may still take what the fleet holds (a
                // token another machine fetched, a session another machine logged in to).
                Some(refusal) if self.shared.is_some() => Err(refusal),
                Some(refusal) => return Err(refusal),
                // The endpoint issued shorter tokens than this caller needs a minute ago:
                // asking again would only replace a good token (and let callers hammer the
                // endpoint). An id_token has its own lifetime (remembered above).
                None => match inner.last_lifetime {
                    Some((at, lifetime))
                        if wanted == Wanted::Access
                            && min_ttl > lifetime
                            && now.saturating_duration_since(at) < LIFETIME_MEMORY =>
                    {
                        return Err(self.too_short(lifetime.as_secs(), min_ttl));
                    }
                    _ => Ok(inner.attempts),
                },
            }
        };
        let attempts_seen = match seen {
            Ok(attempts) => attempts,
            Err(refusal) => return self.adopt_only(min_ttl, refusal).await,
        };

        let mut state = self.flight.lock().await;
        {
            let now = Instant::now();
            let mut inner = self.inner();
            if let Some(current) = self.in_force(&inner)
                && current.serves_for(wanted, now, min_ttl)
            {
                let cached = Arc::clone(&current.cached);
                inner.used = true;
                return Ok(Served { cached, hit: false });
            }
            if inner.attempts != attempts_seen {
                // A fetch ran while we waited and did not produce what we need: report its
                // outcome instead of asking upstream again.
                if let Some(refusal) = inner.outcome_refusal(now) {
                    return Err(refusal);
                }
                if let Some(current) = self.in_force(&inner)
                    && current.valid(now)
                {
                    if wanted == Wanted::IdToken && current.id.is_none() {
                        return Err(self.no_id_token());
                    }
                    if let Some(expires) = current.expires_of(wanted) {
                        let left = expires.saturating_duration_since(now).as_secs();
                        return Err(self.too_short(left, min_ttl));
                    }
                }
            }
            inner.refreshing = true;
        }
        let in_flight = InFlight(Some(self));
        let (outcome, origin) = self
            .obtain_durably(&mut state, fleet::Want::Caller(min_ttl))
            .await;
        let stored = self.cache(outcome, Trigger::Caller, origin);
        in_flight.done();
        drop(state);
        let cached = stored.map_err(|error| error_response(&error, ""))?;
        let now = Instant::now();
        let inner = self.inner();
        match &inner.current {
            Some(current) if wanted == Wanted::IdToken && current.id.is_none() => {
                Err(self.no_id_token())
            }
            Some(current) if !current.serves_for(wanted, now, min_ttl) => {
                let left = current.expires_of(wanted).map_or(0, |expires| {
                    expires.saturating_duration_since(now).as_secs()
                });
                Err(self.too_short(left, min_ttl))
            }
            _ => Ok(Served { cached, hit: false }),
        }
    }

    /// The cached token, unless a key rotation started on the chain since it was obtained (the
    /// key may be dead: the next request waits for the rotation and takes what it stored).
    fn in_force<'a>(&self, inner: &'a Inner) -> Option<&'a Current> {
        inner
            .current
            .as_ref()
            .filter(|current| current.key_epoch == self.chain.key_changes())
    }

    /// A shared provider that backs off: serves what the fleet holds, else the refusal.
    async fn adopt_only(
        self: &Arc<Self>,
        min_ttl: Duration,
        refusal: Response,
    ) -> Result<Served, Response> {
        let Ok(mut state) = self.flight.try_lock() else {
            return Err(refusal);
        };
        let (outcome, origin) = self
            .obtain(&mut state, fleet::Want::AdoptOnly(min_ttl))
            .await;
        let Ok(fetched) = outcome else {
            return Err(refusal);
        };
        let outcome = self.persist(Ok(fetched), &mut state).await;
        let cached = self
            .cache(outcome, Trigger::Caller, origin)
            .map_err(|error| error_response(&error, ""))?;
        Ok(Served { cached, hit: false })
    }

    fn too_short(&self, left_secs: u64, min_ttl: Duration) -> Response {
        Response::error(
            ErrorCode::Upstream,
            format!(
                "provider `{}`: the token endpoint issues tokens that live {left_secs} s, less than \
                 the requested minimum of {} s; ask for a shorter --min-ttl",
                self.config.name,
                min_ttl.as_secs()
            ),
        )
    }
}
