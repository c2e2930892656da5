//! The TOML config file: where it is, how it is read and validated, and what it means.
//!
//! This module owns the file format, the [`Config`] model the daemon works from, the error
//! messages (each names the file, the line and the key, and says what to do) and the warnings
//! (literal secrets, loose file permissions).
//!
//! # Format
//!
//! ```toml
//! [providers.salestim]            # the table name is what `tok get` takes
//! kind = "static"                 # a fixed secret: API key or personal access token
//! secret = "${env:SALESTIM_API_KEY}"
//! header = "X-API-KEY"            # presented as `X-API-KEY: <secret>`
//!
//! [providers.gitlab]
//! kind = "static"
//! secret = "${file:~/.config/gitlab.pat}"
//! scheme = "bearer"               # `Authorization: Bearer <secret>` (default)
//! ```
//!
//! Provider names may only use `A-Z a-z 0-9 . _ -` (they are typed on command lines).
//!
//! Keys of every provider:
//!
//! - `kind` (required): `"static"`, a fixed secret. More kinds will follow.
//! - `header` (default `"Authorization"`): the HTTP header the value is presented in.
//! - `scheme`: `"bearer"` gives `Bearer <secret>`, `"basic"` gives
//!   `Basic base64(<basic_user>:<secret>)`, `"raw"` gives the secret as is. Default: `"bearer"`
//!   for the `Authorization` header, `"raw"` for any other header (an `X-API-KEY` carries the bare
//!   key).
//! - `basic_user` (default `""`): the user name for `scheme = "basic"`; not allowed otherwise.
//!
//! Keys of `kind = "static"`:
//!
//! - `secret` (required): a template, see [`crate::secret_ref`]: `${env:NAME}`, `${file:PATH}`,
//!   `${cmd:PROGRAM ARGS...}`, literal text, `$${` for a literal `${`. A purely literal secret is
//!   accepted with a warning: the secret then sits in the config file.
//!
//! A missing config file is not an error: the daemon runs with no providers.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use tokend_protocol::Secret;
use toml::Spanned;
use toml::de::{DeTable, DeValue};
use zeroize::Zeroizing;

use crate::secret_ref::SecretTemplate;

/// Environment variable naming the config file (step 2 of [`resolve_path`]).
pub const CONFIG_ENV: &str = "TOKEND_CONFIG";

// Hints are `&'static str` (keeps `ConfigError` small); these list what the format allows and
// must follow `ProviderKind`, `RawProvider` and `Scheme`.
const UNKNOWN_KIND_HINT: &str = "use one of: static";
const MISSING_KIND_HINT: &str = "add a kind, e.g. kind = \"static\" (known kinds: static)";
const UNKNOWN_KEY_HINT: &str =
    "remove it or fix its spelling; known keys: kind, secret, header, scheme, basic_user";
const UNKNOWN_SCHEME_HINT: &str = "use one of: bearer, basic, raw";
const FORMAT_HINT: &str = "check the file against the format in the tokend documentation";

/// The loaded configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from.
    pub source: ConfigSource,
    /// Providers by name (the name `tok get` takes).
    pub providers: BTreeMap<String, ProviderConfig>,
}

/// Where a [`Config`] came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// Read from this file.
    File(PathBuf),
    /// The file did not exist: no providers, not an error.
    Missing(PathBuf),
}

impl ConfigSource {
    /// The config file path, whether it existed or not.
    #[must_use]
    pub fn path(&self) -> &Path {
        match self {
            Self::File(path) | Self::Missing(path) => path,
        }
    }
}

/// One `[providers.NAME]` table, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderConfig {
    pub name: String,
    pub kind: ProviderKind,
    pub presentation: Presentation,
}

/// How a provider obtains its token. `Debug` is safe: [`SecretTemplate`] never shows literal text.
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderKind {
    /// A fixed secret (API key, personal access token), resolved from its template.
    Static { secret: SecretTemplate },
}

impl ProviderKind {
    /// The `kind` value in the config file.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Static { .. } => "static",
        }
    }
}

/// How a token is presented to the upstream service: header name and value format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presentation {
    /// HTTP header name, `Authorization` by default.
    pub header: String,
    pub scheme: Scheme,
    /// User name for [`Scheme::Basic`]; empty by default.
    pub basic_user: String,
}

impl Default for Presentation {
    fn default() -> Self {
        Self {
            header: "Authorization".to_owned(),
            scheme: Scheme::Bearer,
            basic_user: String::new(),
        }
    }
}

/// The format of the header value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// `Bearer <token>`.
    #[default]
    Bearer,
    /// `Basic base64(<basic_user>:<token>)`.
    Basic,
    /// `<token>` as is.
    Raw,
}

impl Scheme {
    /// Every scheme, in the order error messages list them.
    pub const ALL: [Self; 3] = [Self::Bearer, Self::Basic, Self::Raw];

