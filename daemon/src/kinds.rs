//! The data model of provider kinds that fetch tokens: OAuth 2.0 grants and generic HTTP token
//! exchanges (which the Timekit and CRM.COM presets expand to).
//!
//! These are plain, validated values: `config` parses the TOML into them, `source` performs the
//! requests. Every string that may carry a secret is a [`SecretTemplate`]; `Debug` output is safe
//! because templates never show literal text.

use std::time::Duration;

use url::Url;

use crate::secret_ref::SecretTemplate;

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
    /// `private_key` (with `key_id`, `signing_alg`): signs the client assertion of
    /// `client_auth = "private_key_jwt"` and the assertion of `grant = "jwt_bearer"`.
    pub signing_key: Option<SigningKey>,
}

/// A private key that signs JWT assertions (RFC 7523).
#[derive(Debug, Clone, PartialEq)]
pub struct SigningKey {
    /// `private_key`: a PEM private key (PKCS#8, or PKCS#1 for RSA, SEC1 for EC).
    pub private_key: SecretTemplate,
    /// `signing_alg` (default `RS256`).
    pub alg: SigningAlg,
    /// `key_id`: the `kid` header, when the server needs it to pick the key.
    pub key_id: Option<String>,
}

/// `signing_alg = …`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SigningAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    #[default]
    Rs256,
    /// ECDSA P-256 with SHA-256.
    Es256,
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
}

/// `kind = "http"`: any HTTP token exchange.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpExchange {
    /// `method` (default `GET`; `POST` when a body is given).
    pub method: HttpMethod,
    /// `url`.
    pub url: Url,
    /// `basic = { user, password }`: an HTTP Basic pair.
    pub basic: Option<BasicPair>,
    /// `headers`: extra request headers, in file order.
    pub headers: Vec<(String, SecretTemplate)>,
    /// `json = {…}` or `form = {…}`.
    pub body: Option<HttpBody>,
    /// `token`: JSON pointer (RFC 6901) to the token in the response.
    pub token: String,
    /// `expires`: where the expiry comes from.
    pub expires: ExpiresFrom,
    /// `ttl`: lifetime when the response gives none; `None` = valid until invalidated.
    pub ttl: Option<Duration>,
    /// `ok = { pointer, equals, message }`: a success check on the response body.
    pub ok: Option<OkCheck>,
    /// `timeout`: the whole request to the token endpoint must finish within this time
    /// (default: the daemon's 10 s).
    pub timeout: Option<Duration>,
}

/// `method = …`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HttpMethod {
    /// `GET`.
    #[default]
    Get,
    /// `POST`.
    Post,
}

impl HttpMethod {
    /// The method name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
        }
    }
}

/// `basic = { user = …, password = … }`.
#[derive(Debug, Clone, PartialEq)]
pub struct BasicPair {
    /// The user half (may be a secret, e.g. an API key as user).
    pub user: SecretTemplate,
    /// The password half (often empty).
    pub password: SecretTemplate,
}

/// The request body.
#[derive(Debug, Clone, PartialEq)]
pub enum HttpBody {
    /// `json = {…}`: a JSON document whose strings may hold secret references.
    Json(JsonTemplate),
    /// `form = {…}`: `application/x-www-form-urlencoded` fields.
    Form(Vec<(String, SecretTemplate)>),
}

/// A JSON value whose strings are secret templates (TOML tables and arrays map to objects and
/// arrays; TOML dates are not allowed).
#[derive(Debug, Clone, PartialEq)]
pub enum JsonTemplate {
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Integer(i64),
    /// A float.
    Float(f64),
    /// A string, possibly with `${…}` references.
    String(SecretTemplate),
    /// An array.
    Array(Vec<JsonTemplate>),
    /// An object, keys in file order.
    Object(Vec<(String, JsonTemplate)>),
}

/// `expires = …`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ExpiresFrom {
    /// `"jwt"`: the token is a JWT; its `exp` claim is the expiry.
    Jwt,
    /// A JSON pointer to an `expires_in` number of seconds.
    Pointer(String),
    /// Omitted: `ttl` applies, or the token is valid until invalidated.
    #[default]
    Unknown,
}

/// `ok = { pointer = …, equals = …, message = … }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OkCheck {
    /// JSON pointer to the status value.
    pub pointer: String,
    /// The value (as a string) that means success.
    pub equals: String,
    /// JSON pointer to a human explanation shown when the check fails.
    pub message: Option<String>,
}

/// A duration as the config writes it: `90s`, `15m`, `2h` or `1d` (the largest whole unit).
#[must_use]
pub fn format_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        0 => "0s".to_owned(),
        _ if secs.is_multiple_of(86_400) => format!("{}d", secs / 86_400),
        _ if secs.is_multiple_of(3_600) => format!("{}h", secs / 3_600),
        _ if secs.is_multiple_of(60) => format!("{}m", secs / 60),
        _ => format!("{secs}s"),
    }
}

/// Parses a duration such as `90s`, `15m`, `2h`, `1d` or a bare number of seconds.
///
/// # Errors
/// A message saying what is wrong and the accepted forms.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(split);
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("`{trimmed}` is not a duration; use e.g. 90s, 15m, 2h or 1d"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("`{trimmed}` has an unknown unit; use s, m, h or d")),
    };
    let secs = value
        .checked_mul(scale)
        .ok_or_else(|| format!("`{trimmed}` is too long"))?;
    if secs == 0 {
        return Err("a duration of zero makes every token expired; use at least 1s".to_owned());
    }
    Ok(Duration::from_secs(secs))
}

/// Whether `pointer` is a syntactically valid JSON pointer (empty, or starting with `/`).
#[must_use]
pub fn is_json_pointer(pointer: &str) -> bool {
    pointer.is_empty() || pointer.starts_with('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86_400));
        assert!(parse_duration("0s").unwrap_err().contains("zero"));
        assert!(parse_duration("2w").unwrap_err().contains("unknown unit"));
        assert!(
            parse_duration("soon")
                .unwrap_err()
                .contains("not a duration")
        );
    }

    #[test]
    fn pointers() {
        assert!(is_json_pointer("/data/token"));
        assert!(is_json_pointer(""));
        assert!(!is_json_pointer("data.token"));
    }
}
