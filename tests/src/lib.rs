//! Shared fixtures for the end-to-end tests: the real `tokend` and `tok` binaries on a real
//! socket in a short, private temporary directory (on Windows: a named pipe of a unique name,
//! and a private temporary directory for the config and logs).
//!
//! Every daemon a test starts is stopped when its [`Daemon`] drops (SIGTERM, then SIGKILL after a
//! bounded wait; on Windows a stop request over the pipe, then a kill), so no test leaves
//! processes behind. [`oidc`] runs the real OAuth 2.0 server.
//!
//! The same fixtures build for Windows (`x86_64-pc-windows-gnu`), where the tests that make
//! sense there run under Wine (`.ci/run`, `tests/wine/run`); [`redis`] and the helpers that send
//! Unix signals or write shell scripts are Unix-only.
//!
//! Every daemon logs at trace level, and its log is checked for fixture secrets before a restart
//! and when the [`Daemon`] drops: the values the test handed it in its environment (secret
//! references read them) and the OAuth test clients' secrets must never appear in it.

pub mod http_upstream;
pub mod oidc;
#[cfg(unix)]
pub mod redis;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokend_client::{Client, Endpoint};

/// How long a test waits for a daemon to become ready or to exit.
pub const PROCESS_WAIT: Duration = Duration::from_secs(15);

/// Path of a binary built from this workspace (`tokend`, `tok`), next to the test executable's
/// `deps/` directory. Cargo builds every workspace binary before it runs the tests.
#[must_use]
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory");
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} is missing: run the tests with `cargo test --workspace`",
        path.display()
    );
    path
}

/// A short private directory (0700) for one test's socket, config and logs. Unix socket paths
/// must stay short, so this lives directly under /tmp rather than under `target/`. On Windows:
/// a new directory in the user's temp directory (private to the user there).
#[must_use]
pub fn private_dir() -> tempfile::TempDir {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tempfile::Builder::new()
            .prefix("tkd")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in("/tmp")
            .expect("temp dir")
    }
    #[cfg(not(unix))]
    tempfile::Builder::new()
        .prefix("tkd")
        .tempdir()
        .expect("temp dir")
}

/// The endpoint of a test daemon whose files live in `dir`: `dir/tokend.sock` on Unix, a pipe
/// named after the (unique) directory on Windows.
#[must_use]
pub fn test_socket(dir: &Path) -> PathBuf {
    if cfg!(unix) {
        dir.join("tokend.sock")
    } else {
        let unique = dir.file_name().expect("a directory name").to_string_lossy();
        PathBuf::from(format!("tokend-test-{unique}"))
    }
}

/// A raw connection to the endpoint `socket` (a Unix socket or a named pipe), for the tests
/// that speak bytes. On Unix a read that hangs fails after 10 s; named pipes have no read
/// timeouts, so there the daemon's own timeouts bound the test.
#[must_use]
pub fn raw_connect(socket: &Path) -> interprocess::local_socket::Stream {
    use interprocess::local_socket::ConnectOptions;
    use interprocess::local_socket::traits::Stream as _;
    let endpoint = Endpoint::from_path(socket);
    let stream = ConnectOptions::new()
        .name(endpoint.to_name().expect("endpoint name"))
        .connect_sync()
        .expect("connect to the endpoint");
    let _ = stream.set_recv_timeout(Some(Duration::from_secs(10)));
    stream
}

/// Listens on the endpoint `socket` as a fake daemon would.
#[must_use]
pub fn raw_listen(socket: &Path) -> interprocess::local_socket::Listener {
    use interprocess::local_socket::ListenerOptions;
    let endpoint = Endpoint::from_path(socket);
    ListenerOptions::new()
        .name(endpoint.to_name().expect("endpoint name"))
        .create_sync()
        .expect("listen on the endpoint")
}

/// Writes `text` to `path` with mode 0600.
pub fn write_private(path: &Path, text: &str) {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .expect("write file");
}

/// A running `tokend` on a private socket.
#[derive(Debug)]
pub struct Daemon {
    child: Option<Child>,
    dir: tempfile::TempDir,
    socket: PathBuf,
    config: PathBuf,
    log: PathBuf,
    /// Extra `tokend` arguments (kept for restarts).
    args: Vec<String>,
    /// A program tokend runs under (`prlimit --nofile=…  --`), if any (kept for restarts).
    wrapper: Vec<String>,
    /// Fixture secret values that must never appear in the log.
    secrets: Vec<String>,
}

/// Environment variables a test passes to the daemon that are not secrets.
const NOT_SECRET_ENV: [&str; 8] = [
    "RUST_LOG",
    "DBUS_SESSION_BUS_ADDRESS",
    "ACCESS_TOKEN_TTL",
    "REFRESH_TOKEN_TTL",
    // Azure workload identity's: ids and a path.
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST",
];

/// Values shorter than this are too common to be searched for (e.g. `1`).
const MIN_SECRET_LEN: usize = 4;

