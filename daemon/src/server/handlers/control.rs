//! `Reload`, `Invalidate` and `Rotate`: changing what the daemon holds without restarting it;
//! `ProxyUrl`: where a provider's auth proxy is.

use tokend_protocol::{ErrorCode, Invalidate, ProxyUrl, Response, Rotate};

use crate::server::dispatch::find;
use crate::server::state::State;

/// `Reload`: re-reads the config; on any error the old one stays in force.
pub(crate) fn reload(state: &State) -> Response {
    match state.reload() {
        Ok(summary) => Response::Reloaded(summary),
        Err(message) => {
            tracing::warn!("reload refused, the old config stays in force: {message}");
            Response::error(
                ErrorCode::Config,
                format!("{message}; the old config stays in force"),
            )
        }
    }
}

/// `Invalidate`: drops the provider's cached token and clears its failures.
pub(crate) fn invalidate(state: &State, invalidate: &Invalidate) -> Response {
    match find(state, &invalidate.provider) {
        Ok(provider) => Response::Invalidated(provider.invalidate()),
        Err(response) => response,
    }
}

/// `ProxyUrl`: the base URL of the provider's auth proxy (with its capability).
pub(crate) fn proxy_url(state: &State, request: &ProxyUrl) -> Response {
    if let Err(response) = find(state, &request.provider) {
        return response;
    }
    match state.outlets().proxy_url(&request.provider) {
        Ok(url) => Response::ProxyUrl(url),
        Err(response) => response,
    }
}

/// `Rotate`: replaces a static provider's key through its `rotate` table, now.
pub(crate) async fn rotate(state: &State, request: &Rotate) -> Response {
    match find(state, &request.provider) {
        Ok(provider) => match provider.rotate().await {
            Ok(outcome) => Response::Rotated(outcome),
            Err(response) => response,
        },
        Err(response) => response,
    }
}
