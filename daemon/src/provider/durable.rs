//! Durable state: what a provider restores from the encrypted store when it starts (a rotated
//! refresh token, a rotated key, a still-valid access token obtained under the same
//! configuration, with its id_token), what it writes there before any caller sees a new token,
//! and following a rotation that a replaced instance saved.
//!
//! An instance a reload puts in another's place shares its [`Chain`]: their upstream attempts
//! (fetches and key rotations) take turns, so the one's rotated refresh token or key is saved
//! before the other presents the chain's; and a key rotation one starts makes the other stop
//! serving the key it cached. A turn is waited for a bounded time: across a reload two
//! instances of different configs may each wait for the other through `${provider:…}`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, SystemTime};

use tokend_protocol::clock;
use tokio::time::Instant;

use super::session::LOGIN_ORIGIN;
use super::{MAX_LIFETIME, Provider, RETRY_BUDGET};
use crate::kinds::{FetchError, FetchState, Fetched, Lifetime, ProviderKind};
use crate::store::{Contents, Store, StoredAccess, StoredRefresh};

/// What a provider shares with the instances a reload puts in its place.
#[derive(Debug, Default)]
pub(super) struct Chain {
    /// Held across each upstream attempt (a fetch, a key rotation) and the writing of its
    /// outcome to the store.
    turn: tokio::sync::Mutex<()>,
    /// Bumped when a key rotation starts: a key cached before it is not served again (the
    /// API may invalidate it as soon as the request arrives); the next request waits for the
    /// rotation's turn to end and takes what it stored.
    key_changes: AtomicU64,
}

/// How much longer than its request timeout a turn may be waited for: the retries a waiting
/// caller gets, another provider's token (`${provider:…}`, a rotation's `auth`) and the store's
/// fsync.
const TURN_MARGIN: Duration = Duration::from_secs(RETRY_BUDGET.as_secs() + 25);

impl Chain {
    /// How many key rotations have started on this chain.
    pub(super) fn key_changes(&self) -> u64 {
        self.key_changes.load(Ordering::SeqCst)
    }

    /// A key rotation starts (its caller holds the turn).
    pub(super) fn key_changing(&self) -> u64 {
        self.key_changes.fetch_add(1, Ordering::SeqCst) + 1
    }
}

impl Provider {
    /// Whether this provider is a static key (which a rotation may have replaced).
    pub(super) fn is_static(&self) -> bool {
        matches!(self.config.kind, ProviderKind::Static { .. })
    }

    /// The configuration as stored beside an access token (its `Debug` form, which shows no
    /// secret): a stored token obtained under another configuration is not served. Made when
    /// a token is stored or restored, not kept (it is as long as the config's `Debug` form).
    fn fingerprint(&self) -> String {
        format!("{:?}", self.config)
    }

    /// Whether this provider's access tokens go to the store: fetched ones only (a static
    /// secret comes from the config each start), and not with `persist = false`.
    fn persists_access(&self) -> bool {
        self.config.persist
            && matches!(
                self.config.kind,
                ProviderKind::OAuth2(_)
                    | ProviderKind::Http(_)
                    | ProviderKind::GitHubApp(_)
                    | ProviderKind::Google(_)
            )
    }

