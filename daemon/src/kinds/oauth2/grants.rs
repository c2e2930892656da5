//! Obtaining an access token without a person: `client_credentials` (RFC 6749 section 4.4),
//! `refresh_token` (section 6, following rotated refresh tokens) and the refresh of an
//! interactive session, through the `oauth2` crate; and `jwt_bearer` (RFC 7523 section 2.1),
//! whose form is built here. Token responses (with their id_token) become [`Fetched`] here,
//! also those of the form-built grants ([`form_grant_answer`]).

use std::time::Duration;

use oauth2::basic::BasicErrorResponseType;
use oauth2::{RequestTokenError, Scope, TokenResponse as _};
use serde_json::Value;
use tokend_protocol::Secret;

use super::client::{TokenResponse, oauth_client, post_form, status_error, token_http};
use super::endpoints::{Endpoints, endpoints};
use super::{JwtBearer, OAuth2Config, OAuth2Grant, assertion};
use crate::kinds::fetched::{lifetime_of, one_line, seconds};
use crate::kinds::http::exchange::parse_answer;
use crate::kinds::{FetchCx, FetchError, FetchState, Fetched, transport_failure};
use crate::secret::SecretTemplate;
use crate::upstream::Answer;
use crate::upstream::shown;

/// Fetches an access token with the provider's grant.
pub(crate) async fn fetch(
    cx: &FetchCx<'_>,
    config: &OAuth2Config,
    state: &mut FetchState,
) -> Result<Fetched, FetchError> {
    let name = cx.name;
    let endpoints = endpoints(cx, config, state).await?;
    // The refresh token to present (none: client credentials).
    let refresh = match &config.grant {
        OAuth2Grant::JwtBearer(bearer) => {
            return jwt_bearer_fetch(cx, config, bearer, &endpoints).await;
        }
        OAuth2Grant::TokenExchange(exchange) => {
            return super::exchange::fetch(cx, config, exchange, &endpoints).await;
        }
        OAuth2Grant::ClientCredentials => None,
        OAuth2Grant::RefreshToken { refresh_token } => {
            Some(configured_chain(cx, refresh_token, state).await?)
        }
        // Interactive grants: the session's refresh token from `tok login`.
        OAuth2Grant::AuthorizationCode(_) | OAuth2Grant::DeviceCode(_) => {
            match &state.refresh_token {
                Some(current) => Some(current.clone()),
                // The login guard: only `tok login` starts an interactive flow.
                None => {
                    return Err(FetchError::Rejected {
                        message: format!("needs a login: run `tok login {name}`"),
                        needs_login: true,
                    });
                }
            }
        }
    };
    let token_url = endpoints.token.clone();
    let client = oauth_client(cx, config, &endpoints).await?;
    let (http, meta) = token_http(cx.http.clone(), config.timeout);
    let assertion = assertion::client_assertion(cx, config, &endpoints).await?;

    let where_ = format!("token endpoint {}", shown(&token_url));
    let refresh_grant = refresh.is_some();
    let interactive = config.grant.is_interactive();
    let result = match refresh {
        None => {
            let mut request = client.exchange_client_credentials();
            for scope in &config.scopes {
                request = request.add_scope(Scope::new(scope.clone()));
            }
            for (key, value) in config.params.iter().chain(&assertion) {
                request = request.add_extra_param(key.clone(), value.clone());
            }
            request.request_async(&http).await
        }
        Some(current) => {
            cx.sent.record(current.expose());
            let current = oauth2::RefreshToken::new(current.expose().to_owned());
            let mut request = client.exchange_refresh_token(&current);
            for scope in &config.scopes {
                request = request.add_scope(Scope::new(scope.clone()));
            }
            for (key, value) in config.params.iter().chain(&assertion) {
                request = request.add_extra_param(key.clone(), value.clone());
            }
            request.request_async(&http).await
        }
    };
    let meta = meta.lock().map(|m| m.clone()).unwrap_or_default();

    match result {
        Ok(response) => fetched_from(config, &response, &where_),
        Err(RequestTokenError::ServerResponse(error)) => {
            let code = error.error();
            // Upstream text: flattened to one bounded line before it reaches messages and logs.
            let described = described(&error);
            match code {
                BasicErrorResponseType::InvalidGrant if interactive => Err(FetchError::Rejected {
                    message: format!(
                        "{where_}: the session ended: the refresh token was refused \
                         ({described}); run `tok login {name}`"
                    ),
                    needs_login: true,
                }),
                BasicErrorResponseType::InvalidGrant if refresh_grant => {
                    Err(FetchError::Rejected {
                        message: format!(
                            "{where_}: the refresh token was refused ({described}); it was revoked or \
                         expired: put a new one in the config, then run `tok invalidate {name}`"
                        ),
                        needs_login: true,
                    })
                }
                BasicErrorResponseType::Extension(_)
                    if meta.status >= 500 || meta.status == 429 =>
                {
                    Err(FetchError::Transient {
                        message: format!("{where_}: HTTP {} ({described})", meta.status),
                        retry_after: meta.retry_after,
                    })
                }
                _ => Err(FetchError::Rejected {
                    message: format!(
                        "{where_}: refused ({described}); check client_id, client_secret, grant \
                         and scopes, then run `tok invalidate {name}`"
                    ),
                    needs_login: false,
                }),
            }
        }
        Err(RequestTokenError::Request(transport)) => Err(transport_failure(&transport)),
        Err(RequestTokenError::Parse(_, _) | RequestTokenError::Other(_)) => Err(status_error(
            &where_,
            meta.status,
            meta.retry_after,
            &meta.body,
        )),
    }
}

