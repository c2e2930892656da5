//! `GetToken`: the hot path. A cache hit answers with the provider's pre-encoded response frame;
//! with `tokend --audit`, one audit line per request. `GetIdToken`: the same for the id_token
//! that came with the token.

use std::time::Duration;

use tokend_protocol::GetToken;

use crate::provider::Wanted;
use crate::server::dispatch::{Reply, find};
use crate::server::peer::Peer;
use crate::server::state::State;

/// `GetToken` (`Wanted::Access`) or `GetIdToken` (`Wanted::IdToken`): the token valid for at
/// least the requested minimum lifetime.
pub(crate) async fn get_token(state: &State, get: GetToken, peer: &Peer, wanted: Wanted) -> Reply {
    let provider = match find(state, &get.provider) {
        Ok(provider) => provider,
        Err(response) => {
            audit(state, peer, &get.provider, "unknown-provider");
            return response.into();
        }
    };
    match provider
        .token_for(wanted, Duration::from_secs(u64::from(get.min_ttl_secs)))
        .await
    {
        Ok(served) => {
            audit(
                state,
                peer,
                &get.provider,
                if served.hit { "hit" } else { "miss" },
            );
            match wanted {
                Wanted::Access => Reply::Cached(served.cached),
                Wanted::IdToken => Reply::CachedId(served.cached),
            }
        }
        Err(response) => {
            audit(state, peer, &get.provider, "error");
            response.into()
        }
    }
}

/// With `tokend --audit`, one line per token request: who asked, for what, and how it was served.
/// Never the token.
fn audit(state: &State, peer: &Peer, provider: &str, outcome: &str) {
    if !state.audit() {
        return;
    }
    tracing::info!(
        target: "tokend::audit",
        uid = peer.uid,
        pid = peer.pid,
        exe = peer.exe.as_deref().unwrap_or("-"),
        provider,
        outcome,
        "token request"
    );
}
