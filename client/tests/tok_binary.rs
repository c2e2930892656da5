//! The `tok` binary as a process: help on stdout, usage errors on stderr with exit code 2, and
//! exit code 3 when no daemon runs. (Having an integration test here also makes
//! `cargo test --workspace` build `tok` for the end-to-end tests.)

use std::process::Command;

fn tok() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tok"));
    command
        .env("TOKEND_NO_AUTOSTART", "1")
        .env_remove("TOKEND_SOCKET");
    command
}

#[test]
fn help_and_version_go_to_stdout() {
    let out = tok().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Exit codes") && text.contains("tok header crm"),
        "{text}"
    );
    let out = tok().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn usage_error_is_exit_2_with_nothing_on_stdout() {
    let out = tok().args(["get"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(!out.stderr.is_empty());
}

#[test]
fn no_daemon_is_exit_3_with_the_next_step() {
    let dir = tempfile::tempdir().unwrap();
    let out = tok()
        .arg("--socket")
        .arg(dir.path().join("none.sock"))
        .args(["get", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not running") && err.contains("TOKEND_NO_AUTOSTART"),
        "{err}"
    );
}

#[test]
fn min_ttl_accepts_the_config_files_units() {
    // `1d` parses (the config's grammar), so tok gets as far as the missing daemon: exit 3, not
    // the usage error 2 of an unknown unit.
    let dir = tempfile::tempdir().unwrap();
    let run = |min_ttl: &str| {
        tok()
            .arg("--socket")
            .arg(dir.path().join("none.sock"))
            .args(["get", "x", "--min-ttl", min_ttl])
            .output()
            .unwrap()
    };
    let out = run("1d");
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run("5w");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown unit"));
}
