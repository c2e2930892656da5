//! Claiming the endpoint: the private socket directory, the one-daemon-per-endpoint lock, stale
//! socket replacement, and the bound listener that removes its socket file when dropped.
//!
//! Order matters: the directory is checked first (so nothing is created in a directory other
//! users can enter), then the daemon lock is taken (so two daemons never race on the socket
//! file), and only then is a stale socket file (nobody accepts on it) replaced. A live socket is
//! never replaced.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use interprocess::local_socket::ListenerOptions;
use interprocess::local_socket::tokio::Listener;
use tokend_protocol::Endpoint;

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
    /// Something exists at the socket path that is not a socket.
    #[error("{path} exists and is not a socket; remove it or pick another --socket")]
    NotASocket {
        /// The path.
        path: PathBuf,
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

/// A listening endpoint owned by this process: holds the daemon lock and removes the socket
/// file on drop.
#[derive(Debug)]
pub struct BoundListener {
    listener: Listener,
    endpoint: Endpoint,
    _lock: File,
}

impl BoundListener {
    /// The endpoint.
    #[must_use]
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    pub(crate) fn listener(&self) -> &Listener {
        &self.listener
    }
}

impl Drop for BoundListener {
    fn drop(&mut self) {
        // We hold the daemon lock, so the file at this path is ours.
        #[cfg(unix)]
        if let Err(err) = fs::remove_file(self.endpoint.socket())
            && err.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(socket = %self.endpoint, "could not remove the socket file: {err}");
        }
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
    let listener = options.create_tokio().map_err(|source| {
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
    })
}

/// Creates the directory 0700 if missing; refuses one that is a symlink, not ours, or open to
/// other users.
fn prepare_private_dir(dir: &Path) -> Result<(), BindError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(io_error("cannot create", dir))?;
    #[cfg(unix)]
    check_private_dir(dir)?;
    Ok(())
}

#[cfg(unix)]
fn check_private_dir(dir: &Path) -> Result<(), BindError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let unsafe_dir = |reason: String| BindError::UnsafeDirectory {
        path: dir.to_path_buf(),
        reason,
    };
    let meta = fs::symlink_metadata(dir).map_err(io_error("cannot inspect", dir))?;
    if meta.file_type().is_symlink() {
        return Err(unsafe_dir(
            "it is a symbolic link; use a real directory".into(),
        ));
    }
    if !meta.is_dir() {
        return Err(unsafe_dir("it is not a directory".into()));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(unsafe_dir(format!(
            "it is owned by uid {}, not by this user (uid {me}); use a directory you own",
            meta.uid()
        )));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(unsafe_dir(format!(
            "its mode {mode:04o} lets other users in; run `chmod 700 {}`",
            dir.display()
        )));
    }
    Ok(())
}

fn private_file(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Takes the endpoint's daemon lock for the life of the process and records our pid in it.
fn take_daemon_lock(endpoint: &Endpoint) -> Result<File, BindError> {
    let path = endpoint.daemon_lock_path();
    let mut file = private_file(&path).map_err(io_error("cannot open", &path))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(BindError::AlreadyRunning {
                endpoint: endpoint.to_string(),
                pid: text.trim().parse().ok(),
            });
        }
        Err(fs::TryLockError::Error(source)) => {
            return Err(BindError::Io {
                action: "cannot lock",
                path,
                source,
            });
        }
    }
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
