//! `tok`: the shell helper. [`run`] holds all of its logic so tests can call it in-process.
//!
//! stdout carries only the requested value (a token, a header line, JSON, an `export` line, a
//! completion script); every diagnostic goes to stderr. Exit codes are those of
//! [`crate::error::exit`], except that `tok exec` and `tok curl` exit with their program's code
//! once it has started (they run it as a child process that inherits the real stdin, stdout and
//! stderr, not the writers given to [`run`]).

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use clap::{CommandFactory, Parser, Subcommand, ValueHint};
use serde_json::json;

use crate::error::exit;
use crate::timefmt::{human, rfc3339};
use crate::{Client, Endpoint, Error, GetOptions, Secret, SecretEntry, Token};
use crate::{credential, service, shell};
use tokend_protocol::{SecretBuf, clock, duration};

const EXAMPLES: &str = "\
Examples:
  curl -H \"$(tok header crm)\" https://api.example.com/v1/contacts
  tok curl crm -- -fsS https://api.example.com/v1/contacts     # the token stays out of argv
  eval \"$(tok env gitlab)\"                                     # export GITLAB_TOKEN='…'
  tok exec gitlab -- glab mr list                              # GITLAB_TOKEN for glab only
  tok get crm --min-ttl 10m --json
  tok invalidate crm        # the API said 401: fetch a new token next time
  tok status
  tok completions bash > ~/.local/share/bash-completion/completions/tok

Exit codes: 0 ok, 1 other error, 2 usage or config error, 3 daemon unreachable or could not be
started, 4 unknown provider, 5 token endpoint or upstream failure, 6 interactive login needed.
`tok exec` and `tok curl` exit with their program's code once it runs (128+N if killed by signal
N); 127: the program was not found, 126: it could not be started.";

const ENV_HELP: &str = "\
Examples:
  eval \"$(tok env crm.com)\"                    # export CRM_COM_TOKEN='…'
  eval \"$(tok env gitlab --var GITLAB_TOKEN)\"

The default VAR is NAME upper-cased, with each character other than A-Z and 0-9 replaced by `_`
(and a `_` before a leading digit), plus `_TOKEN`. The token is single-quoted, with each `'` in it
written as `'\\''`, so any POSIX shell reads it back unchanged.";

const EXEC_HELP: &str = "\
Examples:
  tok exec gitlab -- glab mr list                   # GITLAB_TOKEN in glab's environment
  tok exec crm.com --var CRM_JWT -- ./sync.sh --full

The token goes into PROGRAM's environment only, never into argv. PROGRAM inherits stdin, stdout
and stderr. Exit code: PROGRAM's own, or 128+N when signal N killed it. Before PROGRAM starts,
tok's own codes apply (2 usage, 3 daemon unreachable, 4 unknown provider, 5 upstream, 6 login):
PROGRAM does not run then. 127: PROGRAM was not found; 126: it was found but could not be started.";

const CURL_HELP: &str = "\
Examples:
  tok curl crm -- -fsS https://crm.example.com/crmapi/rest/v2/contacts
  tok curl salestim -- -fsS --json @- https://api.example.com/v1/teams < team.json

curl gets the header line through an inherited pipe, as `-H @/dev/fd/N` (curl 7.55 or newer), so
the token is in no process's argv and in no file, and curl's stdin stays yours. Providers without a
header (anonymous) run curl without -H. The curl program is $TOK_CURL if set, else `curl` from
PATH. Exit code: curl's own (e.g. 22 for -f and an HTTP error, 128+N if killed by signal N); 127:
curl was not found; tok's own codes (2-6) before curl starts.";

const GIT_HELP: &str = "\
Example (a provider with git = { host = \"gitlab.example.com\" } in tokend's config):
  git config --global credential.https://gitlab.example.com.helper '!tok git-credential'
  git clone https://gitlab.example.com/group/project.git

get answers username (the route's, default oauth2), password (the provider's token) and
password_expiry_utc when the expiry is known; a host without a route gets no answer, so git
asks its next helper. erase (git sends it when the server rejected the credential) drops the
cached token; store does nothing: tokend issues the token, it keeps no passwords from git.";

const LOGIN_HELP: &str = "\
Examples:
  tok login gitlab                # opens the browser; tokend listens for the redirect
  tok login --no-browser gitlab   # only prints the URL (e.g. over ssh)

