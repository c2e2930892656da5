//! `kind = "anonymous"`: no credentials at all. No header is sent (`tok header` prints
//! nothing), so the presentation keys, credential-helper routes and token files have no meaning
//! here; an auth proxy forwards without adding a header.

use tokend_protocol::Secret;

use super::{Fetched, KindSpec, Lifetime, ProviderKind, Read};
use crate::config::ConfigError;
use crate::config::keys::{PRESENTATION, ROUTES};
use crate::config::outlets::{FILE, PROXY};
use crate::config::reader::{Literal, Table};

pub(crate) const KIND: KindSpec = KindSpec {
    key: "kind",
    name: "anonymous",
    summary: "No credentials at all: no header is sent (`tok header` prints nothing, exit 0).",
    keys: &[&[PROXY]],
    read,
    route_username: crate::kinds::DEFAULT_ROUTE_USERNAME,
};

fn read(spec: &KindSpec, table: &Table<'_, '_>, _: &mut Vec<Literal>) -> Result<Read, ConfigError> {
    for key in PRESENTATION
        .iter()
        .chain(ROUTES)
        .chain([&FILE])
        .map(|key| key.name)
    {
        if let Some(span) = table.key_span(key) {
            return Err(table.error(
                &span,
                key,
                format!("`{key}` has no meaning for kind \"anonymous\""),
                "remove it: an anonymous provider sends no header at all and has no token",
            ));
        }
    }
    table.check_keys(spec)?;
    Ok((ProviderKind::Anonymous, None))
}

/// The empty token, valid until invalidated (nothing is ever sent with it).
pub(crate) fn fetch() -> Fetched {
    Fetched::new(Secret::from(""), Lifetime::Unbounded)
}

#[cfg(test)]
mod tests {
    use crate::config::test_support::{SECRET, check_errors};

    #[test]
    fn anonymous_errors_name_file_line_and_key() {
        let cases: &[(&str, String, usize, Option<&str>, &str)] = &[
            (
                "anonymous with header",
                "[providers.a]\nkind = \"anonymous\"\nheader = \"X-Key\"\n".to_owned(),
                3,
                Some("[providers.a] key `header`"),
                "no meaning for kind \"anonymous\"",
            ),
            (
                "anonymous with scheme",
                "[providers.a]\nkind = \"anonymous\"\n\nscheme = \"raw\"\n".to_owned(),
                4,
                Some("[providers.a] key `scheme`"),
                "no meaning for kind \"anonymous\"",
            ),
            (
                "anonymous with basic_user",
                "[providers.a]\nkind = \"anonymous\"\nbasic_user = \"u\"\n".to_owned(),
                3,
                Some("[providers.a] key `basic_user`"),
                "sends no header at all",
            ),
            (
                "anonymous with secret",
                format!("[providers.a]\nkind = \"anonymous\"\nsecret = \"{SECRET}\"\n"),
                3,
                Some("[providers.a] key `secret`"),
                "remove it or fix its spelling; known keys: kind",
            ),
        ];
        check_errors(cases);
    }
}
