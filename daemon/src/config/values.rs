//! The typed value readers of a [`Table`]: secret templates (and the literal credentials they
//! warn about), URLs, JSON pointers, durations, the token-request `timeout`, and TOML trees as
//! JSON bodies.

use std::time::Duration;

use tokend_protocol::duration;
use toml::Spanned;
use toml::de::DeValue;
use url::Url;

use super::ConfigError;
use super::reader::{Literal, Rules, Str, TEXT, Table, in_file_order, shown_key};
use crate::kinds::http::JsonTemplate;
use crate::secret::SecretTemplate;

const SECRET_REF_HINT: &str =
    "set it to a reference such as \"${env:NAME}\", \"${file:PATH}\" or \"${cmd:PROGRAM ARGS}\"";
const TEMPLATE_HINT: &str = "fix the reference in the value (write $${ for a literal ${)";
const URL_HINT: &str =
    "write an absolute http or https URL, e.g. \"https://auth.example.com/token\"";
const POINTER_HINT: &str = "write a JSON pointer (RFC 6901) such as \"/data/token\": \
     a `/` before each member name or array index";
const DURATION_HINT: &str = "write a duration such as \"90s\", \"15m\", \"2h\" or \"1d\"";
pub(crate) const TIMEOUT_HINT: &str = "write a duration from 1s to 120s, e.g. \"5s\" or \"2m\"; or remove it \
     for the default of 10s";
/// The longest `timeout` a provider may set (`TIMEOUT_HINT` and the messages say 120s).
pub(crate) const MAX_TIMEOUT: Duration = Duration::from_secs(120);

