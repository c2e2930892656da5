//! The report: one markdown table of every measurement, then the per-round ratios.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitStatus;
use std::time::Duration;

use crate::ordering::{Coverage, FRESH_SHARE};
use crate::refresh::Phases;
use crate::stampede::Stampede;
use crate::upstream::{REFRESHING, STAMPEDE, UPSTREAM_DELAY};
use crate::{Knobs, Paired, ProcTimes, Rss, Sample};

/// Everything the run measured, ready to render.
#[derive(Debug)]
pub(crate) struct Report<'a> {
    pub(crate) knobs: &'a Knobs,
    pub(crate) pin_cpu: usize,
    pub(crate) allowed_cpus: &'a [usize],
    pub(crate) request_len: usize,
    pub(crate) response_len: usize,
    pub(crate) single: &'a Paired,
    pub(crate) multi: &'a Paired,
    /// a and b against Redis `GET` (ours: tokend, base: Redis), in the same rounds; empty
    /// without redis-server.
    pub(crate) single_redis: &'a Paired,
    pub(crate) multi_redis: &'a Paired,
    /// b': one client shared by every thread (ours) vs one client per thread (base).
    pub(crate) shared: &'a Paired,
    /// `tok get` of the static build (x86_64-unknown-linux-musl), as the Debian package ships it.
    pub(crate) tok: &'a ProcTimes,
    /// `tok get` of the default build (dynamically linked against glibc), as `cargo install`
    /// builds it.
    pub(crate) tok_dynamic: &'a ProcTimes,
    /// The floor: a Rust hello world built the default way.
    pub(crate) hello: &'a ProcTimes,
    /// The same hello world built statically like the packaged `tok`.
    pub(crate) hello_static: &'a ProcTimes,
    pub(crate) true_: &'a ProcTimes,
    /// `git credential-cache get`, the whole-process peer (`None` without git).
    pub(crate) git: Option<&'a ProcTimes>,
    pub(crate) tokend_idle: Rss,
    /// tokend right after its first HTTP token fetch (e's preparation, before the rounds).
    pub(crate) tokend_fetched: Rss,
    pub(crate) tokend_after: Rss,
    pub(crate) raw_idle: Rss,
    pub(crate) raw_after: Rss,
    pub(crate) stampede: &'a Stampede,
    /// The bench's open-file soft limit after raising it (`None`: unlimited).
    pub(crate) nofile: Option<u64>,
    pub(crate) phases: &'a Phases,
    pub(crate) tokend_exit: Option<ExitStatus>,
    pub(crate) tokend_warnings: usize,
    pub(crate) elapsed: Duration,
    /// tokend, tok (static), tok (dynamic), hello, hello (static).
    pub(crate) binaries: [&'a Path; 5],
    /// How much of the code-ordering list the measured tokend has (or why it was not counted).
    pub(crate) ordering: &'a Result<Coverage, String>,
}

