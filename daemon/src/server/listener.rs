//! Claiming the endpoint: the private socket directory, the one-daemon-per-endpoint lock, stale
//! socket replacement, the bound listener that removes its socket file when dropped, and
//! adopting a socket passed by the service manager (systemd socket activation).
//!
//! Order matters: the directory is checked first (so nothing is created in a directory other
//! users can enter), then the daemon lock is taken (so two daemons never race on the socket
//! file), and only then is a stale socket file (nobody accepts on it) replaced. A live socket is
//! never replaced.
//!
//! Auto-start and a service manager never race for long: whoever holds the daemon lock serves.
//! A daemon whose socket file is removed or replaced (systemd's socket unit unlinks a path it
//! binds) notices within [`OWNERSHIP_CHECK`] and stops, and a socket-activated daemon waits up
//! to [`ACTIVATION_LOCK_WAIT`] for that lock.

#[cfg(unix)]
use std::fs;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use interprocess::local_socket::ListenerOptions;
use interprocess::local_socket::tokio::Listener;
use tokend_protocol::Endpoint;
use tokend_protocol::private::{self, Locked};

/// Why the endpoint could not be claimed.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The socket directory is not private to this user.
    #[error("refusing to use socket directory {path}: {reason}")]
    UnsafeDirectory {
        /// The directory.
        path: PathBuf,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// Another tokend already serves this endpoint.
    #[error("another tokend{} is already running on {endpoint}; stop it with `tok stop` or pick another --socket", pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    AlreadyRunning {
        /// The endpoint.
        endpoint: String,
        /// The running daemon's pid, when its lock file says.
        pid: Option<u32>,
    },
    /// Windows: the pipe name exists though this daemon holds the endpoint's lock, so another
    /// program created it first (`FILE_FLAG_FIRST_PIPE_INSTANCE` refused our first instance).
    #[error(
        "the named pipe {endpoint} already exists, created by another program (no tokend holds \
         this endpoint's lock); tokend refuses to serve behind it. Find and stop that program, \
         or pick another --socket / TOKEND_SOCKET"
    )]
    Squatted {
        /// The endpoint.
        endpoint: String,
    },
    /// Something exists at the socket path that is not a socket.
    #[error("{path} exists and is not a socket; remove it or pick another --socket")]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// The service manager passed sockets tokend cannot use.
    #[error("cannot use the socket passed by the service manager: {reason}")]
    Activation {
        /// What is wrong and what to configure.
        reason: String,
    },
    /// A filesystem or socket operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> BindError + 'a {
    move |source| BindError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// How often a daemon checks that its socket file is still the one it listens on.
pub const OWNERSHIP_CHECK: Duration = Duration::from_secs(1);
/// How long a socket-activated daemon waits for the locks held by an earlier daemon, which
/// stops once it notices that its socket file was replaced: the check interval, the server's
/// drain timeout for in-flight requests, and a margin.
pub const ACTIVATION_LOCK_WAIT: Duration = Duration::from_secs(15);

/// A listening endpoint owned by this process: holds the daemon lock and, unless the service
/// manager owns the socket file, removes it on drop.
#[derive(Debug)]
pub struct BoundListener {
    listener: Listener,
    endpoint: Endpoint,
    _lock: File,
    /// Device and inode of the socket file when we started listening.
    socket_file: Option<(u64, u64)>,
    /// The service manager created the socket file and keeps it.
    activated: bool,
}

impl BoundListener {
    /// The endpoint.
    #[must_use]
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Whether the socket came from the service manager (socket activation).
    #[must_use]
    pub fn is_activated(&self) -> bool {
        self.activated
    }

    pub(crate) fn listener(&self) -> &Listener {
        &self.listener
    }

    /// Whether the socket path still names the socket we listen on. Clients can only reach us
    /// through the path, so once it is gone or replaced this daemon serves nobody.
    fn owns_socket_file(&self) -> bool {
        self.socket_file.is_none() || file_identity(self.endpoint.socket()) == self.socket_file
    }

    /// Completes when the socket file has been removed or replaced (checked every
    /// [`OWNERSHIP_CHECK`]); never where there is no socket file (Windows).
    pub(crate) async fn lost(&self) {
        if self.socket_file.is_none() {
            return std::future::pending().await;
        }
        loop {
            tokio::time::sleep(OWNERSHIP_CHECK).await;
            if !self.owns_socket_file() {
                return;
            }
        }
    }
}

impl Drop for BoundListener {
    fn drop(&mut self) {
        // Only our own socket file: not the service manager's, and not one that another daemon
        // put at this path after taking it over.
        #[cfg(unix)]
        if !self.activated
            && self.owns_socket_file()
            && let Err(err) = fs::remove_file(self.endpoint.socket())
            && err.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(socket = %self.endpoint, "could not remove the socket file: {err}");
        }
    }
}

