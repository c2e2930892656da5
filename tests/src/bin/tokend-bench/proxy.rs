//! `tokend-bench proxy [--quick]`: the auth proxy against the same request sent straight to the
//! upstream, in one run.
//!
//! A loopback API (`tokend_e2e::http_upstream`, hyper, 2 worker threads) answers `GET /ping`
//! with `pong`; one tokend has an `http` provider whose token that API issues, with a TCP
//! `proxy` in front of it. The client is `ureq` with keep-alive, the same code for both paths;
//! the only difference is the base URL.
//!
//! - **Latency**: one connection, sequential requests, rounds alternating direct / proxied; the
//!   client thread, the API (1 worker thread) and tokend pinned to one CPU, the stable
//!   configuration on this machine (as in row a of the main table). Reported: the median over
//!   rounds of each round's p50 and p99, and proxied ÷ direct (target ≤ 1.5×); then the same
//!   p50 with an API that answers after 1 ms (`/ping?delay_ms=1`), for scale.
//! - **Throughput at 64 connections**: a second API (2 worker threads) and tokend, unpinned; 64
//!   threads, each with its own keep-alive connection, for a fixed time, direct and proxied
//!   (twice each, alternating). Reported: requests per second, proxied ÷ direct (target
//!   ≥ 0.8×), and tokend's CPU time per proxied request. On a 2-core machine the client
//!   threads, the API and tokend share both cores, so the proxy's own CPU time shows up in full.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokend_client::{Client, Endpoint};
use tokend_e2e::http_upstream::HttpUpstream;

use super::{ChildGuard, cpu_ns, cpuset, median, percentile, pin_current_thread, spawn_tokend};

const CONNECTIONS: usize = 64;

struct Daemon {
    guard: ChildGuard,
    proxy_url: String,
    _dir: tempfile::TempDir,
}

fn start_daemon(upstream: &HttpUpstream, cpus: &[usize]) -> Daemon {
    let dir = tokend_e2e::private_dir();
    let config = dir.path().join("config.toml");
    tokend_e2e::write_private(
        &config,
        &format!(
            "[providers.api]\nkind = \"http\"\nurl = \"{0}/token\"\ntoken = \"/token\"\n\
             expires = \"/expires_in\"\nproxy = {{ listen = \"127.0.0.1:0\", upstream = \"{0}\" }}\n",
            upstream.url()
        ),
    );
    let socket = dir.path().join("tokend.sock");
    let guard = spawn_tokend(&config, &socket, &[], &cpuset(cpus));
    let client = Client::builder()
        .endpoint(Endpoint::from_path(&socket))
        .autostart(false)
        .timeout(Duration::from_secs(30))
        .build();
    let proxy_url = client
        .proxy_url("api")
        .expect("tok proxy-url")
        .expose()
        .to_owned();
    Daemon {
        guard,
        proxy_url,
        _dir: dir,
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .proxy(None)
        .max_redirects(0)
        .build()
        .into()
}

fn ping(agent: &ureq::Agent, url: &str) {
    let mut response = agent.get(url).call().expect("GET /ping");
    let body = response.body_mut().read_to_string().expect("body");
    assert_eq!(body, "pong", "unexpected answer from {url}");
}

/// p50 and p99 in µs of `iters` sequential requests on one connection.
fn latency(url: &str, iters: usize) -> (f64, f64) {
    let agent = agent();
    for _ in 0..iters / 10 {
        ping(&agent, url);
    }
    let mut samples = Vec::with_capacity(iters);
    for _ in 0..iters {
        let started = Instant::now();
        ping(&agent, url);
        samples.push(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX));
    }
    samples.sort_unstable();
    (
        percentile(&samples, 0.50) / 1e3,
        percentile(&samples, 0.99) / 1e3,
    )
}

