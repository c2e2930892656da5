//! Obtaining one token from a provider's source: a fixed secret, nothing (anonymous), an OAuth 2.0
//! grant (through the `oauth2` crate), or a generic HTTP exchange.
//!
//! A fetch either yields a token with its lifetime (and, for refresh-token grants, the rotated
//! refresh token), or a [`FetchError`] that says how the engine should react: a configuration
//! problem, a transient failure worth retrying later, or a rejection that no retry will fix.
//! Messages name the provider, the URL (without query) and what was wrong; never a secret or a
//! response body.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    AuthType, AuthUrl, ClientId, ClientSecret, DeviceAuthorizationUrl, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, RequestTokenError, RevocationUrl, Scope, TokenResponse, TokenUrl,
};
use serde_json::Value;
use tokend_protocol::Secret;
use url::Url;

use crate::config::ProviderKind;
use crate::kinds::{
    ClientAuth, ExpiresFrom, HttpBody, HttpExchange, HttpMethod, JsonTemplate, JwtBearer,
    OAuth2Config, OAuth2Grant, SigningAlg, SigningKey, TokenEndpoint,
};
use crate::secret_ref::{ResolveError, SecretTemplate};
use crate::upstream::{self, Answer, TransportError, shown};

/// A token just obtained.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub(crate) token: Secret,
    pub(crate) lifetime: Lifetime,
    /// A new refresh token returned with the access token (rotation).
    pub(crate) refresh_token: Option<Secret>,
}

/// How long a fetched token lives, counted from when its response arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lifetime {
    Expires(Duration),
    /// Valid until invalidated (static secrets, exchanges without expiry).
    Unbounded,
}

/// Why a fetch failed, and so how the engine reacts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FetchError {
    /// The provider's configuration cannot work (for example a secret reference that does not
    /// resolve). Not retried until a caller asks again.
    Config(String),
    /// Worth retrying later: network trouble, timeouts, 5xx, 429, malformed answers.
    Transient {
        message: String,
        retry_after: Option<Duration>,
    },
    /// The token endpoint refused the credentials (`invalid_client`, `invalid_grant`, 401,
    /// 403, …): retrying cannot help. `needs_login` when only a person can fix it.
    Rejected { message: String, needs_login: bool },
}

impl FetchError {
    pub(crate) fn message(&self) -> &str {
        match self {
            Self::Config(message)
            | Self::Transient { message, .. }
            | Self::Rejected { message, .. } => message,
        }
    }
}

/// State a source keeps between fetches; owned by the provider's single-flight lock.
#[derive(Debug, Default)]
pub(crate) struct SourceState {
    /// The refresh token in force: the one the server rotated the configured one into, or the
    /// one `tok login` obtained.
    pub(crate) refresh_token: Option<Secret>,
    /// The configured refresh token that `refresh_token` descends from. When the configured one
    /// changes (the user put a new one in place), the rotated chain is abandoned for it.
    pub(crate) origin: Option<Secret>,
    /// The last rotated refresh token could not be saved: the one in memory is newer than the
    /// store's.
    pub(crate) unsaved_rotation: bool,
    /// The endpoints found through OpenID Connect discovery.
    pub(crate) discovered: Option<Endpoints>,
}

/// An OAuth 2.0 server's endpoints, from the config or from discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoints {
    pub(crate) token: Url,
    pub(crate) authorization: Option<Url>,
    pub(crate) device: Option<Url>,
    pub(crate) revocation: Option<Url>,
}

/// Fetches a token for provider `name`.
pub(crate) async fn fetch(
    name: &str,
    kind: &ProviderKind,
    state: &mut SourceState,
) -> Result<Fetched, FetchError> {
    match kind {
        ProviderKind::Static { secret } => Ok(Fetched {
            token: resolve(name, "secret", secret).await?,
            lifetime: Lifetime::Unbounded,
            refresh_token: None,
        }),
        ProviderKind::Anonymous => Ok(Fetched {
            token: Secret::from(""),
            lifetime: Lifetime::Unbounded,
            refresh_token: None,
        }),
        ProviderKind::OAuth2(config) => oauth2_fetch(name, config, state).await,
        ProviderKind::Http(exchange) => http_fetch(name, exchange).await,
    }
}

async fn resolve(name: &str, key: &str, template: &SecretTemplate) -> Result<Secret, FetchError> {
    template
        .resolve()
        .await
        .map_err(|err| FetchError::Config(format!("provider `{name}`: {key}: {err}")))
}