/// A target on a ratio or a value; [`Target::cell`] shows it and whether it is met.
enum Target {
    AtMost(f64, &'static str),
    AtLeast(f64, &'static str),
    Exactly(f64, &'static str),
}

impl Target {
    fn cell(&self, value: f64) -> String {
        let (met, text) = match self {
            Self::AtMost(limit, text) => (value <= *limit, text),
            Self::AtLeast(limit, text) => (value >= *limit, text),
            Self::Exactly(expected, text) => (value == *expected, text),
        };
        if value.is_nan() {
            format!("{text} (n/a)")
        } else if met {
            format!("{text} (met)")
        } else {
            format!("{text} (**missed**)")
        }
    }
}

fn us(ns: f64) -> String {
    format!("{:.1} µs", ns / 1e3)
}

fn ms(ns: f64) -> String {
    format!("{:.2} ms", ns / 1e6)
}

fn per_sec(rate: f64) -> String {
    if !rate.is_finite() {
        return "–".to_owned();
    }
    let rounded = ((rate / 100.0).round() * 100.0) as u64;
    let digits = rounded.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out + " req/s"
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn ratio(r: f64) -> String {
    format!("{r:.2}×")
}

fn ratios(list: &[f64]) -> String {
    list.iter()
        .map(|r| format!("{r:.2}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn file_kib(path: &Path) -> String {
    std::fs::metadata(path).map_or_else(|_| "?".to_owned(), |m| format!("{} KiB", m.len() / 1024))
}

fn machine() -> String {
    let uname = rustix::system::uname();
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("model name")?.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let nproc = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    format!(
        "{nproc} CPUs ({model}), Linux {} {}",
        uname.release().to_string_lossy(),
        uname.machine().to_string_lossy()
    )
}

fn counts(list: impl IntoIterator<Item = usize>) -> String {
    list.into_iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

impl Report<'_> {
    pub(crate) fn render(&self) -> String {
        let k = self.knobs;
        let (s, m, sh) = (self.single, self.multi, self.shared);
        let p50 = |x: &Sample| x.p50_ns;
        let p99 = |x: &Sample| x.p99_ns;
        let rate = |x: &Sample| x.rate;
        let cpu = |x: &Sample| x.srv_cpu_ns;
        let client_cpu = |x: &Sample| x.cli_cpu_ns;
        let (tok_ratio, tok_ratios) = self.tok.ratio_to(self.hello);
        let (true_ratio, _) = self.true_.ratio_to(self.hello);
        let tok_p99_ratio = self.tok.p99() / self.hello.p99();
        let clients = k.clients;
        let pin = self.pin_cpu;

        let mut out = String::new();
        let w = &mut out;
        let _ = writeln!(w, "# tokend benchmark\n");
        let _ = writeln!(
            w,
            "- machine: {}; usable CPUs {:?}; same-CPU rows pinned to CPU {pin}",
            machine(),
            self.allowed_cpus
        );
        if cfg!(debug_assertions) {
            let _ = writeln!(
                w,
                "- build: **debug** (CI's smoke run): the figures and targets say nothing about \
                 the release build"
            );
        }
        let _ = writeln!(
            w,
            "- knobs: {}rounds {}, iters {} (+{} warm-up), clients {}, total {} (b {}× a round), \
             process rounds {} × runs {}, token {} B, stampede {} clients (open-file limit {}), \
             f phases ≥ {} ms",
            if k.quick { "**quick**, " } else { "" },
            k.rounds,
            k.iters,
            k.warmup,
            k.clients,
            k.total,
            k.multi_repeats,
            k.proc_rounds,
            k.proc_runs,
            k.token_len,
            k.stampede,
            self.nofile
                .map_or_else(|| "unlimited".to_owned(), |n| n.to_string()),
            k.phase_ms
        );
        let _ = writeln!(
            w,
            "- wire: GetToken request {} B + 4 B header, token response {} B + 4 B header \
             (raw baseline uses the same sizes)",
            self.request_len, self.response_len
        );
        let _ = writeln!(
            w,
            "- binaries: tokend {}, tok {} (static, as packaged; {} dynamic), hello {} ({} static)",
            file_kib(self.binaries[0]),
            file_kib(self.binaries[1]),
            file_kib(self.binaries[2]),
            file_kib(self.binaries[3]),
            file_kib(self.binaries[4])
        );
        let _ = writeln!(
            w,
            "- figures: median over rounds of per-round p50 / p99 / throughput; ratio = median \
             of per-round ratios tokend ÷ baseline (c: p99 pooled over all runs, its ratio is \
             pooled ÷ pooled)\n"
        );

        let _ = writeln!(w, "| measurement | tokend | baseline | ratio | target |");
        let _ = writeln!(w, "| --- | ---: | ---: | ---: | --- |");
        let mut row = |what: String, ours: String, base: String, r: String, target: String| {
            let _ = writeln!(w, "| {what} | {ours} | {base} | {r} | {target} |");
        };
        row(
            "a. cache hit, 1 client, same CPU — p50 (baseline: raw ping-pong)".to_owned(),
            us(s.ours(p50)),
            us(s.base(p50)),
            ratio(s.ratio(p50)),
            Target::AtMost(1.1, "≤ 1.10×").cell(s.ratio(p50)),
        );
        row(
            "a. cache hit, 1 client, same CPU — p99".to_owned(),
            us(s.ours(p99)),
            us(s.base(p99)),
            ratio(s.ratio(p99)),
            Target::AtMost(1.5, "≤ 1.5×").cell(s.ratio(p99)),
        );
        let (sr, mr) = (self.single_redis, self.multi_redis);
        if !sr.base.is_empty() {
            row(
                "a. cache hit vs Redis `GET` of as many bytes, 1 client, same CPU — p50 / p99 \
                 (baseline: Redis)"
                    .to_owned(),
                format!("{} / {}", us(sr.ours(p50)), us(sr.ours(p99))),
                format!("{} / {}", us(sr.base(p50)), us(sr.base(p99))),
                format!("{} / {}", ratio(sr.ratio(p50)), ratio(sr.ratio(p99))),
                format!(
                    "p50 {}, p99 {}",
                    Target::AtMost(1.0, "< 1×").cell(sr.ratio(p50)),
                    Target::AtMost(1.0, "< 1×").cell(sr.ratio(p99))
                ),
            );
        }
        row(
            "a. cache hit, 1 client, same CPU — throughput".to_owned(),
            per_sec(s.ours(rate)),
            per_sec(s.base(rate)),
            ratio(s.ratio(rate)),
            "–".to_owned(),
        );
        row(
            "a. server CPU per request (same CPU)".to_owned(),
            us(s.ours(cpu)),
            us(s.base(cpu)),
            ratio(s.ratio(cpu)),
            "–".to_owned(),
        );
        row(
            "a. client CPU per request, the library's side (baseline: the raw client)".to_owned(),
            us(s.ours(client_cpu)),
            us(s.base(client_cpu)),
            ratio(s.ratio(client_cpu)),
            "–".to_owned(),
        );
        row(
            format!("b. {clients} clients (threads), unpinned — throughput"),
            per_sec(m.ours(rate)),
            per_sec(m.base(rate)),
            ratio(m.ratio(rate)),
            Target::AtLeast(0.95, "≥ 0.95×").cell(m.ratio(rate)),
        );
        if !mr.base.is_empty() {
            row(
                format!(
                    "b. {clients} clients vs Redis `GET` — throughput, p50 / p99 (baseline: Redis)"
                ),
                format!(
                    "{}, {} / {}",
                    per_sec(mr.ours(rate)),
                    us(mr.ours(p50)),
                    us(mr.ours(p99))
                ),
                format!(
                    "{}, {} / {}",
                    per_sec(mr.base(rate)),
                    us(mr.base(p50)),
                    us(mr.base(p99))
                ),
                format!(
                    "{}, {} / {}",
                    ratio(mr.ratio(rate)),
                    ratio(mr.ratio(p50)),
                    ratio(mr.ratio(p99))
                ),
                Target::AtLeast(1.0, "throughput ≥ 1×").cell(mr.ratio(rate)),
            );
        }
        row(
            format!("b. {clients} clients — p50 / p99 latency"),
            format!("{} / {}", us(m.ours(p50)), us(m.ours(p99))),
            format!("{} / {}", us(m.base(p50)), us(m.base(p99))),
            format!("{} / {}", ratio(m.ratio(p50)), ratio(m.ratio(p99))),
            "–".to_owned(),
        );
        row(
            format!("b. {clients} clients — server CPU per request"),
            us(m.ours(cpu)),
            us(m.base(cpu)),
            ratio(m.ratio(cpu)),
            "–".to_owned(),
        );
        row(
            format!("b. {clients} clients — client CPU per request (baseline: the raw client)"),
            us(m.ours(client_cpu)),
            us(m.base(client_cpu)),
            ratio(m.ratio(client_cpu)),
            "–".to_owned(),
        );
        row(
            format!(
                "b'. {clients} threads sharing one `Client` — throughput (baseline: a client \
                 per thread, as b)"
            ),
            per_sec(sh.ours(rate)),
            per_sec(sh.base(rate)),
            ratio(sh.ratio(rate)),
            Target::AtLeast(0.95, "≥ 0.95×").cell(sh.ratio(rate)),
        );
        row(
            format!("b'. {clients} threads sharing one `Client` — p50 / p99 latency"),
            format!("{} / {}", us(sh.ours(p50)), us(sh.ours(p99))),
            format!("{} / {}", us(sh.base(p50)), us(sh.base(p99))),
            format!("{} / {}", ratio(sh.ratio(p50)), ratio(sh.ratio(p99))),
            "–".to_owned(),
        );
        row(
            "c. `tok get NAME` whole process, static build as packaged — p50 (baseline: `hello`)"
                .to_owned(),
            ms(self.tok.p50()),
            ms(self.hello.p50()),
            ratio(tok_ratio),
            Target::AtMost(1.1, "≤ 1.10×").cell(tok_ratio),
        );
        row(
            "c. `tok get NAME` whole process — p99".to_owned(),
            ms(self.tok.p99()),
            ms(self.hello.p99()),
            ratio(tok_p99_ratio),
            "–".to_owned(),
        );
        let (dynamic_ratio, _) = self.tok_dynamic.ratio_to(self.hello);
        row(
            "c. `tok get NAME`, dynamic build as `cargo install` makes it — p50 (baseline: `hello`)"
                .to_owned(),
            ms(self.tok_dynamic.p50()),
            ms(self.hello.p50()),
            ratio(dynamic_ratio),
            "–".to_owned(),
        );
        let (same_build_ratio, _) = self.tok.ratio_to(self.hello_static);
        row(
            "c. `tok get NAME`, static build — p50 (baseline: `hello` built statically too)"
                .to_owned(),
            ms(self.tok.p50()),
            ms(self.hello_static.p50()),
            ratio(same_build_ratio),
            "–".to_owned(),
        );
        if let Some(git) = self.git {
            let (git_ratio, _) = self.tok.ratio_to(git);
            row(
                "c. `tok get NAME` vs `git credential-cache get` — p50 (baseline: git's cache)"
                    .to_owned(),
                ms(self.tok.p50()),
                ms(git.p50()),
                ratio(git_ratio),
                Target::AtMost(1.0, "< 1×").cell(git_ratio),
            );
        }
        row(
            "c. `true` (fork+exec floor) — p50 / p99".to_owned(),
            "–".to_owned(),
            format!("{} / {}", ms(self.true_.p50()), ms(self.true_.p99())),
            format!("{} (true ÷ hello)", ratio(true_ratio)),
            "–".to_owned(),
        );
        let idle = self.tokend_idle.rss_kib as f64 / self.raw_idle.rss_kib as f64;
        row(
            "d. daemon RSS idle (start + 1 get) (baseline: raw server)".to_owned(),
            mib(self.tokend_idle.rss_kib),
            mib(self.raw_idle.rss_kib),
            ratio(idle),
            Target::AtMost(4.0 * 1024.0, "≤ 4 MiB").cell(self.tokend_idle.rss_kib as f64),
        );
        row(
            "d. daemon RSS after its first HTTP token fetch (baseline: tokend idle)".to_owned(),
            mib(self.tokend_fetched.rss_kib),
            mib(self.tokend_idle.rss_kib),
            ratio(self.tokend_fetched.rss_kib as f64 / self.tokend_idle.rss_kib as f64),
            Target::AtMost(6.0 * 1024.0, "≤ 6 MiB").cell(self.tokend_fetched.rss_kib as f64),
        );
        row(
            "d. daemon RSS after all the load (connections closed)".to_owned(),
            mib(self.tokend_after.rss_kib),
            mib(self.raw_after.rss_kib),
            ratio(self.tokend_after.rss_kib as f64 / self.raw_after.rss_kib as f64),
            "–".to_owned(),
        );
        let (found, share, target) = match self.ordering {
            Ok(coverage) => (
                format!("{} of {}", coverage.found, coverage.listed),
                format!("{:.1} %", coverage.share() * 100.0),
                if self.knobs.quick {
                    // CI's smoke run uses the debug build, which has other names.
                    "not judged in quick runs".to_owned()
                } else if coverage.same_rustc() {
                    Target::AtLeast(FRESH_SHARE, "≥ 90 %").cell(coverage.share())
                } else {
                    "list from another rustc".to_owned()
                },
            ),
            Err(_) => ("?".to_owned(), "?".to_owned(), "not counted".to_owned()),
        };
        row(
            "d. code ordering: functions of daemon/link/tokend.order found in tokend".to_owned(),
            found,
            "–".to_owned(),
            share,
            target,
        );
        row(
            format!(
                "d. daemon peak RSS (VmHWM: {clients} connections open in b, HTTP fetches of e \
                 and f)"
            ),
            mib(self.tokend_after.hwm_kib),
            mib(self.raw_after.hwm_kib),
            ratio(self.tokend_after.hwm_kib as f64 / self.raw_after.hwm_kib as f64),
            // Informational: the peak includes the HTTP client of e and f, which the daemon
            // only loads once a provider fetches over HTTP. The memory target is idle RSS.
            "–".to_owned(),
        );
        for [what, ours, base, r, target] in
            self.stampede_rows().into_iter().chain(self.refresh_rows())
        {
            row(what, ours, base, r, target);
        }

        let _ = writeln!(w, "\nRatios (tokend ÷ baseline), per round:\n");
        let _ = writeln!(
            w,
            "- a. p50 {} → median **{}** (target ≤ 1.10×); p99 {} → median **{}** (target ≤ 1.5×)",
            ratios(&s.per_round_ratios(p50)),
            ratio(s.ratio(p50)),
            ratios(&s.per_round_ratios(p99)),
            ratio(s.ratio(p99))
        );
        let _ = writeln!(
            w,
            "- b. throughput (each of a round's measurements) {} → median **{}** \
             (target ≥ 0.95×)",
            ratios(&m.per_round_ratios(rate)),
            ratio(m.ratio(rate))
        );
        let _ = writeln!(
            w,
            "- c. tok get (static) ÷ hello {} → median **{}** (target ≤ 1.10×)",
            ratios(&tok_ratios),
            ratio(tok_ratio)
        );
        let _ = writeln!(
            w,
            "- d. tokend idle RSS {} (target ≤ 4 MiB), {} after its first HTTP fetch (target ≤ 6 MiB)",
            mib(self.tokend_idle.rss_kib),
            mib(self.tokend_fetched.rss_kib)
        );
        if !sr.base.is_empty() {
            let _ = writeln!(
                w,
                "- a vs Redis: p50 {} → median **{}**; p99 {} → median **{}** (target < 1×)",
                ratios(&sr.per_round_ratios(p50)),
                ratio(sr.ratio(p50)),
                ratios(&sr.per_round_ratios(p99)),
                ratio(sr.ratio(p99))
            );
        }
        match self.ordering {
            Ok(coverage) if !self.knobs.quick => {
                if let Some(advice) = coverage.advice() {
                    let _ = writeln!(w, "- d. {advice}");
                }
            }
            Err(err) => {
                let _ = writeln!(w, "- d. the code-ordering list was not counted: {err}");
            }
            Ok(_) => {}
        }
        let _ = writeln!(w, "{}", self.stampede_line());
        let _ = writeln!(w, "{}", self.refresh_line());
        let exit = self
            .tokend_exit
            .map_or_else(|| "unknown".to_owned(), |status| status.to_string());
        let _ = writeln!(
            w,
            "\ntokend stopped with SIGTERM: {exit}; {} WARN/ERROR lines in its log. \
             Bench wall time {:.1} s.",
            self.tokend_warnings,
            self.elapsed.as_secs_f64()
        );
        out
    }
    /// e's rows: upstream requests, latency, tokens, memory, and warnings.
    fn stampede_rows(&self) -> Vec<Row> {
        let e = self.stampede;
        let n = e.connected;
        let delay = UPSTREAM_DELAY.as_nanos() as f64;
        let upstream = if n == 0 { f64::NAN } else { e.upstream as f64 };
        let mut rows = vec![
            [
                format!(
                    "e. stampede: {n} concurrent gets of the expired `{}` token — upstream requests",
                    STAMPEDE.provider
                ),
                e.upstream.to_string(),
                "1 (single flight)".to_owned(),
                "–".to_owned(),
                Target::Exactly(1.0, "exactly 1").cell(upstream),
            ],
            [
                "e. stampede — latency p50 / p90 / p99 / max (baseline: the upstream delay; \
                 ratio: p50 / p99 ÷ delay)"
                    .to_owned(),
                format!(
                    "{} / {} / {} / {}",
                    ms(e.latency(0.50)),
                    ms(e.latency(0.90)),
                    ms(e.latency(0.99)),
                    ms(e.max_latency())
                ),
                ms(delay),
                format!(
                    "{} / {}",
                    ratio(e.latency(0.50) / delay),
                    ratio(e.latency(0.99) / delay)
                ),
                "–".to_owned(),
            ],
            [
                "e. stampede — distinct tokens received; failed gets".to_owned(),
                format!("{}; {} failed", e.tokens, e.failed),
                "1; 0 failed".to_owned(),
                "–".to_owned(),
                Target::Exactly(1.0, "1 token").cell(if n == 0 {
                    f64::NAN
                } else {
                    e.tokens as f64
                }),
            ],
            [
                format!("e. daemon RSS with {n} connections open"),
                mib(e.open_rss.rss_kib),
                "–".to_owned(),
                "–".to_owned(),
                "–".to_owned(),
            ],
        ];
        if let Some(error) = &e.connect_error {
            rows.push(warning(&format!(
                "only {n} of {} stampede clients connected ({error})",
                e.clients
            )));
        }
        if let Err(why) = &e.expired {
            rows.push(warning(&format!(
                "the `{}` token was not seen expired ({why}): e did not start from an expired token",
                STAMPEDE.provider
            )));
        }
        if let Some(error) = &e.first_failure {
            rows.push(warning(&format!(
                "{} stampede gets failed, the first with: {error}",
                e.failed
            )));
        }
        rows
    }

    /// f's rows: busy vs quiet p50 / p99, the refresh count, and warnings.
    fn refresh_rows(&self) -> Vec<Row> {
        let p50 = |x: &Sample| x.p50_ns;
        let p99 = |x: &Sample| x.p99_ns;
        let phases = self.phases;
        let f = &phases.hits;
        let refreshes = phases.refreshes();
        let quiet_upstream = phases.quiet_upstream();
        let busy_other = phases.busy_other_upstream();
        let mut rows = vec![
            [
                "f. cache hit while refreshes run, 1 client, same CPU — p50 (baseline: quiet)"
                    .to_owned(),
                us(f.ours(p50)),
                us(f.base(p50)),
                ratio(f.ratio(p50)),
                "–".to_owned(),
            ],
            [
                "f. cache hit while refreshes run — p99".to_owned(),
                us(f.ours(p99)),
                us(f.base(p99)),
                ratio(f.ratio(p99)),
                Target::AtMost(1.2, "≤ 1.2×").cell(f.ratio(p99)),
            ],
            [
                format!(
                    "f. background refreshes of `{}` in busy phases (baseline: upstream requests \
                     in quiet phases)",
                    REFRESHING.provider
                ),
                format!("{refreshes} in {:.1} s", phases.busy_secs()),
                format!("{quiet_upstream} in {:.1} s", phases.quiet_secs()),
                "–".to_owned(),
                Target::AtLeast(1.0, "> 0").cell(refreshes as f64),
            ],
        ];
        if refreshes == 0 {
            rows.push(warning(
                "no background refresh happened during the busy phases: f's busy ÷ quiet ratio \
                 is meaningless",
            ));
        }
        if quiet_upstream > 0 {
            rows.push(warning(&format!(
                "{quiet_upstream} upstream requests during the quiet phases: they were not quiet"
            )));
        }
        if busy_other > 0 {
            rows.push(warning(&format!(
                "{busy_other} upstream requests during the busy phases were no background \
                 refresh (a requester get waited for a fetch, or another provider fetched)"
            )));
        }
        rows
    }

    fn stampede_line(&self) -> String {
        let e = self.stampede;
        let expired = match &e.expired {
            Ok(waited) => format!(
                "seen expired {:.1} s after the connections were open",
                waited.as_secs_f64()
            ),
            Err(why) => format!("**not seen expired**: {why}"),
        };
        format!(
            "- e. {} concurrent gets of the expired token ({expired}): **{}** upstream \
             request(s) (target exactly 1), {} distinct token(s), {} failed; latency p50 {} / \
             p90 {} / p99 {} / max {} (upstream delay {}); after the first get started, the \
             upstream request arrived at {} and the last answer at {}",
            e.connected,
            e.upstream,
            e.tokens,
            e.failed,
            ms(e.latency(0.50)),
            ms(e.latency(0.90)),
            ms(e.latency(0.99)),
            ms(e.max_latency()),
            ms(UPSTREAM_DELAY.as_nanos() as f64),
            ms(e.upstream_after_ns),
            ms(e.wall_ns)
        )
    }

    fn refresh_line(&self) -> String {
        let p50 = |x: &Sample| x.p50_ns;
        let p99 = |x: &Sample| x.p99_ns;
        let f = &self.phases.hits;
        format!(
            "- f. busy ÷ quiet: p99 {} → median **{}** (target ≤ 1.2×); p50 {} → median **{}**; \
             background refreshes per busy phase {} (target > 0 in all)",
            ratios(&f.per_round_ratios(p99)),
            ratio(f.ratio(p99)),
            ratios(&f.per_round_ratios(p50)),
            ratio(f.ratio(p50)),
            counts(self.phases.busy.iter().map(|phase| phase.refreshes))
        )
    }
}

/// One table row: measurement, tokend, baseline, ratio, target.
type Row = [String; 5];

/// A row that says a measurement cannot be trusted.
fn warning(text: &str) -> Row {
    [
        format!("**warning**: {text}"),
        "–".to_owned(),
        "–".to_owned(),
        "–".to_owned(),
        "–".to_owned(),
    ]
}