/// Device and inode of the file at `path` (not following a symlink).
fn file_identity(path: &Path) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        fs::symlink_metadata(path)
            .ok()
            .map(|meta| (meta.dev(), meta.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// Claims `endpoint` and listens on it. Must run inside a tokio runtime.
///
/// # Errors
/// See [`BindError`].
pub fn bind(endpoint: &Endpoint) -> Result<BoundListener, BindError> {
    prepare_private_dir(endpoint.dir())?;
    let lock = take_daemon_lock(endpoint)?;
    #[cfg(unix)]
    replace_stale_socket(endpoint)?;
    #[cfg(windows)]
    refuse_squatter(endpoint)?;

    let name = endpoint
        .to_name()
        .map_err(io_error("invalid socket name", endpoint.socket()))?;
    let options = ListenerOptions::new()
        .name(name)
        .reclaim_name(false)
        .try_overwrite(false);
    #[cfg(target_os = "linux")]
    let options = {
        use interprocess::os::unix::local_socket::ListenerOptionsExt;
        // fchmod before bind: the socket never exists with a wider mode.
        options.mode(0o600)
    };
    // Windows: interprocess creates the first instance with FILE_FLAG_FIRST_PIPE_INSTANCE and
    // every instance with PIPE_REJECT_REMOTE_CLIENTS; the DACL grants this user alone.
    #[cfg(windows)]
    let options = {
        use interprocess::os::windows::local_socket::ListenerOptionsExt;
        options.security_descriptor(pipe_security(endpoint)?)
    };
    let listener = options.create_tokio().map_err(|source| {
        #[cfg(windows)]
        if source.kind() == io::ErrorKind::PermissionDenied {
            // The name exists, and not as ours: we hold the daemon lock.
            return BindError::Squatted {
                endpoint: endpoint.to_string(),
            };
        }
        if source.kind() == io::ErrorKind::AddrInUse {
            BindError::AlreadyRunning {
                endpoint: endpoint.to_string(),
                pid: None,
            }
        } else {
            BindError::Io {
                action: "cannot listen on",
                path: endpoint.socket().to_path_buf(),
                source,
            }
        }
    })?;
    #[cfg(all(unix, not(target_os = "linux")))]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(endpoint.socket(), fs::Permissions::from_mode(0o600))
            .map_err(io_error("cannot restrict", endpoint.socket()))?;
    }
    Ok(BoundListener {
        listener,
        endpoint: endpoint.clone(),
        _lock: lock,
        socket_file: file_identity(endpoint.socket()),
        activated: false,
    })
}

/// Windows: we hold the endpoint's lock, so no tokend serves its pipe; if the pipe name answers
/// anyway, another program created it. Checked before creating the pipe (Wine does not enforce
/// `FILE_FLAG_FIRST_PIPE_INSTANCE`; on Windows that flag also closes the race of a squatter
/// that comes between this check and the creation). Nothing is sent to it.
#[cfg(windows)]
fn refuse_squatter(endpoint: &Endpoint) -> Result<(), BindError> {
    use interprocess::ConnectWaitMode;
    use interprocess::os::windows::named_pipe::DuplexPipeStream;
    use interprocess::os::windows::named_pipe::pipe_mode::Bytes;
    let name = endpoint.to_string();
    let probe = DuplexPipeStream::<Bytes>::connect_by_path_with_wait_mode(
        name.as_str(),
        ConnectWaitMode::Timeout(Duration::from_millis(100)),
    );
    match probe {
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        // Connected, busy or refused: the name exists.
        _ => Err(BindError::Squatted { endpoint: name }),
    }
}

/// The pipe's security descriptor in the string format: owned by this user, and a protected
/// DACL (nothing inherited) whose one entry grants this user full access. Nobody else, not
/// even SYSTEM or Administrators, is listed: no other account needs tokend's pipe.
#[must_use]
pub fn pipe_sddl(user_sid: &str) -> String {
    format!("O:{user_sid}D:P(A;;GA;;;{user_sid})")
}

#[cfg(windows)]
fn pipe_security(
    endpoint: &Endpoint,
) -> Result<interprocess::os::windows::security_descriptor::SecurityDescriptor, BindError> {
    let sid = tokend_protocol::win32::current_user_sid().map_err(io_error(
        "cannot read this user's SID for",
        endpoint.socket(),
    ))?;
    let text = widestring::U16CString::from_str(pipe_sddl(&sid)).map_err(|err| {
        io_error("invalid security descriptor for", endpoint.socket())(io::Error::other(err))
    })?;
    interprocess::os::windows::security_descriptor::SecurityDescriptor::deserialize(&text).map_err(
        io_error("cannot build the security descriptor of", endpoint.socket()),
    )
}

/// The listening socket systemd passed (`LISTEN_PID` is this process, `LISTEN_FDS` is 1).
#[cfg(unix)]
#[derive(Debug)]
pub struct Activation(std::os::unix::net::UnixListener);

/// Takes the socket passed by a service manager, if one was passed to this process. Call it
/// before any thread starts: it removes the `LISTEN_*` variables from the environment, so no
/// program tokend runs later sees them. The socket is marked close-on-exec.
///
/// # Errors
/// [`BindError::Activation`] when sockets were passed but not exactly one Unix stream socket.
#[cfg(unix)]
pub fn take_activation() -> Result<Option<Activation>, BindError> {
    // systemd's rule: the sockets are ours only when LISTEN_PID names this process.
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|pid| pid.parse::<u32>().ok())
        == Some(std::process::id());
    if !ours {
        return Ok(None);
    }
    let mut passed = listenfd::ListenFd::from_env();
    let activation_error = |reason: String| BindError::Activation { reason };
    match passed.len() {
        0 => return Ok(None),
        1 => {}
        count => {
            return Err(activation_error(format!(
                "{count} sockets were passed, tokend takes one; give the socket unit exactly \
                 one ListenStream= (a path such as %t/tokend/tokend.sock)"
            )));
        }
    }
    match passed.take_unix_listener(0) {
        Ok(Some(listener)) => Ok(Some(Activation(listener))),
        Ok(None) => Ok(None),
        Err(err) => Err(activation_error(format!(
            "{err}; tokend needs a Unix stream socket: use ListenStream= with a filesystem path"
        ))),
    }
}

