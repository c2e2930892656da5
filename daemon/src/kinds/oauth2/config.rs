//! Reading `kind = "oauth2"`: the grant and the keys that belong to it, the token endpoint or
//! issuer, the client and how it authenticates (secret, signed or platform assertion), the
//! signing key, scopes and parameters. Every combination that cannot work is refused here,
//! naming the key.

use std::time::Duration;

use toml::de::DeValue;
use url::Url;

use super::client_config::{client_auth, token_exchange};
use super::{
    AuthorizationCodeLogin, ClientAuth, DeviceLogin, GRANTS, JwtBearer, OAuth2Config, OAuth2Grant,
    TokenEndpoint,
};
use crate::config::ConfigError;
use crate::config::reader::{CREDENTIAL, Literal, Table};
use crate::kinds::jwt::read_signing_key;
use crate::kinds::{KindSpec, ProviderKind, Read};

/// Form parameters the `oauth2` kind sets itself; `params` may not override them.
const RESERVED_OAUTH2_PARAMS: [&str; 5] = [
    "grant_type",
    "scope",
    "client_id",
    "client_secret",
    "refresh_token",
];

/// Authorization-request parameters the authorization code flow sets itself.
const RESERVED_AUTH_PARAMS: [&str; 7] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
];
/// The keys that belong to one grant, with that grant.
const LOGIN_KEYS: [(&str, &str); 15] = [
    ("auth_url", "authorization_code"),
    ("redirect_uri", "authorization_code"),
    ("login_timeout", "authorization_code"),
    ("auth_params", "authorization_code"),
    ("device_url", "device_code"),
    ("assertion_issuer", "jwt_bearer"),
    ("assertion_subject", "jwt_bearer"),
    ("assertion_audience", "jwt_bearer"),
    ("subject_token", "token_exchange"),
    ("subject_token_type", "token_exchange"),
    ("actor_token", "token_exchange"),
    ("actor_token_type", "token_exchange"),
    ("requested_token_type", "token_exchange"),
    ("audience", "token_exchange"),
    ("resource", "token_exchange"),
];
/// `redirect_uri` when none is given: loopback, ephemeral port (RFC 8252 section 7.3).
const DEFAULT_REDIRECT_URI: &str = "http://127.0.0.1:0/callback";
/// `login_timeout` when none is given, and its bounds.
const DEFAULT_LOGIN_TIMEOUT: Duration = Duration::from_secs(180);
const LOGIN_TIMEOUT_RANGE: (Duration, Duration) =
    (Duration::from_secs(10), Duration::from_secs(1800));

