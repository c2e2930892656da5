//! `tok` as a whole process against the real daemon: values on stdout only, diagnostics on
//! stderr, documented exit codes.

use tokend_e2e::{Daemon, code, stderr, stdout};

const CONFIG: &str = r#"
[providers.salestim]
kind = "static"
secret = "${env:E2E_SALESTIM_KEY}"
header = "X-API-KEY"

[providers.gitlab]
kind = "static"
secret = "${cmd:PRINT_TOKEN}"

[providers.timekit]
kind = "static"
secret = "${env:E2E_TIMEKIT_TOKEN}"
scheme = "basic"

[providers.crm]
kind = "static"
secret = "${env:E2E_CRM_JWT}"
header = "authorization"
scheme = "raw"

[providers.broken]
kind = "static"
secret = "${env:E2E_NOT_SET_ANYWHERE}"
"#;

/// A program that prints the gitlab token: printf on Unix, cmd's echo on Windows (under Wine
/// too). tokend trims what a command prints.
const PRINT_TOKEN: &str = if cfg!(windows) {
    "cmd /c echo glpat-from-a-command"
} else {
    "printf %s glpat-from-a-command"
};

fn config() -> String {
    CONFIG.replace("PRINT_TOKEN", PRINT_TOKEN)
}

const ENV: &[(&str, &str)] = &[
    ("E2E_SALESTIM_KEY", "st-key-0123456789"),
    (
        "E2E_TIMEKIT_TOKEN",
        "live_api_key_7nzvc7wsBQQISLeFSVhROys9V1bUJ1z7",
    ),
    ("E2E_CRM_JWT", "eyJhbGciOiJIUzI1NiJ9.e30.sig"),
];

#[test]
fn get_prints_only_the_token() {
    let daemon = Daemon::start_with_env(&config(), ENV);
    let out = daemon.tok(&["get", "salestim"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "st-key-0123456789\n");
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));

    let out = daemon.tok(&["get", "gitlab"]);
    assert_eq!(stdout(&out), "glpat-from-a-command\n");
}

#[test]
fn header_presents_each_scheme() {
    let daemon = Daemon::start_with_env(&config(), ENV);
    let cases = [
        ("salestim", "X-API-KEY: st-key-0123456789\n"),
        ("gitlab", "Authorization: Bearer glpat-from-a-command\n"),
        // Timekit: Basic with an empty user and the token as password.
        (
            "timekit",
            "Authorization: Basic OmxpdmVfYXBpX2tleV83bnp2Yzd3c0JRUUlTTGVGU1ZoUk95czlWMWJVSjF6Nw==\n",
        ),
        ("crm", "authorization: eyJhbGciOiJIUzI1NiJ9.e30.sig\n"),
    ];
    for (provider, expected) in cases {
        let out = daemon.tok(&["header", provider]);
        assert_eq!(code(&out), 0, "{provider}: {}", stderr(&out));
        assert_eq!(stdout(&out), expected, "{provider}");
    }
}

#[test]
fn get_json_has_the_documented_fields() {
    let daemon = Daemon::start_with_env(&config(), ENV);
    let out = daemon.tok(&["get", "salestim", "--json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let value: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(value["provider"], "salestim");
    assert_eq!(value["token"], "st-key-0123456789");
    assert_eq!(value["header"], "X-API-KEY: st-key-0123456789");
    assert!(value["expires_at"].is_null());
}

#[test]
fn status_lists_providers_without_secrets() {
    let daemon = Daemon::start_with_env(&config(), ENV);
    assert_eq!(code(&daemon.tok(&["get", "salestim"])), 0);
    assert_eq!(code(&daemon.tok(&["get", "broken"])), 2);

    let out = daemon.tok(&["status"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    for secret in ["st-key-0123456789", "live_api_key", "eyJhbGci"] {
        assert!(!text.contains(secret), "status leaked a secret:\n{text}");
    }
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        line("salestim").contains("static") && line("salestim").contains("fresh"),
        "{text}"
    );
    assert!(line("timekit").contains("idle"), "{text}");
    assert!(
        line("broken").contains("error") && line("broken").contains("E2E_NOT_SET_ANYWHERE"),
        "{text}"
    );

    let out = daemon.tok(&["status", "--json"]);
    let value: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    // The endpoint as tokend shows it: the socket path, or \\.\pipe\NAME on Windows.
    assert_eq!(value["endpoint"], daemon.endpoint().to_string());
    let providers = value["providers"].as_array().unwrap();
    assert_eq!(providers.len(), 5);
    let salestim = providers.iter().find(|p| p["name"] == "salestim").unwrap();
    assert_eq!(salestim["state"], "fresh");
    assert_eq!(salestim["kind"], "static");
}

#[test]
fn exit_codes_are_the_documented_ones() {
    let daemon = Daemon::start_with_env(&config(), ENV);

    let out = daemon.tok(&["get", "nope"]);
    assert_eq!(code(&out), 4);
    assert!(stdout(&out).is_empty());
    assert!(
        stderr(&out).contains("unknown provider `nope`") && stderr(&out).contains("salestim"),
        "{}",
        stderr(&out)
    );

    // A secret reference that does not resolve is a configuration problem: 2, naming the variable.
    let out = daemon.tok(&["get", "broken"]);
    assert_eq!(code(&out), 2);
    assert!(stdout(&out).is_empty());
    assert!(
        stderr(&out).contains("E2E_NOT_SET_ANYWHERE"),
        "{}",
        stderr(&out)
    );

    let out = daemon.tok(&["get"]);
    assert_eq!(code(&out), 2, "missing argument is a usage error");
}

#[test]
fn ping_reports_version_pid_and_uptime_and_stop_stops() {
    let mut daemon = Daemon::start_with_env(&config(), ENV);
    let out = daemon.tok(&["ping"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains(&format!("pid {}", daemon.pid())), "{text}");
    assert!(
        text.contains(&format!("protocol {}", tokend_protocol::PROTOCOL_VERSION)),
        "{text}"
    );
    assert!(text.contains(env!("CARGO_PKG_VERSION")), "{text}");

    let out = daemon.tok(&["stop"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
    assert!(daemon.wait_exit().success());
    assert!(
        !daemon.socket().exists(),
        "the socket file is removed on shutdown"
    );

    let out = daemon.tok(&["ping"]);
    assert_eq!(code(&out), 3);
    assert!(stderr(&out).contains("not running"), "{}", stderr(&out));
}

#[test]
fn no_secret_reaches_the_daemon_log_even_at_trace_level() {
    let daemon = Daemon::start_with_env(&config(), ENV);
    for provider in ["salestim", "gitlab", "timekit", "crm", "broken", "nope"] {
        let _ = daemon.tok(&["get", provider, "--json"]);
        let _ = daemon.tok(&["header", provider]);
    }
    let _ = daemon.tok(&["status", "--json"]);
    let log = daemon.log();
    assert!(
        log.contains("TRACE") || log.contains("DEBUG") || log.contains("INFO"),
        "the log was written: {log}"
    );
    for secret in [
        "st-key-0123456789",
        "glpat-from-a-command",
        "live_api_key_7nzvc7wsBQQISLeFSVhROys9V1bUJ1z7",
        "eyJhbGciOiJIUzI1NiJ9",
        // The Basic-encoded form of the Timekit token.
        "OmxpdmVfYXBpX2tleV83bnp2Yzd3c0JRUUlTTGVGU1ZoUk95czlWMWJVSjF6Nw",
    ] {
        assert!(!log.contains(secret), "a secret reached the log:\n{log}");
    }
}