The URL (and for the device flow the code to enter) goes to stderr. tok waits until the login
completes, fails or times out; then tokend keeps the session alive with the refresh token. Only
tok login ever starts a login: a `tok get` of a provider without a session fails at once with
exit code 6. The browser is $BROWSER when set, else xdg-open (with a display), open (macOS) or
the default browser (Windows).";

const SERVICE_HELP: &str = "\
Examples:
  tok service install --print     # show the unit files and commands
  tok service install             # write them, then systemctl --user enable --now tokend.socket
  tok service uninstall

systemd: tokend.socket listens on $XDG_RUNTIME_DIR/tokend/tokend.sock (the default endpoint)
and starts tokend.service on the first connection. A tokend that auto-started earlier
notices that the socket unit took the path over and stops; the service takes its place.";

const KUBE_HELP: &str = "\
Example kubeconfig user (kubectl runs `tok kube NAME` whenever it needs a token):
  users:
  - name: my-cluster-user
    user:
      exec:
        apiVersion: client.authentication.k8s.io/v1
        command: tok
        args: [kube, NAME]
        interactiveMode: Never

Prints a client.authentication.k8s.io/v1 ExecCredential as JSON on stdout, with
status.expirationTimestamp (RFC 3339, UTC) when the token's expiry is known; without it, kubectl
keeps the token for as long as it runs. Errors go to stderr with tok's exit codes.";

const COMPLETIONS_HELP: &str = "\
Examples:
  tok completions bash > ~/.local/share/bash-completion/completions/tok
  tok completions zsh > ~/.zfunc/_tok        # with fpath+=(~/.zfunc) before compinit
  tok completions fish > ~/.config/fish/completions/tok.fish";

/// The command lines scripts run most, `tok get NAME` and `tok header NAME` with no option,
/// parsed without building clap's whole command tree (which grows with every subcommand and
/// costs more than the rest of such a run). Anything else, including a NAME that could be an
/// option, goes through clap; both parse these lines the same (see the tests).
fn fast_parse(args: &[OsString]) -> Option<Cli> {
    let [_, command, name] = args else {
        return None;
    };
    let name = name.to_str()?;
    if name.is_empty() || name.starts_with('-') {
        return None;
    }
    let min_ttl = crate::DEFAULT_MIN_TTL;
    let command = match command.to_str()? {
        "get" => Command::Get {
            name: name.to_owned(),
            min_ttl,
            json: false,
        },
        "header" => Command::Header {
            name: name.to_owned(),
            min_ttl,
        },
        _ => return None,
    };
    Some(Cli {
        socket: None,
        command,
    })
}

