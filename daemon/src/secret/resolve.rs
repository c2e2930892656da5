//! Resolving a [`SecretTemplate`] to a [`Secret`] through a [`Resolver`]: the environment of
//! the daemon, files, commands (no shell, 30 s timeout), the user secrets of the store and other
//! providers' tokens (a [`TokenSource`]), then the checks on the value (non-empty, no control
//! characters). [`ResolveOptions`] say what one key allows: line breaks (PEM keys), a platform
//! token file others may read, the request's signed `${jwt}`. Errors name the reference, never
//! a value, and say what to do next.

use std::ffi::OsString;
use std::fmt;
use std::future::Future;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokend_protocol::{ErrorCode, Secret, TokenGrant};
use zeroize::{Zeroize, Zeroizing};

use super::{CmdRef, SecretTemplate, Segment};
use crate::store::Store;

/// How long a `${cmd:…}` may run before it is killed.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest `${file:…}` accepted, in bytes. A token file is tiny; anything bigger is a wrong path.
pub const MAX_FILE_SIZE: u64 = 64 * 1024;

/// Most output a `${cmd:…}` may print: a secret is small; more means the wrong command (it is
/// killed at this point, so a runaway command cannot fill the daemon's memory).
pub const MAX_CMD_OUTPUT: usize = 64 * 1024;

/// How much of a command's stderr is kept (for the first line in an error); the rest is read
/// and dropped, so a chatty command never blocks on a full pipe.
const MAX_CMD_STDERR: usize = 4 * 1024;

/// How long reading a `${file:…}` may take (a file on a hung network mount).
pub const FILE_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How much of a failed command's first stderr line goes into the error.
const STDERR_EXCERPT_CHARS: usize = 200;

/// How long a token `${provider:NAME}` hands over stays valid at least: the request it goes
/// into (bounded by the provider's timeout, 10 s by default), and the server's handling of it,
/// fit in that time.
pub const PROVIDER_MIN_TTL: Duration = Duration::from_secs(15);

/// Looks an environment variable up.
type EnvLookup = dyn Fn(&str) -> Option<OsString> + Send + Sync;
/// Looks a user secret (`${secret:NAME}`) up.
type SecretLookup = dyn Fn(&str) -> Option<Secret> + Send + Sync;

/// A future of [`TokenSource::token`].
pub type TokenFuture<'a> =
    Pin<Box<dyn Future<Output = Result<TokenGrant, TokenFailure>> + Send + 'a>>;

/// Why another provider gave no token: its error code (login required, a config problem, an
/// upstream failure…), which the provider that needs its token reports in turn, and a message
/// for people that already names the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFailure {
    pub code: ErrorCode,
    pub message: String,
}

/// Where `${provider:NAME}` (and a rotation's `auth`) get another provider's current token:
/// the daemon's providers in force, through their caches.
pub trait TokenSource: Send + Sync {
    /// Provider `name`'s token, valid for at least `min_ttl`.
    fn token<'a>(&'a self, name: &'a str, min_ttl: Duration) -> TokenFuture<'a>;
}

/// Where references resolve from: the environment, the user secrets of `${secret:NAME}`, the
/// providers of `${provider:NAME}`, and how long a `${cmd:…}` may run. The daemon makes one from
/// its own environment and store and hands it its providers once they exist; tests inject
/// their own.
pub struct Resolver {
    env: Box<EnvLookup>,
    secrets: Box<SecretLookup>,
    cmd_timeout: Duration,
    providers: OnceLock<Arc<dyn TokenSource>>,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("cmd_timeout", &self.cmd_timeout)
            .field("providers", &self.providers.get().is_some())
            .finish_non_exhaustive()
    }
}

/// What one key's template may yield beyond a one-line value from private sources.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResolveOptions<'a> {
    /// Line breaks are allowed: the value is not sent in a header (a PEM private key).
    pub multiline: bool,
    /// A `${file:…}` may be readable (never writable) by group or others: a short-lived token
    /// the platform writes and rotates (a Kubernetes projected service-account token, which is
    /// 0644 unless every container runs as one user), that tokend could not `chmod`. It must
    /// belong to tokend's user or root.
    pub platform_file: bool,
    /// The JWT `${jwt}` stands for in this request.
    pub jwt: Option<&'a Secret>,
}