impl Daemon {
    /// Starts `tokend` with `config_toml` and waits until it is ready.
    #[must_use]
    pub fn start(config_toml: &str) -> Self {
        Self::start_with_env(config_toml, &[])
    }

    /// Starts `tokend` with extra environment variables (secret references read them).
    #[must_use]
    pub fn start_with_env(config_toml: &str, env: &[(&str, &str)]) -> Self {
        Self::start_with_args(config_toml, env, &[])
    }

    /// Starts `tokend` with extra environment variables and extra command-line arguments.
    #[must_use]
    pub fn start_with_args(config_toml: &str, env: &[(&str, &str)], args: &[&str]) -> Self {
        Self::start_wrapped(config_toml, env, args, &[])
    }

    /// Starts `tokend` under `wrapper` (a program that then runs it, e.g. `prlimit
    /// --nofile=300:300 --`), with extra environment variables and command-line arguments.
    #[must_use]
    pub fn start_wrapped(
        config_toml: &str,
        env: &[(&str, &str)],
        args: &[&str],
        wrapper: &[&str],
    ) -> Self {
        let dir = private_dir();
        let socket = test_socket(dir.path());
        let config = dir.path().join("config.toml");
        let log = dir.path().join("daemon.log");
        write_private(&config, config_toml);
        let mut daemon = Self {
            child: None,
            dir,
            socket,
            config,
            log,
            args: args.iter().map(|arg| (*arg).to_owned()).collect(),
            wrapper: wrapper.iter().map(|arg| (*arg).to_owned()).collect(),
            secrets: [oidc::SVC_BASIC, oidc::SVC_POST, oidc::APP, oidc::EXCHANGER]
                .iter()
                .map(|client| client.secret.to_owned())
                .collect(),
        };
        daemon.spawn(env);
        daemon
    }

    fn spawn(&mut self, env: &[(&str, &str)]) {
        // A restart truncates the log: check what the previous run wrote first.
        self.assert_no_secret_logged();
        for (key, value) in env {
            if !NOT_SECRET_ENV.contains(key)
                && !key.starts_with("TOKEND_")
                && value.len() >= MIN_SECRET_LEN
                && !self.secrets.iter().any(|known| known == value)
            {
                self.secrets.push((*value).to_owned());
            }
        }
        let log = std::fs::File::create(&self.log).expect("log file");
        let mut command = match self.wrapper.split_first() {
            Some((program, wrapper_args)) => {
                let mut command = Command::new(program);
                command.args(wrapper_args).arg(bin("tokend"));
                command
            }
            None => Command::new(bin("tokend")),
        };
        command
            .arg("--config")
            .arg(&self.config)
            .arg("--socket")
            .arg(&self.socket)
            .arg("--notify-ready")
            .args(&self.args)
            .env("RUST_LOG", "trace")
            .env("TOKEND_DATA", self.dir.path().join("data"))
            .env_remove("TOKEND_SOCKET")
            .env_remove("TOKEND_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn tokend");
        let stdout = child.stdout.take().expect("stdout pipe");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(PROCESS_WAIT).unwrap_or_default();
        self.child = Some(child);
        assert_eq!(
            line.trim(),
            "READY",
            "tokend did not become ready; log:\n{}",
            self.log()
        );
    }

    /// Restarts the daemon on the same socket and config (after [`Daemon::kill`] or a stop).
    pub fn restart(&mut self, env: &[(&str, &str)]) {
        self.spawn(env);
    }

    /// Panics if a fixture secret value appears in the daemon's log so far.
    pub fn assert_no_secret_logged(&self) {
        let log = self.log();
        for (index, secret) in self.secrets.iter().enumerate() {
            // The value itself is not printed: the assertion names which fixture leaked.
            assert!(
                !log.contains(secret.as_str()),
                "fixture secret #{index} (of {}) appears in the daemon log {}",
                self.secrets.len(),
                self.log.display()
            );
        }
    }

    /// The private directory holding socket, config and log.
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The data directory (`TOKEND_DATA`) the daemon keeps its store in, unless a test's
    /// environment overrides it.
    #[must_use]
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The socket path.
    #[must_use]
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The daemon's process id.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// The endpoint, for the client library.
    #[must_use]
    pub fn endpoint(&self) -> Endpoint {
        Endpoint::from_path(&self.socket)
    }

    /// A library client for this daemon that never auto-starts another one.
    #[must_use]
    pub fn client(&self) -> Client {
        Client::builder()
            .endpoint(self.endpoint())
            .autostart(false)
            .timeout(Duration::from_secs(10))
            .build()
    }

    /// Runs `tok ARGS` against this daemon (auto-start off).
    #[must_use]
    pub fn tok(&self, args: &[&str]) -> Output {
        tok_command(&self.socket)
            .args(args)
            .output()
            .expect("run tok")
    }

