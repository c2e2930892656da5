//! Client library for `tokend`, the per-user token-cache daemon, and the `tok` shell helper.
//!
//! ```no_run
//! let mut client = tokend_client::Client::new();
//! let token = client.get("crm")?;
//! if let Some(header) = &token.header {
//!     // e.g. `Authorization: Bearer eyJ…`; `header.value.expose()` is the secret part.
//!     println!("send header {}", header.name);
//! }
//! # Ok::<(), tokend_client::Error>(())
//! ```
//!
//! The blocking [`Client`] needs no async runtime. It keeps one connection open and reuses it,
//! reconnecting once if the daemon closed it. If no daemon answers it starts one (see
//! [`autostart`]) unless `TOKEND_NO_AUTOSTART=1`. With the `tokio` feature, [`AsyncClient`]
//! offers the same calls as `async fn`s.
//!
//! # Features
//! - `cli` (default): the command-line tools `tok` and `docker-credential-tok` and the modules
//!   only they use. A program that only needs the library sets `default-features = false` and
//!   compiles no argument parser.
//! - `tokio`: `AsyncClient`, the async client.
//!
//! # Layout
//! - `lib.rs` — [`Client`], [`ClientBuilder`], [`Token`], [`Header`], [`GetOptions`]: the
//!   blocking API.
//! - `connection` — one blocking connection: connect, handshake, request/response round trips.
//! - `pool` — the idle connections a client and its clones share.
//! - [`middleware`] (feature `reqwest`) — `TokendAuth`, the reqwest-middleware layer.
//! - `exchange` — the requests both clients build and the responses each call expects.
//! - `nonblocking` (feature `tokio`) — `AsyncClient`, the same calls on tokio.
//! - [`autostart`] — starting a daemon when none answers (startup lock, spawn, readiness).
//! - [`error`] — [`Error`] and `tok`'s exit codes.
//! - `cli` (feature `cli`) — `tok` (`cli::run`; the binary is a one-line wrapper):
//!   - `cli/args` — the clap definitions and help texts.
//!   - `cli/fast` — `tok get NAME` / `tok header NAME` parsed without clap.
//!   - `cli/execute` — running a parsed command, `tok login`'s conversation.
//!   - `cli/output` — the status table, the JSON outputs, the secret list.
//!   - `cli/secret_input` — reading the value of `tok secret set`.
//! - `shell` (feature `cli`) — `tok env`, starting programs, `tok curl`, the "waiting" notice,
//!   completions, opening the browser.
//! - `credential` (feature `cli`) — the git and Docker credential-helper protocols
//!   (`tok git-credential`, `docker-credential-tok`).
//! - `service` (feature `cli`) — `tok service` (systemd units, launchd agent).
//! - `supervise` (feature `cli`) — `tok exec`: several providers' tokens in one program's
//!   environment, and the supervisor that restarts or signals it when a token is replaced.
//! - `timefmt` (feature `cli`) — RFC 3339 timestamps and short durations for `tok`'s output.
//! - `watchdog` (Windows) — the deadline of each blocking call on a named pipe.

pub mod autostart;
#[cfg(feature = "cli")]
pub mod cli;
mod connection;
#[cfg(feature = "cli")]
pub mod credential;
pub mod error;
mod exchange;
#[cfg(feature = "reqwest")]
pub mod middleware;
#[cfg(feature = "tokio")]
mod nonblocking;
mod pool;
#[cfg(feature = "cli")]
mod service;
#[cfg(feature = "cli")]
mod shell;
#[cfg(feature = "cli")]
mod supervise;
#[cfg(feature = "cli")]
mod timefmt;
#[cfg(windows)]
mod watchdog;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use pool::Pool;

pub use error::Error;
#[cfg(feature = "tokio")]
pub use nonblocking::AsyncClient;
pub use tokend_protocol::{
    CredentialRoute, CredentialTool, DaemonStatus, Endpoint, ErrorCode, Invalidation, LoginOutcome,
    LoginPrompt, LogoutOutcome, PingInfo, ProviderState, ProviderStatus, ProxyStatus,
    ReloadSummary, RotationOutcome, Secret, SecretEntry, TokenFileStatus,
};
use tokend_protocol::{
    Invalidate, LoginRequest, Request, Response, SecretRemove, SecretSet, TokenGrant, clock,
};