impl Resolver {
    /// The daemon's environment, the user secrets of `store` (none without one) and
    /// [`CMD_TIMEOUT`].
    #[must_use]
    pub fn new(store: Option<Arc<Store>>) -> Self {
        Self::with(
            |name| std::env::var_os(name),
            move |name| store.as_ref()?.user_secret(name),
            CMD_TIMEOUT,
        )
    }

    /// A resolver with the environment lookup, the user secrets and the command timeout given.
    pub fn with(
        env: impl Fn(&str) -> Option<OsString> + Send + Sync + 'static,
        secrets: impl Fn(&str) -> Option<Secret> + Send + Sync + 'static,
        cmd_timeout: Duration,
    ) -> Self {
        Self {
            env: Box::new(env),
            secrets: Box::new(secrets),
            cmd_timeout,
            providers: OnceLock::new(),
        }
    }

    /// Where `${provider:NAME}` resolves from (set once, when the daemon's providers exist).
    pub fn set_token_source(&self, source: Arc<dyn TokenSource>) {
        let _ = self.providers.set(source);
    }

    /// Provider `name`'s token through the [`TokenSource`], valid for `min_ttl`.
    pub async fn provider_token(
        &self,
        name: &str,
        min_ttl: Duration,
    ) -> Result<TokenGrant, ResolveError> {
        let source = self
            .providers
            .get()
            .ok_or_else(|| ResolveError::NoProviders {
                name: name.to_owned(),
            })?;
        source
            .token(name, min_ttl)
            .await
            .map_err(|failure| ResolveError::ProviderFailed {
                name: name.to_owned(),
                message: failure.message,
                code: failure.code,
            })
    }
}

impl SecretTemplate {
    /// Resolves every reference (environment of the daemon, files, commands with a 30 s timeout)
    /// and checks the result is non-empty and free of control characters.
    pub async fn resolve(&self, resolver: &Resolver) -> Result<Secret, ResolveError> {
        self.resolve_with(resolver, ResolveOptions::default()).await
    }

    /// [`resolve`](Self::resolve) for a value that is not sent in a header and may span lines
    /// (a PEM private key): line breaks are allowed, other control characters are not.
    pub async fn resolve_multiline(&self, resolver: &Resolver) -> Result<Secret, ResolveError> {
        let options = ResolveOptions {
            multiline: true,
            ..ResolveOptions::default()
        };
        self.resolve_with(resolver, options).await
    }

    /// [`resolve`](Self::resolve) with what this key allows besides.
    pub async fn resolve_with(
        &self,
        resolver: &Resolver,
        options: ResolveOptions<'_>,
    ) -> Result<Secret, ResolveError> {
        let multiline = options.multiline;
        // One resolved value per non-literal segment; concatenated at the end into a buffer of
        // the exact size, so no partial copy of the secret is left in a reallocated buffer.
        let mut resolved: Vec<Option<Zeroizing<String>>> = Vec::with_capacity(self.segments.len());
        for segment in &self.segments {
            let value = match segment {
                Segment::Literal(text) => {
                    check_no_control(text, segment, multiline)?;
                    resolved.push(None);
                    continue;
                }
                Segment::Env(name) => resolve_env(name, &*resolver.env)?,
                Segment::File(path) => read_secret_file(path, options.platform_file).await?,
                Segment::Provider(name) => {
                    let grant = resolver.provider_token(name, PROVIDER_MIN_TTL).await?;
                    Zeroizing::new(grant.token.expose().to_owned())
                }
                Segment::Jwt => match options.jwt {
                    Some(jwt) => Zeroizing::new(jwt.expose().to_owned()),
                    None => return Err(ResolveError::NoJwt),
                },
                Segment::Cmd(cmd) => run_command(cmd, resolver.cmd_timeout).await?,
                Segment::Secret(name) => match (resolver.secrets)(name) {
                    Some(value) => Zeroizing::new(value.expose().to_owned()),
                    None => return Err(ResolveError::SecretNotSet { name: name.clone() }),
                },
            };
            check_no_control(&value, segment, multiline)?;
            resolved.push(Some(value));
        }

        let parts = || {
            self.segments
                .iter()
                .zip(&resolved)
                .map(|(segment, value)| match (segment, value) {
                    (_, Some(value)) => value.as_str(),
                    (Segment::Literal(text), None) => text.as_str(),
                    (_, None) => "",
                })
        };
        let total: usize = parts().map(str::len).sum();
        if total == 0 {
            return Err(ResolveError::Empty {
                reference: self.describe_references(),
            });
        }
        let mut value = String::with_capacity(total);
        for part in parts() {
            value.push_str(part);
        }
        Ok(Secret::new(value))
    }
}

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

