//! `Login`, `AwaitLogin`, `Logout`: `tok login` starts an interactive login that the provider
//! runs in its own task (so it survives the `tok` that started it), waits for its end, or ends
//! the session.

use tokend_protocol::{LoginRequest, Response};

use crate::server::dispatch::find;
use crate::server::state::State;

/// `Login`: starts the flow; the answer is what to show the person.
pub(crate) async fn start(state: &State, login: &LoginRequest) -> Response {
    match find(state, &login.provider) {
        Ok(provider) => provider
            .start_login()
            .await
            .map_or_else(|refusal| refusal, Response::LoginStarted),
        Err(response) => response,
    }
}

/// `AwaitLogin`: waits until the login in progress ends.
pub(crate) async fn wait(state: &State, login: &LoginRequest) -> Response {
    match find(state, &login.provider) {
        Ok(provider) => provider
            .await_login()
            .await
            .map_or_else(|failure| failure, Response::LoggedIn),
        Err(response) => response,
    }
}

/// `Logout`: forgets the session and revokes its refresh token where the server allows.
pub(crate) async fn logout(state: &State, login: &LoginRequest) -> Response {
    match find(state, &login.provider) {
        Ok(provider) => provider
            .logout()
            .await
            .map_or_else(|refusal| refusal, Response::LoggedOut),
        Err(response) => response,
    }
}
