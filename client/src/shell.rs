//! Shell integration of `tok`: `tok env` (an `export` line), starting a program and reading its
//! exit (`tok exec`, see [`crate::supervise`]), `tok curl` (curl with the provider's header,
//! never in argv), the "waiting for tokend" notice, and `tok completions`.
//!
//! How `tok curl` hands the header to curl: on Unix through an inherited pipe that curl reads as
//! `-H @/dev/fd/N` (curl ≥ 7.55). The header is never in any process's argv, never in a file, and
//! curl's stdin stays the user's (`--data @-`, `-T -` keep working). Elsewhere (Windows) through
//! a header file in the user's temp directory that is removed when curl exits.

use std::ffi::{OsStr, OsString};
use std::io::{IsTerminal, Write};
use std::process::{Command, ExitStatus};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

#[cfg(not(unix))]
use tokend_protocol::private;

use crate::error::exit;
use crate::{Client, Error, GetOptions, Secret, Token};

/// `tok exec` / `tok curl`: the program could not be found (as `env(1)` and POSIX shells do).
const NOT_FOUND: u8 = 127;
/// `tok exec` / `tok curl`: the program was found but could not be started.
const CANNOT_RUN: u8 = 126;

/// A request slower than this shows the "waiting for tokend" notice (on a terminal only).
const NOTICE_AFTER: Duration = Duration::from_secs(1);

/// The environment variable that overrides the curl program of `tok curl`.
const CURL_ENV: &str = "TOK_CURL";

/// A program that `tok exec` or `tok curl` could not start: the message and the exit code.
#[derive(Debug)]
pub(crate) struct RunError {
    pub(crate) message: String,
    pub(crate) code: u8,
}

// ---------------------------------------------------------------------------------------------
// Variable names and quoting

/// clap value parser of `--var`: a portable shell identifier, `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn parse_var(value: &str) -> Result<String, String> {
    let mut chars = value.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(value.to_owned())
    } else {
        Err(format!(
            "`{value}` is not a shell variable name: use letters, digits and `_`, not starting \
             with a digit"
        ))
    }
}

/// `export VAR='TOKEN'` and a newline, single-quoted for any POSIX shell (`'` → `'\''`).
pub(crate) fn export_line(var: &str, token: &Secret) -> Secret {
    let value = token.expose();
    let mut line = String::with_capacity(var.len() + value.len() + 16);
    line.push_str("export ");
    line.push_str(var);
    line.push_str("='");
    for c in value.chars() {
        if c == '\'' {
            line.push_str("'\\''");
        } else {
            line.push(c);
        }
    }
    line.push_str("'\n");
    Secret::new(line)
}

// ---------------------------------------------------------------------------------------------
// The "waiting for tokend" notice

/// [`Client::get_with`], with a one-line notice on stderr if it takes longer than a second and
/// stderr is a terminal. The notice comes from a helper thread that is joined before this returns,
/// so it never interleaves with what the command prints afterwards.
pub(crate) fn fetch(client: &mut Client, name: &str, options: &GetOptions) -> Result<Token, Error> {
    let notice = Notice::start(name);
    let result = client.get_with(name, options);
    notice.finish();
    result
}

/// [`fetch`] of the provider's id_token.
pub(crate) fn fetch_id_token(
    client: &mut Client,
    name: &str,
    options: &GetOptions,
) -> Result<Token, Error> {
    let notice = Notice::start(name);
    let result = client.get_id_token_with(name, options);
    notice.finish();
    result
}

