//! Reading the keys of `kind = "oauth2"` that say how the client proves who it is, and what it
//! trades: `client_auth` with `client_secret`, a signed assertion or the platform's
//! (`client_assertion`), and the keys of `grant = "token_exchange"` (RFC 8693). Every
//! combination that cannot work is refused here, naming the key.

use toml::de::DeValue;

use super::exchange::DEFAULT_SUBJECT_TOKEN_TYPE;
use super::{CLIENT_AUTHS, ClientAuth, OAuth2Grant, TokenExchange};
use crate::config::ConfigError;
use crate::config::reader::{CREDENTIAL, Literal, Table};
use crate::secret::SecretTemplate;

/// `client_auth`, with what it needs: a `client_secret` for `basic` and `post` (a
/// `client_credentials` client must authenticate somehow), the `client_assertion` template for
/// `client_assertion` (which a `client_assertion` key alone also selects).
pub(super) fn client_auth(
    table: &Table<'_, '_>,
    literals: &mut Vec<Literal>,
    has_secret: bool,
    grant: &OAuth2Grant,
) -> Result<(ClientAuth, Option<SecretTemplate>), ConfigError> {
    let assertion = match table.str("client_assertion")? {
        Some(found) => Some((table.parse_template(&found, CREDENTIAL, literals)?, found)),
        None => None,
    };
    let client_auth = match table.str("client_auth")? {
        None if assertion.is_some() => ClientAuth::ClientAssertion,
        None => ClientAuth::default(),
        Some(found) => match found.text {
            "basic" | "post" if !has_secret => {
                return Err(table.error(
                    &found.span,
                    &found.key,
                    format!(
                        "`client_auth` is \"{}\" but there is no `client_secret`",
                        found.text
                    ),
                    "remove client_auth (a public client only sends its client_id), add \
                     client_secret, or use client_auth = \"private_key_jwt\" with private_key",
                ));
            }
            "basic" => ClientAuth::Basic,
            "post" => ClientAuth::Post,
            "private_key_jwt" => ClientAuth::PrivateKeyJwt,
            "client_assertion" => ClientAuth::ClientAssertion,
            other => {
                return Err(table.error(
                    &found.span,
                    &found.key,
                    format!("unknown client_auth {other:?}"),
                    format!("use one of: {}", CLIENT_AUTHS.join(", ")),
                ));
            }
        },
    };
    let asserted = matches!(
        client_auth,
        ClientAuth::PrivateKeyJwt | ClientAuth::ClientAssertion
    );
    if asserted && has_secret {
        let span = table.key_span("client_secret").unwrap_or_default();
        return Err(table.error(
            &span,
            "client_secret",
            "`client_secret` is set but an assertion authenticates the client".to_owned(),
            "remove one: private_key_jwt authenticates with private_key, client_assertion \
             with the platform's token",
        ));
    }
    match (&assertion, client_auth) {
        (None, ClientAuth::ClientAssertion) => {
            return Err(table.missing(
                "client_assertion",
                "client_auth \"client_assertion\" needs `client_assertion`".to_owned(),
                "add the platform's token, e.g. client_assertion = \
                 \"${file:/var/run/secrets/tokens/azure-identity-token}\"",
            ));
        }
        (Some((_, found)), auth) if auth != ClientAuth::ClientAssertion => {
            return Err(table.error(
                &found.span,
                &found.key,
                "`client_assertion` is set but client_auth is not \"client_assertion\"".to_owned(),
                "remove one of them: client_assertion authenticates the client with the \
                 platform's token",
            ));
        }
        _ => {}
    }
    if !has_secret && !asserted && matches!(grant, OAuth2Grant::ClientCredentials) {
        return Err(table.missing(
            "client_secret",
            "grant \"client_credentials\" needs a `client_secret`".to_owned(),
            "add one, e.g. client_secret = \"${env:NAME}\", or authenticate with a key: \
             client_auth = \"private_key_jwt\" and private_key, or with the platform's token: \
             client_assertion = \"${file:…}\"",
        ));
    }
    if asserted && matches!(grant, OAuth2Grant::DeviceCode(_)) {
        let span = table
            .key_span("client_auth")
            .or_else(|| table.key_span("client_assertion"))
            .unwrap_or_default();
        return Err(table.error(
            &span,
            "client_auth",
            "a client assertion does not work with grant \"device_code\"".to_owned(),
            "the device flow polls with one request many times, and an assertion may be used \
             only once: use a public client (no client_auth) or grant = \"authorization_code\"",
        ));
    }
    Ok((client_auth, assertion.map(|(template, _)| template)))
}

