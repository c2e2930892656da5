//! Reading the spanned TOML tree: every key and value knows where it is, so every problem can
//! name the file, the line and the key. [`Table`] is a table under validation (a provider, or
//! one nested in it) with the readers the kinds build on; the typed value readers (templates,
//! URLs, pointers, durations, JSON) are in [`super::values`].

use std::borrow::Cow;
use std::ops::Range;
use std::path::Path;

use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue};
use zeroize::Zeroize;

use super::ConfigError;
use super::keys::{self, Keys};
use crate::kinds::KindSpec;

/// The hint of a value that must be a string.
pub(crate) const STRING_HINT: &str = "write the value as a quoted string";

/// A credential written literally in the file, for the warning.
pub(crate) struct Literal {
    pub(crate) line: usize,
    /// Key path as shown in messages.
    pub(crate) key: String,
}

/// The parsed document. Strings that TOML had to unescape are owned copies of file text (and
/// may be secrets): they are wiped when the tree is dropped.
pub(crate) struct Tree<'i>(pub(crate) Spanned<DeTable<'i>>);

impl Drop for Tree<'_> {
    fn drop(&mut self) {
        wipe_table(self.0.get_mut());
    }
}

fn wipe_table(table: &mut DeTable<'_>) {
    for (_, value) in table.iter_mut() {
        wipe_value(value.get_mut());
    }
}

fn wipe_value(value: &mut DeValue<'_>) {
    match value {
        DeValue::String(Cow::Owned(text)) => text.zeroize(),
        DeValue::Array(items) => {
            for item in items.iter_mut() {
                wipe_value(item.get_mut());
            }
        }
        DeValue::Table(table) => wipe_table(table),
        _ => {}
    }
}

pub(crate) type Entry<'a, 'i> = (&'a Spanned<DeString<'i>>, &'a Spanned<DeValue<'i>>);

/// A table's entries in the order they appear in the file (the map itself is sorted by key).
pub(crate) fn in_file_order<'a, 'i>(table: &'a DeTable<'i>) -> Vec<Entry<'a, 'i>> {
    let mut entries: Vec<Entry<'a, 'i>> = table.iter().collect();
    entries.sort_by_key(|(key, _)| key.span().start);
    entries
}

/// Looks a variable of tokend's environment up (presets that default keys from the platform's
/// variables, such as Azure workload identity's).
pub(crate) type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<std::ffi::OsString>;

/// The text being parsed and its path, for turning spans into located errors; and the
/// environment defaults may come from.
pub(crate) struct Ctx<'a> {
    pub(crate) text: &'a str,
    pub(crate) path: &'a Path,
    pub(crate) env: EnvLookup<'a>,
}

impl Ctx<'_> {
    pub(crate) fn line(&self, offset: usize) -> usize {
        line_at(self.text.as_bytes(), offset)
    }

    pub(crate) fn invalid(
        &self,
        span: &Range<usize>,
        provider: Option<&str>,
        key: Option<&str>,
        problem: String,
        hint: impl Into<Box<str>>,
    ) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.into(),
            line: self.line(span.start),
            provider: provider.map(str::to_owned),
            key: key.map(str::to_owned),
            problem,
            hint: hint.into(),
        }
    }
}

/// A string value and where it is.
pub(crate) struct Str<'a> {
    pub(crate) text: &'a str,
    /// The value's span.
    pub(crate) span: Range<usize>,
    /// Key path as shown in messages.
    pub(crate) key: String,
}

/// How a template-valued key is checked.
#[derive(Clone, Copy)]
pub(crate) struct Rules {
    /// A credential: a literal value warns, errors say "secret".
    pub(crate) credential: bool,
    /// `""` is accepted.
    pub(crate) allow_empty: bool,
}

pub(crate) const CREDENTIAL: Rules = Rules {
    credential: true,
    allow_empty: false,
};
pub(crate) const CREDENTIAL_OR_EMPTY: Rules = Rules {
    credential: true,
    allow_empty: true,
};
pub(crate) const TEXT: Rules = Rules {
    credential: false,
    allow_empty: true,
};
pub(crate) const NON_EMPTY_TEXT: Rules = Rules {
    credential: false,
    allow_empty: false,
};

/// A table under validation: a provider, or one nested in it (`basic`, `headers`, `ok`, …).
pub(crate) struct Table<'a, 'i> {
    pub(crate) ctx: &'a Ctx<'a>,
    pub(crate) provider: &'a str,
    /// Key path of this table inside the provider as shown in messages; empty for the provider.
    pub(crate) path: String,
    /// Where a missing key is reported: the provider name, or the key naming this table.
    pub(crate) anchor: Range<usize>,
    pub(crate) entries: Vec<Entry<'a, 'i>>,
}

impl<'a, 'i> Table<'a, 'i> {
    pub(crate) fn new(
        ctx: &'a Ctx<'a>,
        provider: &'a str,
        path: String,
        anchor: Range<usize>,
        table: &'a DeTable<'i>,
    ) -> Self {
        Self {
            ctx,
            provider,
            path,
            anchor,
            entries: in_file_order(table),
        }
    }

    /// A top-level table such as `[fleet]`: messages name its keys `NAME.KEY`.
    pub(crate) fn top_level(
        ctx: &'a Ctx<'a>,
        name: &str,
        anchor: Range<usize>,
        table: &'a DeTable<'i>,
    ) -> Self {
        Self::new(ctx, "", name.to_owned(), anchor, table)
    }

    /// The variable `name` of tokend's environment, if set and valid Unicode.
    pub(crate) fn env(&self, name: &str) -> Option<String> {
        (self.ctx.env)(name).and_then(|value| value.into_string().ok())
    }

