//! The accept loop: a cap on concurrent connections, one task per connection, and a graceful
//! shutdown that stops accepting, lets in-flight requests finish, then removes the socket.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use interprocess::local_socket::traits::tokio::Listener as _;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::config::Config;
use crate::connection;
use crate::listener::BoundListener;
use crate::state::State;

/// Most connections served at once; further clients wait in the socket backlog.
pub const MAX_CONNECTIONS: usize = 256;
/// How long shutdown waits for in-flight requests before cutting connections.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `listener` with `config` until `shutdown` completes or a client sends `Shutdown`.
/// The socket file is removed when this returns.
pub async fn run(config: Config, listener: BoundListener, shutdown: impl Future<Output = ()>) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut stop_requested = stop_rx.clone();
    let state = Arc::new(State::new(config, listener.endpoint().to_string(), stop_tx));
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);

    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => {
                tracing::info!("stop signal received");
                break;
            }
            _ = stop_requested.wait_for(|stop| *stop) => break,
            Some(done) = connections.join_next(), if !connections.is_empty() => {
                if let Err(err) = done
                    && err.is_panic()
                {
                    tracing::error!("a connection task panicked: {err}");
                }
            }
            accepted = accept(&listener, &permits) => match accepted {
                Ok((stream, permit)) => {
                    let state = Arc::clone(&state);
                    let stop = stop_rx.clone();
                    connections.spawn(async move {
                        connection::serve(stream, state, stop).await;
                        drop(permit);
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
    drop(listener);
    tracing::info!("stopped");
}

async fn accept(
    listener: &BoundListener,
    permits: &Arc<Semaphore>,
) -> std::io::Result<(
    interprocess::local_socket::tokio::Stream,
    tokio::sync::OwnedSemaphorePermit,
)> {
    let permit = Arc::clone(permits)
        .acquire_owned()
        .await
        .map_err(|_| std::io::Error::other("connection semaphore closed"))?;
    let stream = listener.listener().accept().await?;
    Ok((stream, permit))
}
