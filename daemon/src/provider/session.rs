//! Login sessions of the interactive grants: `tok login` starts a flow that runs in the
//! provider's own task (so it survives the `tok` that started it), its tokens become the
//! provider's session, and `tok logout` ends it (revoking the refresh token where the server
//! allows).

use std::sync::Arc;
use std::time::Duration;

use tokend_protocol::{ErrorCode, LoginOutcome, LoginPrompt, LogoutOutcome, Response, Secret};
use tokio::time::Instant;

use super::refresh::error_response;
use super::{Provider, Trigger};
use crate::kinds::oauth2::{OAuth2Config, TokenEndpoint, endpoints, login};
use crate::kinds::{Fetched, ProviderKind, SentSecrets};

/// The `origin` stored with an interactive provider's refresh token: it descends from a
/// `tok login` at this authorization server for this client (see [`Provider::login_origin`]),
/// not from a configured refresh token.
pub(super) const LOGIN_ORIGIN: &str = "tok login";

/// What a login's task reports when it ends.
type LoginResult = Option<Result<LoginOutcome, String>>;

/// A login started by `tok login`.
#[derive(Debug)]
pub(super) struct LoginState {
    started: Instant,
    timeout: Duration,
    /// `None` while the login runs; the sender is dropped if its task is aborted.
    outcome: tokio::sync::watch::Receiver<LoginResult>,
    pub(super) task: tokio::task::JoinHandle<()>,
}

impl Provider {
    /// For an interactive provider, the `origin` its session is stored under: the login marker
    /// plus the token endpoint (or issuer) and client id the session belongs to.
    pub(super) fn login_origin(&self) -> Option<Secret> {
        let config = self.oauth2().filter(|c| c.grant.is_interactive())?;
        let server = match &config.endpoint {
            TokenEndpoint::TokenUrl(url) | TokenEndpoint::Issuer(url) => url.as_str(),
        };
        Some(Secret::new(format!(
            "{LOGIN_ORIGIN} {server} {}",
            config.client_id
        )))
    }

    pub(super) fn oauth2(&self) -> Option<&OAuth2Config> {
        match &self.config.kind {
            ProviderKind::OAuth2(config) => Some(config),
            _ => None,
        }
    }

    /// The OAuth 2.0 config of a provider that logs in, or the error saying it does not.
    fn interactive(&self) -> Result<&OAuth2Config, Response> {
        match self.oauth2() {
            Some(config) if config.grant.is_interactive() => Ok(config),
            _ => Err(Response::error(
                ErrorCode::BadRequest,
                format!(
                    "provider `{}` does not log in (kind \"{}\"{}); `tok login` is for kind \
                     \"oauth2\" with grant = \"authorization_code\" or \"device_code\"",
                    self.config.name,
                    self.config.kind.name(),
                    self.oauth2()
                        .map(|c| format!(", grant \"{}\"", c.grant.name()))
                        .unwrap_or_default()
                ),
            )),
        }
    }

