//! `tok exec` with several providers, and as a supervisor: which variable holds which token
//! ([`assign_vars`]), the plain run, and (on Unix) the supervised run that follows the tokens.
//!
//! A plain `tok exec a b -- PROGRAM` fetches every token, puts each in its variable and waits
//! for PROGRAM. With `--restart-on-change` or `--signal SIG`, tok stays PROGRAM's parent and
//! asks the daemon for the tokens every second (a cache hit; the asking keeps the providers
//! refreshing ahead of expiry). When one is replaced, tok restarts PROGRAM (SIGTERM, then
//! SIGKILL after the grace period) with the new tokens in its environment, or rewrites the
//! token files whose paths it passed in `VAR_FILE` (0600, in a private directory removed when
//! tok exits) and sends PROGRAM the signal. Signals sent to tok by another process (`kill`,
//! a service manager) are passed on to PROGRAM; a terminal's Ctrl-C or Ctrl-\ already reached
//! PROGRAM (the same process group), so it is not sent twice. After SIGTERM, SIGINT or SIGQUIT
//! tok restarts nothing more and exits with PROGRAM's code.

use std::ffi::OsString;
use std::process::Command;
use std::time::Duration;

use crate::shell::{self, RunError};
use crate::{Client, Error, GetOptions, Secret};

/// How often a supervising tok asks the daemon whether a token was replaced.
#[cfg(unix)]
const POLL: Duration = Duration::from_secs(1);
/// How often it looks at signals and at PROGRAM.
#[cfg(unix)]
const TICK: Duration = Duration::from_millis(50);

/// One token PROGRAM gets: the provider and the variable that holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Wanted {
    pub(crate) provider: String,
    pub(crate) var: String,
}

/// What a supervising tok does when a token is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnChange {
    /// Nothing: tok waits for PROGRAM (a plain `tok exec`).
    Nothing,
    /// Restart PROGRAM: SIGTERM, then SIGKILL after `grace`.
    Restart { grace: Duration },
    /// Rewrite the token files, then send PROGRAM this signal (its number).
    Signal(i32),
}

/// A whole `tok exec`.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) wanted: Vec<Wanted>,
    pub(crate) min_ttl: Duration,
    pub(crate) on_change: OnChange,
    pub(crate) program: OsString,
    pub(crate) args: Vec<OsString>,
}

/// The variable of each provider: `--var VAR` (one provider only) or `--var NAME=VAR`; the
/// others get NAME upper-cased plus `_TOKEN`. A provider named twice, a `NAME=` naming none of
/// them, or two providers in one variable is a usage error.
pub(crate) fn assign_vars(names: &[String], vars: &[String]) -> Result<Vec<Wanted>, String> {
    let mut wanted: Vec<Wanted> = Vec::with_capacity(names.len());
    for name in names {
        if wanted.iter().any(|w| &w.provider == name) {
            return Err(format!("provider `{name}` is named twice"));
        }
        wanted.push(Wanted {
            provider: name.clone(),
            var: tokend_protocol::token_var(name),
        });
    }
    for var in vars {
        let (entry, var) = match var.split_once('=') {
            Some((name, var)) => {
                let Some(entry) = wanted.iter_mut().find(|w| w.provider == name) else {
                    return Err(format!(
                        "--var {name}=…: `{name}` is not one of the providers named ({})",
                        names.join(", ")
                    ));
                };
                (entry, var)
            }
            None if names.len() == 1 => (&mut wanted[0], var.as_str()),
            None => {
                return Err(format!(
                    "--var {var}: with several providers, say whose variable it is: \
                     --var NAME={var}"
                ));
            }
        };
        entry.var = shell::parse_var(var)?;
    }
    for (i, w) in wanted.iter().enumerate() {
        if let Some(other) = wanted[..i].iter().find(|o| o.var == w.var) {
            return Err(format!(
                "providers `{}` and `{}` would both go in {}: give one another name with \
                 --var NAME=VAR",
                other.provider, w.provider, w.var
            ));
        }
    }
    Ok(wanted)
}

/// Fetches every wanted token (in order), with the "waiting for tokend" notice.
fn fetch_all(client: &mut Client, plan: &Plan) -> Result<Vec<Secret>, Error> {
    let options = GetOptions {
        min_ttl: plan.min_ttl,
    };
    plan.wanted
        .iter()
        .map(|w| shell::fetch(client, &w.provider, &options).map(|token| token.value))
        .collect()
}

