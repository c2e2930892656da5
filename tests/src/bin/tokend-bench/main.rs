//! `tokend-bench`: tokend against its physical floor, side by side in one run.
//!
//! Run it as `cargo build --release -p tokend-e2e -p tokend-hello && cargo build --release -p
//! tokend && cargo build --release -p tokend-client && cargo build --release --target
//! x86_64-unknown-linux-musl -p tokend-client -p tokend-hello --bins && target/release/tokend-bench`
//! (tokend is built on its own, as `cargo install` and the Debian package build it: built beside
//! the test crate or tokend-client, its dependencies would get more features, and its mangled
//! names other hashes than `daemon/link/tokend.order` lists) (about 60 s; `--quick` or `QUICK=1`
//! for a ~10 s smoke run). It finds `tokend`, `tok` and `hello` next to its own executable, the
//! static `tok` and `hello` in `target/x86_64-unknown-linux-musl/release/` (`debug/` for a debug
//! `tokend-bench`: CI's smoke runs use the debug build of its test step, and say so), and prints
//! one markdown table with the targets from `research/perf-baselines.md`:
//!
//! - **a. cache hit, 1 client, same CPU**: the real `tokend` (static provider, cached token)
//!   driven by the blocking `tokend_client::Client` on one persistent connection, against a raw
//!   ping-pong server (`tokend-bench serve-raw`, a tokio current-thread Unix-socket server like
//!   tokend's runtime) answering a u32-BE length-prefixed frame of exactly tokend's response size
//!   to a request frame of exactly tokend's request size. Client thread and both servers are
//!   pinned to the same CPU, which is the stable configuration on this machine (cross-CPU wake-ups
//!   make unpinned single-client figures bimodal).
//! - **b. concurrent clients** (64 by default): one OS thread per client, each with its own
//!   `Client` / raw stream, unpinned, a fixed total of requests; throughput is
//!   total / wall time from a common start barrier to the last thread's end.
//! - **b'. one shared client**: the same threads calling one `Client` (by reference; each call
//!   takes a pooled connection of its own) against one `Client` per thread as in b, alternated.
//! - **c. whole process**: `tok get NAME` against the `hello` binary (and `true`, the fork+exec
//!   floor), alternated run by run, timed spawn-to-exit. `tok` is the static build the Debian
//!   package ships; the default dynamic build and a statically built `hello` are timed in the
//!   same rounds and shown beside it.
//! - **d. resident memory**: `VmRSS` of tokend and of the raw server right after start plus one
//!   request, and again after all the load; `VmHWM` is the peak. Beside it, how many functions
//!   of the code-ordering list the measured tokend has (`ordering.rs`): a full run fails when a
//!   list written by the same rustc is mostly missing (stale, or tokend was built beside other
//!   packages or without the release profile's LTO; CI's smoke run has the debug build).
//! - **e. stampede on an expired token** (once per run, after everything else): a fake token
//!   endpoint (wiremock, answering after 50 ms with a numbered token that lives 3 s) behind the
//!   `http` provider `stampede`. Its token is fetched once before the rounds with min-TTL 1 s;
//!   tokend refreshes it once ahead of expiry and then lets the unused token expire. At the end,
//!   1000 `AsyncClient`s (one connection each, on a multi-thread runtime, warmed with a ping) wait
//!   until `tok status` shows it `expired`, then are released at once by a barrier to ask for it.
//!   Reported: the upstream requests this caused (single flight: exactly 1), how many distinct
//!   tokens the callers got, and the per-caller latency (p50 / p90 / p99 / max; the floor is the
//!   50 ms upstream delay). The bench raises its own open-file soft limit to the hard limit.
//! - **f. cache hit while refreshes run**: in every round, a's single-client cache-hit loop
//!   (pinned, static provider) once "quiet" and once "busy" (the order alternates): busy, a
//!   thread asks for the `http` provider `refreshing` (a 4 s token, same fake endpoint) every
//!   100 ms, so tokend keeps it warm and refreshes it in the background about every 2 s. Each
//!   phase lasts at least `BENCH_PHASE_MS`; a busy phase goes on until just after the first
//!   background refresh that starts once that time has passed, so every busy phase contains at
//!   least one, and stops the requester before that refresh's token is stored, so that no
//!   refresh spills into a later measurement. Reported: p50 / p99 busy vs quiet, the refreshes
//!   counted at the fake endpoint during busy phases (must be > 0), and the upstream requests
//!   during quiet phases (must be 0). The requester, the phase controller and the fake endpoint
//!   run on the CPUs other than the pinned one (when there are others).
//!
//! How to read it: a, b, c and f run in several interleaved rounds (the order inside a round
//! alternates) so that both sides see the same machine drift. Each absolute figure is the
//! **median over rounds** of that round's p50 / p99 / throughput; each ratio is the **median of
//! the per-round ratios** (tokend / baseline; for f busy / quiet). For c, p99 is pooled over all
//! runs. Compare the ratios, not absolute times, across runs and machines. "Server CPU" is the
//! server process's on-CPU time (`/proc/PID/task/*/schedstat`) per timed request; "client CPU"
//! the bench's own (`CLOCK_PROCESS_CPUTIME_ID`: the library's work, or the raw client's).
//!
//! Knobs (environment): `BENCH_ROUNDS` (7), `BENCH_ITERS` timed round trips per single-client
//! scenario (20 000), `BENCH_WARMUP` (2 000), `BENCH_CLIENTS` (64), `BENCH_TOTAL` requests per
//! multi-client scenario (64 000), `BENCH_MULTI_REPEATS` times b is measured in each round (3, the
//! order alternating: its per-round ratios spread wider than its target's margin, so its median
//! takes more samples; quick 1), `BENCH_PROC_ROUNDS` (10), `BENCH_PROC_RUNS` runs per command per
//! round (30), `BENCH_TOKEN_LEN` bytes of the static token (500, which makes tokend's response
//! about 1 KiB: the token travels twice, raw and inside the `Authorization` header),
//! `BENCH_STAMPEDE` clients in e (1000; quick 200), `BENCH_PHASE_MS` minimum duration of each f
//! phase (1500; quick 250).
//!
//! Other modes: `tokend-bench fleet [--quick]` (the Redis fleet, see `fleet.rs`) and
//! `tokend-bench proxy [--quick]` (the auth proxy against direct requests, see `proxy.rs`), and
//! `tokend-bench scale [--quick]` (10 000 providers, 10 000 idle connections, 10 million hits,
//! see `scale.rs`) and `tokend-bench soak [--minutes N]` (a long run under chaos and kill -9,
//! see `soak/mod.rs`).