    /// The path of `key` in this table, as shown in messages.
    pub(crate) fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            shown_key(key).into_owned()
        } else {
            format!("{}.{}", self.path, shown_key(key))
        }
    }

    /// An error about `key` (a full key path).
    pub(crate) fn error(
        &self,
        span: &Range<usize>,
        key: &str,
        problem: String,
        hint: impl Into<Box<str>>,
    ) -> ConfigError {
        // A top-level table (`[fleet]`) has no provider: its keys are named `fleet.KEY`.
        let provider = (!self.provider.is_empty()).then_some(self.provider);
        self.ctx.invalid(span, provider, Some(key), problem, hint)
    }

    /// An error about `key` of this table being absent: points at the table.
    pub(crate) fn missing(
        &self,
        key: &str,
        problem: String,
        hint: impl Into<Box<str>>,
    ) -> ConfigError {
        self.error(&self.anchor, &self.key_path(key), problem, hint)
    }

    pub(crate) fn wrong_type(
        &self,
        span: &Range<usize>,
        key: &str,
        expected: &str,
        found: &DeValue<'_>,
        hint: &'static str,
    ) -> ConfigError {
        self.error(
            span,
            key,
            format!(
                "wrong type: expected {expected}, found {}",
                article(found.type_str())
            ),
            hint,
        )
    }

    pub(crate) fn entry(&self, key: &str) -> Option<Entry<'a, 'i>> {
        self.entries
            .iter()
            .copied()
            .find(|(name, _)| name.get_ref().as_ref() == key)
    }

    pub(crate) fn key_span(&self, key: &str) -> Option<Range<usize>> {
        self.entry(key).map(|(name, _)| name.span())
    }

    /// Rejects the first key (in file order) that a kind or preset does not list.
    pub(crate) fn check_keys(&self, spec: &KindSpec) -> Result<(), ConfigError> {
        self.check_keys_of(Some(spec.key), spec.keys, &spec.owner())
    }

    /// Rejects the first key (in file order) that `leading` and `keys` do not list; `owner`
    /// names the table in the message.
    pub(crate) fn check_keys_of(
        &self,
        leading: Option<&'static str>,
        keys: Keys,
        owner: &str,
    ) -> Result<(), ConfigError> {
        let known = keys::names(leading, keys);
        for (name, _) in &self.entries {
            if !known.contains(&name.get_ref().as_ref()) {
                return Err(self.error(
                    &name.span(),
                    &self.key_path(name.get_ref()),
                    format!("unknown key for {owner}"),
                    keys::unknown_key_hint(leading, keys),
                ));
            }
        }
        Ok(())
    }

    /// The string at `key`, if present.
    pub(crate) fn str(&self, key: &str) -> Result<Option<Str<'a>>, ConfigError> {
        self.entry(key)
            .map(|entry| self.entry_str(entry, STRING_HINT))
            .transpose()
    }

    /// An entry's value as a string.
    pub(crate) fn entry_str(
        &self,
        (name, value): Entry<'a, 'i>,
        hint: &'static str,
    ) -> Result<Str<'a>, ConfigError> {
        let key = self.key_path(name.get_ref());
        match value.get_ref() {
            DeValue::String(text) => Ok(Str {
                text,
                span: value.span(),
                key,
            }),
            other => Err(self.wrong_type(&name.span(), &key, "a string", other, hint)),
        }
    }

    /// A required plain string that must not be empty.
    pub(crate) fn required_text(
        &self,
        key: &str,
        owner: &str,
        hint: &'static str,
    ) -> Result<Str<'a>, ConfigError> {
        let found = self
            .str(key)?
            .ok_or_else(|| self.missing(key, format!("{owner} needs `{key}`"), hint))?;
        self.non_empty(&found, hint)?;
        Ok(found)
    }

    pub(crate) fn non_empty(&self, found: &Str<'_>, hint: &'static str) -> Result<(), ConfigError> {
        if found.text.is_empty() {
            return Err(self.error(
                &found.span,
                &found.key,
                format!("`{}` is empty", found.key),
                hint,
            ));
        }
        Ok(())
    }

    /// The nested table at `key`, if present.
    pub(crate) fn table(&self, key: &str, hint: &'static str) -> Result<Option<Self>, ConfigError> {
        let Some((name, value)) = self.entry(key) else {
            return Ok(None);
        };
        let path = self.key_path(key);
        match value.get_ref() {
            DeValue::Table(table) => Ok(Some(Table::new(
                self.ctx,
                self.provider,
                path,
                name.span(),
                table,
            ))),
            other => Err(self.wrong_type(&name.span(), &path, "a table", other, hint)),
        }
    }
}

/// A key as shown in messages: bare keys as they are, others quoted and escaped (so a message
/// stays on one line).
pub(crate) fn shown_key(key: &str) -> Cow<'_, str> {
    if !key.is_empty()
        && key
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-'))
    {
        Cow::Borrowed(key)
    } else {
        Cow::Owned(format!("{key:?}"))
    }
}

/// "an integer", "a string", … for a TOML type name.
pub(crate) fn article(type_name: &str) -> String {
    let vowel = type_name.starts_with(['a', 'e', 'i', 'o', 'u']);
    format!("{} {type_name}", if vowel { "an" } else { "a" })
}

/// 1-based line of a byte offset.
pub(crate) fn line_at(bytes: &[u8], offset: usize) -> usize {
    let end = offset.min(bytes.len());
    bytes[..end].iter().filter(|&&b| b == b'\n').count() + 1
}

pub(crate) fn one_line(message: &str) -> String {
    message.trim().replace('\n', "; ")
}