    /// The name used in the config file.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bearer => "bearer",
            Self::Basic => "basic",
            Self::Raw => "raw",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scheme| scheme.as_str() == name)
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Presentation {
    /// The header value for `token`: `Bearer <token>`, `Basic base64(user:token)` (standard
    /// alphabet, padded) or `<token>`.
    #[must_use]
    pub fn header_value(&self, token: &Secret) -> Secret {
        let token = token.expose();
        // Buffers are allocated at their final size so no partial copy of the token is left
        // behind by a reallocation; the intermediate `user:token` is wiped on drop.
        match self.scheme {
            Scheme::Raw => Secret::from(token),
            Scheme::Bearer => {
                let mut value = String::with_capacity("Bearer ".len() + token.len());
                value.push_str("Bearer ");
                value.push_str(token);
                Secret::new(value)
            }
            Scheme::Basic => {
                let mut credentials = Zeroizing::new(String::with_capacity(
                    self.basic_user.len() + 1 + token.len(),
                ));
                credentials.push_str(&self.basic_user);
                credentials.push(':');
                credentials.push_str(token);
                let encoded_len = base64::encoded_len(credentials.len(), true).unwrap_or(0);
                let mut value = String::with_capacity("Basic ".len() + encoded_len);
                value.push_str("Basic ");
                base64::engine::general_purpose::STANDARD
                    .encode_string(credentials.as_bytes(), &mut value);
                Secret::new(value)
            }
        }
    }
}

/// A problem that does not stop the daemon (it logs it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// 1-based line in the config file; `0` when it is about the file as a whole.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.message)
        } else {
            write!(f, "line {}: {}", self.line, self.message)
        }
    }
}

/// Why the config could not be found or loaded. Messages are one line, name the file (and line
/// and key when there is one) and end with what to do; they never contain a secret value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "{path}: cannot read the config file: {source}; check its permissions, \
         or point --config or TOKEND_CONFIG at another file"
    )]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("{path}:{line}: the config file is not valid UTF-8: save it as UTF-8")]
    NotUtf8 { path: PathBuf, line: usize },

    #[error("{path}:{line}: TOML syntax error: {message}: {hint}")]
    Syntax {
        path: PathBuf,
        line: usize,
        /// The TOML parser's description.
        message: String,
        hint: &'static str,
    },

    #[error("{path}:{line}: {problem}{}: {hint}", location(.provider.as_deref(), .key.as_deref()))]
    Invalid {
        path: PathBuf,
        line: usize,
        /// The `[providers.NAME]` table, when the problem is inside one.
        provider: Option<String>,
        /// The offending key.
        key: Option<String>,
        problem: String,
        /// What to do about it.
        hint: &'static str,
    },

    #[error(
        "cannot locate the config file: no home directory found; \
         pass --config PATH or set TOKEND_CONFIG"
    )]
    NoConfigDir,
}

fn location(provider: Option<&str>, key: Option<&str>) -> String {
    match (provider, key) {
        (Some(provider), Some(key)) => format!(" (in [providers.{provider}] key `{key}`)"),
        (Some(provider), None) => format!(" (in [providers.{provider}])"),
        (None, Some(key)) => format!(" (top-level key `{key}`)"),
        (None, None) => String::new(),
    }
}

/// Finds the config file path.
///
/// Resolution order:
/// 1. the explicit `--config` value;
/// 2. `TOKEND_CONFIG` if set and non-empty;
/// 3. `<config dir>/tokend/config.toml`, the config dir coming from
///    `directories::BaseDirs::config_dir()` (on Linux `$XDG_CONFIG_HOME` or `~/.config`);
///    if no home directory can be found, [`ConfigError::NoConfigDir`].
///
/// `env` looks up environment variables (injected so tests need not touch the real environment).
pub fn resolve_path(
    explicit: Option<&Path>,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<PathBuf, ConfigError> {
    if let Some(path) = explicit {
        return Ok(path.to_owned());
    }
    if let Some(path) = env(CONFIG_ENV).filter(|value| !value.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let dirs = directories::BaseDirs::new().ok_or(ConfigError::NoConfigDir)?;
    Ok(dirs.config_dir().join("tokend").join("config.toml"))
}

/// Reads and validates the config file. A file that does not exist gives an empty config with
/// [`ConfigSource::Missing`]. On unix, also warns when the file holds a literal secret and is
/// readable by group or others, or is writable by group or others.
pub fn load(path: &Path) -> Result<(Config, Vec<Warning>), ConfigError> {
    let read_error = |source| ConfigError::Read {
        path: path.to_owned(),
        source,
    };
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            let config = Config {
                source: ConfigSource::Missing(path.to_owned()),
                providers: BTreeMap::new(),
            };
            return Ok((config, Vec::new()));
        }
        Err(error) => return Err(read_error(error)),
    };
    // The file may hold literal secrets: wipe the buffer once parsed.
    let mut bytes = Zeroizing::new(Vec::new());
    file.read_to_end(&mut bytes).map_err(read_error)?;
    let text = std::str::from_utf8(&bytes).map_err(|error| ConfigError::NotUtf8 {
        path: path.to_owned(),
        line: line_at(&bytes, error.valid_up_to()),
    })?;
    let parsed = parse_inner(text, path)?;
    let mut warnings = parsed.warnings;
    warnings.extend(mode_warnings(&file, path, parsed.first_literal_line).map_err(read_error)?);
    Ok((parsed.config, warnings))
}

/// Warnings about the config file's own permissions: a literal secret readable by others, or a
/// file others can edit (and so make the daemon run any `${cmd:…}` as this user).
#[cfg(unix)]
fn mode_warnings(
    file: &File,
    path: &Path,
    first_literal_line: Option<usize>,
) -> io::Result<Vec<Warning>> {
    use std::os::unix::fs::PermissionsExt;
    // Mode of the opened file itself: the one whose content was just parsed.
    let mode = file.metadata()?.permissions().mode() & 0o7777;
    let shown = path.display();
    let mut warnings = Vec::new();
    if let Some(line) = first_literal_line
        && mode & 0o044 != 0
    {
        warnings.push(Warning {
            line,
            message: format!(
                "{shown} holds a literal secret and is readable by group or others \
                 (mode 0{mode:03o}); run chmod 600 {shown}"
            ),
        });
    }
    if mode & 0o022 != 0 {
        warnings.push(Warning {
            line: 0,
            message: format!(
                "{shown} is writable by group or others (mode 0{mode:03o}): whoever can \
                 edit it can make tokend run commands through ${{cmd:…}}; \
                 run chmod 600 {shown}"
            ),
        });
    }
    Ok(warnings)
}

