//! The soak's callers, each a thread with its own library client: hot gets (cache hits),
//! cold gets, invalidations followed by a get, reloads, and status and metrics calls. Every
//! token served is checked against the issuer's ledger, and every error sorted by kind; an
//! error that overlaps a kill -9 of the daemon (the bench's own doing) is counted apart.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokend_client::{Client, Endpoint, Error, GetOptions};

use super::issuer::{Issuer, Verdict};
use super::providers::{self, Kind, Spec};

/// Whether the daemon is up: even while it is, odd while it is being killed and restarted.
#[derive(Debug, Default)]
pub(crate) struct Life(AtomicU64);

impl Life {
    pub(crate) fn going_down(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn up_again(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// What the callers saw.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) served: AtomicU64,
    pub(crate) hits_asked: AtomicU64,
    pub(crate) cold_asked: AtomicU64,
    pub(crate) invalidations: AtomicU64,
    pub(crate) reloads: AtomicU64,
    pub(crate) status_calls: AtomicU64,
    pub(crate) metrics_calls: AtomicU64,
    /// Token verdicts other than good, by kind.
    pub(crate) verdicts: Mutex<BTreeMap<&'static str, u64>>,
    /// Errors by kind. "upstream" and "daemon restarting" are the allowed kinds.
    pub(crate) errors: Mutex<BTreeMap<String, u64>>,
    /// The providers behind the first few bad verdicts (never a token).
    pub(crate) examples: Mutex<Vec<String>>,
}

impl Tally {
    fn error(&self, kind: String) {
        *self.errors.lock().expect("errors").entry(kind).or_default() += 1;
    }

    fn verdict(&self, verdict: Verdict, what: &str) {
        let name = match verdict {
            Verdict::Good => return,
            Verdict::Foreign => "not issued for this provider",
            Verdict::Expired => "expired",
            Verdict::BelowMinimum => "below the requested minimum lifetime",
            Verdict::Overstated => "expiry reported later than the issuer's",
        };
        *self
            .verdicts
            .lock()
            .expect("verdicts")
            .entry(name)
            .or_default() += 1;
        let mut examples = self.examples.lock().expect("examples");
        if examples.len() < 10 {
            examples.push(format!("{name}: {what}"));
        }
    }
}

/// What every caller shares.
#[derive(Debug)]
pub(crate) struct Cx {
    pub(crate) specs: Vec<Spec>,
    pub(crate) issuer: Arc<Issuer>,
    pub(crate) socket: PathBuf,
    pub(crate) life: Life,
    pub(crate) tally: Tally,
    pub(crate) stop: AtomicBool,
    /// The config file, its chaos base URL and secrets directory, and which variant is in force.
    pub(crate) config: PathBuf,
    pub(crate) base: String,
    pub(crate) secrets_dir: PathBuf,
    pub(crate) variant: AtomicBool,
}

impl Cx {
    pub(crate) fn client(&self) -> Client {
        Client::builder()
            .endpoint(Endpoint::from_path(&self.socket))
            .autostart(false)
            .timeout(Duration::from_secs(40))
            .build()
    }

    fn running(&self) -> bool {
        !self.stop.load(Ordering::SeqCst)
    }

    /// Asks `spec` for a token with `min_ttl` and checks the answer.
    fn get(&self, client: &Client, spec: &Spec, min_ttl: Duration) {
        let before = self.life.now();
        let result = client.get_with(&spec.name, &GetOptions { min_ttl });
        let received = SystemTime::now();
        let restarting = before % 2 == 1 || self.life.now() != before;
        match result {
            Ok(token) => {
                self.tally.served.fetch_add(1, Ordering::Relaxed);
                if spec.kind == Kind::Anonymous {
                    if token.header.is_some() || !token.value.expose().is_empty() {
                        self.tally.verdict(Verdict::Foreign, &spec.name);
                    }
                    return;
                }
                let verdict = self.issuer.check(
                    &spec.name,
                    token.value.expose(),
                    token.expires_at,
                    min_ttl,
                    received,
                );
                self.tally.verdict(
                    verdict,
                    &format!("{} (min TTL {} s)", spec.name, min_ttl.as_secs()),
                );
            }
            Err(_) if restarting => self.tally.error("daemon restarting (kill -9)".to_owned()),
            Err(error) => self.tally.error(kind_of(&error)),
        }
    }
}

/// An error's kind: the daemon's error code, or what the client met.
fn kind_of(error: &Error) -> String {
    match error {
        Error::Daemon { code, .. } => code.as_str().to_owned(),
        Error::NotRunning { .. } => "not running".to_owned(),
        Error::Connect { .. } => "connect".to_owned(),
        Error::Timeout { .. } => "timeout".to_owned(),
        Error::Protocol { .. } => "protocol".to_owned(),
        other => format!("client: {other}"),
    }
}

/// A minimum lifetime a caller may ask of `spec`: well inside its token's lifetime.
fn min_ttl_for(spec: &Spec) -> Duration {
    let choices: &[u64] = if spec.lifetime >= 90 {
        &[5, 15, 30]
    } else if spec.lifetime >= 40 {
        &[5, 15]
    } else {
        &[5]
    };
    Duration::from_secs(choices[fastrand::usize(..choices.len())])
}

fn pause(cx: &Cx, duration: Duration) {
    let step = Duration::from_millis(100).min(duration);
    let mut left = duration;
    while cx.running() && !left.is_zero() {
        std::thread::sleep(step.min(left));
        left = left.saturating_sub(step);
    }
}

/// Hot gets: the providers in use, most answered from the cache.
pub(crate) fn hitter(cx: &Cx) {
    let client = cx.client();
    let hot: Vec<&Spec> = cx.specs.iter().filter(|spec| !spec.cold).collect();
    while cx.running() {
        let spec = hot[fastrand::usize(..hot.len())];
        cx.tally.hits_asked.fetch_add(1, Ordering::Relaxed);
        cx.get(&client, spec, min_ttl_for(spec));
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// Cold gets: a provider asked for now and then, whose token has usually expired meanwhile.
pub(crate) fn cold(cx: &Cx) {
    let client = cx.client();
    let cold: Vec<&Spec> = cx.specs.iter().filter(|spec| spec.cold).collect();
    while cx.running() {
        let spec = cold[fastrand::usize(..cold.len())];
        cx.tally.cold_asked.fetch_add(1, Ordering::Relaxed);
        cx.get(&client, spec, Duration::from_secs(5));
        pause(cx, Duration::from_secs(3));
    }
}

/// Invalidations ("the API rejected this token"), each followed by a get.
pub(crate) fn invalidator(cx: &Cx) {
    let client = cx.client();
    let fetching: Vec<&Spec> = cx.specs.iter().filter(|spec| spec.kind.fetches()).collect();
    while cx.running() {
        let spec = fetching[fastrand::usize(..fetching.len())];
        let before = cx.life.now();
        match client.invalidate(&spec.name) {
            Ok(_) => {
                cx.tally.invalidations.fetch_add(1, Ordering::Relaxed);
                cx.get(&client, spec, Duration::from_secs(5));
            }
            Err(_) if before % 2 == 1 || cx.life.now() != before => {
                cx.tally.error("daemon restarting (kill -9)".to_owned());
            }
            Err(error) => cx.tally.error(format!("invalidate: {}", kind_of(&error))),
        }
        pause(cx, Duration::from_secs(1));
    }
}

/// Status and metrics calls every second, a reload between the two config variants every 15 s.
pub(crate) fn controller(cx: &Cx) {
    let client = cx.client();
    let mut tick = 0u64;
    while cx.running() {
        tick += 1;
        let before = cx.life.now();
        let outcome = if tick.is_multiple_of(15) {
            let variant = !cx.variant.load(Ordering::SeqCst);
            let text = providers::config(&cx.specs, &cx.base, &cx.secrets_dir, variant);
            tokend_e2e::write_private(&cx.config, &text);
            cx.variant.store(variant, Ordering::SeqCst);
            client
                .reload()
                .map(|_| cx.tally.reloads.fetch_add(1, Ordering::Relaxed))
                .map_err(|error| ("reload", error))
        } else if tick.is_multiple_of(2) {
            client
                .status()
                .map_err(|error| ("status", error))
                .map(|status| {
                    if status.providers.len() != cx.specs.len() {
                        cx.tally.error(format!(
                            "status: {} providers listed",
                            status.providers.len()
                        ));
                    }
                    cx.tally.status_calls.fetch_add(1, Ordering::Relaxed)
                })
        } else {
            client
                .metrics()
                .map(|_| cx.tally.metrics_calls.fetch_add(1, Ordering::Relaxed))
                .map_err(|error| ("metrics", error))
        };
        if let Err((what, error)) = outcome {
            if before % 2 == 1 || cx.life.now() != before {
                cx.tally.error("daemon restarting (kill -9)".to_owned());
            } else {
                cx.tally.error(format!("{what}: {}", kind_of(&error)));
            }
        }
        pause(cx, Duration::from_secs(1));
    }
}
