//! The TOML config file: where it is, how it is read and validated, and what it means.
//!
//! This module owns the file format, the [`Config`] model the daemon works from, the error
//! messages (each names the file, the line and the key, and says what to do) and the warnings
//! (literal secrets, loose file permissions).
//!
//! # Format
//!
//! ```toml
//! [providers.salestim]            # the table name is what `tok get` takes
//! kind = "static"                 # a fixed secret: API key or personal access token
//! secret = "${env:SALESTIM_API_KEY}"
//! header = "X-API-KEY"            # presented as `X-API-KEY: <secret>`
//!
//! [providers.gitlab]
//! kind = "static"
//! secret = "${file:~/.config/gitlab.pat}"
//! scheme = "bearer"               # `Authorization: Bearer <secret>` (default)
//!
//! [providers.store]
//! kind = "anonymous"              # no credentials, no header
//!
//! [providers.api]
//! kind = "oauth2"
//! grant = "client_credentials"
//! token_url = "https://auth.example.com/oauth/token"
//! client_id = "svc"
//! client_secret = "${env:API_SECRET}"
//! scopes = ["api.read"]
//!
//! [providers.crm]
//! preset = "crm.com"              # a preset instead of a kind
//! base_url = "https://crm.example.com/crmapi/rest/v2"
//! api_key = "${env:CRM_KEY}"
//! authentication_code = "${env:CRM_CODE}"
//! ```
//!
//! Provider names may only use `A-Z a-z 0-9 . _ -` (they are typed on command lines). Each
//! provider has either a `kind` or a `preset`, never both. Every kind and preset rejects keys it
//! does not know. Secret-bearing values are templates, see [`crate::secret_ref`]:
//! `${env:NAME}`, `${file:PATH}`, `${cmd:PROGRAM ARGS...}`, literal text, `$${` for a literal
//! `${`. A purely literal credential (the keys marked *credential* below) is accepted with a
//! warning: the secret then sits in the config file.
//!
//! Presentation keys, for every kind but `anonymous` and for every preset:
//!
//! - `header` (default `"Authorization"`): the HTTP header the token is presented in.
//! - `scheme`: `"bearer"` gives `Bearer <token>`, `"basic"` gives
//!   `Basic base64(<basic_user>:<token>)`, `"raw"` gives the token as is. Default: `"bearer"`
//!   for the `Authorization` header, `"raw"` for any other header (an `X-API-KEY` carries the bare
//!   key).
//! - `basic_user` (default `""`): the user name for `scheme = "basic"`; not allowed otherwise.
//!
//! A preset sets its own defaults for these three (listed with each preset); each can still be
//! set, independently of the others.
//!
//! Credential-helper routes, for every kind but `anonymous` and for every preset:
//!
//! - `git = { host = "git.example.com", username = "oauth2" }`: `tok git-credential` answers
//!   git's requests for that host (with `:port` when not the default) with `username` (default
//!   `"oauth2"`) and the provider's token as the password.
//! - `docker = { host = "registry.example.com", username = "oauth2" }`: the same for
//!   `docker-credential-tok` and a registry host.
//!
//! A host belongs to at most one provider per tool. Routes are not part of a provider's identity
//! on reload: changing one keeps the cached token.
//!
//! ## `kind = "static"`: a fixed secret
//!
//! - `secret` (required, credential): the token itself.
//!
//! ## `kind = "anonymous"`: no credentials
//!
//! No other key; no header is sent, so `header`, `scheme` and `basic_user` are rejected.
//!
//! ## `kind = "oauth2"`: an OAuth 2.0 grant ([`crate::kinds::OAuth2Config`])
//!
//! - `grant` (required): `"client_credentials"` (RFC 6749 section 4.4), `"refresh_token"`,
//!   `"authorization_code"` (with PKCE) or `"device_code"` (RFC 8628); the last two log in with
//!   `tok login` (the daemon runs the flow).
//! - `token_url` or `issuer` (exactly one, http or https URL): the token endpoint, or an OpenID
//!   Connect issuer whose discovery document names it.
//! - `client_id` (required, plain text).
//! - `client_secret` (credential): required for `client_credentials`, optional for
//!   `refresh_token` (a public client).
//! - `client_auth`: `"basic"` (default, HTTP Basic) or `"post"` (in the form body); only with a
//!   `client_secret`.
//! - `scopes`: array of scope names, sent space-separated as `scope`.
//! - `params`: table of extra form parameters, plain strings (e.g. `audience`); not
//!   `grant_type`, `scope`, `client_id`, `client_secret` or `refresh_token`.
//! - `refresh_token` (credential): required with `grant = "refresh_token"`, rejected otherwise.
//! - `auth_url` (`authorization_code`): the authorization endpoint; required with `token_url`,
//!   from discovery with `issuer`.
//! - `redirect_uri` (`authorization_code`, default `"http://127.0.0.1:0/callback"`): a loopback
//!   http URL; port 0 is any free port.
//! - `login_timeout` (`authorization_code`, default `"3m"`, from `"10s"` to `"30m"`).
//! - `auth_params` (`authorization_code`): extra authorization-request parameters, plain
//!   strings; not the ones the flow sets itself.
//! - `device_url` (`device_code`): the device authorization endpoint; required with
//!   `token_url`, from discovery with `issuer`.
//! - `revocation_url`: where `tok logout` revokes the refresh token (RFC 7009).
//! - `ttl`: lifetime to assume when the response has no `expires_in` and the token is no JWT
//!   with `exp` (`"90s"`, `"15m"`, `"2h"`, `"1d"`).
//! - `timeout`: the whole request to the token endpoint must finish within this time, a
//!   duration from `"1s"` to `"120s"` (e.g. `"5s"`); default: the daemon's 10 s.
//!
//! ## `kind = "http"`: any HTTP token exchange ([`crate::kinds::HttpExchange`])
//!
//! - `url` (required): http or https URL.
//! - `method`: `"GET"` or `"POST"` (any case); default `GET`, or `POST` with a body. `GET` cannot
//!   send a body.
//! - `basic`: `{ user = …, password = … }`, HTTP Basic credentials, both credentials: `user`
//!   required and not empty, `password` defaults to `""`.
//! - `headers`: table of extra request headers; names are HTTP header names, values templates.
//!   No `Authorization` when `basic` is set.
//! - `json`: the request body as JSON, written as any TOML value (strings are templates; dates
//!   and times are not allowed).
//! - `form`: the request body as form fields, values templates. Not with `json`.
//! - `token` (required): JSON pointer (RFC 6901) to the token in the response, e.g.
//!   `"/data/token"`.
//! - `expires`: `"jwt"` (the token's `exp` claim), or a JSON pointer to an `expires_in` number
//!   of seconds; omitted: unknown.
//! - `ttl`: lifetime when the response gives none (as for `oauth2`); omitted with no expiry:
//!   the token is kept until invalidated.
//! - `ok`: `{ pointer = …, equals = …, message = … }`: the response is a success only when the
//!   value at `pointer` equals `equals` (a string, integer or boolean); `message` (optional) is a
//!   pointer to the explanation shown otherwise.
//! - `timeout`: as for `oauth2`, the time limit of the whole token request (at most `"120s"`;
//!   default: the daemon's 10 s).
//!
//! ## `preset = "timekit"`: Timekit App-Token
//!
//! `GET {base_url}/v2/app?include=app_token` with HTTP Basic `email:api_key` and the headers
//! `Content-Type: application/json` and `Timekit-App: {app}`; token at
//! `/data/app_token/0/token`, no expiry. Presented as `Authorization: Basic base64(":" + token)`.
//!
//! - `app` (required, plain text): the app slug.
//! - `email` (required): the account e-mail.
//! - `api_key` (required, credential).
//! - `base_url` (default `"https://api.timekit.io"`).
//! - `timeout`: as for `http` (at most `"120s"`; default: the daemon's 10 s).
//!
//! ## `preset = "crm.com"`: CRM.COM consumer application key
//!
//! `POST {base_url}/authentication/consumer_application_key/token` with HTTP Basic `api_key:`
//! and a JSON body; checks `/status/code` is `"OK"`; token at `/data/token`, a JWT (2 h when it
//! has no usable `exp`). Presented as `authorization: <token>`.
//!
//! - `base_url` (required): the Web API root, e.g. `"https://host/crmapi/rest/v2"`.
//! - `api_key` (required, credential).
//! - exactly one of: `authentication_code` (credential); `identifier` and `pass_code`
//!   (credential); `jwt` (credential) and `organisation` (plain text).
//! - `unit` (plain text): the unit to log in to; omitted: the user's default unit.
//! - `timeout`: as for `http` (at most `"120s"`; default: the daemon's 10 s).
//!
//! ## `preset = "salestim"`: SalesTim application mode
//!
//! A static key presented as `X-API-KEY: <key>`.
//!
//! - `api_key` (required, credential).
//!
//! A missing config file is not an error: the daemon runs with no providers.

// Config errors are built once, on the cold load path; on Windows `PathBuf` is a few bytes larger
// and tips `ConfigError` over clippy's size threshold. Boxing would buy nothing here.
#![allow(clippy::result_large_err)]

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use tokend_protocol::{CredentialRoute, CredentialTool, Secret};
use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue};
use url::Url;
use zeroize::{Zeroize, Zeroizing};

use crate::kinds::{
    AuthorizationCodeLogin, BasicPair, ClientAuth, DeviceLogin, ExpiresFrom, HttpBody,
    HttpExchange, HttpMethod, JsonTemplate, JwtBearer, OAuth2Config, OAuth2Grant, OkCheck,
    SigningAlg, SigningKey, TokenEndpoint,
};
use crate::secret_ref::SecretTemplate;
use crate::store::KeySource;

/// Environment variable naming the config file (step 2 of [`resolve_path`]).
pub const CONFIG_ENV: &str = "TOKEND_CONFIG";

// Hints are `&'static str` (keeps `ConfigError` small); these list what the format allows and
// must follow `ProviderKind`, the presets, the `KeySet`s below and `Scheme` (the tests check).
const UNKNOWN_KIND_HINT: &str = "use one of: static, anonymous, oauth2, http \
     (or a preset instead of kind: preset = \"timekit\", \"crm.com\" or \"salestim\")";
const MISSING_KIND_HINT: &str = "add a kind, e.g. kind = \"static\" (known kinds: static, \
     anonymous, oauth2, http), or a preset, e.g. preset = \"timekit\" (known presets: timekit, \
     crm.com, salestim)";
const UNKNOWN_PRESET_HINT: &str = "use one of: timekit, crm.com, salestim, azure-ad";
const UNKNOWN_SCHEME_HINT: &str = "use one of: bearer, basic, raw";
const UNKNOWN_GRANT_HINT: &str =
    "use one of: client_credentials, refresh_token, authorization_code, device_code, jwt_bearer";
const UNKNOWN_CLIENT_AUTH_HINT: &str = "use one of: basic, post, private_key_jwt";
const UNKNOWN_METHOD_HINT: &str = "use one of: GET, POST";
const STRING_HINT: &str = "write the value as a quoted string";
const SECRET_REF_HINT: &str =
    "set it to a reference such as \"${env:NAME}\", \"${file:PATH}\" or \"${cmd:PROGRAM ARGS}\"";
const TEMPLATE_HINT: &str = "fix the reference in the value (write $${ for a literal ${)";
const URL_HINT: &str =
    "write an absolute http or https URL, e.g. \"https://auth.example.com/token\"";
const POINTER_HINT: &str = "write a JSON pointer (RFC 6901) such as \"/data/token\": \
     a `/` before each member name or array index";
const DURATION_HINT: &str = "write a duration such as \"90s\", \"15m\", \"2h\" or \"1d\"";
const TIMEOUT_HINT: &str = "write a duration from 1s to 120s, e.g. \"5s\" or \"2m\"; or remove it \
     for the default of 10s";
const CRM_IDENTIFY_HINT: &str = "give exactly one of: authentication_code; identifier and \
     pass_code; jwt and organisation";

/// The keys a provider table (or a nested table) accepts, and the hint listing them.
struct KeySet {
    keys: &'static [&'static str],
    hint: &'static str,
}

const STATIC_KEYS: KeySet = KeySet {
    keys: &[
        "kind",
        "secret",
        "header",
        "scheme",
        "basic_user",
        "git",
        "docker",
    ],
    hint: "remove it or fix its spelling; known keys: kind, secret, header, scheme, basic_user, \
           git, docker",
};
const ANONYMOUS_KEYS: KeySet = KeySet {
    keys: &["kind"],
    hint: "remove it or fix its spelling; known keys: kind",
};
const OAUTH2_KEYS: KeySet = KeySet {
    keys: &[
        "kind",
        "grant",
        "token_url",
        "issuer",
        "client_id",
        "client_secret",
        "client_auth",
        "scopes",
        "params",
        "refresh_token",
        "auth_url",
        "device_url",
        "redirect_uri",
        "login_timeout",
        "auth_params",
        "revocation_url",
        "private_key",
        "key_id",
        "signing_alg",
        "assertion_issuer",
        "assertion_subject",
        "assertion_audience",
        "ttl",
        "timeout",
        "persist",
        "header",
        "scheme",
        "basic_user",
        "git",
        "docker",
    ],
    hint: "remove it or fix its spelling; known keys: kind, grant, token_url, issuer, client_id, \
           client_secret, client_auth, scopes, params, refresh_token, auth_url, device_url, \
           redirect_uri, login_timeout, auth_params, revocation_url, private_key, key_id, \
           signing_alg, assertion_issuer, assertion_subject, assertion_audience, ttl, timeout, \
           persist, header, scheme, basic_user, git, docker",
};
const HTTP_KEYS: KeySet = KeySet {
    keys: &[
        "kind",
        "method",
        "url",
        "basic",
        "headers",
        "json",
        "form",
        "token",
        "expires",
        "ttl",
        "ok",
        "timeout",
        "persist",
        "header",
        "scheme",
        "basic_user",
        "git",
        "docker",
    ],
    hint: "remove it or fix its spelling; known keys: kind, method, url, basic, headers, json, \
           form, token, expires, ttl, ok, timeout, persist, header, scheme, basic_user, git, \
           docker",
};
const TIMEKIT_KEYS: KeySet = KeySet {
    keys: &[
        "preset",
        "app",
        "email",
        "api_key",
        "base_url",
        "timeout",
        "persist",
        "header",
        "scheme",
        "basic_user",
        "git",
        "docker",
    ],
    hint: "remove it or fix its spelling; known keys: preset, app, email, api_key, base_url, \
           timeout, persist, header, scheme, basic_user, git, docker",
};
const CRM_KEYS: KeySet = KeySet {
    keys: &[
        "preset",
        "base_url",
        "api_key",
        "authentication_code",
        "identifier",
        "pass_code",
        "jwt",
        "organisation",
        "unit",
        "timeout",
        "persist",
        "header",
        "scheme",
        "basic_user",
        "git",
        "docker",
    ],
    hint: "remove it or fix its spelling; known keys: preset, base_url, api_key, \
           authentication_code, identifier, pass_code, jwt, organisation, unit, timeout, persist, \
           header, scheme, basic_user, git, docker",
};
const SALESTIM_KEYS: KeySet = KeySet {
    keys: &[
        "preset",
        "api_key",
        "header",
        "scheme",
        "basic_user",
        "git",
        "docker",
    ],
    hint: "remove it or fix its spelling; known keys: preset, api_key, header, scheme, \
           basic_user, git, docker",
};
const ROUTE_KEYS: KeySet = KeySet {
    keys: &["host", "username"],
    hint: "remove it or fix its spelling; known keys: host, username",
};
const AZURE_KEYS: KeySet = KeySet {
    keys: &[
        "preset",
        "tenant",
        "client_id",
        "client_secret",
        "scopes",
        "authority",
        "redirect_uri",
        "login_timeout",
        "timeout",
        "header",
        "scheme",
        "basic_user",
        "git",
        "docker",
    ],
    hint: "remove it or fix its spelling; known keys: preset, tenant, client_id, client_secret, \
           scopes, authority, redirect_uri, login_timeout, timeout, header, scheme, basic_user, \
           git, docker",
};
const BASIC_KEYS: KeySet = KeySet {
    keys: &["user", "password"],
    hint: "remove it or fix its spelling; known keys: user, password",
};
const OK_KEYS: KeySet = KeySet {
    keys: &["pointer", "equals", "message"],
    hint: "remove it or fix its spelling; known keys: pointer, equals, message",
};

/// The presentation keys: meaningless for `kind = "anonymous"`.
const PRESENTATION_KEYS: [&str; 3] = ["header", "scheme", "basic_user"];

/// The credential-helper tables, with the tool each routes for.
const ROUTE_TABLES: [(&str, CredentialTool); 2] = [
    ("git", CredentialTool::Git),
    ("docker", CredentialTool::Docker),
];
/// The user name credential helpers answer with unless `username` says otherwise: GitLab wants
/// exactly this for OAuth 2.0 tokens, and hosts that take personal access tokens accept any.
const DEFAULT_ROUTE_USERNAME: &str = "oauth2";
const ROUTE_HINT: &str = "write it as git = { host = \"git.example.com\" } \
     (optionally with username = \"...\")";
const ROUTE_HOST_HINT: &str = "give the bare host name as the tool sends it, with :port when \
     the port is not the default one, e.g. \"git.example.com\" or \"127.0.0.1:8080\" \
     (no scheme, no path)";

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
/// The keys that belong to one interactive grant, with that grant.
const LOGIN_KEYS: [(&str, &str); 8] = [
    ("auth_url", "authorization_code"),
    ("redirect_uri", "authorization_code"),
    ("login_timeout", "authorization_code"),
    ("auth_params", "authorization_code"),
    ("device_url", "device_code"),
    ("assertion_issuer", "jwt_bearer"),
    ("assertion_subject", "jwt_bearer"),
    ("assertion_audience", "jwt_bearer"),
];
/// `redirect_uri` when none is given: loopback, ephemeral port (RFC 8252 section 7.3).
const DEFAULT_REDIRECT_URI: &str = "http://127.0.0.1:0/callback";
/// `login_timeout` when none is given, and its bounds.
const DEFAULT_LOGIN_TIMEOUT: Duration = Duration::from_secs(180);
const LOGIN_TIMEOUT_RANGE: (Duration, Duration) =
    (Duration::from_secs(10), Duration::from_secs(1800));

/// The CRM.COM ways to identify the consumer; exactly one is used.
const CRM_IDENTIFIERS: [&[&str]; 3] = [
    &["authentication_code"],
    &["identifier", "pass_code"],
    &["jwt", "organisation"],
];

const TIMEKIT_BASE_URL: &str = "https://api.timekit.io";
/// CRM.COM tokens expire after two hours; used when the JWT has no usable `exp`.
const CRM_TTL: Duration = Duration::from_secs(2 * 60 * 60);
/// The longest `timeout` a provider may set (`TIMEOUT_HINT` and the messages say 120s).
const MAX_TIMEOUT: Duration = Duration::from_secs(120);

/// The loaded configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from.
    pub source: ConfigSource,
    /// Providers by name (the name `tok get` takes).
    pub providers: BTreeMap<String, ProviderConfig>,
    /// The providers' `git` and `docker` tables, in provider-name order. Kept apart from
    /// [`ProviderConfig`] so that editing a route on reload does not drop a cached token.
    pub routes: Vec<CredentialRoute>,
    /// The `[store]` table: where the key of the encrypted store comes from.
    pub store: StoreConfig,
}

/// The `[store]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// `key = "file"` (the default; `key_file`, else `store.key` beside the config file) or
    /// `key = "keyring"` (the OS keystore).
    pub key: KeySource,
}

impl StoreConfig {
    /// The default for a config file at `config_path`: a key file in its directory (the config
    /// directory, never beside the store it protects).
    #[must_use]
    pub fn default_for(config_path: &Path) -> Self {
        Self {
            key: KeySource::File(default_key_file(config_path)),
        }
    }
}

/// `key_file` as written: `~/` is the home directory; a relative path is relative to the
/// directory of the config file (not to wherever tokend was started).
fn key_file_path(config_path: &Path, text: &str) -> PathBuf {
    if let Some(rest) = text.strip_prefix("~/")
        && let Some(dirs) = directories::BaseDirs::new()
    {
        return dirs.home_dir().join(rest);
    }
    config_path.parent().unwrap_or(Path::new(".")).join(text)
}

fn default_key_file(config_path: &Path) -> PathBuf {
    config_path
        .parent()
        .unwrap_or(Path::new("."))
        .join(crate::store::KEY_FILE)
}

/// Where a [`Config`] came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// Read from this file.
    File(PathBuf),
    /// The file did not exist: no providers, not an error.
    Missing(PathBuf),
}

impl ConfigSource {
    /// The config file path, whether it existed or not.
    #[must_use]
    pub fn path(&self) -> &Path {
        match self {
            Self::File(path) | Self::Missing(path) => path,
        }
    }
}

/// One `[providers.NAME]` table, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderConfig {
    pub name: String,
    pub kind: ProviderKind,
    pub presentation: Presentation,
    /// Keep the cached access token in the store across restarts (`persist = false` turns it
    /// off; refresh tokens are always kept).
    pub persist: bool,
}