struct Notice {
    done: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Notice {
    fn start(name: &str) -> Self {
        let idle = Self {
            done: None,
            thread: None,
        };
        if !std::io::stderr().is_terminal() {
            return idle;
        }
        // A duplicate of the stderr descriptor: the caller may hold `std::io::stderr()`'s lock
        // for the whole run (the `tok` binary does), so the thread must not take it.
        let Some(mut terminal) = stderr_duplicate() else {
            return idle;
        };
        let (done, wait) = mpsc::channel::<()>();
        let line = format!("tok: waiting for tokend to fetch {name}…\n");
        let thread = std::thread::Builder::new()
            .name("tok-notice".to_owned())
            .spawn(move || {
                // A message or a hang-up means the request finished in time.
                if let Err(mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(NOTICE_AFTER) {
                    let _ = terminal.write_all(line.as_bytes());
                }
            })
            .ok();
        Self {
            done: Some(done),
            thread,
        }
    }

    fn finish(mut self) {
        // The notice thread only waits on the channel and writes one line, so this is quick.
        drop(self.done.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A new handle to this process's stderr (close-on-exec), independent of `std::io::stderr()`'s
/// lock.
fn stderr_duplicate() -> Option<std::fs::File> {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .ok()
            .map(std::fs::File::from)
    }
    #[cfg(windows)]
    {
        use std::os::windows::io::AsHandle;
        std::io::stderr()
            .as_handle()
            .try_clone_to_owned()
            .ok()
            .map(std::fs::File::from)
    }
    #[cfg(not(any(unix, windows)))]
    {
        None
    }
}

// ---------------------------------------------------------------------------------------------
// Running programs

/// `tok curl`: runs curl (`$TOK_CURL`, else `curl` from `PATH`) with the provider's header and
/// `args`, and returns curl's exit code. Providers without a header run curl without `-H`.
pub(crate) fn curl(token: &Token, args: &[OsString]) -> Result<u8, RunError> {
    let program = std::env::var_os(CURL_ENV)
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| OsString::from("curl"));
    let mut command = Command::new(&program);
    // `-q` / `--disable` (skip ~/.curlrc) only works as curl's first argument: keep it first.
    let lead = usize::from(
        args.first()
            .is_some_and(|a| a == OsStr::new("-q") || a == OsStr::new("--disable")),
    );
    command.args(&args[..lead]);
    let Some(header) = &token.header else {
        command.args(&args[lead..]);
        let status = command
            .status()
            .map_err(|err| curl_spawn_error(&program, &err))?;
        return Ok(exit_code(status));
    };
    let line = header.line();
    curl_with_header(command, &program, &line, &args[lead..])
}

/// Unix: the header line goes through a pipe whose read end curl inherits and opens as
/// `/dev/fd/N`. Nothing touches the disk and nothing is left behind, even if tok is killed.
#[cfg(unix)]
fn curl_with_header(
    mut command: Command,
    program: &OsStr,
    line: &Secret,
    args: &[OsString],
) -> Result<u8, RunError> {
    use std::os::fd::AsRawFd;

    let io_error = |what: &str, err: &std::io::Error| RunError {
        message: format!("cannot pass the header to curl ({what}): {err}"),
        code: exit::OTHER,
    };
    let (reader, mut writer) = std::io::pipe().map_err(|err| io_error("pipe", &err))?;
    let reader = inheritable(reader.into()).map_err(|err| io_error("fcntl", &err))?;
    command
        .arg("-H")
        .arg(format!("@/dev/fd/{}", reader.as_raw_fd()))
        .args(args);
    let child = command.spawn();
    // Close our read end at once, so a curl that exits without reading makes the write fail
    // (EPIPE) instead of blocking.
    drop(reader);
    let mut child = child.map_err(|err| curl_spawn_error(program, &err))?;
    // curl reads `-H @file` while parsing its arguments, before it connects anywhere.
    let _ = writer
        .write_all(line.expose().as_bytes())
        .and_then(|()| writer.write_all(b"\n"));
    drop(writer);
    let status = child.wait().map_err(|err| io_error("wait", &err))?;
    Ok(exit_code(status))
}

/// The pipe's read end as a descriptor ≥ 3 (stdio is set up over 0–2) without close-on-exec,
/// so the child inherits it. tok spawns nothing else while it is open.
#[cfg(unix)]
fn inheritable(fd: std::os::fd::OwnedFd) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::AsRawFd;

    let fd = if fd.as_raw_fd() < 3 {
        rustix::io::fcntl_dupfd_cloexec(&fd, 3)?
    } else {
        fd
    };
    rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::empty())?;
    Ok(fd)
}

/// Not Unix: a header file in the user's temp directory, created new, removed when curl exits.
#[cfg(not(unix))]
fn curl_with_header(
    mut command: Command,
    program: &OsStr,
    line: &Secret,
    args: &[OsString],
) -> Result<u8, RunError> {
    struct Remove(std::path::PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    // A new file of this process: the pid keeps concurrent toks apart, the counter steps over
    // files a killed tok left behind (create_new never opens one, and only ours is removed).
    let fail = |what: &str, path: &std::path::Path, err: std::io::Error| RunError {
        message: format!("cannot {what} the header file {}: {err}", path.display()),
        code: exit::OTHER,
    };
    let dir = std::env::temp_dir();
    let mut attempt = 0u32;
    let (file, mut created) = loop {
        let path = dir.join(format!("tok-curl-{}-{attempt}.header", std::process::id()));
        match private::file_options()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(created) => break (Remove(path), created),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists && attempt < 64 => {
                attempt += 1;
            }
            Err(err) => return Err(fail("create", &path, err)),
        }
    };
    created
        .write_all(line.expose().as_bytes())
        .and_then(|()| created.write_all(b"\n"))
        .map_err(|err| fail("write", &file.0, err))?;
    drop(created);
    let mut argument = OsString::from("@");
    argument.push(file.0.as_os_str());
    command.arg("-H").arg(argument).args(args);
    let status = command
        .status()
        .map_err(|err| curl_spawn_error(program, &err))?;
    drop(file);
    Ok(exit_code(status))
}

pub(crate) fn spawn_error(program: &OsStr, err: &std::io::Error) -> RunError {
    let program = program.to_string_lossy();
    if err.kind() == std::io::ErrorKind::NotFound {
        RunError {
            message: format!("cannot run `{program}`: command not found"),
            code: NOT_FOUND,
        }
    } else {
        RunError {
            message: format!("cannot run `{program}`: {err}"),
            code: CANNOT_RUN,
        }
    }
}

fn curl_spawn_error(program: &OsStr, err: &std::io::Error) -> RunError {
    let mut error = spawn_error(program, err);
    if error.code == NOT_FOUND {
        error.message.push_str(&format!(
            "; install curl (7.55 or newer) or set {CURL_ENV} to its path"
        ));
    }
    error
}

/// The child's exit code, or 128+N when signal N killed it (Unix).
pub(crate) fn exit_code(status: ExitStatus) -> u8 {
    #[cfg(unix)]
    if let Some(signal) = std::os::unix::process::ExitStatusExt::signal(&status) {
        return u8::try_from(signal).map_or(u8::MAX, |s| 128_u8.saturating_add(s));
    }
    status.code().map_or(exit::OTHER, |code| {
        u8::try_from(code).unwrap_or(exit::OTHER)
    })
}

// ---------------------------------------------------------------------------------------------
// Completions

/// `tok completions SHELL`: the completion script on `out`.
pub(crate) fn completions(
    shell: clap_complete::Shell,
    command: &mut clap::Command,
    out: &mut dyn Write,
) {
    clap_complete::generate(shell, command, "tok", out);
}

// ---------------------------------------------------------------------------------------------
// Browser

/// Opens `url` in the person's browser: `$BROWSER` when set, else the platform's opener
/// (`xdg-open` when there is a display, `open` on macOS, `explorer` on Windows). Returns the
/// program used, or why there is none. The URL is an authorization URL (no secret in it).
pub(crate) fn open_browser(url: &str) -> Result<String, String> {
    let program = match std::env::var_os("BROWSER").filter(|value| !value.is_empty()) {
        Some(browser) => browser,
        None if cfg!(target_os = "macos") => "open".into(),
        None if cfg!(windows) => "explorer".into(),
        None if std::env::var_os("DISPLAY").is_some()
            || std::env::var_os("WAYLAND_DISPLAY").is_some() =>
        {
            "xdg-open".into()
        }
        None => return Err("no browser here (no $BROWSER and no display)".to_owned()),
    };
    let shown = program.to_string_lossy().into_owned();
    Command::new(&program)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(|_| shown.clone())
        .map_err(|err| format!("cannot start the browser {shown}: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_var_is_upper_snake_with_token_suffix() {
        assert_eq!(tokend_protocol::token_var("crm.com"), "CRM_COM_TOKEN");
        assert_eq!(tokend_protocol::token_var("crm"), "CRM_TOKEN");
        assert_eq!(
            tokend_protocol::token_var("salestim-store"),
            "SALESTIM_STORE_TOKEN"
        );
        assert_eq!(tokend_protocol::token_var("my_Api.v2"), "MY_API_V2_TOKEN");
        assert_eq!(tokend_protocol::token_var("1password"), "_1PASSWORD_TOKEN");
        for name in ["crm.com", "1password", "a-b", "é"] {
            assert!(
                parse_var(&tokend_protocol::token_var(name)).is_ok(),
                "{name}"
            );
        }
    }

    #[test]
    fn var_must_be_a_shell_identifier() {
        for ok in ["X", "_", "CRM_TOKEN", "a1", "_9"] {
            assert_eq!(parse_var(ok).as_deref(), Ok(ok));
        }
        for bad in ["", "1X", "A-B", "A B", "A=B", "$A", "A;rm", "É"] {
            assert!(parse_var(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn export_line_single_quotes_and_escapes_quotes() {
        let line = |token: &str| export_line("V", &Secret::from(token)).expose().to_owned();
        assert_eq!(line("abc"), "export V='abc'\n");
        assert_eq!(line(""), "export V=''\n");
        assert_eq!(line("a'b"), "export V='a'\\''b'\n");
        assert_eq!(line("$(x) `y` \\ \""), "export V='$(x) `y` \\ \"'\n");
    }

    #[cfg(unix)]
    #[test]
    fn exit_codes_pass_through_and_signals_are_128_plus() {
        let status = |script: &str| {
            Command::new("sh")
                .args(["-c", script])
                .status()
                .expect("sh")
        };
        assert_eq!(exit_code(status("exit 0")), 0);
        assert_eq!(exit_code(status("exit 7")), 7);
        assert_eq!(exit_code(status("exit 255")), 255);
        assert_eq!(exit_code(status("kill -TERM $$")), 128 + 15);
    }

    #[test]
    fn a_missing_program_is_127() {
        let err = spawn_error(
            OsStr::new("/nonexistent/tok-test-program"),
            &Command::new("/nonexistent/tok-test-program")
                .status()
                .unwrap_err(),
        );
        assert_eq!(err.code, NOT_FOUND);
        assert!(err.message.contains("not found"), "{}", err.message);
    }
}
