//! `tok`: the shell helper. [`run`] holds all of its logic so tests can call it in-process.
//!
//! stdout carries only the requested value (a token, a header line, JSON, an `export` line, a
//! completion script); every diagnostic goes to stderr. Exit codes are those of
//! [`crate::error::exit`], except that `tok exec` and `tok curl` exit with their program's code
//! once it has started (they run it as a child process that inherits the real stdin, stdout and
//! stderr, not the writers given to [`run`]).
//!
//! This module owns the entry point and the mapping of every failure to its message and exit
//! code (`Failure`); the parts of a run live in:
//! - `args` — the clap definitions and help texts.
//! - `fast` — the clap-free parse of `tok get NAME` / `tok header NAME`.
//! - `execute` — running a parsed command.
//! - `output` — formatting answers (status table, JSON).
//! - `secret_input` — reading the value of `tok secret set`.

mod args;
mod execute;
mod fast;
mod output;
mod secret_input;

use std::ffi::OsString;
use std::io::Write;

use clap::Parser;

use crate::error::exit;
use crate::{Client, Endpoint, Error};
use crate::{credential, shell};
use args::Cli;

/// The clap command of `tok`: what the man page and the shell completions of the Debian package
/// are generated from (`tokend-dist`), as `tok completions` is.
#[must_use]
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// The systemd user units the Debian package installs in `/usr/lib/systemd/user/`, with tokend
/// at `tokend`: the same files `tok service install` writes (file name, text).
///
/// # Errors
/// When `tokend`'s path cannot stand in a unit file.
pub fn systemd_user_units(tokend: &std::path::Path) -> Result<Vec<(&'static str, String)>, String> {
    crate::service::systemd_user_units(tokend).map_err(|err| err.message)
}

/// Runs `tok` with `args` (program name first) and returns its exit code.
pub fn run<I, T>(args: I, stdout: &mut dyn Write, stderr: &mut dyn Write) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let parsed = match fast::fast_parse(&args) {
        Some(cli) => Ok(cli),
        None => Cli::try_parse_from(args),
    };
    let cli = match parsed {
        Ok(cli) => cli,
        Err(err) => {
            let rendered = err.render().to_string();
            return if err.use_stderr() {
                let _ = write!(stderr, "{rendered}");
                exit::USAGE_OR_CONFIG
            } else {
                // --help and --version are what the user asked for: stdout, success.
                let _ = write!(stdout, "{rendered}");
                exit::OK
            };
        }
    };
    let mut builder = Client::builder();
    if let Some(socket) = &cli.socket {
        builder = builder.endpoint(Endpoint::from_path(socket));
    }
    let mut client = builder.build();
    match execute::execute(&mut client, cli.command, stdout, stderr) {
        Ok(code) => code,
        Err(Failure::Client(err)) => {
            let _ = writeln!(stderr, "tok: {err}");
            err.exit_code()
        }
        Err(Failure::Output(err)) => {
            let _ = writeln!(stderr, "tok: cannot write output: {err}");
            exit::OTHER
        }
        Err(Failure::Note(note)) => {
            let _ = writeln!(stderr, "tok: {note}");
            exit::OK
        }
        Err(Failure::Run(err)) => {
            let _ = writeln!(stderr, "tok: {}", err.message);
            err.code
        }
        Err(Failure::Helper(err)) => {
            let _ = writeln!(stderr, "tok git-credential: {err}");
            err.exit_code()
        }
        Err(Failure::Usage(message)) => {
            let _ = writeln!(stderr, "tok: {message}");
            exit::USAGE_OR_CONFIG
        }
    }
}

/// Why a command did not print its value, each with its own message prefix and exit code.
enum Failure {
    /// The daemon or the connection to it failed (the error's own exit code).
    Client(Error),
    /// Writing stdout failed (exit 1).
    Output(std::io::Error),
    /// Not an error: a note for stderr, exit code 0.
    Note(String),
    /// `tok exec` / `tok curl` could not start the program.
    Run(shell::RunError),
    /// A credential-helper request failed.
    Helper(credential::HelperError),
    /// Bad input from the user (exit 2).
    Usage(String),
}

impl From<credential::HelperError> for Failure {
    fn from(err: credential::HelperError) -> Self {
        Self::Helper(err)
    }
}

impl From<shell::RunError> for Failure {
    fn from(err: shell::RunError) -> Self {
        Self::Run(err)
    }
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        Self::Client(err)
    }
}

impl From<std::io::Error> for Failure {
    fn from(err: std::io::Error) -> Self {
        Self::Output(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_tok(args: &[&str]) -> (u8, String, String) {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let code = run(args.iter().copied(), &mut out, &mut err);
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn usage_errors_exit_2_on_stderr() {
        let (code, out, err) = run_tok(&["tok", "frobnicate"]);
        assert_eq!(code, 2);
        assert!(out.is_empty());
        assert!(err.contains("frobnicate"), "{err}");
        let (code, out, err) = run_tok(&["tok", "get", "x", "--min-ttl", "5w"]);
        assert_eq!(code, 2);
        assert!(out.is_empty());
        assert!(err.contains("unknown unit"), "{err}");
    }

    #[test]
    fn help_goes_to_stdout_with_examples_and_exit_codes() {
        let (code, out, _) = run_tok(&["tok", "--help"]);
        assert_eq!(code, 0);
        assert!(out.contains("curl -H \"$(tok header crm)\""), "{out}");
        assert!(out.contains("Exit codes"), "{out}");
        let (code, out, _) = run_tok(&["tok", "get", "--help"]);
        assert_eq!(code, 0);
        assert!(out.contains("Example"), "{out}");
    }

    #[test]
    fn shell_commands_validate_their_arguments_before_contacting_the_daemon() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("none.sock");
        let socket = socket.to_str().unwrap();
        for args in [
            &["env", "crm", "--var", "1X"][..],
            &["exec", "crm"],
            &["exec", "crm", "prog"],
            &["curl", "crm"],
            &["completions", "csh"],
        ] {
            let mut argv = vec!["tok", "--socket", socket];
            argv.extend_from_slice(args);
            let (code, out, err) = run_tok(&argv);
            assert_eq!(code, 2, "{args:?}: {err}");
            assert!(out.is_empty(), "{args:?}");
        }
    }

    #[test]
    fn completions_need_no_daemon() {
        let (code, out, err) = run_tok(&["tok", "completions", "bash"]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("_tok") && out.contains("complete"), "{out}");
    }

    #[test]
    fn ping_without_a_daemon_exits_3_and_starts_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("none.sock");
        let (code, out, err) = run_tok(&["tok", "--socket", socket.to_str().unwrap(), "ping"]);
        assert_eq!(code, 3, "{err}");
        assert!(out.is_empty());
        assert!(err.contains("not running"), "{err}");
        assert!(
            !dir.path().join("none.log").exists(),
            "ping must not start a daemon"
        );
    }
}