/// How a provider obtains its token. `Debug` is safe: [`SecretTemplate`] never shows literal text.
#[derive(Debug, Clone, PartialEq)]
// One value per configured provider, built when the config loads: boxing the large variant
// would save a few hundred bytes per provider and cost an indirection on every fetch.
#[allow(clippy::large_enum_variant)]
pub enum ProviderKind {
    /// A fixed secret (API key, personal access token), resolved from its template.
    Static { secret: SecretTemplate },
    /// No credentials at all: no header is sent (SalesTim's anonymous `/store` access).
    Anonymous,
    /// An OAuth 2.0 grant against a token endpoint.
    OAuth2(crate::kinds::OAuth2Config),
    /// Any HTTP token exchange (also what the `timekit` and `crm.com` presets expand to).
    Http(crate::kinds::HttpExchange),
}

impl ProviderKind {
    /// The `kind` value in the config file.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Static { .. } => "static",
            Self::Anonymous => "anonymous",
            Self::OAuth2(_) => "oauth2",
            Self::Http(_) => "http",
        }
    }
}

/// How a token is presented to the upstream service: header name and value format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presentation {
    /// HTTP header name, `Authorization` by default.
    pub header: String,
    pub scheme: Scheme,
    /// User name for [`Scheme::Basic`]; empty by default.
    pub basic_user: String,
}

impl Default for Presentation {
    fn default() -> Self {
        Self {
            header: "Authorization".to_owned(),
            scheme: Scheme::Bearer,
            basic_user: String::new(),
        }
    }
}

/// The format of the header value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// `Bearer <token>`.
    #[default]
    Bearer,
    /// `Basic base64(<basic_user>:<token>)`.
    Basic,
    /// `<token>` as is.
    Raw,
}

impl Scheme {
    /// Every scheme, in the order error messages list them.
    pub const ALL: [Self; 3] = [Self::Bearer, Self::Basic, Self::Raw];

    /// The name used in the config file.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bearer => "bearer",
            Self::Basic => "basic",
            Self::Raw => "raw",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scheme| scheme.as_str() == name)
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Presentation {
    /// The header value for `token`: `Bearer <token>`, `Basic base64(user:token)` (standard
    /// alphabet, padded) or `<token>`.
    #[must_use]
    pub fn header_value(&self, token: &Secret) -> Secret {
        let token = token.expose();
        // Buffers are allocated at their final size so no partial copy of the token is left
        // behind by a reallocation; the intermediate `user:token` is wiped on drop.
        match self.scheme {
            Scheme::Raw => Secret::from(token),
            Scheme::Bearer => {
                let mut value = String::with_capacity("Bearer ".len() + token.len());
                value.push_str("Bearer ");
                value.push_str(token);
                Secret::new(value)
            }
            Scheme::Basic => {
                let mut credentials = Zeroizing::new(String::with_capacity(
                    self.basic_user.len() + 1 + token.len(),
                ));
                credentials.push_str(&self.basic_user);
                credentials.push(':');
                credentials.push_str(token);
                let encoded_len = base64::encoded_len(credentials.len(), true).unwrap_or(0);
                let mut value = String::with_capacity("Basic ".len() + encoded_len);
                value.push_str("Basic ");
                base64::engine::general_purpose::STANDARD
                    .encode_string(credentials.as_bytes(), &mut value);
                Secret::new(value)
            }
        }
    }
}

/// A problem that does not stop the daemon (it logs it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// 1-based line in the config file; `0` when it is about the file as a whole.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.message)
        } else {
            write!(f, "line {}: {}", self.line, self.message)
        }
    }
}

/// Why the config could not be found or loaded. Messages are one line, name the file (and line
/// and key when there is one) and end with what to do; they never contain a secret value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "{path}: cannot read the config file: {source}; check its permissions, \
         or point --config or TOKEND_CONFIG at another file"
    )]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("{path}:{line}: the config file is not valid UTF-8: save it as UTF-8")]
    NotUtf8 { path: PathBuf, line: usize },

    #[error("{path}:{line}: TOML syntax error: {message}: {hint}")]
    Syntax {
        path: PathBuf,
        line: usize,
        /// The TOML parser's description.
        message: String,
        hint: &'static str,
    },

    #[error("{path}:{line}: {problem}{}: {hint}", location(.provider.as_deref(), .key.as_deref()))]
    Invalid {
        path: PathBuf,
        line: usize,
        /// The `[providers.NAME]` table, when the problem is inside one.
        provider: Option<String>,
        /// The offending key.
        key: Option<String>,
        problem: String,
        /// What to do about it.
        hint: &'static str,
    },

    #[error(
        "cannot locate the config file: no home directory found; \
         pass --config PATH or set TOKEND_CONFIG"
    )]
    NoConfigDir,
}

fn location(provider: Option<&str>, key: Option<&str>) -> String {
    match (provider, key) {
        (Some(provider), Some(key)) => format!(" (in [providers.{provider}] key `{key}`)"),
        (Some(provider), None) => format!(" (in [providers.{provider}])"),
        (None, Some(key)) => format!(" (top-level key `{key}`)"),
        (None, None) => String::new(),
    }
}

/// Finds the config file path.
///
/// Resolution order:
/// 1. the explicit `--config` value;
/// 2. `TOKEND_CONFIG` if set and non-empty;
/// 3. `<config dir>/tokend/config.toml`, the config dir coming from
///    `directories::BaseDirs::config_dir()` (on Linux `$XDG_CONFIG_HOME` or `~/.config`);
///    if no home directory can be found, [`ConfigError::NoConfigDir`].
///
/// `env` looks up environment variables (injected so tests need not touch the real environment).
pub fn resolve_path(
    explicit: Option<&Path>,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<PathBuf, ConfigError> {
    if let Some(path) = explicit {
        return Ok(path.to_owned());
    }
    if let Some(path) = env(CONFIG_ENV).filter(|value| !value.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let dirs = directories::BaseDirs::new().ok_or(ConfigError::NoConfigDir)?;
    Ok(dirs.config_dir().join("tokend").join("config.toml"))
}

/// Reads and validates the config file. A file that does not exist gives an empty config with
/// [`ConfigSource::Missing`]. On unix, also warns when the file holds a literal secret and is
/// readable by group or others, or is writable by group or others.
pub fn load(path: &Path) -> Result<(Config, Vec<Warning>), ConfigError> {
    let read_error = |source| ConfigError::Read {
        path: path.to_owned(),
        source,
    };
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            let config = Config {
                source: ConfigSource::Missing(path.to_owned()),
                providers: BTreeMap::new(),
                routes: Vec::new(),
                store: StoreConfig::default_for(path),
            };
            return Ok((config, Vec::new()));
        }
        Err(error) => return Err(read_error(error)),
    };
    // The file may hold literal secrets: wipe the buffer once parsed.
    let mut bytes = Zeroizing::new(Vec::new());
    file.read_to_end(&mut bytes).map_err(read_error)?;
    let text = std::str::from_utf8(&bytes).map_err(|error| ConfigError::NotUtf8 {
        path: path.to_owned(),
        line: line_at(&bytes, error.valid_up_to()),
    })?;
    let parsed = parse_inner(text, path)?;
    let mut warnings = parsed.warnings;
    warnings.extend(mode_warnings(&file, path, parsed.first_literal_line).map_err(read_error)?);
    Ok((parsed.config, warnings))
}

/// Warnings about the config file's own permissions: a literal secret readable by others, or a
/// file others can edit (and so make the daemon run any `${cmd:…}` as this user).
#[cfg(unix)]
fn mode_warnings(
    file: &File,
    path: &Path,
    first_literal_line: Option<usize>,
) -> io::Result<Vec<Warning>> {
    use std::os::unix::fs::PermissionsExt;
    // Mode of the opened file itself: the one whose content was just parsed.
    let mode = file.metadata()?.permissions().mode() & 0o7777;
    let shown = path.display();
    let mut warnings = Vec::new();
    if let Some(line) = first_literal_line
        && mode & 0o044 != 0
    {
        warnings.push(Warning {
            line,
            message: format!(
                "{shown} holds a literal secret and is readable by group or others \
                 (mode 0{mode:03o}); run chmod 600 {shown}"
            ),
        });
    }
    if mode & 0o022 != 0 {
        warnings.push(Warning {
            line: 0,
            message: format!(
                "{shown} is writable by group or others (mode 0{mode:03o}): whoever can \
                 edit it can make tokend run commands through ${{cmd:…}}; \
                 run chmod 600 {shown}"
            ),
        });
    }
    Ok(warnings)
}

#[cfg(not(unix))]
fn mode_warnings(
    _file: &File,
    _path: &Path,
    _first_literal_line: Option<usize>,
) -> io::Result<Vec<Warning>> {
    Ok(Vec::new())
}

/// Validates config text; `path` is only used in messages and as [`ConfigSource::File`].
/// Does not look at file permissions (see [`load`]).
pub fn parse(text: &str, path: &Path) -> Result<(Config, Vec<Warning>), ConfigError> {
    let parsed = parse_inner(text, path)?;
    Ok((parsed.config, parsed.warnings))
}

struct Parsed {
    config: Config,
    warnings: Vec<Warning>,
    /// Line of the first literal secret, for the file-permission warning.
    first_literal_line: Option<usize>,
}

/// A credential written literally in the file, for the warning.
struct Literal {
    line: usize,
    /// Key path as shown in messages.
    key: String,
}

/// The parsed document. Strings that TOML had to unescape are owned copies of file text (and
/// may be secrets): they are wiped when the tree is dropped.
struct Tree<'i>(Spanned<DeTable<'i>>);

impl Drop for Tree<'_> {
    fn drop(&mut self) {
        wipe_table(self.0.get_mut());
    }
}

fn wipe_table(table: &mut DeTable<'_>) {
    for (_, value) in table.iter_mut() {
        wipe_value(value.get_mut());
    }
}

fn wipe_value(value: &mut DeValue<'_>) {
    match value {
        DeValue::String(Cow::Owned(text)) => text.zeroize(),
        DeValue::Array(items) => {
            for item in items.iter_mut() {
                wipe_value(item.get_mut());
            }
        }
        DeValue::Table(table) => wipe_table(table),
        _ => {}
    }
}

fn parse_inner(text: &str, path: &Path) -> Result<Parsed, ConfigError> {
    let ctx = Ctx { text, path };
    // A spanned tree: every key and value knows where it is, so every problem can name its line.
    let tree = Tree(DeTable::parse(text).map_err(|error| ConfigError::Syntax {
        path: path.to_owned(),
        line: error.span().map_or(1, |span| ctx.line(span.start)),
        message: one_line(error.message()),
        hint: if error.message().contains("duplicate") {
            "each [providers.NAME] table and each key may appear only once"
        } else {
            "fix the TOML on that line (strings need double quotes, e.g. secret = \"${env:NAME}\")"
        },
    })?);

    let mut provider_entries = Vec::new();
    let mut store = StoreConfig::default_for(path);
    for (key, value) in in_file_order(tree.0.get_ref()) {
        let shown = shown_key(key.get_ref());
        if key.get_ref() == "store" {
            store = ctx.store(key, value)?;
            continue;
        }
        if key.get_ref() != "providers" {
            return Err(ctx.invalid(
                &key.span(),
                None,
                Some(&shown),
                "unknown key".to_owned(),
                "the file only holds [providers.NAME] tables and a [store] table; remove the key \
                 or move it into a provider table",
            ));
        }
        let DeValue::Table(providers) = value.get_ref() else {
            return Err(ctx.invalid(
                &key.span(),
                None,
                Some(&shown),
                format!(
                    "wrong type: expected a table, found {}",
                    article(value.get_ref().type_str())
                ),
                "declare providers as [providers.NAME] tables",
            ));
        };
        provider_entries = in_file_order(providers);
    }

    let mut providers = BTreeMap::new();
    let mut warnings = Vec::new();
    let mut first_literal_line = None;
    let mut routes: Vec<LocatedRoute> = Vec::new();
    for (name, value) in provider_entries {
        let (provider, literals, provider_routes) = ctx.provider(name, value)?;
        for located in provider_routes {
            let taken = routes.iter().find(|other| {
                other.route.tool == located.route.tool && other.route.host == located.route.host
            });
            if let Some(other) = taken {
                return Err(ctx.invalid(
                    &located.span,
                    Some(&provider.name),
                    Some(&located.key),
                    format!(
                        "host {:?} is already routed to provider {:?}",
                        located.route.host, other.route.provider
                    ),
                    "each host may belong to one provider per tool; remove one of the two",
                ));
            }
            routes.push(located);
        }
        for literal in literals {
            first_literal_line = Some(
                first_literal_line.map_or(literal.line, |first: usize| first.min(literal.line)),
            );
            warnings.push(Warning {
                line: literal.line,
                message: format!(
                    "[providers.{}] key `{}` holds a literal secret; prefer ${{env:…}}, \
                     ${{file:…}} or ${{cmd:…}} so the secret is not stored in the config file",
                    provider.name, literal.key
                ),
            });
        }
        providers.insert(provider.name.clone(), provider);
    }
    warnings.sort_by_key(|warning| warning.line);
    let mut routes: Vec<CredentialRoute> =
        routes.into_iter().map(|located| located.route).collect();
    routes.sort_by(|a, b| a.provider.cmp(&b.provider));
    Ok(Parsed {
        config: Config {
            source: ConfigSource::File(path.to_owned()),
            providers,
            routes,
            store,
        },
        warnings,
        first_literal_line,
    })
}

type Entry<'a, 'i> = (&'a Spanned<DeString<'i>>, &'a Spanned<DeValue<'i>>);

/// A table's entries in the order they appear in the file (the map itself is sorted by key).
fn in_file_order<'a, 'i>(table: &'a DeTable<'i>) -> Vec<Entry<'a, 'i>> {
    let mut entries: Vec<Entry<'a, 'i>> = table.iter().collect();
    entries.sort_by_key(|(key, _)| key.span().start);
    entries
}

/// The text being parsed and its path, for turning spans into located errors.
struct Ctx<'a> {
    text: &'a str,
    path: &'a Path,
}

impl Ctx<'_> {
    fn line(&self, offset: usize) -> usize {
        line_at(self.text.as_bytes(), offset)
    }

    fn invalid(
        &self,
        span: &Range<usize>,
        provider: Option<&str>,
        key: Option<&str>,
        problem: String,
        hint: &'static str,
    ) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_owned(),
            line: self.line(span.start),
            provider: provider.map(str::to_owned),
            key: key.map(str::to_owned),
            problem,
            hint,
        }
    }

    /// Validates the `[store]` table: `key = "file" | "keyring"` and `key_file`.
    fn store(
        &self,
        name: &Spanned<DeString<'_>>,
        value: &Spanned<DeValue<'_>>,
    ) -> Result<StoreConfig, ConfigError> {
        let DeValue::Table(fields) = value.get_ref() else {
            return Err(self.invalid(
                &name.span(),
                None,
                Some("store"),
                format!(
                    "wrong type: expected a table, found {}",
                    article(value.get_ref().type_str())
                ),
                "write it as a [store] table with the keys key and key_file",
            ));
        };
        let mut key = None;
        let mut key_file = None;
        for (field, value) in in_file_order(fields) {
            let shown = format!("store.{}", shown_key(field.get_ref()));
            let DeValue::String(text) = value.get_ref() else {
                return Err(self.invalid(
                    &field.span(),
                    None,
                    Some(&shown),
                    format!(
                        "wrong type: expected a string, found {}",
                        article(value.get_ref().type_str())
                    ),
                    STRING_HINT,
                ));
            };
            match field.get_ref().as_ref() {
                "key" => key = Some((text.as_ref(), value.span(), shown)),
                "key_file" if text.is_empty() => {
                    return Err(self.invalid(
                        &value.span(),
                        None,
                        Some(&shown),
                        "empty path".to_owned(),
                        "write the key file's path, or remove key_file for store.key beside \
                         the config file",
                    ));
                }
                "key_file" => {
                    key_file = Some((key_file_path(self.path, text), value.span(), shown));
                }
                _ => {
                    return Err(self.invalid(
                        &field.span(),
                        None,
                        Some(&shown),
                        "unknown key for [store]".to_owned(),
                        "remove it or fix its spelling; known keys: key, key_file",
                    ));
                }
            }
        }
        let file = key_file
            .as_ref()
            .map_or_else(|| default_key_file(self.path), |(path, _, _)| path.clone());
        match key {
            None | Some(("file", _, _)) => Ok(StoreConfig {
                key: KeySource::File(file),
            }),
            Some(("keyring", _, _)) => match key_file {
                Some((_, span, shown)) => Err(self.invalid(
                    &span,
                    None,
                    Some(&shown),
                    "key_file has no meaning with key = \"keyring\"".to_owned(),
                    "remove key_file, or set key = \"file\"",
                )),
                None => Ok(StoreConfig {
                    key: KeySource::Keyring,
                }),
            },
            Some((other, span, shown)) => Err(self.invalid(
                &span,
                None,
                Some(&shown),
                format!("unknown key source {other:?}"),
                "use one of: file (a key file, 0600), keyring (the OS keystore)",
            )),
        }
    }

    /// Validates one `[providers.NAME]` table. Also returns the credentials written literally
    /// (the caller warns about them).
    fn provider(
        &self,
        name: &Spanned<DeString<'_>>,
        value: &Spanned<DeValue<'_>>,
    ) -> Result<(ProviderConfig, Vec<Literal>, Vec<LocatedRoute>), ConfigError> {
        let name_span = name.span();
        let name = name.get_ref().as_ref();
        if name.is_empty() || !name.bytes().all(is_name_byte) {
            return Err(self.invalid(
                &name_span,
                None,
                None,
                format!("invalid provider name {name:?}"),
                "use only letters, digits, `.`, `_` and `-` (the name is typed on command lines, \
                 as in `tok get NAME`)",
            ));
        }
        let DeValue::Table(fields) = value.get_ref() else {
            return Err(self.invalid(
                &name_span,
                Some(name),
                None,
                format!(
                    "wrong type: a provider must be a table, found {}",
                    article(value.get_ref().type_str())
                ),
                "write it as a [providers.NAME] table with keys such as kind and secret",
            ));
        };
        let table = Table::new(self, name, String::new(), name_span, fields);
        let mut literals = Vec::new();

        let (kind, defaults) = match (table.str("kind")?, table.str("preset")?) {
            (Some(kind), Some(preset)) => {
                let later = if kind.span.start > preset.span.start {
                    kind
                } else {
                    preset
                };
                return Err(table.error(
                    &later.span,
                    &later.key,
                    "both `kind` and `preset` are set".to_owned(),
                    "keep one: a preset sets the kind itself",
                ));
            }
            (None, None) => {
                return Err(table.missing("kind", "missing `kind`".to_owned(), MISSING_KIND_HINT));
            }
            (Some(kind), None) => match kind.text {
                "static" => {
                    table.check_keys(&STATIC_KEYS, "kind \"static\"")?;
                    (static_kind(&table, &mut literals)?, None)
                }
                "anonymous" => {
                    for key in PRESENTATION_KEYS
                        .into_iter()
                        .chain(ROUTE_TABLES.map(|(k, _)| k))
                    {
                        if let Some(span) = table.key_span(key) {
                            return Err(table.error(
                                &span,
                                key,
                                format!("`{key}` has no meaning for kind \"anonymous\""),
                                "remove it: an anonymous provider sends no header at all and has no token",
                            ));
                        }
                    }
                    table.check_keys(&ANONYMOUS_KEYS, "kind \"anonymous\"")?;
                    (ProviderKind::Anonymous, None)
                }
                "oauth2" => {
                    table.check_keys(&OAUTH2_KEYS, "kind \"oauth2\"")?;
                    (oauth2_kind(&table, &mut literals)?, None)
                }
                "http" => {
                    table.check_keys(&HTTP_KEYS, "kind \"http\"")?;
                    (ProviderKind::Http(http_kind(&table, &mut literals)?), None)
                }
                other => {
                    return Err(table.error(
                        &kind.span,
                        &kind.key,
                        format!("unknown kind {other:?}"),
                        UNKNOWN_KIND_HINT,
                    ));
                }
            },
            (None, Some(preset)) => match preset.text {
                "timekit" => {
                    table.check_keys(&TIMEKIT_KEYS, "preset \"timekit\"")?;
                    timekit_preset(&table, &mut literals)?
                }
                "crm.com" => {
                    table.check_keys(&CRM_KEYS, "preset \"crm.com\"")?;
                    crm_preset(&table, &mut literals)?
                }
                "salestim" => {
                    table.check_keys(&SALESTIM_KEYS, "preset \"salestim\"")?;
                    salestim_preset(&table, &mut literals)?
                }
                "azure-ad" => {
                    table.check_keys(&AZURE_KEYS, "preset \"azure-ad\"")?;
                    (azure_ad_preset(&table, &mut literals)?, None)
                }
                other => {
                    return Err(table.error(
                        &preset.span,
                        &preset.key,
                        format!("unknown preset {other:?}"),
                        UNKNOWN_PRESET_HINT,
                    ));
                }
            },
        };

        let presentation = presentation(&table, defaults)?;
        let routes = routes(&table)?;
        // Only the keysets of fetching kinds list `persist`; `check_keys` refused it elsewhere.
        let persist = match table.entry("persist") {
            None => true,
            Some((key, value)) => match value.get_ref() {
                DeValue::Boolean(flag) => *flag,
                other => {
                    return Err(table.wrong_type(
                        &key.span(),
                        &table.key_path("persist"),
                        "a boolean",
                        other,
                        "write persist = false to keep this provider's access tokens out of \
                         the store, or remove the key",
                    ));
                }
            },
        };
        let provider = ProviderConfig {
            name: name.to_owned(),
            kind,
            presentation,
            persist,
        };
        Ok((provider, literals, routes))
    }
}