// ---------------------------------------------------------------------------------------------
// OAuth 2.0

/// Status, `Retry-After` and body description of the last token-endpoint response, kept aside
/// because the `oauth2` crate's errors do not carry them.
#[derive(Debug, Default, Clone)]
pub(crate) struct ResponseMeta {
    pub(crate) status: u16,
    pub(crate) retry_after: Option<Duration>,
    pub(crate) body: String,
}

/// The provider's endpoints: as configured, or (with an `issuer`) from discovery, which is
/// cached in `state`. Configured `auth_url`, `device_url` and `revocation_url` win over
/// discovered ones.
pub(crate) async fn endpoints(
    name: &str,
    config: &OAuth2Config,
    state: &mut SourceState,
) -> Result<Endpoints, FetchError> {
    let mut found = match &config.endpoint {
        TokenEndpoint::TokenUrl(url) => Endpoints {
            token: url.clone(),
            authorization: None,
            device: None,
            revocation: None,
        },
        TokenEndpoint::Issuer(issuer) => match &state.discovered {
            Some(found) => found.clone(),
            None => {
                let found = discover(name, issuer, config.timeout).await?;
                state.discovered = Some(found.clone());
                found
            }
        },
    };
    match &config.grant {
        OAuth2Grant::AuthorizationCode(login) if login.auth_url.is_some() => {
            found.authorization.clone_from(&login.auth_url);
        }
        OAuth2Grant::DeviceCode(login) if login.device_url.is_some() => {
            found.device.clone_from(&login.device_url);
        }
        _ => {}
    }
    if config.revocation_url.is_some() {
        found.revocation.clone_from(&config.revocation_url);
    }
    Ok(found)
}

/// The `oauth2` client every flow of a provider uses.
pub(crate) type OAuthClient =
    BasicClient<EndpointMaybeSet, EndpointMaybeSet, EndpointNotSet, EndpointMaybeSet, EndpointSet>;

/// The `oauth2` client for `config` at `endpoints`, with its client authentication.
pub(crate) async fn oauth_client(
    name: &str,
    config: &OAuth2Config,
    endpoints: &Endpoints,
) -> Result<OAuthClient, FetchError> {
    let mut client = BasicClient::new(ClientId::new(config.client_id.clone()))
        .set_token_uri(TokenUrl::from_url(endpoints.token.clone()))
        .set_auth_uri_option(endpoints.authorization.clone().map(AuthUrl::from_url))
        .set_device_authorization_url_option(
            endpoints
                .device
                .clone()
                .map(DeviceAuthorizationUrl::from_url),
        )
        .set_revocation_url_option(endpoints.revocation.clone().map(RevocationUrl::from_url))
        .set_auth_type(match config.client_auth {
            ClientAuth::Basic => AuthType::BasicAuth,
            // private_key_jwt: `client_id` in the body, the assertion added per request.
            ClientAuth::Post | ClientAuth::PrivateKeyJwt => AuthType::RequestBody,
        });
    if let Some(template) = &config.client_secret {
        let secret = resolve(name, "client_secret", template).await?;
        client = client.set_client_secret(ClientSecret::new(secret.expose().to_owned()));
    }
    Ok(client)
}

/// The form parameters of `client_auth = "private_key_jwt"` (RFC 7523 section 2.2) for a
/// request to `endpoints`; none for other client authentication.
pub(crate) async fn client_assertion(
    name: &str,
    config: &OAuth2Config,
    endpoints: &Endpoints,
) -> Result<Vec<(String, String)>, FetchError> {
    if config.client_auth != ClientAuth::PrivateKeyJwt {
        return Ok(Vec::new());
    }
    let key = config.signing_key.as_ref().ok_or_else(|| {
        FetchError::Config(format!(
            "provider `{name}`: client_auth \"private_key_jwt\" without private_key"
        ))
    })?;
    let assertion = sign_assertion(
        name,
        key,
        &config.client_id,
        &config.client_id,
        endpoints.token.as_str(),
    )
    .await?;
    Ok(vec![
        (
            "client_assertion_type".to_owned(),
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
        ),
        ("client_assertion".to_owned(), assertion),
    ])
}

/// How long a signed assertion is valid: long enough for clock skew and a slow request, short
/// enough that a leaked one is soon useless.
const ASSERTION_LIFETIME: Duration = Duration::from_secs(300);

