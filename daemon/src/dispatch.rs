//! The only `match` on [`Request`]: maps each request to its handler. Handlers never see the
//! socket; the connection task does all I/O.

use std::sync::Arc;
use std::time::Duration;

use tokend_protocol::{ErrorCode, GetToken, Invalidate, Request, Response, SecretSet};

use crate::connection::Peer;
use crate::provider::{CachedGrant, Provider};
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
pub(crate) async fn dispatch(state: &State, request: Request, peer: &Peer) -> Reply {
    match request {
        Request::GetToken(get) => get_token(state, get, peer).await,
        Request::Metrics => Response::Metrics(state.metrics()).into(),
        Request::Status => Response::Status(state.status()).into(),
        Request::Ping => Response::Pong(state.ping()).into(),
        Request::Shutdown => {
            tracing::info!("shutdown requested by a client");
            state.request_shutdown();
            Response::ShuttingDown.into()
        }
        Request::Invalidate(invalidate) => invalidate_token(state, &invalidate).into(),
        Request::Reload => reload(state).into(),
        Request::CredentialRoutes => Response::CredentialRoutes(state.credential_routes()).into(),
        Request::Login(login) => match find(state, &login.provider) {
            Ok(provider) => provider
                .start_login()
                .await
                .map_or_else(|refusal| refusal, Response::LoginStarted)
                .into(),
            Err(response) => response.into(),
        },
        Request::AwaitLogin(login) => match find(state, &login.provider) {
            Ok(provider) => provider
                .await_login()
                .await
                .map_or_else(|failure| failure, Response::LoggedIn)
                .into(),
            Err(response) => response.into(),
        },
        Request::Logout(login) => match find(state, &login.provider) {
            Ok(provider) => provider
                .logout()
                .await
                .map_or_else(|refusal| refusal, Response::LoggedOut)
                .into(),
            Err(response) => response.into(),
        },
        Request::SecretSet(set) => secret_set(state, set).await.into(),
        Request::SecretList => match state.store() {
            Some(store) => Response::Secrets(store.user_secrets()),
            None => no_store(),
        }
        .into(),
        Request::SecretRemove(remove) => secret_remove(state, remove.name).await.into(),
    }
}

/// Static providers that use the secret stop serving its old value.
fn secret_changed(state: &State, name: &str) {
    for provider in state.providers().values() {
        provider.secret_changed(name);
    }
}

fn no_store() -> Response {
    Response::error(
        ErrorCode::Config,
        "this daemon keeps no store, so it holds no secrets; run the tokend binary",
    )
}

/// Checks a user secret's name (as in `${secret:NAME}`) and value (it ends up in HTTP headers).
fn check_secret(name: &str, value: Option<&str>) -> Result<(), Response> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(Response::error(
            ErrorCode::Config,
            format!(
                "invalid secret name {name:?}: use only letters, digits, `.`, `_` and `-`, as \
                 in ${{secret:NAME}}"
            ),
        ));
    }
    match value {
        Some("") => Err(Response::error(
            ErrorCode::Config,
            format!("the value for secret `{name}` is empty; pipe the value into tok secret set"),
        )),
        Some(value) if value.chars().any(char::is_control) => Err(Response::error(
            ErrorCode::Config,
            format!(
                "the value for secret `{name}` contains a control character such as a line \
                 break; secrets go into HTTP headers, so give it on one line"
            ),
        )),
        _ => Ok(()),
    }
}

async fn secret_set(state: &State, set: SecretSet) -> Response {
    let Some(store) = state.store().cloned() else {
        return no_store();
    };
    if let Err(refusal) = check_secret(&set.name, Some(set.value.expose())) {
        return refusal;
    }
    let SecretSet { name, value } = set;
    // The write fsyncs: off the connection tasks' thread.
    let written = tokio::task::spawn_blocking(move || store.set_user_secret(&name, value)).await;
    match written {
        Ok(Ok(entry)) => {
            tracing::info!(secret = %entry.name, "secret set");
            secret_changed(state, &entry.name);
            Response::Secrets(vec![entry])
        }
        Ok(Err(err)) => Response::error(ErrorCode::Internal, err.to_string()),
        Err(err) => Response::error(
            ErrorCode::Internal,
            format!("saving the secret failed: {err}"),
        ),
    }
}

async fn secret_remove(state: &State, name: String) -> Response {
    let Some(store) = state.store().cloned() else {
        return no_store();
    };
    if let Err(refusal) = check_secret(&name, None) {
        return refusal;
    }
    let removed = tokio::task::spawn_blocking(move || {
        let removed = store.remove_user_secret(&name);
        (name, removed)
    })
    .await;
    match removed {
        Ok((_, Ok(Some(entry)))) => {
            tracing::info!(secret = %entry.name, "secret removed");
            secret_changed(state, &entry.name);
            Response::Secrets(vec![entry])
        }
        Ok((name, Ok(None))) => Response::error(
            ErrorCode::Config,
            format!("no secret named `{name}`; tok secret list shows the names"),
        ),
        Ok((_, Err(err))) => Response::error(ErrorCode::Internal, err.to_string()),
        Err(err) => Response::error(
            ErrorCode::Internal,
            format!("removing the secret failed: {err}"),
        ),
    }
}

fn reload(state: &State) -> Response {
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

fn invalidate_token(state: &State, invalidate: &Invalidate) -> Response {
    match find(state, &invalidate.provider) {
        Ok(provider) => Response::Invalidated(provider.invalidate()),
        Err(response) => response,
    }
}

/// The named provider, or the unknown-provider error listing the configured ones.
fn find(state: &State, name: &str) -> Result<Arc<Provider>, Response> {
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

async fn get_token(state: &State, get: GetToken, peer: &Peer) -> Reply {
    let provider = match find(state, &get.provider) {
        Ok(provider) => provider,
        Err(response) => {
            audit(state, peer, &get.provider, "unknown-provider");
            return response.into();
        }
    };
    match provider
        .token(Duration::from_secs(u64::from(get.min_ttl_secs)))
        .await
    {
        Ok(served) => {
            audit(
                state,
                peer,
                &get.provider,
                if served.hit { "hit" } else { "miss" },
            );
            Reply::Cached(served.cached)
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
