//! [`ErrorCode`]: the typed reason carried by every error response, so clients can branch on it.

use bincode::{Decode, Encode};
use serde::Serialize;

/// Why the daemon refused or failed a request. Append-only (see [`crate::PROTOCOL_VERSION`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request was malformed or not valid at this point.
    BadRequest,
    /// No provider with that name is configured.
    UnknownProvider,
    /// The provider's configuration cannot produce a token (for example a secret reference that
    /// does not resolve).
    Config,
    /// The token endpoint or another upstream failed.
    Upstream,
    /// Only an interactive login (`tok login NAME`) can produce a token.
    LoginRequired,
    /// The daemon is shutting down and takes no new work.
    ShuttingDown,
    /// A bug or an unexpected failure inside the daemon.
    Internal,
}

impl ErrorCode {
    /// Stable lower-case name, used in logs and JSON output.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::UnknownProvider => "unknown_provider",
            Self::Config => "config",
            Self::Upstream => "upstream",
            Self::LoginRequired => "login_required",
            Self::ShuttingDown => "shutting_down",
            Self::Internal => "internal",
        }
    }
}
