//! The TOML config file: where it is, how it is read and validated, and what it means.
//!
//! This module owns the file as a whole: finding it ([`resolve_path`]), reading it ([`load`],
//! [`parse`]) into the [`Config`] model the daemon works from, and the warnings about literal
//! secrets and loose file permissions. A missing config file is not an error: the daemon runs
//! with no providers.
//!
//! - [`reader`] and [`values`]: the spanned TOML tree and the typed value readers, so that
//!   every [`ConfigError`] names the file, the line and the key, and says what to do;
//! - [`provider`]: one `[providers.NAME]` table; each kind and preset reads the rest of it
//!   (see [`crate::kinds`]);
//! - [`presentation`], [`routes`] and [`outlets`]: what every provider has besides its kind
//!   (how the token is presented, the credential-helper hosts, the auth proxy and token file);
//! - `references`: the providers one provider needs the token of (`${provider:NAME}`,
//!   `rotate.auth`): they exist and form no cycle;
//! - [`store`]: the `[store]` table;
//! - [`keys`]: every key with its documentation, the one source of the unknown-key hints and
//!   of the README's key tables.
//!
//! The format itself is documented in the README ("Configuration"), whose key tables a test
//! checks against [`keys`].

mod error;
pub(crate) mod fleet;
pub(crate) mod keys;
pub(crate) mod outlets;
pub(crate) mod presentation;
pub(crate) mod provider;
pub(crate) mod reader;
mod references;
pub(crate) mod routes;
pub(crate) mod store;
#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;
pub(crate) mod values;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use tokend_protocol::{CredentialRoute, CredentialTool};
use toml::de::{DeTable, DeValue};
use zeroize::Zeroizing;

pub use self::error::{ConfigError, Warning};
pub use self::fleet::{FleetConfig, Share};
pub use self::keys::reference as key_reference;
pub use self::outlets::{ProxyConfig, ProxyListen, TokenFileConfig, TokenFileFormat};
pub use self::presentation::{Presentation, Scheme};
use self::reader::{Ctx, Tree, article, in_file_order, line_at, one_line, shown_key};
use self::routes::LocatedRoute;
pub use self::store::StoreConfig;
pub use crate::kinds::ProviderKind;

/// Environment variable naming the config file (step 2 of [`resolve_path`]).
pub const CONFIG_ENV: &str = "TOKEND_CONFIG";

/// The loaded configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from.
    pub source: ConfigSource,
    /// Providers by name (the name `tok get` takes).
    pub providers: BTreeMap<String, ProviderConfig>,
    /// The providers' `git` and `docker` tables, in provider-name order. Kept apart from
    /// [`ProviderConfig`] so that editing a route on reload does not drop a cached token.
    pub routes: Vec<CredentialRoute>,
    /// The `[store]` table: where the key of the encrypted store comes from.
    pub store: StoreConfig,
    /// The `[fleet]` table: the shared store of `share`d providers.
    pub fleet: Option<FleetConfig>,
    /// The providers' auth proxies (`proxy = { … }`), in provider-name order. Kept apart from
    /// [`ProviderConfig`], like the routes.
    pub proxies: Vec<ProxyConfig>,
    /// The providers' token files (`file = { … }`), in provider-name order.
    pub token_files: Vec<TokenFileConfig>,
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
    /// Keep the cached access token in the store across restarts (`persist = false` turns it
    /// off; refresh tokens are always kept).
    pub persist: bool,
    /// `share`: the fleet-wide name of this provider's token (needs `[fleet]`).
    pub share: Option<Share>,
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
                routes: Vec::new(),
                store: StoreConfig::default_for(path),
                fleet: None,
                proxies: Vec::new(),
                token_files: Vec::new(),
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
    let env = |name: &str| std::env::var_os(name);
    let parsed = parse_inner(text, path, &env)?;
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
/// Does not look at file permissions (see [`load`]) nor at tokend's environment (defaults that
/// come from it are absent).
pub fn parse(text: &str, path: &Path) -> Result<(Config, Vec<Warning>), ConfigError> {
    parse_with_env(text, path, &|_| None)
}