/// A string value and where it is.
struct Str<'a> {
    text: &'a str,
    /// The value's span.
    span: Range<usize>,
    /// Key path as shown in messages.
    key: String,
}

/// How a template-valued key is checked.
#[derive(Clone, Copy)]
struct Rules {
    /// A credential: a literal value warns, errors say "secret".
    credential: bool,
    /// `""` is accepted.
    allow_empty: bool,
}

const CREDENTIAL: Rules = Rules {
    credential: true,
    allow_empty: false,
};
const CREDENTIAL_OR_EMPTY: Rules = Rules {
    credential: true,
    allow_empty: true,
};
const TEXT: Rules = Rules {
    credential: false,
    allow_empty: true,
};
const NON_EMPTY_TEXT: Rules = Rules {
    credential: false,
    allow_empty: false,
};

/// A table under validation: a provider, or one nested in it (`basic`, `headers`, `ok`, …).
struct Table<'a, 'i> {
    ctx: &'a Ctx<'a>,
    provider: &'a str,
    /// Key path of this table inside the provider as shown in messages; empty for the provider.
    path: String,
    /// Where a missing key is reported: the provider name, or the key naming this table.
    anchor: Range<usize>,
    entries: Vec<Entry<'a, 'i>>,
}

impl<'a, 'i> Table<'a, 'i> {
    fn new(
        ctx: &'a Ctx<'a>,
        provider: &'a str,
        path: String,
        anchor: Range<usize>,
        table: &'a DeTable<'i>,
    ) -> Self {
        Self {
            ctx,
            provider,
            path,
            anchor,
            entries: in_file_order(table),
        }
    }

