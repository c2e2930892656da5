//! `tokend-bench fleet [--quick]`: the fleet (issue "Fleet") against its baselines, in one run.
//!
//! A private `redis-server` on a loopback port and a fake token endpoint (wiremock, JWTs that
//! live `LIFETIME` seconds, answering after 50 ms, counting requests) are started here.
//!
//! - **Cache hit, sharing on vs off**: one tokend with two `http` providers of the same endpoint,
//!   one `share`d and one not, each fetched once; then, round by round (order alternating), the
//!   single-client cache-hit loop on each, the client and the daemon pinned to one CPU like row a
//!   of the main table.
//!   Reported: p50 / p99 of each and the ratios shared ÷ plain (target ≤ 1.05: a hit never touches
//!   Redis).
//! - **Fleet stampede**: 4 daemons, 250 concurrent callers each (`AsyncClient`s, one connection
//!   each, released together) asking for a shared token nobody has yet. Reported: upstream
//!   requests (target 1) and the latency distribution (the floor is the 50 ms upstream delay).
//! - **Upstream requests per refresh period**: callers on 4 sharing daemons for `LIFETIMES`
//!   lifetimes, and on 1 daemon alone for as long (the baseline: what refresh-ahead costs without
//!   a fleet). Reported: both counts, and their ratio (target ≤ 1.2: the fleet costs what one
//!   daemon costs, not four times that).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use tokend_client::{AsyncClient, Client, Endpoint, GetOptions};
use tokend_e2e::redis::RedisServer;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use rustix::thread::CpuSet;

use super::{ChildGuard, cpuset, median, percentile, pin_current_thread, spawn_tokend};

const KEY: &str = "c2e8f7a1b4d3069e5f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70";
const LIFETIME: u64 = 4;
const UPSTREAM_DELAY: Duration = Duration::from_millis(50);

struct Tokens {
    lifetime: u64,
    served: Arc<AtomicUsize>,
}

