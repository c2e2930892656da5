//! The loopback redirect listener of the authorization code flow (RFC 8252 section 7.3).
//!
//! It binds before the URL is shown, on the configured loopback address (port 0: an ephemeral
//! port). It answers one HTTP/1.1 `GET` per connection, reading at most [`MAX_REQUEST_HEAD`]
//! bytes within [`REQUEST_READ_TIMEOUT`], each connection in its own task. A request to the
//! redirect path without our `state` (forged or stale) is refused with a 400 page and the login
//! goes on; the first one with our `state` ends it: success when it carries a code and the code
//! exchange succeeds, failure when it carries an `error`. Other paths (a browser's
//! `/favicon.ico`) get a 404.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokend_protocol::Secret;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use url::Url;

use crate::kinds::fetched::one_line;

/// Longest request head the redirect listener reads.
const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// How long one connection to the redirect listener may take to send its request.
const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Binds the loopback listener for `configured` and returns it with the redirect URI that
/// names its actual port.
pub(crate) async fn bind(configured: &Url) -> Result<(TcpListener, Url), String> {
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
                "cannot listen for the redirect on {ip}:{port} ({err}); pick \
                 another port in redirect_uri, or port 0 for any free one"
            )
        })?;
    let actual = listener
        .local_addr()
        .map_err(|err| format!("the redirect listener has no address: {err}"))?;
    let mut redirect = configured.clone();
    redirect
        .set_port(Some(actual.port()))
        .map_err(|()| "redirect_uri cannot carry a port".to_owned())?;
    Ok((listener, redirect))
}

/// What arrived at the redirect path.
pub(crate) enum Callback {
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
pub(crate) async fn wait_for_callback(listener: &TcpListener, path: &str, state: &str) -> Callback {
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
            "",
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
            "",
        )
        .await;
        return None;
    };
    if url.path() != path {
        answer_page(&mut stream, 404, "Not found", "Nothing here.", "").await;
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
            "If you started a login, finish it in the tab that tok login opened.",
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

/// Writes a small HTML page and closes the connection: the title, what happened, and (when
/// there is one) the next step. Readable on any screen (a viewport meta, system fonts, text
/// that wraps), and nothing but its own inline style may load (a content security policy).
pub(crate) async fn answer_page(
    stream: &mut TcpStream,
    status: u16,
    title: &str,
    text: &str,
    next: &str,
) {
    let response = render_page(status, title, text, next);
    // The person may already have closed the tab: nothing to do about a failed write.
    let _ = tokio::time::timeout(REQUEST_READ_TIMEOUT, async {
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// The whole HTTP response of [`answer_page`].
fn render_page(status: u16, title: &str, text: &str, next: &str) -> String {
    let (reason, accent, mark) = match status {
        200 => ("OK", "#1a7f37", "&#10003;"),
        404 => ("Not Found", "#57606a", "&#8226;"),
        _ => ("Bad Request", "#cf222e", "&#10007;"),
    };
    let next = if next.is_empty() {
        String::new()
    } else {
        format!("<p class=\"next\">{}</p>", html_escape(next))
    };
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>tokend: {title}</title><style>\
         body{{margin:0;padding:0 1rem;background:#f6f8fa;color:#1f2328;\
         font:16px/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif}}\
         main{{max-width:36rem;margin:12vh auto;padding:1.5rem 2rem;background:#fff;\
         border-radius:12px;border-top:6px solid {accent};box-shadow:0 1px 4px #0002}}\
         h1{{font-size:1.5rem;margin:0 0 .75rem;color:{accent}}}\
         p{{margin:.5rem 0;overflow-wrap:anywhere}}.next{{color:#57606a}}\
         </style></head><body><main><h1>{mark} {title}</h1><p>{}</p>{next}</main></body>\
         </html>\n",
        html_escape(text)
    );
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/html; charset=utf-8\r\n\
         content-length: {}\r\ncache-control: no-store\r\n\
         content-security-policy: default-src 'none'; style-src 'unsafe-inline'\r\n\
         x-content-type-options: nosniff\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_say_what_happened_and_what_next_and_load_nothing() {
        let page = render_page(
            400,
            "Login failed",
            "refused <x>",
            "Run `tok login a` again.",
        );
        assert!(page.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{page}");
        assert!(
            page.contains("<title>tokend: Login failed</title>"),
            "{page}"
        );
        assert!(page.contains("<p>refused &lt;x&gt;</p>"), "{page}");
        assert!(
            page.contains("<p class=\"next\">Run `tok login a` again.</p>"),
            "{page}"
        );
        assert!(page.contains("name=\"viewport\""), "{page}");
        assert!(
            page.contains("content-security-policy: default-src 'none'"),
            "{page}"
        );
        let (head, body) = page.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}\r\n", body.len())));
        assert!(!render_page(404, "Not found", "Nothing here.", "").contains("class=\"next\""));
    }

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
        let (listener, redirect) = bind(&configured).await.unwrap();
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
        let (listener, _) = bind(&configured).await.unwrap();
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
