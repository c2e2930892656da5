//! `preset = "azure-ad"`: the Microsoft identity platform's v2.0 endpoints
//! (`{authority}/{tenant}/oauth2/v2.0/authorize` and `…/token`) for a tenant. The app
//! authenticates itself (client credentials) with one of: a `client_secret` (in the form body),
//! a certificate (`private_key` and `certificate`: a signed assertion whose `x5t#S256` / `x5t`
//! headers name the certificate registered with Entra ID), or workload identity (the federated
//! token the platform writes to `federated_token_file`, by default `$AZURE_FEDERATED_TOKEN_FILE`,
//! re-read at every request; tenant and client id default to `$AZURE_TENANT_ID` and
//! `$AZURE_CLIENT_ID`, the authority to `$AZURE_AUTHORITY_HOST`, as the workload identity webhook
//! sets them). With none of these a person logs in with `tok login` (authorization code with
//! PKCE; `offline_access` is added to the scopes so that the session has a refresh token).
//! Azure AD has no revocation endpoint, so `tok logout` only forgets the session.

use url::Url;

use super::keys as oauth2_keys;
use super::{ClientAuth, OAuth2Config, OAuth2Grant, TokenEndpoint, config};
use crate::config::ConfigError;
use crate::config::fleet::PROVIDER_KEYS as FLEET;
use crate::config::keys::{Key, PRESENTATION, ROUTES, TIMEOUT};
use crate::config::outlets::OUTLETS;
use crate::config::reader::{CREDENTIAL, Literal, Str, Table};
use crate::config::values::join_path;
use crate::kinds::jwt::{KEYS as SIGNING, read_signing_key};
use crate::kinds::{KindSpec, ProviderKind, Read};
use crate::secret::SecretTemplate;

/// The variables the Azure workload identity webhook sets in a pod.
const TENANT_ENV: &str = "AZURE_TENANT_ID";
const CLIENT_ENV: &str = "AZURE_CLIENT_ID";
const TOKEN_FILE_ENV: &str = "AZURE_FEDERATED_TOKEN_FILE";
const AUTHORITY_ENV: &str = "AZURE_AUTHORITY_HOST";