    /// Everything the daemon logged so far.
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM (Windows: a stop request, as `tok stop` sends) and waits (bounded) for the
    /// exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.ask_to_stop();
        wait_bounded(self.child.as_mut().expect("running"))
    }

    /// SIGTERM on Unix; a `Shutdown` request on Windows, which has no signals to send.
    fn ask_to_stop(&self) {
        let child = self.child.as_ref().expect("running");
        #[cfg(unix)]
        signal(child.id(), rustix::process::Signal::TERM);
        #[cfg(not(unix))]
        {
            let _ = child;
            let _ = self.client().shutdown();
        }
    }

    /// Waits (bounded) for the daemon to exit by itself (after `tok stop`).
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        wait_bounded(self.child.as_mut().expect("running"))
    }

    /// SIGKILL: no cleanup happens (the socket file stays behind, stale).
    pub fn kill(&mut self) {
        let child = self.child.as_mut().expect("running");
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut()
            && matches!(child.try_wait(), Ok(None))
        {
            self.ask_to_stop();
            let child = self.child.as_mut().expect("running");
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        // Not while a test is already failing: a second panic would abort the test binary.
        if !std::thread::panicking() {
            self.assert_no_secret_logged();
        }
    }
}

/// A `tok` command aimed at `socket`, with auto-start off and no inherited overrides.
#[must_use]
pub fn tok_command(socket: &Path) -> Command {
    let mut command = Command::new(bin("tok"));
    command
        .arg("--socket")
        .arg(socket)
        .env("TOKEND_NO_AUTOSTART", "1")
        .env_remove("TOKEND_SOCKET")
        .stdin(Stdio::null());
    command
}

/// Polls `check` every 50 ms for up to `limit`; true as soon as it holds (bounded, so a
/// condition that never comes fails the test instead of hanging it).
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    check()
}

/// Sends a signal to a process we started.
#[cfg(unix)]
pub fn signal(pid: u32, signal: rustix::process::Signal) {
    let pid =
        rustix::process::Pid::from_raw(i32::try_from(pid).expect("pid")).expect("non-zero pid");
    let _ = rustix::process::kill_process(pid, signal);
}

/// Waits for a child with a bound; kills it if the bound passes (and fails the test).
pub fn wait_bounded(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + PROCESS_WAIT;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "process {} did not exit within {PROCESS_WAIT:?}",
                child.id()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A program started with its stdout and stderr going to files rather than pipes, for programs
/// that may start a daemon (auto-start): reading a pipe to its end would wait for the daemon
/// under Wine, which hands a starting process's Unix descriptors down to its children whatever
/// Windows says about inheritance.
#[derive(Debug)]
pub struct Captured {
    child: Child,
    files: tempfile::TempDir,
}

impl Captured {
    /// Starts `command` with stdin closed and its output captured in files.
    #[must_use]
    pub fn spawn(command: &mut Command) -> Self {
        let files = tempfile::tempdir().expect("temp dir for the output");
        let stdout = std::fs::File::create(files.path().join("stdout")).expect("stdout file");
        let stderr = std::fs::File::create(files.path().join("stderr")).expect("stderr file");
        let child = command
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("spawn");
        Self { child, files }
    }

    /// Waits (bounded) for the exit, then reads what it wrote.
    #[must_use]
    pub fn finish(mut self) -> Output {
        let status = wait_bounded(&mut self.child);
        let read = |name: &str| std::fs::read(self.files.path().join(name)).unwrap_or_default();
        Output {
            status,
            stdout: read("stdout"),
            stderr: read("stderr"),
        }
    }
}

/// Runs `command` to its end with [`Captured`] output.
#[must_use]
pub fn output_via_files(command: &mut Command) -> Output {
    Captured::spawn(command).finish()
}

/// stdout of an [`Output`] as text.
#[must_use]
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// stderr of an [`Output`] as text.
#[must_use]
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The exit code of an [`Output`] (-1 when killed by a signal).
#[must_use]
pub fn code(output: &Output) -> i32 {
    output.status.code().unwrap_or(-1)
}

/// Writes a shell script to `path` (mode 0700): a stand-in for a program the code under test
/// runs (a browser, `systemctl`) that records how it was called.
#[cfg(unix)]
pub fn write_script(path: &Path, script: &str) {
    use std::os::unix::fs::PermissionsExt;
    write_private(path, script);
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).expect("chmod script");
}

/// Runs `command` with `input` on its stdin and its output captured, killing it (and failing
/// the test) if it does not exit within [`PROCESS_WAIT`].
#[cfg(unix)]
pub fn run_with_input(command: &mut Command, input: &[u8]) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let mut stdin = child.stdin.take().expect("stdin pipe");
    // A program that exits without reading its input must not fail the test here.
    let _ = stdin.write_all(input);
    drop(stdin);
    let (done, watchdog) = mpsc::channel::<()>();
    let guard = std::thread::spawn(move || {
        let expired = watchdog.recv_timeout(PROCESS_WAIT).is_err();
        if expired {
            signal(pid, rustix::process::Signal::KILL);
        }
        expired
    });
    let output = child.wait_with_output().expect("wait");
    let _ = done.send(());
    assert!(
        !guard.join().expect("watchdog"),
        "process {pid} did not exit within {PROCESS_WAIT:?}"
    );
    output
}
