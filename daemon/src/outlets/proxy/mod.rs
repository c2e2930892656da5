//! The local auth proxy (`proxy = { listen, upstream, retry_on }`): a program that only takes a
//! base URL sends plain HTTP to the proxy, which forwards each request to the one configured
//! origin with the provider's header (any `Authorization` the caller sent is replaced) and
//! streams the answer back.
//!
//! It is not an open proxy: no `CONNECT`, no absolute-form request URIs, no redirects followed,
//! no other host reachable. Only this user gets in: a Unix-socket proxy lives in a 0700
//! directory and checks each peer's uid; a loopback TCP proxy requires the capability path
//! prefix ([`capability`]) that `tok proxy-url NAME` prints, and refuses `Host` headers that
//! do not name the loopback listener (so a web page cannot reach it by DNS rebinding).
//!
//! - [`listen`] — binding (loopback TCP or a private Unix socket), accepting, the peer check.
//! - [`forward`] — one request: the checks, the header swap, the upstream call, the retry
//!   after a 401, streaming both ways.
//! - [`capability`] — the TCP listener's path prefix.

pub(crate) mod capability;
mod forward;
mod listen;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use tokend_protocol::{ErrorCode, ProxyStatus, Response, Secret};
use tokio::sync::watch;

use crate::config::{ProxyConfig, ProxyListen};
use crate::kinds::Services;
use crate::metrics::{Histogram, escape};
use crate::server::state::Providers;
use crate::upstream::shown;

