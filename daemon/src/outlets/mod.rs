//! Outlets: the ways a token leaves tokend besides the socket, for callers that cannot link the
//! client. [`proxy`] is the local auth proxy (`proxy = { … }`), [`file`] the token files
//! (`file = { … }`).
//!
//! [`Outlets`] holds the running ones and reconciles them with each config: at start and on
//! every reload, [`Outlets::apply`] keeps what did not change (a proxy keeps its listening
//! socket and its port, a token file its writer), starts what is new, and stops what is gone
//! (removing a token file whose provider or file left the config). A proxy is keyed by where it
//! listens, so editing its upstream or moving it to another provider keeps the socket.

pub(crate) mod file;
pub(crate) mod proxy;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokend_protocol::{ErrorCode, ProxyStatus, Response, Secret, TokenFileStatus};
use tokio::sync::watch;

use self::file::TokenFile;
use self::proxy::Proxy;
use crate::config::{ProxyConfig, ProxyListen, TokenFileConfig};
use crate::kinds::Services;
use crate::server::state::Providers;
use crate::store::Store;

/// The running auth proxies and token files.
#[derive(Debug)]
pub(crate) struct Outlets {
    running: Mutex<Running>,
    store: Option<Arc<Store>>,
    services: Arc<Services>,
}

#[derive(Debug, Default)]
struct Running {
    proxies: Vec<Proxy>,
    files: Vec<TokenFile>,
    /// Capabilities of a daemon without a store (kept for its lifetime only).
    capabilities: BTreeMap<String, Secret>,
}

impl Outlets {
    pub(crate) fn new(store: Option<Arc<Store>>, services: Arc<Services>) -> Self {
        Self {
            running: Mutex::new(Running::default()),
            store,
            services,
        }
    }

    fn running(&self) -> std::sync::MutexGuard<'_, Running> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes the running outlets those of `proxies` and `files`, for the providers in
    /// `providers` (the config that listed them was validated with those providers). Must run
    /// inside the tokio runtime.
    pub(crate) fn apply(
        &self,
        proxies: &[ProxyConfig],
        files: &[TokenFileConfig],
        providers: &watch::Sender<Arc<Providers>>,
    ) {
        let current = Arc::clone(&providers.borrow());
        let mut running = self.running();

        // Token files: kept when the config and the provider instance are the same.
        let old = std::mem::take(&mut running.files);
        for file in old {
            let same_provider = current
                .get(&file.config.provider)
                .is_some_and(|now| Arc::ptr_eq(now, &file.provider));
            if same_provider && files.contains(&file.config) {
                running.files.push(file);
            } else {
                let path_kept = files.iter().any(|f| f.path == file.config.path);
                file.stop(!path_kept);
            }
        }
        for config in files {
            if running.files.iter().any(|f| &f.config == config) {
                continue;
            }
            let Some(provider) = current.get(&config.provider) else {
                continue;
            };
            running
                .files
                .push(TokenFile::start(config.clone(), Arc::clone(provider)));
        }
        running
            .files
            .sort_by(|a, b| a.config.provider.cmp(&b.config.provider));

        // Proxies, by where they listen.
        let old = std::mem::take(&mut running.proxies);
        let mut kept = Vec::new();
        for proxy in old {
            match proxies.iter().find(|p| p.listen == *proxy.listen()) {
                Some(_) => kept.push(proxy),
                None => proxy.stop(),
            }
        }
        for config in proxies {
            let capability = match config.listen {
                ProxyListen::Tcp(_) => Some(self.capability(&mut running, &config.provider)),
                ProxyListen::Unix(_) => None,
            };
            if let Some(index) = kept.iter().position(|p| *p.listen() == config.listen) {
                let proxy = kept.swap_remove(index);
                proxy.update(config.clone(), capability);
                running.proxies.push(proxy);
            } else {
                running.proxies.push(Proxy::start(
                    config.clone(),
                    capability,
                    providers.subscribe(),
                    Arc::clone(&self.services),
                ));
            }
        }
        running.proxies.sort_by_key(Proxy::provider);
    }

    /// The capability of `provider`'s TCP proxy: kept in the store, else for this daemon's
    /// lifetime.
    fn capability(&self, running: &mut Running, provider: &str) -> Secret {
        if let Some(store) = &self.store {
            match store.proxy_capability(provider, proxy::capability::generate) {
                Ok(capability) => return capability,
                Err(err) => tracing::warn!(
                    provider,
                    "cannot keep the proxy's capability in the store ({err}); it changes when \
                     tokend restarts"
                ),
            }
        }
        running
            .capabilities
            .entry(provider.to_owned())
            .or_insert_with(proxy::capability::generate)
            .clone()
    }

    /// Stops every proxy and token-file writer (token files stay: see [`file`]).
    pub(crate) fn stop(&self) {
        let mut running = self.running();
        for proxy in running.proxies.drain(..) {
            proxy.stop();
        }
        for file in running.files.drain(..) {
            file.stop(false);
        }
    }

    pub(crate) fn proxy_statuses(&self) -> Vec<ProxyStatus> {
        self.running().proxies.iter().map(Proxy::status).collect()
    }

    pub(crate) fn file_statuses(&self) -> Vec<TokenFileStatus> {
        self.running().files.iter().map(TokenFile::status).collect()
    }

    /// Appends the proxies' counters to a Prometheus text exposition.
    pub(crate) fn render_metrics(&self, text: &mut String) {
        let running = self.running();
        if !running.proxies.is_empty() {
            proxy::render_metrics(&running.proxies, text);
        }
    }

    /// `tok proxy-url NAME`: the base URL of the provider's proxy.
    pub(crate) fn proxy_url(&self, provider: &str) -> Result<Secret, Response> {
        let running = self.running();
        let proxy = running
            .proxies
            .iter()
            .find(|p| p.provider() == provider)
            .ok_or_else(|| {
                Response::error(
                    ErrorCode::Config,
                    format!(
                        "provider `{provider}` has no auth proxy; add proxy = {{ listen = \
                         \"127.0.0.1:8701\", upstream = \"https://…\" }} to its table and run \
                         `tok reload`"
                    ),
                )
            })?;
        proxy.url()
    }
}