fn check_no_control(value: &str, segment: &Segment, multiline: bool) -> Result<(), ResolveError> {
    let forbidden = |c: char| c.is_control() && !(multiline && matches!(c, '\n' | '\r'));
    if value.contains(forbidden) {
        return Err(ResolveError::ControlChar {
            reference: segment.describe(),
        });
    }
    Ok(())
}

fn resolve_env(
    name: &str,
    env: &(dyn Fn(&str) -> Option<OsString> + Send + Sync),
) -> Result<Zeroizing<String>, ResolveError> {
    match env(name) {
        None => Err(ResolveError::EnvNotSet {
            name: name.to_owned(),
        }),
        Some(value) => match value.into_string() {
            Ok(value) => Ok(Zeroizing::new(value)),
            Err(value) => {
                // Still secret material: wipe it before reporting.
                value.into_encoded_bytes().zeroize();
                Err(ResolveError::EnvNotUnicode {
                    name: name.to_owned(),
                })
            }
        },
    }
}

/// Expands a leading `~/` to the home directory.
fn expand_home(path: &str) -> Result<PathBuf, ResolveError> {
    match path.strip_prefix("~/") {
        Some(rest) => directories::BaseDirs::new()
            .map(|dirs| dirs.home_dir().join(rest))
            .ok_or_else(|| ResolveError::NoHomeDir {
                path: path.to_owned(),
            }),
        None => Ok(PathBuf::from(path)),
    }
}

async fn read_secret_file(
    path: &str,
    platform_file: bool,
) -> Result<Zeroizing<String>, ResolveError> {
    let path = expand_home(path)?;
    // Blocking file I/O runs off the async workers, bounded in time: the path may be on a slow
    // or hung mount (a FIFO or device is refused before any read, see below).
    let task_path = path.clone();
    let read =
        tokio::task::spawn_blocking(move || read_secret_file_blocking(&task_path, platform_file));
    match tokio::time::timeout(FILE_READ_TIMEOUT, read).await {
        Ok(Ok(result)) => result,
        Ok(Err(join_error)) => Err(ResolveError::FileRead {
            path,
            source: io::Error::other(join_error.to_string()),
        }),
        Err(_) => Err(ResolveError::FileRead {
            path,
            source: io::Error::new(
                io::ErrorKind::TimedOut,
                format!("not read within {} s", FILE_READ_TIMEOUT.as_secs()),
            ),
        }),
    }
}

fn read_secret_file_blocking(
    path: &Path,
    platform_file: bool,
) -> Result<Zeroizing<String>, ResolveError> {
    let read_error = |source: io::Error| ResolveError::FileRead {
        path: path.to_owned(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    // Non-blocking: opening a FIFO for reading would otherwise wait for a writer forever. A
    // regular file reads the same either way.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(
        &mut options,
        i32::try_from(rustix::fs::OFlags::NONBLOCK.bits()).unwrap_or(0),
    );
    let file = options.open(path).map_err(read_error)?;
    // Check the opened file's metadata, not the path's: no window for a swap between the two.
    let metadata = file.metadata().map_err(read_error)?;
    if !metadata.is_file() {
        return Err(read_error(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file (a directory, FIFO or device cannot hold a secret)",
        )));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let access = FileAccess {
            mode: metadata.permissions().mode() & 0o7777,
            owner: metadata.uid(),
            daemon: rustix::process::geteuid().as_raw(),
        };
        access.check(path, platform_file)?;
    }
    // Other systems have no modes to check.
    #[cfg(not(unix))]
    let _ = platform_file;
    let too_large = || ResolveError::FileTooLarge {
        path: path.to_owned(),
        limit: MAX_FILE_SIZE,
    };
    if metadata.len() > MAX_FILE_SIZE {
        return Err(too_large());
    }
    // Sized from the metadata so the buffer normally never reallocates (no stray copies).
    let capacity = usize::try_from(metadata.len()).unwrap_or(0) + 1;
    let mut content = Zeroizing::new(Vec::with_capacity(capacity));
    file.take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut content)
        .map_err(read_error)?;
    if content.len() as u64 > MAX_FILE_SIZE {
        return Err(too_large());
    }
    let text = std::str::from_utf8(&content).map_err(|_| ResolveError::FileNotUtf8 {
        path: path.to_owned(),
    })?;
    Ok(Zeroizing::new(text.trim().to_owned()))
}

