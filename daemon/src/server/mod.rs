//! The server: the accept loop, a cap on concurrent connections, one task per connection, and a
//! graceful shutdown that stops accepting, lets in-flight requests and key rotations finish,
//! then removes the socket.
//!
//! - [`listener`] claims the endpoint (private directory, daemon lock, stale sockets, socket
//!   activation).
//! - `connection` serves one client: handshake, request/response loop, timeouts.
//! - `peer` says who the client is (its uid must be ours).
//! - `socket` is a connection's socket as the request loop uses it (read interest only on Unix).
//! - `audit` keeps the audit trail: which program got which token, aggregated off the hot path.
//! - `dispatch` is the one `match` on requests; `handlers` answer them, one file per family.
//! - `state` is what every connection shares: the providers, swapped whole on reload.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use interprocess::local_socket::traits::tokio::Listener as _;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub(crate) mod audit;
pub(crate) mod connection;
pub(crate) mod dispatch;
pub(crate) mod handlers;
pub mod listener;
pub(crate) mod peer;
pub(crate) mod slots;
pub(crate) mod socket;
pub(crate) mod state;

use self::listener::BoundListener;
use self::state::State;
use crate::config::Config;
use crate::store::Store;

/// Most connections served at once by default (`tokend --max-connections`). Applications keep
/// connections open, so this is sized for many clients (each idle connection costs a few KiB,
/// and nothing is set aside for connections that are not there); `tokend` raises its
/// file-descriptor limit to match, or serves fewer when the hard limit is lower (see
/// [`crate::process_limits::fit_connection_cap`]). At the cap a new client still gets in: see
/// [`slots`].
pub const MAX_CONNECTIONS: usize = 16_384;
/// How long shutdown waits for in-flight requests before cutting connections (and, after them,
/// for key rotations in flight).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `listener` with `config` until `shutdown` completes or a client sends `Shutdown`;
/// SIGHUP reloads the config. The socket file is removed when this returns.
pub async fn run(config: Config, listener: BoundListener, shutdown: impl Future<Output = ()>) {
    run_with(config, listener, shutdown, Options::default()).await;
}

/// How the `tokend` binary tunes the server beyond [`run`]'s defaults.
#[derive(Debug, Default)]
pub struct Options {
    /// A SIGHUP listener created by the caller. The binary creates it before it reports
    /// readiness, so that no SIGHUP can reach a ready daemon without its handler (the default
    /// action would terminate it). `None`: created here.
    pub hangups: Option<Hangups>,
    /// Keep the audit trail: which program (uid, pid, executable) got which provider's token,
    /// aggregated per program and provider (see [`audit`]).
    pub audit: bool,
    /// The durable store tokens are kept in (see [`crate::store`]). `None`: memory only.
    pub store: Option<Arc<Store>>,
    /// The connection cap; `None`: [`MAX_CONNECTIONS`].
    pub max_connections: Option<usize>,
    /// The fleet of `share`d providers (see [`crate::fleet`]), set up from `[fleet]`.
    pub fleet: Option<Arc<crate::fleet::Fleet>>,
}

