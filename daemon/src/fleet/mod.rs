//! The fleet: many machines, each with its own tokend, share one token per `share` name through
//! Redis or Valkey, so that a token endpoint sees one request per token lifetime for the whole
//! fleet instead of one per machine.
//!
//! - [`address`]: where the server is (a URL, or Sentinel);
//! - [`crypto`]: the fleet key, sealed entries, keyed names;
//! - [`store`]: the [`store::SharedStore`] trait and the key layout; [`redis`]: Redis behind it.
//!
//! [`Fleet`] is what providers use: it seals and opens entries, checks that an entry was obtained
//! for the same upstream identity, and keeps a circuit breaker so that a down or slow Redis
//! costs at most one operation timeout now and then, never a wait per request. The policy (when
//! to read, lock, fetch, commit or wait) is the provider's: see `provider/fleet.rs`.

pub mod address;
pub(crate) mod crypto;
pub(crate) mod redis_store;
pub(crate) mod store;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokend_protocol::{Secret, clock};
use tokio::time::Instant;

use self::crypto::{FleetKey, Sealer};
use self::store::{
    Commit, Committed, Invalidated, Keys, SharedStore, StoreError, split_generation,
};
use crate::config::fleet::FleetConfig;
use crate::secret::Resolver;

/// After this many failures in a row, the breaker opens.
const BREAKER_THRESHOLD: u32 = 2;
/// How long the breaker stays open at first; it doubles while the fleet stays down.
const BREAKER_BASE: Duration = Duration::from_secs(1);
const BREAKER_CAP: Duration = Duration::from_secs(30);

/// Why a fleet operation did not happen.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum Down {
    /// The store failed or did not answer in time.
    #[error("the fleet store {0}")]
    Store(String),
    /// The breaker is open after failures: no attempt is made until it closes.
    #[error("the fleet store is down (since {since}s ago: {reason}); the next attempt in {retry}s")]
    Open {
        since: u64,
        reason: String,
        retry: u64,
    },
}

/// Why the fleet could not be set up (the daemon does not start: exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(
        "fleet.key: {0}; give 32 random bytes as 64 hex digits or base64, the same on every machine"
    )]
    Key(String),
    #[error("fleet.{key}: {reason}")]
    Secret { key: &'static str, reason: String },
    #[error("fleet.ca_file {path}: {reason}; point ca_file at the PEM file of the server's CA")]
    Ca { path: String, reason: String },
    #[error("fleet.url: {0}")]
    Store(String),
}

/// A shared access token, opened.
#[derive(Debug)]
pub(crate) struct SharedAccess {
    pub(crate) token: Secret,
    /// Remaining lifetime, from the store's TTL (never from comparing clocks); `None`: no expiry.
    pub(crate) remaining: Option<Duration>,
}

/// What a share holds, opened and checked.
#[derive(Debug, Default)]
pub(crate) struct View {
    pub(crate) access: Option<SharedAccess>,
    pub(crate) refresh: Option<Secret>,
    pub(crate) generation: u64,
}

/// The sealed content of an access entry.
#[derive(Serialize, Deserialize)]
struct AccessEntry {
    token: String,
    identity: String,
}

/// The sealed content of a refresh entry.
#[derive(Serialize, Deserialize)]
struct RefreshEntry {
    token: String,
    identity: String,
}

/// A provider's place in the fleet.
#[derive(Debug, Clone)]
pub(crate) struct Share {
    keys: Keys,
    /// What the token was obtained from (token URL, client id, grant, scopes, parameters): an
    /// entry of another identity is never served.
    identity: String,
    pub(crate) name: String,
}

impl Share {
    /// The same place, for the account `account` (what identifies it beyond the config, e.g.
    /// a service account's e-mail): an entry another account obtained is not served.
    pub(crate) fn for_account(&self, account: &str) -> Self {
        Self {
            identity: format!("{} account {account}", self.identity),
            ..self.clone()
        }
    }
}

#[derive(Debug, Default)]
struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
    down_since: Option<(Instant, SystemTime)>,
    reason: String,
    opened: u32,
}

/// Fleet-wide counters for `tok metrics`.
#[derive(Debug, Default)]
pub(crate) struct FleetCounters {
    pub(crate) errors: AtomicU64,
}

/// The fleet of this daemon.
#[derive(Debug)]
pub struct Fleet {
    store: Box<dyn SharedStore>,
    sealer: Sealer,
    /// This daemon's lock owner id (random).
    owner: String,
    shown: String,
    breaker: Mutex<Breaker>,
    up: AtomicBool,
    pub(crate) counters: FleetCounters,
}