#[cfg(not(unix))]
fn mode_warnings(
    _file: &File,
    _path: &Path,
    _first_literal_line: Option<usize>,
) -> io::Result<Vec<Warning>> {
    Ok(Vec::new())
}

/// Validates config text; `path` is only used in messages and as [`ConfigSource::File`].
/// Does not look at file permissions (see [`load`]).
pub fn parse(text: &str, path: &Path) -> Result<(Config, Vec<Warning>), ConfigError> {
    let parsed = parse_inner(text, path)?;
    Ok((parsed.config, parsed.warnings))
}

/// The file as written, before validation. Every value is `Spanned` so problems found during
/// validation can name their line; values are strings (not enums) so that an unknown kind or
/// scheme gets our message listing the known ones.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    providers: BTreeMap<Spanned<String>, RawProvider>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    kind: Option<Spanned<String>>,
    secret: Option<Spanned<String>>,
    header: Option<Spanned<String>>,
    scheme: Option<Spanned<String>>,
    basic_user: Option<Spanned<String>>,
}

struct Parsed {
    config: Config,
    warnings: Vec<Warning>,
    /// Line of the first literal secret, for the file-permission warning.
    first_literal_line: Option<usize>,
}

fn parse_inner(text: &str, path: &Path) -> Result<Parsed, ConfigError> {
    let ctx = Ctx { text, path };
    // Parse to a spanned tree first: syntax errors surface here, and the tree lets us name the
    // key behind a later deserialization error (serde only reports a byte span).
    let tree = DeTable::parse(text).map_err(|error| ConfigError::Syntax {
        path: path.to_owned(),
        line: error.span().map_or(1, |span| ctx.line(span.start)),
        message: one_line(error.message()),
        hint: if error.message().contains("duplicate") {
            "each [providers.NAME] table and each key may appear only once"
        } else {
            "fix the TOML on that line (strings need double quotes, e.g. secret = \"${env:NAME}\")"
        },
    })?;
    let raw: RawFile =
        toml::from_str(text).map_err(|error| ctx.deserialize_error(&error, &tree))?;

    let mut providers = BTreeMap::new();
    let mut warnings = Vec::new();
    let mut first_literal_line = None;
    for (name, raw_provider) in raw.providers {
        let (provider, literal_line) = ctx.provider(&name, raw_provider)?;
        if let Some(line) = literal_line {
            first_literal_line =
                Some(first_literal_line.map_or(line, |first: usize| first.min(line)));
            warnings.push(Warning {
                line,
                message: format!(
                    "[providers.{}] key `secret` holds a literal secret; prefer ${{env:…}}, \
                     ${{file:…}} or ${{cmd:…}} so the secret is not stored in the config file",
                    provider.name
                ),
            });
        }
        providers.insert(provider.name.clone(), provider);
    }
    // Providers come out in name order; report in file order.
    warnings.sort_by_key(|warning| warning.line);
    Ok(Parsed {
        config: Config {
            source: ConfigSource::File(path.to_owned()),
            providers,
        },
        warnings,
        first_literal_line,
    })
}

/// The text being parsed and its path, for turning spans into located errors.
struct Ctx<'a> {
    text: &'a str,
    path: &'a Path,
}

