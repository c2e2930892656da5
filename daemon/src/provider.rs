//! Providers at run time: the token cache, its refresh policy and its failure policy.
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

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use tokend_protocol::frame::FrameBuf;
use tokend_protocol::{
    ErrorCode, HeaderLine, Invalidation, LoginOutcome, LoginPrompt, LogoutOutcome, MAX_FRAME_LEN,
    ProviderState, ProviderStatus, Response, TokenGrant, codec,
};
use tokio::time::Instant;

use crate::config::{ProviderConfig, ProviderKind};
use crate::kinds::OAuth2Config;
use crate::login;
use crate::metrics::Counters;
use crate::source::{self, FetchError, Fetched, Lifetime, SourceState};
use crate::store::{Store, StoredAccess, StoredRefresh};

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
/// Longest lifetime believed from upstream (`expires_in`, `exp`): ten years.
const MAX_LIFETIME: Duration = Duration::from_secs(10 * 365 * 86_400);
/// How long the lifetime of the last issued token is remembered to refuse longer `--min-ttl`s.
const LIFETIME_MEMORY: Duration = Duration::from_secs(60);
/// Invalidations closer together than this are ignored (rate limit).
const INVALIDATE_INTERVAL: Duration = Duration::from_secs(5);

/// A token ready to serve: the grant, and the `Response::Token` frame that carries it.
#[derive(Debug)]
pub(crate) struct CachedGrant {
    grant: TokenGrant,
    frame: FrameBuf,
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
        Ok(Self { grant, frame })
    }

    /// The encoded `Response::Token` frame, length prefix included.
    pub(crate) fn frame(&self) -> &[u8] {
        &self.frame
    }
}

/// A fetch in progress.
pub(crate) type FetchFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Fetched, FetchError>> + Send + 'a>>;

/// Where a provider's tokens come from: its configured source in the daemon, a scripted one in
/// tests (so that time-dependent behaviour runs under paused time, without a network).
pub(crate) trait Fetch: Send + Sync + std::fmt::Debug {
    fn fetch<'a>(&'a self, state: &'a mut SourceState) -> FetchFuture<'a>;
}

/// The configured source of a provider.
#[derive(Debug)]
struct Configured {
    name: String,
    kind: ProviderKind,
}

impl Fetch for Configured {
    fn fetch<'a>(&'a self, state: &'a mut SourceState) -> FetchFuture<'a> {
        Box::pin(source::fetch(&self.name, &self.kind, state))
    }
}

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
    config: ProviderConfig,
    fetcher: Box<dyn Fetch>,
    inner: Mutex<Inner>,
    /// Single flight: held for the whole of every fetch; also owns the source's state (the
    /// rotated refresh token, the discovered endpoint).
    source: tokio::sync::Mutex<SourceState>,
    /// Removed or replaced by a reload: scheduled refreshes stand down.
    retired: std::sync::atomic::AtomicBool,
    counters: Counters,
    /// Where fetched tokens are made durable (none in engine tests).
    store: Option<Arc<Store>>,
    /// The configuration as stored beside an access token (its `Debug` form, which shows no
    /// secret): a stored token obtained under another configuration is not served.
    fingerprint: String,
    /// The login in progress or last ended (`tok login`); held while one starts, so two
    /// `tok login`s of one provider never both start a flow.
    login: tokio::sync::Mutex<Option<LoginState>>,
}

/// The `origin` stored with an interactive provider's refresh token: it descends from a
/// `tok login` at this authorization server for this client (see [`Provider::login_origin`]),
/// not from a configured refresh token.
const LOGIN_ORIGIN: &str = "tok login";

/// What a login's task reports when it ends.
type LoginResult = Option<Result<LoginOutcome, String>>;

/// A login started by `tok login`.
#[derive(Debug)]
struct LoginState {
    started: Instant,
    timeout: Duration,
    /// `None` while the login runs; the sender is dropped if its task is aborted.
    outcome: tokio::sync::watch::Receiver<LoginResult>,
    task: tokio::task::JoinHandle<()>,
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
}

#[derive(Debug)]
struct Current {
    cached: Arc<CachedGrant>,
    expires: Option<Instant>,
    refresh_at: Option<Instant>,
}

impl Current {
    /// Whether this token stays valid for `min_ttl` from `now`.
    fn serves(&self, now: Instant, min_ttl: Duration) -> bool {
        self.expires.is_none_or(|expires| {
            expires.saturating_duration_since(now) >= min_ttl && expires > now
        })
    }

    fn valid(&self, now: Instant) -> bool {
        self.expires.is_none_or(|expires| expires > now)
    }
}

#[derive(Debug)]
enum Failure {
    /// Transient failures: no new attempt before `until`.
    Backoff {
        until: Instant,
        streak: u32,
        error: FetchError,
    },
    /// Rejected credentials: no attempt before `since + REJECTED_COOLDOWN`.
    Rejected { since: Instant, error: FetchError },
}

impl Inner {
    /// The failure that stops a new attempt right now, if any.
    fn blocking(&self, now: Instant) -> Option<Response> {
        match &self.failure {
            Some(Failure::Backoff { until, error, .. }) if *until > now => {
                let wait = until.saturating_duration_since(now).as_secs().max(1);
                Some(error_response(
                    error,
                    &format!("; next attempt in {wait} s"),
                ))
            }
            Some(Failure::Rejected { since, error }) if now < *since + REJECTED_COOLDOWN => {
                Some(error_response(error, ""))
            }
            _ => None,
        }
    }
}

fn error_response(error: &FetchError, suffix: &str) -> Response {
    let code = match error {
        FetchError::Config(_) => ErrorCode::Config,
        FetchError::Transient { .. } => ErrorCode::Upstream,
        FetchError::Rejected {
            needs_login: true, ..
        } => ErrorCode::LoginRequired,
        FetchError::Rejected {
            needs_login: false, ..
        } => ErrorCode::Upstream,
    };
    Response::error(code, format!("{}{suffix}", error.message()))
}

