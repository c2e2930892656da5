#![warn(missing_docs)]
//! The wire contract between `tokend` and its clients.
//!
//! A connection is a sequence of length-prefixed frames ([`frame`]): first the frozen handshake
//! ([`handshake`]) in each direction, then one bincode-encoded ([`codec`]) [`Request`] answered by
//! one [`Response`], repeated until either side closes. [`endpoint`] says where the daemon
//! listens. This crate holds no runtime policy: no process spawning, no config files, no runtime.
//! It also holds the few rules the daemon and its clients must apply identically (one
//! implementation each): private files and directories, the duration grammar, the name rule and
//! the Unix-epoch clock.
//!
//! Compatibility rule: the daemon and its clients ship together, so the rule is strict equality
//! of [`PROTOCOL_VERSION`], checked in the handshake before any bincode payload. The enums are
//! append-only and pinned by golden byte fixtures (`tests/fixtures/`).
//!
//! # Layout
//! - [`version`] — `PROTOCOL_VERSION`.
//! - [`handshake`] — the frozen hello/welcome frames.
//! - [`message`] — `Request` / `Response` and their bodies.
//! - [`error_code`] — the typed reason in every error response.
//! - [`secret`] — the redacted, zeroizing `Secret`.
//! - [`codec`] — the single bincode configuration.
//! - [`frame`] — framing, `MAX_FRAME_LEN`, and messages that span frames (`MORE`).
//! - [`endpoint`] — socket / pipe naming.
//! - [`error`] — `ProtocolError`.
//! - [`private`] — private files and directories (0700 / 0600, owner check, no symlink
//!   following, atomic replacement, lock files).
//! - [`duration`] — the duration grammar (`90s`, `15m`, `2h`, `1d`).
//! - [`name`] — the provider- and secret-name rule.
//! - [`clock`] — seconds since the Unix epoch.
//! - [`host`] — which hosts are loopback (where plain `http://` is allowed).
//! - [`peer_user`] — the same-user rule both ends of a Windows pipe apply.
//! - `win32` (Windows only) — a process's user SID, a pipe's security descriptor, cancelling
//!   blocked I/O: the workspace's only `unsafe` code.

pub mod clock;
pub mod codec;
pub mod duration;
pub mod endpoint;
pub mod error;
pub mod error_code;
pub mod frame;
pub mod handshake;
pub mod host;
pub mod message;
pub mod name;
pub mod peer_user;
pub mod private;
pub mod secret;
pub mod version;
#[cfg(windows)]
pub mod win32;

pub use endpoint::Endpoint;
pub use error::ProtocolError;
pub use error_code::ErrorCode;
pub use frame::{MAX_FRAME_LEN, MAX_HANDSHAKE_LEN};
pub use message::{
    CredentialRoute, CredentialTool, DaemonStatus, ErrorReply, GetToken, GetTokenRef, HeaderLine,
    Invalidate, Invalidation, LoginOutcome, LoginPrompt, LoginRequest, LogoutOutcome, PingInfo,
    ProviderCounters, ProviderState, ProviderStatus, ProxyStatus, ProxyUrl, ReloadSummary, Request,
    Response, Rotate, RotationOutcome, SecretEntry, SecretRemove, SecretSet, TokenFileStatus,
    TokenGrant,
};
pub use name::{NAME_RULE, is_valid_name, token_var};
pub use secret::{Secret, SecretBuf};
pub use version::{PACKAGE_VERSION, PROTOCOL_VERSION};
