//! Processes the bench starts and watches: a [`ChildGuard`] stops what it started, even on a
//! panic; CPU affinity (the same-CPU rows pin everything to one CPU) and what `/proc` says of a
//! process (its threads, CPU time, resident memory).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Resource, Rlimit, Signal};
use rustix::thread::CpuSet;

use crate::PROCESS_WAIT;

// ---------------------------------------------------------------------------------------------
// Processes

/// A server process we started: stopped on drop (SIGTERM, bounded wait, then SIGKILL), so a
/// panic anywhere in the bench leaves nothing running.
#[derive(Debug)]
pub(crate) struct ChildGuard {
    pub(crate) name: &'static str,
    pub(crate) child: Child,
}

impl ChildGuard {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, wait up to [`PROCESS_WAIT`], then SIGKILL. `None` if it had already been reaped.
    pub(crate) fn stop(&mut self) -> Option<ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        signal(self.pid(), Signal::TERM);
        let deadline = Instant::now() + PROCESS_WAIT;
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(_) => break,
            }
        }
        eprintln!(
            "{} (pid {}) ignored SIGTERM for {PROCESS_WAIT:?}; killing it",
            self.name,
            self.pid()
        );
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

pub(crate) fn signal(pid: u32, signal: Signal) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

/// A binary next to this executable (`target/release/NAME`).
pub(crate) fn sibling(name: &str) -> PathBuf {
    let dir = bench_exe()
        .parent()
        .expect("directory of the tokend-bench executable")
        .to_owned();
    built(
        dir.join(name),
        "build with `cargo build --release -p tokend-e2e -p tokend-hello && cargo build --release \
         -p tokend -p tokend-client` first",
    )
}

/// The target triple of the static builds: `tok` as the Debian package ships it, and `hello`
/// built the same way.
pub(crate) const STATIC_TARGET: &str = "x86_64-unknown-linux-musl";

/// A binary of the static build of this executable's profile, in the same target directory
/// (`target/x86_64-unknown-linux-musl/release/NAME` beside `target/release/tokend-bench`;
/// `debug` for CI's smoke run of the test step's build).
pub(crate) fn static_sibling(name: &str) -> PathBuf {
    let exe = bench_exe();
    let profile_dir = exe
        .parent()
        .expect("directory of the tokend-bench executable");
    let target = profile_dir
        .parent()
        .expect("target directory of the tokend-bench executable");
    let profile = profile_dir.file_name().unwrap_or_default();
    // The static build the hint asks for is of this bench's own profile.
    let release = if profile == "release" {
        "--release "
    } else {
        ""
    };
    built(
        target.join(STATIC_TARGET).join(profile).join(name),
        &format!(
            "build the static tok and hello with `cargo build {release}--target {STATIC_TARGET} \
             -p tokend-client -p tokend-hello --bins` first (needs `rustup target add \
             {STATIC_TARGET}` and Debian's musl-tools)"
        ),
    )
}

fn bench_exe() -> PathBuf {
    std::env::current_exe().expect("path of the tokend-bench executable")
}

/// `path`, which must be a built binary; otherwise the bench stops with `how_to_build`.
fn built(path: PathBuf, how_to_build: &str) -> PathBuf {
    assert!(
        path.is_file(),
        "{} is missing: {how_to_build}",
        path.display()
    );
    path
}

/// Spawns `command` with stdout piped, pins it to `pin` right away, and waits (bounded) for its
/// `READY` line. `log` is shown if it does not become ready.
pub(crate) fn spawn_ready(
    name: &'static str,
    command: &mut Command,
    pin: &CpuSet,
    log: Option<&Path>,
) -> ChildGuard {
    command.stdin(Stdio::null()).stdout(Stdio::piped());
    let child = command
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start {name}: {err}"));
    let mut guard = ChildGuard { name, child };
    // Pin the main thread before it can start others (threads inherit the mask); the whole
    // process is pinned again once it is ready, in case it started threads meanwhile.
    set_process_affinity(guard.pid(), pin);
    let stdout = guard.child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(PROCESS_WAIT).unwrap_or_default();
    if line.trim() != tokend_protocol::endpoint::READY_LINE {
        let shown = log
            .and_then(|path| std::fs::read_to_string(path).ok())
            .unwrap_or_default();
        drop(guard);
        panic!("{name} did not print READY within {PROCESS_WAIT:?} (got {line:?}); log:\n{shown}");
    }
    set_process_affinity(guard.pid(), pin);
    guard
}

// ---------------------------------------------------------------------------------------------
// CPU affinity and /proc

/// `tokend --config CONFIG --socket SOCKET --notify-ready` with `env`, its data directory and
/// log beside the config, logging warnings only, pinned to `pin`; returns once it is ready.
pub(crate) fn spawn_tokend(
    config: &Path,
    socket: &Path,
    env: &[(&str, &str)],
    pin: &CpuSet,
) -> ChildGuard {
    let log = config.with_file_name("tokend.log");
    let mut command = Command::new(sibling("tokend"));
    command
        .arg("--config")
        .arg(config)
        .arg("--socket")
        .arg(socket)
        .arg("--notify-ready")
        .env("TOKEND_DATA", config.with_file_name("data"))
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stderr(std::fs::File::create(&log).expect("tokend log file"));
    spawn_ready("tokend", &mut command, pin, Some(&log))
}

pub(crate) fn cpuset(cpus: &[usize]) -> CpuSet {
    let mut set = CpuSet::new();
    for &cpu in cpus {
        set.set(cpu);
    }
    set
}

pub(crate) fn cpus_of(set: &CpuSet) -> Vec<usize> {
    (0..CpuSet::MAX_CPU)
        .filter(|&cpu| set.is_set(cpu))
        .collect()
}

pub(crate) fn pin_current_thread(set: &CpuSet) {
    rustix::thread::sched_setaffinity(None, set).expect("sched_setaffinity on the client thread");
}

/// Thread ids of a process (`/proc/PID/task`).
pub(crate) fn tasks(pid: u32) -> Vec<u32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|dir| {
            dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Sets the affinity of every thread of `pid` (`sched_setaffinity` acts on one thread).
pub(crate) fn set_process_affinity(pid: u32, set: &CpuSet) {
    for tid in tasks(pid) {
        if let Some(tid) = i32::try_from(tid).ok().and_then(Pid::from_raw) {
            // A thread may exit between listing and setting: ignore ESRCH.
            let _ = rustix::thread::sched_setaffinity(Some(tid), set);
        }
    }
}

/// On-CPU nanoseconds of all threads of `pid` so far.
pub(crate) fn cpu_ns(pid: u32) -> u64 {
    tasks(pid)
        .iter()
        .filter_map(|tid| {
            let text = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/schedstat")).ok()?;
            text.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum()
}

/// Raises this process's soft `RLIMIT_NOFILE` to the hard limit (best effort). Returns the soft
/// limit in force afterwards; `None` means unlimited.
pub(crate) fn raise_open_file_limit() -> Option<u64> {
    let limit = rustix::process::getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if rustix::process::setrlimit(Resource::Nofile, raised).is_ok() {
            return limit.maximum;
        }
    }
    limit.current
}

/// A `Vm…:` field of `/proc/PID/status`, in KiB.
pub(crate) fn vm_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|err| panic!("read /proc/{pid}/status: {err}"));
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Rss {
    pub(crate) rss_kib: u64,
    pub(crate) hwm_kib: u64,
}

pub(crate) fn rss(pid: u32) -> Rss {
    Rss {
        rss_kib: vm_kib(pid, "VmRSS"),
        hwm_kib: vm_kib(pid, "VmHWM"),
    }
}
