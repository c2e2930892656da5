//! The `[fleet]` table (where the shared store is and the key that seals its entries) and the
//! provider keys that opt a provider in (`share`, `on_fleet_down`). See [`crate::fleet`].

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokend_protocol::{NAME_RULE, is_valid_name};

use super::ConfigError;
use super::keys::Key;
use super::reader::{CREDENTIAL, Literal, Table};
use crate::fleet::address::Address;
use crate::secret::SecretTemplate;

/// The keys of the `[fleet]` table.
pub(crate) const KEYS: &[Key] = &[
    Key::new(
        "url",
        "yes",
        "The Redis or Valkey server: `redis://host:port/db`, `rediss://…` (TLS), \
         `redis+unix:///path/to.sock`, or `redis-sentinel://host:port,host:port/MASTER/db` \
         (`rediss-sentinel://` with TLS). No user name or password in it.",
    ),
    Key::new(
        "username",
        "no",
        "Template: a Redis ACL user (its rights need only the keys `tokend:*` and the \
         channels `tokend:*`).",
    ),
    Key::new("password", "no", "Credential template: the Redis password."),
    Key::new(
        "key",
        "yes",
        "Credential template: the fleet key, 32 bytes as 64 hex digits or base64, the same on \
         every machine. It seals every shared entry; key names are keyed hashes.",
    ),
    Key::new(
        "namespace",
        "no (`default`)",
        "Separates fleets that share one Redis (letters, digits, `.`, `_`, `-`).",
    ),
    Key::new(
        "ca_file",
        "no",
        "A PEM file of the CA that signed the server's certificate, for `rediss://` with a \
         private CA.",
    ),
    Key::new(
        "timeout",
        "no (`250ms`)",
        "Each Redis operation must finish within this time (`10ms` to `10s`).",
    ),
];

/// The provider keys of the fleet, for the kinds and presets that fetch tokens.
pub(crate) const PROVIDER_KEYS: &[Key] = &[
    Key::new(
        "share",
        "no",
        "Share this provider's token with every tokend of the fleet under this name (needs \
         `[fleet]`); a provider without it never touches Redis.",
    ),
    Key::new(
        "on_fleet_down",
        "no (`wait`)",
        "With a refresh-token grant, while Redis is down: `wait` (the refresh token is not \
         spent without the fleet lock; the access token is served until it expires) or \
         `local` (refresh locally).",
    ),
];

/// The default time limit of one Redis operation.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(250);
const TIMEOUT_RANGE: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(10));

/// The `[fleet]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetConfig {
    /// `url`, validated: a Redis URL without credentials.
    pub url: Address,
    /// `username`: a Redis ACL user.
    pub username: Option<SecretTemplate>,
    /// `password`.
    pub password: Option<SecretTemplate>,
    /// `key`: resolved and checked when the daemon starts.
    pub key: SecretTemplate,
    /// `namespace` (default `default`).
    pub namespace: String,
    /// `ca_file`.
    pub ca_file: Option<PathBuf>,
    /// `timeout` per Redis operation.
    pub timeout: Duration,
}

/// A provider's `share`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    /// The fleet-wide name of the token.
    pub name: String,
    /// `on_fleet_down = "local"`: refresh without the fleet lock while Redis is down.
    pub local_when_down: bool,
}

/// Reads `[fleet]`.
pub(crate) fn read(
    table: &Table<'_, '_>,
    config_path: &Path,
    literals: &mut Vec<Literal>,
) -> Result<FleetConfig, ConfigError> {
    table.check_keys_of(None, &[KEYS], "[fleet]")?;
    let found = table.required_text(
        "url",
        "[fleet]",
        "add the Redis URL, e.g. url = \"redis://127.0.0.1:6379/0\"",
    )?;
    let url = Address::parse(found.text).map_err(|problem| {
        table.error(
            &found.span,
            &found.key,
            format!("`fleet.url` cannot be used: {problem}"),
            URL_HINT,
        )
    })?;
    let username = table.template("username", super::reader::NON_EMPTY_TEXT, literals)?;
    let password = table.template("password", CREDENTIAL, literals)?;
    let key = table.required_template("key", CREDENTIAL, "[fleet]", literals)?;
    if key.is_literal() {
        // Checked now when it is in the file; a reference is checked when the daemon starts.
        let text = table
            .str("key")?
            .map(|found| found.text.to_owned())
            .unwrap_or_default();
        if let Err(problem) = crate::fleet::crypto::FleetKey::parse(&text) {
            let span = table.key_span("key").unwrap_or_default();
            return Err(table.error(
                &span,
                "fleet.key",
                problem,
                "give 32 random bytes as 64 hex digits or base64, e.g. from \
                 `openssl rand -hex 32`",
            ));
        }
    }
    let namespace = match table.str("namespace")? {
        None => "default".to_owned(),
        Some(found) if is_valid_name(found.text) => found.text.to_owned(),
        Some(found) => {
            return Err(table.error(
                &found.span,
                &found.key,
                format!("invalid fleet namespace {:?}", found.text),
                NAME_RULE,
            ));
        }
    };
    let ca_file = match table.str("ca_file")? {
        None => None,
        Some(found) if found.text.is_empty() => {
            return Err(table.error(
                &found.span,
                &found.key,
                "empty path".to_owned(),
                "write the CA file's path, or remove ca_file",
            ));
        }
        Some(found) => Some(super::store::path_beside(config_path, found.text)),
    };
    let timeout = match table.duration("timeout")? {
        None => DEFAULT_TIMEOUT,
        Some(timeout) if (TIMEOUT_RANGE.0..=TIMEOUT_RANGE.1).contains(&timeout) => timeout,
        Some(_) => {
            let span = table.key_span("timeout").unwrap_or_default();
            return Err(table.error(
                &span,
                "fleet.timeout",
                "`fleet.timeout` is out of range".to_owned(),
                "use a duration from \"10ms\" to \"10s\" (default \"250ms\")",
            ));
        }
    };
    Ok(FleetConfig {
        url,
        username,
        password,
        key,
        namespace,
        ca_file,
        timeout,
    })
}

const URL_HINT: &str = "use redis://host:port/db, rediss://host:port/db, \
     redis+unix:///path/to.sock or redis-sentinel://host:port,host:port/MASTER/db";

/// Reads a provider's `share` and `on_fleet_down`; returns the share and where it is written.
pub(crate) fn read_share(
    table: &Table<'_, '_>,
) -> Result<Option<(Share, Range<usize>)>, ConfigError> {
    let Some(found) = table.str("share")? else {
        if let Some(span) = table.key_span("on_fleet_down") {
            return Err(table.error(
                &span,
                "on_fleet_down",
                "`on_fleet_down` is set but the provider has no `share`".to_owned(),
                "remove it, or share the provider with share = \"NAME\"",
            ));
        }
        return Ok(None);
    };
    if !is_valid_name(found.text) {
        return Err(table.error(
            &found.span,
            &found.key,
            format!("invalid share name {:?}", found.text),
            NAME_RULE,
        ));
    }
    let local_when_down = match table.str("on_fleet_down")? {
        None => false,
        Some(mode) if mode.text == "wait" => false,
        Some(mode) if mode.text == "local" => true,
        Some(mode) => {
            return Err(table.error(
                &mode.span,
                &mode.key,
                format!("unknown on_fleet_down {:?}", mode.text),
                "use one of: wait, local",
            ));
        }
    };
    Ok(Some((
        Share {
            name: found.text.to_owned(),
            local_when_down,
        },
        found.span,
    )))
}
