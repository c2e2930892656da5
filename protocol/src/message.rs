//! [`Request`] and [`Response`]: the only messages exchanged after the handshake.
//!
//! Both enums are encoded with bincode, which is not self-describing: variants and fields are
//! **append-only** and any change to their encoding bumps [`crate::PROTOCOL_VERSION`]. The golden
//! fixtures in `tests/fixtures/` pin every message's bytes. Never use serde attributes that skip or
//! flatten fields here; the bincode derives are what go on the wire (serde's `Serialize` only feeds
//! `tok`'s JSON output).

use bincode::{Decode, Encode};
use serde::Serialize;

use crate::error_code::ErrorCode;
use crate::secret::Secret;

/// A client's request. Each variant's doc names the response it gets.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum Request {
    /// Get a provider's current token. Answered by [`Response::Token`] or [`Response::Error`].
    GetToken(GetToken),
    /// Describe every provider. Answered by [`Response::Status`].
    Status,
    /// Liveness and version. Answered by [`Response::Pong`].
    Ping,
    /// Stop the daemon gracefully. Answered by [`Response::ShuttingDown`].
    Shutdown,
    /// The API rejected the provider's current token: drop it so the next request fetches a new
    /// one. Answered by [`Response::Invalidated`] or [`Response::Error`].
    Invalidate(Invalidate),
    /// Re-read the config file: validate it whole, then swap it in at once. Answered by
    /// [`Response::Reloaded`], or [`Response::Error`] with [`ErrorCode::Config`] (the old config
    /// stays in force).
    Reload,
    /// Counters and the upstream-latency histogram in the Prometheus text format. Answered by
    /// [`Response::Metrics`].
    Metrics,
    /// Which providers answer for which hosts in the credential-helper protocols (git, docker).
    /// Answered by [`Response::CredentialRoutes`].
    CredentialRoutes,
    /// Start an interactive login (`tok login`). Answered by [`Response::LoginStarted`] with
    /// what to show the person, or [`Response::Error`] (a login already in progress, a
    /// provider that does not log in).
    Login(LoginRequest),
    /// Wait until the provider's login in progress ends. Answered by [`Response::LoggedIn`],
    /// or [`Response::Error`] with [`ErrorCode::LoginRequired`] saying why it failed.
    AwaitLogin(LoginRequest),
    /// Forget the provider's session and revoke its refresh token where the server offers
    /// revocation. Answered by [`Response::LoggedOut`].
    Logout(LoginRequest),
    /// Keep a user secret (`tok secret set NAME`) in the daemon's encrypted store, for
    /// `${secret:NAME}` in the config. Answered by [`Response::Secrets`] (the one entry) or
    /// [`Response::Error`].
    SecretSet(SecretSet),
    /// The names of the user secrets and when each was set, never their values. Answered by
    /// [`Response::Secrets`].
    SecretList,
    /// Forget a user secret. Answered by [`Response::Secrets`] (the removed entry) or
    /// [`Response::Error`] ([`ErrorCode::Config`] when there is no such secret).
    SecretRemove(SecretRemove),
    /// The base URL a program should use to reach the provider's auth proxy (with the
    /// capability of a TCP listener). Answered by [`Response::ProxyUrl`] or [`Response::Error`]
    /// ([`ErrorCode::UnknownProvider`], or [`ErrorCode::Config`] when the provider has no
    /// proxy). Added in protocol 10.
    ProxyUrl(ProxyUrl),
    /// Get the OpenID Connect id_token the provider's grant returned with its access token,
    /// valid for at least `min_ttl_secs` by its own `exp`. Answered by [`Response::Token`]
    /// (the id_token as the token, presented as `Authorization: Bearer`, with its own expiry)
    /// or [`Response::Error`] ([`ErrorCode::Upstream`] when the grant returns no id_token).
    /// Added in protocol 11.
    GetIdToken(GetToken),
    /// Replace a static provider's key now through its `rotate` table (`tok rotate NAME`).
    /// Answered by [`Response::Rotated`] once the new key is in the store, or
    /// [`Response::Error`] (the old key stays in force). Added in protocol 11.
    Rotate(Rotate),
}

/// Body of [`Request::Rotate`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Rotate {
    /// The provider's name.
    pub provider: String,
}

/// Body of [`Request::ProxyUrl`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct ProxyUrl {
    /// The provider's name.
    pub provider: String,
}

/// Body of [`Request::Login`], [`Request::AwaitLogin`] and [`Request::Logout`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct LoginRequest {
    /// The provider's name.
    pub provider: String,
}

/// Body of [`Request::SecretSet`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct SecretSet {
    /// The name `${secret:NAME}` refers to (`A-Z a-z 0-9 . _ -`).
    pub name: String,
    /// The value (`Debug` is redacted; wiped on drop).
    pub value: Secret,
}

