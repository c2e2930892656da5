//! `kind = "oauth2"`: OAuth 2.0 grants against a token endpoint, through the `oauth2` crate.
//!
//! - [`keys`]: its keys and their documentation; [`config`]: reading its table, with
//!   [`client_config`]: how the client authenticates and the token exchange's keys;
//! - [`endpoints`]: the token, authorization, device and revocation endpoints, as configured or
//!   from OpenID Connect discovery;
//! - [`client`]: the `oauth2` client and its client authentication, the HTTP plumbing;
//! - [`assertion`]: client assertions: signed (RFC 7523) or handed over by the platform;
//! - [`grants`]: the grants that need no person (client credentials, refresh tokens,
//!   `jwt_bearer`) and the token responses (with their id_tokens);
//! - [`exchange`]: the token exchange grant (RFC 8693);
//! - [`login`] and [`redirect`]: the interactive logins of `tok login` (authorization code with
//!   PKCE and a loopback redirect, device flow) and revocation for `tok logout`;
//! - [`azure_ad`]: the `azure-ad` preset (with workload identity and certificate credentials);
//! - [`google`]: the `google-service-account` preset.

pub(crate) mod assertion;
pub(crate) mod azure_ad;
pub(crate) mod client;
mod client_config;
mod config;
pub(crate) mod endpoints;
pub(crate) mod exchange;
pub(crate) mod google;
pub(crate) mod grants;
pub(crate) mod keys;
pub(crate) mod login;
pub(crate) mod redirect;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_federation;

use std::time::Duration;

use url::Url;

pub(crate) use self::grants::fetch;
use super::KindSpec;
use crate::secret::SecretTemplate;

pub(crate) const KIND: KindSpec = KindSpec {
    key: "kind",
    name: "oauth2",
    summary: "An OAuth 2.0 grant against a token endpoint; see [Logins](#logins) for the grants a person logs in to.",
    keys: keys::KEYS,
    read: config::read,
    route_username: crate::kinds::DEFAULT_ROUTE_USERNAME,
};

pub use crate::kinds::jwt::SigningKey;

/// Every `grant` value, in the order hints list them.
pub(crate) const GRANTS: [&str; 6] = [
    "client_credentials",
    "refresh_token",
    "authorization_code",
    "device_code",
    "jwt_bearer",
    "token_exchange",
];

/// Every `client_auth` value, in the order hints list them.
pub(crate) const CLIENT_AUTHS: [&str; 4] = ["basic", "post", "private_key_jwt", "client_assertion"];

/// `client_assertion_type` of a JWT client assertion (RFC 7523 section 2.2).
pub(crate) const JWT_CLIENT_ASSERTION: &str =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// `kind = "oauth2"`.
#[derive(Debug, Clone, PartialEq)]
pub struct OAuth2Config {
    /// Which grant obtains the access token.
    pub grant: OAuth2Grant,
    /// Where the token endpoint is.
    pub endpoint: TokenEndpoint,
    /// `client_id`.
    pub client_id: String,
    /// `client_secret`; `None` for public clients (refresh-token grant only).
    pub client_secret: Option<SecretTemplate>,
    /// How the client authenticates at the token endpoint (`client_auth`).
    pub client_auth: ClientAuth,
    /// `scopes`, sent space-separated as `scope`.
    pub scopes: Vec<String>,
    /// `params`: extra form parameters (e.g. `audience`, `resource`), in file order.
    pub params: Vec<(String, String)>,
    /// `ttl`: lifetime to assume when the response gives none (no `expires_in`, not a JWT).
    pub ttl: Option<Duration>,
    /// `timeout`: the whole request to the token endpoint must finish within this time
    /// (default: the daemon's 10 s).
    pub timeout: Option<Duration>,
    /// `revocation_url`: where `tok logout` revokes the refresh token (RFC 7009); with an
    /// `issuer`, discovery's `revocation_endpoint` when this is not set.
    pub revocation_url: Option<Url>,
    /// `private_key` (with `key_id`, `signing_alg`, `certificate`): signs the client assertion
    /// of `client_auth = "private_key_jwt"` and the assertion of `grant = "jwt_bearer"`.
    pub signing_key: Option<SigningKey>,
    /// `client_assertion`: the assertion the platform hands the job (`client_auth =
    /// "client_assertion"`), read anew for every request.
    pub client_assertion: Option<SecretTemplate>,
}

impl OAuth2Config {
    /// Every template of the configuration.
    #[must_use]
    pub fn templates(&self) -> Vec<&SecretTemplate> {
        let mut templates: Vec<&SecretTemplate> = Vec::new();
        templates.extend(&self.client_secret);
        templates.extend(&self.client_assertion);
        if let Some(key) = &self.signing_key {
            templates.push(&key.private_key);
            templates.extend(&key.certificate);
        }
        match &self.grant {
            OAuth2Grant::RefreshToken { refresh_token } => templates.push(refresh_token),
            OAuth2Grant::TokenExchange(exchange) => {
                templates.push(&exchange.subject_token);
                templates.extend(exchange.actor_token.as_ref().map(|(token, _)| token));
            }
            _ => {}
        }
        templates
    }
}

