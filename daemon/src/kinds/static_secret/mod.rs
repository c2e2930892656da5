//! `kind = "static"`: a fixed secret (an API key, a personal access token), resolved from its
//! template the first time it is asked for and then cached until invalidated. The `salestim`
//! preset ([`salestim`]) is a static key in `X-API-KEY`. Either may name how an API replaces
//! the key ([`rotate`]); a key tokend rotated is in force instead of the configured one for as
//! long as the configured one is the one it descends from.

pub(crate) mod rotate;
pub(crate) mod salestim;
#[cfg(test)]
mod tests;

pub use self::rotate::Rotation;
use super::{FetchCx, FetchError, FetchState, Fetched, KindSpec, Lifetime, ProviderKind, Read};
use crate::config::ConfigError;
use crate::config::keys::{Key, Keys, PRESENTATION, ROUTES};
use crate::config::outlets::OUTLETS;
use crate::config::reader::{CREDENTIAL, Literal, Table};
use crate::secret::SecretTemplate;
use tokend_protocol::Secret;

const OWN: &[Key] = &[
    Key::new("secret", "yes", "Credential template: the token itself."),
    ROTATE,
];

/// `rotate`, for the static kind and the presets built on it.
pub(crate) const ROTATE: Key = Key::new(
    "rotate",
    "no",
    "`{ url, auth, secret, method, every }`: how an API replaces the key (see [API-key \
     rotation](#api-key-rotation)).",
);

/// The keys of `kind = "static"`.
pub(crate) const KEYS: Keys = &[OWN, PRESENTATION, ROUTES, OUTLETS];

pub(crate) const KIND: KindSpec = KindSpec {
    key: "kind",
    name: "static",
    summary: "A fixed secret (an API key, a personal access token), resolved the first time it is requested and then cached. Presented as `Authorization: Bearer <secret>` unless the presentation keys say otherwise.",
    keys: KEYS,
    read,
    route_username: crate::kinds::DEFAULT_ROUTE_USERNAME,
};

fn read(
    spec: &KindSpec,
    table: &Table<'_, '_>,
    literals: &mut Vec<Literal>,
) -> Result<Read, ConfigError> {
    table.check_keys(spec)?;
    let Some(found) = table.str("secret")? else {
        return Err(table.missing(
            "secret",
            "kind \"static\" needs a `secret`".to_owned(),
            "add one, e.g. secret = \"${env:NAME}\"",
        ));
    };
    let secret = static_key(table, &found, literals)?;
    let rotate = rotate::read(table)?;
    Ok((
        ProviderKind::Static {
            secret,
            rotate: rotate.map(Box::new),
        },
        None,
    ))
}

/// A static key's template: `${provider:…}` has no place in it (a static key is resolved once
/// and kept, while another provider's token expires).
pub(crate) fn static_key(
    table: &Table<'_, '_>,
    found: &crate::config::reader::Str<'_>,
    literals: &mut Vec<Literal>,
) -> Result<SecretTemplate, ConfigError> {
    let secret = table.parse_template(found, CREDENTIAL, literals)?;
    if secret.provider_refs().next().is_some() {
        return Err(table.error(
            &found.span,
            &found.key,
            "a static key cannot be another provider's token (`${provider:…}`)".to_owned(),
            "a static key is resolved once and kept, while the other provider's token expires: \
             use that provider itself, or kind \"http\" to exchange its token",
        ));
    }
    Ok(secret)
}

/// The key in force, valid until invalidated: the one a rotation last obtained while the
/// configured one is still the one it replaced (with or without a `rotate` table now: removing
/// the table stops further rotations, it does not bring back the key the API invalidated), else
/// the configured one.
pub(crate) async fn fetch(
    cx: &FetchCx<'_>,
    secret: &SecretTemplate,
    state: &mut FetchState,
) -> Result<Fetched, FetchError> {
    let configured = cx.resolve("secret", secret).await;
    let key = match (&state.rotated_key, configured) {
        (Some(rotated), Ok(configured)) if state.rotated_origin.as_ref() == Some(&configured) => {
            rotated.clone()
        }
        // The configured source is gone (an unset variable, a removed file): the rotated key
        // still works, the configured one never would again.
        (Some(rotated), Err(_)) => rotated.clone(),
        // No rotation yet, or the user put another key in the config: that one is in force.
        (_, Ok(configured)) => {
            state.rotated_key = None;
            state.rotated_origin = None;
            configured
        }
        (None, Err(error)) => return Err(error),
    };
    Ok(Fetched::new(key, Lifetime::Unbounded))
}

/// The origin a new rotated key descends from: the configured key, or the origin of the
/// rotated key in force.
pub(crate) async fn rotation_origin(
    cx: &FetchCx<'_>,
    secret: &SecretTemplate,
    state: &FetchState,
) -> Result<Secret, FetchError> {
    let configured = cx.resolve("secret", secret).await;
    match (&state.rotated_key, &state.rotated_origin, configured) {
        (Some(_), Some(origin), Ok(configured)) if *origin == configured => Ok(configured),
        (Some(_), Some(origin), Err(_)) => Ok(origin.clone()),
        (_, _, Ok(configured)) => Ok(configured),
        (_, _, Err(error)) => Err(error),
    }
}