/// The keys of `grant = "token_exchange"`.
pub(super) fn token_exchange(
    table: &Table<'_, '_>,
    literals: &mut Vec<Literal>,
) -> Result<TokenExchange, ConfigError> {
    let subject_token = table
        .template("subject_token", CREDENTIAL, literals)?
        .ok_or_else(|| {
            table.missing(
                "subject_token",
                "grant \"token_exchange\" needs a `subject_token`".to_owned(),
                "add the token to exchange, e.g. subject_token = \"${provider:ci-oidc}\" or \
                 \"${file:/var/run/secrets/tokens/token}\"",
            )
        })?;
    let type_uri = |key: &str| -> Result<Option<String>, ConfigError> {
        match table.str(key)? {
            Some(found) => {
                let hint = "give a token type URI, e.g. \
                            \"urn:ietf:params:oauth:token-type:access_token\"";
                table.non_empty(&found, hint)?;
                if found
                    .text
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control())
                {
                    return Err(table.error(
                        &found.span,
                        &found.key,
                        format!("`{key}` is not a URI"),
                        hint,
                    ));
                }
                Ok(Some(found.text.to_owned()))
            }
            None => Ok(None),
        }
    };
    let subject_token_type =
        type_uri("subject_token_type")?.unwrap_or_else(|| DEFAULT_SUBJECT_TOKEN_TYPE.to_owned());
    let actor_token = table.template("actor_token", CREDENTIAL, literals)?;
    let actor_token_type = type_uri("actor_token_type")?;
    let actor_token = match (actor_token, actor_token_type) {
        (Some(token), token_type) => Some((
            token,
            token_type.unwrap_or_else(|| DEFAULT_SUBJECT_TOKEN_TYPE.to_owned()),
        )),
        (None, Some(_)) => {
            let span = table.key_span("actor_token_type").unwrap_or_default();
            return Err(table.error(
                &span,
                "actor_token_type",
                "`actor_token_type` is set without `actor_token`".to_owned(),
                "add actor_token, or remove actor_token_type",
            ));
        }
        (None, None) => None,
    };
    Ok(TokenExchange {
        subject_token,
        subject_token_type,
        actor_token,
        requested_token_type: type_uri("requested_token_type")?,
        audience: string_or_array(table, "audience")?,
        resource: string_or_array(table, "resource")?,
    })
}

/// A key that holds one string or an array of strings (none: empty).
fn string_or_array(table: &Table<'_, '_>, key: &str) -> Result<Vec<String>, ConfigError> {
    const HINT: &str = "write one string, or an array of strings";
    let Some((name, value)) = table.entry(key) else {
        return Ok(Vec::new());
    };
    let items: Vec<&toml::Spanned<DeValue<'_>>> = match value.get_ref() {
        DeValue::String(_) => vec![value],
        DeValue::Array(items) => items.iter().collect(),
        other => {
            return Err(table.wrong_type(
                &name.span(),
                key,
                "a string or an array of strings",
                other,
                HINT,
            ));
        }
    };
    let mut values = Vec::with_capacity(items.len());
    for item in items {
        let DeValue::String(text) = item.get_ref() else {
            return Err(table.wrong_type(&item.span(), key, "a string", item.get_ref(), HINT));
        };
        if text.is_empty() || text.chars().any(char::is_control) {
            return Err(table.error(
                &item.span(),
                key,
                format!("an empty value or a control character in `{key}`"),
                HINT,
            ));
        }
        values.push(text.to_string());
    }
    Ok(values)
}
