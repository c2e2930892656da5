//! The only `match` on [`Request`]: maps each request to its handler (see [`super::handlers`]).
//! Handlers never see the socket; the connection task does all I/O.

use std::sync::Arc;

use tokend_protocol::{ErrorCode, ProtocolError, Request, Response, codec};

use super::audit::ConnectionAudit;
use super::handlers::{control, login, secrets, token};
use super::state::State;
use crate::provider::{CachedGrant, Provider, Wanted};

/// What the connection sends back: a response to encode, or a cached token (or the id_token that
/// came with it) whose response frame is already encoded.
#[derive(Debug)]
pub(crate) enum Reply {
    Message(Response),
    Cached(Arc<CachedGrant>),
    /// The id_token of the cached grant (the provider checked that it has one).
    CachedId(Arc<CachedGrant>),
}

impl From<Response> for Reply {
    fn from(response: Response) -> Self {
        Self::Message(response)
    }
}

/// Answers one request payload: a `GetToken` is read in place, without allocating (the hot
/// path); any other request is decoded and [`dispatch`]ed. `Err` when it does not decode.
pub(crate) async fn dispatch_payload(
    state: &State,
    payload: &[u8],
    audit: &mut ConnectionAudit,
) -> Result<Reply, ProtocolError> {
    if let Some(get) = codec::decode_get_token(payload) {
        let reply =
            token::get_token(state, get.provider, get.min_ttl_secs, audit, Wanted::Access).await;
        return Ok(reply);
    }
    Ok(dispatch(state, codec::decode(payload)?, audit).await)
}

/// Answers one request.
pub(crate) async fn dispatch(
    state: &State,
    request: Request,
    audit: &mut ConnectionAudit,
) -> Reply {
    match request {
        Request::GetToken(get) => {
            token::get_token(
                state,
                &get.provider,
                get.min_ttl_secs,
                audit,
                Wanted::Access,
            )
            .await
        }
        Request::GetIdToken(get) => {
            token::get_token(
                state,
                &get.provider,
                get.min_ttl_secs,
                audit,
                Wanted::IdToken,
            )
            .await
        }
        Request::Rotate(request) => control::rotate(state, &request).await.into(),
        Request::Metrics => Response::Metrics(state.metrics()).into(),
        Request::Status => Response::Status(Box::new(state.status())).into(),
        Request::Ping => Response::Pong(state.ping()).into(),
        Request::Shutdown => {
            tracing::info!("shutdown requested by a client");
            state.request_shutdown();
            Response::ShuttingDown.into()
        }
        Request::Invalidate(invalidate) => control::invalidate(state, &invalidate).into(),
        Request::Reload => control::reload(state).into(),
        Request::CredentialRoutes => Response::CredentialRoutes(state.credential_routes()).into(),
        Request::Login(request) => login::start(state, &request).await.into(),
        Request::AwaitLogin(request) => login::wait(state, &request).await.into(),
        Request::Logout(request) => login::logout(state, &request).await.into(),
        Request::SecretSet(set) => secrets::set(state, set).await.into(),
        Request::SecretList => secrets::list(state).into(),
        Request::SecretRemove(remove) => secrets::remove(state, remove.name).await.into(),
        Request::ProxyUrl(request) => control::proxy_url(state, &request).into(),
    }
}

/// The named provider, or the unknown-provider error listing the configured ones.
pub(crate) fn find(state: &State, name: &str) -> Result<Arc<Provider>, Response> {
    let providers = state.providers();
    providers.get(name).cloned().ok_or_else(|| {
        let known: Vec<&str> = providers.keys().map(String::as_str).collect();
        let listing = if known.is_empty() {
            "no providers are configured; add a [providers.NAME] table to the config".to_owned()
        } else {
            format!("configured providers: {}", known.join(", "))
        };
        Response::error(
            ErrorCode::UnknownProvider,
            format!("unknown provider `{name}`; {listing}"),
        )
    })
}
