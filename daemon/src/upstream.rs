//! Talking to token endpoints: one HTTP client with the limits every upstream response gets.
//!
//! Upstream responses are untrusted. Connects and whole requests time out, redirects are not
//! followed (a token request must not be replayed to another host), bodies are read up to
//! [`MAX_BODY`] and never logged, and each response keeps only what the engine needs: status,
//! `Retry-After`, content type and the (wiped-on-drop) body. Every error names the URL without
//! its query string, which may carry secrets.

use std::sync::OnceLock;
use std::time::Duration;

use tokend_protocol::SecretBuf;
use url::Url;

/// Largest response body read from a token endpoint (tokens and discovery documents are small).
pub const MAX_BODY: usize = 256 * 1024;
/// Time allowed to open a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for a whole request, body included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// An idle pooled connection is closed after this long: before the 5 s keep-alive timeout of
/// Node.js and Apache servers, so a request never goes out on a connection the server is
/// closing at that moment (which fails it: a device-flow poll every 6 s then lost 10 s).
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// What the engine keeps of a response.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) retry_after: Option<Duration>,
    pub(crate) content_type: Option<String>,
    pub(crate) headers: http::HeaderMap,
    pub(crate) body: SecretBuf,
}

impl Answer {
    /// A short description of a body that is not what we expected (never its content).
    pub(crate) fn describe_body(&self) -> String {
        let kind = self.content_type.as_deref().unwrap_or("no content type");
        let looks_like_html = self.body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<');
        if looks_like_html {
            format!("an HTML page ({kind}, {} bytes)", self.body.len())
        } else {
            format!("{kind}, {} bytes", self.body.len())
        }
    }
}

/// A request that got no usable HTTP response.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TransportError {
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("{url} did not answer within {seconds} s")]
    Timeout { url: String, seconds: u64 },
    #[error("{url} answered with a body larger than {limit} KiB")]
    TooLarge { url: String, limit: usize },
    #[error("request to {url} failed: {reason}")]
    Other { url: String, reason: String },
}

/// A URL as shown in messages and logs: no query string, no user info.
pub(crate) fn shown(url: &Url) -> String {
    let mut clean = url.clone();
    clean.set_query(None);
    clean.set_fragment(None);
    let _ = clean.set_username("");
    let _ = clean.set_password(None);
    clean.to_string()
}

/// The HTTP client every token request of a daemon goes through, built on first use so that a
/// daemon with only static providers never loads TLS or HTTP machinery.
#[derive(Debug, Default)]
pub(crate) struct Upstream {
    client: OnceLock<reqwest::Client>,
    proxy: OnceLock<reqwest::Client>,
}

/// An auth-proxy request whose upstream sends nothing for this long fails (a body that stalls
/// mid-way included); there is no limit on the whole request, so a large download goes through.
pub const PROXY_READ_TIMEOUT: Duration = Duration::from_secs(300);

impl Upstream {
    /// The client, with tokend's limits (connect and request timeouts, no redirects).
    pub(crate) fn client(&self) -> &reqwest::Client {
        self.client.get_or_init(|| {
            // rustls with the ring provider: one process-wide choice, made here.
            let _ = rustls::crypto::ring::default_provider().install_default();
            reqwest::Client::builder()
                .use_rustls_tls()
                .connect_timeout(CONNECT_TIMEOUT)
                .timeout(REQUEST_TIMEOUT)
                .pool_idle_timeout(POOL_IDLE_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("tokend/", env!("CARGO_PKG_VERSION")))
                .build()
                .unwrap_or_else(|err| {
                    tracing::error!("cannot build the HTTP client ({err}); using defaults");
                    reqwest::Client::new()
                })
        })
    }

