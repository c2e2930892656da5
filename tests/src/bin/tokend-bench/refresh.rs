//! f. Cache hits while tokend refreshes another provider in the background: the single-client
//! cache-hit loop of a, once "quiet" and once "busy", with a requester thread keeping the 4 s
//! `refreshing` token in use so that tokend refreshes it ahead of expiry every ~2 s.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Barrier, mpsc};
use std::time::{Duration, Instant};

use rustix::thread::CpuSet;
use tokend_client::{Client, Endpoint, GetOptions};

use crate::measure::thread_cpu_ns;
use crate::upstream::{FakeEndpoint, REFRESHING, UPSTREAM_DELAY};
use crate::{IO_TIMEOUT, LibClient, PROCESS_WAIT, Paired, RoundTrip, Sample, cpu_ns};

/// How often the requester asks for the `refreshing` token.
const REQUEST_EVERY: Duration = Duration::from_millis(100);
/// The minimum lifetime the requester asks for: below the token's 4 s, above nothing that
/// would make it wait (the refresh runs when about 2 s are left).
const REQUESTER_MIN_TTL: Duration = Duration::from_secs(1);
/// A busy phase gives up waiting for its closing refresh after this long past its minimum
/// duration (refreshes come every ~1.6-2.4 s while the token is in use).
const REFRESH_WAIT: Duration = Duration::from_secs(5);
/// How long a busy phase goes on after its closing refresh started: long enough to include
/// the upstream answer and tokend storing it.
const REFRESH_GRACE: Duration = Duration::from_millis(100);
/// Pause between two looks at the fake endpoint's request log.
const POLL: Duration = Duration::from_millis(5);
/// Expected cache hits per millisecond, to size the latency buffer up front.
const HITS_PER_MS: usize = 200;

/// What one phase showed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Phase {
    pub(crate) sample: Sample,
    /// Timed duration in seconds.
    pub(crate) secs: f64,
    /// Background refreshes of `refreshing` during the timed loop.
    pub(crate) refreshes: usize,
    /// Other upstream requests during the timed loop: requester gets that had to wait for a
    /// fetch, and anything on another path. Should be 0.
    pub(crate) other_upstream: usize,
}

/// Every round's busy and quiet phase.
#[derive(Debug, Default)]
pub(crate) struct Phases {
    /// The cache-hit samples: `ours` busy, `base` quiet.
    pub(crate) hits: Paired,
    pub(crate) busy: Vec<Phase>,
    pub(crate) quiet: Vec<Phase>,
}

impl Phases {
    pub(crate) fn push(&mut self, busy: Phase, quiet: Phase) {
        self.hits.push(busy.sample, quiet.sample);
        self.busy.push(busy);
        self.quiet.push(quiet);
    }

    pub(crate) fn refreshes(&self) -> usize {
        self.busy.iter().map(|phase| phase.refreshes).sum()
    }

    pub(crate) fn busy_other_upstream(&self) -> usize {
        self.busy.iter().map(|phase| phase.other_upstream).sum()
    }

    /// Upstream requests of any kind during the quiet phases. Should be 0.
    pub(crate) fn quiet_upstream(&self) -> usize {
        self.quiet
            .iter()
            .map(|phase| phase.refreshes + phase.other_upstream)
            .sum()
    }

    pub(crate) fn busy_secs(&self) -> f64 {
        self.busy.iter().map(|phase| phase.secs).sum()
    }

    pub(crate) fn quiet_secs(&self) -> f64 {
        self.quiet.iter().map(|phase| phase.secs).sum()
    }
}

/// Where and how long the phases run.
#[derive(Debug)]
pub(crate) struct Setup<'a> {
    pub(crate) socket: &'a Path,
    pub(crate) tokend_pid: u32,
    /// The same-CPU set of a: the timed client (tokend is pinned there by the caller).
    pub(crate) pinned: CpuSet,
    /// Everything else: the requester and the phase controller.
    pub(crate) others: CpuSet,
    pub(crate) fake: &'a FakeEndpoint,
    pub(crate) warmup: usize,
    /// Minimum timed duration of a phase.
    pub(crate) phase: Duration,
}

/// Sets its flag when dropped, also when unwinding, so that no loop waits on it forever.
struct RaiseOnDrop<'a>(&'a AtomicBool);

impl Drop for RaiseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Upstream requests so far: on `refreshing`'s path, and on every path.
fn upstream_counts(fake: &FakeEndpoint) -> (usize, usize) {
    (fake.requests(Some(REFRESHING)), fake.requests(None))
}

