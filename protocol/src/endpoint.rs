//! Where the daemon listens: the one resolution both the daemon and every client use.
//!
//! Resolution order ([`Endpoint::resolve`]):
//! 1. `TOKEND_SOCKET`, if set and non-empty (a socket path on Unix, a pipe name on Windows);
//! 2. Unix: `$XDG_RUNTIME_DIR/tokend/tokend.sock` (the runtime directory as `directories` reports
//!    it);
//! 3. Unix: `<temp dir>/tokend-<uid>/tokend.sock`;
//!    Windows: the named pipe `\\.\pipe\tokend-<user name>`.
//!
//! On Unix the socket is always a filesystem path (never the abstract namespace, which has no
//! permission bits) inside a directory only its owner may enter. The daemon's lock file, the
//! clients' startup lock and the auto-started daemon's log live beside the socket.

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use interprocess::local_socket::Name;

/// Environment variable that overrides the endpoint.
pub const SOCKET_ENV: &str = "TOKEND_SOCKET";

/// The line `tokend --notify-ready` prints on stdout once the endpoint accepts connections; the
/// auto-starting client waits for it instead of polling the socket.
pub const READY_LINE: &str = "READY";

/// What endpoint resolution reads from the process environment; injectable for tests.
pub trait EndpointEnv {
    /// An environment variable.
    fn var(&self, key: &str) -> Option<OsString>;
    /// The per-user runtime directory (`$XDG_RUNTIME_DIR` on Linux), if any.
    fn runtime_dir(&self) -> Option<PathBuf>;
    /// The system temp directory.
    fn temp_dir(&self) -> PathBuf;
    /// What makes names per-user: the uid on Unix, the user name on Windows.
    fn user_tag(&self) -> String;
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemEnv;

impl EndpointEnv for SystemEnv {
    fn var(&self, key: &str) -> Option<OsString> {
        std::env::var_os(key)
    }

    fn runtime_dir(&self) -> Option<PathBuf> {
        directories::BaseDirs::new().and_then(|dirs| dirs.runtime_dir().map(Path::to_path_buf))
    }

    fn temp_dir(&self) -> PathBuf {
        std::env::temp_dir()
    }

    #[cfg(unix)]
    fn user_tag(&self) -> String {
        rustix::process::getuid().as_raw().to_string()
    }

    #[cfg(not(unix))]
    fn user_tag(&self) -> String {
        let name = std::env::var("USERNAME").unwrap_or_default();
        let clean: String = name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            .collect();
        if clean.is_empty() {
            "user".to_owned()
        } else {
            clean
        }
    }
}

/// A resolved endpoint: the socket path (or pipe name) and the directory of its side files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Socket path on Unix; pipe name on Windows.
    socket: PathBuf,
    /// Directory holding the lock files and the auto-start log.
    side_dir: PathBuf,
    /// File stem for side files (`tokend` for `tokend.sock`).
    stem: OsString,
}

impl Endpoint {
    /// Resolves the endpoint from the real environment (see the module docs for the order).
    #[must_use]
    pub fn resolve() -> Self {
        Self::resolve_with(&SystemEnv)
    }

    /// Resolves the endpoint from an injected environment.
    #[must_use]
    pub fn resolve_with(env: &dyn EndpointEnv) -> Self {
        if let Some(explicit) = env.var(SOCKET_ENV).filter(|value| !value.is_empty()) {
            return Self::at(PathBuf::from(explicit), env);
        }
        if cfg!(unix) {
            let dir = env
                .runtime_dir()
                .map(|runtime| runtime.join("tokend"))
                .unwrap_or_else(|| Self::per_user_temp_dir(env));
            Self::at(dir.join("tokend.sock"), env)
        } else {
            Self::at(PathBuf::from(format!("tokend-{}", env.user_tag())), env)
        }
    }

    /// An endpoint at an explicit socket path (Unix) or pipe name (Windows), as given by
    /// `--socket`.
    #[must_use]
    pub fn from_path(path: impl Into<PathBuf>) -> Self {
        Self::at(path.into(), &SystemEnv)
    }

