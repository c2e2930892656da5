//! The command line of `tok`: the clap definitions of every command and option, and the help
//! texts with their examples. Nothing here runs a command (see [`super::execute`]).

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueHint};
use tokend_protocol::duration;

use crate::{credential, service, shell, supervise};

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
  tok exec gitlab crm.com --var crm.com=CRM_JWT -- ./deploy.sh
  tok exec --restart-on-change crm -- ./worker      # a new token: SIGTERM, wait, start again
  tok exec --signal HUP crm -- ./server              # reads $CRM_TOKEN_FILE again on SIGHUP

The tokens go into PROGRAM's environment only, never into argv. PROGRAM inherits stdin, stdout
and stderr. Exit code: PROGRAM's own, or 128+N when signal N killed it. Before PROGRAM starts,
tok's own codes apply (2 usage, 3 daemon unreachable, 4 unknown provider, 5 upstream, 6 login):
PROGRAM does not run then. 127: PROGRAM was not found; 126: it was found but could not be started.

With --restart-on-change or --signal, tok stays PROGRAM's parent and asks tokend for the tokens
every second. A replaced token restarts PROGRAM (SIGTERM; SIGKILL after --grace) with the new
tokens, or, with --signal, is written to VAR_FILE (0600, in a private directory removed when tok
exits; VAR still holds the first token) before PROGRAM gets the signal. Signals other processes
send tok (HUP, INT, QUIT, TERM, USR1, USR2) are passed on to PROGRAM; a terminal's Ctrl-C reaches
PROGRAM directly. After TERM, INT or QUIT tok restarts nothing and exits with PROGRAM's code.
Unix only.";

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
notices that the socket unit took the path over and stops; the service takes its place.
launchd (macOS): a LaunchAgent that runs tokend at login. windows: a Task Scheduler task that
starts tokend at logon (schtasks /Create /XML, then /Run).";

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
keeps the token for as long as it runs. With --id-token (args: [kube, NAME, --id-token]) the
credential is the OpenID Connect id_token with its own expiry, for API servers that check
id_tokens (--oidc-issuer-url). Errors go to stderr with tok's exit codes.";

const ROTATE_HELP: &str = "\
Example (a provider with rotate = { url = \"…/regenerateSecret\", auth = \"admin\", secret =
\"/apiKey\" } in tokend's config):
  tok rotate salestim

Nothing goes to stdout; what happened goes to stderr. On failure (exit 5) the old key stays in
force and `tok status` shows the error. With `every` in the table, tokend also rotates on that
schedule.";

const PROXY_URL_HELP: &str = "\
Examples:
  API_BASE=\"$(tok proxy-url crm)\" some-tool     # the tool sends plain HTTP; tokend adds the header
  curl \"$(tok proxy-url crm)/crmapi/rest/v2/contacts\"

A loopback TCP proxy prints http://127.0.0.1:PORT/CAPABILITY: the random path prefix is what
keeps other local users out, so treat the URL as a secret. A Unix-socket proxy prints
http+unix://PERCENT-ENCODED-PATH (for curl: --unix-socket PATH http://localhost/…).";

const COMPLETIONS_HELP: &str = "\
Examples:
  tok completions bash > ~/.local/share/bash-completion/completions/tok
  tok completions zsh > ~/.zfunc/_tok        # with fpath+=(~/.zfunc) before compinit
  tok completions fish > ~/.config/fish/completions/tok.fish";

/// Command line of `tok`.
#[derive(Debug, Parser)]
#[command(name = "tok", version, about = "Print access tokens held by tokend", after_help = EXAMPLES)]
pub(super) struct Cli {
    /// Daemon socket [default: $TOKEND_SOCKET, else $XDG_RUNTIME_DIR/tokend/tokend.sock, else
    /// <tmp>/tokend-<uid>/tokend.sock]
    #[arg(long, global = true, value_name = "PATH")]
    pub(super) socket: Option<PathBuf>,
    #[command(subcommand)]
    pub(super) command: Command,
}

#[derive(Debug, Subcommand)]
pub(super) enum Command {
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
        /// Print the OpenID Connect id_token that came with the token instead (its expiry is
        /// its own `exp`)
        #[arg(long)]
        id_token: bool,
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
    /// Replace a static provider's key now through its `rotate` table (the new key is stored
    /// before it is served; the old one is never served again)
    #[command(after_help = ROTATE_HELP)]
    Rotate {
        /// Provider name (a static provider with `rotate = { … }`)
        name: String,
    },
    /// Print the base URL of a provider's auth proxy (its `proxy = { … }`), capability included
    #[command(after_help = PROXY_URL_HELP)]
    ProxyUrl {
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
    /// Run a program with the tokens in its environment (never in argv), optionally restarting
    /// or signalling it when a token is replaced
    #[command(after_help = EXEC_HELP)]
    Exec {
        /// Provider names, one or more
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
        /// The variable of a token: `VAR` (one provider) or `NAME=VAR`; repeatable [default:
        /// NAME upper-cased, non-alphanumerics as `_`, plus `_TOKEN`]
        #[arg(long, value_name = "[NAME=]VAR")]
        var: Vec<String>,
        /// The tokens must stay valid at least this long (30, 30s, 5m, 1h, 1d)
        #[arg(long, value_name = "DURATION", value_parser = duration::parse, default_value = "30s")]
        min_ttl: Duration,
        /// Stay PROGRAM's parent and restart it when a token is replaced (SIGTERM, then
        /// SIGKILL after --grace)
        #[arg(long, conflicts_with = "signal")]
        restart_on_change: bool,
        /// Stay PROGRAM's parent, keep each token in the file named by VAR_FILE as well, and
        /// send PROGRAM this signal after a token is replaced and its file rewritten (HUP,
        /// USR1, …)
        #[arg(long, value_name = "SIGNAL", value_parser = supervise::parse_signal)]
        signal: Option<i32>,
        /// With --restart-on-change: how long PROGRAM has to exit after SIGTERM
        #[arg(long, value_name = "DURATION", value_parser = duration::parse, default_value = "10s")]
        grace: Duration,
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
        /// Hand kubectl the OpenID Connect id_token instead of the access token (what an API
        /// server configured with --oidc-issuer-url checks, as kubelogin does)
        #[arg(long)]
        id_token: bool,
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
pub(super) enum SecretCommand {
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

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
}
