//! Starting `tokend` when no daemon answers.
//!
//! 1. The caller found nobody listening and auto-start is allowed (`TOKEND_NO_AUTOSTART` unset).
//! 2. Take the clients' startup lock (`<endpoint>.startup.lock`), so parallel callers start one
//!    daemon; the caller probes again under the lock, since another caller may have won.
//! 3. Spawn `tokend --socket <endpoint> --notify-ready` (binary: `TOKEND_BIN`, else next to the
//!    current executable, else `PATH`) in its own process group (on Windows also detached: no
//!    console window), stdin closed, stderr appended to `<endpoint>.log`, stdout a pipe.
//! 4. Wait for the daemon's readiness line on that pipe (written after it listens), bounded by a
//!    timeout. End of file instead means the daemon exited: report its exit status and last log
//!    lines. No polling of the socket.
//!
//! Stale socket files are the daemon's business: it replaces them under its own lock.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokend_protocol::Endpoint;
use tokend_protocol::endpoint::READY_LINE;
use tokend_protocol::private::{self, Locked};

use crate::error::Error;

/// Environment variable naming the daemon binary to start.
pub const BIN_ENV: &str = "TOKEND_BIN";
/// Environment variable that turns auto-start off when set to `1`.
pub const NO_AUTOSTART_ENV: &str = "TOKEND_NO_AUTOSTART";

/// Whether the environment forbids auto-start.
#[must_use]
pub fn disabled_by_env() -> bool {
    std::env::var_os(NO_AUTOSTART_ENV).is_some_and(|value| value == "1")
}

/// The next step when no daemon runs and auto-start is off, naming the switch that turned it off.
pub(crate) fn off_hint() -> &'static str {
    if disabled_by_env() {
        "; auto-start is off (TOKEND_NO_AUTOSTART=1): start `tokend` yourself"
    } else {
        "; auto-start is disabled for this client: start `tokend` yourself"
    }
}

/// Held while this process starts a daemon; released on drop.
#[derive(Debug)]
pub(crate) struct StartupLock {
    _file: File,
}

impl StartupLock {
    /// Waits (at most `timeout`) until this process holds the endpoint's startup lock.
    pub(crate) fn acquire(endpoint: &Endpoint, timeout: Duration) -> Result<Self, Error> {
        let fail = |what: &str, err: std::io::Error| Error::StartFailed {
            program: "tokend".into(),
            reason: format!("{what}: {err}"),
            log: None,
            config_error: false,
        };
        let dir = endpoint.dir();
        private::create_dir(dir)
            .map_err(|err| fail(&format!("cannot create {}", dir.display()), err))?;
        // The daemon checks this directory too, but only after we have written into it.
        let unsafe_reason = private::check_dir(dir)
            .map_err(|err| fail(&format!("cannot inspect {}", dir.display()), err))?;
        if let Some(reason) = unsafe_reason {
            return Err(Error::StartFailed {
                program: "tokend".into(),
                reason: format!(
                    "refusing to use socket directory {}: {reason}",
                    dir.display()
                ),
                log: None,
                config_error: false,
            });
        }
        let path = endpoint.startup_lock_path();
        // Another caller holds it while it starts the daemon; bounded, so a stuck caller cannot
        // hang every other one.
        // The holder may take up to its own start-up timeout, plus the time to spawn.
        let deadline = Instant::now() + timeout + Duration::from_secs(5);
        loop {
            match private::lock(&path) {
                Ok(Locked::Held(file)) => return Ok(Self { _file: file }),
                Ok(Locked::Busy(_)) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Ok(Locked::Busy(_)) => {
                    return Err(fail(
                        &format!(
                            "another process held {} for {} s",
                            path.display(),
                            timeout.as_secs()
                        ),
                        std::io::ErrorKind::TimedOut.into(),
                    ));
                }
                Err(err) => {
                    return Err(fail(&format!("cannot lock {}", path.display()), err));
                }
            }
        }
    }
}

/// The daemon binary to start: `TOKEND_BIN`, else a `tokend` next to the current executable,
/// else `tokend` from `PATH`.
#[must_use]
pub fn daemon_program(explicit: Option<&Path>) -> PathBuf {
    if let Some(path) = explicit {
        return path.to_path_buf();
    }
    if let Some(path) = std::env::var_os(BIN_ENV).filter(|value| !value.is_empty()) {
        return PathBuf::from(path);
    }
    let file_name = format!("tokend{}", std::env::consts::EXE_SUFFIX);
    if let Some(sibling) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(&file_name)))
        .filter(|candidate| candidate.is_file())
    {
        return sibling;
    }
    PathBuf::from(file_name)
}