impl Fleet {
    /// Sets up the fleet of `config`: resolves its key and credentials and makes the store
    /// (which connects on first use, so a Redis that is down at start is just "down").
    ///
    /// # Errors
    /// [`SetupError`] naming the key at fault.
    pub async fn new(config: &FleetConfig, secrets: &Resolver) -> Result<Self, SetupError> {
        let key = config
            .key
            .resolve(secrets)
            .await
            .map_err(|err| SetupError::Key(err.to_string()))?;
        let key = FleetKey::parse(key.expose()).map_err(SetupError::Key)?;
        let resolve = |name: &'static str, template: &Option<crate::secret::SecretTemplate>| {
            let template = template.clone();
            async move {
                match template {
                    Some(template) => template
                        .resolve(secrets)
                        .await
                        .map(|value| Some(value.expose().to_owned()))
                        .map_err(|err| SetupError::Secret {
                            key: name,
                            reason: err.to_string(),
                        }),
                    None => Ok(None),
                }
            }
        };
        let username = resolve("username", &config.username).await?;
        let password = resolve("password", &config.password).await?;
        let ca = match &config.ca_file {
            Some(path) => Some(std::fs::read(path).map_err(|err| SetupError::Ca {
                path: path.display().to_string(),
                reason: err.to_string(),
            })?),
            None => None,
        };
        let credentials = redis_store::Credentials {
            username,
            password,
            ca,
        };
        // rustls with the ring provider: the same process-wide choice as the HTTP client.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let store = redis_store::RedisStore::new(
            &config.url,
            &credentials,
            &config.namespace,
            config.timeout,
        )
        .map_err(SetupError::Store)?;
        Ok(Self::with_store(
            Box::new(store),
            &key,
            &config.namespace,
            config.url.shown(),
        ))
    }

    fn with_store(
        store: Box<dyn SharedStore>,
        key: &FleetKey,
        namespace: &str,
        shown: String,
    ) -> Self {
        Self {
            store,
            sealer: Sealer::new(key, namespace),
            owner: oauth2::CsrfToken::new_random().secret().clone(),
            shown,
            breaker: Mutex::new(Breaker::default()),
            up: AtomicBool::new(true),
            counters: FleetCounters::default(),
        }
    }

    /// The place of share `name` for a provider whose upstream identity is `identity`.
    pub(crate) fn share(&self, name: &str, identity: &str) -> Share {
        Share {
            keys: Keys::new(self.sealer.key_base(name)),
            identity: identity.to_owned(),
            name: name.to_owned(),
        }
    }

    /// Whether the last operation reached the store.
    pub(crate) fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// One line for `tok status`.
    #[must_use]
    pub fn describe(&self) -> String {
        let breaker = self.breaker.lock().unwrap_or_else(PoisonError::into_inner);
        match &breaker.down_since {
            None => format!("{}: connected", self.shown),
            Some((_, since)) => {
                let open = breaker
                    .open_until
                    .is_some_and(|until| until > Instant::now());
                format!(
                    "{}: down since {} ({}){}",
                    self.shown,
                    clock::unix_secs(*since),
                    breaker.reason,
                    if open { "; circuit breaker open" } else { "" }
                )
            }
        }
    }

    /// Runs one store operation through the breaker.
    async fn guarded<T>(
        &self,
        op: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, Down> {
        {
            let breaker = self.breaker.lock().unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            if let (Some(until), Some((since, _))) = (breaker.open_until, breaker.down_since)
                && until > now
            {
                return Err(Down::Open {
                    since: now.saturating_duration_since(since).as_secs(),
                    reason: breaker.reason.clone(),
                    retry: until.saturating_duration_since(now).as_secs().max(1),
                });
            }
        }
        match op.await {
            Ok(value) => {
                let mut breaker = self.breaker.lock().unwrap_or_else(PoisonError::into_inner);
                if breaker.down_since.take().is_some() {
                    tracing::info!(fleet = %self.shown, "the fleet store is reachable again");
                }
                breaker.failures = 0;
                breaker.opened = 0;
                breaker.open_until = None;
                self.up.store(true, Ordering::Relaxed);
                Ok(value)
            }
            Err(err) => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                let mut breaker = self.breaker.lock().unwrap_or_else(PoisonError::into_inner);
                let now = Instant::now();
                breaker.failures += 1;
                breaker.reason = err.to_string();
                if breaker.down_since.is_none() {
                    breaker.down_since = Some((now, SystemTime::now()));
                    tracing::warn!(
                        fleet = %self.shown,
                        "the fleet store failed ({err}); serving from memory and fetching \
                         locally until it is back"
                    );
                }
                if breaker.failures >= BREAKER_THRESHOLD {
                    let wait = BREAKER_BASE
                        .saturating_mul(1 << breaker.opened.min(5))
                        .min(BREAKER_CAP);
                    breaker.open_until = Some(now + wait);
                    breaker.opened += 1;
                }
                self.up.store(false, Ordering::Relaxed);
                Err(Down::Store(err.to_string()))
            }
        }
    }

    /// What the share holds; entries that do not open, or belong to another identity, are
    /// left out (and logged), never served.
    pub(crate) async fn read(&self, share: &Share) -> Result<View, Down> {
        let snapshot = self.guarded(self.store.read(&share.keys)).await?;
        let mut view = View {
            generation: snapshot.generation,
            ..View::default()
        };
        if let Some((value, remaining)) = snapshot.access {
            view.access = self
                .open_access(share, &value)
                .map(|token| SharedAccess { token, remaining });
        }
        if let Some(value) = snapshot.refresh {
            view.refresh = self.open_refresh(share, &value);
        }
        Ok(view)
    }

    fn context(share: &Share, what: &str, generation: u64) -> Vec<u8> {
        format!("{}:{what}:{generation}", share.keys.base()).into_bytes()
    }

    fn open_access(&self, share: &Share, value: &[u8]) -> Option<Secret> {
        let opened = split_generation(value).and_then(|(generation, rest)| {
            let colon = rest.iter().position(|&b| b == b':')?;
            let sealed = &rest[colon + 1..];
            let plain = self
                .sealer
                .open(&Self::context(share, "access", generation), sealed)?;
            serde_json::from_slice::<AccessEntry>(&plain).ok()
        });
        self.checked(
            share,
            "access",
            opened.map(|entry| (entry.token, entry.identity)),
        )
    }

    fn open_refresh(&self, share: &Share, value: &[u8]) -> Option<Secret> {
        let opened = split_generation(value).and_then(|(generation, sealed)| {
            let plain = self
                .sealer
                .open(&Self::context(share, "refresh", generation), sealed)?;
            serde_json::from_slice::<RefreshEntry>(&plain).ok()
        });
        self.checked(
            share,
            "refresh",
            opened.map(|entry| (entry.token, entry.identity)),
        )
    }

    /// The token of an opened entry, if it was obtained for this identity.
    fn checked(
        &self,
        share: &Share,
        what: &str,
        opened: Option<(String, String)>,
    ) -> Option<Secret> {
        match opened {
            Some((token, identity)) if identity == share.identity => Some(Secret::new(token)),
            Some(_) => {
                tracing::warn!(
                    share = %share.name,
                    "the fleet's {what} entry was obtained for another upstream identity (token \
                     URL, client, grant, scopes or parameters differ from this daemon's \
                     config); not used"
                );
                None
            }
            None => {
                tracing::warn!(
                    share = %share.name,
                    "the fleet's {what} entry cannot be opened (another fleet key, or it was \
                     altered); not used"
                );
                None
            }
        }
    }

    /// Takes the share's lock for `ttl`.
    pub(crate) async fn lock(&self, share: &Share, ttl: Duration) -> Result<bool, Down> {
        self.guarded(self.store.lock(&share.keys, &self.owner, ttl))
            .await
    }

    /// Gives the lock back (best effort: it expires anyway).
    pub(crate) async fn unlock(&self, share: &Share) {
        let _ = self
            .guarded(self.store.unlock(&share.keys, &self.owner))
            .await;
    }

    /// Commits a new access token (and refresh token) at the generation after `read`. With
    /// `locked`, only while this daemon holds the lock.
    pub(crate) async fn commit(
        &self,
        share: &Share,
        read: u64,
        locked: bool,
        access: Option<(&Secret, Option<Duration>)>,
        refresh: Option<&Secret>,
    ) -> Result<Committed, Down> {
        let generation = read + 1;
        let access = access.map(|(token, remaining)| {
            let entry = AccessEntry {
                token: token.expose().to_owned(),
                identity: share.identity.clone(),
            };
            let plain = zeroize::Zeroizing::new(serde_json::to_vec(&entry).unwrap_or_default());
            let mut value =
                format!("{generation}:{}:", self.sealer.token_hash(token.expose())).into_bytes();
            value.extend(
                self.sealer
                    .seal(&Self::context(share, "access", generation), &plain),
            );
            (value, remaining)
        });
        let refresh = refresh.map(|token| {
            let entry = RefreshEntry {
                token: token.expose().to_owned(),
                identity: share.identity.clone(),
            };
            let plain = zeroize::Zeroizing::new(serde_json::to_vec(&entry).unwrap_or_default());
            let mut value = format!("{generation}:").into_bytes();
            value.extend(
                self.sealer
                    .seal(&Self::context(share, "refresh", generation), &plain),
            );
            value
        });
        let commit = Commit {
            owner: locked.then_some(self.owner.as_str()),
            expected: read,
            access,
            refresh,
        };
        self.guarded(self.store.commit(&share.keys, commit)).await
    }

    /// Waits until the share may have changed, at most `max`.
    pub(crate) async fn changed(&self, share: &Share, max: Duration) {
        self.store.changed(&share.keys, max).await;
    }

    /// Drops the shared token if it is `token` (the one this daemon served).
    pub(crate) async fn invalidate(
        &self,
        share: &Share,
        token: &Secret,
        interval: Duration,
    ) -> Result<Invalidated, Down> {
        let hash = self.sealer.token_hash(token.expose());
        self.guarded(self.store.invalidate(&share.keys, &hash, interval))
            .await
    }
}
