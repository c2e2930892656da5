//! Interactive logins, run by the daemon for `tok login`: the authorization code flow with PKCE
//! (RFC 7636, S256) and a loopback redirect (RFC 8252 section 7.3), and the device flow
//! (RFC 8628).
//!
//! [`start`] prepares a flow and returns what the person must see (the authorization URL, or
//! the verification URL and user code) together with the rest of the flow as a future: waiting
//! for the redirect and exchanging the code, or polling the token endpoint. The provider runs
//! that future in its own task, so the login survives the `tok` process that started it.
//!
//! The redirect listener of the authorization code flow is in [`super::redirect`]. Messages
//! never name the provider: the provider adds it. [`revoke`] ends a session at the server
//! (`tok logout`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use oauth2::basic::BasicErrorResponseType;
use oauth2::{
    AuthorizationCode, CsrfToken, DeviceCodeErrorResponseType, PkceCodeChallenge, RedirectUrl,
    RequestTokenError, Scope, StandardDeviceAuthorizationResponse, StandardErrorResponse,
};
use tokend_protocol::{LoginPrompt, Secret, duration};

use super::assertion::client_assertion;
use super::client::{OAuthClient, ResponseMeta, oauth_client, post_form, token_http};
use super::endpoints::Endpoints;
use super::grants::{described, fetched_from};
use super::redirect::{self, Callback, answer_page};
use super::{AuthorizationCodeLogin, OAuth2Config, OAuth2Grant};
use crate::kinds::{FetchCx, Fetched};
use crate::upstream::shown;

/// What the failure page says happened.
fn failed_text(name: &str, message: &str) -> String {
    format!("tokend did not log in to {name}: {message}.")
}

/// The failure page's next step.
fn retry_hint(name: &str) -> String {
    format!("Nothing was saved. Run `tok login {name}` to try again. You can close this tab.")
}

/// The rest of a login once the person has been told what to do.
pub(crate) type Flow = Pin<Box<dyn Future<Output = Result<Fetched, String>> + Send>>;

/// A login ready to show.
pub(crate) struct Started {
    pub(crate) prompt: LoginPrompt,
    pub(crate) flow: Flow,
}

