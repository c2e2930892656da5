//! `tokend-bench scale [--quick]`: tokend as the work grows, each figure against its baseline
//! in the same run.
//!
//! - **Providers**: a daemon with 10 000 static providers beside one with a single provider:
//!   start-up to READY (median of 3 starts each), RSS per idle provider, the cache-hit p50 of a
//!   provider in the middle of the 10 000 against the lone one (single client pinned with the
//!   daemons to one CPU, rounds alternating), and `tok status` as a whole process.
//! - **Connections**: 10 000 idle connections (connected and past the handshake) held open on
//!   a daemon started with `--max-connections` above that: RSS per idle connection, and the
//!   cache-hit p50 / p99 of one more client meanwhile against quiet rounds before and after.
//! - **Hits**: 10 million cache hits from 4 client threads; RSS after the first tenth against
//!   after all of them (no growth).
//!
//! Knobs: `BENCH_SCALE_PROVIDERS` (10 000; quick 2 000), `BENCH_SCALE_CONNECTIONS` (10 000;
//! quick 2 000), `BENCH_SCALE_HITS` (10 000 000; quick 1 000 000), `BENCH_ROUNDS` (5; quick 3),
//! `BENCH_ITERS` (20 000; quick 5 000).

use std::fmt::Write as _;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::thread::CpuSet;
use tokend_protocol::MAX_HANDSHAKE_LEN;
use tokend_protocol::frame::{read_frame, write_frame};
use tokend_protocol::handshake::{Hello, Verdict, Welcome};

use crate::clients::LibClient;
use crate::measure::{Sample, median, percentile, single_client};
use crate::process::{
    ChildGuard, cpus_of, cpuset, pin_current_thread, raise_open_file_limit, rss,
    set_process_affinity, sibling, spawn_ready,
};
use crate::{IO_TIMEOUT, PROVIDER, SECRET_ENV};

/// How long a start may take before the bench gives up.
const START_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy)]
struct Knobs {
    providers: usize,
    connections: usize,
    hits: usize,
    rounds: usize,
    iters: usize,
}

impl Knobs {
    fn from_env(quick: bool) -> Self {
        let knob = |name: &str, normal: usize, fast: usize| -> usize {
            match std::env::var(name) {
                Ok(value) => value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 1)
                    .unwrap_or_else(|| panic!("{name} must be an integer above 1, got {value:?}")),
                Err(_) if quick => fast,
                Err(_) => normal,
            }
        };
        Self {
            providers: knob("BENCH_SCALE_PROVIDERS", 10_000, 2_000),
            connections: knob("BENCH_SCALE_CONNECTIONS", 10_000, 2_000),
            hits: knob("BENCH_SCALE_HITS", 10_000_000, 1_000_000),
            rounds: knob("BENCH_ROUNDS", 5, 3),
            iters: knob("BENCH_ITERS", 20_000, 5_000),
        }
    }
}

/// The name of provider `index` (the bench's own provider is index 0).
fn name(index: usize) -> String {
    if index == 0 {
        PROVIDER.to_owned()
    } else {
        format!("p{index:05}")
    }
}

/// A config of `count` static providers, each reading the same secret.
fn config(count: usize) -> String {
    let mut text = String::with_capacity(count * 64);
    for index in 0..count {
        let _ = write!(
            text,
            "[providers.{}]\nkind = \"static\"\nsecret = \"${{env:{SECRET_ENV}}}\"\n\n",
            name(index)
        );
    }
    text
}

/// A daemon of the scale run, in its own directory.
struct Daemon {
    guard: ChildGuard,
    socket: PathBuf,
    /// Spawn to READY.
    started_in: Duration,
}

