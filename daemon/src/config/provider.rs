//! One `[providers.NAME]` table: the name rule, the `kind` or `preset` that says which module of
//! [`crate::kinds`] reads the rest, and what every provider has besides its kind (presentation,
//! credential-helper routes, the auth proxy and token file, `persist`).

use tokend_protocol::{NAME_RULE, is_valid_name};
use toml::Spanned;
use toml::de::{DeString, DeValue};

use std::ops::Range;

use super::reader::{Ctx, Literal, Table, article};
use super::routes::LocatedRoute;
use super::{ConfigError, ProviderConfig, fleet, keys, outlets, presentation, routes};
use crate::kinds::{KINDS, KindSpec, PRESETS, ProviderKind};

/// `use one of: static, anonymous, oauth2, http (or a preset instead of kind: …)`.
pub(crate) fn unknown_kind_hint() -> String {
    format!(
        "use one of: {} (or a preset instead of kind: preset = {})",
        listed(&KINDS, ", "),
        quoted(&PRESETS)
    )
}

/// `use one of: timekit, crm.com, …`.
pub(crate) fn unknown_preset_hint() -> String {
    format!("use one of: {}", listed(&PRESETS, ", "))
}

/// What to write when a provider has neither `kind` nor `preset`.
pub(crate) fn missing_kind_hint() -> String {
    format!(
        "add a kind, e.g. kind = \"static\" (known kinds: {}), or a preset, e.g. preset = \
         \"timekit\" (known presets: {})",
        listed(&KINDS, ", "),
        listed(&PRESETS, ", ")
    )
}

fn listed(specs: &[&KindSpec], separator: &str) -> String {
    specs
        .iter()
        .map(|spec| spec.name)
        .collect::<Vec<_>>()
        .join(separator)
}

/// `"a", "b" or "c"`.
fn quoted(specs: &[&KindSpec]) -> String {
    let names: Vec<String> = specs
        .iter()
        .map(|spec| format!("\"{}\"", spec.name))
        .collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => names.join(""),
    }
}

/// One provider table, read.
pub(crate) struct ReadProvider {
    pub(crate) config: ProviderConfig,
    /// The credentials written literally (the caller warns about them).
    pub(crate) literals: Vec<Literal>,
    /// The provider's credential-helper routes.
    pub(crate) routes: Vec<LocatedRoute>,
    /// Its `share` name and where it is written (the caller checks it against `[fleet]`).
    pub(crate) share: Option<(String, Range<usize>)>,
    /// Its auth proxy and token file (the caller checks addresses and paths are not taken).
    pub(crate) outlets: outlets::ReadOutlets,
}

impl Ctx<'_> {
    /// Validates one `[providers.NAME]` table.
    pub(crate) fn provider(
        &self,
        name: &Spanned<DeString<'_>>,
        value: &Spanned<DeValue<'_>>,
    ) -> Result<ReadProvider, ConfigError> {
        let name_span = name.span();
        let name = name.get_ref().as_ref();
        if !is_valid_name(name) {
            return Err(self.invalid(
                &name_span,
                None,
                None,
                format!("invalid provider name {name:?}"),
                format!("{NAME_RULE} (the name is typed on command lines, as in `tok get NAME`)"),
            ));
        }
        let DeValue::Table(fields) = value.get_ref() else {
            return Err(self.invalid(
                &name_span,
                Some(name),
                None,
                format!(
                    "wrong type: a provider must be a table, found {}",
                    article(value.get_ref().type_str())
                ),
                "write it as a [providers.NAME] table with keys such as kind and secret",
            ));
        };
        let table = Table::new(self, name, String::new(), name_span.clone(), fields);
        let mut literals = Vec::new();

        let spec = match (table.str("kind")?, table.str("preset")?) {
            (Some(kind), Some(preset)) => {
                let later = if kind.span.start > preset.span.start {
                    kind
                } else {
                    preset
                };
                return Err(table.error(
                    &later.span,
                    &later.key,
                    "both `kind` and `preset` are set".to_owned(),
                    "keep one: a preset sets the kind itself",
                ));
            }
            (None, None) => {
                return Err(table.missing(
                    "kind",
                    "missing `kind`".to_owned(),
                    missing_kind_hint(),
                ));
            }
            (Some(kind), None) => match KINDS.into_iter().find(|spec| spec.name == kind.text) {
                Some(spec) => spec,
                None => {
                    return Err(table.error(
                        &kind.span,
                        &kind.key,
                        format!("unknown kind {:?}", kind.text),
                        unknown_kind_hint(),
                    ));
                }
            },
            (None, Some(preset)) => {
                match PRESETS.into_iter().find(|spec| spec.name == preset.text) {
                    Some(spec) => spec,
                    None => {
                        return Err(table.error(
                            &preset.span,
                            &preset.key,
                            format!("unknown preset {:?}", preset.text),
                            unknown_preset_hint(),
                        ));
                    }
                }
            }
        };
        let shareable = keys::names(None, spec.keys).contains(&"share");
        if !shareable && let Some(span) = table.key_span("share") {
            return Err(table.error(
                &span,
                "share",
                format!("`share` has no meaning for {}", spec.owner()),
                format!(
                    "remove it: {} fetches nothing, so there is nothing to share (shared can be: \
                     {})",
                    spec.owner(),
                    KINDS
                        .iter()
                        .chain(&PRESETS)
                        .filter(|spec| keys::names(None, spec.keys).contains(&"share"))
                        .map(|spec| spec.owner())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let (kind, defaults) = (spec.read)(spec, &table, &mut literals)?;
        let signs_jwt = match &kind {
            ProviderKind::Http(exchange) => exchange.jwt.is_some(),
            ProviderKind::GitHubApp(app) => app.exchange.jwt.is_some(),
            _ => false,
        };
        if !signs_jwt && kind.templates().iter().any(|t| t.refers_to_jwt()) {
            return Err(self.invalid(
                &name_span,
                Some(name),
                None,
                "a template uses `${jwt}`, but nothing here signs a JWT".to_owned(),
                "`${jwt}` is the JWT a kind \"http\" provider signs from its `jwt = { … }` \
                 table: add one, or remove ${jwt}",
            ));
        }
        let share = fleet::read_share(&table)?;

        let presentation = presentation::read(&table, defaults)?;
        let routes = routes::read(&table, spec.route_username)?;
        let outlets = outlets::read(&table)?;
        // Only the key lists of fetching kinds have `persist`; `check_keys` refused it elsewhere.
        let persist = match table.entry("persist") {
            None => true,
            Some((key, value)) => match value.get_ref() {
                DeValue::Boolean(flag) => *flag,
                other => {
                    return Err(table.wrong_type(
                        &key.span(),
                        &table.key_path("persist"),
                        "a boolean",
                        other,
                        "write persist = false to keep this provider's access tokens out of \
                         the store, or remove the key",
                    ));
                }
            },
        };
        let provider = ProviderConfig {
            name: name.to_owned(),
            kind,
            presentation,
            persist,
            share: share.as_ref().map(|(share, _)| share.clone()),
        };
        Ok(ReadProvider {
            config: provider,
            literals,
            routes,
            share: share.map(|(share, span)| (share.name, span)),
            outlets,
        })
    }
}