/// Prepares `name`'s login: binds the redirect listener or asks for a device code.
pub(crate) async fn start(
    cx: &FetchCx<'_>,
    config: &OAuth2Config,
    endpoints: &Endpoints,
) -> Result<Started, String> {
    let client = oauth_client(cx, config, endpoints)
        .await
        .map_err(|err| err.message().to_owned())?;
    match &config.grant {
        OAuth2Grant::AuthorizationCode(login) => {
            authorization_code(cx, config, login, client, endpoints).await
        }
        OAuth2Grant::DeviceCode(_) => device_code(cx, config, client, endpoints).await,
        other => Err(format!(
            "uses grant \"{}\", which needs no login; `tok login` is for grant = \
             \"authorization_code\" or \"device_code\"",
            other.name()
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Authorization code with PKCE

async fn authorization_code(
    cx: &FetchCx<'_>,
    config: &OAuth2Config,
    login: &AuthorizationCodeLogin,
    client: OAuthClient,
    endpoints: &Endpoints,
) -> Result<Started, String> {
    let name = cx.name;
    let (listener, redirect) = redirect::bind(&login.redirect_uri).await?;
    let client = client.set_redirect_uri(RedirectUrl::from_url(redirect.clone()));
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(CsrfToken::new_random)
        .map_err(|err| {
            format!(
                "no authorization endpoint ({err}); set auth_url, or an \
                 issuer whose discovery document has authorization_endpoint"
            )
        })?
        .set_pkce_challenge(challenge);
    for scope in &config.scopes {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    for (key, value) in &login.auth_params {
        request = request.add_extra_param(key.clone(), value.clone());
    }
    let (url, state) = request.url();
    let prompt = LoginPrompt {
        provider: name.to_owned(),
        url: url.to_string(),
        user_code: None,
        expires_in_secs: login.timeout.as_secs(),
    };

    let name = name.to_owned();
    let (secrets, http) = (Arc::clone(cx.secrets), Arc::clone(cx.http));
    let sent = cx.sent.clone();
    let config = config.clone();
    let endpoints = endpoints.clone();
    let timeout = login.timeout;
    let flow = async move {
        let cx = FetchCx {
            name: &name,
            secrets: &secrets,
            http: &http,
            sent: &sent,
            jwt: None,
        };
        let outcome: Result<Fetched, String> = async {
            let callback = tokio::time::timeout(
                timeout,
                redirect::wait_for_callback(&listener, redirect.path(), state.secret()),
            )
            .await
            .map_err(|_| {
                format!(
                    "no redirect arrived within {}: the login was abandoned; run `tok login {name}` \
                     again (with --no-browser to copy the URL yourself)",
                    duration::format(timeout)
                )
            })?;
            let (stream, code) = match callback {
                Callback::Code { stream, code } => (stream, code),
                Callback::Refused {
                    mut stream,
                    message,
                } => {
                    answer_page(
                        &mut stream,
                        400,
                        "Login failed",
                        &failed_text(&name, &message),
                        &retry_hint(&name),
                    )
                    .await;
                    return Err(message);
                }
            };
            let (token_http, meta) = token_http(Arc::clone(&http), config.timeout);
            // Signed now, not when the login started: an assertion lives a few minutes only.
            let assertion = match client_assertion(&cx, &config, &endpoints).await {
                Ok(assertion) => assertion,
                Err(err) => {
                    let mut stream = stream;
                    answer_page(
                        &mut stream,
                        400,
                        "Login failed",
                        &failed_text(&name, err.message()),
                        &retry_hint(&name),
                    )
                    .await;
                    return Err(err.message().to_owned());
                }
            };
            let mut request = client
                .exchange_code(AuthorizationCode::new(code.expose().to_owned()))
                .set_pkce_verifier(verifier);
            for (key, value) in assertion {
                request = request.add_extra_param(key, value);
            }
            let result = request.request_async(&token_http).await;
            let meta = meta.lock().map(|m| m.clone()).unwrap_or_default();
            let outcome = token_outcome(&name, &config, &endpoints_shown(&meta), result);
            let mut stream = stream;
            match &outcome {
                Ok(_) => {
                    answer_page(
                        &mut stream,
                        200,
                        "Logged in",
                        &format!("tokend is logged in to {name}."),
                        "You can close this tab: tok has the outcome, and tokend keeps the \
                         session fresh from now on.",
                    )
                    .await;
                }
                Err(message) => {
                    answer_page(
                        &mut stream,
                        400,
                        "Login failed",
                        &failed_text(&name, message),
                        &retry_hint(&name),
                    )
                    .await;
                }
            }
            outcome
        }
        .await;
        // Whatever upstream echoed of the request is masked before anyone sees it.
        outcome.map_err(|message| sent.mask(&message))
    };
    Ok(Started {
        prompt,
        flow: Box::pin(flow),
    })
}

// ---------------------------------------------------------------------------------------------
// Device flow

async fn device_code(
    cx: &FetchCx<'_>,
    config: &OAuth2Config,
    client: OAuthClient,
    endpoints: &Endpoints,
) -> Result<Started, String> {
    let name = cx.name;
    let (http, meta) = token_http(Arc::clone(cx.http), config.timeout);
    let mut request = client.exchange_device_code().map_err(|err| {
        format!(
            "no device authorization endpoint ({err}); set device_url, or an \
             issuer whose discovery document has device_authorization_endpoint"
        )
    })?;
    for scope in &config.scopes {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    let details: StandardDeviceAuthorizationResponse =
        request.request_async(&http).await.map_err(|err| {
            let meta = meta.lock().map(|m| m.clone()).unwrap_or_default();
            let where_ = endpoints
                .device
                .as_ref()
                .map_or_else(String::new, |url| format!(" {}", shown(url)));
            match err {
                RequestTokenError::ServerResponse(error) => format!(
                    "the device authorization endpoint{where_} refused \
                     ({}); check client_id and scopes",
                    described(&error)
                ),
                _ => format!(
                    "the device authorization endpoint{where_} failed (HTTP \
                     {}, {})",
                    meta.status, meta.body
                ),
            }
        })?;
    let prompt = LoginPrompt {
        provider: name.to_owned(),
        url: details.verification_uri().to_string(),
        user_code: Some(details.user_code().secret().clone()),
        expires_in_secs: details.expires_in().as_secs(),
    };
    let name = name.to_owned();
    let upstream = Arc::clone(cx.http);
    let sent = cx.sent.clone();
    let config = config.clone();
    let flow = async move {
        let (http, _meta) = token_http(upstream, config.timeout);
        let expires = tokio::time::Instant::now() + details.expires_in();
        let result = loop {
            let result = client
                .exchange_device_access_token(&details)
                .request_async(&http, tokio::time::sleep, None)
                .await;
            // The crate stops polling at the first network error or unreadable answer; a login
            // that may take the person minutes should not end on a blip: poll on until the
            // code expires.
            match result {
                Err(RequestTokenError::Request(_) | RequestTokenError::Parse(..))
                    if tokio::time::Instant::now() + details.interval() < expires =>
                {
                    tracing::debug!(provider = %name, "device flow poll failed; polling on");
                    tokio::time::sleep(details.interval()).await;
                }
                other => break other,
            }
        };
        let outcome = match result {
            Ok(response) => fetched_from(&config, &response, "token endpoint")
                .map_err(|err| err.message().to_owned()),
            Err(RequestTokenError::ServerResponse(error)) => Err(match error.error() {
                DeviceCodeErrorResponseType::AccessDenied => format!(
                    "the login was denied on the verification page ({})",
                    described(&error)
                ),
                DeviceCodeErrorResponseType::ExpiredToken => format!(
                    "the code expired before the login was completed; run \
                     `tok login {name}` again"
                ),
                _ => format!(
                    "the token endpoint refused the device code ({})",
                    described(&error)
                ),
            }),
            Err(other) => Err(format!("polling the token endpoint failed ({other})")),
        };
        // Whatever upstream echoed of the request is masked before anyone sees it.
        outcome.map_err(|message| sent.mask(&message))
    };
    Ok(Started {
        prompt,
        flow: Box::pin(flow),
    })
}

// ---------------------------------------------------------------------------------------------
// Shared

fn endpoints_shown(meta: &ResponseMeta) -> String {
    format!("HTTP {}, {}", meta.status, meta.body)
}

/// The token response of a code exchange as the engine's [`Fetched`], or why it failed.
fn token_outcome<RE: std::error::Error>(
    name: &str,
    config: &OAuth2Config,
    last_response: &str,
    result: Result<
        super::client::TokenResponse,
        RequestTokenError<RE, StandardErrorResponse<BasicErrorResponseType>>,
    >,
) -> Result<Fetched, String> {
    match result {
        Ok(response) => fetched_from(config, &response, "token endpoint")
            .map_err(|err| err.message().to_owned()),
        Err(RequestTokenError::ServerResponse(error)) => Err(format!(
            "the token endpoint refused the authorization code ({}); run \
             `tok login {name}` again",
            described(&error)
        )),
        Err(RequestTokenError::Request(err)) => Err(format!(
            "the code exchange failed ({err}); run `tok login {name}` again"
        )),
        Err(_) => Err(format!(
            "the token endpoint's answer is not a token response \
             ({last_response})"
        )),
    }
}

/// Revokes `refresh_token` at the revocation endpoint (RFC 7009). Sent by hand: the `oauth2`
/// crate refuses revocation endpoints that are not https, which loopback test servers and
/// some internal servers are.
pub(crate) async fn revoke(
    cx: &FetchCx<'_>,
    config: &OAuth2Config,
    endpoints: &Endpoints,
    refresh_token: Secret,
) -> Result<(), String> {
    cx.sent.record(refresh_token.expose());
    let url = endpoints
        .revocation
        .as_ref()
        .ok_or_else(|| "the server offers no revocation endpoint".to_owned())?;
    let pairs = vec![
        ("token".to_owned(), refresh_token),
        ("token_type_hint".to_owned(), Secret::from("refresh_token")),
    ];
    let answer = post_form(cx, config, endpoints, url, pairs)
        .await
        .map_err(|err| err.message().to_owned())?;
    // RFC 7009 section 2.2: 200 whether or not the token was known.
    if answer.status == 200 {
        Ok(())
    } else {
        Err(format!(
            "the revocation endpoint {} answered HTTP {} with {}",
            shown(url),
            answer.status,
            answer.describe_body()
        ))
    }
}