fn start(dir: &Path, label: &str, config_text: &str, args: &[&str], pin: &CpuSet) -> Daemon {
    let home = dir.join(label);
    std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
        .create(&home)
        .expect("daemon directory");
    let config = home.join("config.toml");
    tokend_e2e::write_private(&config, config_text);
    let socket = home.join("s.sock");
    let log = home.join("tokend.log");
    let token: String = (0..500)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let mut command = Command::new(sibling("tokend"));
    command
        .arg("--config")
        .arg(&config)
        .arg("--socket")
        .arg(&socket)
        .arg("--notify-ready")
        .args(args)
        .env(SECRET_ENV, token)
        .env("TOKEND_DATA", home.join("data"))
        .env_remove("RUST_LOG")
        .stderr(std::fs::File::create(&log).expect("tokend log"));
    let begun = Instant::now();
    let guard = spawn_ready("tokend", &mut command, pin, Some(&log));
    let started_in = begun.elapsed();
    assert!(
        started_in < START_TIMEOUT,
        "tokend took {started_in:?} to start"
    );
    Daemon {
        guard,
        socket,
        started_in,
    }
}

/// A connection past the handshake, then left idle.
fn idle_connection(socket: &Path) -> std::io::Result<UnixStream> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    write_frame(&mut stream, &Hello::current().encode())
        .map_err(|err| std::io::Error::other(err.to_string()))?;
    let welcome = read_frame(&mut stream, MAX_HANDSHAKE_LEN)
        .map_err(|err| std::io::Error::other(err.to_string()))?
        .ok_or_else(|| std::io::Error::other("closed during the handshake"))?;
    let welcome =
        Welcome::decode(&welcome).map_err(|err| std::io::Error::other(err.to_string()))?;
    if welcome.verdict != Verdict::Accepted {
        return Err(std::io::Error::other("hello refused"));
    }
    Ok(stream)
}

/// `rounds` pinned single-client loops of `iters` hits on `provider` of each daemon, the order
/// alternating; per-round samples of each.
fn alternate(
    pinned: &CpuSet,
    sides: [(&Daemon, &str); 2],
    rounds: usize,
    iters: usize,
) -> [Vec<Sample>; 2] {
    let mut samples = [Vec::new(), Vec::new()];
    for round in 0..rounds {
        for k in 0..2 {
            let side = (round + k) % 2;
            let (daemon, provider) = sides[side];
            let sample = std::thread::scope(|scope| {
                scope
                    .spawn(|| {
                        pin_current_thread(pinned);
                        let mut conn = LibClient::connect_to(&daemon.socket, provider)
                            .expect("connect to tokend");
                        single_client(&mut conn, daemon.guard.pid(), iters / 10, iters, "tokend")
                    })
                    .join()
                    .expect("the pinned client panicked")
            });
            samples[side].push(sample);
        }
    }
    samples
}

fn p50(samples: &[Sample]) -> f64 {
    median(&samples.iter().map(|s| s.p50_ns).collect::<Vec<_>>())
}

fn p99(samples: &[Sample]) -> f64 {
    median(&samples.iter().map(|s| s.p99_ns).collect::<Vec<_>>())
}

/// Median of the per-round ratios of `field` (ours ÷ base).
fn ratio(ours: &[Sample], base: &[Sample], field: fn(&Sample) -> f64) -> f64 {
    median(
        &ours
            .iter()
            .zip(base)
            .map(|(o, b)| field(o) / field(b))
            .collect::<Vec<_>>(),
    )
}

/// `tok status` as a whole process against `daemon`: p50 of `runs` runs, in ns.
fn tok_status(daemon: &Daemon, runs: usize) -> f64 {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let begun = Instant::now();
        let status = Command::new(sibling("tok"))
            .arg("status")
            .env("TOKEND_SOCKET", &daemon.socket)
            .env("TOKEND_NO_AUTOSTART", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run tok status");
        times.push(begun.elapsed().as_nanos() as u64);
        assert!(status.success(), "tok status failed: {status}");
    }
    times.sort_unstable();
    percentile(&times, 0.5)
}

fn us(ns: f64) -> String {
    format!("{:.1} µs", ns / 1e3)
}

fn ms(ns: f64) -> String {
    format!("{:.1} ms", ns / 1e6)
}

fn mark(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}

