//! `kind = "http"`: any HTTP token exchange. A request (method, URL, Basic pair, headers, JSON
//! or form body, all with secret templates; optionally a JWT signed for the request, `${jwt}`)
//! and where the token and its expiry (`expires_in`, a JWT `exp`, or an RFC 3339 timestamp) are
//! in the JSON answer, with an optional success check. The `timekit`, `crm.com` and
//! `github-app` presets expand to one.
//!
//! - [`keys`]: its keys; [`config`]: reading its table; [`exchange`]: the request and the
//!   answer;
//! - [`timekit`], [`crm`], [`github`]: the presets.

mod config;
pub(crate) mod crm;
pub(crate) mod exchange;
pub(crate) mod github;
pub(crate) mod keys;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_jwt;
pub(crate) mod timekit;

use std::time::Duration;

use url::Url;

pub(crate) use self::config::basic_user;
pub(crate) use self::exchange::fetch;
use super::KindSpec;
use super::jwt::SigningKey;
use crate::secret::SecretTemplate;

pub(crate) const KIND: KindSpec = KindSpec {
    key: "kind",
    name: "http",
    summary: "Any HTTP token exchange (what the `timekit`, `crm.com` and `github-app` presets expand to).",
    keys: keys::KEYS,
    read: config::read,
    route_username: crate::kinds::DEFAULT_ROUTE_USERNAME,
};

/// Every `method` value, in the order hints list them.
pub(crate) const METHODS: [HttpMethod; 2] = [HttpMethod::Get, HttpMethod::Post];

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
    /// `jwt = { … }`: a JWT signed for every request, `${jwt}` in the templates.
    pub jwt: Option<HttpJwt>,
}

impl HttpExchange {
    /// Every template of the request.
    #[must_use]
    pub fn templates(&self) -> Vec<&SecretTemplate> {
        let mut templates: Vec<&SecretTemplate> = Vec::new();
        if let Some(basic) = &self.basic {
            templates.push(&basic.user);
            templates.push(&basic.password);
        }
        templates.extend(self.headers.iter().map(|(_, value)| value));
        match &self.body {
            Some(HttpBody::Json(json)) => json.templates(&mut templates),
            Some(HttpBody::Form(fields)) => templates.extend(fields.iter().map(|(_, v)| v)),
            None => {}
        }
        if let Some(jwt) = &self.jwt {
            templates.push(&jwt.key.private_key);
            templates.extend(&jwt.key.certificate);
            jwt.claims.templates(&mut templates);
        }
        templates
    }
}

/// `jwt = { private_key, signing_alg, key_id, claims, lifetime, backdate }`: the JWT `${jwt}`
/// stands for, signed anew for every request.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpJwt {
    /// The key that signs it.
    pub key: SigningKey,
    /// `claims`: the claims besides `iat`, `exp` and `jti` (strings are templates).
    pub claims: JsonTemplate,
    /// `lifetime`: `exp` is this long after now.
    pub lifetime: Duration,
    /// `backdate`: `iat` is this long before now (for clock drift, as GitHub advises).
    pub backdate: Duration,
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

impl JsonTemplate {
    /// Collects the templates of the tree into `out`.
    fn templates<'a>(&'a self, out: &mut Vec<&'a SecretTemplate>) {
        let mut work = vec![self];
        while let Some(node) = work.pop() {
            match node {
                Self::String(template) => out.push(template),
                Self::Array(items) => work.extend(items),
                Self::Object(fields) => work.extend(fields.iter().map(|(_, value)| value)),
                Self::Bool(_) | Self::Integer(_) | Self::Float(_) => {}
            }
        }
    }
}

/// `expires = …` or `expires_at = …`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ExpiresFrom {
    /// `"jwt"`: the token is a JWT; its `exp` claim is the expiry.
    Jwt,
    /// A JSON pointer to an `expires_in` number of seconds.
    Pointer(String),
    /// `expires_at`: a JSON pointer to an RFC 3339 timestamp (`2026-07-11T22:14:10Z`).
    At(String),
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