// The benchmark's output is its report: printing the table to stdout is the point.
#![allow(clippy::print_stdout)]

use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

mod clients;
mod fleet;
mod measure;
mod ordering;
mod peers;
mod process;
mod proxy;
mod raw;
mod refresh;
mod report;
mod scale;
mod soak;
mod stampede;
mod upstream;

use clients::{LibClient, RawClient, RoundTrip, SharedClient, wire_sizes};
use measure::{
    Paired, ProcTimes, Sample, median, multi_client, percentile, single_client, time_process,
};
use process::{
    ChildGuard, Rss, cpu_ns, cpus_of, cpuset, pin_current_thread, raise_open_file_limit, rss,
    set_process_affinity, sibling, spawn_ready, spawn_tokend, static_sibling, tasks,
};
use report::Report;
use upstream::{FakeEndpoint, REFRESHING, STAMPEDE};

/// The provider every measurement asks for.
const PROVIDER: &str = "bench";
/// Environment variable the provider's secret is read from (`${env:…}`), so that no literal
/// secret sits in the config file.
const SECRET_ENV: &str = "TOKEND_BENCH_SECRET";
/// Bound on waiting for a server's READY line and for a process to exit after SIGTERM.
const PROCESS_WAIT: Duration = Duration::from_secs(15);
/// Per-request timeout on every client socket: a stuck server fails the bench, never hangs it.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// The raw server exits by itself after this long, in case the bench is killed without cleanup.
const RAW_SERVER_LIFETIME: Duration = Duration::from_secs(900);
/// Warm-up round trips per client in the multi-client scenario.
const MULTI_WARMUP: usize = 50;
/// Warm-up runs per command before the whole-process rounds.
const PROC_WARMUP: usize = 5;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if cfg!(debug_assertions) {
        eprintln!(
            "tokend-bench: a debug build, with the debug tokend and tok beside it: a smoke run \
             whose figures say nothing about the release build"
        );
    }
    match args.first().map(String::as_str) {
        Some("serve-raw") => {
            let (Some(socket), Some(len)) = (args.get(1), args.get(2)) else {
                eprintln!("usage: tokend-bench serve-raw SOCKET RESPONSE_LEN");
                return ExitCode::from(2);
            };
            let Ok(len) = len.parse::<usize>() else {
                eprintln!("serve-raw: RESPONSE_LEN must be a byte count, got {len:?}");
                return ExitCode::from(2);
            };
            raw::serve_raw(Path::new(socket), len)
        }
        Some("--quick") => bench(&Knobs::from_env(true)),
        Some("fleet") => {
            fleet::run(args.get(1).is_some_and(|arg| arg == "--quick"));
            ExitCode::SUCCESS
        }
        Some("proxy") => {
            proxy::run(args.get(1).is_some_and(|arg| arg == "--quick"));
            ExitCode::SUCCESS
        }
        Some("soak") => soak::run(&args[1..]),
        Some("scale") => {
            scale::run(args.get(1).is_some_and(|arg| arg == "--quick"));
            ExitCode::SUCCESS
        }
        None => {
            let quick = std::env::var("QUICK").is_ok_and(|v| v == "1");
            bench(&Knobs::from_env(quick))
        }
        Some(other) => {
            eprintln!(
                "unknown argument {other:?}\nusage: tokend-bench [--quick]\n       \
                 tokend-bench fleet [--quick]\n       tokend-bench proxy [--quick]\n       \
                 tokend-bench scale [--quick]\n       \
                 tokend-bench soak [--minutes N] [--kill-every SECONDS] [--faults RATE]\n       \
                 tokend-bench serve-raw SOCKET RESPONSE_LEN"
            );
            ExitCode::from(2)
        }
    }
}

