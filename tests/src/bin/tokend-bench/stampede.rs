//! e. Stampede on an expired token: many open connections ask for the same expired token at
//! the same instant; single flight means one upstream request for all of them.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokend_client::{AsyncClient, Client, Endpoint, GetOptions, ProviderState, ProviderStatus};

use crate::upstream::{FakeEndpoint, STAMPEDE};
use crate::{IO_TIMEOUT, PROCESS_WAIT, Rss, percentile, rss};

/// The minimum lifetime every stampede request asks for (the token lives 3 s).
const MIN_TTL: Duration = Duration::from_secs(1);
/// Pause between two `status` calls while waiting for a provider's state.
const STATUS_POLL: Duration = Duration::from_millis(20);

/// What one stampede showed.
#[derive(Debug)]
pub(crate) struct Stampede {
    /// Clients asked for ([`crate::Knobs::stampede`]).
    pub(crate) clients: usize,
    /// Clients that connected and answered a ping; only these take part.
    pub(crate) connected: usize,
    /// Why the next client could not connect, if one could not.
    pub(crate) connect_error: Option<String>,
    /// tokend's memory with every connection open.
    pub(crate) open_rss: Rss,
    /// How long after the connections were open the token was seen expired, or why it was not.
    pub(crate) expired: Result<Duration, String>,
    /// Upstream requests between the release and the last answer.
    pub(crate) upstream: usize,
    /// Distinct token values the callers received.
    pub(crate) tokens: usize,
    /// Callers that got an error, and the first error.
    pub(crate) failed: usize,
    pub(crate) first_failure: Option<String>,
    /// Per-caller latency of the successful gets, sorted, in ns.
    pub(crate) latencies: Vec<u64>,
    /// From the first caller's start to the last caller's answer, in ns.
    pub(crate) wall_ns: f64,
    /// From the first caller's start to the upstream request's arrival at the fake endpoint,
    /// in ns (NaN without one).
    pub(crate) upstream_after_ns: f64,
}

impl Stampede {
    pub(crate) fn latency(&self, q: f64) -> f64 {
        percentile(&self.latencies, q)
    }

    pub(crate) fn max_latency(&self) -> f64 {
        self.latencies.last().map_or(f64::NAN, |&ns| ns as f64)
    }
}

fn stampede_status(providers: Vec<ProviderStatus>) -> Option<ProviderStatus> {
    providers
        .into_iter()
        .find(|provider| provider.name == STAMPEDE.provider)
}

/// Starts the token's clock: one get (min-TTL 1 s), then waits (bounded) until tokend has
/// refreshed it once ahead of expiry and nobody uses the refreshed token, which then expires on
/// its own about 4.5 s after this get. Done before the rounds, so that this refresh is not
/// part of any measurement, and the expiry wait overlaps them.
pub(crate) fn prepare(socket: &Path) {
    let client = Client::builder()
        .endpoint(Endpoint::from_path(socket))
        .autostart(false)
        .timeout(IO_TIMEOUT)
        .build();
    client
        .get_with(STAMPEDE.provider, &GetOptions { min_ttl: MIN_TTL })
        .unwrap_or_else(|err| panic!("first get of `{}`: {err}", STAMPEDE.provider));
    let deadline = Instant::now() + PROCESS_WAIT;
    loop {
        let status = client
            .status()
            .map(|status| stampede_status(status.providers))
            .unwrap_or_else(|err| panic!("tokend status: {err}"))
            .unwrap_or_else(|| panic!("tokend does not list `{}`", STAMPEDE.provider));
        // Refreshed and unused (or, without a refresh ahead, already expired): nothing more
        // happens upstream until the stampede.
        let settled = status.next_refresh_unix.is_none()
            && matches!(status.state, ProviderState::Fresh | ProviderState::Expired);
        if settled {
            return;
        }
        if Instant::now() >= deadline {
            eprintln!(
                "tokend-bench: `{}` still {} with a refresh planned after {PROCESS_WAIT:?}; \
                 going on",
                STAMPEDE.provider,
                status.state.as_str()
            );
            return;
        }
        std::thread::sleep(STATUS_POLL);
    }
}

