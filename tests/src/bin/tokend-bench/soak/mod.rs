//! `tokend-bench soak [--minutes N] [--kill-every SECONDS] [--faults RATE]`: one daemon with
//! about 50 providers of every kind against a chaos upstream, under a mix of load and faults,
//! killed with SIGKILL and restarted every minute (a benchmark mode, not a CI test).
//!
//! - [`chaos`]: the upstream's faults (latency spikes, 500, 503 / 429 with `Retry-After`,
//!   resets, truncated bodies, slow drips, drips past the timeout, HTML pages).
//! - [`issuer`]: its token endpoints and the ledger every served token is checked against.
//! - [`providers`]: the providers, their credentials and the config.
//! - [`workload`]: the callers (hot and cold gets, invalidations, reloads, status, metrics).
//!
//! At the end faults stop, every fetching provider must give a token again, and every
//! refresh-token chain must still work (a provider left needing a login lost its chain). The
//! report: requests served, errors by kind (only `upstream` ones, and those of the bench's own
//! kills, are allowed), tokens served expired, below the minimum lifetime asked, with an
//! overstated expiry or not issued for the provider (all must be 0), refresh tokens spent
//! twice (0) or lost (0), secrets in the daemon's log (0), and RSS, open descriptors, threads
//! and tokio tasks of each daemon run after warm-up and before its kill.

mod chaos;
mod issuer;
mod providers;
mod workload;

use std::fs::OpenOptions;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokend_client::{GetOptions, Secret};

use super::{ChildGuard, cpus_of, rss, spawn_ready, tasks};
use chaos::Chaos;
use issuer::Issuer;
use providers::{Kind, Source};
use workload::{Cx, Life, Tally};

/// How long after a start the daemon's figures count as warmed up.
const WARM_UP: Duration = Duration::from_secs(30);

/// The soak's knobs.
#[derive(Debug, Clone, Copy)]
struct Knobs {
    run: Duration,
    kill_every: Duration,
    faults: f64,
}

impl Knobs {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut knobs = Self {
            run: Duration::from_secs(600),
            kill_every: Duration::from_secs(60),
            faults: 0.3,
        };
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let number = value
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite() && *n > 0.0)
                .ok_or_else(|| format!("{flag}: {value:?} is not a positive number"))?;
            match flag.as_str() {
                "--minutes" => knobs.run = Duration::from_secs_f64(number * 60.0),
                "--kill-every" => knobs.kill_every = Duration::from_secs_f64(number),
                "--faults" if number <= 1.0 => knobs.faults = number,
                "--faults" => return Err("--faults is a share of requests, at most 1".into()),
                other => return Err(format!("unknown option {other}")),
            }
        }
        Ok(knobs)
    }
}

/// Figures of one daemon process.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    rss_kib: u64,
    fds: usize,
    threads: usize,
    tokio_tasks: Option<u64>,
    store_bytes: u64,
}

fn sample(pid: u32, client: &tokend_client::Client, store: &Path) -> Sample {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count);
    let tokio_tasks = client.metrics().ok().and_then(|text| {
        text.lines()
            .find_map(|line| line.strip_prefix("tokend_runtime_tasks "))
            .and_then(|n| n.trim().parse().ok())
    });
    Sample {
        rss_kib: rss(pid).rss_kib,
        fds,
        threads: tasks(pid).len(),
        tokio_tasks,
        store_bytes: std::fs::metadata(store).map_or(0, |m| m.len()),
    }
}

/// One daemon run: started, warmed up, killed.
#[derive(Debug, Clone, Copy, Default)]
struct Run {
    warm: Option<Sample>,
    end: Option<Sample>,
}