/// Body of [`Request::SecretRemove`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct SecretRemove {
    /// The secret's name.
    pub name: String,
}

/// A user secret as listed: its name and when it was set, never its value.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct SecretEntry {
    /// The name `${secret:NAME}` refers to.
    pub name: String,
    /// When it was set (Unix seconds).
    pub set_at_unix: u64,
}

/// Body of [`Request::Invalidate`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Invalidate {
    /// The provider's name.
    pub provider: String,
}

/// Body of [`Request::GetToken`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct GetToken {
    /// The provider's name (its `[providers.NAME]` table).
    pub provider: String,
    /// The token handed out must stay valid for at least this many seconds.
    pub min_ttl_secs: u32,
}

/// A [`GetToken`] borrowed from the payload it is read from: the daemon reads the hottest
/// request without allocating (see [`crate::codec::decode_get_token`]). Same encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, bincode::BorrowDecode)]
pub struct GetTokenRef<'a> {
    /// The provider's name.
    pub provider: &'a str,
    /// The token handed out must stay valid for at least this many seconds.
    pub min_ttl_secs: u32,
}

impl From<GetToken> for Request {
    fn from(value: GetToken) -> Self {
        Self::GetToken(value)
    }
}

/// The daemon's answer to one [`Request`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum Response {
    /// Answer to [`Request::GetToken`].
    Token(TokenGrant),
    /// Answer to [`Request::Status`] (boxed: it is by far the largest answer; the encoding is
    /// that of the status itself).
    Status(Box<DaemonStatus>),
    /// Answer to [`Request::Ping`].
    Pong(PingInfo),
    /// Answer to [`Request::Shutdown`]: the daemon stops after in-flight requests finish.
    ShuttingDown,
    /// Any request can fail with a typed code and a human message.
    Error(ErrorReply),
    /// Answer to [`Request::Invalidate`].
    Invalidated(Invalidation),
    /// Answer to [`Request::Reload`].
    Reloaded(ReloadSummary),
    /// Answer to [`Request::Metrics`]: Prometheus text exposition format (version 0.0.4).
    Metrics(String),
    /// Answer to [`Request::CredentialRoutes`], in provider-name order. Contains no secret.
    CredentialRoutes(Vec<CredentialRoute>),
    /// Answer to [`Request::Login`]: what the person must do.
    LoginStarted(LoginPrompt),
    /// Answer to [`Request::AwaitLogin`]: the login succeeded.
    LoggedIn(LoginOutcome),
    /// Answer to [`Request::Logout`].
    LoggedOut(LogoutOutcome),
    /// Answer to [`Request::SecretSet`], [`Request::SecretList`] and [`Request::SecretRemove`]:
    /// user secrets by name, sorted, without their values.
    Secrets(Vec<SecretEntry>),
    /// Answer to [`Request::ProxyUrl`]: the base URL, e.g. `http://127.0.0.1:8701/CAPABILITY`
    /// or `http+unix://%2Fhome%2Fa%2F.cache%2Ftokend%2Fcrm.sock`. A secret: whoever has the
    /// URL of a TCP listener can use the proxy. Added in protocol 10.
    ProxyUrl(Secret),
    /// Answer to [`Request::Rotate`]: the new key is in force (and durably stored). Added in
    /// protocol 11.
    Rotated(RotationOutcome),
}

/// Body of [`Response::Rotated`]. Contains no secret.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct RotationOutcome {
    /// The provider.
    pub provider: String,
    /// When the new key was obtained (seconds since the Unix epoch).
    pub rotated_at_unix: u64,
    /// When the next scheduled rotation is due (`every`), if one is.
    pub next_rotation_unix: Option<u64>,
}

/// Body of [`Response::LoginStarted`]. Contains no secret (the `state` in the URL is a one-time
/// value that only the daemon's redirect listener accepts).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct LoginPrompt {
    /// The provider.
    pub provider: String,
    /// Where the person goes: the authorization URL, or the device flow's verification URL.
    pub url: String,
    /// The device flow's code to enter at `url`; `None` for the authorization code flow.
    pub user_code: Option<String>,
    /// The login is abandoned after this many seconds.
    pub expires_in_secs: u64,
}

/// Body of [`Response::LoggedIn`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct LoginOutcome {
    /// The provider.
    pub provider: String,
    /// When the access token obtained expires (seconds since the Unix epoch), if known.
    pub expires_at_unix: Option<u64>,
    /// Whether the server issued a refresh token: without one the session ends when the
    /// access token expires.
    pub refreshable: bool,
}

