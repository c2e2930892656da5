//! The chaos upstream of the soak: one loopback HTTP/1.1 server (keep-alive, hand-written so
//! that it can misbehave at the byte level) playing every token endpoint the soak's providers
//! call, which answers a share of requests with a fault instead:
//!
//! - a latency spike (the answer comes 0.5-3 s late), or a drip slower than the provider's
//!   timeout;
//! - 500, 503 with `Retry-After`, 429 with `Retry-After`, or a 200 HTML maintenance page;
//! - a connection reset (RST, no answer), a truncated body (fewer bytes than `Content-Length`,
//!   then the connection closes);
//! - a slow drip: the answer trickles out a few bytes at a time over 1-4 s.
//!
//! A fault never runs the endpoint, so it never issues a token nor rotates a refresh token: a
//! server that failed did not commit. The endpoints themselves live in [`super::issuer`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use super::issuer::{Answer, Issuer, Request};

/// Largest request head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Largest request body accepted.
const MAX_BODY: usize = 256 * 1024;
/// An idle keep-alive connection is closed after this long.
const IDLE: Duration = Duration::from_secs(30);

/// What happens to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    None,
    /// The endpoint answers after this long.
    Spike(Duration),
    ServerError,
    /// 503 with `Retry-After` (seconds).
    Unavailable(u64),
    /// 429 with `Retry-After` (seconds).
    TooMany(u64),
    /// 200 with an HTML page.
    Html,
    /// RST, no answer.
    Reset,
    /// Half the body, then the connection closes.
    Truncated,
    /// The endpoint's answer, a few bytes at a time over this long. On an endpoint that
    /// rotates a refresh token, a 503 drips instead (see the module doc).
    Drip(Duration),
    /// A 503 dripped over 12 s: longer than every provider's 10 s timeout.
    Stall,
}

/// Faults by kind, counted as they are served.
#[derive(Debug, Default)]
pub(crate) struct FaultCounts {
    pub(crate) requests: AtomicU64,
    pub(crate) spikes: AtomicU64,
    pub(crate) errors_5xx: AtomicU64,
    pub(crate) retry_after: AtomicU64,
    pub(crate) html: AtomicU64,
    pub(crate) resets: AtomicU64,
    pub(crate) truncated: AtomicU64,
    pub(crate) drips: AtomicU64,
    pub(crate) stalls: AtomicU64,
}

/// The running server.
#[derive(Debug)]
pub(crate) struct Chaos {
    pub(crate) base: String,
    pub(crate) counts: Arc<FaultCounts>,
    enabled: Arc<AtomicBool>,
    runtime: tokio::runtime::Runtime,
}

impl Chaos {
    /// Binds 127.0.0.1:0 and serves `issuer`'s endpoints, a share `rate` of requests faulty.
    pub(crate) fn start(issuer: Arc<Issuer>, rate: f64) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("the chaos upstream's runtime");
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind the chaos upstream on loopback");
        let base = format!("http://{}", listener.local_addr().expect("bound address"));
        let counts = Arc::new(FaultCounts::default());
        let enabled = Arc::new(AtomicBool::new(true));
        let shared = Arc::new(Shared {
            issuer,
            counts: Arc::clone(&counts),
            enabled: Arc::clone(&enabled),
            rate,
        });
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                tokio::spawn(connection(stream, Arc::clone(&shared)));
            }
        });
        Self {
            base,
            counts,
            enabled,
            runtime,
        }
    }

    /// Faults on or off (off for the final checks).
    pub(crate) fn set_faults(&self, on: bool) {
        self.enabled.store(on, Ordering::SeqCst);
    }

    /// Stops serving (drops every connection).
    pub(crate) fn stop(self) {
        self.runtime.shutdown_timeout(Duration::from_secs(1));
    }
}

#[derive(Debug)]
struct Shared {
    issuer: Arc<Issuer>,
    counts: Arc<FaultCounts>,
    enabled: Arc<AtomicBool>,
    rate: f64,
}

impl Shared {
    /// A fault for the next request: none while faults are off, else one of every kind, in
    /// proportion.
    fn pick(&self) -> Fault {
        if !self.enabled.load(Ordering::SeqCst) || fastrand::f64() >= self.rate {
            return Fault::None;
        }
        let ms = |low: u64, high: u64| Duration::from_millis(fastrand::u64(low..high));
        match fastrand::u32(0..100) {
            0..15 => Fault::Spike(ms(500, 3000)),
            15..30 => Fault::ServerError,
            30..42 => Fault::Unavailable(fastrand::u64(1..3)),
            42..48 => Fault::TooMany(1),
            48..56 => Fault::Html,
            56..70 => Fault::Reset,
            70..84 => Fault::Truncated,
            84..97 => Fault::Drip(ms(1000, 4000)),
            _ => Fault::Stall,
        }
    }
}

