//! One request through the auth proxy.
//!
//! Refused here, with a plain-text answer saying why: `CONNECT` (405), absolute-form or
//! asterisk-form request targets (400), on a TCP listener a `Host` that is not the listener's
//! loopback address (421) or a path without the capability (403). Otherwise the request goes
//! to the configured origin: same method, path (under the upstream's base path) and query;
//! headers minus hop-by-hop ones, `Host`, `Expect`, `Authorization` and the provider's header,
//! plus the provider's header; the body streamed. The answer comes back the same way. Nothing
//! follows redirects: a 3xx goes to the caller as is.
//!
//! When the upstream answers a `retry_on` status (401 by default) and the request body was kept
//! (at most [`MAX_RETRY_BODY`], with a known length), the token is invalidated and the request
//! sent once more with a fresh one; a streamed body cannot be replayed, so that answer goes to
//! the caller.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::{Body as _, Bytes, Incoming};

use super::{Shared, capability};
use crate::config::ProxyListen;
use crate::provider::{CachedGrant, Provider};
use crate::upstream::shown;

/// Largest request body kept so that the request can be sent again after a 401.
pub(crate) const MAX_RETRY_BODY: u64 = 1024 * 1024;
/// The token handed to the upstream must stay valid this long (the request is in flight).
const MIN_TTL: Duration = Duration::from_secs(10);

type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// A response body: the upstream's, streamed, or one of ours.
pub(super) type Body = BoxBody<Bytes, BoxError>;

/// Hop-by-hop headers (RFC 9110 section 7.6.1), never forwarded in either direction.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// A request refused or failed here.
struct Refusal {
    status: StatusCode,
    message: String,
    /// Shown in `tok status` as the proxy's last error (a failure, not a caller's mistake).
    failure: bool,
}

fn refuse(status: StatusCode, message: String) -> Refusal {
    Refusal {
        status,
        message,
        failure: false,
    }
}

fn fail(message: String) -> Refusal {
    Refusal {
        status: StatusCode::BAD_GATEWAY,
        message,
        failure: true,
    }
}

/// hyper's service function.
pub(super) async fn handle(
    request: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Body>, Infallible> {
    Ok(match forward(request, &shared).await {
        Ok(response) => response,
        Err(refusal) => {
            let message = format!("tokend auth proxy: {}\n", refusal.message);
            shared
                .stats
                .refused(refusal.failure.then(|| refusal.message.clone()));
            let mut response = Response::new(
                Full::new(Bytes::from(message))
                    .map_err(|never| match never {})
                    .boxed(),
            );
            *response.status_mut() = refusal.status;
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            response
        }
    })
}

async fn forward(request: Request<Incoming>, shared: &Shared) -> Result<Response<Body>, Refusal> {
    let route = shared.route();
    let config = &route.config;
    let origin = shown(&config.upstream);
    if request.method() == Method::CONNECT {
        return Err(refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "CONNECT is refused: this proxy only forwards to {origin}; it is not an open proxy"
            ),
        ));
    }
    let uri = request.uri();
    if uri.scheme().is_some() || uri.authority().is_some() || !uri.path().starts_with('/') {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            format!(
                "absolute-form request targets are refused: this proxy only forwards to \
                 {origin}; send the path alone (GET /items), with the base URL `tok proxy-url \
                 {}` prints",
                config.provider
            ),
        ));
    }
    if let (ProxyListen::Tcp(_), Some(bound)) = (&config.listen, shared.bound()) {
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|value| value.to_str().ok());
        if !host.is_some_and(|host| names_listener(host, bound)) {
            return Err(refuse(
                StatusCode::MISDIRECTED_REQUEST,
                format!(
                    "the Host header must name this proxy's loopback address ({bound}, or \
                     localhost:{}); a request for another host is refused",
                    bound.port()
                ),
            ));
        }
    }
    let rest = match &route.capability {
        Some(capability) => capability::strip(uri.path(), capability).ok_or_else(|| {
            refuse(
                StatusCode::FORBIDDEN,
                format!(
                    "this proxy needs its capability path: use the base URL `tok proxy-url {}` \
                     prints",
                    config.provider
                ),
            )
        })?,
        None => uri.path(),
    };
    let mut target = config.upstream.clone();
    let path = format!("{}{rest}", target.path().trim_end_matches('/'));
    target.set_path(&path);
    target.set_query(uri.query());
    if target.origin() != config.upstream.origin() {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            format!("the path would leave {origin}; refused"),
        ));
    }

    let provider = shared
        .providers
        .borrow()
        .get(&config.provider)
        .cloned()
        .ok_or_else(|| fail(format!("provider `{}` is not configured", config.provider)))?;
    let (parts, body) = request.into_parts();
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    for name in [header::HOST, header::EXPECT, header::AUTHORIZATION] {
        headers.remove(name);
    }

    // A body of known, small size is kept for a retry; any other is streamed once.
    let small = body
        .size_hint()
        .exact()
        .is_some_and(|len| len <= MAX_RETRY_BODY);
    let (kept, mut streamed) = if small {
        let bytes = Limited::new(body, usize::try_from(MAX_RETRY_BODY).unwrap_or(usize::MAX))
            .collect()
            .await
            .map_err(|err| {
                refuse(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the request body: {err}"),
                )
            })?
            .to_bytes();
        (Some(bytes), None)
    } else {
        (None, Some(body))
    };

    let mut retried = false;
    let mut token = grant(&provider, &config.provider).await?;
    loop {
        let mut request = reqwest::Request::new(parts.method.clone(), target.clone());
        *request.headers_mut() = with_token(&headers, &token);
        *request.body_mut() = Some(match (&kept, streamed.take()) {
            (Some(bytes), _) => reqwest::Body::from(bytes.clone()),
            (None, Some(body)) => reqwest::Body::wrap(body),
            (None, None) => reqwest::Body::from(Bytes::new()),
        });
        let started = Instant::now();
        let response = shared
            .services
            .http
            .proxy_client()
            .execute(request)
            .await
            .map_err(|err| fail(format!("cannot reach {origin}: {}", without_url(err))))?;
        let status = response.status();
        shared.stats.answered(status.as_u16(), started.elapsed());
        if !retried && kept.is_some() && config.retry_on.contains(&status.as_u16()) {
            retried = true;
            provider.invalidate();
            let fresh = grant(&provider, &config.provider).await?;
            if !Arc::ptr_eq(&fresh, &token) {
                tracing::info!(
                    provider = %config.provider,
                    status = status.as_u16(),
                    "auth proxy: the upstream refused the token; retrying with a fresh one"
                );
                shared.stats.retried();
                token = fresh;
                drop(response);
                continue;
            }
        }
        shared.stats.set_error(None);
        let response: Response<reqwest::Body> = response.into();
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        return Ok(Response::from_parts(
            parts,
            body.map_err(|err| Box::new(err) as BoxError).boxed(),
        ));
    }
}

