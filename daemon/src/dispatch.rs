//! The only `match` on [`Request`]: maps each request to its handler. Handlers never see the
//! socket; the connection task does all I/O.

use tokend_protocol::{ErrorCode, GetToken, Request, Response};

use crate::state::State;

/// Answers one request.
pub(crate) async fn dispatch(state: &State, request: Request) -> Response {
    match request {
        Request::GetToken(get) => get_token(state, get).await,
        Request::Status => Response::Status(state.status()),
        Request::Ping => Response::Pong(state.ping()),
        Request::Shutdown => {
            tracing::info!("shutdown requested by a client");
            state.request_shutdown();
            Response::ShuttingDown
        }
    }
}

async fn get_token(state: &State, get: GetToken) -> Response {
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
        );
    };
    match provider.token().await {
        Ok(grant) => Response::Token(grant),
        Err(response) => response,
    }
}