impl Respond for Tokens {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let serial = self.served.fetch_add(1, Ordering::SeqCst);
        let exp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            + self.lifetime;
        let part = |json: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
        let token = format!(
            "{}.{}.c2ln",
            part(r#"{"alg":"HS256","typ":"JWT"}"#),
            part(&format!(r#"{{"n":{serial},"exp":{exp}}}"#))
        );
        ResponseTemplate::new(200)
            .set_delay(UPSTREAM_DELAY)
            .set_body_json(serde_json::json!({ "token": token }))
    }
}

/// One fake endpoint path per scenario, each counting its own requests.
struct Upstream {
    server: MockServer,
    runtime: tokio::runtime::Runtime,
    counts: Vec<(&'static str, Arc<AtomicUsize>)>,
}

impl Upstream {
    fn start(paths: &[(&'static str, u64)]) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let mut counts = Vec::new();
        let server = runtime.block_on(async {
            let server = MockServer::start().await;
            for (name, lifetime) in paths {
                let served = Arc::new(AtomicUsize::new(0));
                Mock::given(path(format!("/{name}")))
                    .respond_with(Tokens {
                        lifetime: *lifetime,
                        served: Arc::clone(&served),
                    })
                    .mount(&server)
                    .await;
                counts.push((*name, served));
            }
            server
        });
        Self {
            server,
            runtime,
            counts,
        }
    }

    fn count(&self, name: &str) -> usize {
        self.counts
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0, |(_, c)| c.load(Ordering::SeqCst))
    }

    fn provider(&self, provider: &str, path: &str, share: Option<&str>) -> String {
        format!(
            "\n[providers.{provider}]\nkind = \"http\"\nurl = \"{}/{path}\"\ntoken = \"/token\"\n\
             expires = \"jwt\"\n{}\n",
            self.server.uri(),
            share
                .map(|s| format!("share = \"{s}\""))
                .unwrap_or_default()
        )
    }
}

struct Daemon {
    _guard: ChildGuard,
    socket: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// A tokend of the fleet, pinned to `cpus` (`None`: every CPU).
fn start_daemon(
    redis: &RedisServer,
    namespace: &str,
    providers: &str,
    cpus: Option<&[usize]>,
) -> Daemon {
    let dir = tokend_e2e::private_dir();
    let config = dir.path().join("config.toml");
    tokend_e2e::write_private(
        &config,
        &format!(
            "[fleet]\nurl = \"{}\"\nkey = \"${{env:BENCH_FLEET_KEY}}\"\nnamespace = \"{namespace}\"\n{providers}",
            redis.url()
        ),
    );
    let socket = dir.path().join("tokend.sock");
    let pin = cpus.map_or_else(all_cpus, cpuset);
    let guard = spawn_tokend(&config, &socket, &[("BENCH_FLEET_KEY", KEY)], &pin);
    Daemon {
        _guard: guard,
        socket,
        _dir: dir,
    }
}

fn client(daemon: &Daemon) -> Client {
    Client::builder()
        .endpoint(Endpoint::from_path(&daemon.socket))
        .autostart(false)
        .timeout(Duration::from_secs(30))
        .build()
}

/// p50 and p99 (µs) of `iters` cache hits of `provider`.
fn hits(client: &mut Client, provider: &str, iters: usize) -> (f64, f64) {
    let mut samples = Vec::with_capacity(iters);
    for _ in 0..iters / 10 {
        client.get(provider).expect("warm-up get");
    }
    for _ in 0..iters {
        let started = Instant::now();
        client.get(provider).expect("get");
        samples.push(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX));
    }
    samples.sort_unstable();
    (
        percentile(&samples, 0.50) / 1e3,
        percentile(&samples, 0.99) / 1e3,
    )
}

/// Callers on every daemon for `seconds`; returns how many gets were served.
fn callers(daemons: &[Daemon], provider: &str, seconds: u64) -> usize {
    let started = Instant::now();
    std::thread::scope(|scope| {
        let handles: Vec<_> = daemons
            .iter()
            .map(|daemon| {
                scope.spawn(move || {
                    let client = client(daemon);
                    let mut gets = 0;
                    while started.elapsed() < Duration::from_secs(seconds) {
                        client
                            .get_with(
                                provider,
                                &GetOptions {
                                    min_ttl: Duration::from_secs(1),
                                },
                            )
                            .expect("get");
                        gets += 1;
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    gets
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("caller")).sum()
    })
}

fn all_cpus() -> CpuSet {
    cpuset(&(0..std::thread::available_parallelism().map_or(1, usize::from)).collect::<Vec<_>>())
}

/// Runs the fleet benchmark and prints its table.
pub(crate) fn run(quick: bool) {
    let rounds = if quick { 3 } else { 11 };
    let iters = if quick { 2_000 } else { 20_000 };
    let lifetimes: u64 = if quick { 3 } else { 10 };
    let per_daemon = if quick { 50 } else { 250 };
    let redis = RedisServer::start();
    let upstream = Upstream::start(&[
        ("hits", 3600),
        ("stampede", 3600),
        ("alone", LIFETIME),
        ("shared", LIFETIME),
    ]);
    let started = Instant::now();

    // Cache hits, sharing on vs off.
    let providers = format!(
        "{}{}",
        upstream.provider("alone", "hits", None),
        upstream.provider("shared", "hits", Some("hits"))
    );
    let daemon = start_daemon(&redis, "hits", &providers, Some(&[0]));
    pin_current_thread(&cpuset(&[0]));
    let mut hit_client = client(&daemon);
    let (mut plain, mut shared, mut p50, mut p99) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let (a, b) = if round % 2 == 0 {
            let a = hits(&mut hit_client, "alone", iters);
            (a, hits(&mut hit_client, "shared", iters))
        } else {
            let b = hits(&mut hit_client, "shared", iters);
            (hits(&mut hit_client, "alone", iters), b)
        };
        plain.push(a);
        shared.push(b);
        p50.push(b.0 / a.0);
        p99.push(b.1 / a.1);
    }
    pin_current_thread(&cpuset(
        &(0..std::thread::available_parallelism().map_or(1, usize::from)).collect::<Vec<_>>(),
    ));
    drop(hit_client);
    drop(daemon);
    let m = |values: &[(f64, f64)], first: bool| {
        median(
            &values
                .iter()
                .map(|v| if first { v.0 } else { v.1 })
                .collect::<Vec<_>>(),
        )
    };

    // The fleet stampede.
    let providers = upstream.provider("api", "stampede", Some("stampede"));
    let daemons: Vec<Daemon> = (0..4)
        .map(|_| start_daemon(&redis, "stampede", &providers, None))
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let latencies: Vec<u64> = runtime.block_on(async {
        let mut clients = Vec::new();
        for daemon in &daemons {
            for _ in 0..per_daemon {
                let client: AsyncClient = Client::builder()
                    .endpoint(Endpoint::from_path(&daemon.socket))
                    .autostart(false)
                    .timeout(Duration::from_secs(30))
                    .build_async();
                client.ping().await.expect("ping");
                clients.push(client);
            }
        }
        let gets: Vec<_> = clients
            .into_iter()
            .map(|client| {
                tokio::spawn(async move {
                    let started = Instant::now();
                    client.get("api").await.expect("stampede get");
                    u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX)
                })
            })
            .collect();
        let mut latencies = Vec::new();
        for get in gets {
            latencies.push(get.await.expect("task"));
        }
        latencies
    });
    let mut latencies = latencies;
    latencies.sort_unstable();
    let stampede_requests = upstream.count("stampede");
    drop(daemons);

    // Upstream requests per refresh period: one daemon alone, then four sharing.
    let alone_daemon = start_daemon(
        &redis,
        "alone",
        &upstream.provider("api", "alone", Some("alone")),
        None,
    );
    let alone_gets = callers(
        std::slice::from_ref(&alone_daemon),
        "api",
        LIFETIME * lifetimes,
    );
    drop(alone_daemon);
    let providers = upstream.provider("api", "shared", Some("shared"));
    let fleet: Vec<Daemon> = (0..4)
        .map(|_| start_daemon(&redis, "shared", &providers, None))
        .collect();
    let fleet_gets = callers(&fleet, "api", LIFETIME * lifetimes);
    drop(fleet);
    let (alone, shared_requests) = (upstream.count("alone"), upstream.count("shared"));
    drop(upstream.runtime);

    let ms = |micros: f64| micros / 1e3;
    println!(
        "\n### Fleet (`tokend-bench fleet{}`)\n",
        if quick { " --quick" } else { "" }
    );
    println!(
        "- rounds {rounds}, iters {iters}; stampede 4 daemons × {per_daemon} callers; refresh \
         {lifetimes} lifetimes of {LIFETIME} s; upstream delay {} ms; Redis {}",
        UPSTREAM_DELAY.as_millis(),
        redis.url()
    );
    println!();
    println!("| measurement | fleet | baseline | ratio | target |");
    println!("| --- | ---: | ---: | ---: | --- |");
    let r50 = median(&p50);
    let r99 = median(&p99);
    println!(
        "| cache hit with `share` — p50 (baseline: the same provider unshared) | {:.1} µs | {:.1} µs | {r50:.2}× | ≤ 1.05× ({}) |",
        m(&shared, true),
        m(&plain, true),
        if r50 <= 1.05 { "met" } else { "**missed**" }
    );
    println!(
        "| cache hit with `share` — p99 | {:.1} µs | {:.1} µs | {r99:.2}× | ≤ 1.05× ({}) |",
        m(&shared, false),
        m(&plain, false),
        if r99 <= 1.05 { "met" } else { "**missed**" }
    );
    println!(
        "| fleet stampede: 4 × {per_daemon} cold gets — upstream requests | {stampede_requests} | 1 | – | exactly 1 ({}) |",
        if stampede_requests == 1 {
            "met"
        } else {
            "**missed**"
        }
    );
    let pct = |q: f64| ms(percentile(&latencies, q));
    println!(
        "| fleet stampede — latency p50 / p90 / p99 / max (baseline: the upstream delay) | {:.1} / {:.1} / {:.1} / {:.1} ms | {} ms | {:.2}× (p50) | – |",
        pct(0.50),
        pct(0.90),
        pct(0.99),
        ms(latencies.last().copied().unwrap_or(0) as f64),
        UPSTREAM_DELAY.as_millis(),
        pct(0.50) / UPSTREAM_DELAY.as_secs_f64() / 1e3
    );
    let ratio = shared_requests as f64 / alone.max(1) as f64;
    println!(
        "| upstream requests over {lifetimes} lifetimes — 4 daemons sharing (baseline: 1 daemon alone) | {shared_requests} ({fleet_gets} gets) | {alone} ({alone_gets} gets) | {ratio:.2}× | ≤ 1.2× ({}) |",
        if ratio <= 1.2 { "met" } else { "**missed**" }
    );
    println!(
        "| upstream requests per lifetime, whole fleet | {:.2} | {:.2} (1 daemon) | – | – |",
        shared_requests as f64 / lifetimes as f64,
        alone as f64 / lifetimes as f64
    );
    println!(
        "\nFleet bench wall time {:.1} s.",
        started.elapsed().as_secs_f64()
    );
}
