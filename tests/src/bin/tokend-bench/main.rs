//! `tokend-bench`: tokend against its physical floor, side by side in one run.
//!
//! Run it as `cargo build --release -p tokend-e2e && cargo build --release -p tokend -p tokend-client
//! && target/release/tokend-bench` (tokend is built on its own last, as `cargo install` builds it:
//! built together with the test crate it would get wiremock's extra HTTP server features)
//! (about 40 s; `--quick` or `QUICK=1` for a ~8 s smoke run). It finds `tokend`, `tok` and
//! `hello` next to its own executable and prints one markdown table with the targets from
//! `research/perf-baselines.md`:
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
//! - **c. whole process**: `tok --socket S get NAME` against the `hello` binary (and `true`, the
//!   fork+exec floor), alternated run by run, timed spawn-to-exit.
//! - **d. resident memory**: `VmRSS` of tokend and of the raw server right after start plus one
//!   request, and again after all the load; `VmHWM` is the peak.
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
//! runs. Compare the ratios, not absolute times, across runs and machines. "srv CPU" is the
//! server process's on-CPU time (`/proc/PID/task/*/schedstat`) per timed request.
//!
//! Knobs (environment): `BENCH_ROUNDS` (7), `BENCH_ITERS` timed round trips per single-client
//! scenario (20 000), `BENCH_WARMUP` (2 000), `BENCH_CLIENTS` (64), `BENCH_TOTAL` requests per
//! multi-client scenario (64 000), `BENCH_PROC_ROUNDS` (10), `BENCH_PROC_RUNS` runs per command
//! per round (30), `BENCH_TOKEN_LEN` bytes of the static token (500, which makes tokend's
//! response about 1 KiB: the token travels twice, raw and inside the `Authorization` header),
//! `BENCH_STAMPEDE` clients in e (1000; quick 200), `BENCH_PHASE_MS` minimum duration of each f
//! phase (1500; quick 250).
//!
//! Other modes: `tokend-bench fleet [--quick]` (the Redis fleet, see `fleet.rs`) and
//! `tokend-bench proxy [--quick]` (the auth proxy against direct requests, see `proxy.rs`), and
//! `tokend-bench soak [--minutes N]` (a long run under chaos and kill -9, see `soak/mod.rs`).

// The benchmark's output is its report: printing the table to stdout is the point.
#![allow(clippy::print_stdout)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::{Arc, Barrier, mpsc};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Resource, Rlimit, Signal};
use rustix::thread::CpuSet;
use tokend_client::{Client, Endpoint};
use tokend_protocol::frame::{read_frame, write_frame};
use tokend_protocol::handshake::{Hello, Verdict, Welcome};
use tokend_protocol::{GetToken, MAX_FRAME_LEN, MAX_HANDSHAKE_LEN, Request, Response, codec};

mod fleet;
mod proxy;
mod refresh;
mod report;
mod soak;
mod stampede;
mod upstream;

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
            serve_raw(Path::new(socket), len)
        }
        Some("--quick") => {
            bench(&Knobs::from_env(true));
            ExitCode::SUCCESS
        }
        Some("fleet") => {
            fleet::run(args.get(1).is_some_and(|arg| arg == "--quick"));
            ExitCode::SUCCESS
        }
        Some("proxy") => {
            proxy::run(args.get(1).is_some_and(|arg| arg == "--quick"));
            ExitCode::SUCCESS
        }
        Some("soak") => soak::run(&args[1..]),
        None => {
            let quick = std::env::var("QUICK").is_ok_and(|v| v == "1");
            bench(&Knobs::from_env(quick));
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!(
                "unknown argument {other:?}\nusage: tokend-bench [--quick]\n       \
                 tokend-bench fleet [--quick]\n       tokend-bench proxy [--quick]\n       \
                 tokend-bench soak [--minutes N] [--kill-every SECONDS] [--faults RATE]\n       \
                 tokend-bench serve-raw SOCKET RESPONSE_LEN"
            );
            ExitCode::from(2)
        }
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
            proc_rounds: knob("BENCH_PROC_ROUNDS", 10, 4),
            proc_runs: knob("BENCH_PROC_RUNS", 30, 10),
            token_len: knob("BENCH_TOKEN_LEN", 500, 500),
            stampede: knob("BENCH_STAMPEDE", 1000, 200),
            phase_ms: knob("BENCH_PHASE_MS", 1500, 250),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Processes

