//! Auto-start through the real `tok` and `tokend` binaries. Runs on Windows too (under Wine in
//! CI): there the endpoint is a named pipe, its side files (the startup lock, the log) live in
//! the per-user temp directory, and the daemon starts detached, without a console.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tokend_client::Endpoint;
use tokend_e2e::{
    Captured, bin, code, output_via_files, private_dir, stderr, stdout, test_socket, tok_command,
    write_private,
};

/// Where the auto-started daemon of the test in `dir` writes its log (beside the socket on
/// Unix, in the per-user temp directory on Windows).
fn log_path(dir: &Path) -> PathBuf {
    Endpoint::from_path(test_socket(dir)).log_path()
}

const CONFIG: &str = r#"
[providers.pat]
kind = "static"
secret = "${env:E2E_AUTOSTART_PAT}"
"#;

/// `tok` with auto-start on, the daemon binary from this build, and the test's config.
fn autostart_tok(dir: &std::path::Path) -> Command {
    let mut command = Command::new(bin("tok"));
    command
        .env("TOKEND_SOCKET", test_socket(dir))
        .env("TOKEND_CONFIG", dir.join("config.toml"))
        .env("TOKEND_DATA", dir.join("data"))
        .env("TOKEND_BIN", bin("tokend"))
        .env("E2E_AUTOSTART_PAT", "pat-started-on-demand")
        // Trace level: the log is checked for the fixture secret when the daemon stops.
        .env("RUST_LOG", "trace")
        .env_remove("TOKEND_NO_AUTOSTART")
        .stdin(Stdio::null());
    command
}

/// Stops whatever daemon the test started, even if the test fails halfway; then checks that its
/// log (next to the socket) never shows the fixture secret.
struct StopOnDrop(std::path::PathBuf);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let _ = output_via_files(tok_command(&self.0).arg("stop"));
        let log =
            std::fs::read_to_string(Endpoint::from_path(&self.0).log_path()).unwrap_or_default();
        if !std::thread::panicking() {
            assert!(
                !log.contains("pat-started-on-demand"),
                "the fixture secret appears in the auto-started daemon's log"
            );
        }
    }
}

#[test]
fn twenty_parallel_gets_start_exactly_one_daemon() {
    let dir = private_dir();
    write_private(&dir.path().join("config.toml"), CONFIG);
    let _stop = StopOnDrop(test_socket(dir.path()));

    // Output in files, not pipes: see `Captured` (the daemon outlives every tok).
    let children: Vec<_> = (0..20)
        .map(|_| Captured::spawn(autostart_tok(dir.path()).args(["get", "pat"])))
        .collect();
    for child in children {
        let out = child.finish();
        assert!(out.status.success(), "tok get failed: {}", stderr(&out));
        assert_eq!(stdout(&out), "pat-started-on-demand\n");
    }

    // The auto-start log sits beside the socket; each daemon start logs one "listening" line.
    let log = std::fs::read_to_string(log_path(dir.path())).unwrap();
    assert_eq!(
        log.matches("listening on").count(),
        1,
        "expected one daemon start:\n{log}"
    );
    assert!(!log.contains("already running"), "{log}");

    let out = output_via_files(tok_command(&test_socket(dir.path())).arg("ping"));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn a_daemon_that_cannot_start_is_reported_with_its_log() {
    let dir = private_dir();
    write_private(
        &dir.path().join("config.toml"),
        "[providers.x]\nkind = \"static\"\nsecrt = \"oops\"\n",
    );
    let _stop = StopOnDrop(test_socket(dir.path()));
    let out = output_via_files(autostart_tok(dir.path()).args(["get", "x"]));
    // The daemon exits 2 on a config error, and tok passes that on as exit code 2.
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
    let err = stderr(&out);
    assert!(err.contains("could not start tokend"), "{err}");
    assert!(
        err.contains("secrt"),
        "the config error names the key: {err}"
    );
    let log = log_path(dir.path());
    let log_name = log.file_name().unwrap().to_string_lossy();
    assert!(err.contains(&*log_name), "the log file is named: {err}");
}

#[test]
fn no_autostart_env_keeps_tok_from_starting_a_daemon() {
    let dir = private_dir();
    write_private(&dir.path().join("config.toml"), CONFIG);
    let out = output_via_files(
        autostart_tok(dir.path())
            .env("TOKEND_NO_AUTOSTART", "1")
            .args(["get", "pat"]),
    );
    assert_eq!(code(&out), 3);
    assert!(
        stderr(&out).contains("TOKEND_NO_AUTOSTART"),
        "{}",
        stderr(&out)
    );
    let ping = tok_command(&test_socket(dir.path()))
        .arg("ping")
        .output()
        .unwrap();
    assert_eq!(code(&ping), 3, "no daemon was started: {}", stderr(&ping));
}

#[test]
fn a_missing_daemon_binary_is_a_clear_error() {
    let dir = private_dir();
    write_private(&dir.path().join("config.toml"), CONFIG);
    let out = output_via_files(
        autostart_tok(dir.path())
            .env("TOKEND_BIN", dir.path().join("no-such-tokend"))
            .args(["get", "pat"]),
    );
    assert_eq!(code(&out), 3);
    assert!(stderr(&out).contains("TOKEND_BIN"), "{}", stderr(&out));
}

/// Unix: socket directories have modes (on Windows the side files live in the user's own
/// temp directory).
#[cfg(unix)]
#[test]
fn auto_start_refuses_a_socket_directory_others_can_enter() {
    use std::os::unix::fs::PermissionsExt;
    let dir = private_dir();
    let open = dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
    write_private(&dir.path().join("config.toml"), CONFIG);
    let out = autostart_tok(dir.path())
        .env("TOKEND_SOCKET", open.join("tokend.sock"))
        .args(["get", "pat"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("refusing to use socket directory") && err.contains("chmod 700"),
        "{err}"
    );
    // Nothing was written into the unsafe directory.
    assert_eq!(std::fs::read_dir(&open).unwrap().count(), 0);
}