pub(super) fn run(args: &[String]) -> std::process::ExitCode {
    let knobs = match Knobs::parse(args) {
        Ok(knobs) => knobs,
        Err(problem) => {
            eprintln!(
                "{problem}\nusage: tokend-bench soak [--minutes N] [--kill-every SECONDS] [--faults RATE]"
            );
            return std::process::ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let specs = providers::all();
    let issuer = Arc::new(Issuer::new(&specs));
    let chaos = Chaos::start(Arc::clone(&issuer), knobs.faults);
    let dir = tokend_e2e::private_dir();
    let secrets_dir = dir.path().join("secrets");
    std::fs::create_dir(&secrets_dir).expect("secrets directory");
    set_private_dir(&secrets_dir);
    providers::write_secret_files(&specs, &secrets_dir);
    let config = dir.path().join("config.toml");
    tokend_e2e::write_private(
        &config,
        &providers::config(&specs, &chaos.base, &secrets_dir, false),
    );
    let socket = dir.path().join("tokend.sock");
    let log = dir.path().join("tokend.log");
    let env = providers::environment(&specs);
    let store = dir.path().join("data").join("store.tokend");
    let cx = Arc::new(Cx {
        specs,
        issuer: Arc::clone(&issuer),
        socket: socket.clone(),
        life: Life::default(),
        tally: Tally::default(),
        stop: AtomicBool::new(false),
        config: config.clone(),
        base: chaos.base.clone(),
        secrets_dir,
        variant: AtomicBool::new(false),
    });

    eprintln!(
        "soak: {} providers, faults on {:.0} % of upstream requests, kill -9 every {:?}, for {:?}",
        cx.specs.len(),
        knobs.faults * 100.0,
        knobs.kill_every,
        knobs.run
    );
    let mut daemon = spawn(&config, &socket, &log, &env);
    let control = cx.client();
    for spec in cx
        .specs
        .iter()
        .filter(|s| s.kind == Kind::Static(Source::Secret))
    {
        control
            .secret_set(&spec.name, Secret::new(spec.secret.clone()))
            .expect("set the ${secret:…} of a static provider");
    }

    let mut workers = Vec::new();
    let roles: [fn(&Cx); 7] = [
        workload::hitter,
        workload::hitter,
        workload::hitter,
        workload::hitter,
        workload::cold,
        workload::invalidator,
        workload::controller,
    ];
    for role in roles {
        let cx = Arc::clone(&cx);
        workers.push(std::thread::spawn(move || role(&cx)));
    }

    let deadline = started + knobs.run;
    let mut runs = Vec::new();
    let mut kills = Vec::new();
    let mut current = Run::default();
    let mut run_started = Instant::now();
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        if current.warm.is_none() && now >= run_started + WARM_UP {
            current.warm = Some(sample(daemon.pid(), &control, &store));
        }
        if now >= run_started + knobs.kill_every && now + WARM_UP < deadline {
            current.end = Some(sample(daemon.pid(), &control, &store));
            runs.push(current);
            current = Run::default();
            cx.life.going_down();
            kills.push(Instant::now());
            let _ = daemon.child.kill();
            let _ = daemon.child.wait();
            daemon = spawn(&config, &socket, &log, &env);
            cx.life.up_again();
            run_started = Instant::now();
            eprintln!(
                "soak: {:>4.0} s: kill -9 and restart #{}",
                started.elapsed().as_secs_f64(),
                kills.len()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    current.end = Some(sample(daemon.pid(), &control, &store));
    runs.push(current);
    cx.stop.store(true, Ordering::SeqCst);
    for worker in workers {
        worker.join().expect("a soak worker panicked");
    }

    // Faults off: every fetching provider must give a token again, and every refresh-token
    // chain must still be spendable (invalidate, then a get has to refresh). A provider may
    // still be backing off after the last faults (callers get its last error at once until
    // then): each gets up to a minute, all together.
    chaos.set_faults(false);
    // Invalidations closer than 5 s to the previous one of a provider are ignored.
    std::thread::sleep(Duration::from_secs(5));
    let mut unhealthy = Vec::new();
    let mut chains_lost = Vec::new();
    let settle = Instant::now() + Duration::from_secs(60);
    for spec in cx.specs.iter().filter(|spec| spec.kind.fetches()) {
        let rotations = issuer.rotations_of(&spec.name);
        if spec.kind == Kind::RefreshToken {
            let _ = control.invalidate(&spec.name);
        }
        let got = loop {
            let got = control.get_with(
                &spec.name,
                &GetOptions {
                    min_ttl: Duration::from_secs(5),
                },
            );
            if got.is_ok() || Instant::now() >= settle {
                break got;
            }
            std::thread::sleep(Duration::from_millis(500));
        };
        let got = got.map_err(|error| error.to_string()).and_then(|_| {
            if spec.kind == Kind::RefreshToken && issuer.rotations_of(&spec.name) == rotations {
                Err("the get after the invalidation did not spend the refresh token".to_owned())
            } else {
                Ok(())
            }
        });
        if let Err(error) = got {
            if spec.kind == Kind::RefreshToken {
                chains_lost.push(format!("{}: {error}", spec.name));
            } else {
                unhealthy.push(format!("{}: {error}", spec.name));
            }
        }
    }
    let final_sample = sample(daemon.pid(), &control, &store);
    let stopped = daemon.stop();
    chaos_report(&chaos, &issuer);
    let secrets_logged = {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        cx.specs
            .iter()
            .filter(|spec| text.contains(&spec.secret) || text.contains(&spec.refresh_token))
            .count()
    };
    let counts = &chaos.counts;
    let upstream_requests = counts.requests.load(Ordering::Relaxed);
    chaos.stop();

    let reuses = issuer.reuses();
    let mid_rotation = reuses
        .iter()
        .filter(|reuse| {
            kills.iter().any(|kill| {
                *kill >= reuse.successor_asked
                    && *kill <= reuse.successor_issued + Duration::from_secs(1)
            })
        })
        .count();
    let outside = reuses.len() - mid_rotation;
    for reuse in &reuses {
        eprintln!(
            "soak: a refresh token was given again after its successor was issued at {:.1} s{}",
            reuse.successor_issued.duration_since(started).as_secs_f64(),
            if kills.iter().any(|kill| *kill >= reuse.successor_asked
                && *kill <= reuse.successor_issued + Duration::from_secs(1))
            {
                " (a kill -9 landed between that answer and the store's fsync)"
            } else {
                ", with no kill near it"
            }
        );
    }

    report(&Report {
        knobs,
        elapsed: started.elapsed(),
        tally: &cx.tally,
        issuer: &issuer,
        upstream_requests,
        kills: kills.len(),
        runs: &runs,
        final_sample,
        unhealthy: &unhealthy,
        chains_lost: &chains_lost,
        spent_twice: issuer.spent_twice.load(Ordering::Relaxed) + outside as u64,
        mid_rotation,
        secrets_logged,
        stopped: stopped.map(|status| status.to_string()),
        cpus: cpus_of(&rustix::thread::sched_getaffinity(None).unwrap_or_default()).len(),
    });
    std::process::ExitCode::SUCCESS
}

fn set_private_dir(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
        .expect("chmod 0700 the secrets directory");
}

/// Starts tokend (info log, appended across restarts) on `socket` and waits for READY.
fn spawn(config: &Path, socket: &Path, log: &Path, env: &[(String, String)]) -> ChildGuard {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(log).expect("tokend log");
    let mut command = Command::new(super::sibling("tokend"));
    command
        .arg("--config")
        .arg(config)
        .arg("--socket")
        .arg(socket)
        .arg("--notify-ready")
        .env("TOKEND_DATA", config.with_file_name("data"))
        .env("RUST_LOG", "info")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stderr(file);
    let all = rustix::thread::sched_getaffinity(None).unwrap_or_default();
    spawn_ready("tokend", &mut command, &all, Some(log))
}

fn chaos_report(chaos: &Chaos, issuer: &Issuer) {
    let c = &chaos.counts;
    eprintln!(
        "soak: upstream: {} requests, {} tokens issued, {} refresh-token rotations; faults: {} \
         spikes, {} 500s, {} 503/429 with Retry-After, {} HTML pages, {} resets, {} truncated, \
         {} drips, {} stalls past the timeout",
        c.requests.load(Ordering::Relaxed),
        issuer.issued.load(Ordering::Relaxed),
        issuer.rotations.load(Ordering::Relaxed),
        c.spikes.load(Ordering::Relaxed),
        c.errors_5xx.load(Ordering::Relaxed),
        c.retry_after.load(Ordering::Relaxed),
        c.html.load(Ordering::Relaxed),
        c.resets.load(Ordering::Relaxed),
        c.truncated.load(Ordering::Relaxed),
        c.drips.load(Ordering::Relaxed),
        c.stalls.load(Ordering::Relaxed),
    );
}

struct Report<'a> {
    knobs: Knobs,
    elapsed: Duration,
    tally: &'a Tally,
    issuer: &'a Issuer,
    upstream_requests: u64,
    kills: usize,
    runs: &'a [Run],
    final_sample: Sample,
    unhealthy: &'a [String],
    chains_lost: &'a [String],
    spent_twice: u64,
    mid_rotation: usize,
    secrets_logged: usize,
    stopped: Option<String>,
    cpus: usize,
}

fn report(r: &Report<'_>) {
    let t = r.tally;
    let load = |n: &std::sync::atomic::AtomicU64| n.load(Ordering::Relaxed);
    let errors = t.errors.lock().expect("errors").clone();
    let verdicts = t.verdicts.lock().expect("verdicts").clone();
    let verdict = |name: &str| verdicts.get(name).copied().unwrap_or(0);
    let allowed = |kind: &str| kind == "upstream" || kind == "daemon restarting (kill -9)";
    let unexpected: u64 = errors
        .iter()
        .filter(|(kind, _)| !allowed(kind))
        .map(|(_, n)| n)
        .sum();
    let mark = |n: u64| if n == 0 { "0 (met)" } else { "**not 0**" };

    println!(
        "\nSoak: {:.1} min, {} CPUs, faults on {:.0} % of upstream requests, kill -9 every {} s \
         ({} kills)\n",
        r.elapsed.as_secs_f64() / 60.0,
        r.cpus,
        r.knobs.faults * 100.0,
        r.knobs.kill_every.as_secs(),
        r.kills
    );
    println!("| measure | value | required |\n| --- | ---: | --- |");
    println!(
        "| tokens served (hot gets asked / cold gets asked / invalidate + get) | {} ({} / {} / {}) | – |",
        load(&t.served),
        load(&t.hits_asked),
        load(&t.cold_asked),
        load(&t.invalidations)
    );
    println!(
        "| reloads / status calls / metrics calls | {} / {} / {} | – |",
        load(&t.reloads),
        load(&t.status_calls),
        load(&t.metrics_calls)
    );
    println!("| upstream requests | {} | – |", r.upstream_requests);
    for (kind, n) in &errors {
        let required = if allowed(kind) { "allowed" } else { "0" };
        println!("| errors: {kind} | {n} | {required} |");
    }
    println!("| errors of any other kind | {} | 0 |", mark(unexpected));
    for name in [
        "expired",
        "below the requested minimum lifetime",
        "expiry reported later than the issuer's",
        "not issued for this provider",
    ] {
        println!("| tokens served {name} | {} | 0 |", mark(verdict(name)));
    }
    println!(
        "| requests with wrong credentials at the upstream | {} | 0 |",
        mark(r.issuer.bad_credentials.load(Ordering::Relaxed))
    );
    println!(
        "| refresh tokens spent twice | {} | 0 |",
        mark(r.spent_twice)
    );
    println!(
        "| refresh tokens given again after a kill -9 landed between the server's answer and the store's fsync | {} | – (the server's reuse grace) |",
        r.mid_rotation
    );
    println!(
        "| refresh-token chains lost (final get fails) | {} | 0 |",
        mark(r.chains_lost.len() as u64)
    );
    println!(
        "| other providers failing once faults stop | {} | 0 |",
        mark(r.unhealthy.len() as u64)
    );
    println!(
        "| secrets in the daemon's log | {} | 0 |",
        mark(r.secrets_logged as u64)
    );
    println!(
        "| daemon exit on SIGTERM at the end | {} | 0 |",
        r.stopped.as_deref().unwrap_or("?")
    );

    println!(
        "\n| daemon run | RSS warm → end (KiB) | open fds | threads | tokio tasks | store (bytes) |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    let tasks = |s: &Sample| {
        s.tokio_tasks
            .map_or_else(|| "?".to_owned(), |n| n.to_string())
    };
    for (index, run) in r.runs.iter().enumerate() {
        let (Some(warm), Some(end)) = (run.warm, run.end) else {
            continue;
        };
        println!(
            "| {} | {} → {} | {} → {} | {} → {} | {} → {} | {} → {} |",
            index + 1,
            warm.rss_kib,
            end.rss_kib,
            warm.fds,
            end.fds,
            warm.threads,
            end.threads,
            tasks(&warm),
            tasks(&end),
            warm.store_bytes,
            end.store_bytes
        );
    }
    // The same moment of the cycle (just before a kill) of the first and the last run: what
    // grows there grew across restarts (the store, say), not with a run's warm-up.
    let ends: Vec<Sample> = r.runs.iter().filter_map(|run| run.end).collect();
    if let (Some(first), Some(last)) = (ends.first(), ends.last()) {
        println!(
            "| first run's end → last run's end | {} → {} ({:+.1} %) | {} → {} | {} → {} | {} → {} | {} → {} |",
            first.rss_kib,
            last.rss_kib,
            (last.rss_kib as f64 / first.rss_kib.max(1) as f64 - 1.0) * 100.0,
            first.fds,
            last.fds,
            first.threads,
            last.threads,
            tasks(first),
            tasks(last),
            first.store_bytes,
            last.store_bytes
        );
    }
    let last = r.final_sample;
    println!(
        "| after the final checks | {} | {} | {} | {} | {} |",
        last.rss_kib,
        last.fds,
        last.threads,
        tasks(&last),
        last.store_bytes
    );
    for line in t.examples.lock().expect("examples").iter() {
        println!("- bad token: {line}");
    }
    for line in r.chains_lost.iter().chain(r.unhealthy) {
        println!("- failing at the end: {line}");
    }
}
