//! [`State`]: what every connection shares: the providers (swapped whole on reload), the
//! outlets that follow them (auth proxies, token files), identity, and the shutdown trigger.
//! The providers in force are also where `${provider:NAME}` and a rotation's `auth` get
//! another provider's token ([`ProviderTokens`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use tokend_protocol::{
    CredentialRoute, DaemonStatus, ErrorCode, PACKAGE_VERSION, PROTOCOL_VERSION, PingInfo,
    ReloadSummary,
};
use tokio::sync::watch;

use crate::config::{self, Config, ConfigSource, FleetConfig, StoreConfig};
use crate::fleet::Fleet;
use crate::kinds::Services;
use crate::outlets::Outlets;
use crate::provider::Provider;
use crate::secret::resolve::{TokenFailure, TokenFuture, TokenSource};
use crate::store::Store;

/// The providers in force, by name.
pub(crate) type Providers = BTreeMap<String, Arc<Provider>>;

/// Shared daemon state.
#[derive(Debug)]
pub(crate) struct State {
    /// Replaced whole by a reload; readers take a cheap snapshot, the auth proxies follow it.
    providers: watch::Sender<Arc<Providers>>,
    /// The auth proxies and token files of the config in force.
    outlets: Outlets,
    /// Held for the whole of a reload, so two reloads never interleave.
    reloading: std::sync::Mutex<()>,
    /// The credential-helper routes of the config in force (replaced with the providers).
    routes: RwLock<Arc<[CredentialRoute]>>,
    config: RwLock<ConfigSource>,
    endpoint: String,
    started: Instant,
    shutdown: watch::Sender<bool>,
    /// The audit trail (on unless `tokend --no-audit`).
    pub(crate) audit: super::audit::Audit,
    /// The durable store (none: tokens live in memory only, as in in-process tests).
    store: Option<Arc<Store>>,
    /// The `[store]` table the store was opened with (a reload cannot change the key).
    store_config: StoreConfig,
    /// The secret resolver and the HTTP client every provider's fetches use.
    services: Arc<Services>,
    /// The `[fleet]` table the fleet was set up with (a reload cannot change it).
    fleet_config: Option<FleetConfig>,
}

fn build(
    providers: BTreeMap<String, config::ProviderConfig>,
    store: Option<&Arc<Store>>,
    services: &Arc<Services>,
) -> Providers {
    providers
        .into_iter()
        .map(|(name, provider)| {
            let provider = Provider::new(provider, store.cloned(), services);
            (name, Arc::new(provider))
        })
        .collect()
}

impl State {
    pub(crate) fn new(
        config: Config,
        endpoint: String,
        shutdown: watch::Sender<bool>,
        audit: bool,
        store: Option<Arc<Store>>,
        fleet: Option<Arc<Fleet>>,
    ) -> Self {
        let store_config = config.store.clone();
        let fleet_config = config.fleet.clone();
        let mut services = Services::new(store.clone());
        services.fleet = fleet;
        let services = Arc::new(services);
        let providers = Arc::new(build(config.providers, store.as_ref(), &services));
        let outlets = Outlets::new(store.clone(), Arc::clone(&services));
        let providers = watch::Sender::new(providers);
        services
            .secrets
            .set_token_source(Arc::new(ProviderTokens(providers.subscribe())));
        for provider in providers.borrow().values() {
            provider.start_rotation_schedule();
        }
        outlets.apply(&config.proxies, &config.token_files, &providers);
        Self {
            providers,
            outlets,
            reloading: std::sync::Mutex::new(()),
            routes: RwLock::new(config.routes.into()),
            config: RwLock::new(config.source),
            endpoint,
            started: Instant::now(),
            shutdown,
            audit: super::audit::Audit::new(audit),
            store,
            store_config,
            fleet_config,
            services,
        }
    }

    /// The durable store, if the daemon keeps one.
    pub(crate) fn store(&self) -> Option<&Arc<Store>> {
        self.store.as_ref()
    }

    /// The providers in force now (a snapshot: a concurrent reload does not change it).
    pub(crate) fn providers(&self) -> Arc<Providers> {
        Arc::clone(&self.providers.borrow())
    }

    /// The auth proxies and token files.
    pub(crate) fn outlets(&self) -> &Outlets {
        &self.outlets
    }

    /// The credential-helper routes in force.
    pub(crate) fn credential_routes(&self) -> Vec<CredentialRoute> {
        self.routes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .to_vec()
    }

    fn config_label(&self) -> String {
        match &*self.config.read().unwrap_or_else(PoisonError::into_inner) {
            ConfigSource::File(path) => path.display().to_string(),
            ConfigSource::Missing(path) => format!("{} (not found: no providers)", path.display()),
        }
    }

    fn config_path(&self) -> PathBuf {
        self.config
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .path()
            .to_path_buf()
    }

    pub(crate) fn status(&self) -> DaemonStatus {
        DaemonStatus {
            endpoint: self.endpoint.clone(),
            config: self.config_label(),
            providers: self.providers().values().map(|p| p.status()).collect(),
            store: self
                .store
                .as_ref()
                .map(|store| store.protection())
                .unwrap_or_default(),
            fleet: self
                .services
                .fleet
                .as_ref()
                .map(|fleet| fleet.describe())
                .unwrap_or_default(),
            proxies: self.outlets.proxy_statuses(),
            token_files: self.outlets.file_statuses(),
        }
    }