/// Start of the advisory window of a token obtained at `obtained` that expires at `expires`.
fn advisory_start(obtained: Instant, expires: Instant) -> Instant {
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

/// Backoff after `streak` consecutive transient failures: doubling from 1 s to 5 min, with jitter
/// between half and all of it, and never shorter than `Retry-After` (itself capped).
fn backoff(streak: u32, retry_after: Option<Duration>) -> Duration {
    let doubled = BACKOFF_BASE
        .saturating_mul(1u32 << streak.saturating_sub(1).min(16))
        .min(BACKOFF_CAP);
    let jittered = doubled.mul_f64(0.5 + fastrand::f64() / 2.0);
    jittered.max(retry_after.unwrap_or(Duration::ZERO).min(RETRY_AFTER_CAP))
}

fn unix_secs(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Wall-clock seconds for a monotonic instant (for display only).
fn unix_at(instant: Instant, now: Instant) -> u64 {
    let wall = SystemTime::now();
    let at = if instant >= now {
        wall + instant.saturating_duration_since(now)
    } else {
        wall.checked_sub(now.saturating_duration_since(instant))
            .unwrap_or(wall)
    };
    unix_secs(at)
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
    /// A provider with its configured source, starting from what `store` holds for it.
    pub(crate) fn new(config: ProviderConfig, store: Option<Arc<Store>>) -> Self {
        let fetcher = Box::new(Configured {
            name: config.name.clone(),
            kind: config.kind.clone(),
        });
        let mut provider = Self::with_fetcher(config, fetcher);
        if let Some(store) = store {
            provider.restore(&store);
            provider.store = Some(store);
        }
        provider
    }

    pub(crate) fn with_fetcher(config: ProviderConfig, fetcher: Box<dyn Fetch>) -> Self {
        let fingerprint = format!("{config:?}");
        Self {
            config,
            fetcher,
            inner: Mutex::new(Inner::default()),
            source: tokio::sync::Mutex::new(SourceState::default()),
            retired: std::sync::atomic::AtomicBool::new(false),
            counters: Counters::default(),
            login: tokio::sync::Mutex::new(None),
            store: None,
            fingerprint,
        }
    }

    /// Whether this provider's access tokens go to the store: fetched ones only (a static
    /// secret comes from the config each start), and not with `persist = false`.
    fn persists_access(&self) -> bool {
        self.config.persist
            && matches!(
                self.config.kind,
                ProviderKind::OAuth2(_) | ProviderKind::Http(_)
            )
    }

    /// Takes over the stored refresh token and, if still valid and obtained under this very
    /// configuration, the stored access token.
    fn restore(&mut self, store: &Store) {
        let name = &self.config.name;
        if let Some(StoredRefresh { token, origin }) = store.refresh_token(name) {
            let login = self.login_origin();
            let from_login = origin.expose().starts_with(LOGIN_ORIGIN);
            match &login {
                // A session is only ever sent back to the server and client it came from: after
                // the provider was pointed elsewhere it is ignored (the next login replaces it).
                Some(expected) if origin.expose() != expected.expose() => {
                    tracing::info!(provider = %name, "stored session belongs to another server or client; not used");
                }
                // A login's refresh token never feeds a configured `refresh_token` grant.
                None if from_login => {}
                _ => {
                    let source = self.source.get_mut();
                    source.refresh_token = Some(token);
                    source.origin = Some(origin);
                    // An interactive provider's stored refresh token is its login session.
                    self.inner
                        .get_mut()
                        .unwrap_or_else(PoisonError::into_inner)
                        .has_session = login.is_some();
                }
            }
        }
        let Some(stored) = store.access_token(name).filter(|_| self.persists_access()) else {
            return;
        };
        if stored.config != self.fingerprint {
            tracing::debug!(provider = %name, "stored token obtained under another configuration");
            return;
        }
        let now = Instant::now();
        let now_unix = unix_secs(SystemTime::now());
        let lifetime = match stored.expires_at_unix {
            None => Lifetime::Unbounded,
            Some(at) if at > now_unix => Lifetime::Expires(Duration::from_secs(at - now_unix)),
            Some(_) => return,
        };
        let fetched = Fetched {
            token: stored.token,
            lifetime,
            refresh_token: None,
        };
        if let Ok(current) = self.cache_entry(fetched, now) {
            tracing::info!(provider = %name, "serving the token kept in the store");
            self.inner
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner)
                .current = Some(current);
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

    /// A reload removed or replaced this provider: no more background refreshes.
    pub(crate) fn retire(&self) {
        self.retired
            .store(true, std::sync::atomic::Ordering::Relaxed);
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
        let attempts_seen = {
            let now = Instant::now();
            let mut inner = self.inner();
            if let Some(current) = &inner.current
                && current.serves(now, min_ttl)
            {
                let cached = Arc::clone(&current.cached);
                let advisory = current.refresh_at.is_some_and(|at| at <= now);
                inner.used = true;
                self.counters.request(true);
                if advisory && !inner.refreshing && inner.blocking(now).is_none() {
                    inner.refreshing = true;
                    let me = Arc::clone(self);
                    tokio::spawn(async move { me.refresh(Trigger::Advisory).await });
                }
                return Ok(Served { cached, hit: true });
            }
            self.counters.request(false);
            if let Some(refusal) = inner.blocking(now) {
                return Err(refusal);
            }
            // The endpoint issued shorter tokens than this caller needs a minute ago: asking
            // again would only replace a good token (and let callers hammer the endpoint).
            if let Some((at, lifetime)) = inner.last_lifetime
                && min_ttl > lifetime
                && now.saturating_duration_since(at) < LIFETIME_MEMORY
            {
                return Err(self.too_short(lifetime.as_secs(), min_ttl));
            }
            inner.attempts
        };

        let mut source = self.source.lock().await;
        {
            let now = Instant::now();
            let mut inner = self.inner();
            if let Some(current) = &inner.current
                && current.serves(now, min_ttl)
            {
                let cached = Arc::clone(&current.cached);
                inner.used = true;
                return Ok(Served { cached, hit: false });
            }
            if inner.attempts != attempts_seen {
                // A fetch ran while we waited and did not produce what we need: report its
                // outcome instead of asking upstream again.
                if let Some(refusal) = inner.blocking(now) {
                    return Err(refusal);
                }
                if let Some(current) = &inner.current
                    && let Some(expires) = current.expires
                    && current.valid(now)
                {
                    let left = expires.saturating_duration_since(now).as_secs();
                    return Err(self.too_short(left, min_ttl));
                }
            }
            inner.refreshing = true;
        }
        let in_flight = InFlight(Some(self));
        let outcome = self.fetch_retrying(&mut source).await;
        let outcome = self.persist(outcome, &mut source).await;
        let stored = self.store(outcome, Trigger::Caller);
        in_flight.done();
        drop(source);
        let cached = stored.map_err(|error| error_response(&error, ""))?;
        let now = Instant::now();
        let inner = self.inner();
        match &inner.current {
            Some(current) if !current.serves(now, min_ttl) => {
                let left = current.expires.map_or(0, |expires| {
                    expires.saturating_duration_since(now).as_secs()
                });
                Err(self.too_short(left, min_ttl))
            }
            _ => Ok(Served { cached, hit: false }),
        }
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

    /// One upstream attempt, counted and timed.
    async fn timed_fetch(&self, state: &mut SourceState) -> Result<Fetched, FetchError> {
        self.follow_stored_rotation(state);
        let started = Instant::now();
        let mut outcome = self.fetcher.fetch(state).await;
        let elapsed = started.elapsed();
        self.counters.fetched(outcome.is_ok(), elapsed);
        // `expires_in` counts from when the server answered, which is no earlier than when we
        // asked: count from the request, so a slow endpoint never makes a token look longer-lived.
        if let Ok(Fetched {
            lifetime: Lifetime::Expires(lifetime),
            ..
        }) = &mut outcome
        {
            *lifetime = lifetime.saturating_sub(elapsed);
        }
        outcome
    }

    /// Takes over a refresh token of the same chain that is newer in the store than in memory.
    /// After a reload, the instance a provider replaced may still finish a refresh that rotates
    /// the token and saves the successor; without this the new instance would present the
    /// superseded one, which the server refuses (and may answer by revoking the whole chain).
    fn follow_stored_rotation(&self, state: &mut SourceState) {
        let Some(store) = &self.store else {
            return;
        };
        let Some(stored) = store.refresh_token(&self.config.name) else {
            return;
        };
        if !state.unsaved_rotation
            && state.origin.as_ref() == Some(&stored.origin)
            && state.refresh_token.as_ref() != Some(&stored.token)
        {
            tracing::debug!(provider = %self.config.name, "following a rotation saved by a replaced instance");
            state.refresh_token = Some(stored.token);
        }
    }

    /// One fetch for a waiting caller: transient failures are retried within the budget.
    async fn fetch_retrying(&self, state: &mut SourceState) -> Result<Fetched, FetchError> {
        let deadline = Instant::now() + RETRY_BUDGET;
        let mut retries = 0;
        loop {
            let outcome = self.timed_fetch(state).await;
            match outcome {
                Err(FetchError::Transient { retry_after, .. }) if retries < WAITING_RETRIES => {
                    retries += 1;
                    let delay = backoff(retries, retry_after);
                    if Instant::now() + delay > deadline {
                        return outcome;
                    }
                    tracing::debug!(provider = %self.config.name, "retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                }
                other => return other,
            }
        }
    }

    /// A background refresh: one attempt, only if no other fetch is running.
    async fn refresh(self: Arc<Self>, trigger: Trigger) {
        {
            let now = Instant::now();
            let mut inner = self.inner();
            if let Trigger::Scheduled(generation) = trigger {
                // Retired, a newer token, an invalidation, an idle token or a blocking failure:
                // stand down.
                if self.retired.load(std::sync::atomic::Ordering::Relaxed)
                    || inner.generation != generation
                    || !inner.used
                    || inner.refreshing
                    || inner.blocking(now).is_some()
                    || inner.current.as_ref().is_none_or(|c| !c.valid(now))
                {
                    return;
                }
                inner.refreshing = true;
            }
        }
        let Ok(mut source) = self.source.try_lock() else {
            // Someone else is fetching (or about to); their result will do. Their `store` also
            // clears the flag, but clear it here too so it can never stay set.
            self.inner().refreshing = false;
            return;
        };
        tracing::debug!(provider = %self.config.name, ?trigger, "refreshing ahead of expiry");
        let in_flight = InFlight(Some(&self));
        let outcome = self.timed_fetch(&mut source).await;
        let outcome = self.persist(outcome, &mut source).await;
        let _ = self.store(outcome, trigger);
        in_flight.done();
    }

    /// Follows a rotated refresh token, and makes the outcome durable before anyone can use
    /// it: the rotated refresh token and (unless `persist = false`) the access token with its
    /// absolute expiry are in the store, fsynced, before `store` caches the token for callers.
    /// A rotated refresh token that cannot be saved fails the fetch: handing out its access
    /// token would let a crash lose the only refresh token that still works. It stays in force
    /// in memory, so the next fetch uses it (and tries to save its successor).
    async fn persist(
        &self,
        outcome: Result<Fetched, FetchError>,
        state: &mut SourceState,
    ) -> Result<Fetched, FetchError> {
        let fetched = match outcome {
            Ok(fetched) => fetched,
            Err(error) => {
                if matches!(
                    error,
                    FetchError::Rejected {
                        needs_login: true,
                        ..
                    }
                ) {
                    // The refresh token in force was refused: go back to the configured one,
                    // which the user may have replaced meanwhile (an interactive provider has
                    // none: its session ended, it needs a login).
                    state.refresh_token = None;
                    self.inner().has_session = false;
                    if state.origin.take().is_some() {
                        self.write_store(|contents, name| {
                            contents.refresh_tokens.remove(name);
                        })
                        .await
                        .unwrap_or_else(|message| tracing::warn!("{message}"));
                    }
                }
                return Err(error);
            }
        };
        let rotated = fetched
            .refresh_token
            .clone()
            .zip(state.origin.clone())
            .map(|(token, origin)| StoredRefresh { token, origin });
        if let Some(rotated) = &fetched.refresh_token {
            // Rotation: the next refresh must use the new refresh token.
            state.refresh_token = Some(rotated.clone());
        }
        let access = match fetched.lifetime {
            _ if !self.persists_access() => None,
            Lifetime::Unbounded => Some(None),
            Lifetime::Expires(lifetime) if lifetime.is_zero() => None,
            Lifetime::Expires(lifetime) => Some(Some(unix_secs(
                SystemTime::now() + lifetime.min(MAX_LIFETIME),
            ))),
        }
        .map(|expires_at_unix| StoredAccess {
            token: fetched.token.clone(),
            expires_at_unix,
            config: self.fingerprint.clone(),
        });
        if rotated.is_none() && access.is_none() {
            return Ok(fetched);
        }
        let must_save = rotated.is_some();
        let written = self
            .write_store(move |contents, name| {
                if let Some(rotated) = rotated {
                    contents.refresh_tokens.insert(name.to_owned(), rotated);
                }
                match access {
                    Some(access) => contents.access_tokens.insert(name.to_owned(), access),
                    None => contents.access_tokens.remove(name),
                };
            })
            .await;
        // An unsaved rotation is newer than what the store holds: it must not be replaced by
        // the stored one (see `follow_stored_rotation`).
        state.unsaved_rotation = must_save && written.is_err();
        match written {
            Ok(()) => Ok(fetched),
            Err(message) if must_save => Err(FetchError::Config(format!(
                "{message}; the new refresh token could not be saved, so its access token is \
                 withheld (the next request tries again)"
            ))),
            Err(message) => {
                // Only the cached access token is lost on a restart: it is fetched anew.
                tracing::warn!("{message}");
                Ok(fetched)
            }
        }
    }

    /// Applies `change` to this provider's part of the store and writes the store durably, on a
    /// blocking thread (fsyncs must not stall the connections). Without a store: nothing to do.
    async fn write_store(
        &self,
        change: impl FnOnce(&mut crate::store::Contents, &str) + Send + 'static,
    ) -> Result<(), String> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let store = Arc::clone(store);
        let name = self.config.name.clone();
        let written =
            tokio::task::spawn_blocking(move || store.update(|contents| change(contents, &name)))
                .await;
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(format!("provider `{}`: {err}", self.config.name)),
            Err(err) => Err(format!(
                "provider `{}`: writing the store failed: {err}",
                self.config.name
            )),
        }
    }

    /// Records a fetch's outcome; returns the new token or the failure.
    fn store(
        self: &Arc<Self>,
        outcome: Result<Fetched, FetchError>,
        trigger: Trigger,
    ) -> Result<Arc<CachedGrant>, FetchError> {
        let now = Instant::now();
        let outcome = outcome.and_then(|fetched| self.cache_entry(fetched, now));
        let mut inner = self.inner();
        inner.attempts += 1;
        inner.refreshing = false;
        match outcome {
            Ok(current) => {
                let cached = Arc::clone(&current.cached);
                let refresh_at = current.refresh_at;
                let current_lifetime = current.expires.map(|e| e.saturating_duration_since(now));
                inner.current = Some(current);
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
                tracing::info!(provider = %self.config.name, "obtained a new token");
                if let Some(at) = refresh_at {
                    self.schedule(generation, at);
                }
                Ok(cached)
            }
            Err(error) => {
                tracing::warn!(provider = %self.config.name, "{}", error.message());
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
                let keep_warm = inner.used && inner.current.as_ref().is_some_and(|c| c.valid(now));
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
    fn cache_entry(&self, fetched: Fetched, now: Instant) -> Result<Current, FetchError> {
        let (expires, expires_at_unix) = match fetched.lifetime {
            Lifetime::Unbounded => (None, None),
            Lifetime::Expires(lifetime) if lifetime.is_zero() => {
                return Err(FetchError::Transient {
                    message: format!(
                        "provider `{}`: the token endpoint returned a token that has already expired",
                        self.config.name
                    ),
                    retry_after: None,
                });
            }
            Lifetime::Expires(lifetime) => {
                // Upstream lifetimes are untrusted: a huge `expires_in` must not overflow.
                let lifetime = lifetime.min(MAX_LIFETIME);
                (
                    Some(now + lifetime),
                    Some(unix_secs(SystemTime::now() + lifetime)),
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
        let cached = CachedGrant::new(grant).map_err(|message| FetchError::Rejected {
            message,
            needs_login: false,
        })?;
        Ok(Current {
            cached: Arc::new(cached),
            expires,
            refresh_at: expires.map(|expires| advisory_start(now, expires)),
        })
    }

    /// Runs the refresh of `generation` at `at` (it stands down if no longer wanted). Replaces
    /// the pending one, so superseded timers do not pile up.
    fn schedule(self: &Arc<Self>, generation: u64, at: Instant) {
        let me = Arc::clone(self);
        let task = tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            me.refresh(Trigger::Scheduled(generation)).await;
        });
        let previous = self.inner().scheduled.replace(task.abort_handle());
        self.cancel(previous);
    }

    /// Aborts a pending scheduled refresh, unless it is the task running this code (a scheduled
    /// refresh that stores a token schedules the next one from inside itself).
    fn cancel(&self, scheduled: Option<tokio::task::AbortHandle>) {
        if let Some(handle) = scheduled
            && tokio::task::try_id() != Some(handle.id())
        {
            handle.abort();
        }
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
        let dropped_token = inner.current.take();
        let dropped = dropped_token.is_some();
        let scheduled = inner.scheduled.take();
        drop(inner);
        self.cancel(scheduled);
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

    /// For an interactive provider, the `origin` its session is stored under: the login marker
    /// plus the token endpoint (or issuer) and client id the session belongs to.
    fn login_origin(&self) -> Option<tokend_protocol::Secret> {
        let config = self.oauth2().filter(|c| c.grant.is_interactive())?;
        let server = match &config.endpoint {
            crate::kinds::TokenEndpoint::TokenUrl(url)
            | crate::kinds::TokenEndpoint::Issuer(url) => url.as_str(),
        };
        Some(tokend_protocol::Secret::new(format!(
            "{LOGIN_ORIGIN} {server} {}",
            config.client_id
        )))
    }

    fn oauth2(&self) -> Option<&OAuth2Config> {
        match &self.config.kind {
            ProviderKind::OAuth2(config) => Some(config),
            _ => None,
        }
    }

    /// The OAuth 2.0 config of a provider that logs in, or the error saying it does not.
    fn interactive(&self) -> Result<&OAuth2Config, Response> {
        match self.oauth2() {
            Some(config) if config.grant.is_interactive() => Ok(config),
            _ => Err(Response::error(
                ErrorCode::BadRequest,
                format!(
                    "provider `{}` does not log in (kind \"{}\"{}); `tok login` is for kind \
                     \"oauth2\" with grant = \"authorization_code\" or \"device_code\"",
                    self.config.name,
                    self.config.kind.name(),
                    self.oauth2()
                        .map(|c| format!(", grant \"{}\"", c.grant.name()))
                        .unwrap_or_default()
                ),
            )),
        }
    }

    /// Starts an interactive login (`tok login`): returns what to show the person, while the
    /// rest of the flow runs in its own task. One login per provider at a time.
    pub(crate) async fn start_login(self: &Arc<Self>) -> Result<LoginPrompt, Response> {
        let config = self.interactive()?;
        let name = &self.config.name;
        let mut login = self.login.lock().await;
        if self.retired.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(Response::error(
                ErrorCode::BadRequest,
                format!("the config of `{name}` was just reloaded: run `tok login {name}` again"),
            ));
        }
        if let Some(state) = login.as_ref()
            && state.outcome.borrow().is_none()
            && state.outcome.has_changed().is_ok()
        {
            let running = state.started.elapsed();
            return Err(Response::error(
                ErrorCode::BadRequest,
                format!(
                    "a login for `{name}` is already in progress (started {} s ago); finish it, \
                     or wait until it times out in {} s",
                    running.as_secs(),
                    state.timeout.saturating_sub(running).as_secs()
                ),
            ));
        }
        let endpoints = {
            let mut source = self.source.lock().await;
            source::endpoints(name, config, &mut source).await
        }
        .map_err(|error| error_response(&error, ""))?;
        let started = login::start(name, config, &endpoints)
            .await
            .map_err(|message| Response::error(ErrorCode::LoginRequired, message))?;
        let prompt = started.prompt;
        let (report, outcome) = tokio::sync::watch::channel(None);
        let me = Arc::clone(self);
        let flow = started.flow;
        let task = tokio::spawn(async move {
            let result = match flow.await {
                Ok(fetched) => me.complete_login(fetched).await,
                Err(message) => Err(message),
            };
            match &result {
                Ok(_) => tracing::info!(provider = %me.config.name, "logged in"),
                Err(message) => {
                    tracing::warn!(provider = %me.config.name, "login failed: {message}");
                }
            }
            report.send_replace(Some(result));
        });
        *login = Some(LoginState {
            started: Instant::now(),
            timeout: Duration::from_secs(prompt.expires_in_secs),
            outcome,
            task,
        });
        tracing::info!(provider = %name, "login started");
        Ok(prompt)
    }

    /// A login's tokens become the provider's session and cached token.
    async fn complete_login(self: &Arc<Self>, fetched: Fetched) -> Result<LoginOutcome, String> {
        let refreshable = fetched.refresh_token.is_some();
        let mut source = self.source.lock().await;
        // A login replaces whatever session there was, including a rotated refresh token. The
        // session's refresh token is durable before its access token is handed out, as every
        // rotated one is after it.
        source.refresh_token = None;
        source.origin = self.login_origin();
        if !refreshable {
            // No refresh token this time: the previous session must not come back on a restart.
            self.write_store(|contents, name| {
                contents.refresh_tokens.remove(name);
            })
            .await?;
        }
        let outcome = self.persist(Ok(fetched), &mut source).await;
        let cached = self
            .store(outcome, Trigger::Caller)
            .map_err(|error| error.message().to_owned())?;
        // Under the source lock: a logout waiting for it sees the session and ends it.
        self.inner().has_session = refreshable;
        drop(source);
        Ok(LoginOutcome {
            provider: self.config.name.clone(),
            expires_at_unix: cached.grant.expires_at_unix,
            refreshable,
        })
    }

    /// Waits until the login in progress ends.
    pub(crate) async fn await_login(&self) -> Result<LoginOutcome, Response> {
        let name = &self.config.name;
        let mut outcome = match self.login.lock().await.as_ref() {
            Some(state) => state.outcome.clone(),
            None => {
                return Err(Response::error(
                    ErrorCode::LoginRequired,
                    format!("no login for `{name}` is in progress: run `tok login {name}`"),
                ));
            }
        };
        let ended = outcome
            .wait_for(Option::is_some)
            .await
            .map(|result| result.clone());
        match ended {
            Ok(Some(Ok(done))) => Ok(done),
            Ok(Some(Err(message))) => Err(Response::error(ErrorCode::LoginRequired, message)),
            Ok(None) | Err(_) => Err(Response::error(
                ErrorCode::LoginRequired,
                format!(
                    "the login for `{name}` was cancelled (by `tok logout`, a config reload or \
                     a daemon stop): run `tok login {name}` again"
                ),
            )),
        }
    }

    /// Forgets the session: cancels a login in progress, drops the cached token and the refresh
    /// token, and revokes the refresh token where the server offers revocation (RFC 7009).
    pub(crate) async fn logout(&self) -> Result<LogoutOutcome, Response> {
        let config = self.interactive()?;
        let name = &self.config.name;
        if let Some(state) = self.login.lock().await.take() {
            state.task.abort();
            // A login that was just finishing may have a store write under way: let it land
            // before the session is removed, so it cannot come back afterwards.
            let _ = state.task.await;
        }
        let (refresh_token, endpoints) = {
            let mut source = self.source.lock().await;
            let refresh_token = source.refresh_token.take();
            source.origin = None;
            // Forgotten durably as well: a restart must not bring the session back.
            if let Err(message) = self
                .write_store(|contents, name| {
                    contents.refresh_tokens.remove(name);
                    contents.access_tokens.remove(name);
                })
                .await
            {
                source.refresh_token = refresh_token;
                source.origin = self.login_origin();
                return Err(Response::error(
                    ErrorCode::Internal,
                    format!(
                        "{message}; the session could not be removed from the store, so it was \
                         kept: fix the data directory and run `tok logout {name}` again"
                    ),
                ));
            }
            let endpoints = match &refresh_token {
                Some(_) => source::endpoints(name, config, &mut source).await.ok(),
                None => None,
            };
            (refresh_token, endpoints)
        };
        {
            let mut inner = self.inner();
            inner.has_session = false;
            inner.failure = None;
            inner.last_error = None;
            inner.last_lifetime = None;
            inner.generation += 1;
            inner.current = None;
            let scheduled = inner.scheduled.take();
            drop(inner);
            self.cancel(scheduled);
        }
        tracing::info!(provider = %name, "logged out");
        let Some(refresh_token) = refresh_token else {
            return Ok(LogoutOutcome {
                revoked: false,
                message: format!("logged out of `{name}` (there was no session to revoke)"),
            });
        };
        let revoked = match endpoints {
            Some(endpoints) if endpoints.revocation.is_some() => {
                login::revoke(name, config, &endpoints, refresh_token).await
            }
            _ => Err("the server offers no revocation endpoint".to_owned()),
        };
        Ok(match revoked {
            Ok(()) => LogoutOutcome {
                revoked: true,
                message: format!("logged out of `{name}`; the refresh token was revoked"),
            },
            Err(reason) => LogoutOutcome {
                revoked: false,
                message: format!(
                    "logged out of `{name}`; tokend forgot the refresh token, but it was not \
                     revoked: {reason}"
                ),
            },
        })
    }

    /// The user secret `name` was set or removed: a static provider whose secret refers to it
    /// drops its cached value (and any failure), so the next request resolves it anew. Fetching
    /// kinds resolve their credentials at each fetch anyway.
    pub(crate) fn secret_changed(&self, name: &str) {
        let ProviderKind::Static { secret } = &self.config.kind else {
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
    }

    pub(crate) fn status(&self) -> ProviderStatus {
        let now = Instant::now();
        let inner = self.inner();
        let valid = inner.current.as_ref().is_some_and(|c| c.valid(now));
        let interactive = self.oauth2().is_some_and(|c| c.grant.is_interactive());
        let state = match &inner.failure {
            Some(Failure::Rejected {
                error:
                    FetchError::Rejected {
                        needs_login: true, ..
                    },
                ..
            }) => ProviderState::NeedsLogin,
            _ if interactive && !inner.has_session && !valid && !inner.refreshing => {
                ProviderState::NeedsLogin
            }
            _ if inner.refreshing => ProviderState::Refreshing,
            _ if valid => ProviderState::Fresh,
            _ if inner.failure.is_some() || inner.last_error.is_some() => ProviderState::Error,
            _ if inner.current.is_some() => ProviderState::Expired,
            _ => ProviderState::Idle,
        };
        let next_refresh = match &inner.failure {
            Some(Failure::Backoff { until, .. }) if valid && inner.used => Some(*until),
            None if valid && inner.used => inner.current.as_ref().and_then(|c| c.refresh_at),
            _ => None,
        };
        ProviderStatus {
            name: self.config.name.clone(),
            kind: self.config.kind.name().to_owned(),
            state,
            expires_at_unix: inner
                .current
                .as_ref()
                .and_then(|c| c.cached.grant.expires_at_unix),
            last_error: inner.last_error.clone(),
            last_refresh_unix: inner.last_refresh.map(unix_secs),
            next_refresh_unix: next_refresh.map(|at| unix_at(at, now)),
            counters: self.counters.snapshot(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokend_protocol::Secret;

    use super::*;
    use crate::config::Presentation;
    use crate::secret_ref::SecretTemplate;

    /// One scripted fetch: after `delay`, a token with a lifetime, or a failure.
    #[derive(Debug)]
    enum Step {
        Token(&'static str, Option<u64>),
        Fail(FetchError),
    }

    #[derive(Debug, Default)]
    struct Script {
        steps: Mutex<VecDeque<(Duration, Step)>>,
        calls: AtomicUsize,
    }

    impl Script {
        fn new(steps: Vec<(u64, Step)>) -> Arc<Self> {
            Arc::new(Self {
                steps: Mutex::new(
                    steps
                        .into_iter()
                        .map(|(delay, step)| (Duration::from_secs(delay), step))
                        .collect(),
                ),
                calls: AtomicUsize::new(0),
            })
        }

        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
    }

    #[derive(Debug)]
    struct Scripted(Arc<Script>);

    /// Records the refresh token in force when it is asked for a token.
    #[derive(Debug, Default)]
    struct SeesRefreshToken(Mutex<Vec<Option<String>>>);

    impl Fetch for SeesRefreshToken {
        fn fetch<'a>(&'a self, state: &'a mut SourceState) -> FetchFuture<'a> {
            let seen = state.refresh_token.as_ref().map(|t| t.expose().to_owned());
            self.0.lock().unwrap().push(seen);
            Box::pin(async move {
                Ok(Fetched {
                    token: Secret::from("access"),
                    lifetime: Lifetime::Expires(Duration::from_secs(3600)),
                    refresh_token: None,
                })
            })
        }
    }

    #[tokio::test]
    async fn a_rotation_saved_by_a_replaced_instance_is_followed_but_not_an_older_one() {
        use crate::store::{KeySource, Store, StoredRefresh};
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            Store::open(
                &dir.path().join("data"),
                &KeySource::File(dir.path().join("store.key")),
            )
            .unwrap(),
        );
        let save = |token: &str| {
            store
                .update(|contents| {
                    contents.refresh_tokens.insert(
                        "api".into(),
                        StoredRefresh {
                            token: Secret::from(token),
                            origin: Secret::from("chain"),
                        },
                    );
                })
                .unwrap();
        };
        let fetcher = Arc::new(SeesRefreshToken::default());
        #[derive(Debug)]
        struct Shared(Arc<SeesRefreshToken>);
        impl Fetch for Shared {
            fn fetch<'a>(&'a self, state: &'a mut SourceState) -> FetchFuture<'a> {
                self.0.fetch(state)
            }
        }
        let config = ProviderConfig {
            name: "api".into(),
            kind: ProviderKind::Static {
                secret: SecretTemplate::parse("${env:UNUSED}").unwrap(),
            },
            presentation: Presentation::default(),
            persist: true,
        };
        let mut provider = Provider::with_fetcher(config, Box::new(Shared(Arc::clone(&fetcher))));
        provider.store = Some(Arc::clone(&store));
        {
            let state = provider.source.get_mut();
            state.refresh_token = Some(Secret::from("rt-1"));
            state.origin = Some(Secret::from("chain"));
        }
        let provider = Arc::new(provider);

        // The replaced instance rotated rt-1 into rt-2 and saved it: this one follows.
        save("rt-2");
        provider.token(Duration::from_secs(1)).await.unwrap();
        // A rotation this instance could not save is newer than the store's: it is kept.
        {
            let mut state = provider.source.lock().await;
            state.refresh_token = Some(Secret::from("rt-3"));
            state.unsaved_rotation = true;
        }
        provider.invalidate();
        provider.token(Duration::from_secs(1)).await.unwrap();
        // Another chain in the store (the user configured a new refresh token) is not taken.
        save("rt-9");
        store
            .update(|contents| {
                contents.refresh_tokens.get_mut("api").unwrap().origin = Secret::from("other");
            })
            .unwrap();
        {
            let mut state = provider.source.lock().await;
            state.unsaved_rotation = false;
        }
        tokio::time::pause();
        tokio::time::advance(INVALIDATE_INTERVAL).await;
        tokio::time::resume();
        provider.invalidate();
        provider.token(Duration::from_secs(1)).await.unwrap();
        assert_eq!(
            *fetcher.0.lock().unwrap(),
            [
                Some("rt-2".to_owned()),
                Some("rt-3".to_owned()),
                Some("rt-3".to_owned())
            ]
        );
    }

    impl Fetch for Scripted {
        fn fetch<'a>(&'a self, _state: &'a mut SourceState) -> FetchFuture<'a> {
            Box::pin(async move {
                self.0.calls.fetch_add(1, Ordering::SeqCst);
                let next = self.0.steps.lock().unwrap().pop_front();
                let (delay, step) = next.expect("the script ran out of steps: an unexpected fetch");
                tokio::time::sleep(delay).await;
                match step {
                    Step::Token(value, lifetime) => Ok(Fetched {
                        token: Secret::from(value),
                        lifetime: lifetime.map_or(Lifetime::Unbounded, |secs| {
                            Lifetime::Expires(Duration::from_secs(secs))
                        }),
                        refresh_token: None,
                    }),
                    Step::Fail(error) => Err(error),
                }
            })
        }
    }

    fn provider(script: &Arc<Script>) -> Arc<Provider> {
        let config = ProviderConfig {
            name: "api".into(),
            kind: ProviderKind::Static {
                secret: SecretTemplate::parse("${env:UNUSED}").unwrap(),
            },
            presentation: Presentation::default(),
            persist: true,
        };
        Arc::new(Provider::with_fetcher(
            config,
            Box::new(Scripted(Arc::clone(script))),
        ))
    }

    fn transient(retry_after: Option<u64>) -> Step {
        Step::Fail(FetchError::Transient {
            message: "HTTP 503".into(),
            retry_after: retry_after.map(Duration::from_secs),
        })
    }

    async fn get(provider: &Arc<Provider>, min_ttl: u64) -> Result<String, Response> {
        provider
            .token(Duration::from_secs(min_ttl))
            .await
            .map(|served| served.cached.grant.token.expose().to_owned())
    }

    fn error_text(response: Response) -> (ErrorCode, String) {
        match response {
            Response::Error(reply) => (reply.code, reply.message),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    async fn advance(secs: u64) {
        tokio::time::advance(Duration::from_secs(secs)).await;
        // Let woken tasks (scheduled refreshes) run.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_requests_cause_one_fetch() {
        let script = Script::new(vec![(1, Step::Token("t1", Some(3600)))]);
        let provider = provider(&script);
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let provider = Arc::clone(&provider);
                tokio::spawn(async move { get(&provider, 30).await })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap().unwrap(), "t1");
        }
        assert_eq!(script.calls(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn refreshes_ahead_in_the_background_while_serving_the_cached_token() {
        let script = Script::new(vec![
            (0, Step::Token("t1", Some(1000))),
            (5, Step::Token("t2", Some(1000))),
        ]);
        let provider = provider(&script);
        assert_eq!(get(&provider, 30).await.unwrap(), "t1");
        // The advisory window of a 1000 s token opens 250-300 s before expiry.
        advance(760).await;
        assert_eq!(script.calls(), 2, "the scheduled refresh started");
        assert_eq!(provider.status().state, ProviderState::Refreshing);
        // Callers keep getting the cached token at once while the refresh runs.
        assert_eq!(get(&provider, 30).await.unwrap(), "t1");
        advance(6).await;
        assert_eq!(get(&provider, 30).await.unwrap(), "t2");
        assert_eq!(provider.status().state, ProviderState::Fresh);
        assert_eq!(script.calls(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn the_mandatory_window_makes_callers_wait_for_a_new_token() {
        let script = Script::new(vec![
            (0, Step::Token("t1", Some(100))),
            (2, Step::Token("t2", Some(100))),
        ]);
        let provider = provider(&script);
        assert_eq!(get(&provider, 30).await.unwrap(), "t1");
        advance(15).await;
        // 85 s left, but this caller needs 90 s: it waits for a new token.
        assert_eq!(get(&provider, 90).await.unwrap(), "t2");
        assert_eq!(script.calls(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_refresh_keeps_the_still_valid_token() {
        let script = Script::new(vec![
            (0, Step::Token("t1", Some(1000))),
            (0, transient(None)),
        ]);
        let provider = provider(&script);
        assert_eq!(get(&provider, 30).await.unwrap(), "t1");
        advance(760).await;
        assert_eq!(script.calls(), 2, "the background refresh ran and failed");
        assert_eq!(get(&provider, 30).await.unwrap(), "t1");
        let status = provider.status();
        assert_eq!(status.state, ProviderState::Fresh);
        assert_eq!(status.last_error.as_deref(), Some("HTTP 503"));
        assert!(status.next_refresh_unix.is_some(), "a retry is planned");
    }

    #[tokio::test(start_paused = true)]
    async fn rejections_are_not_retried_until_invalidated() {
        let rejected = FetchError::Rejected {
            message: "invalid_client".into(),
            needs_login: false,
        };
        let script = Script::new(vec![
            (0, Step::Fail(rejected)),
            (0, Step::Token("t1", None)),
        ]);
        let provider = provider(&script);
        for _ in 0..5 {
            let (code, message) = error_text(get(&provider, 30).await.unwrap_err());
            assert_eq!(code, ErrorCode::Upstream);
            assert!(message.contains("invalid_client"));
        }
        assert_eq!(script.calls(), 1, "no retry loop after a rejection");
        assert_eq!(provider.status().state, ProviderState::Error);
        assert!(!provider.invalidate().dropped, "there was no token to drop");
        assert_eq!(get(&provider, 30).await.unwrap(), "t1");
        assert_eq!(script.calls(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_refresh_token_needs_a_login() {
        let refused = FetchError::Rejected {
            message: "invalid_grant".into(),
            needs_login: true,
        };
        let script = Script::new(vec![(0, Step::Fail(refused))]);
        let provider = provider(&script);
        let (code, _) = error_text(get(&provider, 30).await.unwrap_err());
        assert_eq!(code, ErrorCode::LoginRequired);
        assert_eq!(provider.status().state, ProviderState::NeedsLogin);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured() {
        let script = Script::new(vec![
            (0, transient(Some(120))),
            (0, Step::Token("t1", None)),
        ]);
        let provider = provider(&script);
        let (code, _) = error_text(get(&provider, 30).await.unwrap_err());
        assert_eq!(code, ErrorCode::Upstream);
        advance(60).await;
        let (_, message) = error_text(get(&provider, 30).await.unwrap_err());
        assert!(message.contains("next attempt in"), "{message}");
        assert_eq!(
            script.calls(),
            1,
            "nothing is sent before Retry-After passes"
        );
        advance(61).await;
        assert_eq!(get(&provider, 30).await.unwrap(), "t1");
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_caller_gets_a_retry_after_a_transient_failure() {
        let script = Script::new(vec![(0, transient(None)), (0, Step::Token("t1", None))]);
        let provider = provider(&script);
        assert_eq!(get(&provider, 30).await.unwrap(), "t1");
        assert_eq!(script.calls(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_shorter_than_the_minimum_are_refused() {
        let script = Script::new(vec![(0, Step::Token("short", Some(20)))]);
        let provider = provider(&script);
        let (code, message) = error_text(get(&provider, 30).await.unwrap_err());
        assert_eq!(code, ErrorCode::Upstream);
        assert!(
            message.contains("20 s") && message.contains("30 s"),
            "{message}"
        );
        // A caller that asks for less gets it from the cache.
        assert_eq!(get(&provider, 10).await.unwrap(), "short");
        // Asking again for more than the endpoint issues does not fetch again (no hammering).
        for _ in 0..5 {
            let (_, message) = error_text(get(&provider, 30).await.unwrap_err());
            assert!(message.contains("less than"), "{message}");
        }
        assert_eq!(script.calls(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn local_failures_back_off_too() {
        let broken = FetchError::Config("secret: env var X is not set".into());
        let script = Script::new(vec![(0, Step::Fail(broken)), (0, Step::Token("t1", None))]);
        let provider = provider(&script);
        for _ in 0..5 {
            let (code, message) = error_text(get(&provider, 30).await.unwrap_err());
            assert_eq!(code, ErrorCode::Config);
            assert!(message.contains("env var X"), "{message}");
        }
        assert_eq!(
            script.calls(),
            1,
            "callers within the backoff do not re-run the source"
        );
        advance(2).await;
        assert_eq!(get(&provider, 30).await.unwrap(), "t1");
    }

    #[tokio::test(start_paused = true)]
    async fn invalidation_drops_the_token_and_is_rate_limited() {
        let script = Script::new(vec![
            (0, Step::Token("t1", None)),
            (0, Step::Token("t2", None)),
        ]);
        let provider = provider(&script);
        assert_eq!(get(&provider, 30).await.unwrap(), "t1");
        assert!(provider.invalidate().dropped);
        assert_eq!(get(&provider, 30).await.unwrap(), "t2");
        let again = provider.invalidate();
        assert!(
            !again.dropped && again.message.contains("rate limit"),
            "{}",
            again.message
        );
        assert_eq!(get(&provider, 30).await.unwrap(), "t2");
        assert_eq!(script.calls(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_providers_are_not_kept_warm() {
        let script = Script::new(vec![
            (0, Step::Token("t1", Some(1000))),
            (0, Step::Token("t2", Some(1000))),
        ]);
        let provider = provider(&script);
        assert_eq!(get(&provider, 30).await.unwrap(), "t1");
        advance(760).await;
        assert_eq!(script.calls(), 2, "t1 was used, so it was refreshed");
        // Nobody asks for t2: its refresh stands down and it expires.
        advance(1100).await;
        assert_eq!(script.calls(), 2);
        assert_eq!(provider.status().state, ProviderState::Expired);
    }

    #[tokio::test(start_paused = true)]
    async fn a_huge_upstream_lifetime_is_capped_instead_of_overflowing() {
        let script = Script::new(vec![(0, Step::Token("forever", Some(u64::MAX)))]);
        let provider = provider(&script);
        assert_eq!(get(&provider, 30).await.unwrap(), "forever");
        let status = provider.status();
        assert_eq!(status.state, ProviderState::Fresh);
        assert!(status.expires_at_unix.is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_fetch_does_not_leave_the_provider_refreshing() {
        let script = Script::new(vec![
            (60, Step::Token("slow", None)),
            (0, Step::Token("t1", None)),
        ]);
        let provider = provider(&script);
        let waiting = tokio::spawn({
            let provider = Arc::clone(&provider);
            async move { get(&provider, 30).await }
        });
        advance(1).await;
        assert_eq!(provider.status().state, ProviderState::Refreshing);
        waiting.abort();
        let _ = waiting.await;
        assert_eq!(provider.status().state, ProviderState::Idle);
        assert_eq!(get(&provider, 30).await.unwrap(), "t1");
    }

    #[test]
    fn advisory_window_is_a_quarter_at_least_a_minute_at_most_half() {
        let start = Instant::now();
        for _ in 0..50 {
            // One hour: a quarter (15 min) plus up to 3 min of jitter before expiry.
            let at = advisory_start(start, start + Duration::from_secs(3600));
            let before = (start + Duration::from_secs(3600)) - at;
            assert!(
                before >= Duration::from_secs(900) && before <= Duration::from_secs(1080),
                "{before:?}"
            );
            // Two minutes: the 60 s floor, capped at half the lifetime (60 s), plus jitter.
            let at = advisory_start(start, start + Duration::from_secs(120));
            let before = (start + Duration::from_secs(120)) - at;
            assert!(
                before >= Duration::from_secs(60) && before <= Duration::from_secs(72),
                "{before:?}"
            );
            // Ten seconds: half the lifetime, never before the token was obtained.
            let at = advisory_start(start, start + Duration::from_secs(10));
            assert!(at >= start && at <= start + Duration::from_secs(5));
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_caps_and_honours_retry_after() {
        for _ in 0..50 {
            let first = backoff(1, None);
            assert!(first >= Duration::from_millis(500) && first <= Duration::from_secs(1));
            let fourth = backoff(4, None);
            assert!(fourth >= Duration::from_secs(4) && fourth <= Duration::from_secs(8));
            let late = backoff(30, None);
            assert!(late <= BACKOFF_CAP && late >= BACKOFF_CAP / 2);
            assert_eq!(
                backoff(1, Some(Duration::from_secs(120))),
                Duration::from_secs(120)
            );
            assert_eq!(
                backoff(1, Some(Duration::from_secs(99_999))),
                RETRY_AFTER_CAP
            );
        }
    }
}
