//! Running tokend as a user service: the unit files `tok service install` writes (checked by
//! systemd's own parser, `systemd-analyze verify`), tokend under socket activation with
//! Debian's `systemd-socket-activate` (which passes the socket exactly as systemd does:
//! `LISTEN_FDS`/`LISTEN_PID`, fd 3), and the hand-over between an auto-started daemon and the
//! service manager.
//!
//! The user's systemd manager cannot run here (no user session bus), so `systemctl` itself is
//! replaced through `TOK_SYSTEMCTL` by a script that records its arguments.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokend_e2e::{
    Daemon, PROCESS_WAIT, bin, code, private_dir, stderr, stdout, tok_command, wait_bounded,
    write_private, write_script,
};

/// A process that is killed (and reaped) when the test ends, however it ends.
struct Spawned(Child);

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn socket_activate_available() -> bool {
    let found = Command::new("systemd-socket-activate")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok();
    if !found {
        // .ci/run installs it (Debian's systemd package); without it this cannot run.
        eprintln!("skipping: systemd-socket-activate is not installed");
    }
    found
}

/// `systemd-socket-activate -l SOCKET` running `program`, with only `env` in its environment
/// (as systemd gives a service a fresh environment). It execs the program on the first
/// connection.
fn socket_activate(socket: &Path, program: &[String], env: &[(&str, &str)], log: &Path) -> Spawned {
    let mut command = Command::new("systemd-socket-activate");
    command.arg("-l").arg(socket);
    for (key, value) in env {
        command.arg("-E").arg(format!("{key}={value}"));
    }
    command
        .args(program)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log"));
    let child = Spawned(command.spawn().expect("spawn systemd-socket-activate"));
    wait_until(|| socket.exists(), "systemd-socket-activate to listen");
    child
}

fn wait_until(mut done: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + PROCESS_WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `tok ping`'s pid.
fn ping_pid(socket: &Path) -> u32 {
    let output = tok_command(socket).arg("ping").output().expect("tok ping");
    assert_eq!(code(&output), 0, "tok ping: {}", stderr(&output));
    let text = stdout(&output);
    text.split("pid ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {text:?}"))
}

const CONFIG: &str = "[providers.demo]\nkind = \"static\"\nsecret = \"${env:DEMO_KEY}\"\n";

/// A `tok service` command with its own config home, the workspace's tokend and a recording
/// `systemctl` that exits with `systemctl_exit`.
fn tok_service(home: &Path, systemctl_exit: u8) -> Command {
    let script = home.join("systemctl");
    write_script(
        &script,
        &format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nexit {systemctl_exit}\n",
            home.join("systemctl.log").display()
        ),
    );
    let mut command = Command::new(bin("tok"));
    command
        .arg("service")
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("TOK_SYSTEMCTL", &script)
        .env("TOKEND_BIN", bin("tokend"))
        .env_remove("TOKEND_CONFIG")
        .stdin(Stdio::null());
    command
}

fn unit_dir(home: &Path) -> PathBuf {
    home.join("config/systemd/user")
}

