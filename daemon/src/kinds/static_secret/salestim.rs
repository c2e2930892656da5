//! `preset = "salestim"`: SalesTim's application mode, a static key presented as
//! `X-API-KEY: <key>`, which `rotate` can replace through `POST /apps/{id}/regenerateSecret`.

use crate::config::ConfigError;
use crate::config::keys::{Key, PRESENTATION, ROUTES};
use crate::config::outlets::OUTLETS;
use crate::config::presentation::{Presentation, Scheme};
use crate::config::reader::{Literal, Table};
use crate::kinds::{KindSpec, ProviderKind, Read};

const OWN: &[Key] = &[
    Key::new(
        "api_key",
        "yes",
        "Credential template: the SalesTim API key (the fallback until `rotate` first replaced \
         it).",
    ),
    super::ROTATE,
];

pub(crate) const PRESET: KindSpec = KindSpec {
    key: "preset",
    name: "salestim",
    summary: "SalesTim's application mode: a static key presented as `X-API-KEY: <key>`; `rotate` can replace it through `POST /apps/{id}/regenerateSecret`.",
    keys: &[OWN, PRESENTATION, ROUTES, OUTLETS],
    read,
    route_username: crate::kinds::DEFAULT_ROUTE_USERNAME,
};

fn read(
    spec: &KindSpec,
    table: &Table<'_, '_>,
    literals: &mut Vec<Literal>,
) -> Result<Read, ConfigError> {
    table.check_keys(spec)?;
    let found = table.str("api_key")?.ok_or_else(|| {
        table.missing(
            "api_key",
            format!("{} needs `api_key`", spec.owner()),
            "add it, e.g. as a reference such as \"${env:NAME}\"",
        )
    })?;
    let api_key = super::static_key(table, &found, literals)?;
    let rotate = super::rotate::read(table)?;
    let presentation = Presentation {
        header: "X-API-KEY".to_owned(),
        scheme: Scheme::Raw,
        basic_user: String::new(),
    };
    Ok((
        ProviderKind::Static {
            secret: api_key,
            rotate: rotate.map(Box::new),
        },
        Some(presentation),
    ))
}