const OWN: &[Key] = &[
    Key::new(
        "tenant",
        "yes (workload identity: `$AZURE_TENANT_ID`)",
        "The directory (tenant) id or a domain such as `contoso.onmicrosoft.com` (or \
         `organizations`, `common`).",
    ),
    Key::new(
        "client_id",
        "yes (workload identity: `$AZURE_CLIENT_ID`)",
        "The application (client) id of your app registration (or of the managed identity).",
    ),
    Key::new(
        "client_secret",
        "no",
        "Credential template. With it the app logs in as itself (client credentials, secret in \
         the form body).",
    ),
    Key::new(
        "workload_identity",
        "no (`false`)",
        "`true`: the app logs in with the federated token of Azure workload identity (AKS, or \
         any platform the app registration trusts), from `federated_token_file`; `tenant`, \
         `client_id` and `authority` default to the webhook's `AZURE_TENANT_ID`, \
         `AZURE_CLIENT_ID` and `AZURE_AUTHORITY_HOST` in tokend's environment.",
    ),
    Key::new(
        "federated_token_file",
        "no (`$AZURE_FEDERATED_TOKEN_FILE`)",
        "Workload identity (setting it implies `workload_identity = true`): the file holding \
         the platform's token, re-read at every token request (`~/` is the home directory; \
         it may be readable by others, not writable).",
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
    summary: "The Microsoft identity platform v2.0 endpoints `{authority}/{tenant}/oauth2/v2.0/authorize` and `…/token`. The app authenticates itself (client credentials) with a `client_secret` (in the form body), a certificate (`private_key` and its `certificate`: a signed assertion with the `x5t#S256` and `x5t` headers, `RS256` or `PS256`), or workload identity (the federated token in `federated_token_file`, see [Identity federation](#identity-federation)). With none of them a person logs in with `tok login` (authorization code with PKCE; `offline_access` is added to the scopes so the session has a refresh token). Presented as `Authorization: Bearer <token>`. Azure AD has no revocation endpoint, so `tok logout` only forgets the session.",
    keys: &[
        OWN,
        SIGNING,
        &[TIMEOUT],
        FLEET,
        PRESENTATION,
        ROUTES,
        OUTLETS,
    ],
    read,
    route_username: crate::kinds::DEFAULT_ROUTE_USERNAME,
};

/// How the app (or the person) logs in.
enum Login {
    Secret(SecretTemplate),
    Certificate,
    Workload(SecretTemplate),
    Person,
}

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
    let workload = workload_identity(table)?;
    let env_text = |key: &str, var: &str, hint: &'static str| -> Result<String, ConfigError> {
        if let Some(found) = table.str(key)? {
            table.non_empty(&found, hint)?;
            return Ok(found.text.to_owned());
        }
        match table.env(var) {
            Some(value) if workload && !value.is_empty() => Ok(value),
            _ if workload => Err(table.missing(
                key,
                format!(
                    "workload identity needs `{key}`, and {var} is not set in tokend's \
                     environment"
                ),
                format!(
                    "add {key} = \"…\", or start tokend where the workload identity \
                         webhook set {var} (a pod labelled azure.workload.identity/use)"
                ),
            )),
            _ => Err(table.missing(key, format!("preset \"azure-ad\" needs `{key}`"), hint)),
        }
    };
    let tenant = env_text(
        "tenant",
        TENANT_ENV,
        "add the directory (tenant) id or domain, e.g. tenant = \"contoso.onmicrosoft.com\"",
    )?;
    if !tenant
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'))
    {
        let span = table
            .key_span("tenant")
            .unwrap_or_else(|| table.anchor.clone());
        return Err(table.error(
            &span,
            "tenant",
            "`tenant` is not a tenant id or domain".to_owned(),
            "use the directory (tenant) id (a GUID), a domain such as \
             \"contoso.onmicrosoft.com\", or \"organizations\" / \"common\"",
        ));
    }
    let authority = match table.base_url("authority")? {
        Some(url) => url,
        None => match table.env(AUTHORITY_ENV).filter(|_| workload) {
            Some(host) => Url::parse(&host)
                .ok()
                .filter(|url| url.scheme() == "https")
                .ok_or_else(|| {
                    table.missing(
                        "authority",
                        format!("{AUTHORITY_ENV} in tokend's environment is not an https URL"),
                        "set authority = \"https://login.microsoftonline.com\" (or your \
                         cloud's authority)",
                    )
                })?,
            None => Url::parse(AZURE_AUTHORITY).expect("the Azure authority parses"),
        },
    };
    let endpoint = |path: &str| join_path(&authority, &format!("{tenant}/oauth2/v2.0/{path}"));
    let client_id = env_text(
        "client_id",
        CLIENT_ENV,
        "add the application (client) id of the app registration",
    )?;
    let mut scopes = config::scopes(table)?;

    let login = login(table, literals, workload)?;
    let signing_key = read_signing_key(
        table,
        literals,
        matches!(login, Login::Certificate),
        "authenticate the app with a certificate: private_key and certificate",
    )?;
    if let Some(key) = &signing_key
        && key.certificate.is_none()
    {
        return Err(table.missing(
            "certificate",
            "a certificate credential needs `certificate`".to_owned(),
            "add the PEM certificate registered with the app, e.g. certificate = \
             \"${file:~/.config/tokend/app-cert.pem}\": Entra ID finds the key by its \
             thumbprint (x5t#S256)",
        ));
    }
    if !matches!(login, Login::Person) {
        for key in ["redirect_uri", "login_timeout"] {
            if let Some(span) = table.key_span(key) {
                return Err(table.error(
                    &span,
                    key,
                    format!("`{key}` is set but the app logs in as itself"),
                    "remove it, or remove the app's credential to log in as a person with tok \
                     login",
                ));
            }
        }
    }
    let (grant, client_secret, client_auth, client_assertion) = match login {
        Login::Secret(secret) => (
            OAuth2Grant::ClientCredentials,
            Some(secret),
            ClientAuth::Post,
            None,
        ),
        Login::Certificate => (
            OAuth2Grant::ClientCredentials,
            None,
            ClientAuth::PrivateKeyJwt,
            None,
        ),
        Login::Workload(assertion) => (
            OAuth2Grant::ClientCredentials,
            None,
            ClientAuth::ClientAssertion,
            Some(assertion),
        ),
        Login::Person => {
            if !scopes.iter().any(|scope| scope == "offline_access") {
                scopes.push("offline_access".to_owned());
            }
            let mut login = config::authorization_code_login(table)?;
            login.auth_url = Some(endpoint("authorize"));
            (
                OAuth2Grant::AuthorizationCode(login),
                None,
                ClientAuth::Post,
                None,
            )
        }
    };
    let config = OAuth2Config {
        grant,
        endpoint: TokenEndpoint::TokenUrl(endpoint("token")),
        client_id,
        client_secret,
        client_auth,
        scopes,
        params: Vec::new(),
        ttl: None,
        timeout: table.timeout()?,
        revocation_url: None,
        signing_key,
        client_assertion,
    };
    Ok((ProviderKind::OAuth2(Box::new(config)), None))
}

