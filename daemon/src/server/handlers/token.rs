//! `GetToken`: the hot path. A cache hit answers with the provider's pre-encoded response frame,
//! and the connection's audit counts it (see [`crate::server::audit`]). `GetIdToken`: the same
//! for the id_token that came with the token.

use std::time::Duration;

use crate::provider::Wanted;
use crate::server::audit::{ConnectionAudit, Outcome};
use crate::server::dispatch::{Reply, find};
use crate::server::state::State;

/// `GetToken` (`Wanted::Access`) or `GetIdToken` (`Wanted::IdToken`): the token valid for at
/// least the requested minimum lifetime.
pub(crate) async fn get_token(
    state: &State,
    name: &str,
    min_ttl_secs: u32,
    audit: &mut ConnectionAudit,
    wanted: Wanted,
) -> Reply {
    let provider = match find(state, name) {
        Ok(provider) => provider,
        Err(response) => {
            audit.record(name, Outcome::UnknownProvider);
            return response.into();
        }
    };
    match provider
        .token_for(wanted, Duration::from_secs(u64::from(min_ttl_secs)))
        .await
    {
        Ok(served) => {
            audit.record(
                name,
                if served.hit {
                    Outcome::Hit
                } else {
                    Outcome::Miss
                },
            );
            match wanted {
                Wanted::Access => Reply::Cached(served.cached),
                Wanted::IdToken => Reply::CachedId(served.cached),
            }
        }
        Err(response) => {
            audit.record(name, Outcome::Error);
            response.into()
        }
    }
}