/// Reads `kind = "oauth2"`.
pub(super) fn read(
    spec: &KindSpec,
    table: &Table<'_, '_>,
    literals: &mut Vec<Literal>,
) -> Result<Read, ConfigError> {
    table.check_keys(spec)?;
    let grant = table.str("grant")?.ok_or_else(|| {
        table.missing(
            "grant",
            "kind \"oauth2\" needs a `grant`".to_owned(),
            "add grant = \"client_credentials\" or grant = \"refresh_token\"",
        )
    })?;
    let refresh_token = table.template("refresh_token", CREDENTIAL, literals)?;
    let grant = match (grant.text, refresh_token) {
        ("client_credentials", None) => OAuth2Grant::ClientCredentials,
        ("client_credentials", Some(_)) => {
            let span = table.key_span("refresh_token").unwrap_or_default();
            return Err(table.error(
                &span,
                "refresh_token",
                "`refresh_token` is set but grant is \"client_credentials\"".to_owned(),
                "remove refresh_token, or set grant = \"refresh_token\"",
            ));
        }
        ("refresh_token", Some(refresh_token)) => OAuth2Grant::RefreshToken { refresh_token },
        ("refresh_token", None) => {
            return Err(table.missing(
                "refresh_token",
                "grant \"refresh_token\" needs a `refresh_token`".to_owned(),
                "add one, e.g. refresh_token = \"${env:NAME}\"",
            ));
        }
        (interactive @ ("authorization_code" | "device_code"), Some(_)) => {
            let span = table.key_span("refresh_token").unwrap_or_default();
            return Err(table.error(
                &span,
                "refresh_token",
                format!("`refresh_token` is set but grant is \"{interactive}\""),
                "remove it: `tok login NAME` obtains the refresh token (or use \
                 grant = \"refresh_token\" to configure one yourself)",
            ));
        }
        ("authorization_code", None) => {
            OAuth2Grant::AuthorizationCode(authorization_code_login(table)?)
        }
        ("device_code", None) => OAuth2Grant::DeviceCode(DeviceLogin {
            device_url: table.url("device_url")?.map(|(url, _)| url),
        }),
        ("jwt_bearer", Some(_)) => {
            let span = table.key_span("refresh_token").unwrap_or_default();
            return Err(table.error(
                &span,
                "refresh_token",
                "`refresh_token` is set but grant is \"jwt_bearer\"".to_owned(),
                "remove it: the signed assertion is the grant",
            ));
        }
        ("jwt_bearer", None) => {
            let text = |key: &str| -> Result<Option<String>, ConfigError> {
                match table.str(key)? {
                    Some(found) => {
                        table.non_empty(&found, "give a non-empty value, or remove the key")?;
                        Ok(Some(found.text.to_owned()))
                    }
                    None => Ok(None),
                }
            };
            let client_id = table.str("client_id")?.map(|found| found.text.to_owned());
            let issuer = text("assertion_issuer")?.or(client_id).unwrap_or_default();
            OAuth2Grant::JwtBearer(JwtBearer {
                subject: text("assertion_subject")?.unwrap_or_else(|| issuer.clone()),
                issuer,
                audience: text("assertion_audience")?,
            })
        }
        ("token_exchange", Some(_)) => {
            let span = table.key_span("refresh_token").unwrap_or_default();
            return Err(table.error(
                &span,
                "refresh_token",
                "`refresh_token` is set but grant is \"token_exchange\"".to_owned(),
                "remove it: subject_token is what is exchanged",
            ));
        }
        ("token_exchange", None) => OAuth2Grant::TokenExchange(token_exchange(table, literals)?),
        (other, _) => {
            return Err(table.error(
                &grant.span,
                &grant.key,
                format!("unknown grant {other:?}"),
                format!("use one of: {}", GRANTS.join(", ")),
            ));
        }
    };

    for (key, owner) in LOGIN_KEYS {
        if let Some(span) = table.key_span(key)
            && grant.name() != owner
        {
            return Err(table.error(
                &span,
                key,
                format!("`{key}` is set but grant is \"{}\"", grant.name()),
                match owner {
                    "device_code" => "remove it, or set grant = \"device_code\"",
                    "jwt_bearer" => "remove it, or set grant = \"jwt_bearer\"",
                    "token_exchange" => "remove it, or set grant = \"token_exchange\"",
                    _ => "remove it, or set grant = \"authorization_code\"",
                },
            ));
        }
    }

    let endpoint = match (table.url("token_url")?, table.url("issuer")?) {
        (Some((_, token_url)), Some((_, issuer))) => {
            let later = if token_url.span.start > issuer.span.start {
                token_url
            } else {
                issuer
            };
            return Err(table.error(
                &later.span,
                &later.key,
                "`token_url` and `issuer` are both set".to_owned(),
                "keep one: token_url is the token endpoint itself, issuer finds it through \
                 OpenID Connect discovery",
            ));
        }
        (Some((token_url, _)), None) => TokenEndpoint::TokenUrl(token_url),
        (None, Some((issuer, found))) => {
            if issuer.query().is_some() || issuer.fragment().is_some() {
                return Err(table.error(
                    &found.span,
                    &found.key,
                    "`issuer` has a query or a fragment".to_owned(),
                    "an OpenID Connect issuer is scheme, host and optional path only",
                ));
            }
            TokenEndpoint::Issuer(issuer)
        }
        (None, None) => {
            return Err(table.missing(
                "token_url",
                "kind \"oauth2\" needs a `token_url` or an `issuer`".to_owned(),
                "add token_url = \"https://…/token\", or issuer = \"https://…\" to find the \
                 token endpoint through OpenID Connect discovery",
            ));
        }
    };

    let client_id = table.required_text(
        "client_id",
        "kind \"oauth2\"",
        "add the client identifier the authorization server issued, e.g. client_id = \"svc\"",
    )?;
    let client_id = client_id.text.to_owned();

    let discovered = matches!(endpoint, TokenEndpoint::Issuer(_));
    match &grant {
        OAuth2Grant::AuthorizationCode(login) if login.auth_url.is_none() && !discovered => {
            return Err(table.missing(
                "auth_url",
                "grant \"authorization_code\" with a `token_url` needs an `auth_url`".to_owned(),
                "add auth_url = \"https://…/authorize\" (the authorization endpoint), or use \
                 issuer = \"https://…\" to find both endpoints through OpenID Connect discovery",
            ));
        }
        OAuth2Grant::DeviceCode(login) if login.device_url.is_none() && !discovered => {
            return Err(table.missing(
                "device_url",
                "grant \"device_code\" with a `token_url` needs a `device_url`".to_owned(),
                "add device_url = \"https://…/device\" (the device authorization endpoint), or \
                 use issuer = \"https://…\" to find both endpoints through discovery",
            ));
        }
        _ => {}
    }
    let revocation_url = table.url("revocation_url")?.map(|(url, _)| url);

    let client_secret = table.template("client_secret", CREDENTIAL, literals)?;
    let (client_auth, client_assertion) =
        client_auth(table, literals, client_secret.is_some(), &grant)?;
    let signs =
        client_auth == ClientAuth::PrivateKeyJwt || matches!(grant, OAuth2Grant::JwtBearer(_));
    let signing_key = read_signing_key(
        table,
        literals,
        signs,
        "use client_auth = \"private_key_jwt\" or grant = \"jwt_bearer\"",
    )?;

    let scopes = scopes(table)?;
    let params = oauth2_params(table)?;
    let ttl = table.duration("ttl")?;
    let timeout = table.timeout()?;

    let config = OAuth2Config {
        grant,
        endpoint,
        client_id,
        client_secret,
        client_auth,
        scopes,
        params,
        ttl,
        timeout,
        revocation_url,
        signing_key,
        client_assertion,
    };
    Ok((ProviderKind::OAuth2(Box::new(config)), None))
}