    /// Every provider's counters in the Prometheus text format.
    pub(crate) fn metrics(&self) -> String {
        let providers = self.providers();
        let mut text = crate::metrics::render(
            providers
                .iter()
                .map(|(name, p)| (name.as_str(), p.counters())),
            self.services.fleet.as_deref(),
        );
        self.outlets.render_metrics(&mut text);
        crate::metrics::render_runtime(&mut text);
        text
    }

    pub(crate) fn ping(&self) -> PingInfo {
        PingInfo {
            daemon_version: PACKAGE_VERSION.to_owned(),
            protocol: PROTOCOL_VERSION,
            pid: std::process::id(),
            uptime_secs: self.started.elapsed().as_secs(),
        }
    }

    /// Re-reads the config file. The whole new config is validated first; on any error the old
    /// one stays in force. Providers whose configuration did not change keep their cached tokens
    /// (no upstream request); changed ones start afresh; removed ones stop.
    pub(crate) fn reload(&self) -> Result<ReloadSummary, String> {
        let _reloading = self
            .reloading
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let path = self.config_path();
        let (config, warnings) = config::load(&path).map_err(|err| err.to_string())?;
        for warning in &warnings {
            tracing::warn!("{}:{}: {}", path.display(), warning.line, warning.message);
        }
        if config.fleet != self.fleet_config {
            tracing::warn!(
                "the [fleet] table changed; the fleet keeps its settings until tokend restarts"
            );
        }
        if config.store != self.store_config {
            tracing::warn!(
                "the [store] table changed; the store keeps its key until tokend restarts"
            );
        }
        let old = self.providers();
        let mut summary = ReloadSummary::default();
        let mut next = Providers::new();
        for (name, provider) in config.providers {
            match old.get(&name) {
                Some(current) if current.config() == &provider => {
                    summary.kept.push(name.clone());
                    next.insert(name, Arc::clone(current));
                }
                Some(current) => {
                    summary.changed.push(name.clone());
                    next.insert(name, self.started(provider, Some(current)));
                }
                None => {
                    summary.added.push(name.clone());
                    next.insert(name, self.started(provider, None));
                }
            }
        }
        for (name, provider) in old.iter() {
            let replaced = next.get(name).is_none_or(|now| !Arc::ptr_eq(now, provider));
            if replaced {
                provider.retire();
            }
            if !next.contains_key(name) {
                summary.removed.push(name.clone());
            }
        }
        let routes: Arc<[CredentialRoute]> = config.routes.into();
        self.providers.send_modify(|providers| {
            *providers = Arc::new(next);
            // Swapped while the providers are still write-locked, so no reader sees a route to
            // a provider of the other config.
            *self.routes.write().unwrap_or_else(PoisonError::into_inner) = routes;
        });
        self.outlets
            .apply(&config.proxies, &config.token_files, &self.providers);
        *self.config.write().unwrap_or_else(PoisonError::into_inner) = config.source;
        tracing::info!(
            added = summary.added.len(),
            changed = summary.changed.len(),
            removed = summary.removed.len(),
            kept = summary.kept.len(),
            "reloaded {}",
            path.display()
        );
        // The new config's parse is over: its freed memory goes back (see `heap`).
        crate::heap::release_free_memory();
        Ok(summary)
    }

    /// A new provider instance, with its rotation schedule running; `previous` is the one it
    /// replaces (a reload changed its config), whose fetches and rotations it takes turns with.
    fn started(
        &self,
        config: config::ProviderConfig,
        previous: Option<&Provider>,
    ) -> Arc<Provider> {
        let mut provider = Provider::new(config, self.store.clone(), &self.services);
        if let Some(previous) = previous {
            provider = provider.succeeding(previous);
        }
        let provider = Arc::new(provider);
        provider.start_rotation_schedule();
        provider
    }

    /// Asks the server to stop: no new connections, in-flight requests finish.
    pub(crate) fn request_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Stops the auth proxies and token-file writers (the daemon is stopping).
    pub(crate) fn stop_outlets(&self) {
        self.outlets.stop();
    }

    /// Waits, at most `limit`, for the key rotations in flight (the daemon is stopping): the
    /// API may have issued a key that only they can store. Whether they all finished.
    pub(crate) async fn finish_rotations(&self, limit: Duration) -> bool {
        let rotations = &self.services.rotations;
        rotations.close();
        if rotations.is_empty() {
            return true;
        }
        tracing::info!(
            "waiting for {} key rotation(s) in flight to store their new key",
            rotations.len()
        );
        tokio::time::timeout(limit, rotations.wait()).await.is_ok()
    }
}

/// The providers in force as the source of `${provider:NAME}`: each request goes through that
/// provider's cache (and single flight), as a caller's would.
struct ProviderTokens(watch::Receiver<Arc<Providers>>);

impl TokenSource for ProviderTokens {
    fn token<'a>(&'a self, name: &'a str, min_ttl: Duration) -> TokenFuture<'a> {
        Box::pin(async move {
            let provider = self
                .0
                .borrow()
                .get(name)
                .cloned()
                .ok_or_else(|| TokenFailure {
                    code: ErrorCode::Config,
                    message: format!("provider `{name}` is not configured"),
                })?;
            provider.token_for_reference(min_ttl).await
        })
    }
}
