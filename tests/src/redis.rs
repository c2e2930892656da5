//! A real `redis-server` (the Debian package, installed by `.ci/run`) on a loopback port of its
//! own, with no persistence, in a private directory; stopped when dropped. Also Sentinel
//! processes (`redis-server --sentinel`) and TLS (certificates made with the `openssl` CLI).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::{PROCESS_WAIT, private_dir, signal};

/// A free loopback port (a race with other processes is possible but harmless here: the server
/// would fail to start and the test say so).
#[must_use]
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A running Redis.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    /// Extra arguments (kept for restarts).
    args: Vec<String>,
    /// `redis-cli` arguments that authenticate and reach it (TLS, the admin password).
    cli_args: Vec<String>,
    /// Its port speaks TLS only.
    tls: bool,
}

impl RedisServer {
    /// A plain server on a free port.
    #[must_use]
    pub fn start() -> Self {
        Self::start_with(&[], &[])
    }

    /// A server with extra `redis-server` arguments; `cli_args` are what `redis-cli` needs to
    /// talk to it.
    #[must_use]
    pub fn start_with(args: &[&str], cli_args: &[&str]) -> Self {
        let mut server = Self {
            child: None,
            port: free_port(),
            dir: private_dir(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            cli_args: cli_args.iter().map(|a| (*a).to_owned()).collect(),
            tls: false,
        };
        server.spawn();
        server
    }

    /// A server that speaks only TLS, with a certificate for 127.0.0.1 signed by the CA in
    /// `certs` (see [`make_certificates`]).
    #[must_use]
    pub fn start_tls(certs: &Path) -> Self {
        let file = |name: &str| certs.join(name).display().to_string();
        let mut server = Self {
            child: None,
            port: free_port(),
            dir: private_dir(),
            args: vec![
                "--tls-cert-file".into(),
                file("server.pem"),
                "--tls-key-file".into(),
                file("server.key"),
                "--tls-ca-cert-file".into(),
                file("ca.pem"),
                "--tls-auth-clients".into(),
                "no".into(),
            ],
            cli_args: vec!["--tls".into(), "--cacert".into(), file("ca.pem")],
            tls: true,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let mut command = Command::new(redis_server());
        command
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--save")
            .arg("")
            .arg("--appendonly")
            .arg("no")
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--protected-mode")
            .arg("no");
        if self.tls {
            command
                .arg("--port")
                .arg("0")
                .arg("--tls-port")
                .arg(self.port.to_string());
        } else {
            command.arg("--port").arg(self.port.to_string());
        }
        command.args(&self.args);
        let log = std::fs::File::create(self.dir.path().join("redis.log")).expect("log");
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        self.child = Some(command.spawn().expect("spawn redis-server"));
        let deadline = Instant::now() + PROCESS_WAIT;
        loop {
            if self.cli(&["PING"]).stdout.starts_with(b"PONG") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The port it listens on.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/0` (`rediss://` for a TLS server).
    #[must_use]
    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}/0", self.port)
    }

    /// Runs `redis-cli` against it.
    #[must_use]
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new("redis-cli")
            .arg("-h")
            .arg("127.0.0.1")
            .arg("-p")
            .arg(self.port.to_string())
            .args(&self.cli_args)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli")
    }

    /// The keys it holds matching `pattern`.
    #[must_use]
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        String::from_utf8_lossy(&self.cli(&["--raw", "KEYS", pattern]).stdout)
            .lines()
            .filter(|line| !line.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Its log so far.
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    /// The directory it runs in (for config files next to it).
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Freezes it (SIGSTOP): connections stay open, nothing answers.
    pub fn pause(&self) {
        signal(self.pid(), rustix::process::Signal::STOP);
    }

    /// Thaws it (SIGCONT).
    pub fn resume(&self) {
        signal(self.pid(), rustix::process::Signal::CONT);
    }

    /// Stops it (SIGKILL; no persistence, so it comes back empty).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_ref() {
            // A paused server would not die of SIGTERM.
            signal(child.id(), rustix::process::Signal::CONT);
        }
        self.stop();
    }
}

/// The `redis-server` binary, or a clear failure: `.ci/run` installs the Debian package.
fn redis_server() -> PathBuf {
    let path = PathBuf::from("/usr/bin/redis-server");
    assert!(
        path.is_file() || which("redis-server").is_some(),
        "redis-server is missing: install the Debian package redis-server (.ci/run does)"
    );
    which("redis-server").unwrap_or(path)
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|path| path.is_file())
    })
}

/// A CA and a server certificate for `127.0.0.1`, made with the `openssl` CLI in `dir`:
/// `ca.pem`, `server.pem`, `server.key`.
pub fn make_certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=tokend test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .expect("write ext");
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.pem",
    ]);
}

/// A Sentinel (`redis-server CONF --sentinel`) watching the primary at `primary_port` as
/// `mymaster`, with a quorum of `quorum`; fast failover timings for tests.
#[derive(Debug)]
pub struct Sentinel {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl Sentinel {
    /// Starts one and waits until it answers.
    #[must_use]
    pub fn start(primary_port: u16, quorum: u32) -> Self {
        let dir = private_dir();
        let port = free_port();
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {}\n\
                 sentinel monitor mymaster 127.0.0.1 {primary_port} {quorum}\n\
                 sentinel down-after-milliseconds mymaster 1000\n\
                 sentinel failover-timeout mymaster 5000\n\
                 sentinel parallel-syncs mymaster 1\n",
                dir.path().display()
            ),
        )
        .expect("write sentinel.conf");
        let log = std::fs::File::create(dir.path().join("sentinel.log")).expect("log");
        let child = Command::new(redis_server())
            .arg(&conf)
            .arg("--sentinel")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn sentinel");
        let sentinel = Self {
            child: Some(child),
            port,
            dir,
        };
        let deadline = Instant::now() + PROCESS_WAIT;
        while !sentinel.cli(&["PING"]).stdout.starts_with(b"PONG") {
            assert!(
                Instant::now() < deadline,
                "sentinel did not start: {}",
                sentinel.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        sentinel
    }

    /// Its port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs `redis-cli` against it.
    #[must_use]
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new("redis-cli")
            .arg("-h")
            .arg("127.0.0.1")
            .arg("-p")
            .arg(self.port.to_string())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli")
    }

    /// The port of the primary it names now.
    #[must_use]
    pub fn primary_port(&self) -> Option<u16> {
        let out = self.cli(&["--raw", "SENTINEL", "get-master-addr-by-name", "mymaster"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|port| port.trim().parse().ok())
    }

    /// Its log.
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sentinel.log")).unwrap_or_default()
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