/// Serves on a socket the service manager passed: its path becomes the endpoint. The directory
/// must be private as for [`bind`], and the daemon lock is taken as usual, waiting up to
/// [`ACTIVATION_LOCK_WAIT`] for a daemon that is still stopping. The socket file stays when
/// the daemon stops: the service manager owns it. Must run inside a tokio runtime.
///
/// # Errors
/// See [`BindError`]; [`BindError::Activation`] when the socket has no filesystem path or a
/// different `--socket` was asked for.
#[cfg(unix)]
pub async fn adopt(
    activation: Activation,
    requested: Option<&Path>,
) -> Result<BoundListener, BindError> {
    let activation_error = |reason: String| BindError::Activation { reason };
    let std_listener = activation.0;
    let address = std_listener
        .local_addr()
        .map_err(|err| activation_error(format!("cannot read its address: {err}")))?;
    let Some(path) = address.as_pathname() else {
        return Err(activation_error(
            "it has no filesystem path (an abstract or unnamed socket has no permission bits); \
             use ListenStream=%t/tokend/tokend.sock"
                .to_owned(),
        ));
    };
    let endpoint = Endpoint::from_path(path);
    if let Some(requested) = requested
        && requested != path
    {
        return Err(activation_error(format!(
            "it listens on {}, but --socket asks for {}; make them the same or drop --socket",
            path.display(),
            requested.display()
        )));
    }
    check_private_dir(endpoint.dir())?;
    let lock = wait_for_daemon_lock(&endpoint, ACTIVATION_LOCK_WAIT).await?;
    let listener = std::os::fd::OwnedFd::from(std_listener);
    let listener = interprocess::os::unix::uds_local_socket::tokio::Listener::try_from(listener)
        .map_err(io_error("cannot listen on", endpoint.socket()))?;
    Ok(BoundListener {
        listener: Listener::from(listener),
        socket_file: file_identity(endpoint.socket()),
        endpoint,
        _lock: lock,
        activated: true,
    })
}

