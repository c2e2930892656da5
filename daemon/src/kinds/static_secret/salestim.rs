//! `preset = "salestim"`: SalesTim's application mode, a static key presented as
//! `X-API-KEY: <key>`.

use crate::config::ConfigError;
use crate::config::keys::{Key, PRESENTATION, ROUTES};
use crate::config::outlets::OUTLETS;
use crate::config::presentation::{Presentation, Scheme};
use crate::config::reader::{CREDENTIAL, Literal, Table};
use crate::kinds::{KindSpec, ProviderKind, Read};

const OWN: &[Key] = &[Key::new(
    "api_key",
    "yes",
    "Credential template: the SalesTim API key.",
)];

pub(crate) const PRESET: KindSpec = KindSpec {
    key: "preset",
    name: "salestim",
    summary: "SalesTim's application mode: a static key presented as `X-API-KEY: <key>`.",
    keys: &[OWN, PRESENTATION, ROUTES, OUTLETS],
    read,
};

fn read(
    spec: &KindSpec,
    table: &Table<'_, '_>,
    literals: &mut Vec<Literal>,
) -> Result<Read, ConfigError> {
    table.check_keys(spec)?;
    let api_key = table.required_template("api_key", CREDENTIAL, &spec.owner(), literals)?;
    let presentation = Presentation {
        header: "X-API-KEY".to_owned(),
        scheme: Scheme::Raw,
        basic_user: String::new(),
    };
    Ok((ProviderKind::Static { secret: api_key }, Some(presentation)))
}