/// One command of row c and its timings.
struct Proc<'a> {
    what: &'static str,
    command: Command,
    /// A file given to it as stdin at every run.
    input: Option<&'a Path>,
    times: ProcTimes,
}

impl<'a> Proc<'a> {
    fn new(what: &'static str, command: Command, input: Option<&'a Path>) -> Self {
        Self {
            what,
            command,
            input,
            times: ProcTimes::default(),
        }
    }

    /// One timed run, spawn to exit.
    fn time(&mut self) -> u64 {
        if let Some(input) = self.input {
            let file = std::fs::File::open(input).expect("the input file of a timed command");
            self.command.stdin(file);
        }
        time_process(&mut self.command, self.what)
    }
}

// ---------------------------------------------------------------------------------------------
// Knobs

#[derive(Debug, Clone)]
struct Knobs {
    quick: bool,
    rounds: usize,
    iters: usize,
    warmup: usize,
    clients: usize,
    total: usize,
    multi_repeats: usize,
    proc_rounds: usize,
    proc_runs: usize,
    token_len: usize,
    stampede: usize,
    phase_ms: usize,
}

impl Knobs {
    fn from_env(quick: bool) -> Self {
        let knob = |name: &str, normal: usize, fast: usize| -> usize {
            match std::env::var(name) {
                Ok(value) => value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .unwrap_or_else(|| panic!("{name} must be a positive integer, got {value:?}")),
                Err(_) if quick => fast,
                Err(_) => normal,
            }
        };
        Self {
            quick,
            rounds: knob("BENCH_ROUNDS", 7, 3),
            iters: knob("BENCH_ITERS", 20_000, 5_000),
            warmup: knob("BENCH_WARMUP", 2_000, 500),
            clients: knob("BENCH_CLIENTS", 64, 64),
            total: knob("BENCH_TOTAL", 64_000, 16_000),
            multi_repeats: knob("BENCH_MULTI_REPEATS", 3, 1),
            proc_rounds: knob("BENCH_PROC_ROUNDS", 10, 4),
            proc_runs: knob("BENCH_PROC_RUNS", 30, 10),
            token_len: knob("BENCH_TOKEN_LEN", 500, 500),
            stampede: knob("BENCH_STAMPEDE", 1000, 200),
            phase_ms: knob("BENCH_PHASE_MS", 1500, 250),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The run

/// The whole run; a full run fails (after the report) when the code-ordering list is stale for
/// this tokend (a quick run's tokend may be CI's debug build, whose names all differ).
fn bench(knobs: &Knobs) -> ExitCode {
    let started = Instant::now();
    let tokend_bin = sibling("tokend");
    let ordering = ordering::check(&tokend_bin);
    // `tok` as packaged (static), and as `cargo install` builds it (dynamically linked).
    let tok_bin = static_sibling("tok");
    let tok_dynamic_bin = sibling("tok");
    let hello_bin = sibling("hello");
    let hello_static_bin = static_sibling("hello");
    let self_bin = std::env::current_exe().expect("path of the tokend-bench executable");

    let allowed = rustix::thread::sched_getaffinity(None).expect("sched_getaffinity");
    let allowed_cpus = cpus_of(&allowed);
    let pin_cpu = *allowed_cpus.first().expect("at least one usable CPU");
    let pinned = cpuset(&[pin_cpu]);
    // Everything that must not disturb the same-CPU rows: the fake token endpoint, f's
    // requester and phase controller.
    let others_cpus: Vec<usize> = allowed_cpus
        .iter()
        .copied()
        .filter(|&cpu| cpu != pin_cpu)
        .collect();
    let others = if others_cpus.is_empty() {
        allowed
    } else {
        cpuset(&others_cpus)
    };
    // e holds one descriptor per client.
    let nofile = raise_open_file_limit();

    eprintln!("tokend-bench: starting the fake token endpoint");
    let fake = FakeEndpoint::start(others);

    // Declared before the guards, so the directory outlives the processes using it.
    let dir = tokend_e2e::private_dir();
    let socket = dir.path().join("tokend.sock");
    let raw_socket = dir.path().join("raw.sock");
    let config = dir.path().join("config.toml");
    let log = dir.path().join("tokend.log");
    tokend_e2e::write_private(
        &config,
        &format!(
            "[providers.{PROVIDER}]\nkind = \"static\"\nsecret = \"${{env:{SECRET_ENV}}}\"\n{}{}",
            fake.provider_toml(STAMPEDE),
            fake.provider_toml(REFRESHING)
        ),
    );
    let secret: String = (0..knobs.token_len)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();

    eprintln!("tokend-bench: starting tokend and the raw server (pinned to CPU {pin_cpu})");
    let mut tokend = spawn_ready(
        "tokend",
        Command::new(&tokend_bin)
            .arg("--config")
            .arg(&config)
            .arg("--socket")
            .arg(&socket)
            .arg("--notify-ready")
            .env(SECRET_ENV, &secret)
            .env("TOKEND_DATA", config.with_file_name("data"))
            .env_remove("TOKEND_SOCKET")
            .env_remove("TOKEND_CONFIG")
            .env_remove("RUST_LOG")
            .stderr(std::fs::File::create(&log).expect("create the tokend log file")),
        &pinned,
        Some(&log),
    );

    // Sizes on the wire decide the raw server's frames.
    let (request_len, response_len) = wire_sizes(&socket, knobs.token_len);
    let mut raw = spawn_ready(
        "raw server",
        Command::new(&self_bin)
            .arg("serve-raw")
            .arg(&raw_socket)
            .arg(response_len.to_string())
            .stderr(Stdio::inherit()),
        &pinned,
        None,
    );

    // The peers: Redis holding a value as large as tokend's answer, git's credential cache.
    let redis = peers::Redis::start(dir.path(), response_len, &pinned);
    if redis.is_none() {
        eprintln!("tokend-bench: redis-server not found: the Redis rows are left out");
    }
    let git_cache = peers::GitCache::start(dir.path(), &secret);
    if git_cache.is_none() {
        eprintln!("tokend-bench: git not found: the git credential-cache row is left out");
    }

    // d. idle RSS: right after start plus one request, connection closed again.
    LibClient::connect(&socket).expect("first get from tokend");
    RawClient::connect(&raw_socket, request_len, response_len)
        .and_then(|mut conn| conn.round_trip())
        .expect("first round trip with the raw server");
    std::thread::sleep(Duration::from_millis(100));
    let tokend_idle = rss(tokend.pid());
    let raw_idle = rss(raw.pid());

    // e. Start the stampede token's clock now: it expires while the rounds run.
    eprintln!(
        "tokend-bench: fetching `{}` once and waiting for its refresh ahead of expiry",
        STAMPEDE.provider
    );
    stampede::prepare(&socket);
    // d. What tokend's first HTTP token fetch (its HTTP client, TLS roots) adds.
    let tokend_fetched = rss(tokend.pid());

    let phase_setup = refresh::Setup {
        socket: &socket,
        tokend_pid: tokend.pid(),
        pinned,
        others,
        fake: &fake,
        warmup: knobs.warmup,
        phase: Duration::from_millis(knobs.phase_ms as u64),
    };
    let mut single = Paired::default();
    let mut multi = Paired::default();
    // tokend against Redis, in the same rounds as against the raw server.
    let mut single_redis = Paired::default();
    let mut multi_redis = Paired::default();
    let mut shared = Paired::default();
    let mut phases = refresh::Phases::default();
    for round in 0..knobs.rounds {
        eprintln!(
            "tokend-bench: round {}/{} (a: 1 client pinned, b: {} clients, f: quiet / busy)",
            round + 1,
            knobs.rounds,
            knobs.clients
        );
        let ours_first = round % 2 == 0;

        // a. Everyone on the same CPU; the three servers take turns in a rotating order.
        set_process_affinity(tokend.pid(), &pinned);
        set_process_affinity(raw.pid(), &pinned);
        if let Some(redis) = &redis {
            set_process_affinity(redis.guard.pid(), &pinned);
        }
        let (ours, base, peer) = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    pin_current_thread(&pinned);
                    let mut results: [Option<Sample>; 3] = [None; 3];
                    for k in 0..3 {
                        let which = (round + k) % 3;
                        results[which] = match which {
                            0 => {
                                let mut conn =
                                    LibClient::connect(&socket).expect("connect to tokend");
                                Some(single_client(
                                    &mut conn,
                                    tokend.pid(),
                                    knobs.warmup,
                                    knobs.iters,
                                    "tokend",
                                ))
                            }
                            1 => {
                                let mut conn =
                                    RawClient::connect(&raw_socket, request_len, response_len)
                                        .expect("connect to the raw server");
                                Some(single_client(
                                    &mut conn,
                                    raw.pid(),
                                    knobs.warmup,
                                    knobs.iters,
                                    "raw",
                                ))
                            }
                            _ => redis.as_ref().map(|redis| {
                                let mut conn = peers::RedisClient::connect(redis, response_len)
                                    .expect("connect to redis-server");
                                single_client(
                                    &mut conn,
                                    redis.guard.pid(),
                                    knobs.warmup,
                                    knobs.iters,
                                    "redis",
                                )
                            }),
                        };
                    }
                    let [ours, base, peer] = results;
                    (ours.expect("measured"), base.expect("measured"), peer)
                })
                .join()
                .expect("the pinned client thread panicked")
        });
        single.push(ours, base);
        if let Some(peer) = peer {
            single_redis.push(ours, peer);
        }