/// Who may change a secret file, as its metadata says (unix).
#[cfg(unix)]
#[derive(Debug, Clone, Copy)]
struct FileAccess {
    /// Permission bits.
    mode: u32,
    /// The owner's uid.
    owner: u32,
    /// The daemon's effective uid.
    daemon: u32,
}

#[cfg(unix)]
impl FileAccess {
    /// A secret file is for the daemon's user alone (0600). A platform's token file may be read
    /// by others, never written, and must belong to the daemon's user or to root (the platform):
    /// its owner can always rewrite it, whatever its mode.
    fn check(self, path: &Path, platform_file: bool) -> Result<(), ResolveError> {
        let Self {
            mode,
            owner,
            daemon,
        } = self;
        if platform_file {
            if mode & 0o022 != 0 {
                return Err(ResolveError::FileWritable {
                    path: path.to_owned(),
                    mode,
                });
            }
            if owner != daemon && owner != 0 {
                return Err(ResolveError::FileOwner {
                    path: path.to_owned(),
                    owner,
                    daemon,
                });
            }
        } else if mode & 0o077 != 0 {
            return Err(ResolveError::FileInsecure {
                path: path.to_owned(),
                mode,
            });
        }
        Ok(())
    }
}

async fn run_command(cmd: &CmdRef, timeout: Duration) -> Result<Zeroizing<String>, ResolveError> {
    use tokio::io::AsyncReadExt as _;
    let program = || cmd.program.clone();
    let mut child = tokio::process::Command::new(&cmd.program)
        .args(&cmd.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // On timeout or overflow the future (and the child with it) is dropped: this kills the
        // process.
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| ResolveError::CmdSpawn {
            program: program(),
            source,
        })?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(ResolveError::CmdWait {
            program: program(),
            source: io::Error::other("no output pipes"),
        });
    };
    let run = async {
        // stdout up to one byte over the limit (that byte says it overflowed); stderr: the
        // first few KiB kept, the rest drained so the command never blocks on it.
        let mut output = Zeroizing::new(Vec::new());
        let read_stdout = async {
            stdout
                .take(MAX_CMD_OUTPUT as u64 + 1)
                .read_to_end(&mut output)
                .await
        };
        let read_stderr = async {
            let mut kept = Vec::new();
            let mut stderr = stderr;
            let mut chunk = [0u8; 1024];
            loop {
                match stderr.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(read) => {
                        let room = MAX_CMD_STDERR.saturating_sub(kept.len());
                        kept.extend_from_slice(&chunk[..read.min(room)]);
                    }
                }
            }
            kept
        };
        let (read, errors) = tokio::join!(read_stdout, read_stderr);
        read.map_err(|source| ResolveError::CmdWait {
            program: program(),
            source,
        })?;
        if output.len() > MAX_CMD_OUTPUT {
            return Err(ResolveError::CmdOutputTooLarge {
                program: program(),
                limit: MAX_CMD_OUTPUT,
            });
        }
        let status = child.wait().await.map_err(|source| ResolveError::CmdWait {
            program: program(),
            source,
        })?;
        Ok((status, output, errors))
    };
    let (status, stdout, stderr) = match tokio::time::timeout(timeout, run).await {
        Err(_elapsed) => {
            return Err(ResolveError::CmdTimeout {
                program: program(),
                timeout,
            });
        }
        Ok(result) => result?,
    };
    if !status.success() {
        return Err(ResolveError::CmdFailed {
            program: program(),
            status,
            stderr: stderr_excerpt(&stderr),
        });
    }
    let text = std::str::from_utf8(&stdout)
        .map_err(|_| ResolveError::CmdOutputNotUtf8 { program: program() })?;
    Ok(Zeroizing::new(text.trim().to_owned()))
}

