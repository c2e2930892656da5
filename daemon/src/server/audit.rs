//! The audit trail: which program of which user got which provider's token, and how it was
//! served. On by default; `tokend --no-audit` turns it off.
//!
//! It stays off the hot path. A connection counts its own requests ([`ConnectionAudit`]: no
//! lock, no allocation once a provider has been seen) and hands them over once the answer is
//! sent. What it hands over is aggregated per (uid, executable, provider) in [`Audit`]:
//!
//! - the first time a program gets a provider's token since the daemon started, one line is
//!   written at once (`first token for this program`), so a new program reaching a token
//!   shows up without delay;
//! - then, once a minute, one line per (uid, executable, provider) that was asked meanwhile,
//!   with its counts (hits, misses, errors, unknown provider) and the pids it saw.
//!
//! The executable is read once per connection (`/proc/PID/exe` on Linux), when it is
//! accepted: a program as short-lived as `tok get` may be gone right after its answer. Lines go to the `tokend::audit`
//! target at info level and never carry a token.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::peer::Peer;

/// How often the aggregated counts are written, and how long a connection keeps its counts
/// before handing them over.
pub(crate) const REPORT_EVERY: Duration = Duration::from_secs(60);
/// Distinct pids listed per line; more are counted.
const PIDS_SHOWN: usize = 8;

/// How one request was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Hit,
    Miss,
    Error,
    UnknownProvider,
}

#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    hits: u64,
    misses: u64,
    errors: u64,
    unknown: u64,
}

impl Counts {
    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Hit => self.hits += 1,
            Outcome::Miss => self.misses += 1,
            Outcome::Error => self.errors += 1,
            Outcome::UnknownProvider => self.unknown += 1,
        }
    }

    fn merge(&mut self, other: Self) {
        self.hits += other.hits;
        self.misses += other.misses;
        self.errors += other.errors;
        self.unknown += other.unknown;
    }

    fn total(self) -> u64 {
        self.hits + self.misses + self.errors + self.unknown
    }
}

/// One connection's requests since it last handed them over.
#[derive(Debug)]
pub(crate) struct ConnectionAudit {
    enabled: bool,
    entries: Vec<(String, Counts)>,
    /// A provider asked for the first time on this connection (its first grant may be news).
    fresh: bool,
    since: Instant,
}

impl ConnectionAudit {
    pub(crate) fn new(audit: &Audit) -> Self {
        Self {
            enabled: audit.enabled,
            entries: Vec::new(),
            fresh: false,
            since: Instant::now(),
        }
    }

    /// Counts one request for `provider`.
    pub(crate) fn record(&mut self, provider: &str, outcome: Outcome) {
        if !self.enabled {
            return;
        }
        if let Some((_, counts)) = self.entries.iter_mut().find(|(name, _)| name == provider) {
            counts.add(outcome);
            return;
        }
        let mut counts = Counts::default();
        counts.add(outcome);
        self.entries.push((provider.to_owned(), counts));
        self.fresh = true;
    }

    /// Whether [`Audit::collect`] has something to do now: a provider new to this connection,
    /// or counts older than [`REPORT_EVERY`].
    pub(crate) fn due(&self, now: Instant) -> bool {
        self.fresh || now >= self.since + REPORT_EVERY
    }
}

/// Who asked, for what.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    uid: Option<u32>,
    exe: Arc<str>,
    provider: String,
}

#[derive(Debug, Default)]
struct Tally {
    counts: Counts,
    pids: BTreeSet<u32>,
    more_pids: u64,
}

#[derive(Debug, Default)]
struct Tallies {
    /// Counts since the last report.
    pending: HashMap<Key, Tally>,
    /// Every key reported since the daemon started (its first grant was written).
    seen: std::collections::HashSet<Key>,
}

/// The daemon's audit trail (see the module doc).
#[derive(Debug)]
pub(crate) struct Audit {
    enabled: bool,
    tallies: Mutex<Tallies>,
}

impl Audit {
    pub(crate) fn new(enabled: bool) -> Self {
        Self {
            enabled,
            tallies: Mutex::new(Tallies::default()),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// Takes over what `local` counted for `peer` (whose executable is then looked up, once):
    /// writes the first-grant line of every (program, provider) new since the daemon started.
    pub(crate) fn collect(&self, peer: &mut Peer, local: &mut ConnectionAudit) {
        local.fresh = false;
        local.since = Instant::now();
        if !self.enabled || local.entries.iter().all(|(_, counts)| counts.total() == 0) {
            return;
        }
        let exe: Arc<str> = Arc::clone(peer.exe());
        let mut tallies = self.tallies.lock().unwrap_or_else(PoisonError::into_inner);
        // The providers stay listed (with their counts back at zero), so that asking again is
        // not news on this connection.
        for (provider, counts) in &mut local.entries {
            let counts = std::mem::take(counts);
            if counts.total() == 0 {
                continue;
            }
            let key = Key {
                uid: peer.uid,
                exe: Arc::clone(&exe),
                provider: provider.clone(),
            };
            if !tallies.seen.contains(&key) {
                let granted = counts.hits + counts.misses > 0;
                tracing::info!(
                    target: "tokend::audit",
                    uid = peer.uid,
                    pid = peer.pid,
                    exe = %key.exe,
                    provider = %key.provider,
                    outcome = if granted { "granted" } else { "refused" },
                    "first token request of this program for this provider"
                );
                tallies.seen.insert(key.clone());
            }
            let tally = tallies.pending.entry(key).or_default();
            tally.counts.merge(counts);
            if let Some(pid) = peer.pid
                && !tally.pids.contains(&pid)
            {
                if tally.pids.len() < PIDS_SHOWN {
                    tally.pids.insert(pid);
                } else {
                    tally.more_pids += 1;
                }
            }
        }
    }

    /// Writes one line per (uid, executable, provider) asked since the last report.
    pub(crate) fn report(&self) {
        if !self.enabled {
            return;
        }
        let pending = std::mem::take(
            &mut self
                .tallies
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pending,
        );
        for (key, tally) in pending {
            let mut pids = tally
                .pids
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",");
            if tally.more_pids > 0 {
                pids.push_str(&format!(" and {} more", tally.more_pids));
            }
            tracing::info!(
                target: "tokend::audit",
                uid = key.uid,
                exe = %key.exe,
                provider = %key.provider,
                requests = tally.counts.total(),
                hits = tally.counts.hits,
                misses = tally.counts.misses,
                errors = tally.counts.errors,
                unknown_provider = tally.counts.unknown,
                pids = %pids,
                "token requests in the last interval"
            );
        }
    }
}