/// The refresh token of `grant = "refresh_token"`: the chain rotated from the configured one,
/// or the configured one when the user put a new one in place. The configured token is
/// resolved at every fetch for that comparison.
async fn configured_chain(
    cx: &FetchCx<'_>,
    refresh_token: &SecretTemplate,
    state: &mut FetchState,
) -> Result<Secret, FetchError> {
    let configured = cx.resolve("refresh_token", refresh_token).await;
    match (&state.refresh_token, configured) {
        (Some(rotated), Ok(configured)) if state.origin.as_ref() == Some(&configured) => {
            Ok(rotated.clone())
        }
        // The configured source is gone (a removed file, a failing command), but the rotated
        // chain still works.
        (Some(rotated), Err(_)) => Ok(rotated.clone()),
        (_, Ok(configured)) => {
            state.refresh_token = None;
            state.origin = Some(configured.clone());
            Ok(configured)
        }
        (None, Err(error)) => Err(error),
    }
}

/// `grant = "jwt_bearer"` (RFC 7523 section 2.1): the `oauth2` crate has no such grant, so the
/// form is built here; the answer is a standard token response.
async fn jwt_bearer_fetch(
    cx: &FetchCx<'_>,
    config: &OAuth2Config,
    bearer: &JwtBearer,
    endpoints: &Endpoints,
) -> Result<Fetched, FetchError> {
    let name = cx.name;
    let key = config
        .signing_key
        .as_ref()
        .ok_or_else(|| FetchError::Config("grant \"jwt_bearer\" without private_key".to_owned()))?;
    let token_url = &endpoints.token;
    let audience = bearer.audience.as_deref().unwrap_or(token_url.as_str());
    let assertion =
        assertion::sign_assertion(cx, key, &bearer.issuer, &bearer.subject, audience).await?;
    let mut pairs: Vec<(String, Secret)> = vec![
        (
            "grant_type".to_owned(),
            Secret::from("urn:ietf:params:oauth:grant-type:jwt-bearer"),
        ),
        ("assertion".to_owned(), Secret::new(assertion)),
    ];
    if !config.scopes.is_empty() {
        pairs.push(("scope".to_owned(), Secret::new(config.scopes.join(" "))));
    }
    for (key, value) in &config.params {
        pairs.push((key.clone(), Secret::new(value.clone())));
    }
    let answer = post_form(cx, config, endpoints, token_url, pairs).await?;
    let where_ = format!("token endpoint {}", shown(token_url));
    form_grant_answer(
        &where_,
        &answer,
        config.ttl,
        &format!(
            "the assertion was refused ({{}}); check private_key, key_id, the assertion_* keys \
             and the key registered with the server, then run `tok invalidate {name}`"
        ),
    )
}

