//! How a token is presented to the upstream service: the header name and the value format
//! (the `header`, `scheme` and `basic_user` keys, see [`super::keys::PRESENTATION`]), and the
//! header value built from a token.

use std::fmt;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use tokend_protocol::Secret;
use zeroize::Zeroizing;

use super::ConfigError;
use super::reader::Table;
use super::values::is_http_token;

/// How a token is presented to the upstream service: header name and value format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presentation {
    /// HTTP header name, `Authorization` by default.
    pub header: String,
    pub scheme: Scheme,
    /// User name for [`Scheme::Basic`]; empty by default.
    pub basic_user: String,
}

impl Default for Presentation {
    fn default() -> Self {
        Self {
            header: "Authorization".to_owned(),
            scheme: Scheme::Bearer,
            basic_user: String::new(),
        }
    }
}

/// The format of the header value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// `Bearer <token>`.
    #[default]
    Bearer,
    /// `Basic base64(<basic_user>:<token>)`.
    Basic,
    /// `<token>` as is.
    Raw,
}

impl Scheme {
    /// Every scheme, in the order error messages list them.
    pub const ALL: [Self; 3] = [Self::Bearer, Self::Basic, Self::Raw];

    /// The name used in the config file.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bearer => "bearer",
            Self::Basic => "basic",
            Self::Raw => "raw",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scheme| scheme.as_str() == name)
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Presentation {
    /// The header value for `token`: `Bearer <token>`, `Basic base64(user:token)` (standard
    /// alphabet, padded) or `<token>`.
    #[must_use]
    pub fn header_value(&self, token: &Secret) -> Secret {
        let token = token.expose();
        // Buffers are allocated at their final size so no partial copy of the token is left
        // behind by a reallocation; the intermediate `user:token` is wiped on drop.
        match self.scheme {
            Scheme::Raw => Secret::from(token),
            Scheme::Bearer => {
                let mut value = String::with_capacity("Bearer ".len() + token.len());
                value.push_str("Bearer ");
                value.push_str(token);
                Secret::new(value)
            }
            Scheme::Basic => {
                let mut credentials = Zeroizing::new(String::with_capacity(
                    self.basic_user.len() + 1 + token.len(),
                ));
                credentials.push_str(&self.basic_user);
                credentials.push(':');
                credentials.push_str(token);
                let encoded_len = base64::encoded_len(credentials.len(), true).unwrap_or(0);
                let mut value = String::with_capacity("Basic ".len() + encoded_len);
                value.push_str("Basic ");
                base64::engine::general_purpose::STANDARD
                    .encode_string(credentials.as_bytes(), &mut value);
                Secret::new(value)
            }
        }
    }
}

/// Validates the presentation keys. `defaults` are a preset's; without, the built-in defaults
/// apply (and a custom `header` makes the default scheme `raw`).
pub(crate) fn read(
    table: &Table<'_, '_>,
    defaults: Option<Presentation>,
) -> Result<Presentation, ConfigError> {
    let from_preset = defaults.is_some();
    let mut presentation = defaults.unwrap_or_default();

    if let Some(header) = table.str("header")? {
        if !is_http_token(header.text) {
            return Err(table.error(
                &header.span,
                &header.key,
                "`header` is not a valid HTTP header name".to_owned(),
                "use a header name such as \"Authorization\" or \"X-API-KEY\" \
                 (no spaces, colons or control characters)",
            ));
        }
        presentation.header = header.text.to_owned();
        if !from_preset && !presentation.header.eq_ignore_ascii_case("authorization") {
            // Custom headers (X-API-KEY and the like) carry the bare secret by default.
            presentation.scheme = Scheme::Raw;
        }
    }

    if let Some(scheme) = table.str("scheme")? {
        presentation.scheme = Scheme::from_name(scheme.text).ok_or_else(|| {
            table.error(
                &scheme.span,
                &scheme.key,
                format!("unknown scheme {:?}", scheme.text),
                format!("use one of: {}", Scheme::ALL.map(Scheme::as_str).join(", ")),
            )
        })?;
    }

    if let Some(user) = table.str("basic_user")? {
        if presentation.scheme != Scheme::Basic {
            return Err(table.error(
                &user.span,
                &user.key,
                format!(
                    "`basic_user` is set but scheme is \"{}\"",
                    presentation.scheme
                ),
                "remove basic_user, or set scheme = \"basic\"",
            ));
        }
        if user.text.contains(|c: char| c == ':' || c.is_control()) {
            return Err(table.error(
                &user.span,
                &user.key,
                "`basic_user` contains `:` or a control character".to_owned(),
                "Basic authentication user names cannot contain them; fix the user name",
            ));
        }
        presentation.basic_user = user.text.to_owned();
    }

    Ok(presentation)
}
