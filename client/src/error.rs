//! [`Error`]: everything the client library can report, and the `tok` exit code for each.

use std::io;
use std::path::PathBuf;

use tokend_protocol::{ErrorCode, ProtocolError};

/// Exit codes of `tok`, stable and documented in the README.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// Any other error.
    pub const OTHER: u8 = 1;
    /// Usage or configuration error.
    pub const USAGE_OR_CONFIG: u8 = 2;
    /// The daemon is unreachable or could not be started.
    pub const UNREACHABLE: u8 = 3;
    /// No such provider.
    pub const UNKNOWN_PROVIDER: u8 = 4;
    /// The token endpoint or another upstream failed.
    pub const UPSTREAM: u8 = 5;
    /// Only an interactive login can help (`tok login NAME`).
    pub const LOGIN_REQUIRED: u8 = 6;
}

/// A failed client operation. Every message names what failed and the next step.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No daemon listens at the endpoint and auto-start is off (or not allowed for this call).
    #[error("tokend is not running at {endpoint}{hint}")]
    NotRunning {
        /// The endpoint that was tried.
        endpoint: String,
        /// What to do about it.
        hint: &'static str,
    },
    /// Connecting failed for another reason than "nobody listens".
    #[error("could not connect to tokend at {endpoint}: {source}")]
    Connect {
        /// The endpoint that was tried.
        endpoint: String,
        /// The underlying error.
        source: io::Error,
    },
    /// The endpoint is served by a process of another user (Windows: the pipe server's token):
    /// nothing was sent to it.
    #[error(
        "refusing to talk to {endpoint}: {reason}; nothing was sent to it. Another user's \
         program may hold the pipe name: stop it, or point TOKEND_SOCKET at another name"
    )]
    NotOurs {
        /// The endpoint.
        endpoint: String,
        /// Who serves it, and who we are.
        reason: String,
    },
    /// Auto-start was attempted and failed.
    #[error("could not start tokend ({program}): {reason}{}", log_hint(log.as_ref()))]
    StartFailed {
        /// The daemon binary that was (or would have been) run.
        program: String,
        /// What went wrong, with the daemon's last log lines when it exited.
        reason: String,
        /// The auto-started daemon's log file.
        log: Option<PathBuf>,
        /// The daemon exited because its configuration is invalid (exit code 2).
        config_error: bool,
    },
    /// The daemon speaks another protocol version.
    #[error(
        "incompatible daemon at {endpoint}: tokend {daemon_version} (pid {pid}) speaks protocol \
         {daemon_protocol}, this client speaks protocol {client_protocol}; restart it: \
         `kill {pid}` (or `tok stop` from the matching version), then retry"
    )]
    Incompatible {
        /// The endpoint.
        endpoint: String,
        /// The daemon's protocol version.
        daemon_protocol: u32,
        /// The client's protocol version.
        client_protocol: u32,
        /// The daemon's package version.
        daemon_version: String,
        /// The daemon's pid.
        pid: u32,
    },
    /// The daemon did not answer in time.
    #[error(
        "tokend at {endpoint} did not answer within {seconds} s; check its log or restart it with `tok stop`"
    )]
    Timeout {
        /// The endpoint.
        endpoint: String,
        /// The timeout that expired.
        seconds: u64,
    },
    /// Framing or decoding failed.
    #[error("talking to tokend at {endpoint}: {source}")]
    Protocol {
        /// The endpoint.
        endpoint: String,
        /// The underlying error.
        source: ProtocolError,
    },
    /// The daemon refused or failed the request.
    #[error("{message}")]
    Daemon {
        /// Why, as a typed code.
        code: ErrorCode,
        /// The daemon's explanation.
        message: String,
    },
    /// The daemon answered with a response that does not fit the request.
    #[error("tokend answered {got} to a {request} request; restart it with `tok stop`")]
    UnexpectedResponse {
        /// The request sent.
        request: &'static str,
        /// The kind of response received.
        got: &'static str,
    },
}

fn log_hint(log: Option<&PathBuf>) -> String {
    log.map(|path| format!(" (daemon log: {})", path.display()))
        .unwrap_or_default()
}

impl Error {
    /// The daemon's error code, if the daemon answered with an error.
    #[must_use]
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Daemon { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The `tok` exit code for this error (see [`exit`]).
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::NotRunning { .. }
            | Self::Connect { .. }
            | Self::NotOurs { .. }
            | Self::Incompatible { .. }
            | Self::Timeout { .. } => exit::UNREACHABLE,
            Self::StartFailed { config_error, .. } => {
                if *config_error {
                    exit::USAGE_OR_CONFIG
                } else {
                    exit::UNREACHABLE
                }
            }
            Self::Protocol { .. } | Self::UnexpectedResponse { .. } => exit::OTHER,
            Self::Daemon { code, .. } => match code {
                ErrorCode::UnknownProvider => exit::UNKNOWN_PROVIDER,
                ErrorCode::Config | ErrorCode::BadRequest => exit::USAGE_OR_CONFIG,
                ErrorCode::Upstream => exit::UPSTREAM,
                ErrorCode::LoginRequired => exit::LOGIN_REQUIRED,
                ErrorCode::ShuttingDown => exit::UNREACHABLE,
                ErrorCode::Internal => exit::OTHER,
            },
        }
    }
}