/// Body of [`Response::LoggedOut`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct LogoutOutcome {
    /// Whether the server confirmed the revocation of the refresh token.
    pub revoked: bool,
    /// What happened, for people.
    pub message: String,
}

/// A credential-helper protocol tokend answers for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CredentialTool {
    /// `git credential` helpers (`tok git-credential`).
    Git,
    /// Docker credential helpers (`docker-credential-tok`).
    Docker,
}

/// One `git = { host = ... }` or `docker = { host = ... }` table of a provider: requests for
/// `host` are answered with the provider's token as the password.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct CredentialRoute {
    /// The provider whose token is the password.
    pub provider: String,
    /// Which protocol the route is for.
    pub tool: CredentialTool,
    /// Host name, with `:port` when the port is not the default one; lower case.
    pub host: String,
    /// The user name to answer with.
    pub username: String,
    /// The path prefix (`org/repo`, no leading or trailing `/`) git's request must be under
    /// (git sends the path with `credential.useHttpPath`); empty for the whole host. Added in
    /// protocol 11.
    pub path: String,
}

/// Body of [`Response::Reloaded`]: provider names by what the reload did to them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode, Serialize)]
pub struct ReloadSummary {
    /// New providers.
    pub added: Vec<String>,
    /// Providers whose configuration changed (their cached tokens were dropped).
    pub changed: Vec<String>,
    /// Providers no longer configured.
    pub removed: Vec<String>,
    /// Providers whose configuration did not change (they keep their cached tokens).
    pub kept: Vec<String>,
}

/// Body of [`Response::Invalidated`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Invalidation {
    /// Whether a token was dropped. `false` when there was none, or when the current token is
    /// too fresh to drop again (invalidation is rate-limited so that a misbehaving caller cannot
    /// hammer the token endpoint).
    pub dropped: bool,
    /// What happened, for people.
    pub message: String,
}

/// A token and how to present it. Decoded by hand (below), field by field as the derive would:
/// its strings go through the codec's `decode_string`, as every cache hit decodes one.
#[derive(Debug, Clone, PartialEq, Eq, Encode)]
pub struct TokenGrant {
    /// The provider that issued it.
    pub provider: String,
    /// The raw token value.
    pub token: Secret,
    /// The header to send, or `None` when the provider needs no header (anonymous access).
    pub header: Option<HeaderLine>,
    /// When the token expires (seconds since the Unix epoch), if known.
    pub expires_at_unix: Option<u64>,
}

impl<Context> Decode<Context> for TokenGrant {
    fn decode<D: bincode::de::Decoder<Context = Context>>(
        decoder: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        Ok(Self {
            provider: crate::codec::decode_string(decoder)?,
            token: Secret::decode(decoder)?,
            header: Option::<HeaderLine>::decode(decoder)?,
            expires_at_unix: Option::<u64>::decode(decoder)?,
        })
    }
}

bincode::impl_borrow_decode!(TokenGrant);

/// One HTTP header line, e.g. `Authorization: Bearer …` (decoded by hand like [`TokenGrant`]).
#[derive(Debug, Clone, PartialEq, Eq, Encode)]
pub struct HeaderLine {
    /// Header name, e.g. `Authorization` or `X-API-KEY`.
    pub name: String,
    /// Full header value, scheme included (it contains the token).
    pub value: Secret,
}

impl<Context> Decode<Context> for HeaderLine {
    fn decode<D: bincode::de::Decoder<Context = Context>>(
        decoder: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        Ok(Self {
            name: crate::codec::decode_string(decoder)?,
            value: Secret::decode(decoder)?,
        })
    }
}

bincode::impl_borrow_decode!(HeaderLine);

/// Answer to [`Request::Status`]. Contains no secret.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct DaemonStatus {
    /// The endpoint the daemon listens on.
    pub endpoint: String,
    /// The config file in use (it may not exist).
    pub config: String,
    /// One entry per configured provider, sorted by name.
    pub providers: Vec<ProviderStatus>,
    /// The durable store and the protection in force, e.g.
    /// `/home/a/.local/share/tokend/store.tokend: encrypted (key file /home/a/.config/tokend/store.key)`;
    /// empty when the daemon keeps no store. Added in protocol 7.
    pub store: String,
    /// The fleet store and its state, e.g. `redis://10.0.0.5:6379/0: connected` or
    /// `…: down since 1800000000 (…); circuit breaker open`; empty without `[fleet]`. Added in
    /// protocol 9.
    pub fleet: String,
    /// The auth proxies (`proxy = { … }`), in provider-name order. Added in protocol 10.
    pub proxies: Vec<ProxyStatus>,
    /// The token files (`file = { … }`), in provider-name order. Added in protocol 10.
    pub token_files: Vec<TokenFileStatus>,
}