/// [`run`] with [`Options`].
pub async fn run_with(
    config: Config,
    listener: BoundListener,
    shutdown: impl Future<Output = ()>,
    options: Options,
) {
    let mut hangups = options.hangups.unwrap_or_default();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut stop_requested = stop_rx.clone();
    let state = Arc::new(State::new(
        config,
        listener.endpoint().to_string(),
        stop_tx,
        options.audit,
        options.store,
        options.fleet,
    ));
    // The config's parse is over: its freed memory goes back (see `heap`).
    crate::heap::release_free_memory();
    let slots = slots::Slots::new(options.max_connections.unwrap_or(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    let mut audit_reports = tokio::time::interval_at(
        tokio::time::Instant::now() + audit::REPORT_EVERY,
        audit::REPORT_EVERY,
    );

    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => {
                tracing::info!("stop signal received");
                break;
            }
            // The watch guard is not Send: drop it inside, so run() stays spawnable.
            () = async { let _ = stop_requested.wait_for(|stop| *stop).await; } => break,
            () = listener.lost() => {
                tracing::warn!(
                    socket = %listener.endpoint(),
                    "the socket file was removed or replaced (by a service manager's socket \
                     unit or another tokend); this daemon can no longer be reached, stopping"
                );
                break;
            }
            _ = audit_reports.tick() => state.audit.report(),
            () = hangups.next() => {
                tracing::info!("SIGHUP: reloading the config");
                if let Err(message) = state.reload() {
                    tracing::error!("reload refused, the old config stays in force: {message}");
                }
            }
            Some(done) = connections.join_next(), if !connections.is_empty() => {
                if let Err(err) = done
                    && err.is_panic()
                {
                    tracing::error!("a connection task panicked: {err}");
                }
            }
            accepted = listener.listener().accept() => match accepted {
                Ok(stream) => {
                    // At the cap another connection makes room; all of them busy: refused.
                    let Some(held) = slots.admit() else {
                        drop(stream);
                        continue;
                    };
                    let state = Arc::clone(&state);
                    let stop = stop_rx.clone();
                    connections.spawn(async move {
                        connection::serve(stream, state, stop, held.slot()).await;
                        drop(held);
                    });
                }
                Err(err) => {
                    // Usually EMFILE: back off instead of spinning.
                    tracing::warn!("accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }

    // Tell idle connections to close; busy ones finish their request first.
    state.request_shutdown();
    state.stop_outlets();
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "{} connections did not finish within {DRAIN_TIMEOUT:?}; closing them",
            connections.len()
        );
        connections.shutdown().await;
    }
    if !state.finish_rotations(DRAIN_TIMEOUT).await {
        tracing::error!(
            "a key rotation did not finish within {DRAIN_TIMEOUT:?}; a key the API issued for it \
             may be lost: check the provider's key at the API (regenerate it by hand if tokend \
             serves one the API refuses)"
        );
    }
    // What the connections handed over since the last report.
    state.audit.report();
    drop(listener);
    tracing::info!("stopped");
}

/// SIGHUP deliveries (never, where there are none). Must be created inside a tokio runtime.
#[derive(Debug)]
pub struct Hangups {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Hangups {
    /// Starts listening for SIGHUP (from now on it no longer terminates the process).
    #[must_use]
    pub fn new() -> Self {
        #[cfg(unix)]
        {
            let signal = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                .map_err(|err| tracing::warn!("cannot watch SIGHUP (use `tok reload`): {err}"))
                .ok();
            Self { signal }
        }
        #[cfg(not(unix))]
        Self {}
    }
}

impl Default for Hangups {
    fn default() -> Self {
        Self::new()
    }
}

impl Hangups {
    async fn next(&mut self) {
        #[cfg(unix)]
        if let Some(signal) = self.signal.as_mut()
            && signal.recv().await.is_some()
        {
            return;
        }
        std::future::pending::<()>().await;
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::collections::BTreeMap;

    use interprocess::local_socket::tokio::Stream;
    use interprocess::local_socket::traits::tokio::Stream as _;
    use tokend_protocol::frame::nonblocking::{read_frame, write_frame};
    use tokend_protocol::handshake::{Hello, Welcome};
    use tokend_protocol::{Endpoint, MAX_FRAME_LEN, Request, Response, codec};

    use super::*;
    use crate::config::ConfigSource;
    use crate::server::connection::IDLE_TIMEOUT;

    async fn ping(stream: &mut Stream) -> Option<Response> {
        write_frame(stream, &codec::encode(&Request::Ping).unwrap())
            .await
            .ok()?;
        let answer = read_frame(stream, MAX_FRAME_LEN).await.ok()??;
        codec::decode(&answer).ok()
    }

    /// Time is paused: the ten-minute idle timeout is driven by `advance`, not by sleeping.
    #[tokio::test(start_paused = true)]
    async fn idle_connections_close_and_busy_ones_stay_open() {
        let dir = tempfile::tempdir().unwrap();
        let endpoint = Endpoint::from_path(dir.path().join("run/t.sock"));
        let bound = crate::server::listener::bind(&endpoint).unwrap();
        let config = Config {
            source: ConfigSource::Missing(dir.path().join("none.toml")),
            providers: BTreeMap::new(),
            routes: Vec::new(),
            store: crate::config::StoreConfig::default_for(&dir.path().join("none.toml")),
            fleet: None,
            proxies: Vec::new(),
            token_files: Vec::new(),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(run(config, bound, async {
            let _ = stopped.await;
        }));

        let mut stream = Stream::connect(endpoint.to_name().unwrap()).await.unwrap();
        write_frame(&mut stream, &Hello::current().encode())
            .await
            .unwrap();
        let welcome = read_frame(&mut stream, 256).await.unwrap().unwrap();
        Welcome::decode(&welcome).unwrap();

        let minute = Duration::from_secs(60);
        tokio::time::advance(IDLE_TIMEOUT - minute).await;
        assert!(matches!(ping(&mut stream).await, Some(Response::Pong(_))));
        // The first deadline passes, but a request came in since: the connection stays.
        tokio::time::advance(2 * minute).await;
        assert!(matches!(ping(&mut stream).await, Some(Response::Pong(_))));
        // A whole idle period without requests closes it.
        tokio::time::advance(IDLE_TIMEOUT + minute).await;
        assert!(
            ping(&mut stream).await.is_none(),
            "an idle connection must be closed"
        );

        stop.send(()).unwrap();
        server.await.unwrap();
        assert!(
            !endpoint.socket().exists(),
            "the socket is removed on shutdown"
        );
    }
}