use crate::connection::{Connection, connection_lost};
use crate::exchange::{
    daemon_error, expect_invalidated, expect_pong, expect_rotated, expect_shutting_down,
    expect_status, expect_token, get_id_token_request, get_request, one_secret, rotate_request,
};

/// Default minimum remaining lifetime of a token handed out.
pub const DEFAULT_MIN_TTL: Duration = Duration::from_secs(30);
/// Default per-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default wait for an auto-started daemon to become ready.
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// A token, ready to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The provider that issued it.
    pub provider: String,
    /// The raw token value.
    pub value: Secret,
    /// The header to send, or `None` for providers that need none (anonymous access).
    pub header: Option<Header>,
    /// When it expires, if known.
    pub expires_at: Option<SystemTime>,
}

/// One HTTP header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Header name, e.g. `Authorization`.
    pub name: String,
    /// Header value, scheme included; contains the token.
    pub value: Secret,
}

impl Header {
    /// The full header line, `Name: value`.
    #[must_use]
    pub fn line(&self) -> Secret {
        Secret::new(format!("{}: {}", self.name, self.value.expose()))
    }
}

impl From<TokenGrant> for Token {
    fn from(grant: TokenGrant) -> Self {
        Self {
            provider: grant.provider,
            value: grant.token,
            header: grant.header.map(|h| Header {
                name: h.name,
                value: h.value,
            }),
            expires_at: grant.expires_at_unix.and_then(clock::from_unix_secs),
        }
    }
}

/// Options of [`Client::get_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GetOptions {
    /// The token must remain valid for at least this long (default 30 s).
    pub min_ttl: Duration,
}

impl Default for GetOptions {
    fn default() -> Self {
        Self {
            min_ttl: DEFAULT_MIN_TTL,
        }
    }
}

/// Settings shared by the blocking and async clients.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) endpoint: Endpoint,
    pub(crate) autostart: bool,
    pub(crate) timeout: Duration,
    pub(crate) startup_timeout: Duration,
    pub(crate) daemon_program: Option<PathBuf>,
}

/// Builds a [`Client`] (or an `AsyncClient`) with non-default settings.
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    settings: Settings,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self {
            settings: Settings {
                endpoint: Endpoint::resolve(),
                autostart: !autostart::disabled_by_env(),
                timeout: DEFAULT_TIMEOUT,
                startup_timeout: DEFAULT_STARTUP_TIMEOUT,
                daemon_program: None,
            },
        }
    }
}

impl ClientBuilder {
    /// Talk to this endpoint instead of the resolved default.
    #[must_use]
    pub fn endpoint(mut self, endpoint: Endpoint) -> Self {
        self.settings.endpoint = endpoint;
        self
    }

    /// Start the daemon when none answers (default: on, unless `TOKEND_NO_AUTOSTART=1`).
    #[must_use]
    pub fn autostart(mut self, enabled: bool) -> Self {
        self.settings.autostart = enabled;
        self
    }

    /// Per-request timeout (default 30 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.settings.timeout = timeout;
        self
    }

    /// How long an auto-started daemon may take to become ready (default 10 s).
    #[must_use]
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.settings.startup_timeout = timeout;
        self
    }

    /// The daemon binary to auto-start (default: see [`autostart::daemon_program`]).
    #[must_use]
    pub fn daemon_program(mut self, program: impl AsRef<Path>) -> Self {
        self.settings.daemon_program = Some(program.as_ref().to_path_buf());
        self
    }

    /// A blocking client with these settings (it connects on first use).
    #[must_use]
    pub fn build(self) -> Client {
        Client {
            inner: Arc::new(Shared {
                settings: self.settings,
                pool: Pool::new(),
            }),
        }
    }

    /// An async client with these settings (it connects on first use).
    #[cfg(feature = "tokio")]
    #[must_use]
    pub fn build_async(self) -> AsyncClient {
        AsyncClient::from_settings(self.settings)
    }
}

/// Blocking client. Cheap to create and to clone; connects on first use and keeps the
/// connection. Clones share their idle connections, and every method takes `&self`, so one
/// client (or its clones) serves any number of threads at once: each call runs on a
/// connection of its own, opened when none is idle (at most 64 idle ones are kept).
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    settings: Settings,
    pool: Pool<Connection>,
}

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether a call may start the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    IfNeeded,
    Never,
}

