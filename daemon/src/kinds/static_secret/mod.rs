//! `kind = "static"`: a fixed secret (an API key, a personal access token), resolved from its
//! template the first time it is asked for and then cached until invalidated. The `salestim`
//! preset ([`salestim`]) is a static key in `X-API-KEY`.

pub(crate) mod salestim;
#[cfg(test)]
mod tests;

use super::{FetchCx, FetchError, Fetched, KindSpec, Lifetime, ProviderKind, Read};
use crate::config::ConfigError;
use crate::config::keys::{Key, Keys, PRESENTATION, ROUTES};
use crate::config::outlets::OUTLETS;
use crate::config::reader::{CREDENTIAL, Literal, Table};
use crate::secret::SecretTemplate;

const OWN: &[Key] = &[Key::new(
    "secret",
    "yes",
    "Credential template: the token itself.",
)];

/// The keys of `kind = "static"`.
pub(crate) const KEYS: Keys = &[OWN, PRESENTATION, ROUTES, OUTLETS];

pub(crate) const KIND: KindSpec = KindSpec {
    key: "kind",
    name: "static",
    summary: "A fixed secret (an API key, a personal access token), resolved the first time it is requested and then cached. Presented as `Authorization: Bearer <secret>` unless the presentation keys say otherwise.",
    keys: KEYS,
    read,
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
    let secret = table.parse_template(&found, CREDENTIAL, literals)?;
    Ok((ProviderKind::Static { secret }, None))
}

/// The secret itself, valid until invalidated.
pub(crate) async fn fetch(
    cx: &FetchCx<'_>,
    secret: &SecretTemplate,
) -> Result<Fetched, FetchError> {
    Ok(Fetched::new(
        cx.resolve("secret", secret).await?,
        Lifetime::Unbounded,
        None,
    ))
}