/// `workload_identity` (a boolean), or implied by `federated_token_file`.
fn workload_identity(table: &Table<'_, '_>) -> Result<bool, ConfigError> {
    let flag = match table.entry("workload_identity") {
        None => None,
        Some((key, value)) => match value.get_ref() {
            toml::de::DeValue::Boolean(flag) => Some(*flag),
            other => {
                return Err(table.wrong_type(
                    &key.span(),
                    "workload_identity",
                    "a boolean",
                    other,
                    "write workload_identity = true, or remove the key",
                ));
            }
        },
    };
    match (flag, table.key_span("federated_token_file")) {
        (Some(false), Some(span)) => Err(table.error(
            &span,
            "federated_token_file",
            "`federated_token_file` is set but workload_identity is false".to_owned(),
            "remove one of them",
        )),
        (flag, file) => Ok(flag.unwrap_or(false) || file.is_some()),
    }
}

/// Which of the app's credentials is given (at most one), or a person's login.
fn login(
    table: &Table<'_, '_>,
    literals: &mut Vec<Literal>,
    workload: bool,
) -> Result<Login, ConfigError> {
    let secret = table.template("client_secret", CREDENTIAL, literals)?;
    let certificate = table.key_span("private_key").is_some();
    let given: Vec<&str> = [
        (secret.is_some(), "client_secret"),
        (certificate, "private_key"),
        (workload, "workload identity"),
    ]
    .into_iter()
    .filter_map(|(set, name)| set.then_some(name))
    .collect();
    if given.len() > 1 {
        let key = if secret.is_some() {
            "client_secret"
        } else {
            "private_key"
        };
        let span = table.key_span(key).unwrap_or_else(|| table.anchor.clone());
        return Err(table.error(
            &span,
            key,
            format!("the app has several credentials: {}", given.join(" and ")),
            "keep one: client_secret, a certificate (private_key and certificate), or \
             workload identity",
        ));
    }
    if let Some(secret) = secret {
        return Ok(Login::Secret(secret));
    }
    if certificate {
        return Ok(Login::Certificate);
    }
    if !workload {
        return Ok(Login::Person);
    }
    let path = match table.str("federated_token_file")? {
        Some(found) => federated_path(table, &found)?,
        None => match table.env(TOKEN_FILE_ENV).filter(|path| !path.is_empty()) {
            Some(path) => path,
            None => {
                return Err(table.missing(
                    "federated_token_file",
                    format!(
                        "workload identity needs `federated_token_file`, and {TOKEN_FILE_ENV} \
                         is not set in tokend's environment"
                    ),
                    "add federated_token_file = \"/var/run/secrets/azure/tokens/\
                     azure-identity-token\", or start tokend where the workload identity \
                     webhook set AZURE_FEDERATED_TOKEN_FILE",
                ));
            }
        },
    };
    let template = SecretTemplate::parse(&format!("${{file:{path}}}")).map_err(|_| {
        let span = table
            .key_span("federated_token_file")
            .unwrap_or_else(|| table.anchor.clone());
        table.error(
            &span,
            "federated_token_file",
            "the federated token file's path cannot be read as a path".to_owned(),
            "give a path without `}` or NUL",
        )
    })?;
    Ok(Login::Workload(template))
}

/// `federated_token_file`: a plain path (not a template).
fn federated_path(table: &Table<'_, '_>, found: &Str<'_>) -> Result<String, ConfigError> {
    let hint = "give the path of the token file, e.g. \
                \"/var/run/secrets/azure/tokens/azure-identity-token\"";
    table.non_empty(found, hint)?;
    if found.text.contains(['}', '\0']) || found.text.contains("${") {
        return Err(table.error(
            &found.span,
            &found.key,
            "`federated_token_file` is a path, not a template".to_owned(),
            hint,
        ));
    }
    Ok(found.text.to_owned())
}
