//! Token files (`file = { path, format }`): for programs that read their token from a file.
//!
//! One writer task per file. It is a standing user of its provider (the provider refreshes
//! ahead of expiry as if a caller used every token) and rewrites the file each time the token
//! changes, atomically (a 0600 temporary file in the same directory, fsync, rename, fsync of
//! the directory; a symbolic link at the path is replaced, never followed). The directory is
//! created 0700 when missing and must be private. When the provider has no valid token any more
//! (`tok logout`, a rejected credential, an expiry without a replacement) the file is removed,
//! so a file never holds an expired token while the daemon runs; removing the provider from
//! the config removes its file. A daemon that stops leaves the file (its token stays valid
//! until it expires; the next start rewrites it). A path that cannot be written is reported in
//! `tok status`; the writer retries.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tokend_protocol::{Response, TokenFileStatus, TokenGrant, clock};
use zeroize::Zeroizing;

use crate::config::{TokenFileConfig, TokenFileFormat};
use crate::provider::{CachedGrant, Provider};

/// First wait before retrying after a failure; it doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(60);

/// What `tok status` shows of a token file.
#[derive(Debug, Default)]
pub(crate) struct FileState {
    written_at: Option<SystemTime>,
    error: Option<String>,
}

/// A running token file.
#[derive(Debug)]
pub(crate) struct TokenFile {
    pub(crate) config: TokenFileConfig,
    /// The provider instance it follows (a reload that replaces the provider restarts it).
    pub(crate) provider: Arc<Provider>,
    state: Arc<Mutex<FileState>>,
    task: tokio::task::AbortHandle,
}

impl TokenFile {
    /// Starts the writer of `config` for `provider`.
    pub(crate) fn start(config: TokenFileConfig, provider: Arc<Provider>) -> Self {
        let state = Arc::new(Mutex::new(FileState::default()));
        let task = tokio::spawn(write_loop(
            config.clone(),
            Arc::clone(&provider),
            Arc::clone(&state),
        ))
        .abort_handle();
        Self {
            config,
            provider,
            state,
            task,
        }
    }

    /// Stops the writer; with `remove`, removes the file too (the provider or its file is gone
    /// from the config).
    pub(crate) fn stop(self, remove: bool) {
        self.task.abort();
        if remove {
            let path = self.config.path;
            tokio::task::spawn_blocking(move || remove_file(&path));
        }
    }

    pub(crate) fn status(&self) -> TokenFileStatus {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        TokenFileStatus {
            provider: self.config.provider.clone(),
            path: self.config.path.display().to_string(),
            format: self.config.format.as_str().to_owned(),
            written_at_unix: state.written_at.map(clock::unix_secs),
            error: state.error.clone(),
        }
    }
}