/// One phase: cache hits on the static provider from a pinned client for at least
/// `setup.phase`. Busy, a requester asks for `refreshing` every 100 ms meanwhile, and the phase
/// ends just after the first background refresh that starts once `setup.phase` has passed (so
/// every busy phase contains one). The requester stops as that refresh starts, before tokend
/// stores its token: that token stays unused, so its own refresh stands down and nothing
/// upstream spills into the next measurement.
pub(crate) fn phase(setup: &Setup<'_>, busy: bool) -> Phase {
    let stop_timing = AtomicBool::new(false);
    let stop_requester = AtomicBool::new(false);
    let start_line = Barrier::new(2);
    std::thread::scope(|scope| {
        let requester = busy.then(|| {
            let (ready_tx, ready_rx) = mpsc::channel();
            let stop = &stop_requester;
            // The sender moves into the thread: if it panics, the wait below ends at once.
            let handle = scope.spawn(move || keep_requesting(setup, stop, &ready_tx));
            if ready_rx.recv_timeout(PROCESS_WAIT).is_err() {
                stop_requester.store(true, Ordering::Relaxed);
                panic!(
                    "the f requester did not get its first `{}` token",
                    REFRESHING.provider
                );
            }
            handle
        });
        // After the requester's first get, which may have had to fetch.
        let (refreshing_before, all_before) = upstream_counts(setup.fake);

        let timing = scope.spawn(|| {
            // Errors wait until after the start line, so that the controller is not left waiting.
            let prepared = rustix::thread::sched_setaffinity(None, &setup.pinned)
                .map_err(|err| format!("sched_setaffinity: {err}"))
                .and_then(|()| LibClient::connect(setup.socket))
                .and_then(|mut conn| {
                    for _ in 0..setup.warmup {
                        conn.round_trip()?;
                    }
                    Ok(conn)
                });
            start_line.wait();
            let mut conn = prepared.unwrap_or_else(|err| panic!("f. connect/warm-up: {err}"));
            let expected_ms = (setup.phase + REFRESH_GRACE).as_millis() as usize;
            let mut lat = Vec::with_capacity(expected_ms * HITS_PER_MS);
            let cpu_before = cpu_ns(setup.tokend_pid);
            let client_before = thread_cpu_ns();
            let start = Instant::now();
            while !stop_timing.load(Ordering::Relaxed) {
                let t = Instant::now();
                conn.round_trip()
                    .unwrap_or_else(|err| panic!("f. cache hit: {err}"));
                lat.push(t.elapsed().as_nanos() as u64);
            }
            let wall = start.elapsed();
            let client = thread_cpu_ns().saturating_sub(client_before);
            let cpu = cpu_ns(setup.tokend_pid).saturating_sub(cpu_before);
            (Sample::from_latencies(lat, wall, cpu, client), wall)
        });

        scope.spawn(|| {
            // Requester first, then the timed loop (declaration order is reversed on drop).
            let _stop_timing = RaiseOnDrop(&stop_timing);
            let _stop_requester = RaiseOnDrop(&stop_requester);
            let _ = rustix::thread::sched_setaffinity(None, &setup.others);
            start_line.wait();
            let start = Instant::now();
            std::thread::sleep(setup.phase);
            if busy {
                let mark = setup.fake.requests(Some(REFRESHING));
                let deadline = start + setup.phase + REFRESH_WAIT;
                while setup.fake.requests(Some(REFRESHING)) == mark && Instant::now() < deadline {
                    std::thread::sleep(POLL);
                }
                stop_requester.store(true, Ordering::Relaxed);
                std::thread::sleep(REFRESH_GRACE);
            }
        });

        let (sample, wall) = timing.join().expect("the f timing thread panicked");
        let waited = requester.map_or(0, |handle| {
            handle.join().expect("the f requester thread panicked")
        });
        let (refreshing_after, all_after) = upstream_counts(setup.fake);
        let refreshing = refreshing_after - refreshing_before;
        let all = all_after - all_before;
        // A requester get that waited caused a fetch on the same path: not a background refresh.
        let refreshes = refreshing.saturating_sub(waited);
        Phase {
            sample,
            secs: wall.as_secs_f64(),
            refreshes,
            other_upstream: all - refreshes,
        }
    })
}

/// The requester: `get_with("refreshing", min-TTL 1 s)` every [`REQUEST_EVERY`] until `stop`,
/// from a thread on `setup.others`. Signals `ready` after its first get; returns how many of the
/// later gets had to wait for a fetch (they should all be cache hits).
fn keep_requesting(setup: &Setup<'_>, stop: &AtomicBool, ready: &mpsc::Sender<()>) -> usize {
    let _ = rustix::thread::sched_setaffinity(None, &setup.others);
    let client = Client::builder()
        .endpoint(Endpoint::from_path(setup.socket))
        .autostart(false)
        .timeout(IO_TIMEOUT)
        .build();
    let options = GetOptions {
        min_ttl: REQUESTER_MIN_TTL,
    };
    let get = || {
        let start = Instant::now();
        client
            .get_with(REFRESHING.provider, &options)
            .unwrap_or_else(|err| panic!("f requester, get `{}`: {err}", REFRESHING.provider));
        start.elapsed()
    };
    get();
    let _ = ready.send(());
    let mut waited = 0;
    loop {
        std::thread::sleep(REQUEST_EVERY);
        // Checked right before each get: a get after the closing refresh stored its token
        // would mark that token used and cause one more refresh later.
        if stop.load(Ordering::Relaxed) {
            return waited;
        }
        if get() >= UPSTREAM_DELAY / 2 {
            waited += 1;
        }
    }
}