/// The `authorization_code` grant's own keys.
pub(super) fn authorization_code_login(
    table: &Table<'_, '_>,
) -> Result<AuthorizationCodeLogin, ConfigError> {
    let auth_url = table.url("auth_url")?.map(|(url, _)| url);
    let redirect_uri = match table.str("redirect_uri")? {
        None => Url::parse(DEFAULT_REDIRECT_URI).expect("the default redirect URI parses"),
        Some(found) => {
            let hint = "use a loopback http URL such as \"http://127.0.0.1:0/callback\" (port 0: \
                        any free port) or \"http://127.0.0.1:8400/callback\"; tokend listens \
                        there for the redirect";
            let url = Url::parse(found.text).map_err(|err| {
                table.error(
                    &found.span,
                    &found.key,
                    format!("`redirect_uri` is not a URL ({err})"),
                    hint,
                )
            })?;
            let loopback = url
                .host_str()
                .is_some_and(tokend_protocol::host::is_loopback_host);
            if url.scheme() != "http"
                || !loopback
                || url.query().is_some()
                || url.fragment().is_some()
                || !url.username().is_empty()
            {
                return Err(table.error(
                    &found.span,
                    &found.key,
                    "`redirect_uri` must be a loopback http URL without query or fragment"
                        .to_owned(),
                    hint,
                ));
            }
            url
        }
    };
    let timeout = match table.duration("login_timeout")? {
        None => DEFAULT_LOGIN_TIMEOUT,
        Some(timeout) if (LOGIN_TIMEOUT_RANGE.0..=LOGIN_TIMEOUT_RANGE.1).contains(&timeout) => {
            timeout
        }
        Some(_) => {
            let span = table.key_span("login_timeout").unwrap_or_default();
            return Err(table.error(
                &span,
                "login_timeout",
                "`login_timeout` is out of range".to_owned(),
                "use a duration from \"10s\" to \"30m\" (default \"3m\")",
            ));
        }
    };
    let auth_params = string_params(
        table,
        "auth_params",
        &RESERVED_AUTH_PARAMS,
        "remove it: tokend sets response_type, client_id, redirect_uri, scope, state and the \
         PKCE parameters itself",
    )?;
    Ok(AuthorizationCodeLogin {
        auth_url,
        redirect_uri,
        timeout,
        auth_params,
    })
}