/// Bounds (seconds) of the proxy's latency histogram (time to the upstream's response headers).
const LATENCY_BUCKETS: [f64; 12] = [
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// What a request is forwarded with: the config in force and the capability of a TCP listener.
#[derive(Debug)]
pub(super) struct Route {
    pub(super) config: ProxyConfig,
    pub(super) capability: Option<Secret>,
}

/// What the listener and every request share.
#[derive(Debug)]
pub(super) struct Shared {
    route: RwLock<Arc<Route>>,
    /// The providers in force (a reload replaces them; requests look theirs up each time).
    providers: watch::Receiver<Arc<Providers>>,
    services: Arc<Services>,
    /// The bound TCP address (the real port when the config says 0).
    bound: Mutex<Option<SocketAddr>>,
    stats: Stats,
}

impl Shared {
    pub(super) fn route(&self) -> Arc<Route> {
        Arc::clone(&self.route.read().unwrap_or_else(PoisonError::into_inner))
    }

    pub(super) fn bound(&self) -> Option<SocketAddr> {
        *self.bound.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Counters of one proxy.
#[derive(Debug)]
pub(super) struct Stats {
    requests: AtomicU64,
    /// Upstream answers by class: 1xx to 5xx.
    by_class: [AtomicU64; 5],
    retries: AtomicU64,
    /// Requests refused or failed here (no token, upstream unreachable, not allowed).
    refused: AtomicU64,
    /// The last upstream status (0: none yet).
    last_status: AtomicU32,
    /// Why it is not listening, or the last failure.
    error: Mutex<Option<String>>,
    latency: Histogram,
}

impl Stats {
    fn new() -> Self {
        Self {
            requests: AtomicU64::new(0),
            by_class: Default::default(),
            retries: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            last_status: AtomicU32::new(0),
            error: Mutex::new(None),
            latency: Histogram::new(&LATENCY_BUCKETS),
        }
    }

    /// An upstream answer with `status` after `elapsed`.
    pub(super) fn answered(&self, status: u16, elapsed: Duration) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(class) = self.by_class.get(usize::from(status / 100).wrapping_sub(1)) {
            class.fetch_add(1, Ordering::Relaxed);
        }
        self.last_status.store(u32::from(status), Ordering::Relaxed);
        self.latency.observe(elapsed);
    }

    pub(super) fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// A request refused or failed here; `error` is kept for `tok status` when given.
    pub(super) fn refused(&self, error: Option<String>) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        if let Some(error) = error {
            self.set_error(Some(error));
        }
    }

    pub(super) fn set_error(&self, error: Option<String>) {
        *self.error.lock().unwrap_or_else(PoisonError::into_inner) = error;
    }
}

/// A running (or failed-to-bind) auth proxy.
#[derive(Debug)]
pub(crate) struct Proxy {
    listen: ProxyListen,
    shared: Arc<Shared>,
    task: Option<tokio::task::AbortHandle>,
}

impl Proxy {
    /// Binds `config.listen` and starts serving. A bind failure is kept for `tok status` (the
    /// daemon and its other proxies keep running).
    pub(crate) fn start(
        config: ProxyConfig,
        capability: Option<Secret>,
        providers: watch::Receiver<Arc<Providers>>,
        services: Arc<Services>,
    ) -> Self {
        let listen = config.listen.clone();
        let shared = Arc::new(Shared {
            route: RwLock::new(Arc::new(Route { config, capability })),
            providers,
            services,
            bound: Mutex::new(None),
            stats: Stats::new(),
        });
        let task = match listen::bind(&listen) {
            Ok(listener) => {
                *shared.bound.lock().unwrap_or_else(PoisonError::into_inner) = listener.local_tcp();
                tracing::info!(
                    listen = %listener.shown(),
                    upstream = %shown(&shared.route().config.upstream),
                    "auth proxy listening"
                );
                Some(tokio::spawn(listen::serve(listener, Arc::clone(&shared))).abort_handle())
            }
            Err(error) => {
                tracing::error!("{error}");
                shared.stats.set_error(Some(error));
                None
            }
        };
        Self {
            listen,
            shared,
            task,
        }
    }

    /// Where it listens, as configured.
    pub(crate) fn listen(&self) -> &ProxyListen {
        &self.listen
    }

    /// The provider whose header it adds.
    pub(crate) fn provider(&self) -> String {
        self.shared.route().config.provider.clone()
    }

    /// A reload kept its address: the rest of the config (and the capability) may change.
    pub(crate) fn update(&self, config: ProxyConfig, capability: Option<Secret>) {
        *self
            .shared
            .route
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(Route { config, capability });
    }

    /// Stops listening (requests in flight finish) and removes its socket file.
    pub(crate) fn stop(self) {
        if let Some(task) = &self.task {
            task.abort();
        }
        if let (ProxyListen::Unix(path), Some(_)) = (&self.listen, &self.task) {
            listen::remove_socket(path);
        }
    }

    pub(crate) fn status(&self) -> ProxyStatus {
        let route = self.shared.route();
        let stats = &self.shared.stats;
        let listen = match (&self.listen, self.shared.bound()) {
            (ProxyListen::Tcp(_), Some(bound)) => bound.to_string(),
            (listen, _) => listen.to_string(),
        };
        ProxyStatus {
            provider: route.config.provider.clone(),
            listen,
            upstream: shown(&route.config.upstream),
            requests: stats.requests.load(Ordering::Relaxed),
            last_status: u16::try_from(stats.last_status.load(Ordering::Relaxed))
                .ok()
                .filter(|status| *status != 0),
            error: stats
                .error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }

    /// The base URL a program should use: `http://ADDRESS/CAPABILITY`, or
    /// `http+unix://PERCENT-ENCODED-PATH` for a Unix socket.
    pub(crate) fn url(&self) -> Result<Secret, Response> {
        let route = self.shared.route();
        if self.task.is_none() {
            let error = self
                .shared
                .stats
                .error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
                .unwrap_or_default();
            return Err(Response::error(
                ErrorCode::Config,
                format!(
                    "the auth proxy of `{}` is not listening: {error}",
                    route.config.provider
                ),
            ));
        }
        Ok(
            match (&self.listen, self.shared.bound(), &route.capability) {
                (ProxyListen::Tcp(_), Some(bound), Some(capability)) => {
                    Secret::new(format!("http://{bound}/{}", capability.expose()))
                }
                (ProxyListen::Unix(path), _, _) => Secret::new(format!(
                    "http+unix://{}",
                    percent_encode(&path.to_string_lossy())
                )),
                (ProxyListen::Tcp(address), _, _) => Secret::new(format!("http://{address}")),
            },
        )
    }
}

/// (feature `fuzzing`) What one client sends to a loopback TCP proxy (127.0.0.1:8701, with a
/// capability, in front of `https://api.example.com/base/`), through the same HTTP/1.1 server
/// and request checks a real connection gets. No provider is configured, so a request that
/// passes every check ends in a 502 here and nothing is sent upstream. Returns the start of
/// what the proxy answered (at most 64 KiB).
#[cfg(feature = "fuzzing")]
pub(crate) async fn serve_bytes(input: &[u8], services: Arc<Services>) -> Vec<u8> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let bound = SocketAddr::from(([127, 0, 0, 1], 8701));
    let config = ProxyConfig {
        provider: "api".to_owned(),
        listen: ProxyListen::Tcp(bound),
        upstream: url::Url::parse("https://api.example.com/base/").expect("a valid URL"),
        retry_on: vec![401],
    };
    let (_keep, providers) = watch::channel(Arc::new(Providers::new()));
    let shared = Arc::new(Shared {
        route: RwLock::new(Arc::new(Route {
            config,
            capability: Some(Secret::new("ab".repeat(16))),
        })),
        providers,
        services,
        bound: Mutex::new(Some(bound)),
        stats: Stats::new(),
    });
    let (client, server) = tokio::io::duplex(64 * 1024);
    let (mut from_proxy, mut to_proxy) = tokio::io::split(client);
    let send = async move {
        let _ = to_proxy.write_all(input).await;
        let _ = to_proxy.shutdown().await;
    };
    let receive = async move {
        let mut answered = Vec::new();
        let mut chunk = [0u8; 8192];
        while let Ok(read @ 1..) = from_proxy.read(&mut chunk).await {
            if answered.len() < 64 * 1024 {
                answered.extend_from_slice(&chunk[..read]);
            }
        }
        answered
    };
    let ((), (), answered) = tokio::join!(listen::connection(server, shared), send, receive);
    answered
}

/// Every byte but the unreserved ones of RFC 3986 as `%XX` (`/` too: the path is the host part
/// of an `http+unix` URL).
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// The proxies' families of the Prometheus exposition.
pub(crate) fn render_metrics(proxies: &[Proxy], text: &mut String) {
    let mut requests = String::from(
        "# HELP tokend_proxy_requests_total Requests the auth proxy forwarded, by upstream status \
         class.\n# TYPE tokend_proxy_requests_total counter\n",
    );
    let mut retries = String::from(
        "# HELP tokend_proxy_retries_total Requests sent again with a fresh token after a \
         retry_on status.\n# TYPE tokend_proxy_retries_total counter\n",
    );
    let mut refused = String::from(
        "# HELP tokend_proxy_refused_total Requests the auth proxy refused or could not \
         forward.\n# TYPE tokend_proxy_refused_total counter\n",
    );
    let mut latency = String::from(
        "# HELP tokend_proxy_upstream_latency_seconds Time from a request to the upstream's \
         response headers.\n# TYPE tokend_proxy_upstream_latency_seconds histogram\n",
    );
    for proxy in proxies {
        let stats = &proxy.shared.stats;
        let label = format!("provider=\"{}\"", escape(&proxy.provider()));
        for (index, class) in stats.by_class.iter().enumerate() {
            let _ = writeln!(
                requests,
                "tokend_proxy_requests_total{{{label},code=\"{}xx\"}} {}",
                index + 1,
                class.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            retries,
            "tokend_proxy_retries_total{{{label}}} {}",
            stats.retries.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            refused,
            "tokend_proxy_refused_total{{{label}}} {}",
            stats.refused.load(Ordering::Relaxed)
        );
        stats.latency.render(
            "tokend_proxy_upstream_latency_seconds",
            &label,
            &mut latency,
        );
    }
    for family in [requests, retries, refused, latency] {
        text.push_str(&family);
    }
}