/// Command line of `tok`.
#[derive(Debug, Parser)]
#[command(name = "tok", version, about = "Print access tokens held by tokend", after_help = EXAMPLES)]
struct Cli {
    /// Daemon socket [default: $TOKEND_SOCKET, else $XDG_RUNTIME_DIR/tokend/tokend.sock, else
    /// <tmp>/tokend-<uid>/tokend.sock]
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a provider's token (only the token, and a newline)
    #[command(after_help = "Example:\n  export GITLAB_TOKEN=\"$(tok get gitlab)\"")]
    Get {
        /// Provider name (a [providers.NAME] table in the config)
        name: String,
        /// The token must stay valid at least this long (30, 30s, 5m, 1h, 1d)
        #[arg(long, value_name = "DURATION", value_parser = duration::parse, default_value = "30s")]
        min_ttl: Duration,
        /// Print {"provider","token","header","expires_at"} as JSON
        #[arg(long)]
        json: bool,
    },
    /// Print the header line to send, e.g. `Authorization: Bearer …`
    #[command(after_help = "Example:\n  curl -H \"$(tok header crm)\" https://api.example.com/")]
    Header {
        /// Provider name
        name: String,
        /// The token must stay valid at least this long (30, 30s, 5m, 1h, 1d)
        #[arg(long, value_name = "DURATION", value_parser = duration::parse, default_value = "30s")]
        min_ttl: Duration,
    },
    /// List providers with kind, state and expiry (never a secret)
    #[command(after_help = "Example:\n  tok status --json | jq '.providers[].state'")]
    Status {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Print the daemon's counters and upstream-latency histogram (Prometheus text format)
    #[command(after_help = "Example:\n  tok metrics | grep tokend_cache_hits_total")]
    Metrics,
    /// Make the running daemon re-read its config (the whole new config is validated first;
    /// if it is invalid the old one stays and this exits 2 naming the error)
    #[command(after_help = "Example:\n  $EDITOR ~/.config/tokend/config.toml && tok reload")]
    Reload,
    /// Drop a provider's cached token because the API rejected it (rate-limited)
    #[command(
        after_help = "Example:\n  curl -fsS -H \"$(tok header crm)\" \"$URL\" || { tok invalidate crm; curl -fsS -H \"$(tok header crm)\" \"$URL\"; }"
    )]
    Invalidate {
        /// Provider name
        name: String,
    },
    /// Show the running daemon's version, protocol, pid and uptime (never starts it)
    #[command(after_help = "Example:\n  tok ping || echo 'tokend is not running'")]
    Ping,
    /// Stop the running daemon gracefully and wait for it to exit
    #[command(after_help = "Example:\n  tok stop")]
    Stop,
    /// Print `export VAR='TOKEN'` for `eval "$(tok env NAME)"`
    #[command(after_help = ENV_HELP)]
    Env {
        /// Provider name
        name: String,
        /// Variable name [default: NAME upper-cased, non-alphanumerics as `_`, plus `_TOKEN`]
        #[arg(long, value_name = "VAR", value_parser = shell::parse_var)]
        var: Option<String>,
        /// The token must stay valid at least this long (30, 30s, 5m, 1h, 1d)
        #[arg(long, value_name = "DURATION", value_parser = duration::parse, default_value = "30s")]
        min_ttl: Duration,
    },
    /// Run a program with the token in its environment (never in argv)
    #[command(after_help = EXEC_HELP)]
    Exec {
        /// Provider name
        name: String,
        /// Variable name [default: NAME upper-cased, non-alphanumerics as `_`, plus `_TOKEN`]
        #[arg(long, value_name = "VAR", value_parser = shell::parse_var)]
        var: Option<String>,
        /// The token must stay valid at least this long (30, 30s, 5m, 1h, 1d)
        #[arg(long, value_name = "DURATION", value_parser = duration::parse, default_value = "30s")]
        min_ttl: Duration,
        /// The program to run and its arguments, after `--`
        #[arg(
            last = true,
            required = true,
            value_name = "PROGRAM",
            value_hint = ValueHint::CommandWithArguments
        )]
        command: Vec<OsString>,
    },
    /// Run curl with the provider's header, which never appears in argv
    #[command(after_help = CURL_HELP)]
    Curl {
        /// Provider name
        name: String,
        /// The token must stay valid at least this long (30, 30s, 5m, 1h, 1d)
        #[arg(long, value_name = "DURATION", value_parser = duration::parse, default_value = "30s")]
        min_ttl: Duration,
        /// curl's arguments (URL, options), after `--`
        #[arg(last = true, required = true, value_name = "CURL-ARGS")]
        args: Vec<OsString>,
    },
    /// Print a Kubernetes ExecCredential (JSON) for kubectl's exec credential plugin
    #[command(after_help = KUBE_HELP)]
    Kube {
        /// Provider name
        name: String,
        /// The token must stay valid at least this long (30, 30s, 5m, 1h, 1d)
        #[arg(long, value_name = "DURATION", value_parser = duration::parse, default_value = "30s")]
        min_ttl: Duration,
    },
    /// Answer git's credential-helper protocol (set it as credential.helper)
    #[command(name = "git-credential", after_help = GIT_HELP)]
    GitCredential {
        /// What git asks for
        #[arg(value_enum)]
        action: credential::GitAction,
    },
    /// Log in to a provider as a person (authorization code with PKCE, or the device flow)
    #[command(after_help = LOGIN_HELP)]
    Login {
        /// Provider name (grant = "authorization_code" or "device_code")
        name: String,
        /// Only print the URL; do not open a browser
        #[arg(long)]
        no_browser: bool,
    },
    /// Forget a provider's session and revoke its refresh token
    #[command(after_help = "Example:\n  tok logout gitlab")]
    Logout {
        /// Provider name
        name: String,
    },
    /// Run tokend as a user service (systemd socket activation on Linux, launchd on macOS)
    #[command(after_help = SERVICE_HELP)]
    Service {
        #[command(subcommand)]
        action: service::Action,
    },
    /// Keep secrets for `${secret:NAME}` in the config in tokend's encrypted store
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Print the shell completion script
    #[command(after_help = COMPLETIONS_HELP)]
    Completions {
        /// The shell
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
enum SecretCommand {
    /// Set a secret: the value is read from stdin (without echo on a terminal), never from argv
    #[command(
        after_help = "Examples:\n  tok secret set gitlab            # type the value; it is not shown\n  pass show gitlab | tok secret set gitlab\nThen in the config: secret = \"${secret:gitlab}\""
    )]
    Set {
        /// The name `${secret:NAME}` refers to (letters, digits, `.`, `_`, `-`)
        name: String,
    },
    /// List the secrets' names and when each was set (never a value)
    #[command(after_help = "Example:\n  tok secret list --json | jq -r '.[].name'")]
    List {
        /// Print [{"name","set_at"}] as JSON
        #[arg(long)]
        json: bool,
    },
    /// Remove a secret
    #[command(after_help = "Example:\n  tok secret rm gitlab")]
    Rm {
        /// The secret's name
        name: String,
    },
}

