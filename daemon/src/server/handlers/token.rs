//! `GetToken`: the hot path. A cache hit answers with the provider's pre-encoded response frame,
//! and the connection's audit counts it (see [`crate::server::audit`]). `GetIdToken`: the same
//! for the id_token that came with the token.

use std::time::Duration;

use tokend_protocol::GetToken;

use crate::provider::Wanted;
use crate::server::audit::{ConnectionAudit, Outcome};
use crate::server::dispatch::{Reply, find};
use crate::server::state::State;

/// `GetToken` (`Wanted::Access`) or `GetIdToken` (`Wanted::IdToken`): the token valid for at
/// least the requested minimum lifetime.
pub(crate) async fn get_token(
    state: &State,
    get: GetToken,
    audit: &mut ConnectionAudit,
    wanted: Wanted,
) -> Reply {
    let provider = match find(state, &get.provider) {
        Ok(provider) => provider,
        Err(response) => {
            audit.record(&get.provider, Outcome::UnknownProvider);
            return response.into();
        }
    };
    match provider
        .token_for(wanted, Duration::from_secs(u64::from(get.min_ttl_secs)))
        .await
    {
        Ok(served) => {
            audit.record(
                &get.provider,
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
            audit.record(&get.provider, Outcome::Error);
            response.into()
        }
    }
}
