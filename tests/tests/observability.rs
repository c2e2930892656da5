//! Counters in `tok status --json`, `tok metrics` (Prometheus text), and the audit trail (on by
//! default, aggregated per program and provider), with the real daemon.

use tokend_e2e::{Daemon, code, stderr, stdout};

const CONFIG: &str = r#"
[providers.pat]
kind = "static"
secret = "${env:E2E_OBS_PAT}"
"#;

fn daemon() -> Daemon {
    Daemon::start_with_env(CONFIG, &[("E2E_OBS_PAT", "pat-observed-0123")])
}

fn unaudited_daemon() -> Daemon {
    Daemon::start_with_args(
        CONFIG,
        &[("E2E_OBS_PAT", "pat-observed-0123")],
        &["--no-audit"],
    )
}

#[test]
fn status_json_counts_requests_hits_refreshes_and_failures() {
    let daemon = daemon();
    for _ in 0..3 {
        assert_eq!(code(&daemon.tok(&["get", "pat"])), 0);
    }
    let out = daemon.tok(&["status", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let counters = &json["providers"][0]["counters"];
    assert_eq!(counters["requests"], 3, "{json}");
    assert_eq!(counters["cache_hits"], 2, "{json}");
    assert_eq!(counters["refreshes"], 1, "{json}");
    assert_eq!(counters["failures"], 0, "{json}");
}

#[test]
fn metrics_are_prometheus_text_without_secrets() {
    let daemon = daemon();
    assert_eq!(code(&daemon.tok(&["get", "pat"])), 0);
    assert_eq!(code(&daemon.tok(&["get", "pat"])), 0);
    let out = daemon.tok(&["metrics"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    for expected in [
        "# TYPE tokend_requests_total counter",
        "tokend_requests_total{provider=\"pat\"} 2",
        "tokend_cache_hits_total{provider=\"pat\"} 1",
        "tokend_refreshes_total{provider=\"pat\"} 1",
        "# TYPE tokend_upstream_latency_seconds histogram",
        "tokend_upstream_latency_seconds_bucket{provider=\"pat\",le=\"+Inf\"} 1",
        "tokend_upstream_latency_seconds_count{provider=\"pat\"} 1",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(!text.contains("pat-observed-0123"));
    // The runtime's tasks: at least the connection asking for the metrics.
    let tasks = text
        .lines()
        .find_map(|line| line.strip_prefix("tokend_runtime_tasks "))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(
        tasks.is_some_and(|n| n >= 1) && text.contains("# TYPE tokend_runtime_tasks gauge"),
        "no tokend_runtime_tasks gauge in:\n{text}"
    );
}

#[test]
fn with_no_audit_there_are_no_audit_lines() {
    let mut daemon = unaudited_daemon();
    assert_eq!(code(&daemon.tok(&["get", "pat"])), 0);
    assert_eq!(daemon.terminate().code(), Some(0));
    assert!(!daemon.log().contains("tokend::audit"), "{}", daemon.log());
}

fn audit_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains("tokend::audit"))
        .collect()
}

#[test]
fn the_audit_trail_is_on_by_default_and_aggregated_per_program_and_provider() {
    let mut daemon = daemon();
    assert_eq!(code(&daemon.tok(&["get", "pat"])), 0);
    assert_eq!(code(&daemon.tok(&["get", "pat"])), 0);
    assert_eq!(code(&daemon.tok(&["get", "nope"])), 4);
    // The first token of a program (tok) for each provider is written at once.
    let uid = rustix::process::getuid().as_raw();
    assert!(
        tokend_e2e::eventually(std::time::Duration::from_secs(5), || {
            audit_lines(&daemon.log()).len() >= 2
        }),
        "{}",
        daemon.log()
    );
    let log = daemon.log();
    let first = audit_lines(&log);
    assert_eq!(
        first.len(),
        2,
        "one line per new program and provider: {log}"
    );
    assert!(
        first[0].contains("provider=pat") && first[0].contains("granted"),
        "{}",
        first[0]
    );
    assert!(
        first[1].contains("provider=nope") && first[1].contains("refused"),
        "{}",
        first[1]
    );
    // The counts follow once a minute, and when the daemon stops.
    assert_eq!(daemon.terminate().code(), Some(0));
    let log = daemon.log();
    let lines = audit_lines(&log);
    let counts: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains("in the last interval"))
        .collect();
    assert_eq!(counts.len(), 2, "{log}");
    let pat = counts
        .iter()
        .find(|l| l.contains("provider=pat"))
        .expect("the counts of pat");
    for field in ["requests=2", "hits=1", "misses=1", "errors=0"] {
        assert!(pat.contains(field), "{field} in {pat}");
    }
    assert!(
        counts
            .iter()
            .any(|l| l.contains("provider=nope") && l.contains("unknown_provider=1")),
        "{log}"
    );
    for line in &lines {
        assert!(line.contains(&format!("uid={uid}")), "{line}");
        assert!(line.contains("/tok"), "the executable is named: {line}");
        assert!(line.contains("INFO"), "{line}");
    }
    assert!(pat.contains("pids="), "{pat}");
    assert!(
        !log.contains("pat-observed-0123"),
        "no token in any log line"
    );
}

#[test]
fn a_broken_log_sink_does_not_stop_the_daemon() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let dir = tokend_e2e::private_dir();
    let config = dir.path().join("config.toml");
    tokend_e2e::write_private(&config, CONFIG);
    let socket = dir.path().join("tokend.sock");
    let mut child = Command::new(tokend_e2e::bin("tokend"))
        .arg("--config")
        .arg(&config)
        .arg("--socket")
        .arg(&socket)
        .arg("--notify-ready")
        .env("RUST_LOG", "info")
        .env("TOKEND_DATA", dir.path().join("data"))
        .env("E2E_OBS_PAT", "pat-observed-0123")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tokend");
    let mut ready = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(ready.trim(), "READY");
    // The terminal or log pipe goes away: every log line from now on fails to be written.
    drop(child.stderr.take());
    let tok = |args: &[&str]| {
        tokend_e2e::tok_command(&socket)
            .args(args)
            .output()
            .expect("run tok")
    };
    for _ in 0..3 {
        // A reload and a token fetch each log an info line.
        assert_eq!(code(&tok(&["reload"])), 0);
        let out = tok(&["get", "pat"]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        assert_eq!(stdout(&out).trim_end(), "pat-observed-0123");
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "tokend died when its log sink failed: {:?}",
        child.try_wait()
    );
    assert_eq!(code(&tok(&["stop"])), 0);
    let status = tokend_e2e::wait_bounded(&mut child);
    assert!(status.success(), "{status}");
}

#[test]
fn status_and_metrics_of_thousands_of_providers_arrive_whole() {
    // Both answers grow with the config: far past one 64 KiB frame here.
    let mut config = String::new();
    for index in 0..3000 {
        config.push_str(&format!(
            "[providers.p{index:04}]\nkind = \"static\"\nsecret = \"${{env:E2E_OBS_PAT}}\"\n"
        ));
    }
    let daemon = Daemon::start_with_env(&config, &[("E2E_OBS_PAT", "pat-observed-0123")]);
    assert_eq!(code(&daemon.tok(&["get", "p2999"])), 0);
    let out = daemon.tok(&["status", "--json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let providers = json["providers"].as_array().unwrap();
    assert_eq!(providers.len(), 3000);
    assert_eq!(providers[2999]["name"], "p2999");
    assert_eq!(providers[2999]["state"], "fresh");
    let out = daemon.tok(&["metrics"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.len() > 64 * 1024, "{} bytes", text.len());
    assert!(text.contains("tokend_requests_total{provider=\"p2999\"} 1"));
    // The table form too.
    let out = daemon.tok(&["status"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        stdout(&out)
            .lines()
            .filter(|l| l.contains(" static "))
            .count(),
        3000
    );
}

#[test]
fn rust_log_takes_a_level_and_target_directives() {
    // Warnings only, except the audit trail.
    let mut daemon = Daemon::start_with_env(
        CONFIG,
        &[
            ("E2E_OBS_PAT", "pat-observed-0123"),
            ("RUST_LOG", "warn,tokend::audit=info"),
        ],
    );
    assert_eq!(code(&daemon.tok(&["get", "pat"])), 0);
    assert_eq!(daemon.terminate().code(), Some(0));
    let log = daemon.log();
    assert!(log.contains("tokend::audit"), "{log}");
    assert!(
        log.lines()
            .all(|line| line.contains("tokend::audit") || !line.contains("INFO")),
        "only the audit trail logs at info: {log}"
    );
}