/// [`parse`], with defaults from the environment `env` (as [`load`] takes them from tokend's).
pub fn parse_with_env(
    text: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<(Config, Vec<Warning>), ConfigError> {
    let parsed = parse_inner(text, path, env)?;
    Ok((parsed.config, parsed.warnings))
}

struct Parsed {
    config: Config,
    warnings: Vec<Warning>,
    /// Line of the first literal secret, for the file-permission warning.
    first_literal_line: Option<usize>,
}

fn parse_inner(
    text: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Parsed, ConfigError> {
    let ctx = Ctx { text, path, env };
    // A spanned tree: every key and value knows where it is, so every problem can name its line.
    let tree = Tree(DeTable::parse(text).map_err(|error| ConfigError::Syntax {
        path: path.to_owned(),
        line: error.span().map_or(1, |span| ctx.line(span.start)),
        message: one_line(error.message()),
        hint: if error.message().contains("duplicate") {
            "each [providers.NAME] table and each key may appear only once"
        } else {
            "fix the TOML on that line (strings need double quotes, e.g. secret = \"${env:NAME}\")"
        },
    })?);

    let mut provider_entries = Vec::new();
    let mut store = StoreConfig::default_for(path);
    let mut fleet = None;
    let mut literals = Vec::new();
    for (key, value) in in_file_order(tree.0.get_ref()) {
        let shown = shown_key(key.get_ref());
        if key.get_ref() == "store" {
            store = ctx.store(key, value)?;
            continue;
        }
        if key.get_ref() == "fleet" {
            let DeValue::Table(fields) = value.get_ref() else {
                return Err(ctx.invalid(
                    &key.span(),
                    None,
                    Some("fleet"),
                    format!(
                        "wrong type: expected a table, found {}",
                        article(value.get_ref().type_str())
                    ),
                    "write it as a [fleet] table with the keys url and key",
                ));
            };
            let table = reader::Table::top_level(&ctx, "fleet", key.span(), fields);
            fleet = Some((fleet::read(&table, path, &mut literals)?, key.span()));
            continue;
        }
        if key.get_ref() != "providers" {
            return Err(ctx.invalid(
                &key.span(),
                None,
                Some(&shown),
                "unknown key".to_owned(),
                "the file only holds [providers.NAME] tables, a [store] and a [fleet] table; \
                 remove the key or move it into a provider table",
            ));
        }
        let DeValue::Table(providers) = value.get_ref() else {
            return Err(ctx.invalid(
                &key.span(),
                None,
                Some(&shown),
                format!(
                    "wrong type: expected a table, found {}",
                    article(value.get_ref().type_str())
                ),
                "declare providers as [providers.NAME] tables",
            ));
        };
        provider_entries = in_file_order(providers);
    }

    let mut providers = BTreeMap::new();
    let mut warnings = Vec::new();
    let mut first_literal_line = None;
    let mut routes: Vec<LocatedRoute> = Vec::new();
    let mut shares: Vec<(String, String, std::ops::Range<usize>)> = Vec::new();
    let mut proxies: Vec<ProxyConfig> = Vec::new();
    let mut token_files: Vec<TokenFileConfig> = Vec::new();
    let fleet_literals = std::mem::take(&mut literals);
    let mut spans = BTreeMap::new();
    for (name, value) in provider_entries {
        spans.insert(name.get_ref().to_string(), name.span());
        let read = ctx.provider(name, value)?;
        let (provider, literals, provider_routes) = (read.config, read.literals, read.routes);
        if let Some((proxy, span)) = read.outlets.proxy {
            let taken = proxies
                .iter()
                .find(|other| match (&other.listen, &proxy.listen) {
                    (ProxyListen::Tcp(a), ProxyListen::Tcp(b)) => a == b && a.port() != 0,
                    (a, b) => a == b,
                });
            if let Some(other) = taken {
                return Err(ctx.invalid(
                    &span,
                    Some(&provider.name),
                    Some("proxy.listen"),
                    format!(
                        "{} is already the proxy of provider {:?}",
                        proxy.listen, other.provider
                    ),
                    "give each proxy its own address or socket",
                ));
            }
            proxies.push(proxy);
        }
        if let Some((file, span)) = read.outlets.file {
            if let Some(other) = token_files.iter().find(|other| other.path == file.path) {
                return Err(ctx.invalid(
                    &span,
                    Some(&provider.name),
                    Some("file.path"),
                    format!(
                        "{} is already the token file of provider {:?}",
                        file.path.display(),
                        other.provider
                    ),
                    "give each token file its own path",
                ));
            }
            token_files.push(file);
        }
        if let Some((share, span)) = read.share {
            if fleet.is_none() {
                return Err(ctx.invalid(
                    &span,
                    Some(&provider.name),
                    Some("share"),
                    "`share` needs a [fleet] table".to_owned(),
                    "add [fleet] with url and key (see the README's Fleet section), or remove \
                     share",
                ));
            }
            if let Some((other, _, _)) = shares.iter().find(|(_, taken, _)| *taken == share) {
                return Err(ctx.invalid(
                    &span,
                    Some(&provider.name),
                    Some("share"),
                    format!("share {share:?} is already the name of provider {other:?}"),
                    "give each shared provider its own share name",
                ));
            }
            shares.push((provider.name.clone(), share, span));
        }
        for located in provider_routes {
            // Docker asks by host alone (a registry, no path, no user name): one provider per
            // host. git sends the path and the user name too, which tell accounts apart.
            let docker = located.route.tool == CredentialTool::Docker;
            let taken = routes.iter().find(|other| {
                let (a, b) = (&other.route, &located.route);
                a.tool == b.tool
                    && a.host == b.host
                    && (docker || (a.path == b.path && a.username == b.username))
            });
            if let Some(other) = taken {
                let (message, hint) = if docker {
                    (
                        format!(
                            "docker host {:?} is already routed to provider {:?}",
                            located.route.host, other.route.provider
                        ),
                        "Docker asks for a registry's credentials by host alone, so a host may \
                         belong to one provider's docker route: remove one",
                    )
                } else {
                    let path = if located.route.path.is_empty() {
                        String::new()
                    } else {
                        format!(" path {:?}", located.route.path)
                    };
                    (
                        format!(
                            "host {:?}{path} with user name {:?} is already routed to provider \
                             {:?}",
                            located.route.host, located.route.username, other.route.provider
                        ),
                        "a git host (with a path and user name) may belong to one provider: \
                         remove one, or tell the accounts apart with `path` (with \
                         credential.useHttpPath) or `username`",
                    )
                };
                return Err(ctx.invalid(
                    &located.span,
                    Some(&provider.name),
                    Some(&located.key),
                    message,
                    hint,
                ));
            }
            routes.push(located);
        }
        for literal in literals {
            first_literal_line = Some(
                first_literal_line.map_or(literal.line, |first: usize| first.min(literal.line)),
            );
            warnings.push(Warning {
                line: literal.line,
                message: format!(
                    "[providers.{}] key `{}` holds a literal secret; prefer ${{env:…}}, \
                     ${{file:…}} or ${{cmd:…}} so the secret is not stored in the config file",
                    provider.name, literal.key
                ),
            });
        }
        providers.insert(provider.name.clone(), provider);
    }
    for literal in fleet_literals {
        first_literal_line =
            Some(first_literal_line.map_or(literal.line, |first: usize| first.min(literal.line)));
        warnings.push(Warning {
            line: literal.line,
            message: format!(
                "key `{}` holds a literal secret; prefer ${{env:…}}, ${{file:…}} or ${{cmd:…}} \
                 so the secret is not stored in the config file",
                literal.key
            ),
        });
    }
    references::check(&ctx, &providers, &spans)?;
    warnings.sort_by_key(|warning| warning.line);
    let mut routes: Vec<CredentialRoute> =
        routes.into_iter().map(|located| located.route).collect();
    routes.sort_by(|a, b| a.provider.cmp(&b.provider));
    Ok(Parsed {
        config: Config {
            source: ConfigSource::File(path.to_owned()),
            providers,
            routes,
            store,
            fleet: fleet.map(|(fleet, _)| fleet),
            proxies: sorted(proxies),
            token_files: sorted_files(token_files),
        },
        warnings,
        first_literal_line,
    })
}

fn sorted(mut proxies: Vec<ProxyConfig>) -> Vec<ProxyConfig> {
    proxies.sort_by(|a, b| a.provider.cmp(&b.provider));
    proxies
}

fn sorted_files(mut files: Vec<TokenFileConfig>) -> Vec<TokenFileConfig> {
    files.sort_by(|a, b| a.provider.cmp(&b.provider));
    files
}