/// Signs an RFC 7523 assertion with `key`: `iss`, `sub`, `aud`, `iat`, `exp` (in
/// [`ASSERTION_LIFETIME`]) and a random `jti`, so that no two assertions are alike.
pub(crate) async fn sign_assertion(
    name: &str,
    key: &SigningKey,
    issuer: &str,
    subject: &str,
    audience: &str,
) -> Result<String, FetchError> {
    let pem = key
        .private_key
        .resolve_multiline()
        .await
        .map_err(|err| FetchError::Config(format!("provider `{name}`: private_key: {err}")))?;
    let (alg, encoding, kind) = match key.alg {
        SigningAlg::Rs256 => (
            jsonwebtoken::Algorithm::RS256,
            jsonwebtoken::EncodingKey::from_rsa_pem(pem.expose().as_bytes()),
            "RSA",
        ),
        SigningAlg::Es256 => (
            jsonwebtoken::Algorithm::ES256,
            jsonwebtoken::EncodingKey::from_ec_pem(pem.expose().as_bytes()),
            "EC P-256",
        ),
    };
    let encoding = encoding.map_err(|_| {
        FetchError::Config(format!(
            "provider `{name}`: private_key is not a PEM {kind} private key; give the key in \
             PEM (PKCS#8 \"BEGIN PRIVATE KEY\", or PKCS#1/SEC1), or set signing_alg to match it"
        ))
    })?;
    let mut header = jsonwebtoken::Header::new(alg);
    header.kid.clone_from(&key.key_id);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let claims = serde_json::json!({
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "iat": now,
        "exp": now + ASSERTION_LIFETIME.as_secs(),
        "jti": oauth2::CsrfToken::new_random().secret(),
    });
    jsonwebtoken::encode(&header, &claims, &encoding).map_err(|err| {
        FetchError::Config(format!(
            "provider `{name}`: cannot sign the assertion with private_key ({err})"
        ))
    })
}

/// `grant = "jwt_bearer"` (RFC 7523 section 2.1): the `oauth2` crate has no such grant, so the
/// form is built here; the answer is a standard token response.
async fn jwt_bearer_fetch(
    name: &str,
    config: &OAuth2Config,
    bearer: &JwtBearer,
    endpoints: &Endpoints,
) -> Result<Fetched, FetchError> {
    let key = config.signing_key.as_ref().ok_or_else(|| {
        FetchError::Config(format!(
            "provider `{name}`: grant \"jwt_bearer\" without private_key"
        ))
    })?;
    let token_url = &endpoints.token;
    let audience = bearer.audience.as_deref().unwrap_or(token_url.as_str());
    let assertion = sign_assertion(name, key, &bearer.issuer, &bearer.subject, audience).await?;
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
    let answer = post_form(name, config, endpoints, token_url, pairs).await?;
    let where_ = format!("provider `{name}`: token endpoint {}", shown(token_url));
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
            return Err(FetchError::Rejected {
                message: format!(
                    "{where_}: the assertion was refused ({}{description}); check private_key, \
                     key_id, the assertion_* keys and the key registered with the server, then \
                     run `tok invalidate {name}`",
                    one_line(code)
                ),
                needs_login: false,
            });
        }
    }
    let document = parse_answer(&where_, &answer)?;
    let token = document
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|token| !token.is_empty())
        .ok_or_else(|| FetchError::Transient {
            message: format!("{where_}: the response has no access_token"),
            retry_after: None,
        })?;
    let token = Secret::from(token);
    let expires_in = document
        .get("expires_in")
        .and_then(Value::as_u64)
        .map(Duration::from_secs);
    Ok(Fetched {
        lifetime: lifetime_of(expires_in, &token, config.ttl, false),
        token,
        refresh_token: None,
    })
}