    /// Starts an interactive login (`tok login`): returns what to show the person, while the
    /// rest of the flow runs in its own task. One login per provider at a time.
    pub(crate) async fn start_login(self: &Arc<Self>) -> Result<LoginPrompt, Response> {
        let config = self.interactive()?;
        let name = &self.config.name;
        let mut login = self.login.lock().await;
        if self.retired.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(Response::error(
                ErrorCode::BadRequest,
                format!("the config of `{name}` was just reloaded: run `tok login {name}` again"),
            ));
        }
        if let Some(state) = login.as_ref()
            && state.outcome.borrow().is_none()
            && state.outcome.has_changed().is_ok()
        {
            let running = state.started.elapsed();
            return Err(Response::error(
                ErrorCode::BadRequest,
                format!(
                    "a login for `{name}` is already in progress (started {} s ago); finish it, \
                     or wait until it times out in {} s",
                    running.as_secs(),
                    state.timeout.saturating_sub(running).as_secs()
                ),
            ));
        }
        let sent = SentSecrets::default();
        let cx = self.services.cx(name, &sent);
        let endpoints = {
            let mut state = self.flight.lock().await;
            endpoints::endpoints(&cx, config, &mut state).await
        }
        .map_err(|error| {
            let error = error.map_message(|message| sent.mask(&message));
            error_response(&error.in_provider(name), "")
        })?;
        let started = login::start(&cx, config, &endpoints)
            .await
            .map_err(|message| {
                Response::error(
                    ErrorCode::LoginRequired,
                    format!("provider `{name}`: {}", sent.mask(&message)),
                )
            })?;
        let prompt = started.prompt;
        let (report, outcome) = tokio::sync::watch::channel(None);
        let me = Arc::clone(self);
        let flow = started.flow;
        let task = tokio::spawn(async move {
            let result = match flow.await {
                Ok(fetched) => me.complete_login(fetched).await,
                Err(message) => Err(format!("provider `{}`: {message}", me.config.name)),
            };
            match &result {
                Ok(_) => tracing::info!(provider = %me.config.name, "logged in"),
                Err(message) => {
                    tracing::warn!(provider = %me.config.name, "login failed: {message}");
                }
            }
            report.send_replace(Some(result));
        });
        *login = Some(Box::new(LoginState {
            started: Instant::now(),
            timeout: Duration::from_secs(prompt.expires_in_secs),
            outcome,
            task,
        }));
        tracing::info!(provider = %name, "login started");
        Ok(prompt)
    }

    /// A login's tokens become the provider's session and cached token.
    async fn complete_login(self: &Arc<Self>, fetched: Fetched) -> Result<LoginOutcome, String> {
        let refreshable = fetched.refresh_token.is_some();
        let mut state = self.flight.lock().await;
        // A login replaces whatever session there was, including a rotated refresh token. The
        // session's refresh token is durable before its access token is handed out, as every
        // rotated one is after it.
        state.refresh_token = None;
        state.origin = self.login_origin();
        if !refreshable {
            // No refresh token this time: the previous session must not come back on a restart.
            self.write_store(|contents, name| {
                contents.refresh_tokens.remove(name);
            })
            .await?;
        }
        let remaining = fetched.remaining();
        let shared_token = self.shared.as_ref().map(|_| fetched.token.clone());
        let shared_refresh = fetched.refresh_token.clone();
        let outcome = self.persist(Ok(fetched), &mut state).await;
        let cached = self
            .cache(outcome, Trigger::Caller, super::Origin::Upstream)
            .map_err(|error| error.message().to_owned())?;
        if let Some(token) = shared_token {
            // Every machine of the fleet can use the session now.
            self.share_login(&token, remaining, shared_refresh.as_ref())
                .await;
        }
        // Under the source lock: a logout waiting for it sees the session and ends it.
        self.inner().has_session = refreshable;
        drop(state);
        Ok(LoginOutcome {
            provider: self.config.name.clone(),
            expires_at_unix: cached.grant.expires_at_unix,
            refreshable,
        })
    }

    /// Waits until the login in progress ends.
    pub(crate) async fn await_login(&self) -> Result<LoginOutcome, Response> {
        let name = &self.config.name;
        let mut outcome = match self.login.lock().await.as_ref() {
            Some(state) => state.outcome.clone(),
            None => {
                return Err(Response::error(
                    ErrorCode::LoginRequired,
                    format!("no login for `{name}` is in progress: run `tok login {name}`"),
                ));
            }
        };
        let ended = outcome
            .wait_for(Option::is_some)
            .await
            .map(|result| result.clone());
        match ended {
            Ok(Some(Ok(done))) => Ok(done),
            Ok(Some(Err(message))) => Err(Response::error(ErrorCode::LoginRequired, message)),
            Ok(None) | Err(_) => Err(Response::error(
                ErrorCode::LoginRequired,
                format!(
                    "the login for `{name}` was cancelled (by `tok logout`, a config reload or \
                     a daemon stop): run `tok login {name}` again"
                ),
            )),
        }
    }

    /// Forgets the session: cancels a login in progress, drops the cached token and the refresh
    /// token, and revokes the refresh token where the server offers revocation (RFC 7009).
    pub(crate) async fn logout(&self) -> Result<LogoutOutcome, Response> {
        let config = self.interactive()?;
        let name = &self.config.name;
        let sent = SentSecrets::default();
        let cx = self.services.cx(name, &sent);
        if let Some(state) = self.login.lock().await.take() {
            state.task.abort();
            // A login that was just finishing may have a store write under way: let it land
            // before the session is removed, so it cannot come back afterwards.
            let _ = state.task.await;
        }
        let (refresh_token, endpoints) = {
            let mut state = self.flight.lock().await;
            let refresh_token = state.refresh_token.take();
            state.origin = None;
            // Forgotten durably as well: a restart must not bring the session back.
            if let Err(message) = self
                .write_store(|contents, name| {
                    contents.refresh_tokens.remove(name);
                    contents.access_tokens.remove(name);
                })
                .await
            {
                state.refresh_token = refresh_token;
                state.origin = self.login_origin();
                return Err(Response::error(
                    ErrorCode::Internal,
                    format!(
                        "{message}; the session could not be removed from the store, so it was \
                         kept: fix the data directory and run `tok logout {name}` again"
                    ),
                ));
            }
            let endpoints = match &refresh_token {
                Some(_) => endpoints::endpoints(&cx, config, &mut state).await.ok(),
                None => None,
            };
            (refresh_token, endpoints)
        };
        {
            let mut inner = self.inner();
            inner.has_session = false;
            inner.failure = None;
            inner.last_error = None;
            inner.last_lifetime = None;
            inner.generation += 1;
            let generation = inner.generation;
            inner.current = None;
            let scheduled = inner.scheduled.take();
            drop(inner);
            self.cancel(scheduled);
            self.announce(generation);
        }
        tracing::info!(provider = %name, "logged out");
        let Some(refresh_token) = refresh_token else {
            return Ok(LogoutOutcome {
                revoked: false,
                message: format!("logged out of `{name}` (there was no session to revoke)"),
            });
        };
        let revoked = match endpoints {
            Some(endpoints) if endpoints.revocation.is_some() => {
                login::revoke(&cx, config, &endpoints, refresh_token).await
            }
            _ => Err("the server offers no revocation endpoint".to_owned()),
        };
        let revoked = revoked.map_err(|reason| sent.mask(&reason));
        Ok(match revoked {
            Ok(()) => LogoutOutcome {
                revoked: true,
                message: format!("logged out of `{name}`; the refresh token was revoked"),
            },
            Err(reason) => LogoutOutcome {
                revoked: false,
                message: format!(
                    "logged out of `{name}`; tokend forgot the refresh token, but it was not \
                     revoked: {reason}"
                ),
            },
        })
    }
}
