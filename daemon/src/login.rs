//! Interactive logins, run by the daemon for `tok login`: the authorization code flow with PKCE
//! (RFC 7636, S256) and a loopback redirect (RFC 8252 section 7.3), and the device flow
//! (RFC 8628).
//!
//! [`start`] prepares a flow and returns what the person must see (the authorization URL, or
//! the verification URL and user code) together with the rest of the flow as a future: waiting
//! for the redirect and exchanging the code, or polling the token endpoint. The provider runs
//! that future in its own task, so the login survives the `tok` process that started it.
//!
//! The redirect listener binds before the URL is shown, on the configured loopback address
//! (port 0: an ephemeral port). It answers one HTTP/1.1 `GET` per connection, reading at most
//! [`MAX_REQUEST_HEAD`] bytes within [`REQUEST_READ_TIMEOUT`], each connection in its own task.
//! A request to the redirect path without our `state` (forged or stale) is refused with a 400
//! page and the login goes on; the first one with our `state` ends it: success when it carries
//! a code and the code exchange succeeds, failure when it carries an `error`. Other paths (a
//! browser's `/favicon.ico`) get a 404.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::time::Duration;

use oauth2::basic::BasicErrorResponseType;
use oauth2::{
    AuthorizationCode, CsrfToken, DeviceCodeErrorResponseType, PkceCodeChallenge, RedirectUrl,
    RequestTokenError, Scope, StandardDeviceAuthorizationResponse, StandardErrorResponse,
};
use tokend_protocol::{LoginPrompt, Secret};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use url::Url;

use crate::kinds::{AuthorizationCodeLogin, OAuth2Config, OAuth2Grant};
use crate::source::{self, Endpoints, Fetched, ResponseMeta, described, one_line};
use crate::upstream::shown;

/// Longest request head the redirect listener reads.
const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// How long one connection to the redirect listener may take to send its request.
const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The rest of a login once the person has been told what to do.
pub(crate) type Flow = Pin<Box<dyn Future<Output = Result<Fetched, String>> + Send>>;

/// A login ready to show.
pub(crate) struct Started {
    pub(crate) prompt: LoginPrompt,
    pub(crate) flow: Flow,
}