impl Client {
    /// A client for the resolved endpoint with default settings.
    #[must_use]
    pub fn new() -> Self {
        ClientBuilder::default().build()
    }

    /// A builder for non-default settings.
    #[must_use]
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// The endpoint this client talks to.
    #[must_use]
    pub fn endpoint(&self) -> &Endpoint {
        &self.inner.settings.endpoint
    }

    /// A provider's token, valid for at least the default 30 s.
    ///
    /// # Errors
    /// See [`Error`]; [`Error::exit_code`] maps each to `tok`'s exit codes.
    pub fn get(&self, provider: &str) -> Result<Token, Error> {
        self.get_with(provider, &GetOptions::default())
    }

    /// A provider's token with explicit options.
    ///
    /// # Errors
    /// See [`Error`].
    pub fn get_with(&self, provider: &str, options: &GetOptions) -> Result<Token, Error> {
        let response = self.call(&get_request(provider, options), Start::IfNeeded)?;
        expect_token(response)
    }

    /// The OpenID Connect id_token that came with the provider's token (kubelogin's default
    /// credential), valid for at least the default 30 s by its own `exp`: [`Token::value`] is
    /// the id_token, [`Token::header`] `Authorization: Bearer <id_token>`, [`Token::expires_at`]
    /// its expiry.
    ///
    /// # Errors
    /// [`Error::Daemon`] with [`ErrorCode::Upstream`] when the grant returns no id_token (ask
    /// for the `openid` scope); see [`Error`].
    pub fn get_id_token(&self, provider: &str) -> Result<Token, Error> {
        self.get_id_token_with(provider, &GetOptions::default())
    }

    /// [`Client::get_id_token`] with explicit options.
    ///
    /// # Errors
    /// See [`Client::get_id_token`].
    pub fn get_id_token_with(&self, provider: &str, options: &GetOptions) -> Result<Token, Error> {
        let response = self.call(&get_id_token_request(provider, options), Start::IfNeeded)?;
        expect_token(response)
    }

    /// Replaces a static provider's key now through its `rotate` table (`tok rotate`): the new
    /// key is in the daemon's store before it is served, and the old one is never served
    /// again. Starts the daemon if needed.
    ///
    /// # Errors
    /// [`Error::Daemon`] with [`ErrorCode::Config`] when the provider has no `rotate` table, or
    /// [`ErrorCode::Upstream`] when the rotation failed (the old key stays); see [`Error`].
    pub fn rotate(&self, provider: &str) -> Result<RotationOutcome, Error> {
        expect_rotated(self.call(&rotate_request(provider), Start::IfNeeded)?)
    }

    /// The daemon's view of every provider (starts the daemon if needed).
    ///
    /// # Errors
    /// See [`Error`].
    pub fn status(&self) -> Result<DaemonStatus, Error> {
        expect_status(self.call(&Request::Status, Start::IfNeeded)?)
    }

    /// Tells the daemon that the API rejected the provider's current token: it is dropped and
    /// the next request fetches a new one. Invalidations of one provider closer together than
    /// a few seconds are ignored (`dropped` is then `false`), so a misbehaving caller cannot
    /// hammer the token endpoint. Never starts a daemon (no daemon, no cached token).
    ///
    /// # Errors
    /// See [`Error`].
    pub fn invalidate(&self, provider: &str) -> Result<Invalidation, Error> {
        let request = Request::Invalidate(Invalidate {
            provider: provider.to_owned(),
        });
        expect_invalidated(self.call(&request, Start::Never)?)
    }

    /// Makes the running daemon re-read its config file (never starts one). The whole new config
    /// is validated first; if it is invalid the daemon keeps the old one and this returns
    /// [`Error::Daemon`] with [`ErrorCode::Config`] naming the problem.
    ///
    /// # Errors
    /// See [`Error`].
    pub fn reload(&self) -> Result<ReloadSummary, Error> {
        match self.call(&Request::Reload, Start::Never)? {
            Response::Reloaded(summary) => Ok(summary),
            other => Err(daemon_error(other, "reload")),
        }
    }

