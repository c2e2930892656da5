//! Timing: one client's round trips, many clients' at once, whole processes; and the
//! per-round figures and ratios the report prints.

use std::process::Command;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use crate::MULTI_WARMUP;
use crate::clients::RoundTrip;
use crate::process::cpu_ns;

// ---------------------------------------------------------------------------------------------
// Measurements

/// One scenario's result in one round.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) p50_ns: f64,
    pub(crate) p99_ns: f64,
    pub(crate) rate: f64,
    pub(crate) srv_cpu_ns: f64,
    /// The bench process's own CPU time per request: the client side's cost (library or raw).
    pub(crate) cli_cpu_ns: f64,
}

impl Sample {
    /// The figures of `lat` (round-trip times in ns, any order) timed over `wall`, during which
    /// the server spent `cpu_ns` on CPU and the clients `client_cpu_ns`.
    pub(crate) fn from_latencies(
        mut lat: Vec<u64>,
        wall: Duration,
        cpu_ns: u64,
        client_cpu_ns: u64,
    ) -> Self {
        lat.sort_unstable();
        let done = lat.len() as f64;
        Self {
            p50_ns: percentile(&lat, 0.50),
            p99_ns: percentile(&lat, 0.99),
            rate: done / wall.as_secs_f64(),
            srv_cpu_ns: cpu_ns as f64 / done,
            cli_cpu_ns: client_cpu_ns as f64 / done,
        }
    }
}

pub(crate) fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64
}

pub(crate) fn median(values: &[f64]) -> f64 {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        f64::midpoint(sorted[mid - 1], sorted[mid])
    }
}

/// Single client on the current (pinned) thread: warm-up, then `iters` timed round trips.
pub(crate) fn single_client(
    conn: &mut dyn RoundTrip,
    server_pid: u32,
    warmup: usize,
    iters: usize,
    what: &str,
) -> Sample {
    for _ in 0..warmup {
        conn.round_trip()
            .unwrap_or_else(|err| panic!("{what} warm-up: {err}"));
    }
    let mut lat = Vec::with_capacity(iters);
    let cpu_before = cpu_ns(server_pid);
    let client_before = own_cpu_ns();
    let start = Instant::now();
    for _ in 0..iters {
        let t = Instant::now();
        conn.round_trip()
            .unwrap_or_else(|err| panic!("{what}: {err}"));
        lat.push(t.elapsed().as_nanos() as u64);
    }
    let wall = start.elapsed();
    let client = own_cpu_ns().saturating_sub(client_before);
    let cpu = cpu_ns(server_pid).saturating_sub(cpu_before);
    Sample::from_latencies(lat, wall, cpu, client)
}

/// `clients` threads, each with its own connection from `connect`, `total` requests in all.
pub(crate) fn multi_client<C, F>(
    connect: F,
    server_pid: u32,
    clients: usize,
    total: usize,
    what: &str,
) -> Sample
where
    C: RoundTrip,
    F: Fn() -> Result<C, String> + Sync,
{
    let per_client = total.div_ceil(clients);
    let barrier = Barrier::new(clients + 1);
    let (lat, wall, cpu, client) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                scope.spawn(|| {
                    // Errors wait until after the barrier, so that no one is left waiting on it.
                    let prepared = connect().and_then(|mut conn| {
                        for _ in 0..MULTI_WARMUP {
                            conn.round_trip()?;
                        }
                        Ok(conn)
                    });
                    barrier.wait();
                    let mut conn =
                        prepared.unwrap_or_else(|err| panic!("{what} connect/warm-up: {err}"));
                    let mut lat = Vec::with_capacity(per_client);
                    for _ in 0..per_client {
                        let t = Instant::now();
                        conn.round_trip()
                            .unwrap_or_else(|err| panic!("{what}: {err}"));
                        lat.push(t.elapsed().as_nanos() as u64);
                    }
                    lat
                })
            })
            .collect();
        barrier.wait();
        let cpu_before = cpu_ns(server_pid);
        let client_before = own_cpu_ns();
        let start = Instant::now();
        let mut lat = Vec::with_capacity(per_client * clients);
        for handle in handles {
            lat.extend(handle.join().expect("a client thread panicked"));
        }
        let wall = start.elapsed();
        let client = own_cpu_ns().saturating_sub(client_before);
        let cpu = cpu_ns(server_pid).saturating_sub(cpu_before);
        (lat, wall, cpu, client)
    });
    Sample::from_latencies(lat, wall, cpu, client)
}

