//! Auto-start through the real `tok` and `tokend` binaries.

use std::process::{Command, Stdio};

use tokend_e2e::{
    bin, code, private_dir, stderr, stdout, tok_command, wait_bounded, write_private,
};

const CONFIG: &str = r#"
[providers.pat]
kind = "static"
secret = "${env:E2E_AUTOSTART_PAT}"
"#;

/// `tok` with auto-start on, the daemon binary from this build, and the test's config.
fn autostart_tok(dir: &std::path::Path) -> Command {
    let mut command = Command::new(bin("tok"));
    command
        .env("TOKEND_SOCKET", dir.join("tokend.sock"))
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
        let _ = tok_command(&self.0).arg("stop").output();
        let log = std::fs::read_to_string(self.0.with_file_name("tokend.log")).unwrap_or_default();
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
    let _stop = StopOnDrop(dir.path().join("tokend.sock"));

    let mut children: Vec<_> = (0..20)
        .map(|_| {
            autostart_tok(dir.path())
                .args(["get", "pat"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in &mut children {
        let status = wait_bounded(child);
        let mut out = String::new();
        std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        assert!(status.success(), "tok get failed: {err}");
        assert_eq!(out, "pat-started-on-demand\n");
    }

    // The auto-start log sits beside the socket; each daemon start logs one "listening" line.
    let log = std::fs::read_to_string(dir.path().join("tokend.log")).unwrap();
    assert_eq!(
        log.matches("listening on").count(),
        1,
        "expected one daemon start:\n{log}"
    );
    assert!(!log.contains("already running"), "{log}");

    let out = tok_command(&dir.path().join("tokend.sock"))
        .arg("ping")
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn a_daemon_that_cannot_start_is_reported_with_its_log() {
    let dir = private_dir();
    write_private(
        &dir.path().join("config.toml"),
        "[providers.x]\nkind = \"static\"\nsecrt = \"oops\"\n",
    );
    let _stop = StopOnDrop(dir.path().join("tokend.sock"));
    let out = autostart_tok(dir.path())
        .args(["get", "x"])
        .output()
        .unwrap();
    // The daemon exits 2 on a config error, and tok passes that on as exit code 2.
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
    let err = stderr(&out);
    assert!(err.contains("could not start tokend"), "{err}");
    assert!(
        err.contains("secrt"),
        "the config error names the key: {err}"
    );
    assert!(err.contains("tokend.log"), "the log file is named: {err}");
}

#[test]
fn no_autostart_env_keeps_tok_from_starting_a_daemon() {
    let dir = private_dir();
    write_private(&dir.path().join("config.toml"), CONFIG);
    let out = autostart_tok(dir.path())
        .env("TOKEND_NO_AUTOSTART", "1")
        .args(["get", "pat"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 3);
    assert!(
        stderr(&out).contains("TOKEND_NO_AUTOSTART"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.path().join("tokend.sock").exists());
}

#[test]
fn a_missing_daemon_binary_is_a_clear_error() {
    let dir = private_dir();
    write_private(&dir.path().join("config.toml"), CONFIG);
    let out = autostart_tok(dir.path())
        .env("TOKEND_BIN", dir.path().join("no-such-tokend"))
        .args(["get", "pat"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 3);
    assert!(stderr(&out).contains("TOKEND_BIN"), "{}", stderr(&out));
}

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