/// Why `tok exec` ended before PROGRAM could give an exit code.
#[derive(Debug)]
pub(crate) enum ExecError {
    /// A token could not be had (tok's own exit codes).
    Token(Error),
    /// PROGRAM could not be started, or supervising it failed.
    Run(RunError),
}

impl From<Error> for ExecError {
    fn from(err: Error) -> Self {
        Self::Token(err)
    }
}

impl From<RunError> for ExecError {
    fn from(err: RunError) -> Self {
        Self::Run(err)
    }
}

/// Runs `plan`; `Ok` is PROGRAM's exit code (128+N when signal N killed it).
pub(crate) fn run(client: &mut Client, plan: &Plan) -> Result<u8, ExecError> {
    let tokens = fetch_all(client, plan)?;
    if plan.on_change == OnChange::Nothing {
        // The program may run for a long time: no daemon connection stays open meanwhile.
        client.disconnect();
        let mut command = command(plan, &tokens);
        let status = command
            .status()
            .map_err(|err| shell::spawn_error(&plan.program, &err))?;
        return Ok(shell::exit_code(status));
    }
    supervised(client, plan, tokens)
}

/// PROGRAM with every token in its variable.
fn command(plan: &Plan, tokens: &[Secret]) -> Command {
    let mut command = Command::new(&plan.program);
    command.args(&plan.args);
    for (wanted, token) in plan.wanted.iter().zip(tokens) {
        command.env(&wanted.var, token.expose());
    }
    command
}

#[cfg(not(unix))]
fn supervised(_: &mut Client, _: &Plan, _: Vec<Secret>) -> Result<u8, ExecError> {
    Err(ExecError::Run(RunError {
        message: "--restart-on-change and --signal need Unix signals; on Windows, run the \
                  program under a service manager that restarts it, or give it a token file \
                  (file = { path = … } in tokend's config)"
            .to_owned(),
        code: crate::error::exit::USAGE_OR_CONFIG,
    }))
}

/// The signals `--signal` accepts, by name.
#[cfg(unix)]
const SIGNALS: &[(&str, i32)] = {
    use signal_hook::consts::{
        SIGALRM, SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH,
    };
    &[
        ("HUP", SIGHUP),
        ("INT", SIGINT),
        ("QUIT", SIGQUIT),
        ("USR1", SIGUSR1),
        ("USR2", SIGUSR2),
        ("ALRM", SIGALRM),
        ("TERM", SIGTERM),
        ("WINCH", SIGWINCH),
    ]
};

/// clap value parser of `--signal`: `HUP`, `SIGHUP` or `hup` (see [`SIGNALS`]).
#[cfg(unix)]
pub(crate) fn parse_signal(value: &str) -> Result<i32, String> {
    let upper = value.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    SIGNALS
        .iter()
        .find(|(known, _)| *known == name)
        .map(|(_, number)| *number)
        .ok_or_else(|| {
            let names: Vec<&str> = SIGNALS.iter().map(|(known, _)| *known).collect();
            format!(
                "`{value}` is not a signal tok sends; use one of {}",
                names.join(", ")
            )
        })
}

/// clap value parser of `--signal`: there are no signals to send here.
#[cfg(not(unix))]
pub(crate) fn parse_signal(value: &str) -> Result<i32, String> {
    Err(format!("--signal {value}: signals exist on Unix only"))
}

#[cfg(unix)]
fn supervised(client: &mut Client, plan: &Plan, tokens: Vec<Secret>) -> Result<u8, ExecError> {
    unix::Supervisor::start(client, plan, tokens)?.run()
}

#[cfg(unix)]
mod unix {
    //! The supervising loop: signals, PROGRAM's exit, the token poll.

    use std::path::{Path, PathBuf};
    use std::process::Child;
    use std::time::Instant;

    use rustix::process::{Pid, Signal};
    use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
    use signal_hook::iterator::SignalsInfo;
    use signal_hook::iterator::exfiltrator::WithOrigin;

    use super::{ExecError, OnChange, POLL, Plan, TICK, command, fetch_all};
    use crate::shell::{self, RunError};
    use crate::{Client, Secret};

    /// Signals tok passes on to PROGRAM.
    const FORWARDED: [i32; 6] = [SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2];
    /// After these, tok restarts nothing and waits for PROGRAM to exit.
    const STOPPING: [i32; 3] = [SIGINT, SIGQUIT, SIGTERM];