/// The first non-empty stderr line, trimmed, cut to 200 characters, control characters replaced
/// (it ends up in logs and on the client's terminal).
fn stderr_excerpt(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let line = text
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or("");
    let mut excerpt: String = line
        .chars()
        .take(STDERR_EXCERPT_CHARS)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if line.chars().count() > STDERR_EXCERPT_CHARS {
        excerpt.push('…');
    }
    excerpt
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<OsString> {
        None
    }

    fn no_secrets(_: &str) -> Option<Secret> {
        None
    }

    async fn resolve_test(template: &str) -> Result<Secret, ResolveError> {
        SecretTemplate::parse(template)
            .expect("template parses")
            .resolve(&Resolver::with(no_env, no_secrets, Duration::from_secs(10)))
            .await
    }

    /// A fresh private directory under the system temp dir, removed on drop.
    fn temp_dir(tag: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("tokend-secret-ref-{tag}-"))
            .tempdir()
            .expect("create temp dir")
    }

    #[tokio::test]
    async fn secret_references_resolve_from_the_store_lookup() {
        let template = SecretTemplate::parse("Bearer ${secret:gitlab.pat}").unwrap();
        assert!(matches!(&template.segments[..], [_, Segment::Secret(n)] if n == "gitlab.pat"));
        assert!(!template.is_literal());
        assert!(template.refers_to_secret("gitlab.pat"));
        assert!(!template.refers_to_secret("gitlab"));
        assert_eq!(
            format!("{template:?}"),
            "SecretTemplate[literal(7 bytes), secret:gitlab.pat]"
        );
        let lookup = |name: &str| (name == "gitlab.pat").then(|| Secret::from("glpat-value"));
        let value = template
            .resolve(&Resolver::with(no_env, lookup, Duration::from_secs(1)))
            .await
            .unwrap();
        assert_eq!(value.expose(), "Bearer glpat-value");
        let err = SecretTemplate::parse("${secret:other}")
            .unwrap()
            .resolve(&Resolver::with(no_env, lookup, Duration::from_secs(1)))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no secret named `other`") && err.contains("tok secret set other"),
            "{err}"
        );
        for bad in ["${secret:}", "${secret:a b}", "${secret:a/b}", "${secret:x"] {
            let err = SecretTemplate::parse(bad).unwrap_err();
            assert!(err.contains("${secret:…}"), "{bad}: {err}");
        }
    }

    #[tokio::test]
    async fn resolve_literal() {
        let secret = resolve_test("just-a-token").await.unwrap();
        assert_eq!(secret.expose(), "just-a-token");
        let escaped = resolve_test("a$${b").await.unwrap();
        assert_eq!(escaped.expose(), "a${b");
    }

    #[tokio::test]
    async fn resolve_env_through_injected_lookup() {
        let env = |name: &str| match name {
            "TOKEND_TEST_KEY" => Some(OsString::from("k3y")),
            "TOKEND_TEST_EMPTY" => Some(OsString::new()),
            "TOKEND_TEST_NEWLINE" => Some(OsString::from("abc\n")),
            _ => None,
        };
        let timeout = Duration::from_secs(1);
        let resolve = |text: &str| {
            let template = SecretTemplate::parse(text).unwrap();
            async move {
                template
                    .resolve(&Resolver::with(env, no_secrets, timeout))
                    .await
            }
        };

        let secret = resolve("pre-${env:TOKEND_TEST_KEY}-post").await.unwrap();
        assert_eq!(secret.expose(), "pre-k3y-post");

        let error = resolve("${env:TOKEND_TEST_MISSING}").await.unwrap_err();
        assert!(matches!(error, ResolveError::EnvNotSet { .. }));
        assert!(error.to_string().contains("TOKEND_TEST_MISSING"), "{error}");

        let error = resolve("${env:TOKEND_TEST_EMPTY}").await.unwrap_err();
        assert!(matches!(error, ResolveError::Empty { .. }), "{error}");
        assert!(
            error.to_string().contains("${env:TOKEND_TEST_EMPTY}"),
            "{error}"
        );

        // An empty variable is fine when the whole value is not empty.
        let secret = resolve("x${env:TOKEND_TEST_EMPTY}").await.unwrap();
        assert_eq!(secret.expose(), "x");

        let error = resolve("${env:TOKEND_TEST_NEWLINE}").await.unwrap_err();
        assert!(matches!(error, ResolveError::ControlChar { .. }), "{error}");
        assert!(!error.to_string().contains("abc"), "{error}");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn resolve_env_not_unicode() {
        use std::os::unix::ffi::OsStringExt;
        let env = |_: &str| Some(OsString::from_vec(vec![0x66, 0xff, 0x66]));
        let template = SecretTemplate::parse("${env:BINARY}").unwrap();
        let error = template
            .resolve(&Resolver::with(env, no_secrets, Duration::from_secs(1)))
            .await
            .unwrap_err();
        assert!(
            matches!(error, ResolveError::EnvNotUnicode { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("BINARY"), "{error}");
    }

    #[tokio::test]
    async fn resolve_is_send() {
        fn assert_send<T: Send>(_: &T) {}
        let template = SecretTemplate::parse("${env:X}").unwrap();
        let resolver = Resolver::new(None);
        let future = template.resolve(&resolver);
        assert_send(&future);
        drop(future);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn resolve_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir("file");
        let path = dir.path().join("token");
        std::fs::write(&path, "  file-token\n\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let template = format!("${{file:{}}}", path.display());

        let secret = resolve_test(&template).await.unwrap();
        assert_eq!(secret.expose(), "file-token");

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = resolve_test(&template).await.unwrap_err();
        assert!(
            matches!(error, ResolveError::FileInsecure { mode: 0o644, .. }),
            "{error}"
        );
        let message = error.to_string();
        assert!(
            message.contains(&format!("run chmod 600 {}", path.display())),
            "{message}"
        );
        assert!(message.contains("0644"), "{message}");
        assert!(!message.contains("file-token"), "{message}");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_platform_token_file_may_be_read_by_others_but_not_written() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir("platform");
        let path = dir.path().join("azure-identity-token");
        std::fs::write(&path, "eyJ.platform.token\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let template = SecretTemplate::parse(&format!("${{file:{}}}", path.display())).unwrap();
        let resolver = Resolver::with(no_env, no_secrets, Duration::from_secs(1));
        let platform = ResolveOptions {
            platform_file: true,
            ..ResolveOptions::default()
        };
        let value = template.resolve_with(&resolver, platform).await.unwrap();
        assert_eq!(value.expose(), "eyJ.platform.token");
        // Elsewhere the usual rule holds.
        assert!(matches!(
            template.resolve(&resolver).await,
            Err(ResolveError::FileInsecure { .. })
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let error = template
            .resolve_with(&resolver, platform)
            .await
            .unwrap_err();
        assert!(
            matches!(error, ResolveError::FileWritable { mode: 0o666, .. }),
            "{error}"
        );
        assert!(error.to_string().contains("writable by group or others"));
    }

    #[cfg(unix)]
    #[test]
    fn a_platform_token_file_belongs_to_the_daemons_user_or_root() {
        let path = Path::new("/var/run/secrets/tokens/token");
        let access = |mode, owner| FileAccess {
            mode,
            owner,
            daemon: 1000,
        };
        assert!(access(0o644, 1000).check(path, true).is_ok());
        assert!(access(0o644, 0).check(path, true).is_ok());
        let error = access(0o644, 1001).check(path, true).unwrap_err();
        assert!(
            matches!(error, ResolveError::FileOwner { owner: 1001, .. }),
            "{error}"
        );
        let message = error.to_string();
        assert!(
            message.contains("uid 1001") && message.contains("uid 1000"),
            "{message}"
        );
        // Even 0400: its owner may chmod it and write.
        assert!(access(0o400, 1001).check(path, true).is_err());
        // Elsewhere the mode is the rule (only the daemon's user or root could read a 0600
        // file of another user anyway).
        assert!(access(0o600, 1001).check(path, false).is_ok());
        assert!(access(0o644, 1000).check(path, false).is_err());
    }

    /// Through the real file system: as root, a file handed to another user is refused.
    #[cfg(unix)]
    #[tokio::test]
    async fn a_platform_token_file_of_another_user_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        if !rustix::process::geteuid().is_root() {
            // Only root can give a file away; the rule itself is tested above.
            return;
        }
        let dir = temp_dir("owner");
        let path = dir.path().join("token");
        std::fs::write(&path, "eyJ.platform.token\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let template = SecretTemplate::parse(&format!("${{file:{}}}", path.display())).unwrap();
        let resolver = Resolver::with(no_env, no_secrets, Duration::from_secs(1));
        let platform = ResolveOptions {
            platform_file: true,
            ..ResolveOptions::default()
        };
        assert!(template.resolve_with(&resolver, platform).await.is_ok());
        std::os::unix::fs::chown(&path, Some(65_534), None).unwrap();
        let error = template
            .resolve_with(&resolver, platform)
            .await
            .unwrap_err();
        assert!(
            matches!(error, ResolveError::FileOwner { owner: 65_534, .. }),
            "{error}"
        );
    }

    #[tokio::test]
    async fn jwt_and_provider_references_resolve_from_their_sources() {
        struct Tokens;
        impl TokenSource for Tokens {
            fn token<'a>(&'a self, name: &'a str, min_ttl: Duration) -> TokenFuture<'a> {
                Box::pin(async move {
                    assert_eq!(min_ttl, PROVIDER_MIN_TTL);
                    match name {
                        "ci" => Ok(TokenGrant {
                            provider: name.to_owned(),
                            token: Secret::from("subject-token"),
                            header: None,
                            expires_at_unix: None,
                        }),
                        _ => Err(TokenFailure {
                            code: ErrorCode::LoginRequired,
                            message: format!("provider `{name}`: refused"),
                        }),
                    }
                })
            }
        }
        let resolver = Resolver::with(no_env, no_secrets, Duration::from_secs(1));
        let template = SecretTemplate::parse("${provider:ci}").unwrap();
        let error = template.resolve(&resolver).await.unwrap_err();
        assert!(matches!(error, ResolveError::NoProviders { .. }), "{error}");
        resolver.set_token_source(Arc::new(Tokens));
        assert_eq!(
            template.resolve(&resolver).await.unwrap().expose(),
            "subject-token"
        );
        let error = SecretTemplate::parse("${provider:other}")
            .unwrap()
            .resolve(&resolver)
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                ResolveError::ProviderFailed {
                    code: ErrorCode::LoginRequired,
                    ..
                }
            ),
            "{error}"
        );
        assert_eq!(
            error.to_string(),
            "${provider:other}: provider `other`: refused"
        );

        let jwt = SecretTemplate::parse("Bearer ${jwt}").unwrap();
        assert!(matches!(
            jwt.resolve(&resolver).await,
            Err(ResolveError::NoJwt)
        ));
        let signed = Secret::from("eyJhbGciOi.x.y");
        let options = ResolveOptions {
            jwt: Some(&signed),
            ..ResolveOptions::default()
        };
        assert_eq!(
            jwt.resolve_with(&resolver, options).await.unwrap().expose(),
            "Bearer eyJhbGciOi.x.y"
        );
    }

    #[tokio::test]
    async fn resolve_file_missing() {
        let dir = temp_dir("missing");
        let path = dir.path().join("absent");
        let error = resolve_test(&format!("${{file:{}}}", path.display()))
            .await
            .unwrap_err();
        assert!(matches!(error, ResolveError::FileRead { .. }), "{error}");
        assert!(
            error.to_string().contains(&path.display().to_string()),
            "{error}"
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn resolve_file_too_large_and_multiline() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir("large");
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'a'; 64 * 1024 + 1]).unwrap();
        std::fs::set_permissions(&big, std::fs::Permissions::from_mode(0o600)).unwrap();
        let error = resolve_test(&format!("${{file:{}}}", big.display()))
            .await
            .unwrap_err();
        assert!(
            matches!(error, ResolveError::FileTooLarge { .. }),
            "{error}"
        );

        let multi = dir.path().join("multi");
        std::fs::write(&multi, "line1\nline2\n").unwrap();
        std::fs::set_permissions(&multi, std::fs::Permissions::from_mode(0o600)).unwrap();
        let error = resolve_test(&format!("${{file:{}}}", multi.display()))
            .await
            .unwrap_err();
        assert!(matches!(error, ResolveError::ControlChar { .. }), "{error}");
        assert!(!error.to_string().contains("line1"), "{error}");
    }

    #[test]
    fn home_expansion() {
        if let Some(dirs) = directories::BaseDirs::new() {
            assert_eq!(
                expand_home("~/x/y").unwrap(),
                dirs.home_dir().join("x").join("y")
            );
        }
        assert_eq!(expand_home("/abs/~/p").unwrap(), PathBuf::from("/abs/~/p"));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn resolve_cmd_stdout_trimmed() {
        let secret = resolve_test("${cmd:printf %s abc}").await.unwrap();
        assert_eq!(secret.expose(), "abc");
        let secret = resolve_test("${cmd:printf '  padded\\n'}").await.unwrap();
        assert_eq!(secret.expose(), "padded");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn resolve_cmd_nonzero_exit() {
        let error = resolve_test("${cmd:sh -c \"echo 'bad thing happened' >&2; exit 3\"}")
            .await
            .unwrap_err();
        let ResolveError::CmdFailed {
            program,
            status,
            stderr,
        } = &error
        else {
            panic!("expected CmdFailed: {error}");
        };
        assert_eq!(program, "sh");
        assert_eq!(status.code(), Some(3));
        assert_eq!(stderr, "bad thing happened");
        let message = error.to_string();
        assert!(
            message.contains("`sh`") && message.contains("bad thing happened"),
            "{message}"
        );

        let error = resolve_test("${cmd:sh -c \"exit 3\"}").await.unwrap_err();
        assert!(error.to_string().contains("no error output"), "{error}");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn resolve_cmd_timeout() {
        let template = SecretTemplate::parse("${cmd:sleep 5}").unwrap();
        let started = std::time::Instant::now();
        let error = template
            .resolve(&Resolver::with(
                no_env,
                no_secrets,
                Duration::from_millis(200),
            ))
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(4));
        assert!(matches!(error, ResolveError::CmdTimeout { .. }), "{error}");
        let message = error.to_string();
        assert!(
            message.contains("`sleep`") && message.contains("200ms"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn resolve_cmd_missing_program() {
        let error = resolve_test("${cmd:tokend-no-such-program-xyz --flag}")
            .await
            .unwrap_err();
        assert!(matches!(error, ResolveError::CmdSpawn { .. }), "{error}");
        assert!(
            error.to_string().contains("tokend-no-such-program-xyz"),
            "{error}"
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn resolve_rejects_control_characters() {
        let error = resolve_test("${cmd:printf \"a\\nb\"}").await.unwrap_err();
        assert!(matches!(error, ResolveError::ControlChar { .. }), "{error}");
        assert!(error.to_string().contains("${cmd:printf …}"), "{error}");

        let error = resolve_test("tab\there").await.unwrap_err();
        assert!(matches!(error, ResolveError::ControlChar { .. }), "{error}");
        assert!(error.to_string().contains("literal text"), "{error}");

        let error = resolve_test("nul\0").await.unwrap_err();
        assert!(matches!(error, ResolveError::ControlChar { .. }), "{error}");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn resolve_cmd_output_not_utf8() {
        let error = resolve_test("${cmd:printf '\\377'}").await.unwrap_err();
        assert!(
            matches!(error, ResolveError::CmdOutputNotUtf8 { .. }),
            "{error}"
        );
    }

    #[test]
    fn stderr_excerpt_is_first_line_truncated_and_clean() {
        assert_eq!(stderr_excerpt(b"\n  first\nsecond\n"), "first");
        let long = "x".repeat(300);
        let excerpt = stderr_excerpt(long.as_bytes());
        assert_eq!(excerpt.chars().count(), STDERR_EXCERPT_CHARS + 1);
        assert!(excerpt.ends_with('…'));
        assert_eq!(stderr_excerpt(b"a\x1b[31mb"), "a?[31mb");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_fifo_or_device_is_refused_at_once_not_waited_on() {
        let dir = temp_dir("fifo");
        let fifo = dir.path().join("secret.fifo");
        let made = std::process::Command::new("mkfifo")
            .arg("-m")
            .arg("600")
            .arg(&fifo)
            .status()
            .expect("mkfifo");
        assert!(made.success());
        for path in [fifo.display().to_string(), "/dev/zero".to_owned()] {
            let template = SecretTemplate::parse(&format!("${{file:{path}}}")).unwrap();
            let started = std::time::Instant::now();
            let error = template
                .resolve(&Resolver::with(no_env, no_secrets, Duration::from_secs(1)))
                .await
                .unwrap_err();
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{path} was waited on"
            );
            assert!(
                error.to_string().contains("not a regular file"),
                "{path}: {error}"
            );
        }
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_command_printing_too_much_is_killed() {
        // 400 MB unless stopped: the daemon must not buffer it.
        let template = SecretTemplate::parse("${cmd:head -c 400000000 /dev/zero}").unwrap();
        let started = std::time::Instant::now();
        let error = template
            .resolve(&Resolver::with(no_env, no_secrets, Duration::from_secs(10)))
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(
            matches!(error, ResolveError::CmdOutputTooLarge { limit, .. } if limit == MAX_CMD_OUTPUT),
            "{error}"
        );
        // Endless stderr does not block it either: the token still arrives.
        let template =
            SecretTemplate::parse("${cmd:sh -c 'head -c 1000000 /dev/zero >&2; echo tok3n'}")
                .unwrap();
        let value = template
            .resolve(&Resolver::with(no_env, no_secrets, Duration::from_secs(10)))
            .await
            .unwrap();
        assert_eq!(value.expose(), "tok3n");
    }
}
