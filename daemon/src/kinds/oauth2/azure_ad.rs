//! `preset = "azure-ad"`: the Microsoft identity platform's v2.0 endpoints
//! (`{authority}/{tenant}/oauth2/v2.0/authorize` and `…/token`) for a tenant. Without a
//! `client_secret` a person logs in with `tok login` (authorization code with PKCE;
//! `offline_access` is added to the scopes so that the session has a refresh token); with one,
//! the app authenticates itself (client credentials, secret in the form body). Azure AD has no
//! revocation endpoint, so `tok logout` only forgets the session.

use url::Url;

use super::keys as oauth2_keys;
use super::{ClientAuth, OAuth2Config, OAuth2Grant, TokenEndpoint, config};
use crate::config::ConfigError;
use crate::config::fleet::PROVIDER_KEYS as FLEET;
use crate::config::keys::{Key, PRESENTATION, ROUTES, TIMEOUT};
use crate::config::outlets::OUTLETS;
use crate::config::reader::{CREDENTIAL, Literal, Table};
use crate::config::values::join_path;
use crate::kinds::{KindSpec, ProviderKind, Read};

const OWN: &[Key] = &[
    Key::new(
        "tenant",
        "yes",
        "The directory (tenant) id or a domain such as `contoso.onmicrosoft.com` (or \
         `organizations`, `common`).",
    ),
    Key::new(
        "client_id",
        "yes",
        "The application (client) id of your app registration.",
    ),
    Key::new(
        "client_secret",
        "no",
        "Credential template. With it the app logs in as itself (client credentials); \
         without, a person logs in with `tok login`.",
    ),
    oauth2_keys::SCOPES,
    Key::new(
        "authority",
        "no (`https://login.microsoftonline.com`)",
        "Another authority URL, for national clouds or tests.",
    ),
    oauth2_keys::REDIRECT_URI,
    oauth2_keys::LOGIN_TIMEOUT,
];

pub(crate) const PRESET: KindSpec = KindSpec {
    key: "preset",
    name: "azure-ad",
    summary: "The Microsoft identity platform v2.0 endpoints `{authority}/{tenant}/oauth2/v2.0/authorize` and `…/token`. Without a `client_secret` a person logs in with `tok login` (authorization code with PKCE; `offline_access` is added to the scopes so the session has a refresh token); with one, the app authenticates itself (client credentials, secret in the form body). Presented as `Authorization: Bearer <token>`. Azure AD has no revocation endpoint, so `tok logout` only forgets the session.",
    keys: &[OWN, &[TIMEOUT], FLEET, PRESENTATION, ROUTES, OUTLETS],
    read,
};

const AZURE_AUTHORITY: &str = "https://login.microsoftonline.com";

/// `preset = "azure-ad"`: the Microsoft identity platform's v2.0 endpoints for `tenant`. Without
/// a `client_secret` a person logs in (authorization code with PKCE; `offline_access` is added
/// to the scopes so that there is a refresh token); with one, the app itself authenticates
/// (client credentials).
fn read(
    spec: &KindSpec,
    table: &Table<'_, '_>,
    literals: &mut Vec<Literal>,
) -> Result<Read, ConfigError> {
    table.check_keys(spec)?;
    let tenant = table.required_text(
        "tenant",
        "preset \"azure-ad\"",
        "add the directory (tenant) id or domain, e.g. tenant = \"contoso.onmicrosoft.com\"",
    )?;
    if !tenant
        .text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'))
    {
        return Err(table.error(
            &tenant.span,
            &tenant.key,
            "`tenant` is not a tenant id or domain".to_owned(),
            "use the directory (tenant) id (a GUID), a domain such as \
             \"contoso.onmicrosoft.com\", or \"organizations\" / \"common\"",
        ));
    }
    let authority = match table.base_url("authority")? {
        Some(url) => url,
        None => Url::parse(AZURE_AUTHORITY).expect("the Azure authority parses"),
    };
    let endpoint =
        |path: &str| join_path(&authority, &format!("{}/oauth2/v2.0/{path}", tenant.text));
    let client_id = table
        .required_text(
            "client_id",
            "preset \"azure-ad\"",
            "add the application (client) id of the app registration",
        )?
        .text
        .to_owned();
    let client_secret = table.template("client_secret", CREDENTIAL, literals)?;
    let mut scopes = config::scopes(table)?;
    let grant = if client_secret.is_some() {
        for key in ["redirect_uri", "login_timeout"] {
            if let Some(span) = table.key_span(key) {
                return Err(table.error(
                    &span,
                    key,
                    format!("`{key}` is set but a client_secret makes this an app login"),
                    "remove it, or remove client_secret to log in as a person with tok login",
                ));
            }
        }
        OAuth2Grant::ClientCredentials
    } else {
        if !scopes.iter().any(|scope| scope == "offline_access") {
            scopes.push("offline_access".to_owned());
        }
        let mut login = config::authorization_code_login(table)?;
        login.auth_url = Some(endpoint("authorize"));
        OAuth2Grant::AuthorizationCode(login)
    };
    let config = OAuth2Config {
        grant,
        endpoint: TokenEndpoint::TokenUrl(endpoint("token")),
        client_id,
        client_secret,
        client_auth: ClientAuth::Post,
        scopes,
        params: Vec::new(),
        ttl: None,
        timeout: table.timeout()?,
        revocation_url: None,
        signing_key: None,
    };
    Ok((ProviderKind::OAuth2(config), None))
}
