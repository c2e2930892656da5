//! What a user would run instead, measured by the same harness as tokend: a private
//! `redis-server` answering `GET` of a value as large as tokend's token response over a Unix
//! socket (the in-process peer of rows a and b), and git's credential cache answering `git
//! credential-cache get` (the whole-process peer of row c).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::thread::CpuSet;

use crate::clients::RoundTrip;
use crate::process::{ChildGuard, set_process_affinity};
use crate::{IO_TIMEOUT, PROCESS_WAIT};

/// The key the bench stores and gets.
const KEY: &str = "token";

/// A private `redis-server` on a Unix socket, no persistence; stopped on drop.
#[derive(Debug)]
pub(crate) struct Redis {
    pub(crate) guard: ChildGuard,
    pub(crate) socket: PathBuf,
}

impl Redis {
    /// Starts `redis-server` in `dir` with `value_len` bytes under [`KEY`], pinned to `pin`;
    /// `None` when `redis-server` is not installed.
    pub(crate) fn start(dir: &Path, value_len: usize, pin: &CpuSet) -> Option<Self> {
        let socket = dir.join("redis.sock");
        let child = Command::new("redis-server")
            .args(["--port", "0", "--unixsocketperm", "700", "--save", ""])
            .args(["--appendonly", "no", "--protected-mode", "no"])
            .arg("--unixsocket")
            .arg(&socket)
            .arg("--dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let guard = ChildGuard {
            name: "redis-server",
            child,
        };
        set_process_affinity(guard.pid(), pin);
        let deadline = Instant::now() + PROCESS_WAIT;
        let redis = Self { guard, socket };
        let value = "v".repeat(value_len);
        loop {
            match redis.command(&["SET", KEY, &value]) {
                Ok(answer) if answer.starts_with(b"+OK") => break,
                _ if Instant::now() > deadline => {
                    panic!("redis-server did not answer on {}", redis.socket.display())
                }
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        Some(redis)
    }

    /// One command on a new connection; its raw answer.
    fn command(&self, args: &[&str]) -> std::io::Result<Vec<u8>> {
        let mut stream = UnixStream::connect(&self.socket)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.write_all(&resp(args))?;
        let mut answer = vec![0u8; 512];
        let read = stream.read(&mut answer)?;
        answer.truncate(read);
        Ok(answer)
    }
}

/// A RESP array of bulk strings.
fn resp(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
    }
    out
}

/// `GET token` on one persistent connection, reading the bulk string answer whole.
pub(crate) struct RedisClient {
    stream: UnixStream,
    request: Vec<u8>,
    answer: Vec<u8>,
    value_len: usize,
}

impl RedisClient {
    pub(crate) fn connect(redis: &Redis, value_len: usize) -> Result<Self, String> {
        let stream = UnixStream::connect(&redis.socket).map_err(|err| format!("connect: {err}"))?;
        stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .map_err(|err| format!("socket timeout: {err}"))?;
        let header = format!("${value_len}\r\n").len();
        Ok(Self {
            stream,
            request: resp(&["GET", KEY]),
            answer: vec![0; header + value_len + 2],
            value_len,
        })
    }
}

impl RoundTrip for RedisClient {
    fn round_trip(&mut self) -> Result<(), String> {
        self.stream
            .write_all(&self.request)
            .map_err(|err| format!("redis write: {err}"))?;
        self.stream
            .read_exact(&mut self.answer)
            .map_err(|err| format!("redis read: {err}"))?;
        if !self
            .answer
            .starts_with(format!("${}\r\n", self.value_len).as_bytes())
        {
            return Err("redis answered something else than the value".to_owned());
        }
        std::hint::black_box(&self.answer);
        Ok(())
    }
}

/// git's credential cache holding one credential (`password` = a token of `token_len` bytes)
/// for `https://bench.example`, its daemon on a socket in `dir`.
#[derive(Debug)]
pub(crate) struct GitCache {
    socket: PathBuf,
}

impl GitCache {
    /// Stores the credential (which starts git's cache daemon); `None` when git is missing.
    pub(crate) fn start(dir: &Path, token: &str) -> Option<Self> {
        let socket = dir.join("git-cache").join("socket");
        let cache = Self { socket };
        let mut store = cache.command("store");
        let mut child = store.stdin(Stdio::piped()).spawn().ok()?;
        let mut stdin = child.stdin.take()?;
        let _ = write!(
            stdin,
            "protocol=https\nhost=bench.example\nusername=bench\npassword={token}\n\n"
        );
        drop(stdin);
        child.wait().ok()?.success().then_some(cache)
    }

    /// `git credential-cache --socket S ACTION`, quiet, stdin to be given.
    pub(crate) fn command(&self, action: &str) -> Command {
        let mut command = Command::new("git");
        command
            .args(["credential-cache", "--timeout", "3600", "--socket"])
            .arg(&self.socket)
            .arg(action)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    }

    /// The input of a `get`.
    pub(crate) fn get_input() -> &'static [u8] {
        b"protocol=https\nhost=bench.example\n\n"
    }

    /// Asks the cache daemon to exit.
    pub(crate) fn stop(&self) {
        let _ = self.command("exit").stdin(Stdio::null()).status();
    }
}

impl Drop for GitCache {
    fn drop(&mut self) {
        self.stop();
    }
}
