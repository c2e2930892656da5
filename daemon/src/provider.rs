//! Providers at run time: each configured provider with its cached token and last error.
//!
//! A static provider's secret is resolved (env, file or command) on first use and then cached:
//! resolving again on every request would run commands and read files on the hot path. Only one
//! resolution per provider runs at a time; callers that arrive meanwhile wait for it and share
//! its result.
//!
//! The cache keeps each token's response already encoded as a frame, so a cache hit is a lookup
//! and one write: no cloning, encoding or wiping per request.

use std::sync::{Arc, Mutex};

use tokend_protocol::frame::FrameBuf;
use tokend_protocol::{
    ErrorCode, HeaderLine, MAX_FRAME_LEN, ProviderState, ProviderStatus, Response, TokenGrant,
    codec,
};

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
    current: Option<Arc<CachedGrant>>,
    last_error: Option<String>,
}

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

    fn cached(&self) -> Option<Arc<CachedGrant>> {
        self.cache().current.clone()
    }

    /// The provider's token, resolving it on first use. Errors are ready-made responses.
    pub(crate) async fn token(&self) -> Result<Arc<CachedGrant>, Response> {
        if let Some(grant) = self.cached() {
            return Ok(grant);
        }
        let _turn = self.resolving.lock().await;
        if let Some(grant) = self.cached() {
            return Ok(grant);
        }
        match self.resolve().await.and_then(CachedGrant::new) {
            Ok(cached) => {
                let cached = Arc::new(cached);
                let mut cache = self.cache();
                cache.current = Some(Arc::clone(&cached));
                cache.last_error = None;
                Ok(cached)
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
        let state = if cache.current.is_some() {
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
            expires_at_unix: cache
                .current
                .as_ref()
                .and_then(|cached| cached.grant.expires_at_unix),
            last_error: cache.last_error.clone(),
        }
    }
}
