//! `tokend`: makes itself non-dumpable, parses arguments, sets up logging, loads the config,
//! claims the endpoint (or adopts the socket systemd passed), opens the store and hands over to
//! [`tokend::server::run_with`]. Runs in the foreground (what systemd and tests want).
//!
//! Exit codes: 0 stopped cleanly; 1 runtime error (for example an unsafe socket or data
//! directory, or an unusable key file); 2 usage or config error (also: the chosen OS keystore
//! cannot be reached); 3 another tokend already serves this endpoint.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tokend::server::listener::{self, BindError};
use tokend::{config, server, store};
use tokend_protocol::Endpoint;
use tracing_subscriber::EnvFilter;

/// tokend: keeps access tokens fresh and hands them to `tok` and the client library.
#[derive(Debug, Parser)]
#[command(name = "tokend", version)]
struct Args {
    /// Config file [default: $TOKEND_CONFIG, else <config dir>/tokend/config.toml]
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Socket path [default: $TOKEND_SOCKET, else $XDG_RUNTIME_DIR/tokend/tokend.sock, else
    /// <tmp>/tokend-<uid>/tokend.sock]
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Print READY on stdout once connections are accepted (used by auto-start)
    #[arg(long)]
    notify_ready: bool,
    /// Log one line per token request at info level: peer uid, pid and executable, provider,
    /// and whether it was a cache hit (never the token). Costs a few microseconds per request.
    #[arg(long)]
    audit: bool,
    /// Log line format on stderr: `text` for people, `json` (one object per line) for collectors
    #[arg(long, value_enum, default_value = "text", value_name = "FORMAT")]
    log_format: LogFormat,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // Before any thread exists: taking the passed socket clears LISTEN_* from the environment.
    #[cfg(unix)]
    let activation = listener::take_activation();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => logs.json().init(),
    }

    // First, before any secret is read: a crash must never write one to a core file.
    if let Err(err) = tokend::process_limits::forbid_core_dumps() {
        tracing::error!("{err}; refusing to hold secrets in a process that may dump core");
        return ExitCode::from(1);
    }
    // Enough descriptors for the connection cap (best effort; the server backs off on EMFILE).
    let _ = tokend::process_limits::raise_descriptor_limit();

    let env = |key: &str| std::env::var_os(key);
    let config_path = match config::resolve_path(args.config.as_deref(), &env) {
        Ok(path) => path,
        Err(err) => {
            tracing::error!("{err}");
            return ExitCode::from(2);
        }
    };
    let (config, warnings) = match config::load(&config_path) {
        Ok(loaded) => loaded,
        Err(err) => {
            tracing::error!("{err}");
            return ExitCode::from(2);
        }
    };
    for warning in &warnings {
        tracing::warn!(
            "{}:{}: {}",
            config_path.display(),
            warning.line,
            warning.message
        );
    }
    #[cfg(unix)]
    let activation = match activation {
        Ok(activation) => activation,
        Err(err) => {
            tracing::error!("{err}");
            return ExitCode::from(1);
        }
    };

    let Some(data_dir) = store::data_dir(&env) else {
        tracing::error!(
            "cannot locate the data directory for the store: no home directory found; set {}",
            store::DATA_ENV
        );
        return ExitCode::from(2);
    };

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!("cannot start the async runtime: {err}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async {
        #[cfg(unix)]
        let bound = match activation {
            Some(activation) => listener::adopt(activation, args.socket.as_deref()).await,
            None => listener::bind(&requested_endpoint(args.socket)),
        };
        #[cfg(not(unix))]
        let bound = listener::bind(&requested_endpoint(args.socket));
        let bound = match bound {
            Ok(bound) => bound,
            Err(err) => {
                tracing::error!("{err}");
                return ExitCode::from(match err {
                    BindError::AlreadyRunning { .. } => 3,
                    _ => 1,
                });
            }
        };
        // Once the endpoint is ours (one daemon per endpoint), and on a blocking thread: the OS
        // keystore client runs an async runtime of its own.
        // A socket-activated daemon may be taking over from one that is still stopping (it
        // releases the store's lock last): wait for it within the same bound as for the
        // endpoint's lock.
        let patience = if bound.is_activated() {
            listener::ACTIVATION_LOCK_WAIT
        } else {
            std::time::Duration::ZERO
        };
        let deadline = tokio::time::Instant::now() + patience;
        let opened = loop {
            let key = config.store.key.clone();
            let dir = data_dir.clone();
            let opened = tokio::task::spawn_blocking(move || store::Store::open(&dir, &key)).await;
            match opened {
                Ok(Err(store::StoreError::InUse { .. }))
                    if tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                other => break other,
            }
        };
        let store = match opened {
            Ok(Ok(store)) => std::sync::Arc::new(store),
            Ok(Err(err)) => {
                tracing::error!("{err}");
                // An unavailable keystore is fixed in the config; anything else on the machine.
                return ExitCode::from(match err {
                    store::StoreError::Keyring { .. } => 2,
                    _ => 1,
                });
            }
            Err(err) => {
                tracing::error!("opening the store failed: {err}");
                return ExitCode::from(1);
            }
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
        let hangups = server::Hangups::new();
        let stop = stop_signal();
        if args.notify_ready {
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
            audit: args.audit,
            store: Some(store),
        };
        server::run_with(config, bound, stop, options).await;
        ExitCode::SUCCESS
    })
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