pub(crate) fn run(quick: bool) {
    let knobs = Knobs::from_env(quick);
    let begun = Instant::now();
    let nofile = raise_open_file_limit();
    let allowed = rustix::thread::sched_getaffinity(None).expect("sched_getaffinity");
    let pin_cpu = *cpus_of(&allowed).first().expect("a usable CPU");
    let pinned = cpuset(&[pin_cpu]);
    let dir = tokend_e2e::private_dir();
    let mut rows: Vec<[String; 4]> = Vec::new();

    // Providers.
    let n = knobs.providers;
    eprintln!("tokend-bench scale: {n} providers against 1");
    let mut starts = [Vec::new(), Vec::new()];
    for attempt in 0..3 {
        for (side, count) in [(0, 1), (1, n)] {
            let daemon = start(
                dir.path(),
                &format!("start{side}-{attempt}"),
                &config(count),
                &[],
                &allowed,
            );
            starts[side].push(daemon.started_in.as_nanos() as f64);
        }
    }
    let one = start(dir.path(), "one", &config(1), &[], &allowed);
    let many = start(dir.path(), "many", &config(n), &[], &allowed);
    std::thread::sleep(Duration::from_millis(200));
    let (rss_one, rss_many) = (rss(one.guard.pid()).rss_kib, rss(many.guard.pid()).rss_kib);
    let per_provider = (rss_many.saturating_sub(rss_one)) as f64 * 1024.0 / (n - 1) as f64;
    let middle = name(n / 2);
    set_process_affinity(one.guard.pid(), &pinned);
    set_process_affinity(many.guard.pid(), &pinned);
    let [hits_many, hits_one] = alternate(
        &pinned,
        [(&many, middle.as_str()), (&one, PROVIDER)],
        knobs.rounds,
        knobs.iters,
    );
    set_process_affinity(one.guard.pid(), &allowed);
    set_process_affinity(many.guard.pid(), &allowed);
    let status_many = tok_status(&many, 10);
    let status_one = tok_status(&one, 10);
    let start_many = median(&starts[1]);
    rows.push([
        format!("start-up to READY, {n} providers (baseline: 1 provider)"),
        ms(start_many),
        ms(median(&starts[0])),
        format!("≤ 250 ms ({})", mark(start_many <= 250e6)),
    ]);
    rows.push([
        format!(
            "RSS per idle provider ({n} providers: {} KiB; 1: {} KiB)",
            rss_many, rss_one
        ),
        format!("{per_provider:.0} B"),
        "–".to_owned(),
        format!("≤ 2 KiB ({})", mark(per_provider <= 2048.0)),
    ]);
    let hit_ratio = ratio(&hits_many, &hits_one, |s| s.p50_ns);
    rows.push([
        format!(
            "cache hit p50 / p99 with {n} providers (baseline: 1 provider), ratio {hit_ratio:.2}×"
        ),
        format!("{} / {}", us(p50(&hits_many)), us(p99(&hits_many))),
        format!("{} / {}", us(p50(&hits_one)), us(p99(&hits_one))),
        format!("p50 ≤ 1.05× ({})", mark(hit_ratio <= 1.05)),
    ]);
    rows.push([
        format!("`tok status` whole process, {n} providers (baseline: 1 provider)"),
        ms(status_many),
        ms(status_one),
        format!("≤ 100 ms ({})", mark(status_many <= 100e6)),
    ]);
    drop(many);

    // Connections.
    let c = knobs.connections;
    eprintln!("tokend-bench scale: {c} idle connections");
    drop(one);
    let cap = (c + 64).to_string();
    let daemon = start(
        dir.path(),
        "conns",
        &config(1),
        &["--max-connections", &cap],
        &allowed,
    );
    set_process_affinity(daemon.guard.pid(), &pinned);
    let quiet_before = alternate(
        &pinned,
        [(&daemon, PROVIDER), (&daemon, PROVIDER)],
        1,
        knobs.iters,
    );
    std::thread::sleep(Duration::from_millis(200));
    let rss_before = rss(daemon.guard.pid()).rss_kib;
    let mut open = Vec::with_capacity(c);
    let mut refused = None;
    for _ in 0..c {
        match idle_connection(&daemon.socket) {
            Ok(stream) => open.push(stream),
            Err(err) => {
                refused = Some(err.to_string());
                break;
            }
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let rss_open = rss(daemon.guard.pid()).rss_kib;
    let per_connection =
        rss_open.saturating_sub(rss_before) as f64 * 1024.0 / open.len().max(1) as f64;
    let [busy, _] = alternate(
        &pinned,
        [(&daemon, PROVIDER), (&daemon, PROVIDER)],
        knobs.rounds.div_ceil(2),
        knobs.iters,
    );
    let held = open.len();
    drop(open);
    std::thread::sleep(Duration::from_millis(500));
    let quiet_after = alternate(
        &pinned,
        [(&daemon, PROVIDER), (&daemon, PROVIDER)],
        1,
        knobs.iters,
    );
    let quiet: Vec<Sample> = quiet_before
        .into_iter()
        .chain(quiet_after)
        .flatten()
        .collect();
    let p99_ratio = p99(&busy) / p99(&quiet);
    rows.push([
        format!(
            "RSS per idle connection ({held} open{}; {} → {} KiB)",
            refused.map_or_else(String::new, |err| format!(", the next refused: {err}")),
            rss_before,
            rss_open
        ),
        format!("{:.1} KiB", per_connection / 1024.0),
        "–".to_owned(),
        format!("≤ 8 KiB ({})", mark(held == c && per_connection <= 8192.0)),
    ]);
    rows.push([
        format!("cache hit p50 / p99 with {held} idle connections open (baseline: none open), p99 ratio {p99_ratio:.2}×"),
        format!("{} / {}", us(p50(&busy)), us(p99(&busy))),
        format!("{} / {}", us(p50(&quiet)), us(p99(&quiet))),
        format!("p99 ≤ 1.2× ({})", mark(p99_ratio <= 1.2)),
    ]);

    // Hits.
    let h = knobs.hits;
    eprintln!("tokend-bench scale: {h} cache hits");
    set_process_affinity(daemon.guard.pid(), &allowed);
    let threads = 4;
    let tenth = h / 10;
    let hit_many = |count: usize| {
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    let mut conn =
                        LibClient::connect_to(&daemon.socket, PROVIDER).expect("connect");
                    for _ in 0..count / threads {
                        crate::clients::RoundTrip::round_trip(&mut conn).expect("a cache hit");
                    }
                });
            }
        });
    };
    let hits_begun = Instant::now();
    hit_many(tenth);
    let rss_tenth = rss(daemon.guard.pid()).rss_kib;
    hit_many(h - tenth);
    let hits_took = hits_begun.elapsed();
    let rss_all = rss(daemon.guard.pid()).rss_kib;
    let growth = rss_all as f64 / rss_tenth as f64 - 1.0;
    rows.push([
        format!(
            "RSS after {h} cache hits (baseline: after the first {tenth}); {:.0} hits/s from {threads} threads",
            h as f64 / hits_took.as_secs_f64()
        ),
        format!("{rss_all} KiB"),
        format!("{rss_tenth} KiB"),
        format!("within 1 % ({:+.2} %, {})", growth * 100.0, mark(growth.abs() <= 0.01)),
    ]);
    drop(daemon);

    let mut out = String::new();
    let _ = writeln!(
        out,
        "# tokend at scale\n\n- {}; daemons and the timed client pinned to CPU {pin_cpu} for the \
         hit rows; open-file limit {}; {} rounds × {} hits per hit row\n",
        if quick { "**quick**" } else { "full run" },
        nofile.map_or_else(|| "unlimited".to_owned(), |n| n.to_string()),
        knobs.rounds,
        knobs.iters
    );
    let _ = writeln!(
        out,
        "| measurement | tokend | baseline | target |\n| --- | ---: | ---: | --- |"
    );
    for [what, ours, base, target] in rows {
        let _ = writeln!(out, "| {what} | {ours} | {base} | {target} |");
    }
    let _ = writeln!(
        out,
        "\nBench wall time {:.1} s.",
        begun.elapsed().as_secs_f64()
    );
    #[allow(clippy::print_stdout)]
    {
        print!("{out}");
    }
}