impl Ctx<'_> {
    fn line(&self, offset: usize) -> usize {
        line_at(self.text.as_bytes(), offset)
    }

    fn invalid(
        &self,
        span: &Range<usize>,
        provider: Option<&str>,
        key: Option<&str>,
        problem: String,
        hint: &'static str,
    ) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_owned(),
            line: self.line(span.start),
            provider: provider.map(str::to_owned),
            key: key.map(str::to_owned),
            problem,
            hint,
        }
    }

    /// Turns a serde error (unknown key, wrong type) into a located error. Our own message is
    /// built from the tree rather than serde's, which would quote a misplaced string value
    /// (possibly a secret).
    fn deserialize_error(
        &self,
        error: &toml::de::Error,
        tree: &Spanned<DeTable<'_>>,
    ) -> ConfigError {
        let span = error.span().unwrap_or(0..0);
        let Some(found) = locate(tree.get_ref(), &span) else {
            return self.invalid(
                &span,
                None,
                None,
                redact_quoted(error.message()),
                FORMAT_HINT,
            );
        };
        let provider = found.provider.as_deref();
        let key = found.key.as_deref();
        match (found.node, provider, key) {
            (Node::Key, Some(_), Some(key)) => self.invalid(
                &span,
                provider,
                Some(key),
                "unknown key".to_owned(),
                UNKNOWN_KEY_HINT,
            ),
            (Node::Key, None, Some(key)) => self.invalid(
                &span,
                None,
                Some(key),
                "unknown key".to_owned(),
                "the file only holds [providers.NAME] tables; remove the key \
                 or move it into a provider table",
            ),
            (Node::Value(found), Some(_), None) => self.invalid(
                &span,
                provider,
                None,
                format!(
                    "wrong type: a provider must be a table, found {}",
                    article(found)
                ),
                "write it as a [providers.NAME] table with keys such as kind and secret",
            ),
            (Node::Value(found), Some(_), Some(key)) => self.invalid(
                &span,
                provider,
                Some(key),
                format!("wrong type: expected a string, found {}", article(found)),
                "write the value as a quoted string",
            ),
            (Node::Value(found), None, Some(key)) => self.invalid(
                &span,
                None,
                Some(key),
                format!("wrong type: expected a table, found {}", article(found)),
                "declare providers as [providers.NAME] tables",
            ),
            _ => self.invalid(
                &span,
                provider,
                key,
                redact_quoted(error.message()),
                FORMAT_HINT,
            ),
        }
    }

    /// Validates one `[providers.NAME]` table. Also returns the line of its secret when that
    /// secret is literal (the caller warns about it).
    fn provider(
        &self,
        name: &Spanned<String>,
        raw: RawProvider,
    ) -> Result<(ProviderConfig, Option<usize>), ConfigError> {
        let name_span = name.span();
        let name = name.get_ref().as_str();
        if name.is_empty() || !name.bytes().all(is_name_byte) {
            return Err(self.invalid(
                &name_span,
                None,
                None,
                format!("invalid provider name {name:?}"),
                "use only letters, digits, `.`, `_` and `-` (the name is typed on command lines, \
                 as in `tok get NAME`)",
            ));
        }
        let invalid = |span: &Range<usize>, key: &str, problem: String, hint: &'static str| {
            self.invalid(span, Some(name), Some(key), problem, hint)
        };

        let Some(kind) = raw.kind else {
            return Err(invalid(
                &name_span,
                "kind",
                "missing `kind`".to_owned(),
                MISSING_KIND_HINT,
            ));
        };

        let presentation =
            self.presentation(name, raw.header, raw.scheme.as_ref(), raw.basic_user)?;

        let mut literal_line = None;
        let kind = match kind.get_ref().as_str() {
            "static" => {
                let Some(secret) = raw.secret else {
                    return Err(invalid(
                        &name_span,
                        "secret",
                        "kind \"static\" needs a `secret`".to_owned(),
                        "add one, e.g. secret = \"${env:NAME}\"",
                    ));
                };
                let span = secret.span();
                let text = Zeroizing::new(secret.into_inner());
                if text.is_empty() {
                    return Err(invalid(
                        &span,
                        "secret",
                        "`secret` is empty".to_owned(),
                        "set it to a reference such as \"${env:NAME}\", \"${file:PATH}\" \
                         or \"${cmd:PROGRAM ARGS}\"",
                    ));
                }
                // The parse message says what is wrong and where, without quoting the value.
                let template = SecretTemplate::parse(&text).map_err(|message| {
                    invalid(
                        &span,
                        "secret",
                        format!("invalid secret: {message}"),
                        "fix the reference in the value",
                    )
                })?;
                if template.is_literal() {
                    literal_line = Some(self.line(span.start));
                }
                ProviderKind::Static { secret: template }
            }
            other => {
                return Err(invalid(
                    &kind.span(),
                    "kind",
                    format!("unknown kind {other:?}"),
                    UNKNOWN_KIND_HINT,
                ));
            }
        };

        let provider = ProviderConfig {
            name: name.to_owned(),
            kind,
            presentation,
        };
        Ok((provider, literal_line))
    }

    /// Validates the presentation keys shared by every kind.
    fn presentation(
        &self,
        name: &str,
        header: Option<Spanned<String>>,
        scheme: Option<&Spanned<String>>,
        basic_user: Option<Spanned<String>>,
    ) -> Result<Presentation, ConfigError> {
        let invalid = |span: &Range<usize>, key: &str, problem: String, hint: &'static str| {
            self.invalid(span, Some(name), Some(key), problem, hint)
        };
        let mut presentation = Presentation::default();

        if let Some(header) = header {
            if !is_http_token(header.get_ref()) {
                return Err(invalid(
                    &header.span(),
                    "header",
                    "`header` is not a valid HTTP header name".to_owned(),
                    "use a header name such as \"Authorization\" or \"X-API-KEY\" \
                     (no spaces, colons or control characters)",
                ));
            }
            presentation.header = header.into_inner();
            if !presentation.header.eq_ignore_ascii_case("authorization") {
                // Custom headers (X-API-KEY and the like) carry the bare secret by default.
                presentation.scheme = Scheme::Raw;
            }
        }

        if let Some(scheme) = scheme {
            presentation.scheme = Scheme::from_name(scheme.get_ref()).ok_or_else(|| {
                invalid(
                    &scheme.span(),
                    "scheme",
                    format!("unknown scheme {:?}", scheme.get_ref()),
                    UNKNOWN_SCHEME_HINT,
                )
            })?;
        }

        if let Some(user) = basic_user {
            let span = user.span();
            if presentation.scheme != Scheme::Basic {
                return Err(invalid(
                    &span,
                    "basic_user",
                    format!(
                        "`basic_user` is set but scheme is \"{}\"",
                        presentation.scheme
                    ),
                    "remove basic_user, or set scheme = \"basic\"",
                ));
            }
            if user
                .get_ref()
                .contains(|c: char| c == ':' || c.is_control())
            {
                return Err(invalid(
                    &span,
                    "basic_user",
                    "`basic_user` contains `:` or a control character".to_owned(),
                    "Basic authentication user names cannot contain them; fix the user name",
                ));
            }
            presentation.basic_user = user.into_inner();
        }

        Ok(presentation)
    }
}

