//! The store's key from the OS keystore: the Secret Service path against a real, headless
//! `gnome-keyring-daemon` on a private session bus (`dbus-run-session`), unlocked from stdin; and
//! the refusal, with what to configure, when the chosen keystore is not there.

#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use tokend_e2e::oidc::{APP, OidcServer};
use tokend_e2e::{Daemon, bin, code, private_dir, stderr, stdout, write_private};

/// A private session bus with an unlocked `gnome-keyring-daemon` (Secret Service) on it. Both
/// stop when this drops.
struct SecretService {
    /// `dbus-run-session -- sh -c 'echo $DBUS_SESSION_BUS_ADDRESS; exec cat'`: the session lives
    /// until `cat` sees its stdin close.
    bus: Child,
    bus_stdin: Option<ChildStdin>,
    keyring: Child,
    address: String,
    _home: tempfile::TempDir,
}

impl SecretService {
    /// `None` (with the reason printed) when the binaries are not installed.
    fn start() -> Option<Self> {
        for program in ["gnome-keyring-daemon", "dbus-run-session", "dbus-send"] {
            if which(program).is_none() {
                eprintln!(
                    "SKIPPED: {program} is not installed (Debian packages gnome-keyring and dbus; \
                     .ci/run installs them)"
                );
                return None;
            }
        }
        let home = private_dir();
        let runtime = home.path().join("run");
        std::fs::create_dir(&runtime).unwrap();
        let env = |command: &mut Command| {
            command
                .env("HOME", home.path())
                .env("XDG_RUNTIME_DIR", &runtime)
                .env("XDG_DATA_HOME", home.path().join("data"))
                .env_remove("DBUS_SESSION_BUS_ADDRESS");
        };

        let mut bus = Command::new("dbus-run-session");
        bus.args([
            "--",
            "sh",
            "-c",
            "echo \"$DBUS_SESSION_BUS_ADDRESS\"; exec cat",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
        env(&mut bus);
        let mut bus = bus.spawn().expect("start dbus-run-session");
        let mut address = String::new();
        BufReader::new(bus.stdout.take().unwrap())
            .read_line(&mut address)
            .unwrap();
        let address = address.trim().to_owned();
        assert!(address.starts_with("unix:"), "no bus address: {address:?}");
        let bus_stdin = bus.stdin.take();

        // --unlock reads the login keyring's password from stdin (and creates the keyring).
        let mut keyring = Command::new("gnome-keyring-daemon");
        keyring
            .args(["--unlock", "--components=secrets", "--foreground"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        env(&mut keyring);
        keyring.env("DBUS_SESSION_BUS_ADDRESS", &address);
        let mut keyring = keyring.spawn().expect("start gnome-keyring-daemon");
        let mut stdin = keyring.stdin.take().unwrap();
        stdin.write_all(b"e2e-keyring-password").unwrap();
        drop(stdin);

        let service = Self {
            bus,
            bus_stdin,
            keyring,
            address,
            _home: home,
        };
        service.wait_until_on_the_bus();
        Some(service)
    }

    fn wait_until_on_the_bus(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let out = Command::new("dbus-send")
                .args([
                    "--session",
                    "--print-reply",
                    "--dest=org.freedesktop.DBus",
                    "/org/freedesktop/DBus",
                    "org.freedesktop.DBus.NameHasOwner",
                    "string:org.freedesktop.secrets",
                ])
                .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
                .output()
                .unwrap();
            if String::from_utf8_lossy(&out.stdout).contains("boolean true") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "gnome-keyring-daemon never registered the Secret Service"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SecretService {
    fn drop(&mut self) {
        let _ = self.keyring.kill();
        let _ = self.keyring.wait();
        // cat exits when its stdin closes, and dbus-run-session with it.
        drop(self.bus_stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.bus.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.bus.kill();
        let _ = self.bus.wait();
    }
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    })
}

fn token_of(daemon: &Daemon) -> String {
    let out = daemon.tok(&["get", "user", "--min-ttl", "1"]);
    assert_eq!(code(&out), 0, "{}\n{}", stderr(&out), daemon.log());
    stdout(&out).trim_end().to_owned()
}

#[test]
fn the_key_in_the_secret_service_opens_the_store_after_a_restart() {
    let Some(service) = SecretService::start() else {
        return;
    };
    let server = OidcServer::start(600);
    let refresh_token = server.mint_refresh_token();
    let env = [
        ("E2E_CLIENT_SECRET", APP.secret),
        ("E2E_REFRESH_TOKEN", refresh_token.as_str()),
        ("DBUS_SESSION_BUS_ADDRESS", service.address.as_str()),
    ];
    let mut daemon = Daemon::start_with_env(
        &format!(
            "[store]\nkey = \"keyring\"\n{}",
            server.refresh_token_provider("")
        ),
        &env,
    );
    assert!(
        daemon
            .log()
            .contains("created the store key in the OS keystore (Secret Service)"),
        "{}",
        daemon.log()
    );
    let token = token_of(&daemon);
    let status = stdout(&daemon.tok(&["status"]));
    assert!(
        status.contains("encrypted (OS keystore: Secret Service)"),
        "{status}"
    );
    assert!(
        !daemon.dir().join("store.key").exists(),
        "no key file with the keystore"
    );

    // The same key comes back from the keystore: the store opens and serves the stored token.
    daemon.kill();
    daemon.restart(&env);
    let log = daemon.log();
    assert!(!log.contains("created the store key"), "{log}");
    assert!(!log.contains("cannot be read"), "{log}");
    assert_eq!(token_of(&daemon), token);
    assert_eq!(server.stats()["by_grant"]["refresh_token"], 1);
}

#[test]
fn an_unavailable_keystore_stops_tokend_with_what_to_configure() {
    let dir = private_dir();
    let config = dir.path().join("config.toml");
    write_private(&config, "[store]\nkey = \"keyring\"\n");
    let out = Command::new(bin("tokend"))
        .arg("--config")
        .arg(&config)
        .arg("--socket")
        .arg(dir.path().join("tokend.sock"))
        .env("TOKEND_DATA", dir.path().join("data"))
        .env(
            "DBUS_SESSION_BUS_ADDRESS",
            "unix:path=/nonexistent/tokend-e2e-bus",
        )
        .env_remove("TOKEND_SOCKET")
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("the OS keystore (Secret Service) is unavailable")
            && err.contains("key = \"file\" in the [store] table"),
        "{err}"
    );
    assert!(
        !Path::new(&dir.path().join("data/store.tokend")).exists(),
        "no store without its key, and never a plaintext one"
    );
}