impl<'a> Table<'a, '_> {
    /// The template at `key`, if present.
    pub(crate) fn template(
        &self,
        key: &str,
        rules: Rules,
        literals: &mut Vec<Literal>,
    ) -> Result<Option<SecretTemplate>, ConfigError> {
        self.str(key)?
            .map(|found| self.parse_template(&found, rules, literals))
            .transpose()
    }

    /// A required template.
    pub(crate) fn required_template(
        &self,
        key: &str,
        rules: Rules,
        owner: &str,
        literals: &mut Vec<Literal>,
    ) -> Result<SecretTemplate, ConfigError> {
        self.template(key, rules, literals)?.ok_or_else(|| {
            self.missing(
                key,
                format!("{owner} needs `{key}`"),
                "add it, e.g. as a reference such as \"${env:NAME}\"",
            )
        })
    }

    pub(crate) fn parse_template(
        &self,
        found: &Str<'_>,
        rules: Rules,
        literals: &mut Vec<Literal>,
    ) -> Result<SecretTemplate, ConfigError> {
        if found.text.is_empty() && !rules.allow_empty {
            return Err(self.error(
                &found.span,
                &found.key,
                format!("`{}` is empty", found.key),
                if rules.credential {
                    SECRET_REF_HINT
                } else {
                    "give it a value"
                },
            ));
        }
        // The parse message says what is wrong and where, without quoting the value.
        let template = SecretTemplate::parse(found.text).map_err(|message| {
            let what = if rules.credential { "secret" } else { "value" };
            self.error(
                &found.span,
                &found.key,
                format!("invalid {what}: {message}"),
                TEMPLATE_HINT,
            )
        })?;
        // A top-level table ([fleet]) is resolved when tokend starts, outside any provider.
        if self.provider.is_empty()
            && (template.refers_to_jwt() || template.provider_refs().next().is_some())
        {
            return Err(self.error(
                &found.span,
                &found.key,
                "`${provider:…}` and `${jwt}` only work in a provider's keys".to_owned(),
                SECRET_REF_HINT,
            ));
        }
        if rules.credential && template.is_literal() && !found.text.is_empty() {
            literals.push(Literal {
                line: self.ctx.line(found.span.start),
                key: found.key.clone(),
            });
        }
        Ok(template)
    }

    /// An http or https URL at `key`, if present. Messages never show the URL (it could carry
    /// credentials).
    pub(crate) fn url(&self, key: &str) -> Result<Option<(Url, Str<'a>)>, ConfigError> {
        let Some(found) = self.str(key)? else {
            return Ok(None);
        };
        let url = Url::parse(found.text).map_err(|error| {
            self.error(
                &found.span,
                &found.key,
                format!("`{}` is not a valid URL: {error}", found.key),
                URL_HINT,
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(self.error(
                &found.span,
                &found.key,
                format!("`{}` is not an http or https URL", found.key),
                URL_HINT,
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(self.error(
                &found.span,
                &found.key,
                format!("`{}` has a user name or password in it", found.key),
                "remove the credentials from the URL and give them through the provider's \
                 credential keys instead (they stay out of logs that way)",
            ));
        }
        Ok(Some((url, found)))
    }

    /// A URL that paths are appended to: no query, no fragment.
    pub(crate) fn base_url(&self, key: &str) -> Result<Option<Url>, ConfigError> {
        let Some((url, found)) = self.url(key)? else {
            return Ok(None);
        };
        if url.query().is_some() || url.fragment().is_some() {
            return Err(self.error(
                &found.span,
                &found.key,
                format!("`{}` has a query or a fragment", found.key),
                "give only scheme, host and path (e.g. \"https://host/api\"): \
                 tokend appends the endpoint path",
            ));
        }
        Ok(Some(url))
    }

    /// A JSON pointer at `key`, if present.
    pub(crate) fn pointer(&self, key: &str) -> Result<Option<String>, ConfigError> {
        let Some(found) = self.str(key)? else {
            return Ok(None);
        };
        self.check_pointer(&found)?;
        Ok(Some(found.text.to_owned()))
    }

    pub(crate) fn check_pointer(&self, found: &Str<'_>) -> Result<(), ConfigError> {
        if !is_json_pointer(found.text) {
            return Err(self.error(
                &found.span,
                &found.key,
                format!("`{}` is not a JSON pointer", found.key),
                POINTER_HINT,
            ));
        }
        Ok(())
    }

    /// A duration at `key`, if present: a token lifetime, so not zero.
    pub(crate) fn duration(&self, key: &str) -> Result<Option<Duration>, ConfigError> {
        let Some(found) = self.str(key)? else {
            return Ok(None);
        };
        match duration::parse(found.text) {
            Ok(duration) if duration.is_zero() => Err(self.error(
                &found.span,
                &found.key,
                "invalid duration: a duration of zero makes every token expired; use at least 1s"
                    .to_owned(),
                DURATION_HINT,
            )),
            Ok(duration) => Ok(Some(duration)),
            Err(err) => Err(self.error(
                &found.span,
                &found.key,
                format!("invalid duration: {err}"),
                DURATION_HINT,
            )),
        }
    }

    /// `timeout`, if present: a duration from 1 s to [`MAX_TIMEOUT`].
    pub(crate) fn timeout(&self) -> Result<Option<Duration>, ConfigError> {
        let Some(found) = self.str("timeout")? else {
            return Ok(None);
        };
        let timeout = match duration::parse(found.text) {
            Ok(timeout) if timeout.is_zero() => {
                return Err(self.error(
                    &found.span,
                    &found.key,
                    "invalid timeout: zero lets no request finish; use at least 1s".to_owned(),
                    TIMEOUT_HINT,
                ));
            }
            Ok(timeout) if timeout < Duration::from_secs(1) => {
                return Err(self.error(
                    &found.span,
                    &found.key,
                    "invalid timeout: less than 1s lets no token request finish".to_owned(),
                    TIMEOUT_HINT,
                ));
            }
            Ok(timeout) => timeout,
            Err(err) => {
                return Err(self.error(
                    &found.span,
                    &found.key,
                    format!("invalid timeout: {err}"),
                    TIMEOUT_HINT,
                ));
            }
        };
        if timeout > MAX_TIMEOUT {
            return Err(self.error(
                &found.span,
                &found.key,
                format!(
                    "`timeout` is {}s: at most {}s",
                    timeout.as_secs(),
                    MAX_TIMEOUT.as_secs()
                ),
                TIMEOUT_HINT,
            ));
        }
        Ok(Some(timeout))
    }

    /// A TOML value as a JSON template: strings become templates, tables objects (in file order).
    pub(crate) fn json(
        &self,
        key: &str,
        value: &Spanned<DeValue<'_>>,
    ) -> Result<JsonTemplate, ConfigError> {
        let span = value.span();
        Ok(match value.get_ref() {
            DeValue::String(text) => {
                let found = Str {
                    text,
                    span,
                    key: key.to_owned(),
                };
                JsonTemplate::String(self.parse_template(&found, TEXT, &mut Vec::new())?)
            }
            DeValue::Integer(integer) => {
                let parsed = i64::from_str_radix(integer.as_str(), integer.radix());
                JsonTemplate::Integer(parsed.map_err(|_| {
                    self.error(
                        &span,
                        key,
                        format!("`{key}` is out of range"),
                        "use a 64-bit integer, or a string",
                    )
                })?)
            }
            DeValue::Float(float) => {
                match float.as_str().parse::<f64>().ok().filter(|f| f.is_finite()) {
                    Some(float) => JsonTemplate::Float(float),
                    None => {
                        return Err(self.error(
                            &span,
                            key,
                            format!("`{key}` is not a finite number"),
                            "JSON has no inf or nan: use a finite number, or a string",
                        ));
                    }
                }
            }
            DeValue::Boolean(flag) => JsonTemplate::Bool(*flag),
            DeValue::Datetime(_) => {
                return Err(self.error(
                    &span,
                    key,
                    format!("`{key}` is a TOML date or time, which JSON does not have"),
                    "write it as a quoted string, e.g. \"2024-01-31\"",
                ));
            }
            DeValue::Array(items) => JsonTemplate::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(index, item)| self.json(&format!("{key}[{index}]"), item))
                    .collect::<Result<_, _>>()?,
            ),
            DeValue::Table(table) => JsonTemplate::Object(
                in_file_order(table)
                    .into_iter()
                    .map(|(name, item)| {
                        let path = format!("{key}.{}", shown_key(name.get_ref()));
                        Ok((name.get_ref().to_string(), self.json(&path, item)?))
                    })
                    .collect::<Result<_, ConfigError>>()?,
            ),
        })
    }
}

/// `base` with `path` appended to its path, whether or not `base` ends with `/`.
pub(crate) fn join_path(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let joined = format!("{}/{path}", base.path().trim_end_matches('/'));
    url.set_path(&joined);
    url
}

/// A template whose value is exactly `text`: for plain config strings that end up where
/// templates are expected (header values, JSON strings).
pub(crate) fn literal_template(text: &str) -> SecretTemplate {
    // Escaping every `${` as `$${` leaves no reference, and only a reference can fail to parse.
    SecretTemplate::parse(&text.replace("${", "$${"))
        .expect("an escaped text has no reference and always parses")
}

/// An RFC 9110 `token` (field names): one or more `tchar`.
pub(crate) fn is_http_token(text: &str) -> bool {
    !text.is_empty()
        && text.bytes().all(|byte| {
            byte.is_ascii_alphanumeric()
                || matches!(
                    byte,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// Whether `pointer` is a syntactically valid JSON pointer (empty, or starting with `/`).
#[must_use]
pub(crate) fn is_json_pointer(pointer: &str) -> bool {
    pointer.is_empty() || pointer.starts_with('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers() {
        assert!(is_json_pointer("/data/token"));
        assert!(is_json_pointer(""));
        assert!(!is_json_pointer("data.token"));
    }
}