    /// The client of the auth proxies: the same TLS and connection settings, no redirects, no
    /// limit on the whole request or its body (they are streamed), no `User-Agent` of its own
    /// (the caller's goes through), bodies passed through as the upstream encoded them.
    pub(crate) fn proxy_client(&self) -> &reqwest::Client {
        self.proxy.get_or_init(|| {
            let _ = rustls::crypto::ring::default_provider().install_default();
            reqwest::Client::builder()
                .use_rustls_tls()
                .connect_timeout(CONNECT_TIMEOUT)
                .read_timeout(PROXY_READ_TIMEOUT)
                .pool_idle_timeout(POOL_IDLE_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_else(|err| {
                    tracing::error!("cannot build the proxy's HTTP client ({err}); using defaults");
                    reqwest::Client::builder()
                        .redirect(reqwest::redirect::Policy::none())
                        .build()
                        .unwrap_or_default()
                })
        })
    }

    /// Sends `request` and reads the answer within the limits.
    pub(crate) async fn send(&self, request: reqwest::Request) -> Result<Answer, TransportError> {
        let url = shown(request.url());
        let limit = request.timeout().copied().unwrap_or(REQUEST_TIMEOUT);
        let classify = |err: &reqwest::Error| classify(&url, limit, err);
        let mut response = self
            .client()
            .execute(request)
            .await
            .map_err(|err| classify(&err))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let retry_after = headers
            .get(http::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(parse_retry_after);
        let content_type = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        if response
            .content_length()
            .is_some_and(|len| len > MAX_BODY as u64)
        {
            return Err(TransportError::TooLarge {
                url,
                limit: MAX_BODY / 1024,
            });
        }
        // Sized from Content-Length up front; growing it any other way goes through `grow`, so no
        // reallocation leaves an unwiped copy of the body (it may hold tokens) behind.
        let expected = response
            .content_length()
            .and_then(|len| usize::try_from(len).ok())
            .unwrap_or(4096);
        let mut body = SecretBuf::with_capacity(expected.min(MAX_BODY));
        while let Some(chunk) = response.chunk().await.map_err(|err| classify(&err))? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(TransportError::TooLarge {
                    url,
                    limit: MAX_BODY / 1024,
                });
            }
            body.grow_to(body.len() + chunk.len());
            body.extend_from_slice(&chunk);
        }
        Ok(Answer {
            status,
            retry_after,
            content_type,
            headers,
            body,
        })
    }
}

fn classify(url: &str, limit: Duration, err: &reqwest::Error) -> TransportError {
    let url = url.to_owned();
    if err.is_timeout() {
        TransportError::Timeout {
            url,
            seconds: limit.as_secs(),
        }
    } else if err.is_connect() {
        TransportError::Connect {
            url,
            reason: root_cause(err),
        }
    } else {
        TransportError::Other {
            url,
            reason: root_cause(err),
        }
    }
}

/// The innermost error message (reqwest's own Display repeats the URL, with its query).
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

/// `Retry-After`: delay-seconds or an HTTP date.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate_to_unix(value)?;
    Some(Duration::from_secs(
        at.saturating_sub(tokend_protocol::clock::unix_now()),
    ))
}

/// Parses the IMF-fixdate form of an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn httpdate_to_unix(value: &str) -> Option<u64> {
    let parts: Vec<&str> = value.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day: i64 = day.parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)?;
    let year: i64 = year.parse().ok()?;
    let mut hms = time.split(':').map(|part| part.parse::<i64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    // Untrusted input: out-of-range fields must not overflow the arithmetic below.
    if !(1970..=9999).contains(&year)
        || !(1..=31).contains(&day)
        || !(0..24).contains(&h)
        || !(0..60).contains(&m)
        || !(0..=60).contains(&s)
    {
        return None;
    }
    // Days from civil (H. Hinnant), months counted from March.
    let month = i64::try_from(month).ok()? + 1;
    let (y, mp) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + h * 3600 + m * 60 + s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            httpdate_to_unix("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(
            httpdate_to_unix("Sun, 06 Nov 99999999999999 08:49:37 GMT"),
            None
        );
        assert_eq!(
            httpdate_to_unix("Sun, 06 Nov 1994 99999999999:49:37 GMT"),
            None
        );
    }

    #[test]
    fn shown_urls_drop_query_and_credentials() {
        let url = Url::parse("https://user:pw@auth.example.com/token?api_key=s3cret#x").unwrap();
        assert_eq!(shown(&url), "https://auth.example.com/token");
    }
}