    pub(super) struct Supervisor<'a> {
        client: &'a mut Client,
        plan: &'a Plan,
        /// The tokens PROGRAM has (in its environment or its files).
        tokens: Vec<Secret>,
        files: Option<TokenFiles>,
        signals: SignalsInfo<WithOrigin>,
        child: Child,
        /// Set when tok sent SIGTERM to restart PROGRAM: SIGKILL is due at this moment.
        restarting: Option<Instant>,
        stopping: bool,
        /// The last poll's failure, reported once until it changes.
        poll_error: Option<String>,
    }

    impl<'a> Supervisor<'a> {
        pub(super) fn start(
            client: &'a mut Client,
            plan: &'a Plan,
            tokens: Vec<Secret>,
        ) -> Result<Self, ExecError> {
            let io = |what: &str, err: std::io::Error| RunError {
                message: format!("tok exec: {what}: {err}"),
                code: crate::error::exit::OTHER,
            };
            let signals = SignalsInfo::<WithOrigin>::new(FORWARDED)
                .map_err(|err| io("cannot listen for signals", err))?;
            let files = match plan.on_change {
                OnChange::Signal(_) => Some(
                    TokenFiles::create(plan, &tokens)
                        .map_err(|err| io("cannot write the token files", err))?,
                ),
                _ => None,
            };
            let child = spawn(plan, &tokens, files.as_ref())?;
            Ok(Self {
                client,
                plan,
                tokens,
                files,
                signals,
                child,
                restarting: None,
                stopping: false,
                poll_error: None,
            })
        }

        pub(super) fn run(mut self) -> Result<u8, ExecError> {
            let mut next_poll = Instant::now() + POLL;
            loop {
                self.pass_signals();
                let status = self.child.try_wait().map_err(|err| RunError {
                    message: format!("tok exec: cannot wait for the program: {err}"),
                    code: crate::error::exit::OTHER,
                })?;
                if let Some(status) = status {
                    if self.restarting.take().is_some() && !self.stopping {
                        self.child = spawn(self.plan, &self.tokens, self.files.as_ref())?;
                        next_poll = Instant::now() + POLL;
                        continue;
                    }
                    return Ok(shell::exit_code(status));
                }
                let now = Instant::now();
                if let Some(kill_at) = self.restarting
                    && now >= kill_at
                {
                    eprintln!("tok exec: the program did not stop in time; killing it");
                    let _ = self.child.kill();
                    // Once killed, the next try_wait restarts it.
                    self.restarting = Some(now + POLL * 3600);
                }
                if now >= next_poll && self.restarting.is_none() && !self.stopping {
                    self.poll();
                    next_poll = Instant::now() + POLL;
                }
                std::thread::sleep(TICK);
            }
        }

        /// Passes on the signals another process sent tok.
        fn pass_signals(&mut self) {
            let child = self.child.id();
            for origin in self.signals.pending() {
                if STOPPING.contains(&origin.signal) {
                    self.stopping = true;
                }
                // A terminal's signals (sent by the kernel) reached PROGRAM already, as did
                // signals PROGRAM sent to its own process group.
                let sender = origin.process.map(|p| p.pid);
                if sender.is_some_and(|pid| u32::try_from(pid).ok() != Some(child)) {
                    send(child, origin.signal);
                }
            }
        }

        /// Asks the daemon for the tokens; acts on a replaced one.
        fn poll(&mut self) {
            let fresh = match fetch_all(self.client, self.plan) {
                Ok(fresh) => {
                    self.poll_error = None;
                    fresh
                }
                Err(err) => {
                    let message = err.to_string();
                    if self.poll_error.as_ref() != Some(&message) {
                        eprintln!(
                            "tok exec: cannot refresh the tokens ({message}); the program keeps \
                             the ones it has, tok tries again every second"
                        );
                        self.poll_error = Some(message);
                    }
                    return;
                }
            };
            let changed: Vec<&str> = self
                .plan
                .wanted
                .iter()
                .zip(self.tokens.iter().zip(&fresh))
                .filter(|(_, (old, new))| old.expose() != new.expose())
                .map(|(wanted, _)| wanted.provider.as_str())
                .collect();
            if changed.is_empty() {
                return;
            }
            let changed = changed.join(", ");
            self.tokens = fresh;
            match self.plan.on_change {
                OnChange::Restart { grace } => {
                    eprintln!("tok exec: new token for {changed}; restarting the program");
                    send(self.child.id(), SIGTERM);
                    self.restarting = Some(Instant::now() + grace);
                }
                OnChange::Signal(signal) => {
                    if let Some(files) = &self.files
                        && let Err(err) = files.write(&self.tokens)
                    {
                        eprintln!("tok exec: cannot rewrite the token files: {err}");
                        return;
                    }
                    send(self.child.id(), signal);
                }
                OnChange::Nothing => {}
            }
        }
    }

    fn spawn(
        plan: &Plan,
        tokens: &[Secret],
        files: Option<&TokenFiles>,
    ) -> Result<Child, RunError> {
        let mut command = command(plan, tokens);
        if let Some(files) = files {
            for (wanted, path) in plan.wanted.iter().zip(&files.paths) {
                command.env(format!("{}_FILE", wanted.var), path);
            }
        }
        command
            .spawn()
            .map_err(|err| shell::spawn_error(&plan.program, &err))
    }

    fn send(pid: u32, signal: i32) {
        let (Some(pid), Some(signal)) = (
            i32::try_from(pid).ok().and_then(Pid::from_raw),
            Signal::from_named_raw(signal),
        ) else {
            return;
        };
        let _ = rustix::process::kill_process(pid, signal);
    }

    /// The token files of `--signal`: one per provider, in a private directory of this run.
    struct TokenFiles {
        dir: PathBuf,
        paths: Vec<PathBuf>,
    }

    impl TokenFiles {
        /// Creates the directory (0700, new: never one that exists) and writes every file.
        fn create(plan: &Plan, tokens: &[Secret]) -> std::io::Result<Self> {
            let base = std::env::var_os("XDG_RUNTIME_DIR")
                .map(PathBuf::from)
                .filter(|dir| dir.is_absolute() && dir.is_dir())
                .unwrap_or_else(std::env::temp_dir);
            let dir = new_private_dir(&base)?;
            let paths = plan
                .wanted
                .iter()
                .map(|w| dir.join(format!("{}.token", w.provider)))
                .collect();
            let files = Self { dir, paths };
            files.write(tokens)?;
            Ok(files)
        }

        fn write(&self, tokens: &[Secret]) -> std::io::Result<()> {
            for (path, token) in self.paths.iter().zip(tokens) {
                tokend_protocol::private::write_atomic(path, token.expose().as_bytes())?;
            }
            Ok(())
        }
    }

    impl Drop for TokenFiles {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// `BASE/tok-exec-PID-N`, created 0700 by this call (an existing name is skipped).
    fn new_private_dir(base: &Path) -> std::io::Result<PathBuf> {
        use std::os::unix::fs::DirBuilderExt as _;
        let pid = std::process::id();
        let mut last = None;
        for n in 0..100 {
            let dir = base.join(format!("tok-exec-{pid}-{n}"));
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => return Ok(dir),
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => last = Some(err),
                Err(err) => return Err(err),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no free directory name")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn each_provider_gets_its_default_or_chosen_variable() {
        let wanted =
            assign_vars(&names(&["gitlab", "crm.com"]), &names(&["crm.com=CRM_JWT"])).unwrap();
        assert_eq!(wanted[0].var, "GITLAB_TOKEN");
        assert_eq!(wanted[1].var, "CRM_JWT");
        let one = assign_vars(&names(&["gitlab"]), &names(&["GL"])).unwrap();
        assert_eq!(one[0].var, "GL");
    }

    #[test]
    fn ambiguous_or_clashing_variables_are_usage_errors() {
        let err = assign_vars(&names(&["a", "b"]), &names(&["X"])).unwrap_err();
        assert!(err.contains("--var NAME=X"), "{err}");
        let err = assign_vars(&names(&["a", "b"]), &names(&["c=X"])).unwrap_err();
        assert!(err.contains("not one of the providers"), "{err}");
        let err = assign_vars(&names(&["a", "b"]), &names(&["a=B_TOKEN"])).unwrap_err();
        assert!(err.contains("both go in B_TOKEN"), "{err}");
        let err = assign_vars(&names(&["a", "a"]), &[]).unwrap_err();
        assert!(err.contains("named twice"), "{err}");
        let err = assign_vars(&names(&["a"]), &names(&["a=1X"])).unwrap_err();
        assert!(err.contains("not a shell variable name"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn signals_are_named_with_or_without_sig() {
        assert_eq!(parse_signal("HUP"), Ok(signal_hook::consts::SIGHUP));
        assert_eq!(parse_signal("sigusr1"), Ok(signal_hook::consts::SIGUSR1));
        assert!(parse_signal("KILL").unwrap_err().contains("HUP, INT"));
    }
}
