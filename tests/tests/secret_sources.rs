//! `${file:…}` and `${cmd:…}` references that misbehave, through the real `tokend` and `tok`: a
//! FIFO (nobody writes), a device, a command that floods its output. Each gives the caller a
//! clear error at once; the daemon stays responsive and stops cleanly.

use std::time::{Duration, Instant};

use tokend_e2e::{Daemon, code, stderr};

#[test]
fn a_fifo_secret_file_fails_at_once_and_the_daemon_still_stops() {
    let dir = tokend_e2e::private_dir();
    let fifo = dir.path().join("token.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg("-m")
        .arg("600")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let config = format!(
        r#"
[providers.fifo]
kind = "static"
secret = "${{file:{}}}"

[providers.zero]
kind = "static"
secret = "${{file:/dev/zero}}"

[providers.flood]
kind = "static"
secret = "${{cmd:head -c 400000000 /dev/zero}}"
"#,
        fifo.display()
    );
    let mut daemon = Daemon::start(&config);
    for (name, expected) in [
        ("fifo", "not a regular file"),
        ("zero", "not a regular file"),
        ("flood", "printed more than"),
    ] {
        let started = Instant::now();
        let out = daemon.tok(&["get", name]);
        assert_eq!(code(&out), 2, "{name}: {}", stderr(&out));
        assert!(stderr(&out).contains(expected), "{name}: {}", stderr(&out));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{name} took {:?}",
            started.elapsed()
        );
    }
    let status = daemon.tok(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status answers");
    for provider in status["providers"].as_array().unwrap() {
        assert_ne!(provider["state"], "refreshing", "{provider}");
    }
    assert_eq!(code(&daemon.tok(&["stop"])), 0);
    let exit = daemon.wait_exit();
    assert!(exit.success(), "{exit}");
    // Nothing kept the data directory's lock: the next daemon starts.
    daemon.restart(&[]);
    assert_eq!(code(&daemon.tok(&["ping"])), 0);
}
