//! `SecretSet`, `SecretList`, `SecretRemove`: the user secrets of `tok secret` (`${secret:NAME}`),
//! kept in the encrypted store. A change makes the static providers that use the secret drop
//! their cached value.

use tokend_protocol::{ErrorCode, NAME_RULE, Response, SecretSet, is_valid_name};

use crate::server::state::State;

/// `SecretList`: the names (never the values) of the stored secrets.
pub(crate) fn list(state: &State) -> Response {
    match state.store() {
        Some(store) => Response::Secrets(store.user_secrets()),
        None => no_store(),
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
    if !is_valid_name(name) {
        return Err(Response::error(
            ErrorCode::Config,
            format!("invalid secret name {name:?}: {NAME_RULE}, as in ${{secret:NAME}}"),
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

/// `SecretSet`: stores the value (fsynced) and reports the entry.
pub(crate) async fn set(state: &State, set: SecretSet) -> Response {
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

/// `SecretRemove`: forgets the secret.
pub(crate) async fn remove(state: &State, name: String) -> Response {
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