    /// Keeps `value` in the daemon's encrypted store as the user secret `name`, for
    /// `${secret:NAME}` in the config (starts the daemon if needed). Returns its entry.
    ///
    /// # Errors
    /// [`ErrorCode::Config`] for an invalid name or value, or see [`Error`].
    pub fn secret_set(&self, name: &str, value: Secret) -> Result<SecretEntry, Error> {
        let request = Request::SecretSet(SecretSet {
            name: name.to_owned(),
            value,
        });
        one_secret(self.call(&request, Start::IfNeeded)?, "secret set")
    }

    /// The user secrets' names and when each was set, never their values (starts the daemon
    /// if needed).
    ///
    /// # Errors
    /// See [`Error`].
    pub fn secret_list(&self) -> Result<Vec<SecretEntry>, Error> {
        match self.call(&Request::SecretList, Start::IfNeeded)? {
            Response::Secrets(entries) => Ok(entries),
            other => Err(daemon_error(other, "secret list")),
        }
    }

    /// Removes the user secret `name` (starts the daemon if needed). Returns its entry.
    ///
    /// # Errors
    /// [`ErrorCode::Config`] when there is no such secret, or see [`Error`].
    pub fn secret_remove(&self, name: &str) -> Result<SecretEntry, Error> {
        let request = Request::SecretRemove(SecretRemove {
            name: name.to_owned(),
        });
        one_secret(self.call(&request, Start::IfNeeded)?, "secret rm")
    }

    /// The running daemon's counters and upstream-latency histogram in the Prometheus text
    /// format (never starts a daemon).
    ///
    /// # Errors
    /// See [`Error`].
    pub fn metrics(&self) -> Result<String, Error> {
        match self.call(&Request::Metrics, Start::Never)? {
            Response::Metrics(text) => Ok(text),
            other => Err(daemon_error(other, "metrics")),
        }
    }

    /// Which providers answer for which hosts in the git and Docker credential-helper protocols
    /// (the providers' `git` and `docker` tables). Starts the daemon if needed: a credential
    /// helper is often the first thing that asks for a token after login.
    ///
    /// # Errors
    /// See [`Error`].
    pub fn credential_routes(&self) -> Result<Vec<CredentialRoute>, Error> {
        match self.call(&Request::CredentialRoutes, Start::IfNeeded)? {
            Response::CredentialRoutes(routes) => Ok(routes),
            other => Err(daemon_error(other, "credential routes")),
        }
    }

    /// The base URL of `provider`'s auth proxy (`tok proxy-url`): `http://127.0.0.1:PORT/CAP`
    /// for a TCP listener (the capability path is part of it: treat the URL as a secret), or
    /// `http+unix://PERCENT-ENCODED-PATH` for a Unix socket. Starts the daemon if needed.
    ///
    /// # Errors
    /// [`Error::Daemon`] with [`ErrorCode::Config`] when the provider has no proxy, or it is not
    /// listening; see [`Error`].
    pub fn proxy_url(&self, provider: &str) -> Result<Secret, Error> {
        let request = Request::ProxyUrl(tokend_protocol::ProxyUrl {
            provider: provider.to_owned(),
        });
        match self.call(&request, Start::IfNeeded)? {
            Response::ProxyUrl(url) => Ok(url),
            other => Err(daemon_error(other, "proxy URL")),
        }
    }

    /// Starts an interactive login for `provider` (`tok login`): the daemon prepares the flow
    /// and answers with what the person must do (open the URL; for the device flow, enter the
    /// code). Then call [`Client::await_login`]. Starts the daemon if needed.
    ///
    /// # Errors
    /// [`Error::Daemon`] with [`ErrorCode::BadRequest`] when a login is already in progress or
    /// the provider does not log in; see [`Error`].
    pub fn login(&self, provider: &str) -> Result<LoginPrompt, Error> {
        let request = Request::Login(LoginRequest {
            provider: provider.to_owned(),
        });
        match self.call(&request, Start::IfNeeded)? {
            Response::LoginStarted(prompt) => Ok(prompt),
            other => Err(daemon_error(other, "login")),
        }
    }