/// Prepares `name`'s login: binds the redirect listener or asks for a device code.
pub(crate) async fn start(
    name: &str,
    config: &OAuth2Config,
    endpoints: &Endpoints,
) -> Result<Started, String> {
    let client = source::oauth_client(name, config, endpoints)
        .await
        .map_err(|err| err.message().to_owned())?;
    match &config.grant {
        OAuth2Grant::AuthorizationCode(login) => {
            authorization_code(name, config, login, client, endpoints).await
        }
        OAuth2Grant::DeviceCode(_) => device_code(name, config, client, endpoints).await,
        other => Err(format!(
            "provider `{name}` uses grant \"{}\", which needs no login; `tok login` is for \
             grant = \"authorization_code\" or \"device_code\"",
            other.name()
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Authorization code with PKCE

async fn authorization_code(
    name: &str,
    config: &OAuth2Config,
    login: &AuthorizationCodeLogin,
    client: source::OAuthClient,
    endpoints: &Endpoints,
) -> Result<Started, String> {
    let (listener, redirect) = bind_redirect(name, &login.redirect_uri).await?;
    let client = client.set_redirect_uri(RedirectUrl::from_url(redirect.clone()));
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(CsrfToken::new_random)
        .map_err(|err| {
            format!(
                "provider `{name}`: no authorization endpoint ({err}); set auth_url, or an \
                 issuer whose discovery document has authorization_endpoint"
            )
        })?
        .set_pkce_challenge(challenge);
    for scope in &config.scopes {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    for (key, value) in &login.auth_params {
        request = request.add_extra_param(key.clone(), value.clone());
    }
    let (url, state) = request.url();
    let prompt = LoginPrompt {
        provider: name.to_owned(),
        url: url.to_string(),
        user_code: None,
        expires_in_secs: login.timeout.as_secs(),
    };

    let name = name.to_owned();
    let config = config.clone();
    let endpoints = endpoints.clone();
    let timeout = login.timeout;
    let flow = async move {
        let callback = tokio::time::timeout(
            timeout,
            wait_for_callback(&listener, redirect.path(), state.secret()),
        )
        .await
        .map_err(|_| {
            format!(
                "no redirect arrived within {}: the login was abandoned; run `tok login {name}` \
                 again (with --no-browser to copy the URL yourself)",
                crate::kinds::format_duration(timeout)
            )
        })?;
        let (stream, code) = match callback {
            Callback::Code { stream, code } => (stream, code),
            Callback::Refused {
                mut stream,
                message,
            } => {
                answer_page(&mut stream, 400, "Login failed", &message).await;
                return Err(format!("provider `{name}`: {message}"));
            }
        };
        let (http, meta) = source::token_http(config.timeout);
        // Signed now, not when the login started: an assertion lives a few minutes only.
        let assertion = match source::client_assertion(&name, &config, &endpoints).await {
            Ok(assertion) => assertion,
            Err(err) => {
                let mut stream = stream;
                answer_page(&mut stream, 400, "Login failed", err.message()).await;
                return Err(err.message().to_owned());
            }
        };
        let mut request = client
            .exchange_code(AuthorizationCode::new(code.expose().to_owned()))
            .set_pkce_verifier(verifier);
        for (key, value) in assertion {
            request = request.add_extra_param(key, value);
        }
        let result = request.request_async(&http).await;
        let meta = meta.lock().map(|m| m.clone()).unwrap_or_default();
        let outcome = token_outcome(&name, &config, &endpoints_shown(&meta), result);
        let mut stream = stream;
        match &outcome {
            Ok(_) => {
                answer_page(
                    &mut stream,
                    200,
                    "Logged in",
                    &format!("tokend is logged in to {name}. You can close this tab."),
                )
                .await;
            }
            Err(message) => answer_page(&mut stream, 400, "Login failed", message).await,
        }
        outcome
    };
    Ok(Started {
        prompt,
        flow: Box::pin(flow),
    })
}

/// Binds the loopback listener for `configured` and returns it with the redirect URI that
/// names its actual port.
async fn bind_redirect(name: &str, configured: &Url) -> Result<(TcpListener, Url), String> {
    let ip = match configured.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
        // `localhost`: the IPv4 loopback, which every resolver maps it to.
        _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
    };
    let port = configured.port_or_known_default().unwrap_or(0);
    let listener = TcpListener::bind(SocketAddr::new(ip, port))
        .await
        .map_err(|err| {
            format!(
                "provider `{name}`: cannot listen for the redirect on {ip}:{port} ({err}); pick \
                 another port in redirect_uri, or port 0 for any free one"
            )
        })?;
    let actual = listener
        .local_addr()
        .map_err(|err| format!("provider `{name}`: the redirect listener has no address: {err}"))?;
    let mut redirect = configured.clone();
    redirect
        .set_port(Some(actual.port()))
        .map_err(|()| format!("provider `{name}`: redirect_uri cannot carry a port"))?;
    Ok((listener, redirect))
}

/// What arrived at the redirect path.
enum Callback {
    /// A code with the right `state`; the connection waits for the result page.
    Code { stream: TcpStream, code: Secret },
    /// The server reported an error, or the request was not a valid answer to our request.
    Refused { stream: TcpStream, message: String },
}

/// Most connections to the redirect listener examined at once; more wait in the backlog.
const MAX_REDIRECT_READERS: usize = 32;

/// Serves the redirect listener until the redirect of our request arrives: a request for `path`
/// carrying our `state`. Each connection is read in its own task, so a client that connects and
/// sends nothing cannot hold up the browser's redirect.
async fn wait_for_callback(listener: &TcpListener, path: &str, state: &str) -> Callback {
    let (found, mut arrived) = tokio::sync::mpsc::channel::<Callback>(1);
    let mut readers = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            Some(callback) = arrived.recv() => return callback,
            Some(_) = readers.join_next(), if !readers.is_empty() => {}
            accepted = listener.accept(), if readers.len() < MAX_REDIRECT_READERS => {
                match accepted {
                    Ok((stream, _)) => {
                        let found = found.clone();
                        let (path, state) = (path.to_owned(), state.to_owned());
                        readers.spawn(async move {
                            if let Some(callback) = examine(stream, &path, &state).await {
                                let _ = found.send(callback).await;
                            }
                        });
                    }
                    // EMFILE and the like: do not spin.
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        }
    }
}

/// Answers one connection to the redirect listener; `Some` when it is our redirect.
async fn examine(mut stream: TcpStream, path: &str, state: &str) -> Option<Callback> {
    let head = tokio::time::timeout(REQUEST_READ_TIMEOUT, read_head(&mut stream)).await;
    let Ok(Some(target)) = head else {
        answer_page(
            &mut stream,
            400,
            "Bad request",
            "This is not an HTTP GET request.",
        )
        .await;
        return None;
    };
    // The target is origin-form (`/callback?code=…`): resolve it against a dummy base.
    let Ok(url) = Url::parse("http://127.0.0.1").and_then(|base| base.join(&target)) else {
        answer_page(
            &mut stream,
            400,
            "Bad request",
            "The request target is invalid.",
        )
        .await;
        return None;
    };
    if url.path() != path {
        answer_page(&mut stream, 404, "Not found", "Nothing here.").await;
        return None;
    }
    let query = |key: &str| {
        url.query_pairs()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.into_owned())
    };
    // Checked before anything else is believed: only our own authorization request knows this
    // value. A request without it is refused but does not end the login, so that nobody who
    // can reach the port can cut a person's login short.
    if query("state").as_deref() != Some(state) {
        tracing::warn!("refused a request to the login redirect whose state does not match");
        answer_page(
            &mut stream,
            400,
            "Login refused",
            "The redirect's state does not match the login request (a forged or stale \
             redirect). Nothing was done; the login in progress goes on.",
        )
        .await;
        return None;
    }
    if let Some(error) = query("error") {
        let description = query("error_description")
            .map(|text| format!(": {}", one_line(&text)))
            .unwrap_or_default();
        return Some(Callback::Refused {
            stream,
            message: format!(
                "the authorization server refused the login ({}{description})",
                one_line(&error)
            ),
        });
    }
    match query("code") {
        Some(code) if !code.is_empty() => Some(Callback::Code {
            stream,
            code: Secret::new(code),
        }),
        _ => Some(Callback::Refused {
            stream,
            message: "the redirect carries neither a code nor an error".to_owned(),
        }),
    }
}

/// Reads a request head; returns the target of a `GET`, `None` for anything else.
async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        if head.len() >= MAX_REQUEST_HEAD {
            return None;
        }
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        head.extend_from_slice(&chunk[..read]);
    }
    let line = head.split(|&byte| byte == b'\r').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("GET"), Some(target), Some(version)) if version.starts_with("HTTP/1.") => {
            Some(target.to_owned())
        }
        _ => None,
    }
}