/// Which node of the spanned tree a deserialization error points at.
struct Found {
    provider: Option<String>,
    key: Option<String>,
    node: Node,
}

enum Node {
    /// The key itself (an unknown key).
    Key,
    /// The key's value, of this TOML type (a wrong type).
    Value(&'static str),
}

/// Maps an error span to the provider and key it belongs to. Children are checked before their
/// parents because implicit tables (`[providers.x]` headers) have no meaningful span of their own.
fn locate(root: &DeTable<'_>, span: &Range<usize>) -> Option<Found> {
    let found = |provider: Option<&str>, key: Option<&str>, node| Found {
        provider: provider.map(str::to_owned),
        key: key.map(str::to_owned),
        node,
    };
    for (key, value) in root {
        let key_name = key.get_ref().as_ref();
        if contains(&key.span(), span) {
            return Some(found(None, Some(key_name), Node::Key));
        }
        if key_name == "providers"
            && let DeValue::Table(providers) = value.get_ref()
        {
            for (name, provider) in providers {
                let name_str = name.get_ref().as_ref();
                if contains(&name.span(), span) {
                    return Some(found(Some(name_str), None, Node::Key));
                }
                if let DeValue::Table(fields) = provider.get_ref() {
                    for (field, field_value) in fields {
                        let field_name = field.get_ref().as_ref();
                        if contains(&field.span(), span) {
                            return Some(found(Some(name_str), Some(field_name), Node::Key));
                        }
                        if contains(&field_value.span(), span) {
                            let node = Node::Value(field_value.get_ref().type_str());
                            return Some(found(Some(name_str), Some(field_name), node));
                        }
                    }
                }
                if contains(&provider.span(), span) {
                    let node = Node::Value(provider.get_ref().type_str());
                    return Some(found(Some(name_str), None, node));
                }
            }
        }
        if contains(&value.span(), span) {
            return Some(found(
                None,
                Some(key_name),
                Node::Value(value.get_ref().type_str()),
            ));
        }
    }
    None
}

fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start < outer.end && outer.start <= inner.start && inner.end <= outer.end
}

/// "an integer", "a string", … for a TOML type name.
fn article(type_name: &str) -> String {
    let vowel = type_name.starts_with(['a', 'e', 'i', 'o', 'u']);
    format!("{} {type_name}", if vowel { "an" } else { "a" })
}

/// 1-based line of a byte offset.
fn line_at(bytes: &[u8], offset: usize) -> usize {
    let end = offset.min(bytes.len());
    bytes[..end].iter().filter(|&&b| b == b'\n').count() + 1
}

fn one_line(message: &str) -> String {
    message.trim().replace('\n', "; ")
}

/// Drops everything from the first `"` on: serde quotes string values (which may be secrets)
/// that way, while toml quotes key names with backticks.
fn redact_quoted(message: &str) -> String {
    let message = one_line(message);
    match message.find('"') {
        Some(quote) => message[..quote].trim_end().to_owned(),
        None => message,
    }
}

fn is_name_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-')
}