/// One auth proxy. Contains no secret (never the capability of its URL).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct ProxyStatus {
    /// The provider whose token it adds.
    pub provider: String,
    /// Where it listens: `127.0.0.1:8701` or `unix:/path/to.sock`.
    pub listen: String,
    /// The one origin it forwards to, e.g. `https://crm.example.com`.
    pub upstream: String,
    /// Requests forwarded since it started (each retry after a 401 counts once more).
    pub requests: u64,
    /// The status of the last upstream answer, if any.
    pub last_status: Option<u16>,
    /// Why it is not listening (the address is taken, …), or why the last request failed.
    pub error: Option<String>,
}

/// One token file. Contains no secret.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct TokenFileStatus {
    /// The provider whose token it holds.
    pub provider: String,
    /// The file.
    pub path: String,
    /// `raw`, `header`, `json` or `env`.
    pub format: String,
    /// When the current token was written (Unix seconds), if it was.
    pub written_at_unix: Option<u64>,
    /// Why the file could not be written (or the token not obtained), if it could not.
    pub error: Option<String>,
}

/// The state of one provider. Contains no secret.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct ProviderStatus {
    /// The provider's name.
    pub name: String,
    /// Its kind (`static`, …).
    pub kind: String,
    /// Where it stands.
    pub state: ProviderState,
    /// Expiry of the cached token (seconds since the Unix epoch), if known.
    pub expires_at_unix: Option<u64>,
    /// The last failure, if the last attempt failed.
    pub last_error: Option<String>,
    /// When a token was last obtained (seconds since the Unix epoch).
    pub last_refresh_unix: Option<u64>,
    /// When the next refresh is planned (seconds since the Unix epoch), if one is.
    pub next_refresh_unix: Option<u64>,
    /// What the provider has done since the daemon started (or since it was last reconfigured).
    pub counters: ProviderCounters,
    /// Where the cached token came from: `upstream`, `fleet` (another tokend of the fleet
    /// fetched it), `store` (kept across a restart); empty without one. Added in protocol 9.
    pub origin: String,
    /// The fleet-wide name of a shared provider (`share`); empty otherwise. Added in protocol 9.
    pub share: String,
    /// Expiry of the cached id_token (seconds since the Unix epoch), when the grant returned
    /// one. Added in protocol 11.
    pub id_token_expires_at_unix: Option<u64>,
    /// When tokend last replaced the provider's key through its `rotate` table (seconds since
    /// the Unix epoch). Added in protocol 11.
    pub rotated_at_unix: Option<u64>,
    /// When the next scheduled rotation (`every`) is due. Added in protocol 11.
    pub next_rotation_unix: Option<u64>,
    /// Why the last rotation failed (the key in force stayed), if it did. Added in protocol 11.
    pub rotation_error: Option<String>,
}

/// Per-provider counters. Contains no secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Encode, Decode, Serialize)]
pub struct ProviderCounters {
    /// Token requests.
    pub requests: u64,
    /// Requests answered from the cache without waiting.
    pub cache_hits: u64,
    /// Tokens obtained from the source (foreground and background).
    pub refreshes: u64,
    /// Failed attempts to obtain a token.
    pub failures: u64,
}

/// Lifecycle state of a provider's token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderState {
    /// No token obtained yet (nothing has asked for one).
    Idle,
    /// A valid token is cached.
    Fresh,
    /// The last attempt failed and no valid token is cached; see `last_error`.
    Error,
    /// A refresh is in flight (a still-valid token may be served meanwhile).
    Refreshing,
    /// The cached token has expired; the next request fetches a new one.
    Expired,
    /// Only an interactive login can produce a new token (`tok login NAME`).
    NeedsLogin,
}

impl ProviderState {
    /// Stable lower-case name for display.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Fresh => "fresh",
            Self::Error => "error",
            Self::Refreshing => "refreshing",
            Self::Expired => "expired",
            Self::NeedsLogin => "needs-login",
        }
    }
}

/// Answer to [`Request::Ping`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize)]
pub struct PingInfo {
    /// The daemon's package version.
    pub daemon_version: String,
    /// The daemon's [`crate::PROTOCOL_VERSION`].
    pub protocol: u32,
    /// The daemon's process id.
    pub pid: u32,
    /// Seconds since the daemon started.
    pub uptime_secs: u64,
}

/// Body of [`Response::Error`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct ErrorReply {
    /// What kind of failure (clients branch on this).
    pub code: ErrorCode,
    /// A human explanation with the next step; never contains a secret.
    pub message: String,
}

impl Response {
    /// Shorthand for an error response.
    #[must_use]
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Error(ErrorReply {
            code,
            message: message.into(),
        })
    }
}