/// The largest value `tok secret set` accepts (a frame must carry it).
const MAX_SECRET_LEN: usize = 32 * 1024;

/// Reads the value for `tok secret set NAME`: from the terminal without echo, or all of stdin
/// with one trailing line break removed (`echo value | tok secret set NAME`).
fn read_secret_value(name: &str) -> Result<Secret, Failure> {
    use std::io::{IsTerminal, Read};
    let value = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("tok: value for secret `{name}` (not shown): "))
            .map_err(|err| {
                Failure::Usage(format!("cannot read the value from the terminal: {err}"))
            })?
    } else {
        // Sized up front so the buffer never reallocates and leaves copies behind; wiped on drop.
        let mut bytes = SecretBuf::with_capacity(MAX_SECRET_LEN + 2);
        let mut chunk = [0u8; 4096];
        let mut stdin = std::io::stdin().lock();
        loop {
            let read = stdin.read(&mut chunk).map_err(|err| {
                Failure::Usage(format!("cannot read the value from stdin: {err}"))
            })?;
            if read == 0 {
                break;
            }
            if bytes.len() + read > MAX_SECRET_LEN + 2 {
                chunk.fill(0);
                return Err(Failure::Usage(format!(
                    "the value on stdin is longer than {} KiB; a secret is one line",
                    MAX_SECRET_LEN / 1024
                )));
            }
            bytes.extend_from_slice(&chunk[..read]);
        }
        chunk.fill(0);
        let mut end = bytes.len();
        if bytes[..end].ends_with(b"\n") {
            end -= 1;
            if bytes[..end].ends_with(b"\r") {
                end -= 1;
            }
        }
        std::str::from_utf8(&bytes[..end])
            .map_err(|_| Failure::Usage("the value on stdin is not UTF-8 text".to_owned()))?
            .to_owned()
    };
    if value.is_empty() {
        return Err(Failure::Usage(format!(
            "no value for secret `{name}`: pipe it in (`… | tok secret set {name}`) or type it \
             at the prompt"
        )));
    }
    Ok(Secret::new(value))
}

fn write_secret_list(
    entries: &[SecretEntry],
    json: bool,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    if json {
        let list: Vec<_> = entries
            .iter()
            .map(|entry| json!({ "name": entry.name, "set_at": rfc3339(entry.set_at_unix) }))
            .collect();
        return writeln!(out, "{}", serde_json::Value::Array(list));
    }
    if entries.is_empty() {
        return writeln!(out, "no secrets set (tok secret set NAME)");
    }
    let width = entries
        .iter()
        .map(|e| e.name.len())
        .max()
        .unwrap_or(0)
        .max(4);
    writeln!(out, "{:width$}  SET", "NAME")?;
    for entry in entries {
        writeln!(
            out,
            "{:width$}  {} ({})",
            entry.name,
            rfc3339(entry.set_at_unix),
            relative(Some(entry.set_at_unix))
        )?;
    }
    Ok(())
}