/// POSTs `pairs` as a form to `url` (an endpoint of the provider's authorization server) with
/// the provider's client authentication: for what the `oauth2` crate does not cover (the
/// `jwt_bearer` grant; revocation at an `http` endpoint, which the crate refuses).
pub(crate) async fn post_form(
    name: &str,
    config: &OAuth2Config,
    endpoints: &Endpoints,
    url: &Url,
    mut pairs: Vec<(String, Secret)>,
) -> Result<Answer, FetchError> {
    let mut basic = None;
    match (&config.client_secret, config.client_auth) {
        (Some(template), ClientAuth::Basic) => {
            basic = Some(resolve(name, "client_secret", template).await?);
        }
        (Some(template), _) => {
            let secret = resolve(name, "client_secret", template).await?;
            pairs.push((
                "client_id".to_owned(),
                Secret::new(config.client_id.clone()),
            ));
            pairs.push(("client_secret".to_owned(), secret));
        }
        (None, _) => {
            pairs.push((
                "client_id".to_owned(),
                Secret::new(config.client_id.clone()),
            ));
            for (key, value) in client_assertion(name, config, endpoints).await? {
                pairs.push((key, Secret::new(value)));
            }
        }
    }
    // Built after every await: the serializer is not `Send`.
    let body = {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        for (key, value) in &pairs {
            form.append_pair(key, value.expose());
        }
        Secret::new(form.finish())
    };
    let mut request = reqwest::Request::new(reqwest::Method::POST, url.clone());
    let headers = request.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    headers.insert(
        http::header::ACCEPT,
        http::HeaderValue::from_static("application/json"),
    );
    if let Some(secret) = basic {
        use base64::Engine as _;
        // RFC 6749 section 2.3.1: both halves form-encoded before Basic.
        let encode =
            |text: &str| url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
        let pair = Secret::new(format!(
            "{}:{}",
            encode(&config.client_id),
            encode(secret.expose())
        ));
        let value = Secret::new(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair.expose())
        ));
        let mut value = http::HeaderValue::from_str(value.expose()).map_err(|_| {
            FetchError::Config(format!("provider `{name}`: client_secret cannot be sent"))
        })?;
        value.set_sensitive(true);
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, value);
    }
    *request.body_mut() = Some(body.expose().to_owned().into());
    if config.timeout.is_some() {
        *request.timeout_mut() = config.timeout;
    }
    send(name, request).await
}

/// A response future of [`token_http`].
pub(crate) type HttpFuture =
    Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, TransportError>> + Send>>;

/// The HTTP client the `oauth2` crate's requests go through: tokend's upstream client (its
/// limits, no redirects), with the provider's `timeout`. Status, `Retry-After` and a
/// description of the body of the last response are kept in the returned slot, because the
/// crate's errors do not carry them.
pub(crate) fn token_http(
    timeout: Option<Duration>,
) -> (
    impl Fn(oauth2::HttpRequest) -> HttpFuture + Send + Sync,
    Arc<Mutex<ResponseMeta>>,
) {
    let meta = Arc::new(Mutex::new(ResponseMeta::default()));
    let slot = Arc::clone(&meta);
    let http = move |request: oauth2::HttpRequest| -> HttpFuture {
        let meta = Arc::clone(&slot);
        Box::pin(async move {
            let mut request =
                reqwest::Request::try_from(request).map_err(|err| TransportError::Other {
                    url: "token endpoint".into(),
                    reason: err.to_string(),
                })?;
            if timeout.is_some() {
                *request.timeout_mut() = timeout;
            }
            let answer = upstream::send(request).await?;
            if let Ok(mut slot) = meta.lock() {
                *slot = ResponseMeta {
                    status: answer.status,
                    retry_after: answer.retry_after,
                    body: answer.describe_body(),
                };
            }
            let mut response = http::Response::new(answer.body.to_vec());
            *response.status_mut() =
                http::StatusCode::from_u16(answer.status).unwrap_or(http::StatusCode::BAD_GATEWAY);
            *response.headers_mut() = answer.headers;
            Ok(response)
        })
    };
    (http, meta)
}

