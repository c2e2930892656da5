//! Who may connect, file modes, and the one-daemon-per-endpoint rule, with the real binary.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use tokend_e2e::{Daemon, bin, code, private_dir, stderr, tok_command, wait_bounded};

const CONFIG: &str = r#"
[providers.pat]
kind = "static"
secret = "${env:E2E_SECURITY_PAT}"
"#;

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn socket_directory_and_files_are_private() {
    let dir = private_dir();
    let socket_dir = dir.path().join("fresh/nested");
    let socket = socket_dir.join("tokend.sock");
    let mut child = Command::new(bin("tokend"))
        .env("TOKEND_DATA", dir.path().join("data"))
        .arg("--config")
        .arg(dir.path().join("absent.toml"))
        .arg("--socket")
        .arg(&socket)
        .arg("--notify-ready")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "READY");
    assert_eq!(mode(&socket_dir), 0o700, "socket directory is created 0700");
    assert_eq!(mode(&socket), 0o600, "socket is 0600");
    assert_eq!(
        mode(&socket_dir.join("tokend.lock")),
        0o600,
        "lock file is 0600"
    );

    // A missing config file means no providers, not an error.
    let out = tok_command(&socket).arg("status").output().unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no providers"));

    tokend_e2e::signal(child.id(), rustix::process::Signal::TERM);
    assert!(wait_bounded(&mut child).success());
    assert!(!socket.exists());
}

#[test]
fn unsafe_socket_directories_are_refused() {
    let dir = private_dir();
    let open = dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(dir.path(), &link).unwrap();

    for (socket_dir, expected) in [(&open, "chmod 700"), (&link, "symbolic link")] {
        let out = Command::new(bin("tokend"))
            .env("TOKEND_DATA", dir.path().join("data"))
            .arg("--config")
            .arg(dir.path().join("absent.toml"))
            .arg("--socket")
            .arg(socket_dir.join("tokend.sock"))
            .output()
            .unwrap();
        assert_eq!(code(&out), 1);
        let err = stderr(&out);
        assert!(
            err.contains(&socket_dir.display().to_string()) && err.contains(expected),
            "{err}"
        );
        assert!(!socket_dir.join("tokend.sock").exists());
    }
}

#[test]
fn a_second_daemon_on_the_same_endpoint_exits_and_the_first_keeps_serving() {
    let daemon = Daemon::start_with_env(CONFIG, &[("E2E_SECURITY_PAT", "pat-1")]);
    let out = Command::new(bin("tokend"))
        .env("TOKEND_DATA", daemon.data_dir())
        .arg("--config")
        .arg(daemon.dir().join("config.toml"))
        .arg("--socket")
        .arg(daemon.socket())
        .output()
        .unwrap();
    assert_eq!(code(&out), 3);
    let err = stderr(&out);
    assert!(
        err.contains("already running") && err.contains(&format!("pid {}", daemon.pid())),
        "{err}"
    );
    assert_eq!(code(&daemon.tok(&["get", "pat"])), 0);
}

#[test]
fn a_stale_socket_left_by_a_killed_daemon_is_replaced() {
    let env = [("E2E_SECURITY_PAT", "pat-2")];
    let mut daemon = Daemon::start_with_env(CONFIG, &env);
    daemon.kill();
    assert!(
        daemon.socket().exists(),
        "SIGKILL leaves the socket file behind"
    );
    daemon.restart(&env);
    assert!(
        daemon.log().contains("replacing a stale socket"),
        "{}",
        daemon.log()
    );
    assert_eq!(code(&daemon.tok(&["get", "pat"])), 0);
}

#[test]
fn sigterm_stops_gracefully_and_removes_the_socket() {
    let mut daemon = Daemon::start_with_env(CONFIG, &[("E2E_SECURITY_PAT", "pat-3")]);
    let client = daemon.client();
    assert!(client.get("pat").is_ok());
    assert!(daemon.terminate().success());
    assert!(!daemon.socket().exists());
    assert!(daemon.log().contains("stopped"), "{}", daemon.log());
}

#[test]
fn another_user_is_refused_even_if_the_socket_is_reachable() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root to run a client as another user (nobody)");
        return;
    }
    let daemon = Daemon::start_with_env(CONFIG, &[("E2E_SECURITY_PAT", "pat-4")]);
    // Simulate a misconfiguration that lets another user reach the socket: the peer-credential
    // check is the second wall.
    std::fs::set_permissions(daemon.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(daemon.socket(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(bin("tok"))
        .arg("--socket")
        .arg(daemon.socket())
        .arg("get")
        .arg("pat")
        .env("TOKEND_NO_AUTOSTART", "1")
        .output()
        .unwrap();
    assert_ne!(code(&out), 0);
    assert!(out.stdout.is_empty(), "no token for another user");
    let log = daemon.log();
    assert!(
        log.contains("refused a connection") && log.contains("peer uid 65534"),
        "{log}"
    );
    // The owner is still served.
    assert_eq!(
        String::from_utf8_lossy(&daemon.tok(&["get", "pat"]).stdout),
        "pat-4\n"
    );
}

/// A crash must never write the secrets in tokend's memory to a core file: its core-file limit
/// is 0 (the non-dumpable flag is checked by the daemon's unit test, since /proc shows it only
/// as file ownership, which root cannot tell apart).
#[cfg(target_os = "linux")]
#[test]
fn the_daemon_runs_with_a_zero_core_file_limit() {
    let daemon = Daemon::start_with_env(CONFIG, &[("E2E_SECURITY_PAT", "pat-1")]);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", daemon.pid())).unwrap();
    let core = limits
        .lines()
        .find(|line| line.starts_with("Max core file size"))
        .unwrap_or_else(|| panic!("no core limit in:\n{limits}"));
    let fields: Vec<&str> = core.split_whitespace().collect();
    assert_eq!(fields[4..6], ["0", "0"], "{core}");
}
