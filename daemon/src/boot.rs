//! Start-up, in this order: take a socket passed by the service manager (while the process has
//! one thread: it clears `LISTEN_*` from the environment), forbid core dumps (before any secret
//! is read), raise the descriptor limit, load the config, claim the endpoint (bind it, or adopt
//! the passed socket), open the store (one daemon per data directory), report readiness, serve.
//!
//! [`run`] returns a [`BootError`] for anything that stops the daemon before it serves; its
//! [`exit_code`](BootError::exit_code) is what the `tokend` binary exits with.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokend_protocol::Endpoint;

use crate::config::{self, ConfigError};
use crate::server::listener::{self, BindError, BoundListener};
use crate::server::{self, Hangups};
use crate::store::{self, Store, StoreError};

/// How long a stopping daemon waits for blocking work (file reads) still running.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// What the `tokend` command line asks for.
#[derive(Debug, Default)]
pub struct Options {
    /// `--config`: the config file (else `$TOKEND_CONFIG`, else the default path).
    pub config: Option<PathBuf>,
    /// `--socket`: the endpoint (else `$TOKEND_SOCKET`, else the default).
    pub socket: Option<PathBuf>,
    /// `--notify-ready`: print `READY` on stdout once connections are accepted.
    pub notify_ready: bool,
    /// The audit trail (`tokend --no-audit` turns it off; see `server::audit`).
    pub audit: bool,
    /// `--max-connections`: the connection cap (default [`server::MAX_CONNECTIONS`]).
    pub max_connections: Option<usize>,
}

/// Why the daemon stopped before serving.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// Core dumps could not be forbidden.
    #[error("{0}; refusing to hold secrets in a process that may dump core")]
    Harden(String),
    /// The config file could not be found, read or validated.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// No data directory for the store.
    #[error(
        "cannot locate the data directory for the store: no home directory found; set {}",
        store::DATA_ENV
    )]
    NoDataDir,
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    /// The endpoint could not be claimed, or the passed socket adopted.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Opening the store did not finish.
    #[error("opening the store failed: {0}")]
    StoreTask(String),
    /// The fleet could not be set up (its key, credentials or CA).
    #[error(transparent)]
    Fleet(#[from] crate::fleet::SetupError),
}

impl BootError {
    /// The exit code (documented in the README): 1 runtime error (an unsafe socket or data
    /// directory, an unusable key file); 2 usage or config error (also: the chosen OS keystore
    /// cannot be reached); 3 another tokend already serves this endpoint.
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_)
            | Self::NoDataDir
            | Self::Fleet(_)
            | Self::Store(StoreError::Keyring { .. }) => 2,
            Self::Bind(BindError::AlreadyRunning { .. }) => 3,
            Self::Harden(_)
            | Self::Runtime(_)
            | Self::Bind(_)
            | Self::Store(_)
            | Self::StoreTask(_) => 1,
        }
    }
}