    /// The path of `key` in this table, as shown in messages.
    fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            shown_key(key).into_owned()
        } else {
            format!("{}.{}", self.path, shown_key(key))
        }
    }

    /// An error about `key` (a full key path).
    fn error(
        &self,
        span: &Range<usize>,
        key: &str,
        problem: String,
        hint: &'static str,
    ) -> ConfigError {
        self.ctx
            .invalid(span, Some(self.provider), Some(key), problem, hint)
    }

    /// An error about `key` of this table being absent: points at the table.
    fn missing(&self, key: &str, problem: String, hint: &'static str) -> ConfigError {
        self.error(&self.anchor, &self.key_path(key), problem, hint)
    }

    fn wrong_type(
        &self,
        span: &Range<usize>,
        key: &str,
        expected: &str,
        found: &DeValue<'_>,
        hint: &'static str,
    ) -> ConfigError {
        self.error(
            span,
            key,
            format!(
                "wrong type: expected {expected}, found {}",
                article(found.type_str())
            ),
            hint,
        )
    }

    fn entry(&self, key: &str) -> Option<Entry<'a, 'i>> {
        self.entries
            .iter()
            .copied()
            .find(|(name, _)| name.get_ref().as_ref() == key)
    }

    fn key_span(&self, key: &str) -> Option<Range<usize>> {
        self.entry(key).map(|(name, _)| name.span())
    }

    /// Rejects the first key (in file order) that `known` does not list.
    fn check_keys(&self, known: &KeySet, owner: &str) -> Result<(), ConfigError> {
        for (name, _) in &self.entries {
            if !known.keys.contains(&name.get_ref().as_ref()) {
                return Err(self.error(
                    &name.span(),
                    &self.key_path(name.get_ref()),
                    format!("unknown key for {owner}"),
                    known.hint,
                ));
            }
        }
        Ok(())
    }

    /// The string at `key`, if present.
    fn str(&self, key: &str) -> Result<Option<Str<'a>>, ConfigError> {
        self.entry(key)
            .map(|entry| self.entry_str(entry, STRING_HINT))
            .transpose()
    }

    /// An entry's value as a string.
    fn entry_str(
        &self,
        (name, value): Entry<'a, 'i>,
        hint: &'static str,
    ) -> Result<Str<'a>, ConfigError> {
        let key = self.key_path(name.get_ref());
        match value.get_ref() {
            DeValue::String(text) => Ok(Str {
                text,
                span: value.span(),
                key,
            }),
            other => Err(self.wrong_type(&name.span(), &key, "a string", other, hint)),
        }
    }

    /// A required plain string that must not be empty.
    fn required_text(
        &self,
        key: &str,
        owner: &str,
        hint: &'static str,
    ) -> Result<Str<'a>, ConfigError> {
        let found = self
            .str(key)?
            .ok_or_else(|| self.missing(key, format!("{owner} needs `{key}`"), hint))?;
        self.non_empty(&found, hint)?;
        Ok(found)
    }

    fn non_empty(&self, found: &Str<'_>, hint: &'static str) -> Result<(), ConfigError> {
        if found.text.is_empty() {
            return Err(self.error(
                &found.span,
                &found.key,
                format!("`{}` is empty", found.key),
                hint,
            ));
        }
        Ok(())
    }

    /// The template at `key`, if present.
    fn template(
        &self,
        key: &str,
        rules: Rules,
        literals: &mut Vec<Literal>,
    ) -> Result<Option<SecretTemplate>, ConfigError> {
        self.str(key)?
            .map(|found| self.parse_template(&found, rules, literals))
            .transpose()
    }

    /// A required template.
    fn required_template(
        &self,
        key: &str,
        rules: Rules,
        owner: &str,
        literals: &mut Vec<Literal>,
    ) -> Result<SecretTemplate, ConfigError> {
        self.template(key, rules, literals)?.ok_or_else(|| {
            self.missing(
                key,
                format!("{owner} needs `{key}`"),
                "add it, e.g. as a reference such as \"${env:NAME}\"",
            )
        })
    }

    fn parse_template(
        &self,
        found: &Str<'_>,
        rules: Rules,
        literals: &mut Vec<Literal>,
    ) -> Result<SecretTemplate, ConfigError> {
        if found.text.is_empty() && !rules.allow_empty {
            return Err(self.error(
                &found.span,
                &found.key,
                format!("`{}` is empty", found.key),
                if rules.credential {
                    SECRET_REF_HINT
                } else {
                    "give it a value"
                },
            ));
        }
        // The parse message says what is wrong and where, without quoting the value.
        let template = SecretTemplate::parse(found.text).map_err(|message| {
            let what = if rules.credential { "secret" } else { "value" };
            self.error(
                &found.span,
                &found.key,
                format!("invalid {what}: {message}"),
                TEMPLATE_HINT,
            )
        })?;
        if rules.credential && template.is_literal() && !found.text.is_empty() {
            literals.push(Literal {
                line: self.ctx.line(found.span.start),
                key: found.key.clone(),
            });
        }
        Ok(template)
    }

    /// The nested table at `key`, if present.
    fn table(&self, key: &str, hint: &'static str) -> Result<Option<Self>, ConfigError> {
        let Some((name, value)) = self.entry(key) else {
            return Ok(None);
        };
        let path = self.key_path(key);
        match value.get_ref() {
            DeValue::Table(table) => Ok(Some(Table::new(
                self.ctx,
                self.provider,
                path,
                name.span(),
                table,
            ))),
            other => Err(self.wrong_type(&name.span(), &path, "a table", other, hint)),
        }
    }

    /// An http or https URL at `key`, if present. Messages never show the URL (it could carry
    /// credentials).
    fn url(&self, key: &str) -> Result<Option<(Url, Str<'a>)>, ConfigError> {
        let Some(found) = self.str(key)? else {
            return Ok(None);
        };
        let url = Url::parse(found.text).map_err(|error| {
            self.error(
                &found.span,
                &found.key,
                format!("`{}` is not a valid URL: {error}", found.key),
                URL_HINT,
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(self.error(
                &found.span,
                &found.key,
                format!("`{}` is not an http or https URL", found.key),
                URL_HINT,
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(self.error(
                &found.span,
                &found.key,
                format!("`{}` has a user name or password in it", found.key),
                "remove the credentials from the URL and give them through the provider's \
                 credential keys instead (they stay out of logs that way)",
            ));
        }
        Ok(Some((url, found)))
    }

    /// A URL that paths are appended to: no query, no fragment.
    fn base_url(&self, key: &str) -> Result<Option<Url>, ConfigError> {
        let Some((url, found)) = self.url(key)? else {
            return Ok(None);
        };
        if url.query().is_some() || url.fragment().is_some() {
            return Err(self.error(
                &found.span,
                &found.key,
                format!("`{}` has a query or a fragment", found.key),
                "give only scheme, host and path (e.g. \"https://host/api\"): \
                 tokend appends the endpoint path",
            ));
        }
        Ok(Some(url))
    }

    /// A JSON pointer at `key`, if present.
    fn pointer(&self, key: &str) -> Result<Option<String>, ConfigError> {
        let Some(found) = self.str(key)? else {
            return Ok(None);
        };
        self.check_pointer(&found)?;
        Ok(Some(found.text.to_owned()))
    }

    fn check_pointer(&self, found: &Str<'_>) -> Result<(), ConfigError> {
        if !crate::kinds::is_json_pointer(found.text) {
            return Err(self.error(
                &found.span,
                &found.key,
                format!("`{}` is not a JSON pointer", found.key),
                POINTER_HINT,
            ));
        }
        Ok(())
    }

    /// A duration at `key`, if present.
    fn duration(&self, key: &str) -> Result<Option<Duration>, ConfigError> {
        let Some(found) = self.str(key)? else {
            return Ok(None);
        };
        crate::kinds::parse_duration(found.text)
            .map(Some)
            .map_err(|message| {
                self.error(
                    &found.span,
                    &found.key,
                    format!("invalid duration: {message}"),
                    DURATION_HINT,
                )
            })
    }

    /// `timeout`, if present: a duration from 1 s to [`MAX_TIMEOUT`].
    fn timeout(&self) -> Result<Option<Duration>, ConfigError> {
        let Some(found) = self.str("timeout")? else {
            return Ok(None);
        };
        let timeout = crate::kinds::parse_duration(found.text).map_err(|message| {
            // `parse_duration`'s own message for zero speaks of token lifetimes.
            let text = found.text.trim();
            let digits = text.strip_suffix(['s', 'm', 'h', 'd']).unwrap_or(text);
            let problem = if !digits.is_empty() && digits.bytes().all(|byte| byte == b'0') {
                "invalid timeout: zero lets no request finish; use at least 1s".to_owned()
            } else {
                format!("invalid timeout: {message}")
            };
            self.error(&found.span, &found.key, problem, TIMEOUT_HINT)
        })?;
        if timeout > MAX_TIMEOUT {
            return Err(self.error(
                &found.span,
                &found.key,
                format!(
                    "`timeout` is {}s: at most {}s",
                    timeout.as_secs(),
                    MAX_TIMEOUT.as_secs()
                ),
                TIMEOUT_HINT,
            ));
        }
        Ok(Some(timeout))
    }

    /// A TOML value as a JSON template: strings become templates, tables objects (in file order).
    fn json(&self, key: &str, value: &Spanned<DeValue<'_>>) -> Result<JsonTemplate, ConfigError> {
        let span = value.span();
        Ok(match value.get_ref() {
            DeValue::String(text) => {
                let found = Str {
                    text,
                    span,
                    key: key.to_owned(),
                };
                JsonTemplate::String(self.parse_template(&found, TEXT, &mut Vec::new())?)
            }
            DeValue::Integer(integer) => {
                let parsed = i64::from_str_radix(integer.as_str(), integer.radix());
                JsonTemplate::Integer(parsed.map_err(|_| {
                    self.error(
                        &span,
                        key,
                        format!("`{key}` is out of range"),
                        "use a 64-bit integer, or a string",
                    )
                })?)
            }
            DeValue::Float(float) => {
                match float.as_str().parse::<f64>().ok().filter(|f| f.is_finite()) {
                    Some(float) => JsonTemplate::Float(float),
                    None => {
                        return Err(self.error(
                            &span,
                            key,
                            format!("`{key}` is not a finite number"),
                            "JSON has no inf or nan: use a finite number, or a string",
                        ));
                    }
                }
            }
            DeValue::Boolean(flag) => JsonTemplate::Bool(*flag),
            DeValue::Datetime(_) => {
                return Err(self.error(
                    &span,
                    key,
                    format!("`{key}` is a TOML date or time, which JSON does not have"),
                    "write it as a quoted string, e.g. \"2024-01-31\"",
                ));
            }
            DeValue::Array(items) => JsonTemplate::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(index, item)| self.json(&format!("{key}[{index}]"), item))
                    .collect::<Result<_, _>>()?,
            ),
            DeValue::Table(table) => JsonTemplate::Object(
                in_file_order(table)
                    .into_iter()
                    .map(|(name, item)| {
                        let path = format!("{key}.{}", shown_key(name.get_ref()));
                        Ok((name.get_ref().to_string(), self.json(&path, item)?))
                    })
                    .collect::<Result<_, ConfigError>>()?,
            ),
        })
    }
}

/// `kind = "static"`.
fn static_kind(
    table: &Table<'_, '_>,
    literals: &mut Vec<Literal>,
) -> Result<ProviderKind, ConfigError> {
    let Some(found) = table.str("secret")? else {
        return Err(table.missing(
            "secret",
            "kind \"static\" needs a `secret`".to_owned(),
            "add one, e.g. secret = \"${env:NAME}\"",
        ));
    };
    let secret = table.parse_template(&found, CREDENTIAL, literals)?;
    Ok(ProviderKind::Static { secret })
}

/// `kind = "oauth2"`.
fn oauth2_kind(
    table: &Table<'_, '_>,
    literals: &mut Vec<Literal>,
) -> Result<ProviderKind, ConfigError> {
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
        (other, _) => {
            return Err(table.error(
                &grant.span,
                &grant.key,
                format!("unknown grant {other:?}"),
                UNKNOWN_GRANT_HINT,
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
    let signed_client = table
        .str("client_auth")?
        .is_some_and(|found| found.text == "private_key_jwt");
    if client_secret.is_none() && !signed_client && matches!(grant, OAuth2Grant::ClientCredentials)
    {
        return Err(table.missing(
            "client_secret",
            "grant \"client_credentials\" needs a `client_secret`".to_owned(),
            "add one, e.g. client_secret = \"${env:NAME}\", or authenticate with a key: \
             client_auth = \"private_key_jwt\" and private_key",
        ));
    }

    let client_auth = match table.str("client_auth")? {
        None => ClientAuth::default(),
        Some(found) => match found.text {
            "basic" | "post" if client_secret.is_none() => {
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
            "private_key_jwt" if client_secret.is_some() => {
                let span = table.key_span("client_secret").unwrap_or_default();
                return Err(table.error(
                    &span,
                    "client_secret",
                    "`client_secret` is set but client_auth is \"private_key_jwt\"".to_owned(),
                    "remove one: private_key_jwt authenticates with private_key instead",
                ));
            }
            "private_key_jwt" => ClientAuth::PrivateKeyJwt,
            other => {
                return Err(table.error(
                    &found.span,
                    &found.key,
                    format!("unknown client_auth {other:?}"),
                    UNKNOWN_CLIENT_AUTH_HINT,
                ));
            }
        },
    };
    if client_auth == ClientAuth::PrivateKeyJwt && matches!(grant, OAuth2Grant::DeviceCode(_)) {
        let span = table.key_span("client_auth").unwrap_or_default();
        return Err(table.error(
            &span,
            "client_auth",
            "client_auth \"private_key_jwt\" does not work with grant \"device_code\"".to_owned(),
            "the device flow polls with one request many times, and a signed assertion may be \
             used only once: use a public client (no client_auth) or grant = \
             \"authorization_code\"",
        ));
    }
    let signs =
        client_auth == ClientAuth::PrivateKeyJwt || matches!(grant, OAuth2Grant::JwtBearer(_));
    let signing_key = signing_key(table, literals, signs)?;

    let scopes = scopes(table)?;
    let params = oauth2_params(table)?;
    let ttl = table.duration("ttl")?;
    let timeout = table.timeout()?;

    Ok(ProviderKind::OAuth2(OAuth2Config {
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
    }))
}

/// `private_key`, `key_id` and `signing_alg`: required when `needed` (private_key_jwt or
/// jwt_bearer), rejected otherwise.
fn signing_key(
    table: &Table<'_, '_>,
    literals: &mut Vec<Literal>,
    needed: bool,
) -> Result<Option<SigningKey>, ConfigError> {
    if !needed {
        for key in ["private_key", "key_id", "signing_alg"] {
            if let Some(span) = table.key_span(key) {
                return Err(table.error(
                    &span,
                    key,
                    format!("`{key}` is set but nothing signs with it"),
                    "remove it, or use client_auth = \"private_key_jwt\" or \
                     grant = \"jwt_bearer\"",
                ));
            }
        }
        return Ok(None);
    }
    let private_key = table
        .template("private_key", CREDENTIAL, literals)?
        .ok_or_else(|| {
            table.missing(
                "private_key",
                "client_auth \"private_key_jwt\" and grant \"jwt_bearer\" need `private_key`"
                    .to_owned(),
                "add the PEM private key, e.g. \
                 private_key = \"${file:~/.config/tokend/client-key.pem}\"",
            )
        })?;
    let alg = match table.str("signing_alg")? {
        None => SigningAlg::default(),
        Some(found) => match found.text {
            "RS256" => SigningAlg::Rs256,
            "ES256" => SigningAlg::Es256,
            other => {
                return Err(table.error(
                    &found.span,
                    &found.key,
                    format!("unknown signing_alg {other:?}"),
                    "use one of: RS256 (an RSA key), ES256 (a P-256 key)",
                ));
            }
        },
    };
    let key_id = match table.str("key_id")? {
        Some(found) => {
            table.non_empty(
                &found,
                "give the key's id as the server knows it, or remove it",
            )?;
            Some(found.text.to_owned())
        }
        None => None,
    };
    Ok(Some(SigningKey {
        private_key,
        alg,
        key_id,
    }))
}

/// The `authorization_code` grant's own keys.
fn authorization_code_login(table: &Table<'_, '_>) -> Result<AuthorizationCodeLogin, ConfigError> {
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
            let loopback = matches!(
                url.host(),
                Some(url::Host::Ipv4(ip)) if ip.is_loopback()
            ) || matches!(url.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback())
                || url.host_str() == Some("localhost");
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
fn scopes(table: &Table<'_, '_>) -> Result<Vec<String>, ConfigError> {
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

/// `kind = "http"`.
fn http_kind(
    table: &Table<'_, '_>,
    literals: &mut Vec<Literal>,
) -> Result<HttpExchange, ConfigError> {
    let (url, _) = table.url("url")?.ok_or_else(|| {
        table.missing(
            "url",
            "kind \"http\" needs a `url`".to_owned(),
            "add the token endpoint, e.g. url = \"https://api.example.com/token\"",
        )
    })?;

    let basic = match table.table(
        "basic",
        "write it as basic = { user = \"${env:USER}\", password = \"${env:PASSWORD}\" }",
    )? {
        Some(basic) => Some(basic_pair(&basic, literals)?),
        None => None,
    };

    let mut headers: Vec<(String, SecretTemplate)> = Vec::new();
    if let Some(table_headers) = table.table(
        "headers",
        "write it as a table, e.g. headers = { \"X-Client\" = \"tokend\" }",
    )? {
        for &entry in &table_headers.entries {
            let (name, _) = entry;
            let name_span = name.span();
            let found = table_headers.entry_str(entry, STRING_HINT)?;
            let name = name.get_ref().as_ref();
            if !is_http_token(name) {
                return Err(table_headers.error(
                    &name_span,
                    &found.key,
                    "not a valid HTTP header name".to_owned(),
                    "use a header name such as \"X-Client\" (no spaces, colons or control \
                     characters)",
                ));
            }
            if basic.is_some() && name.eq_ignore_ascii_case("authorization") {
                return Err(table_headers.error(
                    &name_span,
                    &found.key,
                    "an Authorization header is set as well as `basic`".to_owned(),
                    "remove one of them: basic already sends the Authorization header",
                ));
            }
            if headers
                .iter()
                .any(|(seen, _)| seen.eq_ignore_ascii_case(name))
            {
                return Err(table_headers.error(
                    &name_span,
                    &found.key,
                    "this header is given twice (header names ignore case)".to_owned(),
                    "keep one of them",
                ));
            }
            if found.text.is_empty() {
                return Err(table_headers.error(
                    &found.span,
                    &found.key,
                    "the header value is empty".to_owned(),
                    "give it a value, or remove the header",
                ));
            }
            let value = table_headers.parse_template(&found, TEXT, literals)?;
            headers.push((name.to_owned(), value));
        }
    }

    let json = match table.entry("json") {
        Some((name, value)) => Some((name.span(), table.json("json", value)?)),
        None => None,
    };
    let form = match table.table(
        "form",
        "write it as a table, e.g. form = { grant_type = \"password\" }",
    )? {
        Some(form) => {
            let mut fields = Vec::with_capacity(form.entries.len());
            for &entry in &form.entries {
                let found = form.entry_str(entry, STRING_HINT)?;
                let value = form.parse_template(&found, TEXT, literals)?;
                fields.push((entry.0.get_ref().to_string(), value));
            }
            Some((form.anchor.clone(), fields))
        }
        None => None,
    };
    let body = match (json, form) {
        (Some((json_span, _)), Some((form_span, _))) => {
            let (span, key) = if json_span.start > form_span.start {
                (json_span, "json")
            } else {
                (form_span, "form")
            };
            return Err(table.error(
                &span,
                key,
                "`json` and `form` are both set".to_owned(),
                "a request has one body: keep one of them",
            ));
        }
        (Some((_, json)), None) => Some(HttpBody::Json(json)),
        (None, Some((_, form))) => Some(HttpBody::Form(form)),
        (None, None) => None,
    };

    let method = match table.str("method")? {
        None if body.is_some() => HttpMethod::Post,
        None => HttpMethod::Get,
        Some(found) => {
            let method = if found.text.eq_ignore_ascii_case("get") {
                HttpMethod::Get
            } else if found.text.eq_ignore_ascii_case("post") {
                HttpMethod::Post
            } else {
                return Err(table.error(
                    &found.span,
                    &found.key,
                    format!("unknown method {:?}", found.text),
                    UNKNOWN_METHOD_HINT,
                ));
            };
            if method == HttpMethod::Get && body.is_some() {
                return Err(table.error(
                    &found.span,
                    &found.key,
                    "method GET cannot send a body (`json` or `form`)".to_owned(),
                    "use method = \"POST\" (the default with a body), or remove the body",
                ));
            }
            method
        }
    };

    let token = table.pointer("token")?.ok_or_else(|| {
        table.missing(
            "token",
            "kind \"http\" needs a `token`".to_owned(),
            "add the JSON pointer to the token in the response, e.g. token = \"/access_token\"",
        )
    })?;

    let expires = match table.str("expires")? {
        None => ExpiresFrom::Unknown,
        Some(found) if found.text == "jwt" => ExpiresFrom::Jwt,
        Some(found) if crate::kinds::is_json_pointer(found.text) => {
            ExpiresFrom::Pointer(found.text.to_owned())
        }
        Some(found) => {
            return Err(table.error(
                &found.span,
                &found.key,
                "`expires` is neither \"jwt\" nor a JSON pointer".to_owned(),
                "use expires = \"jwt\" when the token is a JWT, or a pointer to an expires_in \
                 number of seconds, e.g. \"/expires_in\"; or remove it",
            ));
        }
    };

    let ttl = table.duration("ttl")?;
    let ok = ok_check(table)?;
    let timeout = table.timeout()?;

    Ok(HttpExchange {
        method,
        url,
        basic,
        headers,
        body,
        token,
        expires,
        ttl,
        ok,
        timeout,
    })
}

/// `basic = { user = …, password = … }`.
fn basic_pair(
    basic: &Table<'_, '_>,
    literals: &mut Vec<Literal>,
) -> Result<BasicPair, ConfigError> {
    basic.check_keys(&BASIC_KEYS, "`basic`")?;
    let user = basic.str("user")?.ok_or_else(|| {
        basic.missing(
            "user",
            "`basic` needs a `user`".to_owned(),
            "add it, e.g. basic = { user = \"${env:USER}\", password = \"${env:PASSWORD}\" }",
        )
    })?;
    let user = basic_user(basic, &user, CREDENTIAL, literals)?;
    let password = match basic.str("password")? {
        Some(found) => basic.parse_template(&found, CREDENTIAL_OR_EMPTY, literals)?,
        None => literal_template(""),
    };
    Ok(BasicPair { user, password })
}

/// The user half of an HTTP Basic pair: a template that, when written literally, has no `:`
/// (RFC 7617).
fn basic_user(
    table: &Table<'_, '_>,
    found: &Str<'_>,
    rules: Rules,
    literals: &mut Vec<Literal>,
) -> Result<SecretTemplate, ConfigError> {
    let template = table.parse_template(found, rules, literals)?;
    if template.is_literal() && found.text.contains(':') {
        return Err(table.error(
            &found.span,
            &found.key,
            format!("`{}` contains `:`", found.key),
            "an HTTP Basic user name cannot contain `:`; fix the value",
        ));
    }
    Ok(template)
}

/// `ok = { pointer = …, equals = …, message = … }`.
fn ok_check(table: &Table<'_, '_>) -> Result<Option<OkCheck>, ConfigError> {
    const HINT: &str = "write it as ok = { pointer = \"/status/code\", equals = \"OK\" }";
    let Some(ok) = table.table("ok", HINT)? else {
        return Ok(None);
    };
    ok.check_keys(&OK_KEYS, "`ok`")?;
    let pointer = ok.pointer("pointer")?.ok_or_else(|| {
        ok.missing(
            "pointer",
            "`ok` needs a `pointer`".to_owned(),
            "add the JSON pointer to the status value, e.g. pointer = \"/status/code\"",
        )
    })?;
    let equals = match ok.entry("equals") {
        None => {
            return Err(ok.missing(
                "equals",
                "`ok` needs `equals`".to_owned(),
                "add the value that means success, e.g. equals = \"OK\"",
            ));
        }
        Some((name, value)) => match value.get_ref() {
            DeValue::String(text) => text.to_string(),
            DeValue::Boolean(flag) => flag.to_string(),
            DeValue::Integer(integer) => i64::from_str_radix(integer.as_str(), integer.radix())
                .map_or_else(|_| integer.to_string(), |number| number.to_string()),
            other => {
                return Err(ok.wrong_type(
                    &name.span(),
                    &ok.key_path("equals"),
                    "a string, integer or boolean",
                    other,
                    "write the success value, e.g. equals = \"OK\" or equals = 0",
                ));
            }
        },
    };
    let message = ok.pointer("message")?;
    Ok(Some(OkCheck {
        pointer,
        equals,
        message,
    }))
}

/// `preset = "timekit"`: Timekit's App-Token endpoint.
fn timekit_preset(
    table: &Table<'_, '_>,
    literals: &mut Vec<Literal>,
) -> Result<(ProviderKind, Option<Presentation>), ConfigError> {
    const OWNER: &str = "preset \"timekit\"";
    let app = table.required_text(
        "app",
        OWNER,
        "add the app slug, as sent in the Timekit-App header, e.g. app = \"my-app\"",
    )?;
    if app.text.chars().any(char::is_control) {
        return Err(table.error(
            &app.span,
            &app.key,
            "`app` contains a control character".to_owned(),
            "give the plain app slug",
        ));
    }
    let email = table.str("email")?.ok_or_else(|| {
        table.missing(
            "email",
            format!("{OWNER} needs `email`"),
            "add the account e-mail, e.g. email = \"me@example.com\"",
        )
    })?;
    let email = basic_user(table, &email, NON_EMPTY_TEXT, literals)?;
    let api_key = table.required_template("api_key", CREDENTIAL, OWNER, literals)?;
    let base = match table.base_url("base_url")? {
        Some(base) => base,
        None => Url::parse(TIMEKIT_BASE_URL).expect("the default Timekit URL is valid"),
    };
    let mut url = join_path(&base, "v2/app");
    url.set_query(Some("include=app_token"));
    let timeout = table.timeout()?;

    let exchange = HttpExchange {
        method: HttpMethod::Get,
        url,
        basic: Some(BasicPair {
            user: email,
            password: api_key,
        }),
        // As in Timekit's documented request.
        headers: vec![
            (
                "Content-Type".to_owned(),
                literal_template("application/json"),
            ),
            ("Timekit-App".to_owned(), literal_template(app.text)),
        ],
        body: None,
        token: "/data/app_token/0/token".to_owned(),
        expires: ExpiresFrom::Unknown,
        ttl: None,
        ok: None,
        timeout,
    };
    // The App-Token is then sent as HTTP Basic with an empty user name.
    let presentation = Presentation {
        header: "Authorization".to_owned(),
        scheme: Scheme::Basic,
        basic_user: String::new(),
    };
    Ok((ProviderKind::Http(exchange), Some(presentation)))
}

/// `preset = "crm.com"`: CRM.COM's consumer application key token endpoint.
fn crm_preset(
    table: &Table<'_, '_>,
    literals: &mut Vec<Literal>,
) -> Result<(ProviderKind, Option<Presentation>), ConfigError> {
    const OWNER: &str = "preset \"crm.com\"";
    let base = table.base_url("base_url")?.ok_or_else(|| {
        table.missing(
            "base_url",
            format!("{OWNER} needs `base_url`"),
            "add the Web API root, e.g. base_url = \"https://crm.example.com/crmapi/rest/v2\"",
        )
    })?;
    let api_key = table.str("api_key")?.ok_or_else(|| {
        table.missing(
            "api_key",
            format!("{OWNER} needs `api_key`"),
            "add the Web API key, e.g. api_key = \"${env:CRM_API_KEY}\"",
        )
    })?;
    let api_key = basic_user(table, &api_key, CREDENTIAL, literals)?;

    // Exactly one way to identify the consumer: the group of the first key given.
    let mut given: Vec<(Range<usize>, &str, usize)> = CRM_IDENTIFIERS
        .iter()
        .enumerate()
        .flat_map(|(group, keys)| keys.iter().map(move |&key| (key, group)))
        .filter_map(|(key, group)| Some((table.key_span(key)?, key, group)))
        .collect();
    given.sort_by_key(|(span, _, _)| span.start);
    let Some(&(_, first, group)) = given.first() else {
        return Err(table.missing(
            "authentication_code",
            format!("{OWNER} needs a way to identify the consumer"),
            CRM_IDENTIFY_HINT,
        ));
    };
    if let Some((span, key, _)) = given.iter().find(|(_, _, other)| *other != group) {
        return Err(table.error(
            span,
            key,
            format!("`{key}` cannot be combined with `{first}`"),
            CRM_IDENTIFY_HINT,
        ));
    }

    let plain = |key: &str| -> Result<Option<SecretTemplate>, ConfigError> {
        match table.str(key)? {
            Some(found) => {
                table.non_empty(&found, "give it a value, or remove it")?;
                Ok(Some(literal_template(found.text)))
            }
            None => Ok(None),
        }
    };
    let string = JsonTemplate::String;
    let mut body = match group {
        0 => {
            let code =
                table.required_template("authentication_code", CREDENTIAL, OWNER, literals)?;
            vec![(
                "access_token_identifier".to_owned(),
                JsonTemplate::Object(vec![("authentication_code".to_owned(), string(code))]),
            )]
        }
        1 => {
            let identifier =
                table.required_template("identifier", NON_EMPTY_TEXT, OWNER, literals)?;
            let pass_code = table.required_template("pass_code", CREDENTIAL, OWNER, literals)?;
            vec![(
                "access_token_identifier".to_owned(),
                JsonTemplate::Object(vec![
                    ("identifier".to_owned(), string(identifier)),
                    ("pass_code".to_owned(), string(pass_code)),
                ]),
            )]
        }
        _ => {
            let jwt = table.required_template("jwt", CREDENTIAL, OWNER, literals)?;
            let organisation = plain("organisation")?.ok_or_else(|| {
                table.missing(
                    "organisation",
                    format!("{OWNER} needs `organisation` with `jwt`"),
                    "add the organisation id the session is created in, e.g. organisation = \"…\"",
                )
            })?;
            vec![
                ("jwt".to_owned(), string(jwt)),
                ("organisation".to_owned(), string(organisation)),
            ]
        }
    };
    if let Some(unit) = plain("unit")? {
        body.push(("unit".to_owned(), string(unit)));
    }
    let timeout = table.timeout()?;

    let exchange = HttpExchange {
        method: HttpMethod::Post,
        url: join_path(&base, "authentication/consumer_application_key/token"),
        basic: Some(BasicPair {
            user: api_key,
            password: literal_template(""),
        }),
        headers: Vec::new(),
        body: Some(HttpBody::Json(JsonTemplate::Object(body))),
        token: "/data/token".to_owned(),
        expires: ExpiresFrom::Jwt,
        ttl: Some(CRM_TTL),
        ok: Some(OkCheck {
            pointer: "/status/code".to_owned(),
            equals: "OK".to_owned(),
            message: Some("/status/description".to_owned()),
        }),
        timeout,
    };
    let presentation = Presentation {
        header: "authorization".to_owned(),
        scheme: Scheme::Raw,
        basic_user: String::new(),
    };
    Ok((ProviderKind::Http(exchange), Some(presentation)))
}

/// `preset = "salestim"`: SalesTim's application mode, a static key in `X-API-KEY`.
/// Azure AD (Microsoft identity platform) v2.0 endpoints under `authority`.
const AZURE_AUTHORITY: &str = "https://login.microsoftonline.com";

/// `preset = "azure-ad"`: the Microsoft identity platform's v2.0 endpoints for `tenant`. Without
/// a `client_secret` a person logs in (authorization code with PKCE; `offline_access` is added
/// to the scopes so that there is a refresh token); with one, the app itself authenticates
/// (client credentials).
fn azure_ad_preset(
    table: &Table<'_, '_>,
    literals: &mut Vec<Literal>,
) -> Result<ProviderKind, ConfigError> {
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
    let mut scopes = scopes(table)?;
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
        let mut login = authorization_code_login(table)?;
        login.auth_url = Some(endpoint("authorize"));
        OAuth2Grant::AuthorizationCode(login)
    };
    Ok(ProviderKind::OAuth2(OAuth2Config {
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
    }))
}

fn salestim_preset(
    table: &Table<'_, '_>,
    literals: &mut Vec<Literal>,
) -> Result<(ProviderKind, Option<Presentation>), ConfigError> {
    let api_key =
        table.required_template("api_key", CREDENTIAL, "preset \"salestim\"", literals)?;
    let presentation = Presentation {
        header: "X-API-KEY".to_owned(),
        scheme: Scheme::Raw,
        basic_user: String::new(),
    };
    Ok((ProviderKind::Static { secret: api_key }, Some(presentation)))
}

/// `base` with `path` appended to its path, whether or not `base` ends with `/`.
fn join_path(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let joined = format!("{}/{path}", base.path().trim_end_matches('/'));
    url.set_path(&joined);
    url
}

/// A template whose value is exactly `text`: for plain config strings that end up where
/// templates are expected (header values, JSON strings).
fn literal_template(text: &str) -> SecretTemplate {
    // Escaping every `${` as `$${` leaves no reference, and only a reference can fail to parse.
    SecretTemplate::parse(&text.replace("${", "$${"))
        .expect("an escaped text has no reference and always parses")
}

/// Validates the presentation keys. `defaults` are a preset's; without, the built-in defaults
/// apply (and a custom `header` makes the default scheme `raw`).
fn presentation(
    table: &Table<'_, '_>,
    defaults: Option<Presentation>,
) -> Result<Presentation, ConfigError> {
    let from_preset = defaults.is_some();
    let mut presentation = defaults.unwrap_or_default();

    if let Some(header) = table.str("header")? {
        if !is_http_token(header.text) {
            return Err(table.error(
                &header.span,
                &header.key,
                "`header` is not a valid HTTP header name".to_owned(),
                "use a header name such as \"Authorization\" or \"X-API-KEY\" \
                 (no spaces, colons or control characters)",
            ));
        }
        presentation.header = header.text.to_owned();
        if !from_preset && !presentation.header.eq_ignore_ascii_case("authorization") {
            // Custom headers (X-API-KEY and the like) carry the bare secret by default.
            presentation.scheme = Scheme::Raw;
        }
    }

    if let Some(scheme) = table.str("scheme")? {
        presentation.scheme = Scheme::from_name(scheme.text).ok_or_else(|| {
            table.error(
                &scheme.span,
                &scheme.key,
                format!("unknown scheme {:?}", scheme.text),
                UNKNOWN_SCHEME_HINT,
            )
        })?;
    }

    if let Some(user) = table.str("basic_user")? {
        if presentation.scheme != Scheme::Basic {
            return Err(table.error(
                &user.span,
                &user.key,
                format!(
                    "`basic_user` is set but scheme is \"{}\"",
                    presentation.scheme
                ),
                "remove basic_user, or set scheme = \"basic\"",
            ));
        }
        if user.text.contains(|c: char| c == ':' || c.is_control()) {
            return Err(table.error(
                &user.span,
                &user.key,
                "`basic_user` contains `:` or a control character".to_owned(),
                "Basic authentication user names cannot contain them; fix the user name",
            ));
        }
        presentation.basic_user = user.text.to_owned();
    }

    Ok(presentation)
}

/// A route and where its `host` is, for the duplicate check.
struct LocatedRoute {
    route: CredentialRoute,
    span: Range<usize>,
    key: String,
}

/// The provider's `git` and `docker` tables.
fn routes(table: &Table<'_, '_>) -> Result<Vec<LocatedRoute>, ConfigError> {
    let mut routes = Vec::new();
    for (key, tool) in ROUTE_TABLES {
        let Some(route) = table.table(key, ROUTE_HINT)? else {
            continue;
        };
        route.check_keys(&ROUTE_KEYS, &format!("`{key}`"))?;
        let host = route.required_text("host", &format!("`{key}`"), ROUTE_HOST_HINT)?;
        if !is_host_and_port(host.text) {
            return Err(route.error(
                &host.span,
                &host.key,
                format!("`{}` is not a host name", host.key),
                ROUTE_HOST_HINT,
            ));
        }
        let username = match route.str("username")? {
            Some(user) => {
                let hint = "use a non-empty user name without spaces, `:` or control characters";
                route.non_empty(&user, hint)?;
                if user
                    .text
                    .contains(|c: char| c == ':' || c.is_whitespace() || c.is_control())
                {
                    return Err(route.error(
                        &user.span,
                        &user.key,
                        format!(
                            "`{}` contains a space, `:` or a control character",
                            user.key
                        ),
                        hint,
                    ));
                }
                user.text.to_owned()
            }
            None => DEFAULT_ROUTE_USERNAME.to_owned(),
        };
        routes.push(LocatedRoute {
            route: CredentialRoute {
                provider: table.provider.to_owned(),
                tool,
                host: host.text.to_ascii_lowercase(),
                username,
            },
            span: host.span.clone(),
            key: host.key.clone(),
        });
    }
    Ok(routes)
}

/// `name`, `name:port`, `[v6]` or `[v6]:port`: what git sends as `host` and what Docker's server
/// URLs reduce to.
fn is_host_and_port(text: &str) -> bool {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return false;
        };
        if inside.is_empty() || !inside.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        match after {
            "" => ("v6", None),
            _ => match after.strip_prefix(':') {
                Some(port) => ("v6", Some(port)),
                None => return false,
            },
        }
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    let port_ok = port.is_none_or(|port| port.parse::<u16>().is_ok_and(|port| port != 0));
    host_ok && port_ok
}

/// A key as shown in messages: bare keys as they are, others quoted and escaped (so a message
/// stays on one line).
fn shown_key(key: &str) -> Cow<'_, str> {
    if !key.is_empty()
        && key
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-'))
    {
        Cow::Borrowed(key)
    } else {
        Cow::Owned(format!("{key:?}"))
    }
}

/// "an integer", "a string", … for a TOML type name.
fn article(type_name: &str) -> String {
    let vowel = type_name.starts_with(['a', 'e', 'i', 'o', 'u']);
    format!("{} {type_name}", if vowel { "an" } else { "a" })
}

/// 1-based line of a byte offset.
fn line_at(bytes: &[u8], offset: usize) -> usize {
    let end = offset.min(bytes.len());
    bytes[..end].iter().filter(|&&b| b == b'\n').count() + 1
}

fn one_line(message: &str) -> String {
    message.trim().replace('\n', "; ")
}

fn is_name_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-')
}

/// An RFC 9110 `token` (field names): one or more `tchar`.
fn is_http_token(text: &str) -> bool {
    !text.is_empty()
        && text.bytes().all(|byte| {
            byte.is_ascii_alphanumeric()
                || matches!(
                    byte,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = "/etc/tokend-test/config.toml";
    /// Stands in for a real secret: must never show up in messages or `Debug` output.
    const SECRET: &str = "hunter2-sekrit";

    fn parse_ok(text: &str) -> (Config, Vec<Warning>) {
        parse(text, Path::new(PATH)).unwrap_or_else(|error| panic!("{error}"))
    }

    fn parse_err(text: &str) -> ConfigError {
        match parse(text, Path::new(PATH)) {
            Ok((config, _)) => panic!("expected an error, got {config:?}"),
            Err(error) => error,
        }
    }

    /// A fresh private directory under the system temp dir, removed on drop.
    fn temp_dir(tag: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("tokend-config-{tag}-"))
            .tempdir()
            .expect("create temp dir")
    }

    const EXAMPLE: &str = r#"
[providers.salestim]            # the table name is what `tok get` takes
kind = "static"                 # a fixed secret: API key or personal access token
secret = "${env:SALESTIM_API_KEY}"
header = "X-API-KEY"            # presented as `X-API-KEY: <secret>`

[providers.gitlab]
kind = "static"
secret = "${file:~/.config/gitlab.pat}"
scheme = "bearer"
"#;

    #[test]
    fn examples_parse() {
        let (config, warnings) = parse_ok(EXAMPLE);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(config.source, ConfigSource::File(PathBuf::from(PATH)));
        assert_eq!(config.providers.len(), 2);

        let salestim = &config.providers["salestim"];
        assert_eq!(salestim.name, "salestim");
        assert_eq!(salestim.kind.name(), "static");
        assert_eq!(
            salestim.kind,
            ProviderKind::Static {
                secret: SecretTemplate::parse("${env:SALESTIM_API_KEY}").unwrap()
            }
        );
        assert_eq!(salestim.presentation.header, "X-API-KEY");
        // A custom header without a scheme carries the bare secret.
        assert_eq!(salestim.presentation.scheme, Scheme::Raw);
        assert_eq!(salestim.presentation.basic_user, "");

        let gitlab = &config.providers["gitlab"];
        assert_eq!(gitlab.presentation, Presentation::default());
        assert_eq!(
            gitlab.kind,
            ProviderKind::Static {
                secret: SecretTemplate::parse("${file:~/.config/gitlab.pat}").unwrap()
            }
        );
    }

    #[test]
    fn defaults_and_other_schemes() {
        let (config, _) = parse_ok(
            r#"
[providers.a]
kind = "static"
secret = "${env:A}"

[providers.b]
kind = "static"
secret = "${env:B}"
scheme = "basic"
basic_user = "me"

[providers.c]
kind = "static"
secret = "${env:C}"
scheme = "raw"
header = "PRIVATE-TOKEN"

[providers."d.e_f-1"]
kind = "static"
secret = "${env:D}"
scheme = "basic"
"#,
        );
        let presentation = |name: &str| config.providers[name].presentation.clone();
        assert_eq!(
            presentation("a"),
            Presentation {
                header: "Authorization".to_owned(),
                scheme: Scheme::Bearer,
                basic_user: String::new(),
            }
        );
        assert_eq!(presentation("b").scheme, Scheme::Basic);
        assert_eq!(presentation("b").basic_user, "me");
        assert_eq!(presentation("c").scheme, Scheme::Raw);
        assert_eq!(presentation("c").header, "PRIVATE-TOKEN");
        assert_eq!(presentation("d.e_f-1").basic_user, "");
    }

    #[test]
    fn interactive_grants() {
        let (config, _) = parse_ok(
            "[providers.lab]\nkind = \"oauth2\"\ngrant = \"authorization_code\"\n\
             token_url = \"https://id.example.com/token\"\n\
             auth_url = \"https://id.example.com/authorize\"\nclient_id = \"cli\"\n\
             redirect_uri = \"http://[::1]:8400/cb\"\nlogin_timeout = \"5m\"\n\
             auth_params = { prompt = \"consent\" }\n\
             revocation_url = \"https://id.example.com/revoke\"\n\
             [providers.tv]\nkind = \"oauth2\"\ngrant = \"device_code\"\n\
             issuer = \"https://id.example.com\"\nclient_id = \"tv\"\n",
        );
        let ProviderKind::OAuth2(lab) = &config.providers["lab"].kind else {
            panic!("oauth2");
        };
        assert_eq!(
            lab.grant,
            OAuth2Grant::AuthorizationCode(AuthorizationCodeLogin {
                auth_url: Some(Url::parse("https://id.example.com/authorize").unwrap()),
                redirect_uri: Url::parse("http://[::1]:8400/cb").unwrap(),
                timeout: Duration::from_secs(300),
                auth_params: vec![("prompt".to_owned(), "consent".to_owned())],
            })
        );
        assert_eq!(
            lab.revocation_url.as_ref().map(Url::as_str),
            Some("https://id.example.com/revoke")
        );
        assert!(lab.client_secret.is_none(), "public clients need no secret");
        let ProviderKind::OAuth2(tv) = &config.providers["tv"].kind else {
            panic!("oauth2");
        };
        assert_eq!(
            tv.grant,
            OAuth2Grant::DeviceCode(DeviceLogin { device_url: None })
        );
        // Defaults: the ephemeral loopback redirect and a three-minute wait.
        let (config, _) = parse_ok(
            "[providers.a]\nkind = \"oauth2\"\ngrant = \"authorization_code\"\n\
             issuer = \"https://id.example.com\"\nclient_id = \"c\"\n",
        );
        let ProviderKind::OAuth2(a) = &config.providers["a"].kind else {
            panic!("oauth2");
        };
        let OAuth2Grant::AuthorizationCode(login) = &a.grant else {
            panic!("authorization_code");
        };
        assert_eq!(login.redirect_uri.as_str(), "http://127.0.0.1:0/callback");
        assert_eq!(login.timeout, Duration::from_secs(180));

        let head = "[providers.a]\nkind = \"oauth2\"\nclient_id = \"c\"\n";
        for (body, location, problem) in [
            (
                "grant = \"authorization_code\"\ntoken_url = \"https://t/\"\n",
                "key `auth_url`",
                "needs an `auth_url`",
            ),
            (
                "grant = \"device_code\"\ntoken_url = \"https://t/\"\n",
                "key `device_url`",
                "needs a `device_url`",
            ),
            (
                "grant = \"client_credentials\"\nclient_secret = \"${env:S}\"\n\
                 token_url = \"https://t/\"\nauth_url = \"https://t/a\"\n",
                "key `auth_url`",
                "grant is \"client_credentials\"",
            ),
            (
                "grant = \"device_code\"\nissuer = \"https://t/\"\n\
                 redirect_uri = \"http://127.0.0.1:0/cb\"\n",
                "key `redirect_uri`",
                "grant is \"device_code\"",
            ),
            (
                "grant = \"authorization_code\"\nissuer = \"https://t/\"\n\
                 redirect_uri = \"https://127.0.0.1/cb\"\n",
                "key `redirect_uri`",
                "loopback http URL",
            ),
            (
                "grant = \"authorization_code\"\nissuer = \"https://t/\"\n\
                 redirect_uri = \"http://example.com/cb\"\n",
                "key `redirect_uri`",
                "loopback http URL",
            ),
            (
                "grant = \"authorization_code\"\nissuer = \"https://t/\"\n\
                 login_timeout = \"2s\"\n",
                "key `login_timeout`",
                "out of range",
            ),
            (
                "grant = \"authorization_code\"\nissuer = \"https://t/\"\n\
                 auth_params = { state = \"x\" }\n",
                "key `auth_params.state`",
                "sets itself",
            ),
            (
                "grant = \"authorization_code\"\nissuer = \"https://t/\"\n\
                 refresh_token = \"${env:R}\"\n",
                "key `refresh_token`",
                "`tok login NAME` obtains",
            ),
            (
                "grant = \"client_credentials\"\nclient_secret = \"${env:S}\"\n\
                 token_url = \"https://t/\"\nprivate_key = \"${file:/k.pem}\"\n",
                "key `private_key`",
                "nothing signs with it",
            ),
            (
                "grant = \"jwt_bearer\"\ntoken_url = \"https://t/\"\n",
                "key `private_key`",
                "need `private_key`",
            ),
            (
                "grant = \"client_credentials\"\nclient_secret = \"${env:S}\"\n\
                 client_auth = \"private_key_jwt\"\ntoken_url = \"https://t/\"\n\
                 private_key = \"${file:/k.pem}\"\n",
                "key `client_secret`",
                "client_auth is \"private_key_jwt\"",
            ),
            (
                "grant = \"device_code\"\nissuer = \"https://t/\"\n\
                 client_auth = \"private_key_jwt\"\nprivate_key = \"${file:/k.pem}\"\n",
                "key `client_auth`",
                "does not work with grant \"device_code\"",
            ),
            (
                "grant = \"jwt_bearer\"\ntoken_url = \"https://t/\"\n\
                 private_key = \"${file:/k.pem}\"\nsigning_alg = \"HS256\"\n",
                "key `signing_alg`",
                "RS256",
            ),
            (
                "grant = \"client_credentials\"\nclient_secret = \"${env:S}\"\n\
                 token_url = \"https://t/\"\nassertion_subject = \"x\"\n",
                "key `assertion_subject`",
                "grant = \"jwt_bearer\"",
            ),
        ] {
            let error = parse_err(&format!("{head}{body}")).to_string();
            assert!(
                error.contains(location) && error.contains(problem),
                "{body}: {error}"
            );
        }
    }

    #[test]
    fn azure_ad_preset() {
        let (config, _) = parse_ok(
            "[providers.admin]\npreset = \"azure-ad\"\ntenant = \"contoso.onmicrosoft.com\"\n\
             client_id = \"11111111-2222-3333-4444-555555555555\"\n\
             scopes = [\"https://salestim.example/.default\"]\n",
        );
        let ProviderKind::OAuth2(admin) = &config.providers["admin"].kind else {
            panic!("oauth2");
        };
        assert_eq!(
            admin.endpoint,
            TokenEndpoint::TokenUrl(
                Url::parse(
                    "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
                )
                .unwrap()
            )
        );
        let OAuth2Grant::AuthorizationCode(login) = &admin.grant else {
            panic!("interactive by default");
        };
        assert_eq!(
            login.auth_url.as_ref().map(Url::as_str),
            Some("https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/authorize")
        );
        assert_eq!(
            admin.scopes,
            ["https://salestim.example/.default", "offline_access"]
        );
        assert_eq!(
            config.providers["admin"].presentation,
            Presentation::default()
        );

        let (config, _) = parse_ok(
            "[providers.app]\npreset = \"azure-ad\"\ntenant = \"t1\"\nclient_id = \"c\"\n\
             client_secret = \"${env:S}\"\nauthority = \"http://127.0.0.1:9/base\"\n",
        );
        let ProviderKind::OAuth2(app) = &config.providers["app"].kind else {
            panic!("oauth2");
        };
        assert_eq!(app.grant, OAuth2Grant::ClientCredentials);
        assert_eq!(
            app.endpoint,
            TokenEndpoint::TokenUrl(
                Url::parse("http://127.0.0.1:9/base/t1/oauth2/v2.0/token").unwrap()
            )
        );

        for (body, location, problem) in [
            (
                "tenant = \"a/b\"\nclient_id = \"c\"\n",
                "key `tenant`",
                "not a tenant",
            ),
            ("client_id = \"c\"\n", "key `tenant`", "needs `tenant`"),
            (
                "tenant = \"t\"\nclient_id = \"c\"\nclient_secret = \"${env:S}\"\n\
                 redirect_uri = \"http://127.0.0.1:0/cb\"\n",
                "key `redirect_uri`",
                "app login",
            ),
            (
                "tenant = \"t\"\nclient_id = \"c\"\ngrant = \"x\"\n",
                "key `grant`",
                "known keys",
            ),
        ] {
            let error =
                parse_err(&format!("[providers.a]\npreset = \"azure-ad\"\n{body}")).to_string();
            assert!(
                error.contains(location) && error.contains(problem),
                "{body}: {error}"
            );
        }
    }

    #[test]
    fn credential_routes() {
        let (config, _) = parse_ok(
            "[providers.lab]\nkind = \"static\"\nsecret = \"${env:X}\"\n\
             git = { host = \"GitLab.Example.com\" }\n\
             docker = { host = \"[::1]:5000\", username = \"robot\" }\n\
             [providers.crm]\npreset = \"crm.com\"\nbase_url = \"https://crm/api\"\n\
             api_key = \"${env:K}\"\nauthentication_code = \"${env:C}\"\n\
             git = { host = \"127.0.0.1:8080\" }\n",
        );
        let routes: Vec<_> = config
            .routes
            .iter()
            .map(|r| {
                (
                    r.provider.as_str(),
                    r.tool,
                    r.host.as_str(),
                    r.username.as_str(),
                )
            })
            .collect();
        assert_eq!(
            routes,
            [
                ("crm", CredentialTool::Git, "127.0.0.1:8080", "oauth2"),
                ("lab", CredentialTool::Git, "gitlab.example.com", "oauth2"),
                ("lab", CredentialTool::Docker, "[::1]:5000", "robot"),
            ]
        );
        // The same host may be routed once per tool.
        parse_ok(
            "[providers.a]\nkind = \"static\"\nsecret = \"${env:X}\"\ngit = { host = \"h\" }\n\
             [providers.b]\nkind = \"static\"\nsecret = \"${env:X}\"\ndocker = { host = \"h\" }\n",
        );
        for host in ["h", "h.example", "h:1", "[::1]", "[fe80::1]:443", "a_b-c.d"] {
            assert!(is_host_and_port(host), "{host}");
        }
        for host in [
            "",
            "h:",
            "h:0",
            "h:70000",
            "h/x",
            "https://h",
            "[::1",
            "[]",
            "[x]",
            "h h",
            ":80",
        ] {
            assert!(!is_host_and_port(host), "{host}");
        }
    }

    #[test]
    fn empty_file_has_no_providers() {
        let (config, warnings) = parse_ok("# nothing yet\n");
        assert!(config.providers.is_empty());
        assert!(warnings.is_empty());
        let (config, _) = parse_ok("[providers]\n");
        assert!(config.providers.is_empty());
    }

    #[test]
    fn header_values() {
        let token = Secret::from("tok");
        let with = |scheme, basic_user: &str| Presentation {
            header: "Authorization".to_owned(),
            scheme,
            basic_user: basic_user.to_owned(),
        };
        assert_eq!(
            with(Scheme::Bearer, "").header_value(&token).expose(),
            "Bearer tok"
        );
        assert_eq!(
            with(Scheme::Basic, "").header_value(&token).expose(),
            "Basic OnRvaw=="
        );
        assert_eq!(
            with(Scheme::Basic, "u").header_value(&token).expose(),
            "Basic dTp0b2s="
        );
        assert_eq!(with(Scheme::Raw, "").header_value(&token).expose(), "tok");
    }

    #[test]
    fn scheme_serde_names() {
        #[derive(Deserialize)]
        struct Holder {
            scheme: Scheme,
        }
        for scheme in Scheme::ALL {
            let holder: Holder = toml::from_str(&format!("scheme = \"{scheme}\"")).unwrap();
            assert_eq!(holder.scheme, scheme);
        }
    }

    /// Each case: description, config text, expected line, expected key, expected fragment.
    #[test]
    fn the_store_table_chooses_the_key_source() {
        let config_dir = Path::new(PATH).parent().unwrap();
        let (config, _) = parse_ok("");
        assert_eq!(
            config.store.key,
            KeySource::File(config_dir.join("store.key")),
            "default: a key file beside the config file"
        );
        let (config, _) = parse_ok("[store]\nkey = \"keyring\"\n");
        assert_eq!(config.store.key, KeySource::Keyring);
        let (config, _) = parse_ok("[store]\nkey = \"file\"\nkey_file = \"keys/k\"\n");
        assert_eq!(config.store.key, KeySource::File(config_dir.join("keys/k")));
        let (config, _) = parse_ok("[store]\nkey_file = \"/abs/k\"\n");
        assert_eq!(config.store.key, KeySource::File(PathBuf::from("/abs/k")));

        for (text, line, key, needle) in [
            (
                "[store]\nkey = \"plain\"\n",
                2,
                "store.key",
                "use one of: file (a key file",
            ),
            (
                "[store]\n\nkey = 1\n",
                3,
                "store.key",
                "expected a string, found an integer",
            ),
            (
                "[store]\nkeyfile = \"k\"\n",
                2,
                "store.keyfile",
                "known keys: key, key_file",
            ),
            (
                "[store]\nkey = \"keyring\"\nkey_file = \"k\"\n",
                3,
                "store.key_file",
                "remove key_file, or set key = \"file\"",
            ),
            ("store = 1\n", 1, "store", "write it as a [store] table"),
        ] {
            let error = parse_err(text).to_string();
            assert!(error.starts_with(&format!("{PATH}:{line}:")), "{error}");
            assert!(error.contains(&format!("top-level key `{key}`")), "{error}");
            assert!(error.contains(needle), "{error}");
        }
    }

    #[test]
    fn persist_is_a_boolean_of_fetching_kinds_only() {
        let oauth = "[providers.a]\nkind = \"oauth2\"\ngrant = \"client_credentials\"\n\
                     token_url = \"https://a.example/t\"\nclient_id = \"c\"\n\
                     client_secret = \"${env:S}\"\n";
        assert!(parse_ok(oauth).0.providers["a"].persist, "on by default");
        let (config, _) = parse_ok(&format!("{oauth}persist = false\n"));
        assert!(!config.providers["a"].persist);
        let error = parse_err(&format!("{oauth}persist = \"no\"\n")).to_string();
        assert!(
            error.contains(":7:") && error.contains("expected a boolean"),
            "{error}"
        );
        let error =
            parse_err("[providers.s]\nkind = \"static\"\nsecret = \"${env:S}\"\npersist = false\n")
                .to_string();
        assert!(
            error.contains(":4:") && error.contains("unknown key"),
            "{error}"
        );
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let cases: &[(&str, String, usize, Option<&str>, &str)] = &[
            (
                "toml syntax",
                format!("[providers.a]\nkind = \"static\"\nsecret = {SECRET}\n"),
                3,
                None,
                "TOML syntax error",
            ),
            (
                "duplicate table",
                "[providers.a]\nkind = \"static\"\n[providers.a]\nkind = \"static\"\n".to_owned(),
                3,
                None,
                "may appear only once",
            ),
            (
                "unknown top-level key",
                "\n\ntop = 1\n".to_owned(),
                3,
                Some("top-level key `top`"),
                "unknown key",
            ),
            (
                "unknown top-level table",
                "[provider.a]\nkind = \"static\"\n".to_owned(),
                1,
                Some("top-level key `provider`"),
                "unknown key",
            ),
            (
                "unknown provider key",
                format!(
                    "[providers.a]\nkind = \"static\"\nsecret = \"${{env:X}}\"\nsecrett = \"{SECRET}\"\n"
                ),
                4,
                Some("[providers.a] key `secrett`"),
                "known keys: kind, secret",
            ),
            (
                "route on an anonymous provider",
                "[providers.a]\nkind = \"anonymous\"\ngit = { host = \"h\" }\n".to_owned(),
                3,
                Some("[providers.a] key `git`"),
                "no meaning for kind \"anonymous\"",
            ),
            (
                "route is not a table",
                "[providers.a]\nkind = \"static\"\nsecret = \"${env:X}\"\ngit = \"h\"\n"
                    .to_owned(),
                4,
                Some("[providers.a] key `git`"),
                "expected a table",
            ),
            (
                "route without host",
                "[providers.a]\nkind = \"static\"\nsecret = \"${env:X}\"\n\n[providers.a.docker]\nusername = \"u\"\n"
                    .to_owned(),
                5,
                Some("[providers.a] key `docker.host`"),
                "`docker` needs `host`",
            ),
            (
                "route host with a scheme",
                "[providers.a]\nkind = \"static\"\nsecret = \"${env:X}\"\ngit = { host = \"https://h/x\" }\n"
                    .to_owned(),
                4,
                Some("[providers.a] key `git.host`"),
                "no scheme, no path",
            ),
            (
                "route unknown key",
                "[providers.a]\nkind = \"static\"\nsecret = \"${env:X}\"\ngit = { hots = \"h\" }\n"
                    .to_owned(),
                4,
                Some("[providers.a] key `git.hots`"),
                "known keys: host, username",
            ),
            (
                "route username with a colon",
                "[providers.a]\nkind = \"static\"\nsecret = \"${env:X}\"\ngit = { host = \"h\", username = \"a:b\" }\n"
                    .to_owned(),
                4,
                Some("[providers.a] key `git.username`"),
                "contains a space",
            ),
            (
                "host routed twice",
                "[providers.a]\nkind = \"static\"\nsecret = \"${env:X}\"\ngit = { host = \"H:8080\" }\n\
                 [providers.b]\nkind = \"static\"\nsecret = \"${env:Y}\"\ngit = { host = \"h:8080\" }\n"
                    .to_owned(),
                8,
                Some("[providers.b] key `git.host`"),
                "already routed to provider \"a\"",
            ),
            (
                "unknown provider sub-table",
                "[providers.a]\nkind = \"static\"\n\n[providers.a.extra]\nx = 1\n".to_owned(),
                4,
                Some("[providers.a] key `extra`"),
                "unknown key",
            ),
            (
                "missing kind",
                "\n[providers.a]\nsecret = \"${env:X}\"\n".to_owned(),
                2,
                Some("[providers.a] key `kind`"),
                "missing `kind`",
            ),
            (
                "unknown kind",
                "[providers.a]\nsecret = \"${env:X}\"\nkind = \"oauth\"\n".to_owned(),
                3,
                Some("[providers.a] key `kind`"),
                "use one of: static",
            ),
            (
                "kind not a string",
                "[providers.a]\nkind = 3\n".to_owned(),
                2,
                Some("[providers.a] key `kind`"),
                "expected a string, found an integer",
            ),
            (
                "secret not a string",
                "[providers.a]\nkind = \"static\"\nsecret = { env = \"X\" }\n".to_owned(),
                3,
                Some("[providers.a] key `secret`"),
                "expected a string, found a table",
            ),
            (
                "static without secret",
                "[providers.a]\nkind = \"static\"\n".to_owned(),
                1,
                Some("[providers.a] key `secret`"),
                "needs a `secret`",
            ),
            (
                "empty secret",
                "[providers.a]\nkind = \"static\"\nsecret = \"\"\n".to_owned(),
                3,
                Some("[providers.a] key `secret`"),
                "`secret` is empty",
            ),
            (
                "bad secret template",
                format!("[providers.a]\nkind = \"static\"\n\nsecret = \"{SECRET}${{nope:X}}\"\n"),
                4,
                Some("[providers.a] key `secret`"),
                "at byte 14",
            ),
            (
                "unclosed secret reference",
                format!("[providers.a]\nkind = \"static\"\nsecret = \"${{env:{SECRET}\"\n"),
                3,
                Some("[providers.a] key `secret`"),
                "no closing",
            ),
            (
                "bad scheme",
                "[providers.a]\nkind = \"static\"\nsecret = \"${env:X}\"\nscheme = \"digest\"\n"
                    .to_owned(),
                4,
                Some("[providers.a] key `scheme`"),
                "use one of: bearer, basic, raw",
            ),
            (
                "basic_user without basic",
                "[providers.a]\nkind = \"static\"\nsecret = \"${env:X}\"\nbasic_user = \"me\"\n"
                    .to_owned(),
                4,
                Some("[providers.a] key `basic_user`"),
                "scheme is \"bearer\"",
            ),
            (
                "basic_user with raw",
                "[providers.a]\nkind = \"static\"\nscheme = \"raw\"\nbasic_user = \"\"\nsecret = \"${env:X}\"\n"
                    .to_owned(),
                4,
                Some("[providers.a] key `basic_user`"),
                "scheme is \"raw\"",
            ),
            (
                "basic_user with colon",
                "[providers.a]\nkind = \"static\"\nsecret = \"${env:X}\"\nscheme = \"basic\"\nbasic_user = \"a:b\"\n"
                    .to_owned(),
                5,
                Some("[providers.a] key `basic_user`"),
                "contains `:`",
            ),
            (
                "header with space",
                "[providers.a]\nkind = \"static\"\nsecret = \"${env:X}\"\nheader = \"X API\"\n"
                    .to_owned(),
                4,
                Some("[providers.a] key `header`"),
                "not a valid HTTP header name",
            ),
            (
                "header with colon",
                "[providers.a]\nkind = \"static\"\nsecret = \"${env:X}\"\nheader = \"X-Key:\"\n"
                    .to_owned(),
                4,
                Some("[providers.a] key `header`"),
                "not a valid HTTP header name",
            ),
            (
                "empty header",
                "[providers.a]\nkind = \"static\"\nsecret = \"${env:X}\"\nheader = \"\"\n"
                    .to_owned(),
                4,
                Some("[providers.a] key `header`"),
                "not a valid HTTP header name",
            ),
            (
                "header with control character",
                "[providers.a]\nkind = \"static\"\nsecret = \"${env:X}\"\nheader = \"X\\tY\"\n"
                    .to_owned(),
                4,
                Some("[providers.a] key `header`"),
                "not a valid HTTP header name",
            ),
            (
                "provider name with space",
                "\n[providers.\"a b\"]\nkind = \"static\"\nsecret = \"${env:X}\"\n".to_owned(),
                2,
                None,
                "invalid provider name \"a b\"",
            ),
            (
                "empty provider name",
                "[providers.\"\"]\nkind = \"static\"\nsecret = \"${env:X}\"\n".to_owned(),
                1,
                None,
                "invalid provider name \"\"",
            ),
            (
                "provider is not a table",
                format!("[providers]\ngitlab = \"{SECRET}\"\n"),
                2,
                Some("[providers.gitlab]"),
                "a provider must be a table, found a string",
            ),
            (
                "array of provider tables",
                "\n[[providers]]\nkind = \"static\"\n".to_owned(),
                2,
                Some("top-level key `providers`"),
                "expected a table, found an array",
            ),
            (
                "providers is not a table",
                format!("providers = \"{SECRET}\"\n"),
                1,
                Some("top-level key `providers`"),
                "expected a table, found a string",
            ),
        ];
        check_errors(cases);
    }

    #[test]
    fn literal_secret_warns_without_leaking() {
        let text = format!("[providers.lit]\nkind = \"static\"\n\nsecret = \"{SECRET}\"\n");
        let (config, warnings) = parse_ok(&text);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        let warning = &warnings[0];
        assert_eq!(warning.line, 4);
        assert!(warning.message.contains("[providers.lit]"), "{warning}");
        assert!(warning.message.contains("`secret`"), "{warning}");
        assert!(warning.message.contains("${env:…}"), "{warning}");
        assert!(warning.to_string().starts_with("line 4: "), "{warning}");

        let shown = format!("{config:?} {warnings:?} {warning}");
        assert!(!shown.contains(SECRET), "{shown}");
        let ProviderKind::Static { secret } = &config.providers["lit"].kind else {
            panic!("expected a static provider: {config:?}");
        };
        assert!(secret.is_literal());
    }

    #[test]
    fn missing_file_is_empty_config() {
        let dir = temp_dir("missing");
        let path = dir.path().join("config.toml");
        let (config, warnings) = load(&path).unwrap();
        assert_eq!(config.source, ConfigSource::Missing(path.clone()));
        assert_eq!(config.source.path(), path);
        assert!(config.providers.is_empty());
        assert!(warnings.is_empty());
    }

    #[test]
    fn load_reads_file_and_reports_errors_with_path() {
        let dir = temp_dir("load");
        let path = dir.path().join("config.toml");
        std::fs::write(&path, EXAMPLE).unwrap();
        let (config, _) = load(&path).unwrap();
        assert_eq!(config.source, ConfigSource::File(path.clone()));
        assert_eq!(config.providers.len(), 2);

        std::fs::write(&path, "[providers.a]\nkind = \"oauth\"\n").unwrap();
        let message = load(&path).unwrap_err().to_string();
        assert!(
            message.starts_with(&format!("{}:2: ", path.display())),
            "{message}"
        );
    }

    #[test]
    fn load_rejects_non_utf8() {
        let dir = temp_dir("utf8");
        let path = dir.path().join("config.toml");
        std::fs::write(&path, b"[providers.a]\nkind = \"st\xffatic\"\n").unwrap();
        let error = load(&path).unwrap_err();
        assert!(
            matches!(error, ConfigError::NotUtf8 { line: 2, .. }),
            "{error}"
        );
        let message = error.to_string();
        assert!(
            message.contains(&format!("{}:2:", path.display())),
            "{message}"
        );
        assert!(message.contains("UTF-8"), "{message}");
    }

    #[test]
    fn load_directory_is_read_error() {
        let dir = temp_dir("dir");
        let error = load(dir.path()).unwrap_err();
        assert!(matches!(error, ConfigError::Read { .. }), "{error}");
        assert!(
            error
                .to_string()
                .contains(&dir.path().display().to_string()),
            "{error}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn load_warns_about_readable_file_with_literal_secret() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir("mode");
        let path = dir.path().join("config.toml");
        let set_mode = |mode| {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        let literal = format!("[providers.lit]\nkind = \"static\"\nsecret = \"{SECRET}\"\n");

        std::fs::write(&path, &literal).unwrap();
        set_mode(0o644);
        let (_, warnings) = load(&path).unwrap();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        let mode_warning = &warnings[1];
        assert_eq!(mode_warning.line, 3);
        assert!(
            mode_warning
                .message
                .contains(&format!("run chmod 600 {}", path.display())),
            "{mode_warning}"
        );
        assert!(mode_warning.message.contains("0644"), "{mode_warning}");
        assert!(!format!("{warnings:?}").contains(SECRET));

        set_mode(0o600);
        let (_, warnings) = load(&path).unwrap();
        assert_eq!(warnings.len(), 1, "only the literal warning: {warnings:?}");

        // Readable but without a literal secret: nothing to protect.
        std::fs::write(&path, EXAMPLE).unwrap();
        set_mode(0o644);
        let (_, warnings) = load(&path).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");

        set_mode(0o664);
        let (_, warnings) = load(&path).unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].message.contains("writable by group or others"));
        assert_eq!(warnings[0].line, 0);
    }

    #[test]
    fn resolve_path_order() {
        let explicit = Path::new("/explicit/config.toml");
        let with_env = |name: &str| (name == CONFIG_ENV).then(|| OsString::from("/from/env.toml"));
        let empty_env = |name: &str| (name == CONFIG_ENV).then(OsString::new);
        let no_env = |_: &str| None;

        assert_eq!(
            resolve_path(Some(explicit), &with_env).unwrap(),
            PathBuf::from("/explicit/config.toml")
        );
        assert_eq!(
            resolve_path(None, &with_env).unwrap(),
            PathBuf::from("/from/env.toml")
        );
        // Empty TOKEND_CONFIG is ignored like an unset one.
        for env in [&empty_env as &dyn Fn(&str) -> Option<OsString>, &no_env] {
            match resolve_path(None, env) {
                Ok(path) => assert!(path.ends_with("tokend/config.toml"), "{}", path.display()),
                Err(error) => assert!(matches!(error, ConfigError::NoConfigDir)),
            }
        }
    }

    #[test]
    fn hints_list_what_the_format_allows() {
        let schemes: Vec<&str> = Scheme::ALL.iter().map(|scheme| scheme.as_str()).collect();
        assert!(UNKNOWN_SCHEME_HINT.ends_with(&schemes.join(", ")));
        // Each key set's hint lists exactly its keys.
        for set in [
            &STATIC_KEYS,
            &ANONYMOUS_KEYS,
            &OAUTH2_KEYS,
            &HTTP_KEYS,
            &TIMEKIT_KEYS,
            &CRM_KEYS,
            &SALESTIM_KEYS,
            &BASIC_KEYS,
            &OK_KEYS,
        ] {
            let listed = set.hint.split("known keys: ").nth(1).unwrap();
            assert_eq!(listed, set.keys.join(", "), "{}", set.hint);
        }
        // Every key the static hint lists is accepted (this one has them all).
        let (config, _) = parse_ok(
            "[providers.a]\nkind = \"static\"\nsecret = \"${env:X}\"\nheader = \"H\"\n\
             scheme = \"basic\"\nbasic_user = \"u\"\n",
        );
        assert_eq!(config.providers["a"].kind.name(), "static");
        // The kind hints list every kind, the preset hints every preset.
        for kind in ["static", "anonymous", "oauth2", "http"] {
            assert!(UNKNOWN_KIND_HINT.contains(kind), "{kind}");
            assert!(MISSING_KIND_HINT.contains(kind), "{kind}");
        }
        assert!(UNKNOWN_KIND_HINT.starts_with("use one of: static, anonymous, oauth2, http"));
        for preset in ["timekit", "crm.com", "salestim"] {
            assert!(UNKNOWN_PRESET_HINT.contains(preset), "{preset}");
            assert!(MISSING_KIND_HINT.contains(preset), "{preset}");
        }
        assert!(UNKNOWN_GRANT_HINT.ends_with("authorization_code, device_code, jwt_bearer"));
        // The timeout hint states the real limit.
        let limit = format!("to {}s,", MAX_TIMEOUT.as_secs());
        assert!(TIMEOUT_HINT.contains(&limit), "{TIMEOUT_HINT}");
    }

    #[test]
    fn http_token_check() {
        for good in [
            "Authorization",
            "X-API-KEY",
            "PRIVATE-TOKEN",
            "a!#$%&'*+-.^_`|~9",
        ] {
            assert!(is_http_token(good), "{good}");
        }
        for bad in ["", "X API", "X:Y", "X\tY", "X\r\nY", "Ä", "(x)", "a/b"] {
            assert!(!is_http_token(bad), "{bad:?}");
        }
    }

    /// Runs error cases: description, config text, expected line, expected key, expected
    /// fragment. Every message names the file and line, is one line, and never shows `SECRET`.
    fn check_errors(cases: &[(&str, String, usize, Option<&str>, &str)]) {
        let mut failures = Vec::new();
        for (what, text, line, key, fragment) in cases {
            let error = parse_err(text);
            let message = error.to_string();
            let ok = message.starts_with(&format!("{PATH}:{line}: "))
                && key.is_none_or(|key| message.contains(key))
                && message.contains(fragment)
                && !message.contains('\n')
                && !message.contains(SECRET)
                && !format!("{error:?}").contains(SECRET);
            if !ok {
                failures.push(format!("{what}: {message}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    fn tpl(text: &str) -> SecretTemplate {
        SecretTemplate::parse(text).unwrap()
    }

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    fn json_str(text: &str) -> JsonTemplate {
        JsonTemplate::String(tpl(text))
    }

    fn object(fields: &[(&str, JsonTemplate)]) -> JsonTemplate {
        JsonTemplate::Object(
            fields
                .iter()
                .map(|(name, value)| ((*name).to_owned(), value.clone()))
                .collect(),
        )
    }

    fn http(config: &Config, name: &str) -> HttpExchange {
        match &config.providers[name].kind {
            ProviderKind::Http(exchange) => exchange.clone(),
            other => panic!("{name}: expected kind http, got {other:?}"),
        }
    }

    const NEW_KINDS: &str = r#"
[providers.store]               # SalesTim anonymous access
kind = "anonymous"

[providers.api]                 # OAuth 2.0 client credentials
kind = "oauth2"
grant = "client_credentials"
token_url = "https://auth.example.com/oauth/token"
client_id = "svc"
client_secret = "${env:API_SECRET}"
client_auth = "basic"
scopes = ["api.read"]
params = { audience = "https://api.example.com" }
ttl = "1h"

[providers.refreshing]
kind = "oauth2"
grant = "refresh_token"
token_url = "https://auth.example.com/oauth/token"
client_id = "cli"
refresh_token = "${env:MY_REFRESH_TOKEN}"

[providers.exchange]
kind = "http"
method = "post"
url = "https://api.example.com/token"
basic = { user = "${env:KEY}", password = "" }
headers = { "Some-Header" = "value" }
json = { any = { nested = "${env:X}" } }
token = "/data/token"
expires = "jwt"
ttl = "2h"
ok = { pointer = "/status/code", equals = "OK", message = "/status/description" }
"#;

    #[test]
    fn new_kinds_parse() {
        let (config, warnings) = parse_ok(NEW_KINDS);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(config.providers.len(), 4);

        let store = &config.providers["store"];
        assert_eq!(store.kind, ProviderKind::Anonymous);
        assert_eq!(store.kind.name(), "anonymous");
        assert_eq!(store.presentation, Presentation::default());

        let api = &config.providers["api"];
        assert_eq!(
            api.kind,
            ProviderKind::OAuth2(OAuth2Config {
                grant: OAuth2Grant::ClientCredentials,
                endpoint: TokenEndpoint::TokenUrl(url("https://auth.example.com/oauth/token")),
                client_id: "svc".to_owned(),
                client_secret: Some(tpl("${env:API_SECRET}")),
                client_auth: ClientAuth::Basic,
                scopes: vec!["api.read".to_owned()],
                params: vec![("audience".to_owned(), "https://api.example.com".to_owned())],
                ttl: Some(Duration::from_secs(3600)),
                timeout: None,
                revocation_url: None,
                signing_key: None,
            })
        );
        assert_eq!(api.presentation, Presentation::default());

        assert_eq!(
            config.providers["refreshing"].kind,
            ProviderKind::OAuth2(OAuth2Config {
                grant: OAuth2Grant::RefreshToken {
                    refresh_token: tpl("${env:MY_REFRESH_TOKEN}"),
                },
                endpoint: TokenEndpoint::TokenUrl(url("https://auth.example.com/oauth/token")),
                client_id: "cli".to_owned(),
                client_secret: None,
                client_auth: ClientAuth::Basic,
                scopes: Vec::new(),
                params: Vec::new(),
                ttl: None,
                timeout: None,
                revocation_url: None,
                signing_key: None,
            })
        );

        assert_eq!(
            http(&config, "exchange"),
            HttpExchange {
                method: HttpMethod::Post,
                url: url("https://api.example.com/token"),
                basic: Some(BasicPair {
                    user: tpl("${env:KEY}"),
                    password: tpl(""),
                }),
                headers: vec![("Some-Header".to_owned(), tpl("value"))],
                body: Some(HttpBody::Json(object(&[(
                    "any",
                    object(&[("nested", json_str("${env:X}"))]),
                )]))),
                token: "/data/token".to_owned(),
                expires: ExpiresFrom::Jwt,
                ttl: Some(Duration::from_secs(7200)),
                ok: Some(OkCheck {
                    pointer: "/status/code".to_owned(),
                    equals: "OK".to_owned(),
                    message: Some("/status/description".to_owned()),
                }),
                timeout: None,
            }
        );
        assert_eq!(
            config.providers["exchange"].presentation,
            Presentation::default()
        );
    }

    #[test]
    fn oauth2_variants() {
        let (config, warnings) = parse_ok(
            r#"
[providers.issuer]
kind = "oauth2"
grant = "client_credentials"
issuer = "https://login.example.com/tenant/v2.0"
client_id = "svc"
client_secret = "${file:~/.secret}"
client_auth = "post"
scopes = ["a", "b:c/d"]
header = "X-Token"

[providers.public]
kind = "oauth2"
grant = "refresh_token"
token_url = "http://127.0.0.1:8080/token"
client_id = "cli"
refresh_token = "${cmd:pass show rt}"
params = { resource = "r", audience = "a" }
"#,
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        let ProviderKind::OAuth2(issuer) = &config.providers["issuer"].kind else {
            panic!("{config:?}");
        };
        assert_eq!(
            issuer.endpoint,
            TokenEndpoint::Issuer(url("https://login.example.com/tenant/v2.0"))
        );
        assert_eq!(issuer.client_auth, ClientAuth::Post);
        assert_eq!(issuer.scopes, ["a", "b:c/d"]);
        // A custom header carries the bare token, as for every kind.
        assert_eq!(config.providers["issuer"].presentation.scheme, Scheme::Raw);

        let ProviderKind::OAuth2(public) = &config.providers["public"].kind else {
            panic!("{config:?}");
        };
        assert_eq!(public.client_secret, None);
        assert_eq!(
            public.endpoint,
            TokenEndpoint::TokenUrl(url("http://127.0.0.1:8080/token"))
        );
        // In file order, not sorted.
        assert_eq!(
            public.params,
            [
                ("resource".to_owned(), "r".to_owned()),
                ("audience".to_owned(), "a".to_owned())
            ]
        );
    }

    #[test]
    fn http_variants() {
        let (config, warnings) = parse_ok(
            r#"
[providers.get]
kind = "http"
url = "https://api.example.com/token?x=1"
token = "/token"

[providers.form]
kind = "http"
url = "http://localhost/token"
form = { z = "${env:Z}", a = "", m = "plain" }
token = ""
expires = "/expires_in"
headers = { "X-B" = "b", "X-A" = "${env:A}" }
basic = { user = "${env:U}", password = "${env:PW}" }
ok = { pointer = "/code", equals = 0 }

[providers.get-upper]
kind = "http"
method = "GET"
url = "https://api.example.com/"
token = "/t"
ok = { pointer = "/ok", equals = true }

[providers.post-lower]
kind = "http"
method = "Post"
url = "https://api.example.com/"
token = "/t"
"#,
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            http(&config, "get"),
            HttpExchange {
                method: HttpMethod::Get,
                url: url("https://api.example.com/token?x=1"),
                basic: None,
                headers: Vec::new(),
                body: None,
                token: "/token".to_owned(),
                expires: ExpiresFrom::Unknown,
                ttl: None,
                ok: None,
                timeout: None,
            }
        );
        assert_eq!(
            http(&config, "form"),
            HttpExchange {
                method: HttpMethod::Post,
                url: url("http://localhost/token"),
                basic: Some(BasicPair {
                    user: tpl("${env:U}"),
                    password: tpl("${env:PW}"),
                }),
                headers: vec![
                    ("X-B".to_owned(), tpl("b")),
                    ("X-A".to_owned(), tpl("${env:A}")),
                ],
                body: Some(HttpBody::Form(vec![
                    ("z".to_owned(), tpl("${env:Z}")),
                    ("a".to_owned(), tpl("")),
                    ("m".to_owned(), tpl("plain")),
                ])),
                token: String::new(),
                expires: ExpiresFrom::Pointer("/expires_in".to_owned()),
                ttl: None,
                ok: Some(OkCheck {
                    pointer: "/code".to_owned(),
                    equals: "0".to_owned(),
                    message: None,
                }),
                timeout: None,
            }
        );
        let get_upper = http(&config, "get-upper");
        assert_eq!(get_upper.method, HttpMethod::Get);
        assert_eq!(get_upper.ok.unwrap().equals, "true");
        assert_eq!(http(&config, "post-lower").method, HttpMethod::Post);
    }

    #[test]
    fn json_body_is_any_toml_tree() {
        let (config, _) = parse_ok(
            r#"
[providers.j]
kind = "http"
url = "https://api.example.com/"
token = "/t"

[providers.j.json]
zeta = "${env:Z}"
alpha = [1, -2, 0xff, 1_000, 2.5, true, "$${literal}", [], {}]
nested.deeper = { b = false, a = "x" }
"#,
        );
        let body = http(&config, "j").body;
        let expected = object(&[
            ("zeta", json_str("${env:Z}")),
            (
                "alpha",
                JsonTemplate::Array(vec![
                    JsonTemplate::Integer(1),
                    JsonTemplate::Integer(-2),
                    JsonTemplate::Integer(255),
                    JsonTemplate::Integer(1000),
                    JsonTemplate::Float(2.5),
                    JsonTemplate::Bool(true),
                    json_str("$${literal}"),
                    JsonTemplate::Array(Vec::new()),
                    JsonTemplate::Object(Vec::new()),
                ]),
            ),
            (
                "nested",
                object(&[(
                    "deeper",
                    object(&[("b", JsonTemplate::Bool(false)), ("a", json_str("x"))]),
                )]),
            ),
        ]);
        assert_eq!(body, Some(HttpBody::Json(expected)));

        // A JSON body that is not an object is still JSON.
        let (config, _) = parse_ok(
            "[providers.j]\nkind = \"http\"\nurl = \"https://a.example/\"\ntoken = \"/t\"\n\
             json = [\"${env:A}\", 1]\n",
        );
        assert_eq!(
            http(&config, "j").body,
            Some(HttpBody::Json(JsonTemplate::Array(vec![
                json_str("${env:A}"),
                JsonTemplate::Integer(1)
            ])))
        );
    }

    #[test]
    fn timekit_preset_expands() {
        let timekit = |base_url: &str| {
            format!(
                "[providers.tk]\npreset = \"timekit\"\napp = \"back-to-the-future\"\n\
                 email = \"${{env:TK_EMAIL}}\"\napi_key = \"${{env:TK_KEY}}\"\n{base_url}"
            )
        };
        let expected = |request_url: &str| HttpExchange {
            method: HttpMethod::Get,
            url: url(request_url),
            basic: Some(BasicPair {
                user: tpl("${env:TK_EMAIL}"),
                password: tpl("${env:TK_KEY}"),
            }),
            headers: vec![
                ("Content-Type".to_owned(), tpl("application/json")),
                ("Timekit-App".to_owned(), tpl("back-to-the-future")),
            ],
            body: None,
            token: "/data/app_token/0/token".to_owned(),
            expires: ExpiresFrom::Unknown,
            ttl: None,
            ok: None,
            timeout: None,
        };
        for (base_url, request_url) in [
            ("", "https://api.timekit.io/v2/app?include=app_token"),
            (
                "base_url = \"https://api.timekit.io\"",
                "https://api.timekit.io/v2/app?include=app_token",
            ),
            (
                "base_url = \"https://api.timekit.io/\"",
                "https://api.timekit.io/v2/app?include=app_token",
            ),
            (
                "base_url = \"http://127.0.0.1:9000/mock/\"",
                "http://127.0.0.1:9000/mock/v2/app?include=app_token",
            ),
            (
                "base_url = \"http://127.0.0.1:9000/mock\"",
                "http://127.0.0.1:9000/mock/v2/app?include=app_token",
            ),
        ] {
            let (config, warnings) = parse_ok(&timekit(base_url));
            assert!(warnings.is_empty(), "{warnings:?}");
            assert_eq!(http(&config, "tk"), expected(request_url), "{base_url}");
            let presentation = &config.providers["tk"].presentation;
            assert_eq!(
                *presentation,
                Presentation {
                    header: "Authorization".to_owned(),
                    scheme: Scheme::Basic,
                    basic_user: String::new(),
                }
            );
            // `Authorization: Basic base64(":" + token)`, as Timekit documents.
            assert_eq!(
                presentation
                    .header_value(&Secret::from("live_api_key_7nzv"))
                    .expose(),
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(":live_api_key_7nzv")
                )
            );
        }

        // A slug that looks like a reference is sent as written.
        let (config, _) = parse_ok(
            "[providers.tk]\npreset = \"timekit\"\napp = \"${env:NOT_A_REF}\"\n\
             email = \"doc@example.com\"\napi_key = \"${env:K}\"\n",
        );
        assert_eq!(
            http(&config, "tk").headers[1],
            ("Timekit-App".to_owned(), tpl("$${env:NOT_A_REF}"))
        );
    }

    #[test]
    fn crm_preset_expands() {
        let crm = |identify: &str| {
            format!(
                "[providers.crm]\npreset = \"crm.com\"\n\
                 base_url = \"https://crm.example.com/crmapi/rest/v2\"\n\
                 api_key = \"${{env:CRM_KEY}}\"\n{identify}"
            )
        };
        let access = |fields: &[(&str, JsonTemplate)]| ("access_token_identifier", object(fields));
        let cases = [
            (
                "authentication_code = \"${env:CODE}\"\nunit = \"1\"\n",
                object(&[
                    access(&[("authentication_code", json_str("${env:CODE}"))]),
                    ("unit", json_str("1")),
                ]),
            ),
            (
                "authentication_code = \"${env:CODE}\"\n",
                object(&[access(&[("authentication_code", json_str("${env:CODE}"))])]),
            ),
            (
                "pass_code = \"${env:PASS}\"\nidentifier = \"card-1\"\n",
                object(&[access(&[
                    ("identifier", json_str("card-1")),
                    ("pass_code", json_str("${env:PASS}")),
                ])]),
            ),
            (
                "identifier = \"${env:ID}\"\npass_code = \"${env:PASS}\"\nunit = \"U\"\n",
                object(&[
                    access(&[
                        ("identifier", json_str("${env:ID}")),
                        ("pass_code", json_str("${env:PASS}")),
                    ]),
                    ("unit", json_str("U")),
                ]),
            ),
            (
                "jwt = \"${cmd:idm-token}\"\norganisation = \"org-7\"\n",
                object(&[
                    ("jwt", json_str("${cmd:idm-token}")),
                    ("organisation", json_str("org-7")),
                ]),
            ),
            (
                "organisation = \"${x}\"\njwt = \"${env:JWT}\"\nunit = \"2\"\n",
                object(&[
                    ("jwt", json_str("${env:JWT}")),
                    // Plain text, sent as written.
                    ("organisation", json_str("$${x}")),
                    ("unit", json_str("2")),
                ]),
            ),
        ];
        for (identify, body) in cases {
            let (config, warnings) = parse_ok(&crm(identify));
            assert!(warnings.is_empty(), "{warnings:?}");
            assert_eq!(
                http(&config, "crm"),
                HttpExchange {
                    method: HttpMethod::Post,
                    url: url("https://crm.example.com/crmapi/rest/v2/authentication/\
                         consumer_application_key/token"),
                    basic: Some(BasicPair {
                        user: tpl("${env:CRM_KEY}"),
                        password: tpl(""),
                    }),
                    headers: Vec::new(),
                    body: Some(HttpBody::Json(body)),
                    token: "/data/token".to_owned(),
                    expires: ExpiresFrom::Jwt,
                    ttl: Some(Duration::from_secs(2 * 3600)),
                    ok: Some(OkCheck {
                        pointer: "/status/code".to_owned(),
                        equals: "OK".to_owned(),
                        message: Some("/status/description".to_owned()),
                    }),
                    timeout: None,
                },
                "{identify}"
            );
            assert_eq!(
                config.providers["crm"].presentation,
                Presentation {
                    header: "authorization".to_owned(),
                    scheme: Scheme::Raw,
                    basic_user: String::new(),
                }
            );
        }
    }

    #[test]
    fn salestim_preset_and_presentation_overrides() {
        let (config, warnings) = parse_ok(
            r#"
[providers.st]
preset = "salestim"
api_key = "${env:SALESTIM_API_KEY}"

[providers.st-bearer]
preset = "salestim"
api_key = "${env:SALESTIM_API_KEY}"
header = "Authorization"
scheme = "bearer"

[providers.tk-user]
preset = "timekit"
app = "a"
email = "${env:E}"
api_key = "${env:K}"
basic_user = "someone"

[providers.crm-header]
preset = "crm.com"
base_url = "https://crm.example.com/"
api_key = "${env:K}"
authentication_code = "${env:C}"
header = "X-Crm-Token"
"#,
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        let st = &config.providers["st"];
        assert_eq!(
            st.kind,
            ProviderKind::Static {
                secret: tpl("${env:SALESTIM_API_KEY}")
            }
        );
        assert_eq!(
            st.presentation,
            Presentation {
                header: "X-API-KEY".to_owned(),
                scheme: Scheme::Raw,
                basic_user: String::new(),
            }
        );
        assert_eq!(
            config.providers["st-bearer"].presentation,
            Presentation::default()
        );
        let tk = &config.providers["tk-user"].presentation;
        assert_eq!(
            (tk.scheme, tk.basic_user.as_str()),
            (Scheme::Basic, "someone")
        );
        // A preset's scheme stays unless `scheme` is set.
        let crm = &config.providers["crm-header"].presentation;
        assert_eq!(
            (crm.header.as_str(), crm.scheme),
            ("X-Crm-Token", Scheme::Raw)
        );
        assert_eq!(
            http(&config, "crm-header").url,
            url("https://crm.example.com/authentication/consumer_application_key/token")
        );
    }

    #[test]
    fn literal_credentials_warn_without_leaking() {
        let text = format!(
            r#"[providers.o]
kind = "oauth2"
grant = "refresh_token"
token_url = "https://a.example/token"
client_id = "not-a-secret"
client_secret = "{SECRET}1"
refresh_token = "{SECRET}2"
params = {{ audience = "plain" }}

[providers.h]
kind = "http"
url = "https://a.example/"
token = "/t"
basic = {{ user = "{SECRET}3", password = "{SECRET}4" }}
headers = {{ X-Plain = "value" }}
json = {{ a = "text" }}

[providers.crm]
preset = "crm.com"
base_url = "https://crm.example.com/"
api_key = "{SECRET}5"
identifier = "card"
pass_code = "{SECRET}6"

[providers.crm2]
preset = "crm.com"
base_url = "https://crm.example.com/"
api_key = "${{env:K}}"
authentication_code = "{SECRET}7"

[providers.crm3]
preset = "crm.com"
base_url = "https://crm.example.com/"
api_key = "${{env:K}}"
jwt = "{SECRET}8"
organisation = "org"

[providers.tk]
preset = "timekit"
app = "slug"
email = "me@example.com"
api_key = "{SECRET}9"

[providers.st]
preset = "salestim"
api_key = "{SECRET}10"

[providers.empty-password]
kind = "http"
url = "https://a.example/"
token = "/t"
basic = {{ user = "${{env:U}}", password = "" }}
"#
        );
        let (_, warnings) = parse_ok(&text);
        let got: Vec<(usize, &str)> = warnings
            .iter()
            .map(|warning| {
                let key = warning.message.split('`').nth(1).unwrap();
                (warning.line, key)
            })
            .collect();
        assert_eq!(
            got,
            [
                (6, "client_secret"),
                (7, "refresh_token"),
                (14, "basic.user"),
                (14, "basic.password"),
                (21, "api_key"),
                (23, "pass_code"),
                (29, "authentication_code"),
                (35, "jwt"),
                (42, "api_key"),
                (46, "api_key"),
            ]
        );
        for warning in &warnings {
            assert!(!warning.to_string().contains(SECRET), "{warning}");
            assert!(warning.message.contains("literal secret"), "{warning}");
        }
    }

    #[test]
    fn literal_template_escapes_references() {
        for text in [
            "",
            "plain",
            "${env:X}",
            "$${",
            "$$${",
            "a$",
            "$",
            "}${",
            "x${y}z$${",
        ] {
            let template = literal_template(text);
            assert!(template.is_literal(), "{text}");
            let escaped = text.replace("${", "$${");
            assert_eq!(template, tpl(&escaped), "{text}");
        }
    }

    #[test]
    fn timeout_for_token_kinds_and_presets() {
        let (config, warnings) = parse_ok(
            r#"
[providers.oauth]
kind = "oauth2"
grant = "client_credentials"
token_url = "https://auth.example.com/token"
client_id = "svc"
client_secret = "${env:S}"
timeout = "5s"

[providers.exchange]
kind = "http"
url = "https://api.example.com/token"
token = "/token"
timeout = "2m"

[providers.tk]
preset = "timekit"
app = "a"
email = "${env:E}"
api_key = "${env:K}"
timeout = "30"

[providers.crm]
preset = "crm.com"
base_url = "https://crm.example.com/"
api_key = "${env:K}"
authentication_code = "${env:C}"
timeout = "120s"

[providers.default]
kind = "http"
url = "https://api.example.com/token"
token = "/token"
"#,
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        let ProviderKind::OAuth2(oauth) = &config.providers["oauth"].kind else {
            panic!("{config:?}");
        };
        assert_eq!(oauth.timeout, Some(Duration::from_secs(5)));
        assert_eq!(
            http(&config, "exchange").timeout,
            Some(Duration::from_secs(120))
        );
        assert_eq!(http(&config, "tk").timeout, Some(Duration::from_secs(30)));
        // The rest of a preset's expansion is unchanged by a timeout.
        let crm = http(&config, "crm");
        assert_eq!(crm.timeout, Some(MAX_TIMEOUT));
        assert_eq!(crm.ttl, Some(CRM_TTL));
        assert_eq!(http(&config, "default").timeout, None);
    }

    #[test]
    fn timeout_errors_name_file_line_and_key() {
        // `timeout` is always on line 7.
        let oauth2 = |value: &str| {
            format!(
                "[providers.a]\nkind = \"oauth2\"\ngrant = \"client_credentials\"\n\
                 token_url = \"https://a.example/token\"\nclient_id = \"svc\"\n\
                 client_secret = \"${{env:S}}\"\ntimeout = {value}\n"
            )
        };
        let http = |value: &str| {
            format!(
                "[providers.a]\nkind = \"http\"\nurl = \"https://a.example/t\"\n\
                 token = \"/t\"\n\n\ntimeout = {value}\n"
            )
        };
        let timekit = |value: &str| {
            format!(
                "[providers.a]\npreset = \"timekit\"\napp = \"a\"\nemail = \"e\"\n\
                 api_key = \"${{env:K}}\"\n\ntimeout = {value}\n"
            )
        };
        let crm = |value: &str| {
            format!(
                "[providers.a]\npreset = \"crm.com\"\nbase_url = \"https://c.example/\"\n\
                 api_key = \"${{env:K}}\"\nauthentication_code = \"${{env:C}}\"\n\n\
                 timeout = {value}\n"
            )
        };
        let key = Some("[providers.a] key `timeout`");
        let mut cases: Vec<(&str, String, usize, Option<&str>, &str)> = Vec::new();
        for (kind, config) in [
            ("oauth2", &oauth2 as &dyn Fn(&str) -> String),
            ("http", &http),
            ("timekit", &timekit),
            ("crm.com", &crm),
        ] {
            cases.extend([
                (
                    kind,
                    config("\"0s\""),
                    7,
                    key,
                    "zero lets no request finish",
                ),
                (kind, config("\"0\""), 7, key, "use at least 1s"),
                (
                    kind,
                    config("\"3m\""),
                    7,
                    key,
                    "`timeout` is 180s: at most 120s",
                ),
                (kind, config("\"121s\""), 7, key, "at most 120s"),
                (kind, config("\"soon\""), 7, key, "not a duration"),
                (kind, config("\"5w\""), 7, key, "unknown unit"),
                (
                    kind,
                    config("5"),
                    7,
                    key,
                    "expected a string, found an integer",
                ),
                (
                    kind,
                    config("\"5s\"\ntimeout2 = \"1s\""),
                    8,
                    None,
                    "timeout2",
                ),
            ]);
        }
        // The hint gives the accepted range.
        cases.push(("zero hint", http("\"0s\""), 7, key, "from 1s to 120s"));
        cases.push(("long hint", crm("\"1h\""), 7, key, "from 1s to 120s"));
        // Not for kinds and presets that make no request.
        cases.extend([
            (
                "static",
                "[providers.a]\nkind = \"static\"\nsecret = \"${env:S}\"\ntimeout = \"5s\"\n"
                    .to_owned(),
                4,
                key,
                "unknown key for kind \"static\"",
            ),
            (
                "anonymous",
                "[providers.a]\nkind = \"anonymous\"\ntimeout = \"5s\"\n".to_owned(),
                3,
                key,
                "unknown key for kind \"anonymous\"",
            ),
            (
                "salestim",
                "[providers.a]\npreset = \"salestim\"\napi_key = \"${env:K}\"\ntimeout = \"5s\"\n"
                    .to_owned(),
                4,
                key,
                "unknown key for preset \"salestim\"",
            ),
        ]);
        check_errors(&cases);
    }

    /// Every rule of the new kinds and presets.
    #[test]
    fn new_kind_errors_name_file_line_and_key() {
        let oauth2 = |rest: &str| {
            format!(
                "[providers.a]\nkind = \"oauth2\"\ngrant = \"client_credentials\"\n\
                 client_id = \"svc\"\n{rest}"
            )
        };
        // Lines 1-4 fixed; `rest` starts on line 5.
        let cc = |rest: &str| {
            oauth2(&format!(
                "token_url = \"https://a.example/token\"\nclient_secret = \"${{env:S}}\"\n{rest}"
            ))
        };
        // Lines 1-3 fixed; `rest` starts on line 4.
        let http = |rest: &str| {
            format!("[providers.a]\nkind = \"http\"\nurl = \"https://a.example/t\"\n{rest}")
        };
        let http_t = |rest: &str| http(&format!("token = \"/t\"\n{rest}"));
        let crm = |rest: &str| {
            format!(
                "[providers.a]\npreset = \"crm.com\"\nbase_url = \"https://c.example/\"\n\
                 api_key = \"${{env:K}}\"\n{rest}"
            )
        };
        let cases: &[(&str, String, usize, Option<&str>, &str)] = &[
            // kind / preset
            (
                "kind and preset",
                "[providers.a]\nkind = \"static\"\npreset = \"salestim\"\n".to_owned(),
                3,
                Some("[providers.a] key `preset`"),
                "both `kind` and `preset` are set",
            ),
            (
                "preset and kind",
                "[providers.a]\npreset = \"salestim\"\nkind = \"static\"\n".to_owned(),
                3,
                Some("[providers.a] key `kind`"),
                "both `kind` and `preset` are set",
            ),
            (
                "unknown preset",
                "[providers.a]\n\npreset = \"timekit2\"\n".to_owned(),
                3,
                Some("[providers.a] key `preset`"),
                "use one of: timekit, crm.com, salestim",
            ),
            (
                "preset not a string",
                "[providers.a]\npreset = [\"timekit\"]\n".to_owned(),
                2,
                Some("[providers.a] key `preset`"),
                "expected a string, found an array",
            ),
            (
                "missing kind mentions presets",
                "[providers.a]\napi_key = \"${env:K}\"\n".to_owned(),
                1,
                Some("[providers.a] key `kind`"),
                "known presets: timekit, crm.com, salestim",
            ),
            (
                "unknown kind lists new kinds",
                "[providers.a]\nkind = \"oauth\"\n".to_owned(),
                2,
                Some("[providers.a] key `kind`"),
                "use one of: static, anonymous, oauth2, http",
            ),
            // anonymous
            (
                "anonymous with header",
                "[providers.a]\nkind = \"anonymous\"\nheader = \"X-Key\"\n".to_owned(),
                3,
                Some("[providers.a] key `header`"),
                "no meaning for kind \"anonymous\"",
            ),
            (
                "anonymous with scheme",
                "[providers.a]\nkind = \"anonymous\"\n\nscheme = \"raw\"\n".to_owned(),
                4,
                Some("[providers.a] key `scheme`"),
                "no meaning for kind \"anonymous\"",
            ),
            (
                "anonymous with basic_user",
                "[providers.a]\nkind = \"anonymous\"\nbasic_user = \"u\"\n".to_owned(),
                3,
                Some("[providers.a] key `basic_user`"),
                "sends no header at all",
            ),
            (
                "anonymous with secret",
                format!("[providers.a]\nkind = \"anonymous\"\nsecret = \"{SECRET}\"\n"),
                3,
                Some("[providers.a] key `secret`"),
                "remove it or fix its spelling; known keys: kind",
            ),
            // oauth2
            (
                "oauth2 unknown key",
                cc(&format!("secret = \"{SECRET}\"\n")),
                7,
                Some("[providers.a] key `secret`"),
                "remove it or fix its spelling; known keys: kind, \
                 grant, token_url",
            ),
            (
                "oauth2 without grant",
                "[providers.a]\nkind = \"oauth2\"\ntoken_url = \"https://a.example/\"\n".to_owned(),
                1,
                Some("[providers.a] key `grant`"),
                "add grant = \"client_credentials\" or grant = \"refresh_token\"",
            ),
            (
                "oauth2 unknown grant",
                "[providers.a]\nkind = \"oauth2\"\ngrant = \"password\"\n".to_owned(),
                3,
                Some("[providers.a] key `grant`"),
                "use one of: client_credentials, refresh_token",
            ),
            (
                "refresh_token with client_credentials",
                cc(&format!("\nrefresh_token = \"{SECRET}\"\n")),
                8,
                Some("[providers.a] key `refresh_token`"),
                "set grant = \"refresh_token\"",
            ),
            (
                "refresh_token grant without refresh_token",
                "[providers.a]\nkind = \"oauth2\"\ngrant = \"refresh_token\"\n".to_owned(),
                1,
                Some("[providers.a] key `refresh_token`"),
                "grant \"refresh_token\" needs a `refresh_token`",
            ),
            (
                "empty refresh_token",
                "[providers.a]\nkind = \"oauth2\"\ngrant = \"refresh_token\"\nrefresh_token = \"\"\n"
                    .to_owned(),
                4,
                Some("[providers.a] key `refresh_token`"),
                "`refresh_token` is empty",
            ),
            (
                "token_url and issuer",
                oauth2("token_url = \"https://a.example/t\"\nissuer = \"https://a.example\"\n"),
                6,
                Some("[providers.a] key `issuer`"),
                "`token_url` and `issuer` are both set",
            ),
            (
                "neither token_url nor issuer",
                oauth2("client_secret = \"${env:S}\"\n"),
                1,
                Some("[providers.a] key `token_url`"),
                "needs a `token_url` or an `issuer`",
            ),
            (
                "token_url not a URL",
                oauth2(&format!("token_url = \"{SECRET}\"\n")),
                5,
                Some("[providers.a] key `token_url`"),
                "`token_url` is not a valid URL",
            ),
            (
                "token_url not http",
                oauth2(&format!("token_url = \"ftp://host/{SECRET}\"\n")),
                5,
                Some("[providers.a] key `token_url`"),
                "not an http or https URL",
            ),
            (
                "token_url with credentials",
                oauth2(&format!("token_url = \"https://svc:{SECRET}@a.example/t\"\n")),
                5,
                Some("[providers.a] key `token_url`"),
                "has a user name or password in it",
            ),
            (
                "issuer with query",
                oauth2(&format!("issuer = \"https://a.example/?k={SECRET}\"\n")),
                5,
                Some("[providers.a] key `issuer`"),
                "`issuer` has a query or a fragment",
            ),
            (
                "missing client_id",
                "[providers.a]\nkind = \"oauth2\"\ngrant = \"client_credentials\"\n\
                 token_url = \"https://a.example/t\"\n"
                    .to_owned(),
                1,
                Some("[providers.a] key `client_id`"),
                "kind \"oauth2\" needs `client_id`",
            ),
            (
                "empty client_id",
                "[providers.a]\nkind = \"oauth2\"\ngrant = \"client_credentials\"\n\
                 token_url = \"https://a.example/t\"\nclient_id = \"\"\n"
                    .to_owned(),
                5,
                Some("[providers.a] key `client_id`"),
                "`client_id` is empty",
            ),
            (
                "client_credentials without client_secret",
                oauth2("token_url = \"https://a.example/t\"\n"),
                1,
                Some("[providers.a] key `client_secret`"),
                "grant \"client_credentials\" needs a `client_secret`",
            ),
            (
                "bad client_secret template",
                oauth2(&format!(
                    "token_url = \"https://a.example/t\"\nclient_secret = \"{SECRET}${{bad}}\"\n"
                )),
                6,
                Some("[providers.a] key `client_secret`"),
                "invalid secret",
            ),
            (
                "client_secret not a string",
                oauth2("token_url = \"https://a.example/t\"\nclient_secret = 42\n"),
                6,
                Some("[providers.a] key `client_secret`"),
                "expected a string, found an integer",
            ),
            (
                "unknown client_auth",
                cc("client_auth = \"jwt\"\n"),
                7,
                Some("[providers.a] key `client_auth`"),
                "use one of: basic, post",
            ),
            (
                "client_auth without client_secret",
                "[providers.a]\nkind = \"oauth2\"\ngrant = \"refresh_token\"\n\
                 refresh_token = \"${env:R}\"\ntoken_url = \"https://a.example/t\"\n\
                 client_id = \"cli\"\nclient_auth = \"post\"\n"
                    .to_owned(),
                7,
                Some("[providers.a] key `client_auth`"),
                "there is no `client_secret`",
            ),
            (
                "scopes not an array",
                cc("scopes = \"a b\"\n"),
                7,
                Some("[providers.a] key `scopes`"),
                "expected an array of strings, found a string",
            ),
            (
                "scope not a string",
                cc("scopes = [\n  \"a\",\n  1,\n]\n"),
                9,
                Some("[providers.a] key `scopes[1]`"),
                "expected a string, found an integer",
            ),
            (
                "scope with a space",
                cc("scopes = [\"a b\"]\n"),
                7,
                Some("[providers.a] key `scopes[0]`"),
                "not a valid scope name",
            ),
            (
                "params not a table",
                cc("params = \"audience=x\"\n"),
                7,
                Some("[providers.a] key `params`"),
                "expected a table, found a string",
            ),
            (
                "params overrides scope",
                cc("params = { audience = \"x\", scope = \"y\" }\n"),
                7,
                Some("[providers.a] key `params.scope`"),
                "a parameter tokend sets itself",
            ),
            (
                "params overrides client_secret",
                cc(&format!(
                    "[providers.a.params]\nclient_secret = \"{SECRET}\"\n"
                )),
                8,
                Some("[providers.a] key `params.client_secret`"),
                "a parameter tokend sets itself",
            ),
            (
                "params with an empty name",
                cc("params = { \"\" = \"x\" }\n"),
                7,
                Some("[providers.a] key `params.\"\"`"),
                "a parameter has an empty name",
            ),
            (
                "params value not a string",
                cc("params = { audience = 1 }\n"),
                7,
                Some("[providers.a] key `params.audience`"),
                "expected a string, found an integer",
            ),
            (
                "bad ttl",
                cc("ttl = \"1w\"\n"),
                7,
                Some("[providers.a] key `ttl`"),
                "unknown unit",
            ),
            (
                "zero ttl",
                cc("ttl = \"0s\"\n"),
                7,
                Some("[providers.a] key `ttl`"),
                "zero",
            ),
            (
                "ttl not a string",
                cc("ttl = 3600\n"),
                7,
                Some("[providers.a] key `ttl`"),
                "expected a string, found an integer",
            ),
            // http
            (
                "http unknown key",
                http_t("secret = \"x\"\n"),
                5,
                Some("[providers.a] key `secret`"),
                "remove it or fix its spelling; known keys: kind, \
                 method, url",
            ),
            (
                "http without url",
                "[providers.a]\nkind = \"http\"\ntoken = \"/t\"\n".to_owned(),
                1,
                Some("[providers.a] key `url`"),
                "kind \"http\" needs a `url`",
            ),
            (
                "http relative url",
                format!("[providers.a]\nkind = \"http\"\nurl = \"/token?{SECRET}\"\n"),
                3,
                Some("[providers.a] key `url`"),
                "`url` is not a valid URL",
            ),
            (
                "http non-http url",
                format!("[providers.a]\nkind = \"http\"\nurl = \"mailto:{SECRET}@x\"\n"),
                3,
                Some("[providers.a] key `url`"),
                "not an http or https URL",
            ),
            (
                "http without token",
                http(""),
                1,
                Some("[providers.a] key `token`"),
                "kind \"http\" needs a `token`",
            ),
            (
                "token not a pointer",
                http("token = \"data.token\"\n"),
                4,
                Some("[providers.a] key `token`"),
                "`token` is not a JSON pointer",
            ),
            (
                "unknown method",
                http_t("method = \"PUT\"\n"),
                5,
                Some("[providers.a] key `method`"),
                "use one of: GET, POST",
            ),
            (
                "GET with a json body",
                http_t("method = \"get\"\njson = { a = 1 }\n"),
                5,
                Some("[providers.a] key `method`"),
                "method GET cannot send a body",
            ),
            (
                "GET with a form body",
                http_t("form = { a = \"1\" }\nmethod = \"GET\"\n"),
                6,
                Some("[providers.a] key `method`"),
                "method GET cannot send a body",
            ),
            (
                "json and form",
                http_t("json = { a = 1 }\nform = { a = \"1\" }\n"),
                6,
                Some("[providers.a] key `form`"),
                "`json` and `form` are both set",
            ),
            (
                "basic not a table",
                http_t(&format!("basic = \"user:{SECRET}\"\n")),
                5,
                Some("[providers.a] key `basic`"),
                "expected a table, found a string",
            ),
            (
                "basic without user",
                http_t(&format!("basic = {{ password = \"{SECRET}\" }}\n")),
                5,
                Some("[providers.a] key `basic.user`"),
                "`basic` needs a `user`",
            ),
            (
                "basic unknown key",
                http_t(&format!("\n[providers.a.basic]\nuser = \"u\"\npasswd = \"{SECRET}\"\n")),
                8,
                Some("[providers.a] key `basic.passwd`"),
                "known keys: user, password",
            ),
            (
                "basic empty user",
                http_t("basic = { user = \"\", password = \"${env:P}\" }\n"),
                5,
                Some("[providers.a] key `basic.user`"),
                "`basic.user` is empty",
            ),
            (
                "basic user with colon",
                http_t(&format!("basic = {{ user = \"me:{SECRET}\" }}\n")),
                5,
                Some("[providers.a] key `basic.user`"),
                "`basic.user` contains `:`",
            ),
            (
                "basic password bad template",
                http_t(&format!(
                    "basic = {{ user = \"u\", password = \"{SECRET}${{env:}}\" }}\n"
                )),
                5,
                Some("[providers.a] key `basic.password`"),
                "invalid secret",
            ),
            (
                "headers not a table",
                http_t("headers = [\"X-A: b\"]\n"),
                5,
                Some("[providers.a] key `headers`"),
                "expected a table, found an array",
            ),
            (
                "header name with space",
                http_t("headers = { \"X A\" = \"b\" }\n"),
                5,
                Some("[providers.a] key `headers.\"X A\"`"),
                "not a valid HTTP header name",
            ),
            (
                "header name with newline stays on one line",
                http_t("headers = { \"X\\nA\" = \"b\" }\n"),
                5,
                Some("[providers.a] key `headers.\"X\\nA\"`"),
                "not a valid HTTP header name",
            ),
            (
                "Authorization header with basic",
                http_t("basic = { user = \"${env:U}\" }\nheaders = { authorization = \"x\" }\n"),
                6,
                Some("[providers.a] key `headers.authorization`"),
                "as well as `basic`",
            ),
            (
                "duplicate header",
                http_t("[providers.a.headers]\nX-Key = \"a\"\nx-key = \"b\"\n"),
                7,
                Some("[providers.a] key `headers.x-key`"),
                "given twice",
            ),
            (
                "empty header value",
                http_t("headers = { X-Key = \"\" }\n"),
                5,
                Some("[providers.a] key `headers.X-Key`"),
                "the header value is empty",
            ),
            (
                "header value not a string",
                http_t("headers = { X-Key = 1 }\n"),
                5,
                Some("[providers.a] key `headers.X-Key`"),
                "expected a string, found an integer",
            ),
            (
                "header value bad template",
                http_t(&format!("headers = {{ X-Key = \"{SECRET}${{file:}}\" }}\n")),
                5,
                Some("[providers.a] key `headers.X-Key`"),
                "invalid value",
            ),
            (
                "json datetime",
                http_t("[providers.a.json]\nwhen = 2024-01-31\n"),
                6,
                Some("[providers.a] key `json.when`"),
                "a TOML date or time",
            ),
            (
                "json datetime in array",
                http_t("json = { list = [\"a\", 07:30:00] }\n"),
                5,
                Some("[providers.a] key `json.list[1]`"),
                "a TOML date or time",
            ),
            (
                "json nan",
                http_t("json = { a = { b = nan } }\n"),
                5,
                Some("[providers.a] key `json.a.b`"),
                "not a finite number",
            ),
            (
                "json bad template",
                http_t(&format!("json = {{ a = {{ \"b c\" = \"{SECRET}${{cmd:\" }} }}\n")),
                5,
                Some("[providers.a] key `json.a.\"b c\"`"),
                "invalid value",
            ),
            (
                "form value not a string",
                http_t("form = { a = true }\n"),
                5,
                Some("[providers.a] key `form.a`"),
                "expected a string, found a boolean",
            ),
            (
                "form bad template",
                http_t(&format!("form = {{ a = \"${{env:{SECRET}\" }}\n")),
                5,
                Some("[providers.a] key `form.a`"),
                "invalid value",
            ),
            (
                "bad expires",
                http_t("expires = \"exp\"\n"),
                5,
                Some("[providers.a] key `expires`"),
                "neither \"jwt\" nor a JSON pointer",
            ),
            (
                "bad http ttl",
                http_t("ttl = \"soon\"\n"),
                5,
                Some("[providers.a] key `ttl`"),
                "not a duration",
            ),
            (
                "ok not a table",
                http_t("ok = \"/status\"\n"),
                5,
                Some("[providers.a] key `ok`"),
                "expected a table, found a string",
            ),
            (
                "ok without pointer",
                http_t("ok = { equals = \"OK\" }\n"),
                5,
                Some("[providers.a] key `ok.pointer`"),
                "`ok` needs a `pointer`",
            ),
            (
                "ok without equals",
                http_t("\n[providers.a.ok]\npointer = \"/s\"\n"),
                6,
                Some("[providers.a] key `ok.equals`"),
                "`ok` needs `equals`",
            ),
            (
                "ok equals a table",
                http_t("ok = { pointer = \"/s\", equals = {} }\n"),
                5,
                Some("[providers.a] key `ok.equals`"),
                "expected a string, integer or boolean, found a table",
            ),
            (
                "ok message not a pointer",
                http_t("ok = { pointer = \"/s\", equals = \"OK\", message = \"desc\" }\n"),
                5,
                Some("[providers.a] key `ok.message`"),
                "`ok.message` is not a JSON pointer",
            ),
            (
                "ok unknown key",
                http_t("ok = { pointer = \"/s\", equal = \"OK\" }\n"),
                5,
                Some("[providers.a] key `ok.equal`"),
                "known keys: pointer, equals, message",
            ),
            (
                "http bad scheme",
                http_t("scheme = \"digest\"\n"),
                5,
                Some("[providers.a] key `scheme`"),
                "use one of: bearer, basic, raw",
            ),
            // timekit
            (
                "timekit unknown key",
                format!(
                    "[providers.a]\npreset = \"timekit\"\nsecret = \"{SECRET}\"\n"
                ),
                3,
                Some("[providers.a] key `secret`"),
                "remove it or fix its spelling; known keys: \
                 preset, app, email, api_key, base_url",
            ),
            (
                "timekit without app",
                "[providers.a]\npreset = \"timekit\"\nemail = \"e\"\napi_key = \"${env:K}\"\n"
                    .to_owned(),
                1,
                Some("[providers.a] key `app`"),
                "preset \"timekit\" needs `app`",
            ),
            (
                "timekit empty app",
                "[providers.a]\npreset = \"timekit\"\napp = \"\"\n".to_owned(),
                3,
                Some("[providers.a] key `app`"),
                "`app` is empty",
            ),
            (
                "timekit app with control character",
                "[providers.a]\npreset = \"timekit\"\napp = \"a\\r\\nX-Evil: 1\"\n".to_owned(),
                3,
                Some("[providers.a] key `app`"),
                "control character",
            ),
            (
                "timekit without email",
                "[providers.a]\npreset = \"timekit\"\napp = \"a\"\napi_key = \"${env:K}\"\n"
                    .to_owned(),
                1,
                Some("[providers.a] key `email`"),
                "preset \"timekit\" needs `email`",
            ),
            (
                "timekit email with colon",
                format!(
                    "[providers.a]\npreset = \"timekit\"\napp = \"a\"\nemail = \"me:{SECRET}\"\n"
                ),
                4,
                Some("[providers.a] key `email`"),
                "contains `:`",
            ),
            (
                "timekit without api_key",
                "[providers.a]\npreset = \"timekit\"\napp = \"a\"\nemail = \"e\"\n".to_owned(),
                1,
                Some("[providers.a] key `api_key`"),
                "preset \"timekit\" needs `api_key`",
            ),
            (
                "timekit empty api_key",
                "[providers.a]\npreset = \"timekit\"\napp = \"a\"\nemail = \"e\"\napi_key = \"\"\n"
                    .to_owned(),
                5,
                Some("[providers.a] key `api_key`"),
                "`api_key` is empty",
            ),
            (
                "timekit bad base_url",
                "[providers.a]\npreset = \"timekit\"\napp = \"a\"\nemail = \"e\"\n\
                 api_key = \"${env:K}\"\nbase_url = \"api.timekit.io\"\n"
                    .to_owned(),
                6,
                Some("[providers.a] key `base_url`"),
                "`base_url` is not a valid URL",
            ),
            (
                "timekit base_url with query",
                "[providers.a]\npreset = \"timekit\"\napp = \"a\"\nemail = \"e\"\n\
                 api_key = \"${env:K}\"\nbase_url = \"https://api.timekit.io/?x=1\"\n"
                    .to_owned(),
                6,
                Some("[providers.a] key `base_url`"),
                "has a query or a fragment",
            ),
            (
                "timekit basic_user with scheme raw",
                "[providers.a]\npreset = \"timekit\"\napp = \"a\"\nemail = \"e\"\n\
                 api_key = \"${env:K}\"\nscheme = \"raw\"\nbasic_user = \"u\"\n"
                    .to_owned(),
                7,
                Some("[providers.a] key `basic_user`"),
                "scheme is \"raw\"",
            ),
            // crm.com
            (
                "crm unknown key",
                crm("kind2 = \"x\"\n"),
                5,
                Some("[providers.a] key `kind2`"),
                "remove it or fix its spelling; known keys: \
                 preset, base_url, api_key, authentication_code",
            ),
            (
                "crm without base_url",
                "[providers.a]\npreset = \"crm.com\"\napi_key = \"${env:K}\"\n".to_owned(),
                1,
                Some("[providers.a] key `base_url`"),
                "preset \"crm.com\" needs `base_url`",
            ),
            (
                "crm without api_key",
                "[providers.a]\npreset = \"crm.com\"\nbase_url = \"https://c.example\"\n"
                    .to_owned(),
                1,
                Some("[providers.a] key `api_key`"),
                "preset \"crm.com\" needs `api_key`",
            ),
            (
                "crm empty api_key",
                "[providers.a]\npreset = \"crm.com\"\nbase_url = \"https://c.example\"\n\
                 api_key = \"\"\n"
                    .to_owned(),
                4,
                Some("[providers.a] key `api_key`"),
                "`api_key` is empty",
            ),
            (
                "crm without identification",
                crm("unit = \"1\"\n"),
                1,
                Some("[providers.a] key `authentication_code`"),
                "give exactly one of: authentication_code; identifier and pass_code; jwt and \
                 organisation",
            ),
            (
                "crm code and jwt",
                crm(&format!(
                    "authentication_code = \"${{env:C}}\"\njwt = \"{SECRET}\"\n"
                )),
                6,
                Some("[providers.a] key `jwt`"),
                "`jwt` cannot be combined with `authentication_code`",
            ),
            (
                "crm identifier and organisation",
                crm("organisation = \"o\"\nidentifier = \"i\"\n"),
                6,
                Some("[providers.a] key `identifier`"),
                "cannot be combined with `organisation`",
            ),
            (
                "crm identifier without pass_code",
                crm("identifier = \"i\"\n"),
                1,
                Some("[providers.a] key `pass_code`"),
                "preset \"crm.com\" needs `pass_code`",
            ),
            (
                "crm pass_code without identifier",
                crm(&format!("pass_code = \"{SECRET}\"\n")),
                1,
                Some("[providers.a] key `identifier`"),
                "preset \"crm.com\" needs `identifier`",
            ),
            (
                "crm jwt without organisation",
                crm("jwt = \"${env:J}\"\n"),
                1,
                Some("[providers.a] key `organisation`"),
                "needs `organisation` with `jwt`",
            ),
            (
                "crm organisation without jwt",
                crm("organisation = \"o\"\n"),
                1,
                Some("[providers.a] key `jwt`"),
                "preset \"crm.com\" needs `jwt`",
            ),
            (
                "crm empty pass_code",
                crm("identifier = \"i\"\npass_code = \"\"\n"),
                6,
                Some("[providers.a] key `pass_code`"),
                "`pass_code` is empty",
            ),
            (
                "crm empty unit",
                crm("authentication_code = \"${env:C}\"\nunit = \"\"\n"),
                6,
                Some("[providers.a] key `unit`"),
                "`unit` is empty",
            ),
            (
                "crm bad authentication_code template",
                crm(&format!("authentication_code = \"{SECRET}${{env:A\"\n")),
                5,
                Some("[providers.a] key `authentication_code`"),
                "invalid secret",
            ),
            (
                "crm api_key with colon",
                format!(
                    "[providers.a]\npreset = \"crm.com\"\nbase_url = \"https://c.example\"\n\
                     api_key = \"k:{SECRET}\"\n"
                ),
                4,
                Some("[providers.a] key `api_key`"),
                "contains `:`",
            ),
            // salestim
            (
                "salestim without api_key",
                "[providers.a]\npreset = \"salestim\"\n".to_owned(),
                1,
                Some("[providers.a] key `api_key`"),
                "preset \"salestim\" needs `api_key`",
            ),
            (
                "salestim with secret",
                format!("[providers.a]\npreset = \"salestim\"\nsecret = \"{SECRET}\"\n"),
                3,
                Some("[providers.a] key `secret`"),
                "known keys: preset, api_key, header, scheme, basic_user",
            ),
            (
                "salestim basic_user with raw scheme",
                "[providers.a]\npreset = \"salestim\"\napi_key = \"${env:K}\"\nbasic_user = \"u\"\n"
                    .to_owned(),
                4,
                Some("[providers.a] key `basic_user`"),
                "scheme is \"raw\"",
            ),
        ];
        check_errors(cases);
    }
}