/// A server process we started: stopped on drop (SIGTERM, bounded wait, then SIGKILL), so a
/// panic anywhere in the bench leaves nothing running.
#[derive(Debug)]
struct ChildGuard {
    name: &'static str,
    child: Child,
}

impl ChildGuard {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, wait up to [`PROCESS_WAIT`], then SIGKILL. `None` if it had already been reaped.
    fn stop(&mut self) -> Option<ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        signal(self.pid(), Signal::TERM);
        let deadline = Instant::now() + PROCESS_WAIT;
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(_) => break,
            }
        }
        eprintln!(
            "{} (pid {}) ignored SIGTERM for {PROCESS_WAIT:?}; killing it",
            self.name,
            self.pid()
        );
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn signal(pid: u32, signal: Signal) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

/// A binary next to this executable (`target/release/NAME`).
fn sibling(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("path of the tokend-bench executable");
    let path = exe
        .parent()
        .expect("directory of the tokend-bench executable")
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing: build with `cargo build --release -p tokend-e2e && cargo build --release -p tokend -p tokend-client` first",
        path.display()
    );
    path
}

/// Spawns `command` with stdout piped, pins it to `pin` right away, and waits (bounded) for its
/// `READY` line. `log` is shown if it does not become ready.
fn spawn_ready(
    name: &'static str,
    command: &mut Command,
    pin: &CpuSet,
    log: Option<&Path>,
) -> ChildGuard {
    command.stdin(Stdio::null()).stdout(Stdio::piped());
    let child = command
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start {name}: {err}"));
    let mut guard = ChildGuard { name, child };
    // Pin the main thread before it can start others (threads inherit the mask); the whole
    // process is pinned again once it is ready, in case it started threads meanwhile.
    set_process_affinity(guard.pid(), pin);
    let stdout = guard.child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(PROCESS_WAIT).unwrap_or_default();
    if line.trim() != tokend_protocol::endpoint::READY_LINE {
        let shown = log
            .and_then(|path| std::fs::read_to_string(path).ok())
            .unwrap_or_default();
        drop(guard);
        panic!("{name} did not print READY within {PROCESS_WAIT:?} (got {line:?}); log:\n{shown}");
    }
    set_process_affinity(guard.pid(), pin);
    guard
}

// ---------------------------------------------------------------------------------------------
// CPU affinity and /proc

/// `tokend --config CONFIG --socket SOCKET --notify-ready` with `env`, its data directory and
/// log beside the config, logging warnings only, pinned to `pin`; returns once it is ready.
fn spawn_tokend(config: &Path, socket: &Path, env: &[(&str, &str)], pin: &CpuSet) -> ChildGuard {
    let log = config.with_file_name("tokend.log");
    let mut command = Command::new(sibling("tokend"));
    command
        .arg("--config")
        .arg(config)
        .arg("--socket")
        .arg(socket)
        .arg("--notify-ready")
        .env("TOKEND_DATA", config.with_file_name("data"))
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stderr(std::fs::File::create(&log).expect("tokend log file"));
    spawn_ready("tokend", &mut command, pin, Some(&log))
}

fn cpuset(cpus: &[usize]) -> CpuSet {
    let mut set = CpuSet::new();
    for &cpu in cpus {
        set.set(cpu);
    }
    set
}

fn cpus_of(set: &CpuSet) -> Vec<usize> {
    (0..CpuSet::MAX_CPU)
        .filter(|&cpu| set.is_set(cpu))
        .collect()
}

fn pin_current_thread(set: &CpuSet) {
    rustix::thread::sched_setaffinity(None, set).expect("sched_setaffinity on the client thread");
}

