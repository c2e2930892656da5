//! `grant = "token_exchange"` (RFC 8693): a token the job holds (the subject: a platform's
//! token file, or another provider's token through `${provider:NAME}`) is exchanged at the
//! token endpoint for an access token, optionally on behalf of an actor. The form is built here
//! (the `oauth2` crate has no such grant); the client authenticates as the provider says (a
//! secret, a signed or a platform assertion, or nothing for a public client).

use tokend_protocol::Secret;

use super::client::post_form;
use super::endpoints::Endpoints;
use super::grants::form_grant_answer;
use super::{OAuth2Config, TokenExchange};
use crate::kinds::{FetchCx, FetchError, Fetched};
use crate::upstream::shown;

/// The `grant_type` of RFC 8693.
pub(crate) const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// `subject_token_type` when none is given: the subject is a JWT (what platforms hand out).
pub(crate) const DEFAULT_SUBJECT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// Exchanges the subject token for an access token.
pub(crate) async fn fetch(
    cx: &FetchCx<'_>,
    config: &OAuth2Config,
    exchange: &TokenExchange,
    endpoints: &Endpoints,
) -> Result<Fetched, FetchError> {
    let name = cx.name;
    // Resolved for every request: a platform's token file rotates, another provider's token
    // is renewed.
    let subject = cx
        .resolve_platform("subject_token", &exchange.subject_token)
        .await?;
    let mut pairs: Vec<(String, Secret)> = vec![
        ("grant_type".to_owned(), Secret::from(GRANT_TYPE)),
        ("subject_token".to_owned(), subject),
        (
            "subject_token_type".to_owned(),
            Secret::new(exchange.subject_token_type.clone()),
        ),
    ];
    if let Some((template, token_type)) = &exchange.actor_token {
        let actor = cx.resolve_platform("actor_token", template).await?;
        pairs.push(("actor_token".to_owned(), actor));
        pairs.push((
            "actor_token_type".to_owned(),
            Secret::new(token_type.clone()),
        ));
    }
    if let Some(requested) = &exchange.requested_token_type {
        pairs.push((
            "requested_token_type".to_owned(),
            Secret::new(requested.clone()),
        ));
    }
    for audience in &exchange.audience {
        pairs.push(("audience".to_owned(), Secret::new(audience.clone())));
    }
    for resource in &exchange.resource {
        pairs.push(("resource".to_owned(), Secret::new(resource.clone())));
    }
    if !config.scopes.is_empty() {
        pairs.push(("scope".to_owned(), Secret::new(config.scopes.join(" "))));
    }
    for (key, value) in &config.params {
        pairs.push((key.clone(), Secret::new(value.clone())));
    }
    let token_url = &endpoints.token;
    let answer = post_form(cx, config, endpoints, token_url, pairs).await?;
    let where_ = format!("token endpoint {}", shown(token_url));
    form_grant_answer(
        &where_,
        &answer,
        config.ttl,
        &format!(
            "the token exchange was refused ({{}}); check subject_token (and its type), \
             audience, resource, scopes and the client's credentials, then run \
             `tok invalidate {name}`"
        ),
    )
}
