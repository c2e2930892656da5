//! The `[store]` table: where the key of the encrypted store comes from (see
//! [`crate::store`]).

use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeString, DeValue};

use super::ConfigError;
use super::keys::{self, Key};
use super::reader::{Ctx, STRING_HINT, article, in_file_order, shown_key};
use crate::store::KeySource;

/// The keys of the `[store]` table.
pub(crate) const KEYS: &[Key] = &[
    Key::new(
        "key",
        "no (`file`)",
        "`file`: the key is in a key file (0600), created on first use; `keyring`: in the OS \
         keystore (Secret Service, Keychain, Credential Manager).",
    ),
    Key::new(
        "key_file",
        "no (`store.key` beside the config file)",
        "With `key = \"file\"`: the key file's path (`~/` is the home directory, a relative \
         path is relative to the config file's directory).",
    ),
];

/// The `[store]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// `key = "file"` (the default; `key_file`, else `store.key` beside the config file) or
    /// `key = "keyring"` (the OS keystore).
    pub key: KeySource,
}

impl StoreConfig {
    /// The default for a config file at `config_path`: a key file in its directory (the config
    /// directory, never beside the store it protects).
    #[must_use]
    pub fn default_for(config_path: &Path) -> Self {
        Self {
            key: KeySource::File(default_key_file(config_path)),
        }
    }
}

/// A path as the config writes it (`key_file`, `fleet.ca_file`): `~/` is the home directory; a relative path is relative to the
/// directory of the config file (not to wherever tokend was started).
pub(crate) fn path_beside(config_path: &Path, text: &str) -> PathBuf {
    if let Some(rest) = text.strip_prefix("~/")
        && let Some(dirs) = directories::BaseDirs::new()
    {
        return dirs.home_dir().join(rest);
    }
    config_path.parent().unwrap_or(Path::new(".")).join(text)
}

fn default_key_file(config_path: &Path) -> PathBuf {
    config_path
        .parent()
        .unwrap_or(Path::new("."))
        .join(crate::store::KEY_FILE)
}

impl Ctx<'_> {
    /// Validates the `[store]` table: `key = "file" | "keyring"` and `key_file`.
    pub(crate) fn store(
        &self,
        name: &Spanned<DeString<'_>>,
        value: &Spanned<DeValue<'_>>,
    ) -> Result<StoreConfig, ConfigError> {
        let DeValue::Table(fields) = value.get_ref() else {
            return Err(self.invalid(
                &name.span(),
                None,
                Some("store"),
                format!(
                    "wrong type: expected a table, found {}",
                    article(value.get_ref().type_str())
                ),
                "write it as a [store] table with the keys key and key_file",
            ));
        };
        let mut key = None;
        let mut key_file = None;
        for (field, value) in in_file_order(fields) {
            let shown = format!("store.{}", shown_key(field.get_ref()));
            let DeValue::String(text) = value.get_ref() else {
                return Err(self.invalid(
                    &field.span(),
                    None,
                    Some(&shown),
                    format!(
                        "wrong type: expected a string, found {}",
                        article(value.get_ref().type_str())
                    ),
                    STRING_HINT,
                ));
            };
            match field.get_ref().as_ref() {
                "key" => key = Some((text.as_ref(), value.span(), shown)),
                "key_file" if text.is_empty() => {
                    return Err(self.invalid(
                        &value.span(),
                        None,
                        Some(&shown),
                        "empty path".to_owned(),
                        "write the key file's path, or remove key_file for store.key beside \
                         the config file",
                    ));
                }
                "key_file" => {
                    key_file = Some((path_beside(self.path, text), value.span(), shown));
                }
                _ => {
                    return Err(self.invalid(
                        &field.span(),
                        None,
                        Some(&shown),
                        "unknown key for [store]".to_owned(),
                        keys::unknown_key_hint(None, &[KEYS]),
                    ));
                }
            }
        }
        let file = key_file
            .as_ref()
            .map_or_else(|| default_key_file(self.path), |(path, _, _)| path.clone());
        match key {
            None | Some(("file", _, _)) => Ok(StoreConfig {
                key: KeySource::File(file),
            }),
            Some(("keyring", _, _)) => match key_file {
                Some((_, span, shown)) => Err(self.invalid(
                    &span,
                    None,
                    Some(&shown),
                    "key_file has no meaning with key = \"keyring\"".to_owned(),
                    "remove key_file, or set key = \"file\"",
                )),
                None => Ok(StoreConfig {
                    key: KeySource::Keyring,
                }),
            },
            Some((other, span, shown)) => Err(self.invalid(
                &span,
                None,
                Some(&shown),
                format!("unknown key source {other:?}"),
                "use one of: file (a key file, 0600), keyring (the OS keystore)",
            )),
        }
    }
}