/// Thread ids of a process (`/proc/PID/task`).
fn tasks(pid: u32) -> Vec<u32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|dir| {
            dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Sets the affinity of every thread of `pid` (`sched_setaffinity` acts on one thread).
fn set_process_affinity(pid: u32, set: &CpuSet) {
    for tid in tasks(pid) {
        if let Some(tid) = i32::try_from(tid).ok().and_then(Pid::from_raw) {
            // A thread may exit between listing and setting: ignore ESRCH.
            let _ = rustix::thread::sched_setaffinity(Some(tid), set);
        }
    }
}

/// On-CPU nanoseconds of all threads of `pid` so far.
fn cpu_ns(pid: u32) -> u64 {
    tasks(pid)
        .iter()
        .filter_map(|tid| {
            let text = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/schedstat")).ok()?;
            text.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum()
}

/// Raises this process's soft `RLIMIT_NOFILE` to the hard limit (best effort). Returns the soft
/// limit in force afterwards; `None` means unlimited.
fn raise_open_file_limit() -> Option<u64> {
    let limit = rustix::process::getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if rustix::process::setrlimit(Resource::Nofile, raised).is_ok() {
            return limit.maximum;
        }
    }
    limit.current
}

/// A `Vm…:` field of `/proc/PID/status`, in KiB.
fn vm_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|err| panic!("read /proc/{pid}/status: {err}"));
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

#[derive(Debug, Clone, Copy)]
struct Rss {
    rss_kib: u64,
    hwm_kib: u64,
}

fn rss(pid: u32) -> Rss {
    Rss {
        rss_kib: vm_kib(pid, "VmRSS"),
        hwm_kib: vm_kib(pid, "VmHWM"),
    }
}

// ---------------------------------------------------------------------------------------------
// The raw ping-pong server (subcommand `serve-raw`)

/// A tokio current-thread Unix-socket server (tokend's runtime flavour): one task per connection,
/// reads a u32-BE length-prefixed request, answers a prebuilt frame of `response_len` payload
/// bytes. Prints READY once it accepts; exits on SIGTERM, when its parent dies, or after
/// [`RAW_SERVER_LIFETIME`].
fn serve_raw(socket: &Path, response_len: usize) -> ExitCode {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    if response_len > MAX_FRAME_LEN {
        eprintln!("serve-raw: RESPONSE_LEN above {MAX_FRAME_LEN}");
        return ExitCode::from(2);
    }
    // Best effort: do not outlive a bench that was killed without running its cleanup.
    let _ = rustix::process::set_parent_process_death_signal(Some(Signal::TERM));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio current-thread runtime");
    let mut response = Vec::with_capacity(4 + response_len);
    response.extend_from_slice(
        &u32::try_from(response_len)
            .expect("length checked above")
            .to_be_bytes(),
    );
    response.resize(4 + response_len, b'x');
    let response: Arc<[u8]> = response.into();

    runtime.block_on(async move {
        let listener = match tokio::net::UnixListener::bind(socket) {
            Ok(listener) => listener,
            Err(err) => {
                eprintln!("serve-raw: bind {}: {err}", socket.display());
                return ExitCode::FAILURE;
            }
        };
        {
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{}", tokend_protocol::endpoint::READY_LINE);
            let _ = stdout.flush();
        }
        let serve = async {
            loop {
                match listener.accept().await {
                    Ok((mut stream, _)) => {
                        let response = Arc::clone(&response);
                        tokio::spawn(async move {
                            let mut header = [0u8; 4];
                            let mut payload = Vec::with_capacity(256);
                            loop {
                                if stream.read_exact(&mut header).await.is_err() {
                                    return;
                                }
                                let len = u32::from_be_bytes(header) as usize;
                                if len > MAX_FRAME_LEN {
                                    return;
                                }
                                payload.resize(len, 0);
                                if stream.read_exact(&mut payload).await.is_err()
                                    || stream.write_all(&response).await.is_err()
                                {
                                    return;
                                }
                            }
                        });
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
        };
        let _ = tokio::time::timeout(RAW_SERVER_LIFETIME, serve).await;
        ExitCode::SUCCESS
    })
}

// ---------------------------------------------------------------------------------------------
// Clients

/// One request/response on an open connection.
trait RoundTrip {
    fn round_trip(&mut self) -> Result<(), String>;
}

/// The library under test: a blocking `Client` on one persistent connection.
struct LibClient(Client);

impl LibClient {
    fn connect(socket: &Path) -> Result<Self, String> {
        let client = Client::builder()
            .endpoint(Endpoint::from_path(socket))
            .autostart(false)
            .timeout(IO_TIMEOUT)
            .build();
        // Connect and handshake now, outside any timed loop.
        client.get(PROVIDER).map_err(|err| err.to_string())?;
        Ok(Self(client))
    }
}

impl RoundTrip for LibClient {
    fn round_trip(&mut self) -> Result<(), String> {
        let token = self.0.get(PROVIDER).map_err(|err| err.to_string())?;
        std::hint::black_box(&token);
        Ok(())
    }
}

/// One `Client` shared by every thread (a reference to it): each call takes a pooled
/// connection of its own.
struct SharedClient<'a>(&'a Client);

impl RoundTrip for SharedClient<'_> {
    fn round_trip(&mut self) -> Result<(), String> {
        let token = self.0.get(PROVIDER).map_err(|err| err.to_string())?;
        std::hint::black_box(&token);
        Ok(())
    }
}

/// The baseline client: a std `UnixStream`, one prebuilt request frame, one reused buffer.
struct RawClient {
    stream: UnixStream,
    request: Vec<u8>,
    response: Vec<u8>,
    expected_len: usize,
}

impl RawClient {
    fn connect(socket: &Path, request_len: usize, response_len: usize) -> Result<Self, String> {
        let stream = UnixStream::connect(socket).map_err(|err| format!("connect: {err}"))?;
        stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)))
            .map_err(|err| format!("socket timeouts: {err}"))?;
        let mut request = Vec::with_capacity(4 + request_len);
        request.extend_from_slice(
            &u32::try_from(request_len)
                .map_err(|_| "request too long".to_owned())?
                .to_be_bytes(),
        );
        request.resize(4 + request_len, b'r');
        Ok(Self {
            stream,
            request,
            response: Vec::with_capacity(response_len),
            expected_len: response_len,
        })
    }
}