/// An RFC 9110 `token` (field names): one or more `tchar`.
fn is_http_token(text: &str) -> bool {
    !text.is_empty()
        && text.bytes().all(|byte| {
            byte.is_ascii_alphanumeric()
                || matches!(
                    byte,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = "/etc/tokend-test/config.toml";
    /// Stands in for a real secret: must never show up in messages or `Debug` output.
    const SECRET: &str = "hunter2-sekrit";

    fn parse_ok(text: &str) -> (Config, Vec<Warning>) {
        parse(text, Path::new(PATH)).unwrap_or_else(|error| panic!("{error}"))
    }

    fn parse_err(text: &str) -> ConfigError {
        match parse(text, Path::new(PATH)) {
            Ok((config, _)) => panic!("expected an error, got {config:?}"),
            Err(error) => error,
        }
    }

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            use std::sync::atomic::{AtomicUsize, Ordering};
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let unique = format!(
                "tokend-config-{tag}-{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            );
            let dir = std::env::temp_dir().join(unique);
            std::fs::create_dir_all(&dir).expect("create temp dir");
            Self(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const EXAMPLE: &str = r#"
[providers.salestim]            # the table name is what `tok get` takes
kind = "static"                 # a fixed secret: API key or personal access token
secret = "${env:SALESTIM_API_KEY}"
header = "X-API-KEY"            # presented as `X-API-KEY: <secret>`

[providers.gitlab]
kind = "static"
secret = "${file:~/.config/gitlab.pat}"
scheme = "bearer"
"#;

    #[test]
    fn examples_parse() {
        let (config, warnings) = parse_ok(EXAMPLE);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(config.source, ConfigSource::File(PathBuf::from(PATH)));
        assert_eq!(config.providers.len(), 2);

        let salestim = &config.providers["salestim"];
        assert_eq!(salestim.name, "salestim");
        assert_eq!(salestim.kind.name(), "static");
        assert_eq!(
            salestim.kind,
            ProviderKind::Static {
                secret: SecretTemplate::parse("${env:SALESTIM_API_KEY}").unwrap()
            }
        );
        assert_eq!(salestim.presentation.header, "X-API-KEY");
        // A custom header without a scheme carries the bare secret.
        assert_eq!(salestim.presentation.scheme, Scheme::Raw);
        assert_eq!(salestim.presentation.basic_user, "");

        let gitlab = &config.providers["gitlab"];
        assert_eq!(gitlab.presentation, Presentation::default());
        assert_eq!(
            gitlab.kind,
            ProviderKind::Static {
                secret: SecretTemplate::parse("${file:~/.config/gitlab.pat}").unwrap()
            }
        );
    }

    #[test]
    fn defaults_and_other_schemes() {
        let (config, _) = parse_ok(
            r#"
[providers.a]
kind = "static"
secret = "${env:A}"

[providers.b]
kind = "static"
secret = "${env:B}"
scheme = "basic"
basic_user = "me"

[providers.c]
kind = "static"
secret = "${env:C}"
scheme = "raw"
header = "PRIVATE-TOKEN"

[providers."d.e_f-1"]
kind = "static"
secret = "${env:D}"
scheme = "basic"
"#,
        );
        let presentation = |name: &str| config.providers[name].presentation.clone();
        assert_eq!(
            presentation("a"),
            Presentation {
                header: "Authorization".to_owned(),
                scheme: Scheme::Bearer,
                basic_user: String::new(),
            }
        );
        assert_eq!(presentation("b").scheme, Scheme::Basic);
        assert_eq!(presentation("b").basic_user, "me");
        assert_eq!(presentation("c").scheme, Scheme::Raw);
        assert_eq!(presentation("c").header, "PRIVATE-TOKEN");
        assert_eq!(presentation("d.e_f-1").basic_user, "");
    }

    #[test]
    fn empty_file_has_no_providers() {
        let (config, warnings) = parse_ok("# nothing yet\n");
        assert!(config.providers.is_empty());
        assert!(warnings.is_empty());
        let (config, _) = parse_ok("[providers]\n");
        assert!(config.providers.is_empty());
    }

    #[test]
    fn header_values() {
        let token = Secret::from("tok");
        let with = |scheme, basic_user: &str| Presentation {
            header: "Authorization".to_owned(),
            scheme,
            basic_user: basic_user.to_owned(),
        };
        assert_eq!(
            with(Scheme::Bearer, "").header_value(&token).expose(),
            "Bearer tok"
        );
        assert_eq!(
            with(Scheme::Basic, "").header_value(&token).expose(),
            "Basic OnRvaw=="
        );
        assert_eq!(
            with(Scheme::Basic, "u").header_value(&token).expose(),
            "Basic dTp0b2s="
        );
        assert_eq!(with(Scheme::Raw, "").header_value(&token).expose(), "tok");
    }

    #[test]
    fn scheme_serde_names() {
        #[derive(Deserialize)]
        struct Holder {
            scheme: Scheme,
        }
        for scheme in Scheme::ALL {
            let holder: Holder = toml::from_str(&format!("scheme = \"{scheme}\"")).unwrap();
            assert_eq!(holder.scheme, scheme);
        }
    }

    /// Each case: description, config text, expected line, expected key, expected fragment.
    #[test]
    fn errors_name_file_line_and_key() {
        let cases: &[(&str, String, usize, Option<&str>, &str)] = &[
            (
                "toml syntax",
                format!("[providers.a]\nkind = \"static\"\nsecret = {SECRET}\n"),
                3,
                None,
                "TOML syntax error",
            ),
            (
                "duplicate table",
                "[providers.a]\nkind = \"static\"\n[providers.a]\nkind = \"static\"\n".to_owned(),
                3,
                None,
                "may appear only once",
            ),
            (
                "unknown top-level key",
                "\n\ntop = 1\n".to_owned(),
                3,
                Some("top-level key `top`"),
                "unknown key",
            ),
            (
                "unknown top-level table",
                "[provider.a]\nkind = \"static\"\n".to_owned(),
                1,
                Some("top-level key `provider`"),
                "unknown key",
            ),
            (
                "unknown provider key",
                format!(
                    "[providers.a]\nkind = \"static\"\nsecret = \"${{env:X}}\"\nsecrett = \"{SECRET}\"\n"
                ),
                4,
                Some("[providers.a] key `secrett`"),
                "known keys: kind, secret",
            ),
            (
                "unknown provider sub-table",
                "[providers.a]\nkind = \"static\"\n\n[providers.a.extra]\nx = 1\n".to_owned(),
                4,
                Some("[providers.a] key `extra`"),
                "unknown key",
            ),
            (
                "missing kind",
                "\n[providers.a]\nsecret = \"${env:X}\"\n".to_owned(),
                2,
                Some("[providers.a] key `kind`"),
                "missing `kind`",
            ),
            (
                "unknown kind",
                "[providers.a]\nsecret = \"${env:X}\"\nkind = \"oauth\"\n".to_owned(),
                3,
                Some("[providers.a] key `kind`"),
                "use one of: static",
            ),
            (
                "kind not a string",
                "[providers.a]\nkind = 3\n".to_owned(),
                2,
                Some("[providers.a] key `kind`"),
                "expected a string, found an integer",
            ),
            (
                "secret not a string",
                "[providers.a]\nkind = \"static\"\nsecret = { env = \"X\" }\n".to_owned(),
                3,
                Some("[providers.a] key `secret`"),
                "expected a string, found a table",
            ),
            (
                "static without secret",
                "[providers.a]\nkind = \"static\"\n".to_owned(),
                1,
                Some("[providers.a] key `secret`"),
                "needs a `secret`",
            ),
            (
                "empty secret",
                "[providers.a]\nkind = \"static\"\nsecret = \"\"\n".to_owned(),
                3,
                Some("[providers.a] key `secret`"),
                "`secret` is empty",
            ),
            (
                "bad secret template",
                format!("[providers.a]\nkind = \"static\"\n\nsecret = \"{SECRET}${{nope:X}}\"\n"),
                4,
                Some("[providers.a] key `secret`"),
                "at byte 14",
            ),
            (
                "unclosed secret reference",
                format!("[providers.a]\nkind = \"static\"\nsecret = \"${{env:{SECRET}\"\n"),
                3,
                Some("[providers.a] key `secret`"),
                "no closing",
            ),
            (
                "bad scheme",
                "[providers.a]\nkind = \"static\"\nsecret = \"${env:X}\"\nscheme = \"digest\"\n"
                    .to_owned(),
                4,
                Some("[providers.a] key `scheme`"),
                "use one of: bearer, basic, raw",
            ),
            (
                "basic_user without basic",
                "[providers.a]\nkind = \"static\"\nsecret = \"${env:X}\"\nbasic_user = \"me\"\n"
                    .to_owned(),
                4,
                Some("[providers.a] key `basic_user`"),
                "scheme is \"bearer\"",
            ),
            (
                "basic_user with raw",
                "[providers.a]\nkind = \"static\"\nscheme = \"raw\"\nbasic_user = \"\"\nsecret = \"${env:X}\"\n"
                    .to_owned(),
                4,
                Some("[providers.a] key `basic_user`"),
                "scheme is \"raw\"",
            ),
            (
                "basic_user with colon",
                "[providers.a]\nkind = \"static\"\nsecret = \"${env:X}\"\nscheme = \"basic\"\nbasic_user = \"a:b\"\n"
                    .to_owned(),
                5,
                Some("[providers.a] key `basic_user`"),
                "contains `:`",
            ),
            (
                "header with space",
                "[providers.a]\nkind = \"static\"\nsecret = \"${env:X}\"\nheader = \"X API\"\n"
                    .to_owned(),
                4,
                Some("[providers.a] key `header`"),
                "not a valid HTTP header name",
            ),
            (
                "header with colon",
                "[providers.a]\nkind = \"static\"\nsecret = \"${env:X}\"\nheader = \"X-Key:\"\n"
                    .to_owned(),
                4,
                Some("[providers.a] key `header`"),
                "not a valid HTTP header name",
            ),
            (
                "empty header",
                "[providers.a]\nkind = \"static\"\nsecret = \"${env:X}\"\nheader = \"\"\n"
                    .to_owned(),
                4,
                Some("[providers.a] key `header`"),
                "not a valid HTTP header name",
            ),
            (
                "header with control character",
                "[providers.a]\nkind = \"static\"\nsecret = \"${env:X}\"\nheader = \"X\\tY\"\n"
                    .to_owned(),
                4,
                Some("[providers.a] key `header`"),
                "not a valid HTTP header name",
            ),
            (
                "provider name with space",
                "\n[providers.\"a b\"]\nkind = \"static\"\nsecret = \"${env:X}\"\n".to_owned(),
                2,
                None,
                "invalid provider name \"a b\"",
            ),
            (
                "empty provider name",
                "[providers.\"\"]\nkind = \"static\"\nsecret = \"${env:X}\"\n".to_owned(),
                1,
                None,
                "invalid provider name \"\"",
            ),
            (
                "provider is not a table",
                format!("[providers]\ngitlab = \"{SECRET}\"\n"),
                2,
                Some("[providers.gitlab]"),
                "a provider must be a table, found a string",
            ),
            (
                "array of provider tables",
                "\n[[providers]]\nkind = \"static\"\n".to_owned(),
                2,
                Some("top-level key `providers`"),
                "expected a table, found an array",
            ),
            (
                "providers is not a table",
                format!("providers = \"{SECRET}\"\n"),
                1,
                Some("top-level key `providers`"),
                "expected a table, found a string",
            ),
        ];
        for (what, text, line, key, fragment) in cases {
            let error = parse_err(text);
            let message = error.to_string();
            assert!(
                message.starts_with(&format!("{PATH}:{line}: ")),
                "{what}: {message}"
            );
            if let Some(key) = key {
                assert!(message.contains(key), "{what}: {message}");
            }
            assert!(message.contains(fragment), "{what}: {message}");
            assert!(!message.contains('\n'), "{what}: {message}");
            assert!(!message.contains(SECRET), "{what}: {message}");
            assert!(!format!("{error:?}").contains(SECRET), "{what}: {error:?}");
        }
    }

    #[test]
    fn literal_secret_warns_without_leaking() {
        let text = format!("[providers.lit]\nkind = \"static\"\n\nsecret = \"{SECRET}\"\n");
        let (config, warnings) = parse_ok(&text);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        let warning = &warnings[0];
        assert_eq!(warning.line, 4);
        assert!(warning.message.contains("[providers.lit]"), "{warning}");
        assert!(warning.message.contains("`secret`"), "{warning}");
        assert!(warning.message.contains("${env:…}"), "{warning}");
        assert!(warning.to_string().starts_with("line 4: "), "{warning}");

        let shown = format!("{config:?} {warnings:?} {warning}");
        assert!(!shown.contains(SECRET), "{shown}");
        let ProviderKind::Static { secret } = &config.providers["lit"].kind;
        assert!(secret.is_literal());
    }

    #[test]
    fn missing_file_is_empty_config() {
        let dir = TempDir::new("missing");
        let path = dir.0.join("config.toml");
        let (config, warnings) = load(&path).unwrap();
        assert_eq!(config.source, ConfigSource::Missing(path.clone()));
        assert_eq!(config.source.path(), path);
        assert!(config.providers.is_empty());
        assert!(warnings.is_empty());
    }

    #[test]
    fn load_reads_file_and_reports_errors_with_path() {
        let dir = TempDir::new("load");
        let path = dir.0.join("config.toml");
        std::fs::write(&path, EXAMPLE).unwrap();
        let (config, _) = load(&path).unwrap();
        assert_eq!(config.source, ConfigSource::File(path.clone()));
        assert_eq!(config.providers.len(), 2);

        std::fs::write(&path, "[providers.a]\nkind = \"oauth\"\n").unwrap();
        let message = load(&path).unwrap_err().to_string();
        assert!(
            message.starts_with(&format!("{}:2: ", path.display())),
            "{message}"
        );
    }

    #[test]
    fn load_rejects_non_utf8() {
        let dir = TempDir::new("utf8");
        let path = dir.0.join("config.toml");
        std::fs::write(&path, b"[providers.a]\nkind = \"st\xffatic\"\n").unwrap();
        let error = load(&path).unwrap_err();
        assert!(
            matches!(error, ConfigError::NotUtf8 { line: 2, .. }),
            "{error}"
        );
        let message = error.to_string();
        assert!(
            message.contains(&format!("{}:2:", path.display())),
            "{message}"
        );
        assert!(message.contains("UTF-8"), "{message}");
    }

    #[test]
    fn load_directory_is_read_error() {
        let dir = TempDir::new("dir");
        let error = load(&dir.0).unwrap_err();
        assert!(matches!(error, ConfigError::Read { .. }), "{error}");
        assert!(
            error.to_string().contains(&dir.0.display().to_string()),
            "{error}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn load_warns_about_readable_file_with_literal_secret() {
        use std::os::unix::fs::PermissionsExt;
        let dir = TempDir::new("mode");
        let path = dir.0.join("config.toml");
        let set_mode = |mode| {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        let literal = format!("[providers.lit]\nkind = \"static\"\nsecret = \"{SECRET}\"\n");

        std::fs::write(&path, &literal).unwrap();
        set_mode(0o644);
        let (_, warnings) = load(&path).unwrap();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        let mode_warning = &warnings[1];
        assert_eq!(mode_warning.line, 3);
        assert!(
            mode_warning
                .message
                .contains(&format!("run chmod 600 {}", path.display())),
            "{mode_warning}"
        );
        assert!(mode_warning.message.contains("0644"), "{mode_warning}");
        assert!(!format!("{warnings:?}").contains(SECRET));

        set_mode(0o600);
        let (_, warnings) = load(&path).unwrap();
        assert_eq!(warnings.len(), 1, "only the literal warning: {warnings:?}");

        // Readable but without a literal secret: nothing to protect.
        std::fs::write(&path, EXAMPLE).unwrap();
        set_mode(0o644);
        let (_, warnings) = load(&path).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");

        set_mode(0o664);
        let (_, warnings) = load(&path).unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].message.contains("writable by group or others"));
        assert_eq!(warnings[0].line, 0);
    }

    #[test]
    fn resolve_path_order() {
        let explicit = Path::new("/explicit/config.toml");
        let with_env = |name: &str| (name == CONFIG_ENV).then(|| OsString::from("/from/env.toml"));
        let empty_env = |name: &str| (name == CONFIG_ENV).then(OsString::new);
        let no_env = |_: &str| None;

        assert_eq!(
            resolve_path(Some(explicit), &with_env).unwrap(),
            PathBuf::from("/explicit/config.toml")
        );
        assert_eq!(
            resolve_path(None, &with_env).unwrap(),
            PathBuf::from("/from/env.toml")
        );
        // Empty TOKEND_CONFIG is ignored like an unset one.
        for env in [&empty_env as &dyn Fn(&str) -> Option<OsString>, &no_env] {
            match resolve_path(None, env) {
                Ok(path) => assert!(path.ends_with("tokend/config.toml"), "{}", path.display()),
                Err(error) => assert!(matches!(error, ConfigError::NoConfigDir)),
            }
        }
    }

    #[test]
    fn hints_list_what_the_format_allows() {
        let schemes: Vec<&str> = Scheme::ALL.iter().map(|scheme| scheme.as_str()).collect();
        assert!(UNKNOWN_SCHEME_HINT.ends_with(&schemes.join(", ")));
        // Every key the hint lists is accepted (this one has them all).
        let (config, _) = parse_ok(
            "[providers.a]\nkind = \"static\"\nsecret = \"${env:X}\"\nheader = \"H\"\n\
             scheme = \"basic\"\nbasic_user = \"u\"\n",
        );
        let listed = UNKNOWN_KEY_HINT.split("known keys: ").nth(1).unwrap();
        assert_eq!(listed.split(", ").count(), 5);
        assert_eq!(config.providers["a"].kind.name(), "static");
        assert!(UNKNOWN_KIND_HINT.ends_with("static") && MISSING_KIND_HINT.contains("static"));
    }

    #[test]
    fn http_token_check() {
        for good in [
            "Authorization",
            "X-API-KEY",
            "PRIVATE-TOKEN",
            "a!#$%&'*+-.^_`|~9",
        ] {
            assert!(is_http_token(good), "{good}");
        }
        for bad in ["", "X API", "X:Y", "X\tY", "X\r\nY", "Ä", "(x)", "a/b"] {
            assert!(!is_http_token(bad), "{bad:?}");
        }
    }
}
