//! Providers at run time: each configured provider with its cached token and last error.
//!
//! A static provider's secret is resolved (env, file or command) on first use and then cached:
//! resolving again on every request would run commands and read files on the hot path. Only one
//! resolution per provider runs at a time; callers that arrive meanwhile wait for it and share
//! its result.

use std::sync::Mutex;

use tokend_protocol::{ErrorCode, HeaderLine, ProviderState, ProviderStatus, Response, TokenGrant};

use crate::config::{ProviderConfig, ProviderKind};

/// One provider and its cache.
#[derive(Debug)]
pub(crate) struct Provider {
    config: ProviderConfig,
    cache: Mutex<Cache>,
    /// Serializes resolutions (single flight).
    resolving: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct Cache {
    grant: Option<TokenGrant>,
    last_error: Option<String>,
}

impl Provider {
    pub(crate) fn new(config: ProviderConfig) -> Self {
        Self {
            config,
            cache: Mutex::new(Cache::default()),
            resolving: tokio::sync::Mutex::new(()),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        // A panic while holding this lock cannot leave the cache half-written (every write is a
        // single assignment), so a poisoned lock is still safe to use.
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn cached(&self) -> Option<TokenGrant> {
        self.cache().grant.clone()
    }

    /// The provider's token, resolving it on first use. Errors are ready-made responses.
    pub(crate) async fn token(&self) -> Result<TokenGrant, Response> {
        if let Some(grant) = self.cached() {
            return Ok(grant);
        }
        let _turn = self.resolving.lock().await;
        if let Some(grant) = self.cached() {
            return Ok(grant);
        }
        match self.resolve().await {
            Ok(grant) => {
                let mut cache = self.cache();
                cache.grant = Some(grant.clone());
                cache.last_error = None;
                Ok(grant)
            }
            Err(message) => {
                tracing::warn!(provider = %self.config.name, "{message}");
                self.cache().last_error = Some(message.clone());
                Err(Response::error(ErrorCode::Config, message))
            }
        }
    }

    async fn resolve(&self) -> Result<TokenGrant, String> {
        let token = match &self.config.kind {
            ProviderKind::Static { secret } => secret
                .resolve()
                .await
                .map_err(|err| format!("provider `{}`: secret: {err}", self.config.name))?,
        };
        let presentation = &self.config.presentation;
        let header = HeaderLine {
            name: presentation.header.clone(),
            value: presentation.header_value(&token),
        };
        Ok(TokenGrant {
            provider: self.config.name.clone(),
            token,
            header: Some(header),
            // Static secrets do not expire.
            expires_at_unix: None,
        })
    }

    pub(crate) fn status(&self) -> ProviderStatus {
        let cache = self.cache();
        let state = if cache.grant.is_some() {
            ProviderState::Fresh
        } else if cache.last_error.is_some() {
            ProviderState::Error
        } else {
            ProviderState::Idle
        };
        ProviderStatus {
            name: self.config.name.clone(),
            kind: self.config.kind.name().to_owned(),
            state,
            expires_at_unix: cache.grant.as_ref().and_then(|g| g.expires_at_unix),
            last_error: cache.last_error.clone(),
        }
    }
}
