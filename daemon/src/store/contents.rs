//! What the store holds: rotated refresh tokens, cached access tokens with their absolute
//! expiry (and id_tokens), keys replaced through a `rotate` table, user secrets, and the auth
//! proxies' capabilities. Serialized as JSON inside the encrypted envelope
//! ([`super::format`]); every field has a default, so a store written by an older tokend opens.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokend_protocol::Secret;

/// What the store holds.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Contents {
    /// The refresh token in force per provider, once the server rotated the configured one.
    #[serde(default)]
    pub(crate) refresh_tokens: BTreeMap<String, StoredRefresh>,
    /// The last access token per provider (unless the provider says `persist = false`).
    #[serde(default)]
    pub(crate) access_tokens: BTreeMap<String, StoredAccess>,
    /// User secrets (`tok secret set NAME`), for `${secret:NAME}` in the config.
    #[serde(default)]
    pub(crate) secrets: BTreeMap<String, StoredSecret>,
    /// The capability of each provider's TCP auth proxy (the path prefix `tok proxy-url`
    /// prints), kept so that a URL handed to a program survives a restart.
    #[serde(default)]
    pub(crate) proxy_capabilities: BTreeMap<String, StoredSecret>,
    /// The key in force per static provider once its `rotate` table replaced the configured one.
    #[serde(default)]
    pub(crate) rotated_keys: BTreeMap<String, StoredRotated>,
    /// Since when (Unix seconds) a rotating provider's configured key has been in use: where
    /// the `every` schedule of a key tokend never rotated starts.
    #[serde(default)]
    pub(crate) key_since: BTreeMap<String, u64>,
}

/// A key obtained through a provider's `rotate` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredRotated {
    #[serde(with = "secret_serde")]
    pub(crate) key: Secret,
    /// The configured key this one replaced (directly or through earlier rotations): if the
    /// user configures another one, the rotated key is abandoned for it.
    #[serde(with = "secret_serde")]
    pub(crate) origin: Secret,
    /// When it was obtained (Unix seconds).
    pub(crate) rotated_at_unix: u64,
}

/// A user secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredSecret {
    #[serde(with = "secret_serde")]
    pub(crate) value: Secret,
    /// When it was set (Unix seconds).
    pub(crate) set_at_unix: u64,
}

/// A rotated refresh token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredRefresh {
    #[serde(with = "secret_serde")]
    pub(crate) token: Secret,
    /// The configured refresh token this one descends from: if the user configures another one,
    /// the stored chain is abandoned for it.
    #[serde(with = "secret_serde")]
    pub(crate) origin: Secret,
}

/// A cached access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredAccess {
    #[serde(with = "secret_serde")]
    pub(crate) token: Secret,
    /// Absolute expiry (Unix seconds); `None`: valid until invalidated.
    pub(crate) expires_at_unix: Option<u64>,
    /// The provider's configuration it was obtained with (its `Debug` form, which shows no
    /// secret): a token obtained under another configuration is not served.
    pub(crate) config: String,
    /// The id_token that came with it (its expiry is its own `exp`).
    #[serde(default, with = "option_secret_serde")]
    pub(crate) id_token: Option<Secret>,
}

/// `Option<Secret>` as a JSON string or null.
mod option_secret_serde {
    use super::{Deserialize, Deserializer, Secret, Serializer};

    pub(super) fn serialize<S: Serializer>(
        secret: &Option<Secret>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match secret {
            Some(secret) => serializer.serialize_some(secret.expose()),
            None => serializer.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Secret>, D::Error> {
        Option::<String>::deserialize(deserializer).map(|text| text.map(Secret::new))
    }
}

/// `Secret` as a JSON string.
mod secret_serde {
    use super::{Deserialize, Deserializer, Secret, Serializer};

    pub(super) fn serialize<S: Serializer>(
        secret: &Secret,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(secret.expose())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Secret, D::Error> {
        String::deserialize(deserializer).map(Secret::new)
    }
}