/// Requests per second over `CONNECTIONS` connections for `time`.
fn throughput(url: &str, time: Duration) -> f64 {
    let done = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let started = std::thread::scope(|scope| {
        let agents: Vec<ureq::Agent> = (0..CONNECTIONS).map(|_| agent()).collect();
        // Each connection is opened before the clock starts.
        for agent in &agents {
            ping(agent, url);
        }
        let started = Instant::now();
        for agent in agents {
            let (done, stop) = (&done, &stop);
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    ping(&agent, url);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        std::thread::sleep(time);
        stop.store(true, Ordering::Relaxed);
        started
    });
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

fn all_cpus() -> Vec<usize> {
    (0..std::thread::available_parallelism().map_or(1, usize::from)).collect()
}

pub(crate) fn run(quick: bool) {
    let rounds = if quick { 3 } else { 9 };
    let iters = if quick { 1_000 } else { 5_000 };
    let time = Duration::from_secs(if quick { 2 } else { 5 });
    let started = Instant::now();

    // Latency: everything on CPU 0 (the API's threads inherit this thread's affinity).
    pin_current_thread(&cpuset(&[0]));
    let upstream = HttpUpstream::start(1);
    let daemon = start_daemon(&upstream, &[0]);
    let direct = format!("{}/ping", upstream.url());
    let proxied = format!("{}/ping", daemon.proxy_url);
    let (mut d50, mut d99, mut p50, mut p99, mut r50, mut r99) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for round in 0..rounds {
        let (d, p) = if round % 2 == 0 {
            let d = latency(&direct, iters);
            (d, latency(&proxied, iters))
        } else {
            let p = latency(&proxied, iters);
            (latency(&direct, iters), p)
        };
        d50.push(d.0);
        d99.push(d.1);
        p50.push(p.0);
        p99.push(p.1);
        r50.push(p.0 / d.0);
        r99.push(p.1 / d.1);
    }
    // The same with an API that takes 1 ms to answer (most real ones take longer).
    let (slow_direct, slow_proxied) = (
        format!("{direct}?delay_ms=1"),
        format!("{proxied}?delay_ms=1"),
    );
    let (mut s50, mut sp50, mut sr50) = (vec![], vec![], vec![]);
    for round in 0..rounds {
        let slow_iters = iters / 5;
        let (d, p) = if round % 2 == 0 {
            let d = latency(&slow_direct, slow_iters);
            (d, latency(&slow_proxied, slow_iters))
        } else {
            let p = latency(&slow_proxied, slow_iters);
            (latency(&slow_direct, slow_iters), p)
        };
        s50.push(d.0);
        sp50.push(p.0);
        sr50.push(p.0 / d.0);
    }
    drop(daemon);
    drop(upstream);

    // Throughput: unpinned.
    pin_current_thread(&cpuset(&all_cpus()));
    let upstream = HttpUpstream::start(2);
    let daemon = start_daemon(&upstream, &all_cpus());
    let direct = format!("{}/ping", upstream.url());
    let proxied = format!("{}/ping", daemon.proxy_url);
    let (mut direct_rps, mut proxied_rps, mut cpu_per_request) = (vec![], vec![], vec![]);
    let proxied_round = |rps: &mut Vec<f64>, cpu: &mut Vec<f64>| {
        let before = cpu_ns(daemon.guard.pid());
        let rate = throughput(&proxied, time);
        let spent = cpu_ns(daemon.guard.pid()).saturating_sub(before) as f64;
        rps.push(rate);
        cpu.push(spent / 1e3 / (rate * time.as_secs_f64()));
    };
    for round in 0..2 {
        if round % 2 == 0 {
            direct_rps.push(throughput(&direct, time));
            proxied_round(&mut proxied_rps, &mut cpu_per_request);
        } else {
            proxied_round(&mut proxied_rps, &mut cpu_per_request);
            direct_rps.push(throughput(&direct, time));
        }
    }
    drop(daemon);

    println!(
        "\n### Auth proxy (`tokend-bench proxy{}`)\n",
        if quick { " --quick" } else { "" }
    );
    println!(
        "- {rounds} latency rounds of {iters} requests (client, API and tokend on CPU 0); \
         throughput {CONNECTIONS} connections × {} s, twice each, unpinned; API: hyper on \
         127.0.0.1; client: ureq keep-alive",
        time.as_secs()
    );
    println!();
    println!("| measurement | via the proxy | direct (baseline) | ratio | target |");
    println!("| --- | ---: | ---: | ---: | --- |");
    let verdict = |met: bool| if met { "met" } else { "**missed**" };
    let (m50, m99) = (median(&r50), median(&r99));
    println!(
        "| GET /ping latency, one connection — p50 | {:.1} µs | {:.1} µs | {m50:.2}× | ≤ 1.5× ({}) |",
        median(&p50),
        median(&d50),
        verdict(m50 <= 1.5)
    );
    println!(
        "| GET /ping latency, one connection — p99 | {:.1} µs | {:.1} µs | {m99:.2}× | – |",
        median(&p99),
        median(&d99),
    );
    println!(
        "| GET /ping latency, API answering after ≥ 1 ms (`?delay_ms=1`) — p50 | {:.1} µs | {:.1} µs | {:.2}× | – |",
        median(&sp50),
        median(&s50),
        median(&sr50)
    );
    let (pr, dr) = (median(&proxied_rps), median(&direct_rps));
    println!(
        "| GET /ping throughput, {CONNECTIONS} connections | {pr:.0} req/s | {dr:.0} req/s | {:.2}× | ≥ 0.8× ({}) |",
        pr / dr,
        verdict(pr / dr >= 0.8)
    );
    println!(
        "| tokend CPU per proxied request (64 connections) | {:.1} µs | – | – | – |",
        median(&cpu_per_request)
    );
    println!(
        "\nProxy bench wall time {:.1} s.",
        started.elapsed().as_secs_f64()
    );
}
