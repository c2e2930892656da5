//! Per-provider counters, latency histograms ([`Histogram`], also used by the auth proxies), and
//! their Prometheus rendering.
//!
//! Everything is a relaxed atomic: counting costs a few nanoseconds on the cache-hit path and
//! never takes a lock.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokend_protocol::ProviderCounters;

/// Upper bounds (seconds) of the upstream-latency histogram buckets.
pub(crate) const LATENCY_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A latency histogram with fixed bucket bounds (seconds): cumulative counts when rendered.
#[derive(Debug)]
pub(crate) struct Histogram {
    bounds: &'static [f64],
    /// Counts per bucket, plus one for `+Inf`.
    buckets: Box<[AtomicU64]>,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub(crate) fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub(crate) fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let bucket = self
            .bounds
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(self.bounds.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// The `_bucket`, `_sum` and `_count` lines of family `name` with `labels` (already
    /// escaped, e.g. `provider="crm"`).
    pub(crate) fn render(&self, name: &str, labels: &str, out: &mut String) {
        let mut cumulative = 0;
        for (index, bound) in self.bounds.iter().enumerate() {
            cumulative += self.buckets[index].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.buckets[self.bounds.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {cumulative}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
    }
}

/// One provider's counters.
#[derive(Debug)]
pub(crate) struct Counters {
    requests: AtomicU64,
    cache_hits: AtomicU64,
    refreshes: AtomicU64,
    failures: AtomicU64,
    /// Shared providers: tokens taken from the fleet, waits for another machine's fetch, and
    /// fleet operations that failed.
    fleet_hits: AtomicU64,
    fleet_lock_waits: AtomicU64,
    fleet_errors: AtomicU64,
    latency: Histogram,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            requests: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            refreshes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            fleet_hits: AtomicU64::new(0),
            fleet_lock_waits: AtomicU64::new(0),
            fleet_errors: AtomicU64::new(0),
            latency: Histogram::new(&LATENCY_BUCKETS),
        }
    }
}

impl Counters {
    pub(crate) fn request(&self, hit: bool) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if hit {
            self.cache_hits.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A token was taken from the fleet instead of fetched.
    pub(crate) fn fleet_hit(&self) {
        self.fleet_hits.fetch_add(1, Ordering::Relaxed);
    }

    /// Another machine held the fleet lock: this one waited for its commit.
    pub(crate) fn fleet_lock_wait(&self) {
        self.fleet_lock_waits.fetch_add(1, Ordering::Relaxed);
    }

    /// A fleet operation failed (the store was down or slow).
    pub(crate) fn fleet_error(&self) {
        self.fleet_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// One upstream attempt finished after `elapsed`.
    pub(crate) fn fetched(&self, ok: bool, elapsed: Duration) {
        if ok {
            self.refreshes.fetch_add(1, Ordering::Relaxed);
        } else {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        self.latency.observe(elapsed);
    }

    pub(crate) fn snapshot(&self) -> ProviderCounters {
        ProviderCounters {
            requests: self.requests.load(Ordering::Relaxed),
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
            refreshes: self.refreshes.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
        }
    }

    /// Appends this provider's samples in the Prometheus text format.
    fn render(&self, provider: &str, families: &mut [String; 5]) {
        let counters = self.snapshot();
        let label = escape(provider);
        let [requests, hits, refreshes, failures, latency] = families;
        let _ = writeln!(
            requests,
            "tokend_requests_total{{provider=\"{label}\"}} {}",
            counters.requests
        );
        let _ = writeln!(
            hits,
            "tokend_cache_hits_total{{provider=\"{label}\"}} {}",
            counters.cache_hits
        );
        let _ = writeln!(
            refreshes,
            "tokend_refreshes_total{{provider=\"{label}\"}} {}",
            counters.refreshes
        );
        let _ = writeln!(
            failures,
            "tokend_failures_total{{provider=\"{label}\"}} {}",
            counters.failures
        );
        self.latency.render(
            "tokend_upstream_latency_seconds",
            &format!("provider=\"{label}\""),
            latency,
        );
    }
}

impl Counters {
    /// Appends this provider's fleet samples.
    fn render_fleet(&self, provider: &str, families: &mut [String; 3]) {
        let label = escape(provider);
        let [hits, waits, errors] = families;
        for (family, name, value) in [
            (hits, "tokend_fleet_hits_total", &self.fleet_hits),
            (
                waits,
                "tokend_fleet_lock_waits_total",
                &self.fleet_lock_waits,
            ),
            (errors, "tokend_fleet_errors_total", &self.fleet_errors),
        ] {
            let _ = writeln!(
                family,
                "{name}{{provider=\"{label}\"}} {}",
                value.load(Ordering::Relaxed)
            );
        }
    }
}

/// Label values escape `\`, `"` and line feeds.
pub(crate) fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The Prometheus text exposition of every provider's counters.
/// Every provider's counters, and the fleet's when there is one (`tokend_fleet_*`).
pub(crate) fn render<'a>(
    providers: impl Iterator<Item = (&'a str, &'a Counters)>,
    fleet: Option<&crate::fleet::Fleet>,
) -> String {
    let mut fleet_families = [
        "# HELP tokend_fleet_hits_total Tokens taken from the fleet instead of fetched.\n# TYPE tokend_fleet_hits_total counter\n".to_owned(),
        "# HELP tokend_fleet_lock_waits_total Waits for another machine's fetch under the fleet lock.\n# TYPE tokend_fleet_lock_waits_total counter\n".to_owned(),
        "# HELP tokend_fleet_errors_total Fleet operations of a provider that failed.\n# TYPE tokend_fleet_errors_total counter\n".to_owned(),
    ];
    let mut families = [
        "# HELP tokend_requests_total Token requests.\n# TYPE tokend_requests_total counter\n".to_owned(),
        "# HELP tokend_cache_hits_total Token requests answered from the cache without waiting.\n# TYPE tokend_cache_hits_total counter\n".to_owned(),
        "# HELP tokend_refreshes_total Tokens obtained from the source.\n# TYPE tokend_refreshes_total counter\n".to_owned(),
        "# HELP tokend_failures_total Failed attempts to obtain a token.\n# TYPE tokend_failures_total counter\n".to_owned(),
        "# HELP tokend_upstream_latency_seconds Duration of requests to token endpoints.\n# TYPE tokend_upstream_latency_seconds histogram\n".to_owned(),
    ];
    for (name, counters) in providers {
        counters.render(name, &mut families);
        if fleet.is_some() {
            counters.render_fleet(name, &mut fleet_families);
        }
    }
    let mut text = families.concat();
    if let Some(fleet) = fleet {
        let _ = write!(
            text,
            "# HELP tokend_fleet_up Whether the last fleet operation reached the store.\n\
             # TYPE tokend_fleet_up gauge\ntokend_fleet_up {}\n\
             # HELP tokend_fleet_store_errors_total Fleet store operations that failed.\n\
             # TYPE tokend_fleet_store_errors_total counter\ntokend_fleet_store_errors_total {}\n",
            u8::from(fleet.is_up()),
            fleet.counters.errors.load(Ordering::Relaxed)
        );
        text.push_str(&fleet_families.concat());
    }
    text
}

/// The daemon's own gauges: tasks alive on its runtime (one per connection, scheduled refresh,
/// proxy connection…), so that a leak shows in `tok metrics`.
pub(crate) fn render_runtime(text: &mut String) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        let _ = write!(
            text,
            "# HELP tokend_runtime_tasks Tasks alive on the daemon's runtime.\n\
             # TYPE tokend_runtime_tasks gauge\ntokend_runtime_tasks {}\n",
            runtime.metrics().num_alive_tasks()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_renders_a_cumulative_histogram() {
        let counters = Counters::default();
        counters.request(true);
        counters.request(false);
        counters.fetched(true, Duration::from_millis(30));
        counters.fetched(false, Duration::from_secs(20));
        let snapshot = counters.snapshot();
        assert_eq!(
            (
                snapshot.requests,
                snapshot.cache_hits,
                snapshot.refreshes,
                snapshot.failures
            ),
            (2, 1, 1, 1)
        );
        let text = render([("crm", &counters)].into_iter(), None);
        assert!(
            text.contains("tokend_requests_total{provider=\"crm\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("le=\"0.025\"} 0\n") && text.contains("le=\"0.05\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("le=\"10\"} 1\n") && text.contains("le=\"+Inf\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("tokend_upstream_latency_seconds_count{provider=\"crm\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE tokend_upstream_latency_seconds histogram"));
        assert_eq!(escape("a\"b\\c"), "a\\\"b\\\\c");
    }
}