#[test]
fn service_install_writes_units_systemd_accepts_and_uninstall_removes_them() {
    let home = private_dir();
    let home = home.path();

    let printed = tok_service(home, 0)
        .args(["install", "--print"])
        .output()
        .unwrap();
    assert_eq!(code(&printed), 0, "{}", stderr(&printed));
    let printed = stdout(&printed);
    assert!(!unit_dir(home).exists(), "--print must not write");
    assert!(
        !home.join("systemctl.log").exists(),
        "--print must not run systemctl"
    );

    let output = tok_service(home, 0).arg("install").output().unwrap();
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(stdout(&output).is_empty(), "{}", stdout(&output));
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&unit_dir(home)), 0o700);
    for unit in ["tokend.socket", "tokend.service"] {
        let path = unit_dir(home).join(unit);
        assert_eq!(mode(&path), 0o600, "{unit}");
        let text = std::fs::read_to_string(&path).unwrap();
        // What --print showed is exactly what was written.
        assert!(
            printed.contains(&format!("# {}\n{text}", path.display())),
            "{unit}:\n{text}\nprinted:\n{printed}"
        );
    }
    let service = std::fs::read_to_string(unit_dir(home).join("tokend.service")).unwrap();
    assert!(
        service.contains(&format!("\nExecStart={}\n", bin("tokend").display())),
        "{service}"
    );
    let recorded = std::fs::read_to_string(home.join("systemctl.log")).unwrap();
    assert_eq!(
        recorded,
        "--user daemon-reload\n--user enable --now tokend.socket\n"
    );
    let script = home.join("systemctl");
    assert!(
        printed.ends_with(&format!(
            "{0} --user daemon-reload\n{0} --user enable --now tokend.socket\n",
            script.display()
        )),
        "{printed}"
    );

    // systemd's own parser accepts both units (unknown keys or bad values would be reported).
    let runtime = home.join("run");
    std::fs::create_dir(&runtime).unwrap();
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
    match Command::new("systemd-analyze")
        .args(["--user", "verify", "tokend.socket", "tokend.service"])
        .current_dir(unit_dir(home))
        .env("XDG_RUNTIME_DIR", &runtime)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .output()
    {
        Ok(verified) => {
            assert_eq!(code(&verified), 0, "{}", stderr(&verified));
            assert!(
                stderr(&verified).trim().is_empty(),
                "systemd-analyze complained: {}",
                stderr(&verified)
            );
        }
        Err(err) => eprintln!("not verifying the units: systemd-analyze cannot run: {err}"),
    }

    let output = tok_service(home, 0).arg("uninstall").output().unwrap();
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(!unit_dir(home).join("tokend.socket").exists());
    assert!(!unit_dir(home).join("tokend.service").exists());
    let recorded = std::fs::read_to_string(home.join("systemctl.log")).unwrap();
    assert!(
        recorded
            .ends_with("--user disable --now tokend.socket tokend.service\n--user daemon-reload\n"),
        "{recorded}"
    );
}

#[test]
fn service_install_reports_a_failing_service_manager() {
    let home = private_dir();
    let output = tok_service(home.path(), 1).arg("install").output().unwrap();
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("`") && stderr(&output).contains("daemon-reload` failed"),
        "{}",
        stderr(&output)
    );

    // A relative TOKEND_CONFIG would not be found by the service: refused before writing.
    let output = tok_service(home.path(), 0)
        .arg("install")
        .env("TOKEND_CONFIG", "relative/config.toml")
        .output()
        .unwrap();
    assert_eq!(code(&output), 2);
    assert!(
        stderr(&output).contains("make it absolute"),
        "{}",
        stderr(&output)
    );

    // The launchd agent can be printed anywhere.
    let output = tok_service(home.path(), 0)
        .args(["install", "--print", "--manager", "launchd"])
        .env("TOKEND_CONFIG", "/etc/tokend.toml")
        .output()
        .unwrap();
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let plist = stdout(&output);
    assert!(plist.contains("<string>--config</string>\n        <string>/etc/tokend.toml</string>"));
    assert!(plist.contains("launchctl bootstrap gui/"), "{plist}");

    // So can the Windows logon task (installing it is tested under Wine: tests/windows.rs).
    let output = tok_service(home.path(), 0)
        .args(["install", "--print", "--manager", "windows"])
        .env("LOCALAPPDATA", home.path().join("AppData/Local"))
        .output()
        .unwrap();
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let task = stdout(&output);
    assert!(task.contains("<LogonTrigger>"), "{task}");
    assert!(
        task.contains(&format!("--headless {}", bin("tokend").display())),
        "{task}"
    );
    assert!(
        task.contains("schtasks /Create /TN tokend /XML ")
            && task.contains("tokend-task.xml /F\nschtasks /Run /TN tokend\n"),
        "{task}"
    );
    assert!(
        !home.path().join("AppData").exists(),
        "--print must not write"
    );
}