    /// Takes over the stored refresh token and, if still valid and obtained under this very
    /// configuration, the stored access token.
    pub(super) fn restore(&mut self, store: &Store) {
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
                    let source = self.flight.get_mut();
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
        if let Some(rotated) = store.rotated_key(name).filter(|_| self.is_static()) {
            // Whether it is still in force is decided at the first fetch, against the
            // configured key it descends from (with or without a `rotate` table now).
            let state = self.flight.get_mut();
            state.rotated_key = Some(rotated.key);
            state.rotated_origin = Some(rotated.origin);
            self.inner
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner)
                .rotation
                .rotated_at_unix = Some(rotated.rotated_at_unix);
        }
        let Some(stored) = store.access_token(name).filter(|_| self.persists_access()) else {
            return;
        };
        if stored.config != self.fingerprint() {
            tracing::debug!(provider = %name, "stored token obtained under another configuration");
            return;
        }
        let now = Instant::now();
        // To the nanosecond: the stored second is rounded down, the current one may be nearly
        // over.
        let lifetime = match stored.expires_at_unix {
            None => Lifetime::Unbounded,
            Some(at) => match clock::until_unix_secs(at) {
                Some(left) if left.is_zero() => return,
                Some(left) => Lifetime::Expires(left),
                None => Lifetime::Unbounded,
            },
        };
        let fetched = Fetched {
            id_token: stored.id_token,
            ..Fetched::new(stored.token, lifetime)
        };
        if let Ok(current) = self.cache_entry(fetched, now) {
            tracing::info!(provider = %name, "serving the token kept in the store");
            let inner = self.inner.get_mut().unwrap_or_else(PoisonError::into_inner);
            inner.current = Some(current);
            inner.origin = super::Origin::Store;
        }
    }

    /// Takes over a refresh token of the same chain that is newer in the store than in memory.
    /// After a reload, the instance a provider replaced may still finish a refresh that rotates
    /// the token and saves the successor; without this the new instance would present the
    /// superseded one, which the server refuses (and may answer by revoking the whole chain).
    pub(super) fn follow_stored_rotation(&self, state: &mut FetchState) {
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

    /// Obtains a token ([`Provider::obtain`]) and makes the outcome durable ([`Provider::persist`])
    /// in the chain's turn, which the instance a reload replaced shares.
    pub(super) async fn obtain_durably(
        &self,
        state: &mut FetchState,
        want: super::fleet::Want,
    ) -> (Result<Fetched, FetchError>, super::Origin) {
        let _turn = match self.take_turn().await {
            Ok(turn) => turn,
            Err(error) => return (Err(error), super::Origin::Upstream),
        };
        self.inner().key_epoch = self.chain.key_changes();
        let (mut outcome, origin) = self.obtain(state, want).await;
        if let Ok(fetched) = &mut outcome {
            self.carry_id_token(fetched);
        }
        (self.persist(outcome, state).await, origin)
    }

    /// Waits for the chain's turn, for a bounded time: an instance a reload replaced may hold
    /// it while it waits for this one (each resolving the other's `${provider:…}` through the
    /// providers in force), which would otherwise never end.
    pub(super) async fn take_turn(&self) -> Result<tokio::sync::MutexGuard<'_, ()>, FetchError> {
        let wait = self.request_timeout() + TURN_MARGIN;
        tokio::time::timeout(wait, self.chain.turn.lock())
            .await
            .map_err(|_| FetchError::Transient {
                message: format!(
                    "provider `{}`: the instance a reload replaced did not finish its request \
                     within {} s (it may be waiting for this one through ${{provider:…}}); \
                     try again",
                    self.config.name,
                    wait.as_secs()
                ),
                retry_after: None,
            })
    }

    /// The longest one upstream request of this provider may take.
    pub(super) fn request_timeout(&self) -> Duration {
        let timeout = match &self.config.kind {
            ProviderKind::OAuth2(config) => config.timeout,
            ProviderKind::Http(exchange) => exchange.timeout,
            ProviderKind::GitHubApp(app) => app.exchange.timeout,
            ProviderKind::Google(account) => account.timeout,
            ProviderKind::Static {
                rotate: Some(rotation),
                ..
            } => rotation.timeout,
            ProviderKind::Static { rotate: None, .. } | ProviderKind::Anonymous => None,
        };
        timeout.unwrap_or(crate::upstream::REQUEST_TIMEOUT)
    }

    /// Follows a rotated refresh token, and makes the outcome durable before anyone can use
    /// it: the rotated refresh token and (unless `persist = false`) the access token with its
    /// absolute expiry are in the store, fsynced, before `store` caches the token for callers.
    /// A rotated refresh token that cannot be saved fails the fetch: handing out its access
    /// token would let a crash lose the only refresh token that still works. It stays in force
    /// in memory, so the next fetch uses it (and tries to save its successor).
    pub(super) async fn persist(
        &self,
        outcome: Result<Fetched, FetchError>,
        state: &mut FetchState,
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
            Lifetime::Expires(lifetime) => {
                // Counted from the request, like the cache's expiry (see `Fetched::since`).
                let left = (fetched.since + lifetime.min(MAX_LIFETIME))
                    .saturating_duration_since(Instant::now());
                (!left.is_zero()).then(|| Some(clock::unix_secs(SystemTime::now() + left)))
            }
        }
        .map(|expires_at_unix| StoredAccess {
            token: fetched.token.clone(),
            expires_at_unix,
            config: self.fingerprint(),
            id_token: fetched.id_token.clone(),
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
    pub(super) async fn write_store(
        &self,
        change: impl FnOnce(&mut Contents, &str) + Send + 'static,
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
}