/// Serves requests on one connection until it closes, a fault closes it, or it idles.
async fn connection(mut stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let mut buffer = Vec::with_capacity(4096);
    loop {
        let request = match tokio::time::timeout(IDLE, read_request(&mut stream, &mut buffer)).await
        {
            Ok(Ok(Some(request))) => request,
            _ => return,
        };
        shared.counts.requests.fetch_add(1, Ordering::Relaxed);
        let fault = shared.pick();
        if !serve(&mut stream, &shared, &request, fault).await {
            return;
        }
    }
}

/// Answers one request with `fault`; false when the connection must close.
async fn serve(stream: &mut TcpStream, shared: &Shared, request: &Request, fault: Fault) -> bool {
    let counts = &shared.counts;
    match fault {
        Fault::None => write_answer(stream, &shared.issuer.answer(request)).await,
        Fault::Spike(delay) => {
            counts.spikes.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(delay).await;
            write_answer(stream, &shared.issuer.answer(request)).await
        }
        Fault::ServerError => {
            counts.errors_5xx.fetch_add(1, Ordering::Relaxed);
            write_answer(stream, &Answer::text(500, "internal error")).await
        }
        Fault::Unavailable(seconds) | Fault::TooMany(seconds) => {
            counts.retry_after.fetch_add(1, Ordering::Relaxed);
            let status = if fault == Fault::TooMany(seconds) {
                429
            } else {
                503
            };
            let mut answer = Answer::text(status, "try again later");
            answer.retry_after = Some(seconds);
            write_answer(stream, &answer).await
        }
        Fault::Html => {
            counts.html.fetch_add(1, Ordering::Relaxed);
            let mut answer = Answer::text(200, "<html><body>Down for maintenance</body></html>");
            answer.content_type = "text/html";
            write_answer(stream, &answer).await
        }
        Fault::Reset => {
            counts.resets.fetch_add(1, Ordering::Relaxed);
            // A zero linger makes the close an RST. It cannot block: nothing is left to send.
            #[allow(deprecated)]
            let _ = stream.set_linger(Some(Duration::ZERO));
            false
        }
        Fault::Truncated => {
            counts.truncated.fetch_add(1, Ordering::Relaxed);
            let bytes = Answer::json(
                200,
                &serde_json::json!({
                    "access_token": "never-issued-truncated-token-value",
                    "token_type": "Bearer",
                    "expires_in": 3600,
                }),
            )
            .encode();
            let half = bytes.len() - 40;
            let _ = stream.write_all(&bytes[..half]).await;
            let _ = stream.flush().await;
            false
        }
        Fault::Drip(over) => {
            counts.drips.fetch_add(1, Ordering::Relaxed);
            let answer = if shared.issuer.rotates(request) {
                Answer::text(503, "slowly refusing")
            } else {
                shared.issuer.answer(request)
            };
            drip(stream, &answer.encode(), over).await
        }
        Fault::Stall => {
            counts.stalls.fetch_add(1, Ordering::Relaxed);
            let answer = Answer::text(503, "stalled").encode();
            drip(stream, &answer, Duration::from_secs(12)).await;
            false
        }
    }
}

/// Writes `bytes` in about 20 pieces spread over `over`.
async fn drip(stream: &mut TcpStream, bytes: &[u8], over: Duration) -> bool {
    let piece = bytes.len().div_ceil(20).max(1);
    let pause = over / 20;
    for chunk in bytes.chunks(piece) {
        if stream.write_all(chunk).await.is_err() || stream.flush().await.is_err() {
            return false;
        }
        tokio::time::sleep(pause).await;
    }
    true
}

async fn write_answer(stream: &mut TcpStream, answer: &Answer) -> bool {
    stream.write_all(&answer.encode()).await.is_ok() && stream.flush().await.is_ok()
}

/// Reads one request (head and `Content-Length` body); `None` when the peer closed cleanly.
async fn read_request(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
) -> std::io::Result<Option<Request>> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let mut arrived = Instant::now();
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if buffer.len() > MAX_HEAD {
            return Err(bad("request head too large"));
        }
        let mut chunk = [0u8; 4096];
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return if buffer.is_empty() {
                Ok(None)
            } else {
                Err(bad("closed mid-request"))
            };
        }
        if buffer.is_empty() {
            arrived = Instant::now();
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut start = lines.next().unwrap_or_default().split(' ');
    let method = start.next().unwrap_or_default().to_owned();
    let target = start.next().unwrap_or_default().to_owned();
    let mut headers = Vec::new();
    for line in lines.filter(|line| !line.is_empty()) {
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let length = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.parse::<usize>().ok())
        .unwrap_or(0);
    if length > MAX_BODY {
        return Err(bad("request body too large"));
    }
    while buffer.len() < head_end + length {
        let mut chunk = [0u8; 4096];
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Err(bad("closed mid-body"));
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
    let body = buffer[head_end..head_end + length].to_vec();
    buffer.drain(..head_end + length);
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path.to_owned(), query.to_owned()),
        None => (target, String::new()),
    };
    Ok(Some(Request {
        method,
        path,
        query,
        headers,
        body,
        arrived,
    }))
}