    fn at(socket: PathBuf, env: &dyn EndpointEnv) -> Self {
        let stem = socket
            .file_stem()
            .map_or_else(|| OsString::from("tokend"), ToOwned::to_owned);
        let side_dir = if cfg!(unix) {
            match socket.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
                _ => PathBuf::from("."),
            }
        } else {
            Self::per_user_temp_dir(env)
        };
        Self {
            socket,
            side_dir,
            stem,
        }
    }

    fn per_user_temp_dir(env: &dyn EndpointEnv) -> PathBuf {
        env.temp_dir().join(format!("tokend-{}", env.user_tag()))
    }

    /// The socket path (Unix) or pipe name (Windows).
    #[must_use]
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The private directory that holds the socket (Unix) and the side files.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.side_dir
    }

    fn side_file(&self, extension: &str) -> PathBuf {
        let mut name = self.stem.clone();
        name.push(".");
        name.push(extension);
        self.side_dir.join(name)
    }

    /// The daemon's lock file, held for its whole life: one daemon per endpoint.
    #[must_use]
    pub fn daemon_lock_path(&self) -> PathBuf {
        self.side_file("lock")
    }

    /// The clients' lock file, held while one of them starts a daemon.
    #[must_use]
    pub fn startup_lock_path(&self) -> PathBuf {
        self.side_file("startup.lock")
    }

    /// Where an auto-started daemon writes its log.
    #[must_use]
    pub fn log_path(&self) -> PathBuf {
        self.side_file("log")
    }

    /// The `interprocess` name of this endpoint.
    ///
    /// # Errors
    /// If the path or pipe name is not valid for the platform.
    pub fn to_name(&self) -> io::Result<Name<'_>> {
        #[cfg(unix)]
        {
            use interprocess::local_socket::{GenericFilePath, ToFsName};
            self.socket.as_path().to_fs_name::<GenericFilePath>()
        }
        #[cfg(not(unix))]
        {
            use interprocess::local_socket::{GenericNamespaced, ToNsName};
            self.socket.as_os_str().to_ns_name::<GenericNamespaced>()
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if cfg!(unix) {
            write!(f, "{}", self.socket.display())
        } else {
            write!(f, r"\\.\pipe\{}", self.socket.display())
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    struct FakeEnv {
        socket: Option<&'static str>,
        runtime: Option<&'static str>,
    }

    impl EndpointEnv for FakeEnv {
        fn var(&self, key: &str) -> Option<OsString> {
            assert_eq!(key, SOCKET_ENV);
            self.socket.map(OsString::from)
        }
        fn runtime_dir(&self) -> Option<PathBuf> {
            self.runtime.map(PathBuf::from)
        }
        fn temp_dir(&self) -> PathBuf {
            PathBuf::from("/tmp")
        }
        fn user_tag(&self) -> String {
            "1000".into()
        }
    }

    #[test]
    fn explicit_socket_wins() {
        let env = FakeEnv {
            socket: Some("/home/a/x/my.sock"),
            runtime: Some("/run/user/1000"),
        };
        let endpoint = Endpoint::resolve_with(&env);
        assert_eq!(endpoint.socket(), Path::new("/home/a/x/my.sock"));
        assert_eq!(endpoint.dir(), Path::new("/home/a/x"));
        assert_eq!(endpoint.daemon_lock_path(), Path::new("/home/a/x/my.lock"));
        assert_eq!(
            endpoint.startup_lock_path(),
            Path::new("/home/a/x/my.startup.lock")
        );
        assert_eq!(endpoint.log_path(), Path::new("/home/a/x/my.log"));
    }

    #[test]
    fn empty_override_is_ignored_and_runtime_dir_is_next() {
        let env = FakeEnv {
            socket: Some(""),
            runtime: Some("/run/user/1000"),
        };
        let endpoint = Endpoint::resolve_with(&env);
        assert_eq!(
            endpoint.socket(),
            Path::new("/run/user/1000/tokend/tokend.sock")
        );
        assert_eq!(
            endpoint.daemon_lock_path(),
            Path::new("/run/user/1000/tokend/tokend.lock")
        );
    }

    #[test]
    fn per_user_temp_dir_is_the_fallback() {
        let env = FakeEnv {
            socket: None,
            runtime: None,
        };
        let endpoint = Endpoint::resolve_with(&env);
        assert_eq!(endpoint.socket(), Path::new("/tmp/tokend-1000/tokend.sock"));
        assert_eq!(endpoint.to_string(), "/tmp/tokend-1000/tokend.sock");
    }

    #[test]
    fn a_bare_file_name_lives_in_the_current_directory() {
        let endpoint = Endpoint::from_path("plain.sock");
        assert_eq!(endpoint.dir(), Path::new("."));
        assert!(endpoint.to_name().is_ok());
    }
}
