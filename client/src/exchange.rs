//! What the blocking and the async client send and expect back: the token request built from
//! [`GetOptions`], and each call's response turned into its result. A daemon error becomes
//! [`Error::Daemon`]; any other response than the expected one, [`Error::UnexpectedResponse`].

use tokend_protocol::{
    DaemonStatus, GetToken, Invalidation, PingInfo, Request, Response, RotationOutcome, SecretEntry,
};

use crate::{Error, GetOptions, Token};

/// The request of [`crate::Client::get_with`] (the lifetime in whole seconds, saturated).
pub(crate) fn get_request(provider: &str, options: &GetOptions) -> Request {
    Request::GetToken(get_token(provider, options))
}

/// The request of [`crate::Client::get_id_token_with`].
pub(crate) fn get_id_token_request(provider: &str, options: &GetOptions) -> Request {
    Request::GetIdToken(get_token(provider, options))
}

fn get_token(provider: &str, options: &GetOptions) -> GetToken {
    GetToken {
        provider: provider.to_owned(),
        min_ttl_secs: u32::try_from(options.min_ttl.as_secs()).unwrap_or(u32::MAX),
    }
}

/// The request of [`crate::Client::rotate`].
pub(crate) fn rotate_request(provider: &str) -> Request {
    Request::Rotate(tokend_protocol::Rotate {
        provider: provider.to_owned(),
    })
}

pub(crate) fn expect_rotated(response: Response) -> Result<RotationOutcome, Error> {
    match response {
        Response::Rotated(outcome) => Ok(outcome),
        other => Err(daemon_error(other, "rotate")),
    }
}

fn unexpected(request: &'static str, response: &Response) -> Error {
    let got = match response {
        Response::Token(_) => "a token",
        Response::Status(_) => "a status",
        Response::Pong(_) => "a pong",
        Response::ShuttingDown => "shutting-down",
        Response::Error(_) => "an error",
        Response::Invalidated(_) => "invalidated",
        Response::Metrics(_) => "metrics",
        Response::CredentialRoutes(_) => "credential routes",
        Response::LoginStarted(_) => "login started",
        Response::LoggedIn(_) => "logged in",
        Response::LoggedOut(_) => "logged out",
        Response::Reloaded(_) => "reloaded",
        Response::Secrets(_) => "secrets",
        Response::ProxyUrl(_) => "a proxy URL",
        Response::Rotated(_) => "rotated",
    };
    Error::UnexpectedResponse { request, got }
}

/// The single entry of a [`Response::Secrets`] answering a set or a remove.
pub(crate) fn one_secret(response: Response, request: &'static str) -> Result<SecretEntry, Error> {
    match response {
        Response::Secrets(mut entries) if entries.len() == 1 => Ok(entries.remove(0)),
        other => Err(daemon_error(other, request)),
    }
}

pub(crate) fn daemon_error(response: Response, request: &'static str) -> Error {
    match response {
        Response::Error(reply) => Error::Daemon {
            code: reply.code,
            message: reply.message,
        },
        other => unexpected(request, &other),
    }
}

pub(crate) fn expect_token(response: Response) -> Result<Token, Error> {
    match response {
        Response::Token(grant) => Ok(grant.into()),
        other => Err(daemon_error(other, "get")),
    }
}

pub(crate) fn expect_status(response: Response) -> Result<DaemonStatus, Error> {
    match response {
        Response::Status(status) => Ok(*status),
        other => Err(daemon_error(other, "status")),
    }
}

pub(crate) fn expect_pong(response: Response) -> Result<PingInfo, Error> {
    match response {
        Response::Pong(info) => Ok(info),
        other => Err(daemon_error(other, "ping")),
    }
}

pub(crate) fn expect_invalidated(response: Response) -> Result<Invalidation, Error> {
    match response {
        Response::Invalidated(outcome) => Ok(outcome),
        other => Err(daemon_error(other, "invalidate")),
    }
}

pub(crate) fn expect_shutting_down(response: Response) -> Result<(), Error> {
    match response {
        Response::ShuttingDown => Ok(()),
        other => Err(daemon_error(other, "shutdown")),
    }
}
