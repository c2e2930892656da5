//! [`ResolveError`]: why a template could not be resolved. Messages name the reference (the
//! variable, path, program or provider), never a value, and say what to do next.

use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use tokend_protocol::ErrorCode;

/// Why a template could not be resolved. Messages name the reference (variable, path, program),
/// never a value, and say what to do next.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(
        "no secret named `{name}` (from ${{secret:{name}}}) is in tokend's store; set it with \
         `tok secret set {name}` (the value is read from stdin)"
    )]
    SecretNotSet { name: String },

    #[error(
        "environment variable `{name}` (from ${{env:{name}}}) is not set in the daemon's \
         environment; set it where tokend is started and restart tokend"
    )]
    EnvNotSet { name: String },

    #[error("${{provider:{name}}}: {message}")]
    ProviderFailed {
        name: String,
        message: String,
        /// The other provider's error code.
        code: ErrorCode,
    },

    #[error(
        "${{provider:{name}}} cannot be resolved here: only a provider's token request may use \
         another provider's token"
    )]
    NoProviders { name: String },

    #[error(
        "${{jwt}} is the JWT a kind \"http\" provider signs from its `jwt` table; nothing signs \
         one here"
    )]
    NoJwt,

    #[error(
        "environment variable `{name}` (from ${{env:{name}}}) is not valid Unicode; \
         set it to the token text"
    )]
    EnvNotUnicode { name: String },

    #[error("no home directory found to expand `~/` in ${{file:{path}}}; write the path in full")]
    NoHomeDir { path: String },

    #[error(
        "cannot read secret file {path}: {source}; \
         check the path in ${{file:…}} and the file's permissions"
    )]
    FileRead {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error(
        "secret file {path} is accessible by group or others (mode 0{mode:03o}); \
         run chmod 600 {path}"
    )]
    FileInsecure { path: PathBuf, mode: u32 },

    #[error(
        "token file {path} is writable by group or others (mode 0{mode:03o}): anyone could put \
         their own token in it; make the volume or file read-only for them (0644 or 0600)"
    )]
    FileWritable { path: PathBuf, mode: u32 },

    #[error(
        "token file {path} belongs to uid {owner}, neither tokend's user (uid {daemon}) nor \
         root: its owner could put their own token in it; use the file the platform (root) or \
         tokend's user writes"
    )]
    FileOwner {
        path: PathBuf,
        owner: u32,
        daemon: u32,
    },

    #[error(
        "secret file {path} is larger than {limit} bytes; \
         point ${{file:…}} at a file holding only the token"
    )]
    FileTooLarge { path: PathBuf, limit: u64 },

    #[error("secret file {path} is not valid UTF-8; it must hold the token as text")]
    FileNotUtf8 { path: PathBuf },

    #[error(
        "cannot start command `{program}` (from ${{cmd:…}}): {source}; \
         check the program name and that it is on the daemon's PATH"
    )]
    CmdSpawn {
        program: String,
        #[source]
        source: io::Error,
    },

    #[error(
        "command `{program}` (from ${{cmd:…}}) failed while running: {source}; \
         run it by hand to check it"
    )]
    CmdWait {
        program: String,
        #[source]
        source: io::Error,
    },

    #[error(
        "command `{program}` (from ${{cmd:…}}) did not finish within {timeout:?} and was killed; \
         make sure it does not wait for input (stdin is closed) or a prompt"
    )]
    CmdTimeout { program: String, timeout: Duration },

    #[error(
        "command `{program}` (from ${{cmd:…}}) {status}{}; run it by hand to see what is wrong",
        stderr_suffix(.stderr)
    )]
    CmdFailed {
        program: String,
        status: ExitStatus,
        /// First line of its stderr, at most 200 characters, control characters replaced.
        stderr: String,
    },

    #[error(
        "command `{program}` (from ${{cmd:…}}) printed output that is not valid UTF-8; \
         it must print the token as text"
    )]
    CmdOutputNotUtf8 { program: String },

    #[error(
        "command `{program}` (from ${{cmd:…}}) printed more than {limit} bytes and was killed; \
         it must print the token alone"
    )]
    CmdOutputTooLarge { program: String, limit: usize },

    #[error(
        "the secret resolved from {reference} is empty; check that it yields the token \
         (variable set to a value, file not empty, command printing the token)"
    )]
    Empty { reference: String },

    #[error(
        "the value of {reference} contains a control character (such as a newline, CR, tab or \
         NUL), which would corrupt an HTTP header; make it yield the token alone on one line"
    )]
    ControlChar { reference: String },
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        " (no error output)".to_owned()
    } else {
        format!(": {stderr}")
    }
}