/// `grant = "token_exchange"` (RFC 8693): a token the job holds is exchanged for another.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenExchange {
    /// `subject_token`: whom the new token is for (a template, often `${provider:NAME}` or
    /// a platform token file).
    pub subject_token: SecretTemplate,
    /// `subject_token_type` (default `urn:ietf:params:oauth:token-type:jwt`).
    pub subject_token_type: String,
    /// `actor_token` and `actor_token_type`: who acts for the subject (delegation).
    pub actor_token: Option<(SecretTemplate, String)>,
    /// `requested_token_type`.
    pub requested_token_type: Option<String>,
    /// `audience`: where the new token is used (logical names), in file order.
    pub audience: Vec<String>,
    /// `resource`: where the new token is used (URIs), in file order.
    pub resource: Vec<String>,
}

/// `grant = "jwt_bearer"`: who the assertion speaks for (RFC 7523 section 2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtBearer {
    /// `assertion_issuer` (`iss`; default: `client_id`).
    pub issuer: String,
    /// `assertion_subject` (`sub`; default: the issuer).
    pub subject: String,
    /// `assertion_audience` (`aud`; default: the token endpoint URL).
    pub audience: Option<String>,
}

/// `grant = …`.
#[derive(Debug, Clone, PartialEq)]
pub enum OAuth2Grant {
    /// `client_credentials` (RFC 6749 section 4.4).
    ClientCredentials,
    /// `refresh_token` (RFC 6749 section 6) with a long-lived refresh token from the config.
    RefreshToken {
        /// `refresh_token`: the initial refresh token (rotated ones replace it at run time).
        refresh_token: SecretTemplate,
    },
    /// `authorization_code` (RFC 6749 section 4.1 with PKCE, RFC 7636): a person logs in once
    /// with `tok login`; the refresh token obtained then keeps the session alive.
    AuthorizationCode(AuthorizationCodeLogin),
    /// `device_code` (RFC 8628): `tok login` shows a code to enter on another device.
    DeviceCode(DeviceLogin),
    /// `jwt_bearer` (RFC 7523 section 2.1): a signed assertion is the grant (service accounts).
    JwtBearer(JwtBearer),
    /// `token_exchange` (RFC 8693): a subject token is exchanged for an access token.
    TokenExchange(TokenExchange),
}

/// How `tok login` runs the authorization code flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationCodeLogin {
    /// `auth_url`: the authorization endpoint; `None` with an `issuer` (from discovery).
    pub auth_url: Option<Url>,
    /// `redirect_uri`: a loopback `http` URL (`127.0.0.1`, `[::1]` or `localhost`); port 0
    /// means an ephemeral port chosen at login time.
    pub redirect_uri: Url,
    /// `login_timeout`: how long `tok login` waits for the redirect.
    pub timeout: Duration,
    /// `auth_params`: extra parameters of the authorization request (e.g. `prompt`).
    pub auth_params: Vec<(String, String)>,
}

/// How `tok login` runs the device flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceLogin {
    /// `device_url`: the device authorization endpoint; `None` with an `issuer`.
    pub device_url: Option<Url>,
}

impl OAuth2Grant {
    /// Whether only `tok login` can start a session for this grant.
    #[must_use]
    pub fn is_interactive(&self) -> bool {
        matches!(self, Self::AuthorizationCode(_) | Self::DeviceCode(_))
    }
}

impl OAuth2Grant {
    /// The `grant` value in the config file.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::ClientCredentials => "client_credentials",
            Self::RefreshToken { .. } => "refresh_token",
            Self::AuthorizationCode(_) => "authorization_code",
            Self::DeviceCode(_) => "device_code",
            Self::JwtBearer(_) => "jwt_bearer",
            Self::TokenExchange(_) => "token_exchange",
        }
    }
}

/// `token_url = …` or `issuer = …`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenEndpoint {
    /// The token endpoint itself.
    TokenUrl(Url),
    /// An OpenID Connect issuer: the token endpoint comes from
    /// `{issuer}/.well-known/openid-configuration`.
    Issuer(Url),
}

/// `client_auth = …` (default `basic`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// `client_secret_basic`: HTTP Basic with the form-encoded id and secret.
    #[default]
    Basic,
    /// `client_secret_post`: `client_id` and `client_secret` in the form body.
    Post,
    /// `private_key_jwt` (RFC 7523 section 2.2): a JWT signed with `private_key`.
    PrivateKeyJwt,
    /// `client_assertion`: a JWT the platform issued (workload identity federation), read from
    /// `client_assertion` for every request and sent as RFC 7523 section 2.2 says.
    ClientAssertion,
}
