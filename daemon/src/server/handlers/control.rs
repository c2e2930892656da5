//! `Reload` and `Invalidate`: changing what the daemon holds without restarting it.

use tokend_protocol::{ErrorCode, Invalidate, Response};

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