/// Runs `tok` with `args` (program name first) and returns its exit code.
pub fn run<I, T>(args: I, stdout: &mut dyn Write, stderr: &mut dyn Write) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let parsed = match fast_parse(&args) {
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
    match execute(&mut client, cli.command, stdout, stderr) {
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

enum Failure {
    Client(Error),
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

/// Runs one command; `Ok` holds the exit code (always 0, except the program's for exec and curl).
fn execute(
    client: &mut Client,
    command: Command,
    out: &mut dyn Write,
    notes: &mut dyn Write,
) -> Result<u8, Failure> {
    match command {
        Command::Get {
            name,
            min_ttl,
            json,
        } => {
            let token = shell::fetch(client, &name, &GetOptions { min_ttl })?;
            if json {
                writeln!(out, "{}", token_json(&token))?;
            } else {
                writeln!(out, "{}", token.value.expose())?;
            }
        }
        Command::Header { name, min_ttl } => {
            let token = shell::fetch(client, &name, &GetOptions { min_ttl })?;
            // Anonymous providers have no header: print nothing and succeed.
            if let Some(header) = &token.header {
                writeln!(out, "{}", header.line().expose())?;
            }
        }
        Command::Status { json } => {
            let status = client.status()?;
            if json {
                writeln!(out, "{}", status_json(&status))?;
            } else {
                write_status_table(&status, out)?;
            }
        }
        Command::Ping => {
            let info = client.ping()?;
            writeln!(
                out,
                "tokend {} (protocol {}), pid {}, up {}, at {}",
                info.daemon_version,
                info.protocol,
                info.pid,
                human(Duration::from_secs(info.uptime_secs)),
                client.endpoint()
            )?;
        }
        Command::Invalidate { name } => {
            let outcome = client.invalidate(&name)?;
            // Nothing on stdout: the outcome is a diagnostic.
            if !outcome.dropped {
                return Err(Failure::Note(outcome.message));
            }
        }
        Command::Metrics => write!(out, "{}", client.metrics()?)?,
        Command::Secret(SecretCommand::Set { name }) => {
            let value = read_secret_value(&name)?;
            let entry = client.secret_set(&name, value)?;
            return Err(Failure::Note(format!("secret `{}` set", entry.name)));
        }
        Command::Secret(SecretCommand::List { json }) => {
            write_secret_list(&client.secret_list()?, json, out)?;
        }
        Command::Secret(SecretCommand::Rm { name }) => {
            let entry = client.secret_remove(&name)?;
            return Err(Failure::Note(format!("secret `{}` removed", entry.name)));
        }
        Command::Reload => {
            let summary = client.reload()?;
            // Nothing on stdout: what changed is a diagnostic.
            let list = |names: &[String]| {
                if names.is_empty() {
                    "-".to_owned()
                } else {
                    names.join(", ")
                }
            };
            return Err(Failure::Note(format!(
                "reloaded: added {}; changed {}; removed {}; unchanged (tokens kept) {}",
                list(&summary.added),
                list(&summary.changed),
                list(&summary.removed),
                list(&summary.kept)
            )));
        }
        Command::Stop => client.shutdown()?,
        Command::Env { name, var, min_ttl } => {
            let token = shell::fetch(client, &name, &GetOptions { min_ttl })?;
            let var = var.unwrap_or_else(|| shell::default_var(&name));
            out.write_all(shell::export_line(&var, &token.value).expose().as_bytes())?;
        }
        Command::Exec {
            name,
            var,
            min_ttl,
            command,
        } => {
            let token = shell::fetch(client, &name, &GetOptions { min_ttl })?;
            let var = var.unwrap_or_else(|| shell::default_var(&name));
            // Close the daemon connection: the program may run for a long time.
            client.connection = None;
            let (program, args) = command.split_first().expect("clap requires PROGRAM");
            return Ok(shell::exec(&var, &token.value, program, args)?);
        }
        Command::Curl {
            name,
            min_ttl,
            args,
        } => {
            let token = shell::fetch(client, &name, &GetOptions { min_ttl })?;
            client.connection = None;
            return Ok(shell::curl(&token, &args)?);
        }
        Command::Kube { name, min_ttl } => {
            let token = shell::fetch(client, &name, &GetOptions { min_ttl })?;
            writeln!(out, "{}", exec_credential(&token))?;
        }
        Command::Login { name, no_browser } => login(client, &name, no_browser, notes)?,
        Command::Logout { name } => {
            let outcome = client.logout(&name)?;
            let _ = writeln!(notes, "tok: {}", outcome.message);
        }
        Command::Service { action } => {
            if let Err(err) = service::run(action, out, notes) {
                return Err(Failure::Run(shell::RunError {
                    message: err.message,
                    code: err.code,
                }));
            }
        }
        Command::GitCredential { action } => {
            credential::git(client, action, &mut std::io::stdin().lock(), out)?;
        }
        Command::Completions { shell: target } => {
            shell::completions(target, &mut Cli::command(), out);
        }
    }
    out.flush()?;
    Ok(exit::OK)
}

/// `tok login NAME`: start the login, show the person what to do, wait for the outcome.
fn login(
    client: &mut Client,
    name: &str,
    no_browser: bool,
    notes: &mut dyn Write,
) -> Result<(), Failure> {
    let prompt = client.login(name)?;
    match &prompt.user_code {
        Some(code) => writeln!(
            notes,
            "tok: to log in to {name}, open {} and enter the code {code}",
            prompt.url
        )?,
        None => writeln!(
            notes,
            "tok: to log in to {name}, open this URL in a browser:\n\n    {}\n",
            prompt.url
        )?,
    }
    if !no_browser {
        match shell::open_browser(&prompt.url) {
            Ok(program) => writeln!(notes, "tok: opened it with {program}")?,
            Err(reason) => writeln!(notes, "tok: {reason}; open it yourself")?,
        }
    }
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        writeln!(
            notes,
            "tok: waiting for the login to complete (up to {})…",
            human(Duration::from_secs(prompt.expires_in_secs))
        )?;
    }
    // A little longer than the daemon's own limit, so the daemon's message wins.
    let wait = Duration::from_secs(prompt.expires_in_secs.saturating_add(30));
    let outcome = client.await_login(name, wait)?;
    let expiry = outcome
        .expires_at_unix
        .map(|at| format!("; the access token expires at {}", rfc3339(at)))
        .unwrap_or_default();
    writeln!(notes, "tok: logged in to {name}{expiry}")?;
    if !outcome.refreshable {
        writeln!(
            notes,
            "tok: the server issued no refresh token, so the session ends when this token \
             expires (ask for offline access, e.g. the offline_access scope)"
        )?;
    }
    Ok(())
}

fn token_json(token: &Token) -> serde_json::Value {
    json!({
        "provider": token.provider,
        "token": token.value.expose(),
        "header": token.header.as_ref().map(|h| h.line().expose().to_owned()),
        "expires_at": token.expires_at.map(|at| rfc3339(clock::unix_secs(at))),
    })
}

/// A `client.authentication.k8s.io/v1` `ExecCredential`; `expirationTimestamp` only when known.
fn exec_credential(token: &Token) -> serde_json::Value {
    let mut status = serde_json::Map::new();
    status.insert("token".to_owned(), json!(token.value.expose()));
    if let Some(at) = token.expires_at {
        status.insert(
            "expirationTimestamp".to_owned(),
            json!(rfc3339(clock::unix_secs(at))),
        );
    }
    json!({
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": status,
    })
}

fn status_json(status: &crate::DaemonStatus) -> serde_json::Value {
    let providers: Vec<serde_json::Value> = status
        .providers
        .iter()
        .map(|p| {
            json!({
                "name": p.name,
                "kind": p.kind,
                "state": p.state,
                "expires_at": p.expires_at_unix.map(rfc3339),
                "expires_in_secs": p.expires_at_unix.map(secs_from_now),
                "last_refresh": p.last_refresh_unix.map(rfc3339),
                "next_refresh": p.next_refresh_unix.map(rfc3339),
                "last_error": p.last_error,
                "counters": p.counters,
            })
        })
        .collect();
    json!({
        "endpoint": status.endpoint,
        "config": status.config,
        "store": (!status.store.is_empty()).then_some(&status.store),
        "providers": providers,
    })
}

/// Seconds from now until `secs` (negative when past).
fn secs_from_now(secs: u64) -> i64 {
    let now = clock::unix_now();
    i64::try_from(secs).unwrap_or(i64::MAX) - i64::try_from(now).unwrap_or(0)
}

/// `5m ago` / `now` / `in 5m` / `-`.
fn relative(at_unix: Option<u64>) -> String {
    match at_unix {
        None => "-".to_owned(),
        Some(secs) => {
            let delta = secs_from_now(secs);
            let span = human(Duration::from_secs(delta.unsigned_abs()));
            match delta {
                0 => "now".to_owned(),
                1.. => format!("in {span}"),
                _ => format!("{span} ago"),
            }
        }
    }
}

fn expires_in(expires_at_unix: Option<u64>) -> String {
    let Some(secs) = expires_at_unix else {
        return "-".to_owned();
    };
    let left = match clock::from_unix_secs(secs) {
        // Compared with now to the nanosecond: a token that expires this second has expired.
        Some(at) => match at.duration_since(SystemTime::now()) {
            Ok(left) => left,
            Err(_) => return "expired".to_owned(),
        },
        // Later than this platform's clock can represent.
        None => Duration::from_secs(secs.saturating_sub(clock::unix_now())),
    };
    format!("in {}", human(left))
}

fn write_status_table(status: &crate::DaemonStatus, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "endpoint: {}", status.endpoint)?;
    writeln!(out, "config:   {}", status.config)?;
    if !status.store.is_empty() {
        writeln!(out, "store:    {}", status.store)?;
    }
    if status.providers.is_empty() {
        writeln!(out, "no providers configured")?;
        return Ok(());
    }
    let rows: Vec<[String; 7]> = status
        .providers
        .iter()
        .map(|p| {
            [
                p.name.clone(),
                p.kind.clone(),
                p.state.as_str().to_owned(),
                expires_in(p.expires_at_unix),
                relative(p.last_refresh_unix),
                relative(p.next_refresh_unix),
                p.last_error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let header = [
        "NAME",
        "KIND",
        "STATE",
        "EXPIRES",
        "LAST REFRESH",
        "NEXT REFRESH",
        "LAST ERROR",
    ]
    .map(str::to_owned);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(widths) {
            line.push_str(&format!("{cell:<width$}  "));
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_fast_path_parses_like_clap() {
        for line in [
            ["tok", "get", "crm"],
            ["tok", "header", "crm.com"],
            ["tok", "get", "a_b-c"],
        ] {
            let args: Vec<OsString> = line.iter().map(OsString::from).collect();
            let fast = fast_parse(&args).expect("fast path");
            let clap = Cli::try_parse_from(&args).expect("clap");
            assert_eq!(format!("{fast:?}"), format!("{clap:?}"), "{line:?}");
        }
        for line in [
            vec!["tok", "get", "--json"],
            vec!["tok", "get", "crm", "--json"],
            vec!["tok", "status", "x"],
            vec!["tok", "--socket", "/s", "get", "crm"],
            vec!["tok", "get", "-h"],
            vec!["tok", "get", ""],
        ] {
            let args: Vec<OsString> = line.iter().map(OsString::from).collect();
            assert!(fast_parse(&args).is_none(), "{line:?}");
        }
    }

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
    fn min_ttl_takes_the_config_files_duration_grammar() {
        let min_ttl =
            |value: &str| match Cli::try_parse_from(["tok", "get", "x", "--min-ttl", value]) {
                Ok(Cli {
                    command: Command::Get { min_ttl, .. },
                    ..
                }) => Ok(min_ttl),
                Ok(other) => panic!("not a get: {other:?}"),
                Err(err) => Err(err.to_string()),
            };
        assert_eq!(min_ttl("30"), Ok(Duration::from_secs(30)));
        assert_eq!(min_ttl("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(min_ttl("2h"), Ok(Duration::from_secs(7200)));
        // The config accepts days (`ttl = "1d"`), so tok does too.
        assert_eq!(min_ttl("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(min_ttl("0"), Ok(Duration::ZERO));
        assert!(min_ttl("5w").unwrap_err().contains("unknown unit"));
        assert!(min_ttl("soon").unwrap_err().contains("not a duration"));
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
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
    fn exec_credential_has_the_v1_shape() {
        let mut token = Token {
            provider: "k".to_owned(),
            value: crate::Secret::new("t0k".to_owned()),
            header: None,
            expires_at: None,
        };
        let value = exec_credential(&token);
        assert_eq!(value["apiVersion"], "client.authentication.k8s.io/v1");
        assert_eq!(value["kind"], "ExecCredential");
        assert_eq!(value["status"]["token"], "t0k");
        assert!(value["status"].get("expirationTimestamp").is_none());
        token.expires_at = clock::from_unix_secs(1_700_000_000);
        let value = exec_credential(&token);
        assert_eq!(
            value["status"]["expirationTimestamp"],
            "2023-11-14T22:13:20Z"
        );
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
