//! The only `match` on [`Request`]: maps each request to its handler. Handlers never see the
//! socket; the connection task does all I/O.

use std::sync::Arc;

use tokend_protocol::{ErrorCode, GetToken, Request, Response};

use crate::provider::CachedGrant;
use crate::state::State;

/// What the connection sends back: a response to encode, or a cached token whose response frame
/// is already encoded.
#[derive(Debug)]
pub(crate) enum Reply {
    Message(Response),
    Cached(Arc<CachedGrant>),
}

impl From<Response> for Reply {
    fn from(response: Response) -> Self {
        Self::Message(response)
    }
}

/// Answers one request.
pub(crate) async fn dispatch(state: &State, request: Request) -> Reply {
    match request {
        Request::GetToken(get) => get_token(state, get).await,
        Request::Status => Response::Status(state.status()).into(),
        Request::Ping => Response::Pong(state.ping()).into(),
        Request::Shutdown => {
            tracing::info!("shutdown requested by a client");
            state.request_shutdown();
            Response::ShuttingDown.into()
        }
    }
}

async fn get_token(state: &State, get: GetToken) -> Reply {
    let Some(provider) = state.providers.get(&get.provider) else {
        let known: Vec<&str> = state.providers.keys().map(String::as_str).collect();
        let listing = if known.is_empty() {
            "no providers are configured; add a [providers.NAME] table to the config".to_owned()
        } else {
            format!("configured providers: {}", known.join(", "))
        };
        return Response::error(
            ErrorCode::UnknownProvider,
            format!("unknown provider `{}`; {listing}", get.provider),
        )
        .into();
    };
    match provider.token().await {
        Ok(cached) => Reply::Cached(cached),
        Err(response) => response.into(),
    }
}