/// `scopes = [...]`: RFC 6749 section 3.3 scope tokens.
pub(super) fn scopes(table: &Table<'_, '_>) -> Result<Vec<String>, ConfigError> {
    const HINT: &str = "write scopes = [\"name\", …]: one string per scope";
    let Some((name, value)) = table.entry("scopes") else {
        return Ok(Vec::new());
    };
    let DeValue::Array(items) = value.get_ref() else {
        return Err(table.wrong_type(
            &name.span(),
            "scopes",
            "an array of strings",
            value.get_ref(),
            HINT,
        ));
    };
    let mut scopes = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let key = format!("scopes[{index}]");
        let DeValue::String(scope) = item.get_ref() else {
            return Err(table.wrong_type(&item.span(), &key, "a string", item.get_ref(), HINT));
        };
        let is_scope_char = |byte: u8| matches!(byte, 0x21 | 0x23..=0x5B | 0x5D..=0x7E);
        if scope.is_empty() || !scope.bytes().all(is_scope_char) {
            return Err(table.error(
                &item.span(),
                &key,
                "not a valid scope name: it is empty or has spaces, quotes, backslashes or \
                 non-ASCII characters"
                    .to_owned(),
                "give each scope as its own string, e.g. scopes = [\"api.read\", \"api.write\"]",
            ));
        }
        scopes.push(scope.to_string());
    }
    Ok(scopes)
}

/// `params = { name = "value", … }`: plain strings, no reserved name.
fn oauth2_params(table: &Table<'_, '_>) -> Result<Vec<(String, String)>, ConfigError> {
    string_params(
        table,
        "params",
        &RESERVED_OAUTH2_PARAMS,
        "remove it: grant_type comes from grant, scope from scopes, and client_id, \
         client_secret and refresh_token from their own keys",
    )
}

/// A table of plain string parameters (`params`, `auth_params`), in file order, none of them
/// one of `reserved`.
fn string_params(
    table: &Table<'_, '_>,
    key: &str,
    reserved: &[&str],
    reserved_hint: &'static str,
) -> Result<Vec<(String, String)>, ConfigError> {
    let Some(params) = table.table(
        key,
        "write it as a table, e.g. params = { audience = \"https://api.example.com\" }",
    )?
    else {
        return Ok(Vec::new());
    };
    let mut fields = Vec::with_capacity(params.entries.len());
    for &entry in &params.entries {
        let name = entry.0.get_ref();
        let found = params.entry_str(
            entry,
            "parameters are plain strings, e.g. audience = \"https://api.example.com\"",
        )?;
        if name.is_empty() {
            return Err(params.error(
                &entry.0.span(),
                &found.key,
                "a parameter has an empty name".to_owned(),
                "give the parameter a name, or remove it",
            ));
        }
        if reserved.contains(&name.as_ref()) {
            return Err(params.error(
                &entry.0.span(),
                &found.key,
                format!("`{}` is a parameter tokend sets itself", found.key),
                reserved_hint,
            ));
        }
        fields.push((name.to_string(), found.text.to_owned()));
    }
    Ok(fields)
}
