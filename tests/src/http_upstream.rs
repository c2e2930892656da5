//! A loopback HTTP/1.1 API for the auth-proxy tests and benchmark: it records every request
//! (method, path, query, headers, body size), streams large bodies both ways without holding
//! them, and issues tokens (`/token`) so that a provider's token changes on each fetch.
//!
//! Routes:
//! - `/token` — `{"token": "tok-N", "expires_in": 3600}`, N counting from 1 (`?ttl=S`: that
//!   lifetime instead); 401 while [`HttpUpstream::reject_tokens`] is on.
//! - `/download/N` — N bytes of `x`, streamed in 64 KiB chunks.
//! - `/upload` — reads the body as it comes, answers its length.
//! - `/strict…` — 401 for the first token it sees, 200 `ok` for any other.
//! - `/redirect` — 302 to `http://evil.example/`.
//! - `/ping` — 200 `pong` (the benchmark's request; not recorded, so a long run holds nothing);
//!   `?delay_ms=N` answers after N ms.
//! - anything else — 201 when the path ends in `/created`, else 200, with `x-upstream: yes` and a
//!   JSON echo of the method, path, query and `authorization` header.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Header names in lower case, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body_len: u64,
}

impl Seen {
    /// The first value of header `name` (lower case).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Default)]
struct State {
    seen: Mutex<Vec<Seen>>,
    tokens: AtomicU64,
    reject_tokens: std::sync::atomic::AtomicBool,
    strict_first: Mutex<Option<String>>,
}

/// The running upstream; stopped on drop.
#[derive(Debug)]
pub struct HttpUpstream {
    address: SocketAddr,
    state: Arc<State>,
    runtime: Option<tokio::runtime::Runtime>,
}

type Body = BoxBody<Bytes, Infallible>;

impl HttpUpstream {
    /// Starts it on `127.0.0.1` (any free port), served by `workers` threads.
    #[must_use]
    pub fn start(workers: usize) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers.max(1))
            .enable_all()
            .build()
            .expect("upstream runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind the upstream");
        let address = listener.local_addr().expect("upstream address");
        let state = Arc::new(State::default());
        let shared = Arc::clone(&state);
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let state = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service = service_fn(move |request| serve(request, Arc::clone(&state)));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            address,
            state,
            runtime: Some(runtime),
        }
    }

    /// `http://127.0.0.1:PORT`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Every request so far (`/token` included).
    #[must_use]
    pub fn seen(&self) -> Vec<Seen> {
        self.state
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The requests so far whose path starts with `prefix`.
    #[must_use]
    pub fn seen_under(&self, prefix: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|seen| seen.path.starts_with(prefix))
            .collect()
    }

    /// While on, `/token` answers 401 (the credentials were revoked).
    pub fn reject_tokens(&self, on: bool) {
        self.state.reject_tokens.store(on, Ordering::SeqCst);
    }

    /// Tokens issued by `/token` so far.
    #[must_use]
    pub fn tokens_issued(&self) -> u64 {
        self.state.tokens.load(Ordering::SeqCst)
    }
}

impl Drop for HttpUpstream {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn full(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).boxed());
    *response.status_mut() = status;
    response
}

async fn serve(
    request: Request<Incoming>,
    state: Arc<State>,
) -> Result<Response<Body>, Infallible> {
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let authorization = request
        .headers()
        .get("authorization")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    // Read the body as it comes, keeping only its length (an upload may be large).
    let mut body = request.into_body();
    let mut body_len = 0_u64;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    body_len += data.len() as u64;
                }
            }
            Err(_) => break,
        }
    }
    let seen = Seen {
        method: method.clone(),
        path: path.clone(),
        query: query.clone(),
        headers,
        body_len,
    };
    if path != "/ping" {
        state
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(seen);
    }

    let response = if path == "/token" && state.reject_tokens.load(Ordering::SeqCst) {
        full(StatusCode::UNAUTHORIZED, "{\"error\":\"invalid_client\"}")
    } else if path == "/token" {
        let n = state.tokens.fetch_add(1, Ordering::SeqCst) + 1;
        let ttl = query
            .as_deref()
            .and_then(|q| q.strip_prefix("ttl="))
            .and_then(|ttl| ttl.parse::<u64>().ok())
            .unwrap_or(3600);
        let mut response = full(
            StatusCode::OK,
            format!("{{\"token\":\"tok-{n}\",\"expires_in\":{ttl}}}"),
        );
        response
            .headers_mut()
            .insert("content-type", "application/json".parse().expect("value"));
        response
    } else if let Some(size) = path.strip_prefix("/download/") {
        let size: u64 = size.parse().unwrap_or(0);
        let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
        let chunks = size.div_ceil(chunk.len() as u64);
        let stream = futures_stream(chunk, size, chunks);
        let mut response = Response::new(StreamBody::new(stream).boxed());
        response
            .headers_mut()
            .insert("content-length", size.to_string().parse().expect("value"));
        response
    } else if path == "/upload" {
        full(StatusCode::OK, body_len.to_string())
    } else if path.starts_with("/strict") {
        let auth = authorization.unwrap_or_default();
        let mut first = state
            .strict_first
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let first = first.get_or_insert_with(|| auth.clone());
        if *first == auth {
            full(StatusCode::UNAUTHORIZED, "token rejected")
        } else {
            full(StatusCode::OK, "ok")
        }
    } else if path == "/redirect" {
        let mut response = full(StatusCode::FOUND, "");
        response
            .headers_mut()
            .insert("location", "http://evil.example/".parse().expect("value"));
        response
    } else if path == "/ping" {
        // `?delay_ms=N`: an API that takes N ms to answer.
        if let Some(ms) = query
            .as_deref()
            .and_then(|q| q.strip_prefix("delay_ms="))
            .and_then(|n| n.parse::<u64>().ok())
        {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
        full(StatusCode::OK, "pong")
    } else {
        let status = if path.ends_with("/created") {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        let echo = serde_json::json!({
            "method": method,
            "path": path,
            "query": query,
            "authorization": authorization,
        });
        let mut response = full(status, echo.to_string());
        response
            .headers_mut()
            .insert("x-upstream", "yes".parse().expect("value"));
        response
    };
    Ok(response)
}

/// `chunks` frames of `chunk`, the last one cut so that the total is `size`.
fn futures_stream(
    chunk: Bytes,
    size: u64,
    chunks: u64,
) -> impl futures_util::Stream<Item = Result<Frame<Bytes>, Infallible>> + Send + Sync + 'static {
    let mut sent = 0_u64;
    let mut index = 0_u64;
    futures_util::stream::poll_fn(move |_| {
        if index == chunks {
            return std::task::Poll::Ready(None);
        }
        index += 1;
        let left = size - sent;
        let piece = if left < chunk.len() as u64 {
            chunk.slice(..usize::try_from(left).unwrap_or(0))
        } else {
            chunk.clone()
        };
        sent += piece.len() as u64;
        std::task::Poll::Ready(Some(Ok(Frame::data(piece))))
    })
}