    /// Waits up to `wait` for the login in progress to end, on a connection of its own (the
    /// client's usual timeout is far shorter than a person takes to log in).
    ///
    /// # Errors
    /// [`Error::Daemon`] with [`ErrorCode::LoginRequired`] saying why the login failed;
    /// [`Error::Timeout`] after `wait`; see [`Error`].
    pub fn await_login(&self, provider: &str, wait: Duration) -> Result<LoginOutcome, Error> {
        let mut connection = Connection::open(&self.inner.settings.endpoint, wait)?;
        let request = Request::AwaitLogin(LoginRequest {
            provider: provider.to_owned(),
        });
        match connection.call(&request)? {
            Response::LoggedIn(outcome) => Ok(outcome),
            other => Err(daemon_error(other, "await login")),
        }
    }

    /// Forgets `provider`'s session (also from the store) and revokes its refresh token where
    /// the server offers revocation. Starts the daemon if needed: the session is on disk.
    ///
    /// # Errors
    /// See [`Error`].
    pub fn logout(&self, provider: &str) -> Result<LogoutOutcome, Error> {
        let request = Request::Logout(LoginRequest {
            provider: provider.to_owned(),
        });
        match self.call(&request, Start::IfNeeded)? {
            Response::LoggedOut(outcome) => Ok(outcome),
            other => Err(daemon_error(other, "logout")),
        }
    }

    /// Version and liveness of a running daemon (never starts one).
    ///
    /// # Errors
    /// [`Error::NotRunning`] when no daemon answers, or see [`Error`].
    pub fn ping(&self) -> Result<PingInfo, Error> {
        expect_pong(self.call(&Request::Ping, Start::Never)?)
    }

    /// Stops a running daemon gracefully and waits until it has exited (never starts one).
    ///
    /// # Errors
    /// [`Error::NotRunning`] when no daemon answers, or see [`Error`].
    pub fn shutdown(&self) -> Result<(), Error> {
        expect_shutting_down(self.call(&Request::Shutdown, Start::Never)?)?;
        self.inner.pool.clear();
        wait_for_exit(&self.inner.settings.endpoint, self.inner.settings.timeout);
        Ok(())
    }

    fn call(&self, request: &Request, start: Start) -> Result<Response, Error> {
        let pool = &self.inner.pool;
        if let Some(mut connection) = pool.take() {
            match connection.call(request) {
                Ok(response) => {
                    pool.give(connection);
                    return Ok(response);
                }
                // The daemon closed an idle connection or restarted (then the other idle ones
                // are gone too): one fresh attempt.
                Err(err) if connection_lost(&err) => pool.clear(),
                Err(err) => return Err(err),
            }
        }
        let mut connection = self.connect(start)?;
        let response = connection.call(request)?;
        pool.give(connection);
        Ok(response)
    }

    /// Closes the idle connections (`tok exec` before a long-running program).
    #[cfg(feature = "cli")]
    pub(crate) fn disconnect(&self) {
        self.inner.pool.clear();
    }

    fn connect(&self, start: Start) -> Result<Connection, Error> {
        let settings = &self.inner.settings;
        match Connection::open(&settings.endpoint, settings.timeout) {
            Err(Error::NotRunning { endpoint, .. }) => {
                if start == Start::Never {
                    return Err(Error::NotRunning { endpoint, hint: "" });
                }
                if !settings.autostart {
                    return Err(Error::NotRunning {
                        endpoint,
                        hint: autostart::off_hint(),
                    });
                }
            }
            other => return other,
        }
        let _lock = autostart::StartupLock::acquire(&settings.endpoint, settings.startup_timeout)?;
        // Another caller may have started it while we waited for the lock.
        match Connection::open(&settings.endpoint, settings.timeout) {
            Err(Error::NotRunning { .. }) => {}
            other => return other,
        }
        let program = autostart::daemon_program(settings.daemon_program.as_deref());
        autostart::spawn_and_wait(&settings.endpoint, &program, settings.startup_timeout)?;
        Connection::open(&settings.endpoint, settings.timeout)
    }
}

/// Waits (bounded) until the daemon at `endpoint` has released its lock, i.e. exited.
fn wait_for_exit(endpoint: &Endpoint, timeout: Duration) {
    let Ok(file) = std::fs::File::open(endpoint.daemon_lock_path()) else {
        return;
    };
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // The daemon holds this lock for its whole life; getting it means the daemon is gone.
        let _ = sender.send(file.lock());
    });
    let _ = receiver.recv_timeout(timeout);
}