impl RoundTrip for RawClient {
    fn round_trip(&mut self) -> Result<(), String> {
        self.stream
            .write_all(&self.request)
            .map_err(|err| format!("raw write: {err}"))?;
        let mut header = [0u8; 4];
        self.stream
            .read_exact(&mut header)
            .map_err(|err| format!("raw read: {err}"))?;
        let len = u32::from_be_bytes(header) as usize;
        if len != self.expected_len {
            return Err(format!(
                "raw server answered {len} bytes, expected {}",
                self.expected_len
            ));
        }
        self.response.resize(len, 0);
        self.stream
            .read_exact(&mut self.response)
            .map_err(|err| format!("raw read: {err}"))?;
        std::hint::black_box(&self.response);
        Ok(())
    }
}

/// Encoded sizes of tokend's GetToken request and of its answer, measured on the wire: a
/// handshake and one GetToken by hand against the running daemon.
fn wire_sizes(socket: &Path, token_len: usize) -> (usize, usize) {
    let mut stream = UnixStream::connect(socket).expect("connect to tokend for the size probe");
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .expect("read timeout");
    write_frame(&mut stream, &Hello::current().encode()).expect("send hello");
    let welcome = read_frame(&mut stream, MAX_HANDSHAKE_LEN)
        .expect("read welcome")
        .expect("tokend closed the connection during the handshake");
    let welcome = Welcome::decode(&welcome).expect("decode welcome");
    assert_eq!(
        welcome.verdict,
        Verdict::Accepted,
        "tokend refused the hello"
    );
    let request = codec::encode(&Request::GetToken(GetToken {
        provider: PROVIDER.to_owned(),
        min_ttl_secs: u32::try_from(tokend_client::DEFAULT_MIN_TTL.as_secs())
            .expect("min ttl fits u32"),
    }))
    .expect("encode GetToken");
    write_frame(&mut stream, &request).expect("send GetToken");
    let answer = read_frame(&mut stream, MAX_FRAME_LEN)
        .expect("read the token response")
        .expect("tokend closed the connection instead of answering");
    match codec::decode::<Response>(&answer).expect("decode the token response") {
        Response::Token(grant) => assert_eq!(grant.token.len(), token_len, "token length"),
        other => panic!("tokend did not answer with a token: {other:?}"),
    }
    (request.len(), answer.len())
}