/// The provider's current token, or the 502 saying why there is none.
async fn grant(provider: &Arc<Provider>, name: &str) -> Result<Arc<CachedGrant>, Refusal> {
    provider
        .token(MIN_TTL)
        .await
        .map(|served| served.cached)
        .map_err(|response| {
            let message = match response {
                tokend_protocol::Response::Error(reply) => reply.message,
                other => format!("unexpected answer {other:?}"),
            };
            fail(format!("no token for `{name}`: {message}"))
        })
}

/// The caller's headers with the provider's header set (replacing any the caller sent).
fn with_token(headers: &HeaderMap, token: &CachedGrant) -> HeaderMap {
    let mut headers = headers.clone();
    if let Some(line) = &token.grant().header
        && let Ok(name) = HeaderName::from_bytes(line.name.as_bytes())
        && let Ok(mut value) = HeaderValue::from_str(line.value.expose())
    {
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    headers
}

/// Removes the hop-by-hop headers and those the `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(&named) {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
}

/// Whether a `Host` header names the listener: its IP literal or `localhost`, with its port
/// (an absent port means 80).
fn names_listener(host: &str, bound: SocketAddr) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) if !port.contains(']') => (name, port.parse::<u16>().ok()),
        _ => (host, Some(80)),
    };
    if port != Some(bound.port()) {
        return false;
    }
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip == bound.ip())
}

/// A transport error without the URL reqwest adds (its query may carry secrets).
fn without_url(err: reqwest::Error) -> String {
    let err = err.without_url();
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_must_name_the_loopback_listener() {
        let v4: SocketAddr = "127.0.0.1:8701".parse().unwrap();
        let v6: SocketAddr = "[::1]:8701".parse().unwrap();
        for good in ["127.0.0.1:8701", "localhost:8701", "LOCALHOST:8701"] {
            assert!(names_listener(good, v4), "{good}");
        }
        assert!(names_listener("[::1]:8701", v6));
        for bad in [
            "127.0.0.1",
            "127.0.0.1:8702",
            "evil.example:8701",
            "127.0.0.2:8701",
            "[::1]:8701",
            "",
        ] {
            assert!(!names_listener(bad, v4), "{bad}");
        }
    }

    #[test]
    fn hop_by_hop_headers_and_those_named_by_connection_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-private"),
        );
        headers.insert("x-private", HeaderValue::from_static("1"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut headers);
        let left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["x-kept"]);
    }
}