async fn oauth2_fetch(
    name: &str,
    config: &OAuth2Config,
    state: &mut SourceState,
) -> Result<Fetched, FetchError> {
    let endpoints = endpoints(name, config, state).await?;
    if let OAuth2Grant::JwtBearer(bearer) = &config.grant {
        return jwt_bearer_fetch(name, config, bearer, &endpoints).await;
    }
    let token_url = endpoints.token.clone();
    let client = oauth_client(name, config, &endpoints).await?;
    let (http, meta) = token_http(config.timeout);
    let assertion = client_assertion(name, config, &endpoints).await?;

    let where_ = format!("provider `{name}`: token endpoint {}", shown(&token_url));
    let refresh_grant = !matches!(config.grant, OAuth2Grant::ClientCredentials);
    let interactive = config.grant.is_interactive();
    let result = match &config.grant {
        OAuth2Grant::ClientCredentials => {
            let mut request = client.exchange_client_credentials();
            for scope in &config.scopes {
                request = request.add_scope(Scope::new(scope.clone()));
            }
            for (key, value) in config.params.iter().chain(&assertion) {
                request = request.add_extra_param(key.clone(), value.clone());
            }
            request.request_async(&http).await
        }
        OAuth2Grant::JwtBearer(_) => unreachable!("answered by jwt_bearer_fetch above"),
        OAuth2Grant::RefreshToken { .. }
        | OAuth2Grant::AuthorizationCode(_)
        | OAuth2Grant::DeviceCode(_) => {
            let current = match &config.grant {
                OAuth2Grant::RefreshToken { refresh_token } => {
                    // The configured token is resolved at every fetch, so that a new one the
                    // user put in place wins over the chain rotated from the old one.
                    let configured = resolve(name, "refresh_token", refresh_token).await;
                    match (&state.refresh_token, configured) {
                        (Some(rotated), Ok(configured))
                            if state.origin.as_ref() == Some(&configured) =>
                        {
                            rotated.clone()
                        }
                        // The configured source is gone (a removed file, a failing command),
                        // but the rotated chain still works.
                        (Some(rotated), Err(_)) => rotated.clone(),
                        (_, Ok(configured)) => {
                            state.refresh_token = None;
                            state.origin = Some(configured.clone());
                            configured
                        }
                        (None, Err(error)) => return Err(error),
                    }
                }
                // Interactive grants: the session's refresh token from `tok login`.
                _ => match &state.refresh_token {
                    Some(current) => current.clone(),
                    // The login guard: only `tok login` starts an interactive flow.
                    None => {
                        return Err(FetchError::Rejected {
                            message: format!(
                                "provider `{name}` needs a login: run `tok login {name}`"
                            ),
                            needs_login: true,
                        });
                    }
                },
            };
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
        Err(RequestTokenError::Request(transport)) => Err(transport_failure(name, &transport)),
        Err(RequestTokenError::Parse(_, _) | RequestTokenError::Other(_)) => Err(status_error(
            &where_,
            meta.status,
            meta.retry_after,
            &meta.body,
        )),
    }
}

/// Sends a request for provider `name`; a request that got no answer is a transient failure.
async fn send(name: &str, request: reqwest::Request) -> Result<Answer, FetchError> {
    upstream::send(request)
        .await
        .map_err(|err| transport_failure(name, &err))
}

fn transport_failure(name: &str, err: &TransportError) -> FetchError {
    FetchError::Transient {
        message: format!("provider `{name}`: {err}"),
        retry_after: None,
    }
}

/// An HTTP answer that is not the expected JSON: rejected for 401/403, transient otherwise.
fn status_error(
    where_: &str,
    status: u16,
    retry_after: Option<Duration>,
    body: &str,
) -> FetchError {
    match status {
        401 | 403 => FetchError::Rejected {
            message: format!("{where_}: HTTP {status} (credentials refused)"),
            needs_login: false,
        },
        200..=299 => FetchError::Transient {
            message: format!("{where_}: expected a JSON token response, got {body}"),
            retry_after,
        },
        _ => FetchError::Transient {
            message: format!("{where_}: HTTP {status} with {body}"),
            retry_after,
        },
    }
}

/// Finds the token endpoint of an OpenID Connect issuer.
async fn discover(
    name: &str,
    issuer: &Url,
    timeout: Option<Duration>,
) -> Result<Endpoints, FetchError> {
    let mut url = issuer.clone();
    let path = format!(
        "{}/.well-known/openid-configuration",
        issuer.path().trim_end_matches('/')
    );
    url.set_path(&path);
    let where_ = format!("provider `{name}`: discovery document {}", shown(&url));
    let mut request = reqwest::Request::new(reqwest::Method::GET, url);
    if timeout.is_some() {
        *request.timeout_mut() = timeout;
    }
    let answer = send(name, request).await?;
    if answer.status != 200 {
        return Err(status_error(
            &where_,
            answer.status,
            answer.retry_after,
            &answer.describe_body(),
        ));
    }
    let document: Value =
        serde_json::from_slice(&answer.body).map_err(|_| FetchError::Transient {
            message: format!("{where_}: expected JSON, got {}", answer.describe_body()),
            retry_after: None,
        })?;
    let endpoint = |key: &str| -> Result<Option<Url>, FetchError> {
        let Some(text) = document.get(key) else {
            return Ok(None);
        };
        let url = text
            .as_str()
            .and_then(|text| Url::parse(text).ok())
            .filter(|url| matches!(url.scheme(), "http" | "https"))
            .ok_or_else(|| FetchError::Transient {
                message: format!("{where_}: `{key}` is not an http(s) URL"),
                retry_after: None,
            })?;
        Ok(Some(url))
    };
    let token = endpoint("token_endpoint")?.ok_or_else(|| FetchError::Transient {
        message: format!("{where_}: no `token_endpoint` in the document"),
        retry_after: None,
    })?;
    Ok(Endpoints {
        token,
        authorization: endpoint("authorization_endpoint")?,
        device: endpoint("device_authorization_endpoint")?,
        revocation: endpoint("revocation_endpoint")?,
    })
}

// ---------------------------------------------------------------------------------------------
// Generic HTTP exchange

async fn http_fetch(name: &str, exchange: &HttpExchange) -> Result<Fetched, FetchError> {
    let where_ = format!(
        "provider `{name}`: {} {}",
        exchange.method.as_str(),
        shown(&exchange.url)
    );
    let method = match exchange.method {
        HttpMethod::Get => reqwest::Method::GET,
        HttpMethod::Post => reqwest::Method::POST,
    };
    let mut request = upstream::client().request(method, exchange.url.clone());
    if let Some(timeout) = exchange.timeout {
        request = request.timeout(timeout);
    }
    if let Some(basic) = &exchange.basic {
        let user = resolve(name, "basic.user", &basic.user).await?;
        let password = resolve_allow_empty(name, "basic.password", &basic.password).await?;
        request = request.basic_auth(user.expose(), Some(password.expose()));
    }
    for (header, template) in &exchange.headers {
        let value = resolve(name, &format!("headers.{header}"), template).await?;
        request = request.header(header.as_str(), value.expose());
    }
    match &exchange.body {
        Some(HttpBody::Json(template)) => {
            let body = json_value(name, template).await?;
            request = request.json(&body);
        }
        Some(HttpBody::Form(fields)) => {
            let mut pairs = Vec::with_capacity(fields.len());
            for (key, template) in fields {
                let value = resolve_allow_empty(name, &format!("form.{key}"), template).await?;
                pairs.push((key.clone(), value.expose().to_owned()));
            }
            request = request.form(&pairs);
        }
        None => {}
    }
    let request = request
        .build()
        .map_err(|err| FetchError::Config(format!("{where_}: {err}")))?;
    let answer = send(name, request).await?;
    let document = parse_answer(&where_, &answer)?;
    if let Some(check) = &exchange.ok {
        let value = document.pointer(&check.pointer).map(scalar_text);
        if value.as_deref() != Some(check.equals.as_str()) {
            let explanation = check
                .message
                .as_deref()
                .and_then(|pointer| document.pointer(pointer))
                .map(scalar_text)
                .filter(|text| !text.is_empty())
                .map(|text| format!(": {}", one_line(&text)))
                .unwrap_or_default();
            return Err(FetchError::Rejected {
                message: format!(
                    "{where_}: {} is {} instead of {:?}{explanation}",
                    check.pointer,
                    value.map_or_else(|| "missing".to_owned(), |v| format!("{:?}", one_line(&v))),
                    check.equals
                ),
                needs_login: false,
            });
        }
    }
    let token = document
        .pointer(&exchange.token)
        .and_then(Value::as_str)
        .filter(|token| !token.is_empty())
        .map(|token| Secret::new(token.to_owned()))
        .ok_or_else(|| FetchError::Transient {
            message: format!(
                "{where_}: the response has no token (a string) at {}",
                exchange.token
            ),
            retry_after: None,
        })?;
    let lifetime = match &exchange.expires {
        ExpiresFrom::Jwt => lifetime_of(None, &token, exchange.ttl, true),
        ExpiresFrom::Pointer(pointer) => {
            let seconds = document
                .pointer(pointer)
                .and_then(|v| {
                    v.as_u64()
                        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                })
                .ok_or_else(|| FetchError::Transient {
                    message: format!(
                        "{where_}: the response has no number of seconds at {pointer}"
                    ),
                    retry_after: None,
                })?;
            Lifetime::Expires(Duration::from_secs(seconds))
        }
        ExpiresFrom::Unknown => exchange.ttl.map_or(Lifetime::Unbounded, Lifetime::Expires),
    };
    Ok(Fetched {
        token,
        lifetime,
        refresh_token: None,
    })
}

/// Classifies a non-2xx answer, or parses a 2xx one as JSON.
fn parse_answer(where_: &str, answer: &Answer) -> Result<Value, FetchError> {
    match answer.status {
        200..=299 => serde_json::from_slice(&answer.body).map_err(|_| FetchError::Transient {
            message: format!("{where_}: expected JSON, got {}", answer.describe_body()),
            retry_after: answer.retry_after,
        }),
        401 | 403 => Err(FetchError::Rejected {
            message: format!(
                "{where_}: HTTP {} (credentials refused); check the provider's keys",
                answer.status
            ),
            needs_login: false,
        }),
        429 | 500..=599 => Err(FetchError::Transient {
            message: format!(
                "{where_}: HTTP {} with {}",
                answer.status,
                answer.describe_body()
            ),
            retry_after: answer.retry_after,
        }),
        status => Err(FetchError::Rejected {
            message: format!(
                "{where_}: HTTP {status} with {}; check the provider's settings",
                answer.describe_body()
            ),
            needs_login: false,
        }),
    }
}

async fn resolve_allow_empty(
    name: &str,
    key: &str,
    template: &SecretTemplate,
) -> Result<Secret, FetchError> {
    // Empty values are legitimate here (the empty password of an API-key Basic pair).
    match template.resolve().await {
        Ok(value) => Ok(value),
        Err(ResolveError::Empty { .. }) => Ok(Secret::from("")),
        Err(err) => Err(FetchError::Config(format!(
            "provider `{name}`: {key}: {err}"
        ))),
    }
}

/// Builds the JSON body, resolving every string template.
async fn json_value(name: &str, template: &JsonTemplate) -> Result<Value, FetchError> {
    // Iterative rather than recursive: async recursion would need boxing.
    enum Work<'a> {
        Visit(&'a JsonTemplate),
        Array(usize),
        Object(Vec<String>),
    }
    let mut work = vec![Work::Visit(template)];
    let mut values: Vec<Value> = Vec::new();
    while let Some(item) = work.pop() {
        match item {
            Work::Visit(node) => match node {
                JsonTemplate::Bool(b) => values.push(Value::Bool(*b)),
                JsonTemplate::Integer(i) => values.push(Value::from(*i)),
                JsonTemplate::Float(f) => values.push(Value::from(*f)),
                JsonTemplate::String(text) => {
                    let resolved = resolve_allow_empty(name, "json", text).await?;
                    values.push(Value::String(resolved.expose().to_owned()));
                }
                JsonTemplate::Array(items) => {
                    work.push(Work::Array(items.len()));
                    work.extend(items.iter().rev().map(Work::Visit));
                }
                JsonTemplate::Object(fields) => {
                    work.push(Work::Object(
                        fields.iter().map(|(k, _)| k.clone()).collect(),
                    ));
                    work.extend(fields.iter().rev().map(|(_, v)| Work::Visit(v)));
                }
            },
            Work::Array(len) => {
                let items = values.split_off(values.len() - len);
                values.push(Value::Array(items));
            }
            Work::Object(keys) => {
                let items = values.split_off(values.len() - keys.len());
                values.push(Value::Object(keys.into_iter().zip(items).collect()));
            }
        }
    }
    Ok(values.pop().unwrap_or(Value::Null))
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A token endpoint's answer as the engine's [`Fetched`]: the access token (never empty), its
/// lifetime and the refresh token that came with it, if any. `where_` names the endpoint.
pub(crate) fn fetched_from(
    config: &OAuth2Config,
    response: &oauth2::basic::BasicTokenResponse,
    where_: &str,
) -> Result<Fetched, FetchError> {
    let token = Secret::new(response.access_token().secret().clone());
    if token.is_empty() {
        return Err(FetchError::Transient {
            message: format!("{where_}: the response has an empty access_token"),
            retry_after: None,
        });
    }
    let lifetime = lifetime_of(response.expires_in(), &token, config.ttl, false);
    Ok(Fetched {
        token,
        lifetime,
        refresh_token: response
            .refresh_token()
            .map(|rt| Secret::new(rt.secret().clone())),
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

/// Upstream text shown in one line, bounded.
pub(crate) fn one_line(text: &str) -> String {
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    line.trim().to_owned()
}

// ---------------------------------------------------------------------------------------------
// Expiry

/// The lifetime of a token: `expires_in` if given, else the JWT `exp` claim, else `ttl`, else
/// unbounded. With `jwt_expected`, a missing or unusable `exp` is logged.
pub(crate) fn lifetime_of(
    expires_in: Option<Duration>,
    token: &Secret,
    ttl: Option<Duration>,
    jwt_expected: bool,
) -> Lifetime {
    if let Some(expires_in) = expires_in {
        return Lifetime::Expires(expires_in);
    }
    if let Some(remaining) = jwt_remaining(token.expose()) {
        return Lifetime::Expires(remaining);
    }
    if jwt_expected {
        tracing::warn!(
            "the token has no usable JWT `exp` claim; {}",
            ttl.map_or_else(
                || "treating it as valid until invalidated".to_owned(),
                |t| format!("assuming {} s", t.as_secs())
            )
        );
    }
    ttl.map_or(Lifetime::Unbounded, Lifetime::Expires)
}

/// Time left until a JWT's `exp` claim (a number, or a numeric string as CRM.COM sends it).
/// The signature is not checked: the token is not ours to verify, only to schedule.
pub(crate) fn jwt_remaining(token: &str) -> Option<Duration> {
    let data = jsonwebtoken::dangerous::insecure_decode::<Value>(token).ok()?;
    let exp = data.claims.get("exp")?;
    let exp = exp
        .as_u64()
        .or_else(|| exp.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
        .or_else(|| exp.as_str().and_then(|s| s.trim().parse().ok()))?;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .ok()?
        .as_secs();
    Some(Duration::from_secs(exp.saturating_sub(now)))
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;

    fn jwt(claims: &str) -> String {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!(
            "{}.{}.sig",
            b64(r#"{"alg":"HS256","typ":"JWT"}"#),
            b64(claims)
        )
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn jwt_exp_as_number_or_string() {
        let in_an_hour = now() + 3600;
        let numeric = jwt(&format!(r#"{{"exp":{in_an_hour}}}"#));
        let remaining = jwt_remaining(&numeric).unwrap().as_secs();
        assert!((3590..=3600).contains(&remaining), "{remaining}");
        // CRM.COM sends exp as a string.
        let stringy = jwt(&format!(r#"{{"exp":"{in_an_hour}"}}"#));
        assert!(jwt_remaining(&stringy).is_some());
        assert_eq!(jwt_remaining(&jwt(r#"{"sub":"x"}"#)), None);
        assert_eq!(jwt_remaining("not-a-jwt"), None);
        let past = jwt(r#"{"exp":1000}"#);
        assert_eq!(jwt_remaining(&past), Some(Duration::ZERO));
    }

    #[test]
    fn lifetime_prefers_expires_in_then_jwt_then_ttl() {
        let hour = Duration::from_secs(3600);
        let opaque = Secret::from("opaque");
        assert_eq!(
            lifetime_of(Some(hour), &opaque, None, false),
            Lifetime::Expires(hour)
        );
        assert_eq!(
            lifetime_of(None, &opaque, Some(hour), false),
            Lifetime::Expires(hour)
        );
        assert_eq!(lifetime_of(None, &opaque, None, false), Lifetime::Unbounded);
        let token = Secret::new(jwt(&format!(r#"{{"exp":{}}}"#, now() + 60)));
        assert!(
            matches!(lifetime_of(None, &token, Some(hour), true), Lifetime::Expires(d) if d <= Duration::from_secs(60))
        );
    }

    #[tokio::test]
    async fn json_bodies_keep_structure_and_order() {
        let template = JsonTemplate::Object(vec![
            (
                "access_token_identifier".into(),
                JsonTemplate::Object(vec![(
                    "authentication_code".into(),
                    JsonTemplate::String(SecretTemplate::parse("code-1").unwrap()),
                )]),
            ),
            (
                "unit".into(),
                JsonTemplate::String(SecretTemplate::parse("1").unwrap()),
            ),
            (
                "list".into(),
                JsonTemplate::Array(vec![JsonTemplate::Integer(1), JsonTemplate::Bool(true)]),
            ),
        ]);
        let value = json_value("crm", &template).await.unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "access_token_identifier": {"authentication_code": "code-1"},
                "unit": "1",
                "list": [1, true]
            })
        );
    }
}