/// This process's CPU time so far, all threads (exited ones too), in ns. Besides the clients of
/// the scenario being timed, only idle threads run (the fake token endpoint's).
fn own_cpu_ns() -> u64 {
    clock_ns(rustix::time::ClockId::ProcessCPUTime)
}

/// The calling thread's CPU time so far, in ns (a client beside busy threads of the bench).
pub(crate) fn thread_cpu_ns() -> u64 {
    clock_ns(rustix::time::ClockId::ThreadCPUTime)
}

fn clock_ns(clock: rustix::time::ClockId) -> u64 {
    let time = rustix::time::clock_gettime(clock);
    u64::try_from(time.tv_sec).unwrap_or(0) * 1_000_000_000
        + u64::try_from(time.tv_nsec).unwrap_or(0)
}

/// Spawn-to-exit time of one run; the command must succeed.
pub(crate) fn time_process(command: &mut Command, what: &str) -> u64 {
    let start = Instant::now();
    let status = command
        .status()
        .unwrap_or_else(|err| panic!("cannot run {what}: {err}"));
    let elapsed = start.elapsed().as_nanos() as u64;
    assert!(status.success(), "{what} failed: {status}");
    elapsed
}

/// Per-round samples of the two sides of one comparison.
#[derive(Debug, Default)]
pub(crate) struct Paired {
    pub(crate) ours: Vec<Sample>,
    pub(crate) base: Vec<Sample>,
}

impl Paired {
    pub(crate) fn push(&mut self, ours: Sample, base: Sample) {
        self.ours.push(ours);
        self.base.push(base);
    }

    pub(crate) fn ours(&self, field: fn(&Sample) -> f64) -> f64 {
        median(&self.ours.iter().map(field).collect::<Vec<_>>())
    }

    pub(crate) fn base(&self, field: fn(&Sample) -> f64) -> f64 {
        median(&self.base.iter().map(field).collect::<Vec<_>>())
    }

    pub(crate) fn per_round_ratios(&self, field: fn(&Sample) -> f64) -> Vec<f64> {
        self.ours
            .iter()
            .zip(&self.base)
            .map(|(ours, base)| field(ours) / field(base))
            .collect()
    }

    pub(crate) fn ratio(&self, field: fn(&Sample) -> f64) -> f64 {
        median(&self.per_round_ratios(field))
    }
}

/// Whole-process timings: per-round run times of each command.
#[derive(Debug, Default)]
pub(crate) struct ProcTimes {
    pub(crate) rounds: Vec<Vec<u64>>,
}

impl ProcTimes {
    pub(crate) fn p50(&self) -> f64 {
        median(&self.round_medians())
    }

    pub(crate) fn p99(&self) -> f64 {
        let mut all: Vec<u64> = self.rounds.iter().flatten().copied().collect();
        all.sort_unstable();
        percentile(&all, 0.99)
    }

    pub(crate) fn round_medians(&self) -> Vec<f64> {
        self.rounds
            .iter()
            .map(|round| {
                let mut sorted = round.clone();
                sorted.sort_unstable();
                percentile(&sorted, 0.50)
            })
            .collect()
    }

    pub(crate) fn ratio_to(&self, base: &Self) -> (f64, Vec<f64>) {
        let ratios: Vec<f64> = self
            .round_medians()
            .iter()
            .zip(base.round_medians())
            .map(|(ours, base)| ours / base)
            .collect();
        (median(&ratios), ratios)
    }
}