        // b. Unpinned: servers and client threads may use every CPU.
        set_process_affinity(tokend.pid(), &allowed);
        set_process_affinity(raw.pid(), &allowed);
        let run_ours = || {
            multi_client(
                || LibClient::connect(&socket),
                tokend.pid(),
                knobs.clients,
                knobs.total,
                "tokend",
            )
        };
        let run_base = || {
            multi_client(
                || RawClient::connect(&raw_socket, request_len, response_len),
                raw.pid(),
                knobs.clients,
                knobs.total,
                "raw",
            )
        };
        if let Some(redis) = &redis {
            set_process_affinity(redis.guard.pid(), &allowed);
        }
        let run_redis = || {
            redis.as_ref().map(|redis| {
                multi_client(
                    || peers::RedisClient::connect(redis, response_len),
                    redis.guard.pid(),
                    knobs.clients,
                    knobs.total,
                    "redis",
                )
            })
        };
        // Repeated in the round, the order alternating (raw always between the other two).
        for repeat in 0..knobs.multi_repeats {
            let (ours, base, peer) = if ours_first == (repeat % 2 == 0) {
                let ours = run_ours();
                let base = run_base();
                (ours, base, run_redis())
            } else {
                let peer = run_redis();
                let base = run_base();
                (run_ours(), base, peer)
            };
            multi.push(ours, base);
            if let Some(peer) = peer {
                multi_redis.push(ours, peer);
            }
        }
        // b'. The same threads sharing one client, against one client each (run_ours).
        let one = LibClient::connect(&socket)
            .unwrap_or_else(|err| panic!("shared client connect: {err}"))
            .client;
        let run_shared = || {
            multi_client(
                || Ok(SharedClient(&one)),
                tokend.pid(),
                knobs.clients,
                knobs.total,
                "tokend (shared client)",
            )
        };
        if ours_first {
            let own = run_ours();
            shared.push(run_shared(), own);
        } else {
            let together = run_shared();
            shared.push(together, run_ours());
        }
        drop(one);