#[test]
fn the_installed_service_runs_under_socket_activation() {
    if !socket_activate_available() {
        return;
    }
    let home = private_dir();
    let home = home.path();
    let output = tok_service(home, 0).arg("install").output().unwrap();
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let service = std::fs::read_to_string(unit_dir(home).join("tokend.service")).unwrap();
    let exec_start: Vec<String> = service
        .lines()
        .find_map(|line| line.strip_prefix("ExecStart="))
        .expect("ExecStart")
        .split_whitespace()
        .map(str::to_owned)
        .collect();

    // The default config location of the service's environment.
    let config_dir = home.join("config/tokend");
    std::fs::create_dir_all(&config_dir).unwrap();
    write_private(&config_dir.join("config.toml"), CONFIG);
    let socket = home.join("tokend.sock");
    let _service = socket_activate(
        &socket,
        &exec_start,
        &[
            ("HOME", home.to_str().unwrap()),
            ("XDG_CONFIG_HOME", home.join("config").to_str().unwrap()),
            ("DEMO_KEY", "activated-demo-key"),
        ],
        &home.join("service.log"),
    );

    let output = tok_command(&socket).args(["get", "demo"]).output().unwrap();
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(stdout(&output), "activated-demo-key\n");
    let log = std::fs::read_to_string(home.join("service.log")).unwrap();
    assert!(log.contains("socket from the service manager"), "{log}");

    // A tokend started by hand (or by auto-start) finds the endpoint served and leaves it alone.
    let output = Command::new(bin("tokend"))
        .arg("--socket")
        .arg(&socket)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("DEMO_KEY", "x")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(code(&output), 3, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("already running"),
        "{}",
        stderr(&output)
    );
    let output = tok_command(&socket).args(["get", "demo"]).output().unwrap();
    assert_eq!(stdout(&output), "activated-demo-key\n");

    // Stopping the service leaves the manager's socket file in place.
    let output = tok_command(&socket).arg("stop").output().unwrap();
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(socket.exists());
}

#[test]
fn an_auto_started_daemon_yields_to_the_service_manager() {
    if !socket_activate_available() {
        return;
    }
    let mut earlier = Daemon::start_with_env(CONFIG, &[("DEMO_KEY", "earlier")]);
    let socket = earlier.socket().to_owned();
    let earlier_pid = ping_pid(&socket);

    // systemd's socket unit unlinks whatever is at its path and binds it.
    std::fs::remove_file(&socket).unwrap();
    let config = earlier.dir().join("config.toml");
    // The same user's daemon: the same store, which the service's tokend also waits for. (Not
    // the real home's store: the service gets a fresh environment, and a tokend of the person
    // running the tests may hold that one.)
    let data_dir = earlier.data_dir();
    let _service = socket_activate(
        &socket,
        &[
            bin("tokend").display().to_string(),
            "--config".to_owned(),
            config.display().to_string(),
        ],
        &[
            ("DEMO_KEY", "service"),
            ("TOKEND_DATA", data_dir.to_str().unwrap()),
        ],
        &earlier.dir().join("service.log"),
    );

    // The first connection starts the service's tokend, which waits for the earlier daemon's
    // lock; the earlier daemon notices that its socket file is gone and stops cleanly.
    let output = tok_command(&socket).args(["get", "demo"]).output().unwrap();
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(stdout(&output), "service\n");
    assert!(earlier.wait_exit().success());
    assert!(
        earlier
            .log()
            .contains("socket file was removed or replaced"),
        "{}",
        earlier.log()
    );
    assert_ne!(ping_pid(&socket), earlier_pid);
    // The earlier daemon did not remove the service manager's socket file on its way out.
    assert!(socket.exists());
}

#[test]
fn unusable_activation_sockets_are_refused_with_the_fix() {
    let dir = private_dir();
    let config = dir.path().join("config.toml");
    write_private(&config, "");
    // fd 3 passed as systemd would pass it, but it is not a socket / there are two.
    for (fds, expected) in [("1", "not a socket"), ("2", "2 sockets were passed")] {
        let script = format!(
            "exec 3</dev/null 4</dev/null; exec env LISTEN_FDS={fds} LISTEN_PID=$$ '{}' --config '{}' --socket '{}'",
            bin("tokend").display(),
            config.display(),
            dir.path().join("t.sock").display()
        );
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let status = wait_bounded(&mut child);
        let mut log = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut log).unwrap();
        assert_eq!(status.code(), Some(1), "{log}");
        assert!(
            log.contains("cannot use the socket passed by the service manager")
                && log.contains(expected),
            "{log}"
        );
    }
}
