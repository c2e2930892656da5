//! [`State`]: what every connection shares: providers, identity, and the shutdown trigger.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use tokend_protocol::{DaemonStatus, PACKAGE_VERSION, PROTOCOL_VERSION, PingInfo};
use tokio::sync::watch;

use crate::config::{Config, ConfigSource};
use crate::provider::Provider;

/// Shared daemon state.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) providers: BTreeMap<String, Arc<Provider>>,
    endpoint: String,
    config_label: String,
    started: Instant,
    shutdown: watch::Sender<bool>,
}

impl State {
    pub(crate) fn new(config: Config, endpoint: String, shutdown: watch::Sender<bool>) -> Self {
        let config_label = match &config.source {
            ConfigSource::File(path) => path.display().to_string(),
            ConfigSource::Missing(path) => format!("{} (not found: no providers)", path.display()),
        };
        let providers = config
            .providers
            .into_iter()
            .map(|(name, provider)| (name, Arc::new(Provider::new(provider))))
            .collect();
        Self {
            providers,
            endpoint,
            config_label,
            started: Instant::now(),
            shutdown,
        }
    }

    pub(crate) fn status(&self) -> DaemonStatus {
        DaemonStatus {
            endpoint: self.endpoint.clone(),
            config: self.config_label.clone(),
            providers: self.providers.values().map(|p| p.status()).collect(),
        }
    }

    pub(crate) fn ping(&self) -> PingInfo {
        PingInfo {
            daemon_version: PACKAGE_VERSION.to_owned(),
            protocol: PROTOCOL_VERSION,
            pid: std::process::id(),
            uptime_secs: self.started.elapsed().as_secs(),
        }
    }

    /// Asks the server to stop: no new connections, in-flight requests finish.
    pub(crate) fn request_shutdown(&self) {
        self.shutdown.send_replace(true);
    }
}