/// Starts the daemon and serves until a stop signal or `tok stop`.
///
/// # Errors
/// [`BootError`] when it stops before serving.
pub fn run(options: Options) -> Result<(), BootError> {
    #[cfg(unix)]
    let activation = listener::take_activation();
    crate::process_limits::forbid_core_dumps().map_err(BootError::Harden)?;
    // Enough descriptors for the connection cap, or a cap that fits the descriptors.
    let wanted = options.max_connections.unwrap_or(server::MAX_CONNECTIONS);
    let cap = crate::process_limits::fit_connection_cap(wanted);
    if cap < wanted {
        let advice = "raise the open-file hard limit (`ulimit -Hn`, or `LimitNOFILE=` in the \
                      systemd unit) to serve more";
        if options.max_connections.is_some() {
            tracing::warn!(
                "--max-connections {wanted}: serving at most {cap} connections; {advice}"
            );
        } else {
            tracing::info!("serving at most {cap} connections (the open-file limit); {advice}");
        }
    }

    let env = |key: &str| std::env::var_os(key);
    let config_path = config::resolve_path(options.config.as_deref(), &env)?;
    let (config, warnings) = config::load(&config_path)?;
    for warning in &warnings {
        tracing::warn!(
            "{}:{}: {}",
            config_path.display(),
            warning.line,
            warning.message
        );
    }
    #[cfg(unix)]
    let activation = activation?;
    let data_dir = store::data_dir(&env).ok_or(BootError::NoDataDir)?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(BootError::Runtime)?;
    let served = runtime.block_on(async {
        #[cfg(unix)]
        let bound = match activation {
            Some(activation) => listener::adopt(activation, options.socket.as_deref()).await?,
            None => listener::bind(&requested_endpoint(options.socket))?,
        };
        #[cfg(not(unix))]
        let bound = listener::bind(&requested_endpoint(options.socket))?;
        let store = open_store(&bound, data_dir, &config.store.key).await?;
        let fleet = match &config.fleet {
            Some(fleet) => {
                let secrets = crate::secret::Resolver::new(Some(Arc::clone(&store)));
                Some(Arc::new(crate::fleet::Fleet::new(fleet, &secrets).await?))
            }
            None => None,
        };
        tracing::info!(
            pid = std::process::id(),
            providers = config.providers.len(),
            activated = bound.is_activated(),
            "tokend {} listening on {}{}",
            tokend_protocol::PACKAGE_VERSION,
            bound.endpoint(),
            if bound.is_activated() {
                " (socket from the service manager)"
            } else {
                ""
            }
        );
        // Before readiness is reported: from here on SIGHUP reloads and SIGTERM/SIGINT stop
        // gracefully, instead of terminating the process.
        let hangups = Hangups::new();
        let stop = stop_signal();
        if options.notify_ready {
            let mut stdout = std::io::stdout().lock();
            if writeln!(stdout, "{}", tokend_protocol::endpoint::READY_LINE)
                .and_then(|()| stdout.flush())
                .is_err()
            {
                tracing::warn!("could not signal readiness on stdout");
            }
        }
        let options = server::Options {
            hangups: Some(hangups),
            audit: options.audit,
            store: Some(store),
            max_connections: Some(cap),
            fleet,
        };
        server::run_with(config, bound, stop, options).await;
        Ok(())
    });
    // A blocking task still running (a secret file on a hung mount, say) must not keep a
    // stopped daemon alive: it is abandoned after a grace period.
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    served
}

/// Opens the store once the endpoint is ours (one daemon per endpoint), on a blocking thread:
/// the OS keystore client runs an async runtime of its own. A socket-activated daemon may be
/// taking over from one that is still stopping (it releases the store's lock last): it waits
/// for it within the same bound as for the endpoint's lock.
async fn open_store(
    bound: &BoundListener,
    data_dir: PathBuf,
    key: &store::KeySource,
) -> Result<Arc<Store>, BootError> {
    let patience = if bound.is_activated() {
        listener::ACTIVATION_LOCK_WAIT
    } else {
        Duration::ZERO
    };
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let (dir, key) = (data_dir.clone(), key.clone());
        let opened = tokio::task::spawn_blocking(move || Store::open(&dir, &key))
            .await
            .map_err(|err| BootError::StoreTask(err.to_string()))?;
        match opened {
            Err(StoreError::InUse { .. }) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            opened => return Ok(Arc::new(opened?)),
        }
    }
}

/// `--socket`, else the default endpoint.
fn requested_endpoint(socket: Option<PathBuf>) -> Endpoint {
    socket.map_or_else(Endpoint::resolve, Endpoint::from_path)
}

/// A future that completes on SIGTERM or SIGINT (Ctrl-C on Windows). The handlers are
/// installed when this is called, not when the future is first polled, so a stop signal that
/// arrives right after readiness is reported is never lost or fatal.
fn stop_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate())
            .map_err(|err| tracing::warn!("cannot watch SIGTERM: {err}"))
            .ok();
        let interrupt = signal(SignalKind::interrupt())
            .map_err(|err| tracing::warn!("cannot watch SIGINT: {err}"))
            .ok();
        async move {
            let wait = |signal: Option<tokio::signal::unix::Signal>| async move {
                match signal {
                    Some(mut signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(term) => {}
                () = wait(interrupt) => {}
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