/// Spawns the daemon for `endpoint` and waits until it is ready (or has failed).
pub(crate) fn spawn_and_wait(
    endpoint: &Endpoint,
    program: &Path,
    timeout: Duration,
) -> Result<(), Error> {
    let shown = program.display().to_string();
    let log_path = endpoint.log_path();
    let fail = |reason: String, log: Option<PathBuf>, config_error: bool| Error::StartFailed {
        program: shown.clone(),
        reason,
        log,
        config_error,
    };
    let mut log = private::file_options()
        .append(true)
        .open(&log_path)
        .map_err(|err| {
            fail(
                format!("cannot open the log file {}: {err}", log_path.display()),
                None,
                false,
            )
        })?;
    let log_start = log.seek(SeekFrom::End(0)).unwrap_or(0);

    let mut command = Command::new(program);
    command
        .arg("--socket")
        .arg(OsString::from(endpoint.socket()))
        .arg("--notify-ready")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log));
    // Its own process group: a Ctrl-C in the shell that started it must not stop the daemon.
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    // Windows: no console at all (no window pops up, and closing the terminal that started it
    // does not end it), and its own process group so a Ctrl-C there never reaches it.
    #[cfg(windows)]
    {
        const DETACHED_PROCESS: u32 = 0x0000_0008;
        const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;
        std::os::windows::process::CommandExt::creation_flags(
            &mut command,
            DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP,
        );
    }
    // Windows hands every inheritable handle to a new process: keep our own stdin, stdout and
    // stderr out of the daemon, or a caller reading our output would wait for the daemon's end.
    #[cfg(windows)]
    let _kept_out = StdHandlesNotInherited::new();
    let mut child = command.spawn().map_err(|err| {
        let hint = if err.kind() == std::io::ErrorKind::NotFound {
            format!("{err}; install tokend next to this program or on PATH, or set {BIN_ENV}")
        } else {
            err.to_string()
        };
        fail(hint, None, false)
    })?;

    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| fail("no stdout pipe".into(), None, false))?;
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let outcome = BufReader::new(stdout).read_line(&mut line).map(|_| line);
        let _ = sender.send(outcome);
    });
    match receiver.recv_timeout(timeout) {
        Ok(Ok(line)) if line.trim_end() == READY_LINE => Ok(()),
        Ok(_) => {
            // End of file (or garbage): the daemon exited or is not tokend. Wait for its exit
            // status only briefly: something that printed garbage may not exit at all.
            let deadline = Instant::now() + Duration::from_secs(2);
            let status = loop {
                match child.try_wait() {
                    Ok(Some(status)) => break Some(status),
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    _ => break None,
                }
            };
            let config_error = status.and_then(|s| s.code()) == Some(2);
            let exit = status.map_or_else(|| "unknown status".to_owned(), |s| s.to_string());
            let tail = log_tail(&log_path, log_start);
            Err(fail(
                format!("it exited during start-up ({exit}){tail}"),
                Some(log_path),
                config_error,
            ))
        }
        Err(_) => Err(fail(
            format!("it did not report ready within {} s", timeout.as_secs()),
            Some(log_path),
            false,
        )),
    }
}

/// Windows: this process's standard handles made non-inheritable for as long as it lives, then
/// restored (a host application may start other programs that inherit them).
#[cfg(windows)]
struct StdHandlesNotInherited {
    /// Which of stdin (0), stdout (1), stderr (2) to make inheritable again.
    restore: Vec<u8>,
}

#[cfg(windows)]
impl StdHandlesNotInherited {
    fn new() -> Self {
        use tokend_protocol::win32;
        let restore = (0..3)
            .filter(|&index| {
                // A missing standard handle (no console) reads as an error: left alone.
                with_std_handle(index, |handle| {
                    win32::is_inheritable(handle).unwrap_or(false)
                        && win32::set_inheritable(handle, false).is_ok()
                })
            })
            .collect();
        Self { restore }
    }
}

#[cfg(windows)]
impl Drop for StdHandlesNotInherited {
    fn drop(&mut self) {
        for &index in &self.restore {
            with_std_handle(index, |handle| {
                let _ = tokend_protocol::win32::set_inheritable(handle, true);
            });
        }
    }
}

/// Runs `f` on this process's stdin (0), stdout (1) or stderr (2) handle.
#[cfg(windows)]
fn with_std_handle<R>(
    index: u8,
    f: impl FnOnce(std::os::windows::io::BorrowedHandle<'_>) -> R,
) -> R {
    use std::os::windows::io::AsHandle as _;
    match index {
        0 => f(std::io::stdin().as_handle()),
        1 => f(std::io::stdout().as_handle()),
        _ => f(std::io::stderr().as_handle()),
    }
}

/// The last few lines the daemon logged since `start`, for the error message.
fn log_tail(path: &Path, start: u64) -> String {
    let Ok(mut file) = File::open(path) else {
        return String::new();
    };
    if file.seek(SeekFrom::Start(start)).is_err() {
        return String::new();
    }
    let mut text = String::new();
    // The log holds no secrets (the daemon never logs them); cap what we read anyway.
    let _ = file.take(16 * 1024).read_to_string(&mut text);
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    if lines.is_empty() {
        return String::new();
    }
    let shown = &lines[lines.len().saturating_sub(5)..];
    format!(":\n  {}", shown.join("\n  "))
}

#[cfg(all(test, windows))]
mod tests {
    use super::*;
    use tokend_protocol::win32;

    /// While a daemon is spawned our standard handles are not inheritable; afterwards they are
    /// as they were.
    #[test]
    fn standard_handles_are_kept_out_of_the_daemon_and_restored() {
        let stdout_inheritable = || with_std_handle(1, win32::is_inheritable);
        let Ok(before) = stdout_inheritable() else {
            // No standard output handle in this test process: nothing to keep out.
            return;
        };
        with_std_handle(1, |handle| win32::set_inheritable(handle, true)).unwrap();
        {
            let _kept_out = StdHandlesNotInherited::new();
            assert!(!stdout_inheritable().unwrap());
        }
        assert!(stdout_inheritable().unwrap());
        with_std_handle(1, |handle| win32::set_inheritable(handle, before)).unwrap();
    }
}