/// [`take_daemon_lock`], retried while another daemon holds it, up to `wait`.
#[cfg(unix)]
async fn wait_for_daemon_lock(endpoint: &Endpoint, wait: Duration) -> Result<File, BindError> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut told = false;
    loop {
        match take_daemon_lock(endpoint) {
            Err(BindError::AlreadyRunning { pid, .. })
                if tokio::time::Instant::now() < deadline =>
            {
                if !told {
                    told = true;
                    tracing::info!(
                        holder = pid,
                        "another tokend holds {}; waiting for it to notice the new socket \
                         and stop",
                        endpoint
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => return other,
        }
    }
}

/// Creates the directory 0700 if missing; refuses one that is a symlink, not ours, or open to
/// other users.
fn prepare_private_dir(dir: &Path) -> Result<(), BindError> {
    private::create_dir(dir).map_err(io_error("cannot create", dir))?;
    check_private_dir(dir)
}

fn check_private_dir(dir: &Path) -> Result<(), BindError> {
    match private::check_dir(dir).map_err(io_error("cannot inspect", dir))? {
        Some(reason) => Err(BindError::UnsafeDirectory {
            path: dir.to_path_buf(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Takes the endpoint's daemon lock for the life of the process and records our pid in it.
fn take_daemon_lock(endpoint: &Endpoint) -> Result<File, BindError> {
    let path = endpoint.daemon_lock_path();
    let mut file = match private::lock(&path) {
        Ok(Locked::Held(file)) => file,
        Ok(Locked::Busy(mut file)) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(BindError::AlreadyRunning {
                endpoint: endpoint.to_string(),
                pid: text.trim().parse().ok(),
            });
        }
        Err(source) => {
            return Err(BindError::Io {
                action: "cannot lock",
                path,
                source,
            });
        }
    };
    file.set_len(0).map_err(io_error("cannot write", &path))?;
    writeln!(file, "{}", std::process::id()).map_err(io_error("cannot write", &path))?;
    Ok(file)
}

/// Removes a socket file nobody accepts on. A live one means another daemon that does not use
/// our lock (an older build): refuse rather than steal its endpoint.
#[cfg(unix)]
fn replace_stale_socket(endpoint: &Endpoint) -> Result<(), BindError> {
    use std::os::unix::fs::FileTypeExt;
    use std::os::unix::net::UnixStream;
    let path = endpoint.socket();
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(BindError::Io {
                action: "cannot inspect",
                path: path.to_path_buf(),
                source,
            });
        }
    };
    if !meta.file_type().is_socket() {
        return Err(BindError::NotASocket {
            path: path.to_path_buf(),
        });
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(BindError::AlreadyRunning {
            endpoint: endpoint.to_string(),
            pid: None,
        }),
        Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!(socket = %endpoint, "replacing a stale socket file");
            fs::remove_file(path).map_err(io_error("cannot remove stale socket", path))
        }
        Err(source) => Err(BindError::Io {
            action: "cannot probe",
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn refuses_open_symlinked_and_accepts_private_directories() {
        let root = tempfile::tempdir().unwrap();
        let private = root.path().join("private");
        prepare_private_dir(&private).unwrap();
        assert_eq!(
            fs::metadata(&private).unwrap().permissions().mode() & 0o777,
            0o700
        );

        let open = root.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o755)).unwrap();
        let err = prepare_private_dir(&open).unwrap_err().to_string();
        assert!(err.contains("0755") && err.contains("chmod 700"), "{err}");

        let link = root.path().join("link");
        std::os::unix::fs::symlink(&private, &link).unwrap();
        let err = prepare_private_dir(&link).unwrap_err().to_string();
        assert!(
            err.contains("symbolic link") && err.contains("link"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_socket_file_taken_over_is_noticed_and_left_alone() {
        let root = tempfile::tempdir().unwrap();
        let endpoint = Endpoint::from_path(root.path().join("run/t.sock"));
        let bound = bind(&endpoint).unwrap();
        // Still ours: lost() does not complete.
        assert!(
            tokio::time::timeout(OWNERSHIP_CHECK * 2, bound.lost())
                .await
                .is_err()
        );
        // Another listener takes the path over (as systemd's socket unit does).
        fs::remove_file(endpoint.socket()).unwrap();
        let other = std::os::unix::net::UnixListener::bind(endpoint.socket()).unwrap();
        tokio::time::timeout(OWNERSHIP_CHECK * 3, bound.lost())
            .await
            .expect("the take-over is noticed");
        drop(bound);
        assert!(
            endpoint.socket().exists(),
            "the new owner's socket file is not removed"
        );
        drop(other);
    }

    #[tokio::test]
    async fn one_daemon_per_endpoint_and_stale_sockets_are_replaced() {
        let root = tempfile::tempdir().unwrap();
        // bind() creates the missing directory 0700 itself.
        let endpoint = Endpoint::from_path(root.path().join("run/t.sock"));
        let first = bind(&endpoint).unwrap();
        let mode = fs::metadata(endpoint.socket())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let lock_mode = fs::metadata(endpoint.daemon_lock_path())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(lock_mode, 0o600);
        match bind(&endpoint) {
            Err(BindError::AlreadyRunning { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("expected AlreadyRunning, got {other:?}"),
        }
        drop(first);
        assert!(
            !endpoint.socket().exists(),
            "the socket file is removed on drop"
        );

        // A stale socket: bound by a listener that is gone without cleaning up.
        let stale = std::os::unix::net::UnixListener::bind(endpoint.socket()).unwrap();
        drop(stale);
        assert!(endpoint.socket().exists());
        let second = bind(&endpoint).unwrap();
        drop(second);

        fs::write(endpoint.socket(), b"not a socket").unwrap();
        assert!(matches!(bind(&endpoint), Err(BindError::NotASocket { .. })));
    }
}