/// Writes a small HTML page and closes the connection.
async fn answer_page(stream: &mut TcpStream, status: u16, title: &str, text: &str) {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Bad Request",
    };
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>tokend: {title}</title>\
         </head><body><h1>{title}</h1><p>{}</p></body></html>\n",
        html_escape(text)
    );
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/html; charset=utf-8\r\n\
         content-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    // The person may already have closed the tab: nothing to do about a failed write.
    let _ = tokio::time::timeout(REQUEST_READ_TIMEOUT, async {
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

// ---------------------------------------------------------------------------------------------
// Device flow

async fn device_code(
    name: &str,
    config: &OAuth2Config,
    client: source::OAuthClient,
    endpoints: &Endpoints,
) -> Result<Started, String> {
    let (http, meta) = source::token_http(config.timeout);
    let mut request = client.exchange_device_code().map_err(|err| {
        format!(
            "provider `{name}`: no device authorization endpoint ({err}); set device_url, or an \
             issuer whose discovery document has device_authorization_endpoint"
        )
    })?;
    for scope in &config.scopes {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    let details: StandardDeviceAuthorizationResponse =
        request.request_async(&http).await.map_err(|err| {
            let meta = meta.lock().map(|m| m.clone()).unwrap_or_default();
            let where_ = endpoints
                .device
                .as_ref()
                .map_or_else(String::new, |url| format!(" {}", shown(url)));
            match err {
                RequestTokenError::ServerResponse(error) => format!(
                    "provider `{name}`: the device authorization endpoint{where_} refused \
                     ({}); check client_id and scopes",
                    described(&error)
                ),
                _ => format!(
                    "provider `{name}`: the device authorization endpoint{where_} failed (HTTP \
                     {}, {})",
                    meta.status, meta.body
                ),
            }
        })?;
    let prompt = LoginPrompt {
        provider: name.to_owned(),
        url: details.verification_uri().to_string(),
        user_code: Some(details.user_code().secret().clone()),
        expires_in_secs: details.expires_in().as_secs(),
    };
    let name = name.to_owned();
    let config = config.clone();
    let flow = async move {
        let (http, _meta) = source::token_http(config.timeout);
        let expires = tokio::time::Instant::now() + details.expires_in();
        let result = loop {
            let result = client
                .exchange_device_access_token(&details)
                .request_async(&http, tokio::time::sleep, None)
                .await;
            // The crate stops polling at the first network error or unreadable answer; a login
            // that may take the person minutes should not end on a blip: poll on until the
            // code expires.
            match result {
                Err(RequestTokenError::Request(_) | RequestTokenError::Parse(..))
                    if tokio::time::Instant::now() + details.interval() < expires =>
                {
                    tracing::debug!(provider = %name, "device flow poll failed; polling on");
                    tokio::time::sleep(details.interval()).await;
                }
                other => break other,
            }
        };
        match result {
            Ok(response) => source::fetched_from(
                &config,
                &response,
                &format!("provider `{name}`: token endpoint"),
            )
            .map_err(|err| err.message().to_owned()),
            Err(RequestTokenError::ServerResponse(error)) => Err(match error.error() {
                DeviceCodeErrorResponseType::AccessDenied => format!(
                    "provider `{name}`: the login was denied on the verification page ({})",
                    described(&error)
                ),
                DeviceCodeErrorResponseType::ExpiredToken => format!(
                    "provider `{name}`: the code expired before the login was completed; run \
                     `tok login {name}` again"
                ),
                _ => format!(
                    "provider `{name}`: the token endpoint refused the device code ({})",
                    described(&error)
                ),
            }),
            Err(other) => Err(format!(
                "provider `{name}`: polling the token endpoint failed ({other})"
            )),
        }
    };
    Ok(Started {
        prompt,
        flow: Box::pin(flow),
    })
}

// ---------------------------------------------------------------------------------------------
// Shared

fn endpoints_shown(meta: &ResponseMeta) -> String {
    format!("HTTP {}, {}", meta.status, meta.body)
}

/// The token response of a code exchange as the engine's [`Fetched`], or why it failed.
fn token_outcome<RE: std::error::Error>(
    name: &str,
    config: &OAuth2Config,
    last_response: &str,
    result: Result<
        oauth2::basic::BasicTokenResponse,
        RequestTokenError<RE, StandardErrorResponse<BasicErrorResponseType>>,
    >,
) -> Result<Fetched, String> {
    match result {
        Ok(response) => source::fetched_from(
            config,
            &response,
            &format!("provider `{name}`: token endpoint"),
        )
        .map_err(|err| err.message().to_owned()),
        Err(RequestTokenError::ServerResponse(error)) => Err(format!(
            "provider `{name}`: the token endpoint refused the authorization code ({}); run \
             `tok login {name}` again",
            described(&error)
        )),
        Err(RequestTokenError::Request(err)) => Err(format!(
            "provider `{name}`: the code exchange failed ({err}); run `tok login {name}` again"
        )),
        Err(_) => Err(format!(
            "provider `{name}`: the token endpoint's answer is not a token response \
             ({last_response})"
        )),
    }
}

/// Revokes `refresh_token` at the revocation endpoint (RFC 7009). Sent by hand: the `oauth2`
/// crate refuses revocation endpoints that are not https, which loopback test servers and
/// some internal servers are.
pub(crate) async fn revoke(
    name: &str,
    config: &OAuth2Config,
    endpoints: &Endpoints,
    refresh_token: Secret,
) -> Result<(), String> {
    let url = endpoints
        .revocation
        .as_ref()
        .ok_or_else(|| "the server offers no revocation endpoint".to_owned())?;
    let pairs = vec![
        ("token".to_owned(), refresh_token),
        ("token_type_hint".to_owned(), Secret::from("refresh_token")),
    ];
    let answer = source::post_form(name, config, endpoints, url, pairs)
        .await
        .map_err(|err| err.message().to_owned())?;
    // RFC 7009 section 2.2: 200 whether or not the token was known.
    if answer.status == 200 {
        Ok(())
    } else {
        Err(format!(
            "the revocation endpoint {} answered HTTP {} with {}",
            shown(url),
            answer.status,
            answer.describe_body()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_server_text() {
        assert_eq!(
            html_escape("<script>\"x\" & y</script>"),
            "&lt;script&gt;&quot;x&quot; &amp; y&lt;/script&gt;"
        );
    }

    async fn get(address: SocketAddr, target: &'static str) -> String {
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream
            .write_all(format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer).await;
        answer
    }

    #[tokio::test]
    async fn the_redirect_listener_ignores_other_paths_and_checks_state() {
        let configured = Url::parse("http://127.0.0.1:0/callback").unwrap();
        let (listener, redirect) = bind_redirect("p", &configured).await.unwrap();
        assert_ne!(redirect.port(), Some(0));
        let address = listener.local_addr().unwrap();
        let waiter = tokio::spawn(async move {
            match wait_for_callback(&listener, "/callback", "expected-state").await {
                Callback::Code { code, .. } => Ok(code.expose().to_owned()),
                Callback::Refused { message, .. } => Err(message),
            }
        });
        assert!(
            get(address, "/favicon.ico")
                .await
                .starts_with("HTTP/1.1 404")
        );
        let answer = tokio::spawn(get(address, "/callback?code=c0de&state=expected-state"));
        assert_eq!(waiter.await.unwrap(), Ok("c0de".to_owned()));
        drop(answer);

        // A forged state is refused and the login goes on; a silent connection holds up
        // nothing; the genuine redirect still arrives.
        let (listener, _) = bind_redirect("p", &configured).await.unwrap();
        let address = listener.local_addr().unwrap();
        let waiter = tokio::spawn(async move {
            match wait_for_callback(&listener, "/callback", "expected-state").await {
                Callback::Code { code, .. } => Ok(code.expose().to_owned()),
                Callback::Refused { message, .. } => Err(message),
            }
        });
        let _silent = TcpStream::connect(address).await.unwrap();
        let forged = get(address, "/callback?code=evil&state=forged").await;
        assert!(forged.starts_with("HTTP/1.1 400"), "{forged}");
        assert!(forged.contains("does not match"), "{forged}");
        let genuine = tokio::spawn(get(address, "/callback?code=good&state=expected-state"));
        assert_eq!(waiter.await.unwrap(), Ok("good".to_owned()));
        drop(genuine);
    }
}
