//! Where an auth proxy listens, and its accept loop: a loopback TCP address, or a Unix socket in
//! a private (0700) directory whose peers must be this user. Each connection is served as
//! HTTP/1.1 by hyper, with a bound on the time to send request headers and on the number of
//! connections.

use std::net::SocketAddr;
#[cfg(unix)]
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{Shared, forward};
use crate::config::ProxyListen;

/// Connections one proxy serves at once; more wait to be accepted.
const MAX_CONNECTIONS: usize = 512;
/// A client must send its request headers within this time.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// A bound listener.
#[derive(Debug)]
pub(super) enum Listener {
    Tcp(tokio::net::TcpListener),
    #[cfg(unix)]
    Unix(tokio::net::UnixListener, PathBuf),
}

impl Listener {
    /// The bound TCP address (with the real port when the config said 0).
    pub(super) fn local_tcp(&self) -> Option<SocketAddr> {
        match self {
            Self::Tcp(listener) => listener.local_addr().ok(),
            #[cfg(unix)]
            Self::Unix(..) => None,
        }
    }

    pub(super) fn shown(&self) -> String {
        match self {
            Self::Tcp(listener) => listener
                .local_addr()
                .map_or_else(|_| "?".to_owned(), |address| address.to_string()),
            #[cfg(unix)]
            Self::Unix(_, path) => format!("unix:{}", path.display()),
        }
    }
}

/// Binds `listen`. The error says what to change.
pub(super) fn bind(listen: &ProxyListen) -> Result<Listener, String> {
    match listen {
        ProxyListen::Tcp(address) => {
            let fail = |err: std::io::Error| {
                format!(
                    "cannot listen on {address} for the auth proxy: {err} (if another program \
                     holds the port, pick another one in proxy.listen and run `tok reload`)"
                )
            };
            let listener = std::net::TcpListener::bind(address).map_err(fail)?;
            listener.set_nonblocking(true).map_err(fail)?;
            tokio::net::TcpListener::from_std(listener)
                .map(Listener::Tcp)
                .map_err(fail)
        }
        #[cfg(unix)]
        ProxyListen::Unix(path) => bind_unix(path),
        #[cfg(not(unix))]
        ProxyListen::Unix(path) => Err(format!(
            "cannot listen on {}: Unix sockets need a Unix system",
            path.display()
        )),
    }
}

#[cfg(unix)]
fn bind_unix(path: &Path) -> Result<Listener, String> {
    use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
    let shown = path.display();
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .ok_or_else(|| format!("cannot listen on {shown}: it names no directory"))?;
    tokend_protocol::private::ensure_dir(dir)
        .map_err(|err| format!("cannot listen on {shown}: {err}"))?;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(format!(
                    "cannot listen on {shown}: another process serves it (stop it, or choose \
                     another path in proxy.listen and run `tok reload`)"
                ));
            }
            std::fs::remove_file(path)
                .map_err(|err| format!("cannot remove the stale socket {shown}: {err}"))?;
        }
        Ok(_) => {
            return Err(format!(
                "cannot listen on {shown}: a file that is not a socket is in the way (move it, \
                 or choose another path in proxy.listen)"
            ));
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(format!("cannot listen on {shown}: {err}")),
    }
    let listener = tokio::net::UnixListener::bind(path)
        .map_err(|err| format!("cannot listen on {shown}: {err}"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|err| format!("cannot make {shown} private: {err}"))?;
    Ok(Listener::Unix(listener, path.to_owned()))
}

/// Removes a proxy's socket file (it stopped).
#[cfg(unix)]
pub(super) fn remove_socket(path: &Path) {
    use std::os::unix::fs::FileTypeExt as _;
    if std::fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_socket()) {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(not(unix))]
pub(super) fn remove_socket(_path: &std::path::Path) {}

/// Accepts connections until aborted; aborting closes every connection too.
pub(super) async fn serve(listener: Listener, shared: Arc<Shared>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        while connections.try_join_next().is_some() {}
        let accepted = match &listener {
            Listener::Tcp(listener) => listener.accept().await.map(|(stream, _)| {
                let _ = stream.set_nodelay(true);
                Accepted::Tcp(stream)
            }),
            #[cfg(unix)]
            Listener::Unix(listener, _) => listener
                .accept()
                .await
                .map(|(stream, _)| Accepted::Unix(stream)),
        };
        let stream = match accepted {
            Ok(stream) => stream,
            Err(err) => {
                // Usually EMFILE: back off instead of spinning.
                tracing::warn!("auth proxy: accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let shared = Arc::clone(&shared);
        connections.spawn(async move {
            match stream {
                Accepted::Tcp(stream) => connection(stream, shared).await,
                #[cfg(unix)]
                Accepted::Unix(stream) => {
                    if let Err(refusal) = check_peer(&stream) {
                        tracing::warn!("auth proxy: refused a connection: {refusal}");
                        shared.stats.refused(None);
                        return;
                    }
                    connection(stream, shared).await;
                }
            }
            drop(permit);
        });
    }
}

enum Accepted {
    Tcp(tokio::net::TcpStream),
    #[cfg(unix)]
    Unix(tokio::net::UnixStream),
}

/// Only the daemon's own user may use a Unix-socket proxy (the 0700 directory already keeps
/// others out; this is the second wall).
#[cfg(unix)]
fn check_peer(stream: &tokio::net::UnixStream) -> Result<(), String> {
    let creds = stream
        .peer_cred()
        .map_err(|err| format!("cannot read the peer's credentials: {err}"))?;
    let me = rustix::process::geteuid().as_raw();
    if creds.uid() == me {
        Ok(())
    } else {
        Err(format!(
            "peer uid {} (pid {}) is not this daemon's user (uid {me})",
            creds.uid(),
            creds
                .pid()
                .map_or_else(|| "unknown".to_owned(), |pid| pid.to_string())
        ))
    }
}

/// Serves one connection as HTTP/1.1 until the client closes it. A client that shuts down its
/// sending side after its request (half-close, as `nc -N` does) still gets its answer.
pub(super) async fn connection<S>(stream: S, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| forward::handle(request, Arc::clone(&shared)));
    let served = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .half_close(true)
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(err) = served {
        tracing::debug!("auth proxy: connection ended: {err}");
    }
}