/// The answer to a grant whose form tokend built (`jwt_bearer`, `token_exchange`, a Google
/// service account): an OAuth 2.0 error of a 400 or 401 is a rejection, described by
/// `refused` (whose `{}` is replaced by the error code and description); otherwise a
/// standard token response, whose `access_token` (or, without one, `id_token`: Google's ID
/// token grant answers only that) is the token, with its id_token.
pub(crate) fn form_grant_answer(
    where_: &str,
    answer: &Answer,
    ttl: Option<Duration>,
    refused: &str,
) -> Result<Fetched, FetchError> {
    if answer.status == 400 || answer.status == 401 {
        let error: Option<Value> = serde_json::from_slice(&answer.body).ok();
        if let Some(code) = error
            .as_ref()
            .and_then(|e| e.get("error"))
            .and_then(Value::as_str)
        {
            let description = error
                .as_ref()
                .and_then(|e| e.get("error_description"))
                .and_then(Value::as_str)
                .map(|text| format!(": {}", one_line(text)))
                .unwrap_or_default();
            let described = format!("{}{description}", one_line(code));
            return Err(FetchError::Rejected {
                message: format!("{where_}: {}", refused.replace("{}", &described)),
                needs_login: false,
            });
        }
    }
    let document = parse_answer(where_, answer)?;
    let text = |key: &str| {
        document
            .get(key)
            .and_then(Value::as_str)
            .filter(|token| !token.is_empty())
            .map(Secret::from)
    };
    let id_token = text("id_token");
    let (token, expires_in) = match (text("access_token"), &id_token) {
        (Some(token), _) => (
            token,
            document
                .get("expires_in")
                .and_then(seconds)
                .map(Duration::from_secs),
        ),
        // An ID token alone: its own `exp` says how long it lives.
        (None, Some(id_token)) => (id_token.clone(), None),
        (None, None) => {
            return Err(FetchError::Transient {
                message: format!("{where_}: the response has no access_token"),
                retry_after: None,
            });
        }
    };
    let lifetime = lifetime_of(expires_in, &token, ttl, false).map_err(|err| err.at(where_))?;
    // These grants are repeated as they are, never refreshed.
    Ok(Fetched {
        id_token,
        ..Fetched::new(token, lifetime)
    })
}

/// A token endpoint's answer as the engine's [`Fetched`]: the access token (never empty), its
/// lifetime and the refresh token that came with it, if any. `where_` names the endpoint.
pub(crate) fn fetched_from(
    config: &OAuth2Config,
    response: &TokenResponse,
    where_: &str,
) -> Result<Fetched, FetchError> {
    let token = Secret::new(response.access_token().secret().clone());
    if token.is_empty() {
        return Err(FetchError::Transient {
            message: format!("{where_}: the response has an empty access_token"),
            retry_after: None,
        });
    }
    let lifetime = lifetime_of(response.expires_in(), &token, config.ttl, false)
        .map_err(|err| err.at(where_))?;
    Ok(Fetched {
        refresh_token: response
            .refresh_token()
            .map(|rt| Secret::new(rt.secret().clone())),
        id_token: response
            .extra_fields()
            .id_token
            .as_ref()
            .filter(|token| !token.is_empty())
            .map(|token| Secret::new(token.clone())),
        ..Fetched::new(token, lifetime)
    })
}

/// An OAuth 2.0 error response as `code: description`, each part in one bounded line (it is
/// upstream text on its way to messages and logs).
pub(crate) fn described<T: oauth2::ErrorResponseType + AsRef<str>>(
    error: &oauth2::StandardErrorResponse<T>,
) -> String {
    let code = one_line(error.error().as_ref());
    match error.error_description() {
        Some(text) => format!("{code}: {}", one_line(text)),
        None => code,
    }
}
