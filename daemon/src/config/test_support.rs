//! Helpers of the config tests, shared by the tests of every kind (they read config text
//! through [`super::parse`], the public entry point).

#![allow(dead_code)]

use std::path::Path;

use url::Url;

use super::{Config, ConfigError, Warning, parse};
use crate::kinds::ProviderKind;
use crate::kinds::http::{HttpExchange, JsonTemplate};
use crate::secret::SecretTemplate;

pub(crate) const PATH: &str = "/etc/tokend-test/config.toml";

/// Stands in for a real secret: must never show up in messages or `Debug` output.
pub(crate) const SECRET: &str = "hunter2-sekrit";

pub(crate) fn parse_ok(text: &str) -> (Config, Vec<Warning>) {
    parse(text, Path::new(PATH)).unwrap_or_else(|error| panic!("{error}"))
}

pub(crate) fn parse_err(text: &str) -> ConfigError {
    match parse(text, Path::new(PATH)) {
        Ok((config, _)) => panic!("expected an error, got {config:?}"),
        Err(error) => error,
    }
}

/// Runs error cases: description, config text, expected line, expected key, expected
/// fragment. Every message names the file and line, is one line, and never shows `SECRET`.
pub(crate) fn check_errors(cases: &[(&str, String, usize, Option<&str>, &str)]) {
    let mut failures = Vec::new();
    for (what, text, line, key, fragment) in cases {
        let error = parse_err(text);
        let message = error.to_string();
        let ok = message.starts_with(&format!("{PATH}:{line}: "))
            && key.is_none_or(|key| message.contains(key))
            && message.contains(fragment)
            && !message.contains('\n')
            && !message.contains(SECRET)
            && !format!("{error:?}").contains(SECRET);
        if !ok {
            failures.push(format!("{what}: {message}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

pub(crate) fn tpl(text: &str) -> SecretTemplate {
    SecretTemplate::parse(text).unwrap()
}

pub(crate) fn url(text: &str) -> Url {
    Url::parse(text).unwrap()
}

pub(crate) fn json_str(text: &str) -> JsonTemplate {
    JsonTemplate::String(tpl(text))
}

pub(crate) fn object(fields: &[(&str, JsonTemplate)]) -> JsonTemplate {
    JsonTemplate::Object(
        fields
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.clone()))
            .collect(),
    )
}

pub(crate) fn http(config: &Config, name: &str) -> HttpExchange {
    match &config.providers[name].kind {
        ProviderKind::Http(exchange) => (**exchange).clone(),
        other => panic!("{name}: expected kind http, got {other:?}"),
    }
}