        // f. a's cache hits, with and without background refreshes (tokend back on a's CPU).
        set_process_affinity(tokend.pid(), &pinned);
        if ours_first {
            let busy = refresh::phase(&phase_setup, true);
            phases.push(busy, refresh::phase(&phase_setup, false));
        } else {
            let quiet = refresh::phase(&phase_setup, false);
            phases.push(refresh::phase(&phase_setup, true), quiet);
        }
        set_process_affinity(tokend.pid(), &allowed);
    }

    // c. Whole process: tok get vs hello vs true (and git's credential cache), alternated run
    // by run. `tok get NAME` as scripts run it: the endpoint from the environment.
    eprintln!(
        "tokend-bench: whole-process timings ({} rounds x {} runs)",
        knobs.proc_rounds, knobs.proc_runs
    );
    let quiet = |mut command: Command| {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    };
    let tok_get = |tok_bin: &Path| {
        let mut command = Command::new(tok_bin);
        command
            .args(["get", PROVIDER])
            .env("TOKEND_SOCKET", &socket)
            .env("TOKEND_NO_AUTOSTART", "1");
        command
    };
    for tok_bin in [&tok_bin, &tok_dynamic_bin] {
        // `tok get` must print exactly the token (checked once, outside the timings).
        let output = tok_get(tok_bin)
            .stdin(Stdio::null())
            .output()
            .expect("run tok get");
        assert!(
            output.status.success() && output.stdout.trim_ascii_end() == secret.as_bytes(),
            "{} get did not print the token: {}; stderr: {}",
            tok_bin.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let git_input = dir.path().join("git-get-input");
    tokend_e2e::write_private(
        &git_input,
        std::str::from_utf8(peers::GitCache::get_input()).expect("ASCII"),
    );
    let mut procs = vec![
        Proc::new("tok get", quiet(tok_get(&tok_bin)), None),
        Proc::new("tok get (dynamic)", quiet(tok_get(&tok_dynamic_bin)), None),
        Proc::new("hello", quiet(Command::new(&hello_bin)), None),
        Proc::new(
            "hello (static)",
            quiet(Command::new(&hello_static_bin)),
            None,
        ),
        Proc::new("true", quiet(Command::new("true")), None),
    ];
    if let Some(cache) = &git_cache {
        procs.push(Proc::new(
            "git credential-cache get",
            cache.command("get"),
            Some(git_input.as_path()),
        ));
    }
    for proc in &mut procs {
        for _ in 0..PROC_WARMUP {
            proc.time();
        }
    }
    for _ in 0..knobs.proc_rounds {
        for proc in &mut procs {
            proc.times.rounds.push(Vec::with_capacity(knobs.proc_runs));
        }
        for run in 0..knobs.proc_runs {
            for k in 0..procs.len() {
                let index = (run + k) % procs.len();
                let ns = procs[index].time();
                procs[index]
                    .times
                    .rounds
                    .last_mut()
                    .expect("round started")
                    .push(ns);
            }
        }
    }
    let mut procs = procs.into_iter().map(|proc| proc.times);
    let tok_times = procs.next().expect("tok get");
    let tok_dynamic_times = procs.next().expect("tok get (dynamic)");
    let hello_times = procs.next().expect("hello");
    let hello_static_times = procs.next().expect("hello (static)");
    let true_times = procs.next().expect("true");
    let git_times = procs.next();

    // d. RSS after all the load (every client connection is closed by now).
    std::thread::sleep(Duration::from_millis(100));
    let tokend_after = rss(tokend.pid());
    let raw_after = rss(raw.pid());

    // e. Last, so that its connections count in no other figure.
    eprintln!(
        "tokend-bench: stampede: {} clients on the expired `{}` token",
        knobs.stampede, STAMPEDE.provider
    );
    let stampede = stampede::run(&socket, &fake, knobs.stampede, tokend.pid());

    let tokend_exit = tokend.stop();
    let _ = raw.stop();
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    let tokend_warnings = log_text
        .lines()
        .filter(|line| line.contains("WARN") || line.contains("ERROR"))
        .count();

    let report = Report {
        knobs,
        pin_cpu,
        allowed_cpus: &allowed_cpus,
        request_len,
        response_len,
        single: &single,
        multi: &multi,
        single_redis: &single_redis,
        multi_redis: &multi_redis,
        shared: &shared,
        tok: &tok_times,
        tok_dynamic: &tok_dynamic_times,
        hello: &hello_times,
        hello_static: &hello_static_times,
        true_: &true_times,
        git: git_times.as_ref(),
        tokend_idle,
        tokend_fetched,
        tokend_after,
        raw_idle,
        raw_after,
        stampede: &stampede,
        nofile,
        phases: &phases,
        tokend_exit,
        tokend_warnings,
        elapsed: started.elapsed(),
        binaries: [
            &tokend_bin,
            &tok_bin,
            &tok_dynamic_bin,
            &hello_bin,
            &hello_static_bin,
        ],
        ordering: &ordering,
    };
    print!("{}", report.render());
    match &ordering {
        Ok(coverage) if coverage.stale() && !knobs.quick => {
            eprintln!(
                "tokend-bench: {}",
                coverage.advice().expect("a stale list has advice")
            );
            ExitCode::FAILURE
        }
        _ => ExitCode::SUCCESS,
    }
}