/// Waits (bounded) until `stampede` is expired; returns how long that took.
async fn wait_expired(client: &mut AsyncClient) -> Result<Duration, String> {
    let start = Instant::now();
    loop {
        let status = client
            .status()
            .await
            .map_err(|err| format!("tokend status: {err}"))?;
        let state = stampede_status(status.providers)
            .map(|provider| provider.state)
            .ok_or_else(|| format!("tokend does not list `{}`", STAMPEDE.provider))?;
        if state == ProviderState::Expired {
            return Ok(start.elapsed());
        }
        if start.elapsed() >= PROCESS_WAIT {
            return Err(format!("still {} after {PROCESS_WAIT:?}", state.as_str()));
        }
        tokio::time::sleep(STATUS_POLL).await;
    }
}

/// One caller's outcome: when it started and got its answer, and the token or the error.
type Outcome = (Instant, Instant, Result<String, String>);

/// Opens `clients` connections, waits until the token has expired, then releases every client
/// at once to ask for it.
pub(crate) fn run(socket: &Path, fake: &FakeEndpoint, clients: usize, tokend_pid: u32) -> Stampede {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime for the stampede clients");

    // One connection after another: a burst of connects could overflow the listen backlog,
    // and connecting is not what this measures.
    let (mut conns, connect_error) = runtime.block_on(async {
        let mut conns = Vec::with_capacity(clients);
        for _ in 0..clients {
            let client = Client::builder()
                .endpoint(Endpoint::from_path(socket))
                .autostart(false)
                .timeout(IO_TIMEOUT)
                .build_async();
            match client.ping().await {
                Ok(_) => conns.push(client),
                Err(err) => {
                    let error = format!("client {} of {clients}: {err}", conns.len() + 1);
                    return (conns, Some(error));
                }
            }
        }
        (conns, None)
    });
    let connected = conns.len();
    let open_rss = rss(tokend_pid);
    let expired = match conns.first_mut() {
        Some(client) => runtime.block_on(wait_expired(client)),
        None => Err("no client connected".to_owned()),
    };

    let before = fake.requests(Some(STAMPEDE));
    let barrier = Arc::new(tokio::sync::Barrier::new(connected + 1));
    let options = GetOptions { min_ttl: MIN_TTL };
    let outcomes: Vec<Outcome> = runtime.block_on(async {
        let tasks: Vec<_> = conns
            .into_iter()
            .map(|client| {
                let barrier = Arc::clone(&barrier);
                tokio::spawn(async move {
                    barrier.wait().await;
                    let start = Instant::now();
                    let result = client.get_with(STAMPEDE.provider, &options).await;
                    let end = Instant::now();
                    let result = result
                        .map(|token| token.value.expose().to_owned())
                        .map_err(|err| err.to_string());
                    (start, end, result)
                })
            })
            .collect();
        barrier.wait().await;
        let mut outcomes = Vec::with_capacity(tasks.len());
        for task in tasks {
            outcomes.push(task.await.expect("a stampede task panicked"));
        }
        outcomes
    });
    // Right away: the new token's own refresh ahead of expiry is more than a second away.
    let upstream = fake.requests(Some(STAMPEDE)) - before;

    let first = outcomes.iter().map(|(start, _, _)| *start).min();
    let last = outcomes.iter().map(|(_, end, _)| *end).max();
    let since_first = |at: Option<Instant>| match (first, at) {
        (Some(first), Some(at)) => at.saturating_duration_since(first).as_nanos() as f64,
        _ => f64::NAN,
    };
    let wall_ns = since_first(last);
    // Only this stampede's request counts, not the one of `prepare`.
    let upstream_after_ns = since_first(fake.last_arrival(STAMPEDE).filter(|_| upstream > 0));
    let mut tokens = BTreeSet::new();
    let mut latencies = Vec::with_capacity(outcomes.len());
    let (mut failed, mut first_failure) = (0, None);
    for (start, end, result) in outcomes {
        match result {
            Ok(token) => {
                latencies.push(end.duration_since(start).as_nanos() as u64);
                tokens.insert(token);
            }
            Err(err) => {
                failed += 1;
                first_failure.get_or_insert(err);
            }
        }
    }
    latencies.sort_unstable();
    Stampede {
        clients,
        connected,
        connect_error,
        open_rss,
        expired,
        upstream,
        tokens: tokens.len(),
        failed,
        first_failure,
        latencies,
        wall_ns,
        upstream_after_ns,
    }
}