// ---------------------------------------------------------------------------------------------
// Measurements

/// One scenario's result in one round.
#[derive(Debug, Clone, Copy)]
struct Sample {
    p50_ns: f64,
    p99_ns: f64,
    rate: f64,
    srv_cpu_ns: f64,
}

impl Sample {
    /// The figures of `lat` (round-trip times in ns, any order) timed over `wall`, during which
    /// the server spent `cpu_ns` on CPU.
    fn from_latencies(mut lat: Vec<u64>, wall: Duration, cpu_ns: u64) -> Self {
        lat.sort_unstable();
        let done = lat.len() as f64;
        Self {
            p50_ns: percentile(&lat, 0.50),
            p99_ns: percentile(&lat, 0.99),
            rate: done / wall.as_secs_f64(),
            srv_cpu_ns: cpu_ns as f64 / done,
        }
    }
}

fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64
}

fn median(values: &[f64]) -> f64 {
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
fn single_client(
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
    let start = Instant::now();
    for _ in 0..iters {
        let t = Instant::now();
        conn.round_trip()
            .unwrap_or_else(|err| panic!("{what}: {err}"));
        lat.push(t.elapsed().as_nanos() as u64);
    }
    let wall = start.elapsed();
    let cpu = cpu_ns(server_pid).saturating_sub(cpu_before);
    Sample::from_latencies(lat, wall, cpu)
}

/// `clients` threads, each with its own connection from `connect`, `total` requests in all.
fn multi_client<C, F>(
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
    let (lat, wall, cpu) = std::thread::scope(|scope| {
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
        let start = Instant::now();
        let mut lat = Vec::with_capacity(per_client * clients);
        for handle in handles {
            lat.extend(handle.join().expect("a client thread panicked"));
        }
        let wall = start.elapsed();
        (lat, wall, cpu_ns(server_pid).saturating_sub(cpu_before))
    });
    Sample::from_latencies(lat, wall, cpu)
}

/// Spawn-to-exit time of one run; the command must succeed.
fn time_process(command: &mut Command, what: &str) -> u64 {
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
struct Paired {
    ours: Vec<Sample>,
    base: Vec<Sample>,
}

impl Paired {
    fn push(&mut self, ours: Sample, base: Sample) {
        self.ours.push(ours);
        self.base.push(base);
    }

    fn ours(&self, field: fn(&Sample) -> f64) -> f64 {
        median(&self.ours.iter().map(field).collect::<Vec<_>>())
    }

    fn base(&self, field: fn(&Sample) -> f64) -> f64 {
        median(&self.base.iter().map(field).collect::<Vec<_>>())
    }

    fn per_round_ratios(&self, field: fn(&Sample) -> f64) -> Vec<f64> {
        self.ours
            .iter()
            .zip(&self.base)
            .map(|(ours, base)| field(ours) / field(base))
            .collect()
    }

    fn ratio(&self, field: fn(&Sample) -> f64) -> f64 {
        median(&self.per_round_ratios(field))
    }
}

/// Whole-process timings: per-round run times of each command.
#[derive(Debug, Default)]
struct ProcTimes {
    rounds: Vec<Vec<u64>>,
}

impl ProcTimes {
    fn p50(&self) -> f64 {
        median(&self.round_medians())
    }

    fn p99(&self) -> f64 {
        let mut all: Vec<u64> = self.rounds.iter().flatten().copied().collect();
        all.sort_unstable();
        percentile(&all, 0.99)
    }

    fn round_medians(&self) -> Vec<f64> {
        self.rounds
            .iter()
            .map(|round| {
                let mut sorted = round.clone();
                sorted.sort_unstable();
                percentile(&sorted, 0.50)
            })
            .collect()
    }

    fn ratio_to(&self, base: &Self) -> (f64, Vec<f64>) {
        let ratios: Vec<f64> = self
            .round_medians()
            .iter()
            .zip(base.round_medians())
            .map(|(ours, base)| ours / base)
            .collect();
        (median(&ratios), ratios)
    }
}

// ---------------------------------------------------------------------------------------------
// The run

fn bench(knobs: &Knobs) {
    let started = Instant::now();
    let tokend_bin = sibling("tokend");
    let tok_bin = sibling("tok");
    let hello_bin = sibling("hello");
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

        // a. Everyone on the same CPU.
        set_process_affinity(tokend.pid(), &pinned);
        set_process_affinity(raw.pid(), &pinned);
        let (ours, base) = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    pin_current_thread(&pinned);
                    let run_ours = || {
                        let mut conn = LibClient::connect(&socket).expect("connect to tokend");
                        single_client(&mut conn, tokend.pid(), knobs.warmup, knobs.iters, "tokend")
                    };
                    let run_base = || {
                        let mut conn = RawClient::connect(&raw_socket, request_len, response_len)
                            .expect("connect to the raw server");
                        single_client(&mut conn, raw.pid(), knobs.warmup, knobs.iters, "raw")
                    };
                    if ours_first {
                        let ours = run_ours();
                        (ours, run_base())
                    } else {
                        let base = run_base();
                        (run_ours(), base)
                    }
                })
                .join()
                .expect("the pinned client thread panicked")
        });
        single.push(ours, base);

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
        if ours_first {
            let ours = run_ours();
            multi.push(ours, run_base());
        } else {
            let base = run_base();
            multi.push(run_ours(), base);
        }
        // b'. The same threads sharing one client, against one client each (run_ours).
        let one = LibClient::connect(&socket)
            .unwrap_or_else(|err| panic!("shared client connect: {err}"))
            .0;
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

    // c. Whole process: tok get vs hello vs true, alternated run by run.
    eprintln!(
        "tokend-bench: whole-process timings ({} rounds x {} runs)",
        knobs.proc_rounds, knobs.proc_runs
    );
    let quiet = |command: &mut Command| {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
    };
    let mut tok_cmd = Command::new(&tok_bin);
    tok_cmd
        .arg("--socket")
        .arg(&socket)
        .args(["get", PROVIDER])
        .env("TOKEND_NO_AUTOSTART", "1")
        .env_remove("TOKEND_SOCKET");
    quiet(&mut tok_cmd);
    let mut hello_cmd = Command::new(&hello_bin);
    quiet(&mut hello_cmd);
    let mut true_cmd = Command::new("true");
    quiet(&mut true_cmd);
    {
        // `tok get` must print exactly the token (checked once, outside the timings).
        let output = Command::new(&tok_bin)
            .arg("--socket")
            .arg(&socket)
            .args(["get", PROVIDER])
            .env("TOKEND_NO_AUTOSTART", "1")
            .env_remove("TOKEND_SOCKET")
            .stdin(Stdio::null())
            .output()
            .expect("run tok get");
        assert!(
            output.status.success() && output.stdout.trim_ascii_end() == secret.as_bytes(),
            "tok get did not print the token: {}; stderr: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let mut procs: [(&str, &mut Command, ProcTimes); 3] = [
        ("tok get", &mut tok_cmd, ProcTimes::default()),
        ("hello", &mut hello_cmd, ProcTimes::default()),
        ("true", &mut true_cmd, ProcTimes::default()),
    ];
    for (what, command, _) in &mut procs {
        for _ in 0..PROC_WARMUP {
            time_process(command, what);
        }
    }
    for _ in 0..knobs.proc_rounds {
        for (_, _, times) in &mut procs {
            times.rounds.push(Vec::with_capacity(knobs.proc_runs));
        }
        for run in 0..knobs.proc_runs {
            for k in 0..procs.len() {
                let (what, command, times) = &mut procs[(run + k) % 3];
                let ns = time_process(command, what);
                times.rounds.last_mut().expect("round started").push(ns);
            }
        }
    }
    let [(_, _, tok_times), (_, _, hello_times), (_, _, true_times)] = procs;

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
        shared: &shared,
        tok: &tok_times,
        hello: &hello_times,
        true_: &true_times,
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
        binaries: [&tokend_bin, &tok_bin, &hello_bin],
    };
    print!("{}", report.render());
}