/// Writes the provider's token each time it changes, until aborted.
async fn write_loop(
    config: TokenFileConfig,
    provider: Arc<Provider>,
    state: Arc<Mutex<FileState>>,
) {
    let _standing = provider.stand();
    let mut changes = provider.changes();
    let mut written: Option<Arc<CachedGrant>> = None;
    let mut retry = FIRST_RETRY;
    let set = |written_at: Option<SystemTime>, error: Option<String>| {
        let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
        if written_at.is_some() || error.is_none() {
            state.written_at = written_at;
        }
        state.error = error;
    };
    loop {
        changes.borrow_and_update();
        let wait_for_retry = match provider.token(Duration::ZERO).await {
            Ok(served) => {
                let cached = served.cached;
                if written.as_ref().is_some_and(|w| Arc::ptr_eq(w, &cached)) {
                    false
                } else {
                    let bytes = match contents(&config, cached.grant()) {
                        Ok(bytes) => bytes,
                        Err(problem) => {
                            set(None, Some(problem));
                            wait(&mut changes, None, None).await;
                            continue;
                        }
                    };
                    let path = config.path.clone();
                    let outcome = tokio::task::spawn_blocking(move || write_file(&path, &bytes))
                        .await
                        .unwrap_or_else(|err| Err(format!("the write was interrupted: {err}")));
                    match outcome {
                        Ok(()) => {
                            tracing::debug!(provider = %config.provider, "token file written");
                            set(Some(SystemTime::now()), None);
                            written = Some(Arc::clone(&cached));
                            retry = FIRST_RETRY;
                            false
                        }
                        Err(problem) => {
                            tracing::warn!(provider = %config.provider, "{problem}");
                            set(None, Some(problem));
                            written = None;
                            true
                        }
                    }
                }
            }
            Err(response) => {
                let message = match response {
                    Response::Error(reply) => reply.message,
                    other => format!("unexpected answer {other:?}"),
                };
                // Recorded before the file goes: whoever sees the file gone also sees why.
                set(None, Some(format!("no token to write: {message}")));
                if written.take().is_some() {
                    let path = config.path.clone();
                    let _ = tokio::task::spawn_blocking(move || remove_file(&path)).await;
                    tracing::info!(
                        provider = %config.provider,
                        "token file removed: the provider has no valid token"
                    );
                }
                true
            }
        };
        let expires = written
            .as_ref()
            .and_then(|cached| cached.grant().expires_at_unix)
            .map(expiry_instant);
        let retry_in = wait_for_retry.then_some(retry);
        wait(&mut changes, expires, retry_in).await;
        if wait_for_retry {
            retry = (retry * 2).min(MAX_RETRY);
        }
    }
}

/// Waits for the token to change, for the written token to expire, or for `retry` to pass.
async fn wait(
    changes: &mut tokio::sync::watch::Receiver<u64>,
    expires: Option<tokio::time::Instant>,
    retry: Option<Duration>,
) {
    let expiry = async {
        match expires {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    let retry = async {
        match retry {
            Some(after) => tokio::time::sleep(after).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        changed = changes.changed() => {
            if changed.is_err() {
                // The provider is gone (a reload restarts this writer): nothing more to follow.
                std::future::pending::<()>().await;
            }
        }
        () = expiry => {}
        () = retry => {}
    }
}

fn expiry_instant(at_unix: u64) -> tokio::time::Instant {
    let left = at_unix.saturating_sub(clock::unix_secs(SystemTime::now()));
    tokio::time::Instant::now() + Duration::from_secs(left)
}

/// The file's bytes for `grant` (a secret: wiped when dropped).
fn contents(config: &TokenFileConfig, grant: &TokenGrant) -> Result<Zeroizing<Vec<u8>>, String> {
    let token = grant.token.expose();
    let header = grant
        .header
        .as_ref()
        .map(|h| format!("{}: {}", h.name, h.value.expose()));
    let text = match config.format {
        TokenFileFormat::Raw => token.to_owned(),
        TokenFileFormat::Header => match header {
            Some(line) => line + "\n",
            None => String::new(),
        },
        // The shape of `tok get --json`.
        TokenFileFormat::Json => serde_json::json!({
            "provider": grant.provider,
            "token": token,
            "header": header,
            "expires_at": grant.expires_at_unix.map(clock::rfc3339),
        })
        .to_string(),
        TokenFileFormat::Env => {
            if token.contains('\'') {
                return Err(format!(
                    "the token of `{}` contains a single quote, which the env format cannot \
                     hold; use format = \"raw\" or \"json\"",
                    config.provider
                ));
            }
            format!(
                "{}='{token}'\n",
                tokend_protocol::token_var(&config.provider)
            )
        }
    };
    Ok(Zeroizing::new(text.into_bytes()))
}

/// Replaces the file, creating its private directory if missing.
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let shown = path.display();
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        tokend_protocol::private::ensure_dir(dir)
            .map_err(|err| format!("cannot write the token file {shown}: {err}"))?;
    }
    tokend_protocol::private::write_atomic(path, bytes)
        .map_err(|err| format!("cannot write the token file {shown}: {err}"))
}

fn remove_file(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => tracing::warn!("cannot remove the token file {}: {err}", path.display()),
    }
}
