//! The `oauth2` crate's client for a provider, with its client authentication, and the HTTP
//! plumbing its requests go through (tokend's upstream client, its limits, the provider's
//! `timeout`); plus the hand-built form requests the crate does not cover.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, ClientId, ClientSecret, DeviceAuthorizationUrl, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, RevocationUrl, StandardRevocableToken, StandardTokenResponse,
    TokenUrl,
};
use tokend_protocol::Secret;
use url::Url;

use super::endpoints::Endpoints;
use super::{ClientAuth, OAuth2Config, assertion};
use crate::kinds::{FetchCx, FetchError};
use crate::upstream::{Answer, TransportError, Upstream};

/// Status, `Retry-After` and body description of the last token-endpoint response, kept aside
/// because the `oauth2` crate's errors do not carry them.
#[derive(Debug, Default, Clone)]
pub(crate) struct ResponseMeta {
    pub(crate) status: u16,
    pub(crate) retry_after: Option<Duration>,
    pub(crate) body: String,
}

/// The OpenID Connect field of a token response the `oauth2` crate does not know: the
/// `id_token` that comes with the access token when the scopes include `openid`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct IdTokenField {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) id_token: Option<String>,
}

impl oauth2::ExtraTokenFields for IdTokenField {}

/// A token response, with its id_token.
pub(crate) type TokenResponse = StandardTokenResponse<IdTokenField, BasicTokenType>;

/// The crate's basic client with [`TokenResponse`], endpoints not set yet.
type NewClient = oauth2::Client<
    BasicErrorResponse,
    TokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
>;

/// The `oauth2` client every flow of a provider uses (the crate's basic client, with
/// [`TokenResponse`]).
pub(crate) type OAuthClient = oauth2::Client<
    BasicErrorResponse,
    TokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointMaybeSet,
    EndpointMaybeSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointSet,
>;

/// The `oauth2` client for `config` at `endpoints`, with its client authentication.
pub(crate) async fn oauth_client(
    cx: &FetchCx<'_>,
    config: &OAuth2Config,
    endpoints: &Endpoints,
) -> Result<OAuthClient, FetchError> {
    let mut client = NewClient::new(ClientId::new(config.client_id.clone()))
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
            // Assertions: `client_id` in the body, the assertion added per request.
            ClientAuth::Post | ClientAuth::PrivateKeyJwt | ClientAuth::ClientAssertion => {
                AuthType::RequestBody
            }
        });
    if let Some(template) = &config.client_secret {
        let secret = cx.resolve("client_secret", template).await?;
        if config.client_auth == ClientAuth::Basic {
            // As the crate sends it (RFC 6749 section 2.3.1): both halves form-encoded.
            cx.sent.record_basic(
                &form_encoded(&config.client_id),
                &form_encoded(secret.expose()),
            );
        }
        client = client.set_client_secret(ClientSecret::new(secret.expose().to_owned()));
    }
    Ok(client)
}

/// POSTs `pairs` as a form to `url` (an endpoint of the provider's authorization server) with
/// the provider's client authentication: for what the `oauth2` crate does not cover (the
/// `jwt_bearer` and `token_exchange` grants; revocation at an `http` endpoint, which the crate
/// refuses).
pub(crate) async fn post_form(
    cx: &FetchCx<'_>,
    config: &OAuth2Config,
    endpoints: &Endpoints,
    url: &Url,
    mut pairs: Vec<(String, Secret)>,
) -> Result<Answer, FetchError> {
    let mut basic = None;
    match (&config.client_secret, config.client_auth) {
        (Some(template), ClientAuth::Basic) => {
            basic = Some(cx.resolve("client_secret", template).await?);
        }
        (Some(template), _) => {
            let secret = cx.resolve("client_secret", template).await?;
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
            for (key, value) in assertion::client_assertion(cx, config, endpoints).await? {
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
        let (id, secret) = (
            form_encoded(&config.client_id),
            form_encoded(secret.expose()),
        );
        cx.sent.record_basic(&id, &secret);
        let pair = Secret::new(format!("{id}:{secret}"));
        let value = Secret::new(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair.expose())
        ));
        let mut value = http::HeaderValue::from_str(value.expose())
            .map_err(|_| FetchError::Config("client_secret cannot be sent".to_owned()))?;
        value.set_sensitive(true);
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, value);
    }
    *request.body_mut() = Some(body.expose().to_owned().into());
    if config.timeout.is_some() {
        *request.timeout_mut() = config.timeout;
    }
    cx.send(request).await
}

/// A response future of [`token_http`].
pub(crate) type HttpFuture =
    Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, TransportError>> + Send>>;

/// The HTTP client the `oauth2` crate's requests go through: tokend's upstream client (its
/// limits, no redirects), with the provider's `timeout`. Status, `Retry-After` and a
/// description of the body of the last response are kept in the returned slot, because the
/// crate's errors do not carry them.
pub(crate) fn token_http(
    upstream: Arc<Upstream>,
    timeout: Option<Duration>,
) -> (
    impl Fn(oauth2::HttpRequest) -> HttpFuture + Send + Sync,
    Arc<Mutex<ResponseMeta>>,
) {
    let meta = Arc::new(Mutex::new(ResponseMeta::default()));
    let slot = Arc::clone(&meta);
    let http = move |request: oauth2::HttpRequest| -> HttpFuture {
        let meta = Arc::clone(&slot);
        let upstream = Arc::clone(&upstream);
        Box::pin(async move {
            let mut request =
                reqwest::Request::try_from(request).map_err(|err| TransportError::Other {
                    url: "token endpoint".into(),
                    reason: err.to_string(),
                })?;
            if timeout.is_some() {
                *request.timeout_mut() = timeout;
            }
            let answer = upstream.send(request).await?;
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

/// An HTTP answer that is not the expected JSON: rejected for 401/403, transient otherwise.
pub(crate) fn status_error(
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

/// `text` form-encoded (`application/x-www-form-urlencoded`).
fn form_encoded(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
