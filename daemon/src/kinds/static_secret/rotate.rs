//! A static key that an API replaces (`rotate = { … }`): its keys, their validation and the
//! request that obtains a new key. SalesTim's document: "The API key could also be regenerated
//! at any time by making a POST to /apps/{id}/regenerateSecret" (authenticated in delegated
//! mode).
//!
//! The request is `method url` with the header of provider `auth` (its current token, through
//! its cache) and `Accept: application/json`; the new key is the string at the JSON pointer
//! `secret` of a 2xx answer. When it runs, what is stored first and what is served is the
//! provider runtime's business (`crate::provider::rotation`).

use std::time::Duration;

use serde_json::Value;
use tokend_protocol::Secret;
use url::Url;

use crate::config::ConfigError;
use crate::config::keys::Key;
use crate::config::reader::Table;
use crate::kinds::http::exchange::parse_answer;
use crate::kinds::{FetchCx, FetchError, resolve_failure};
use crate::secret::PROVIDER_MIN_TTL;
use crate::upstream::shown;

/// The keys of `rotate = { … }`.
pub(crate) const KEYS: &[Key] = &[
    Key::new(
        "method",
        "no (`POST`)",
        "`POST`, `PUT` or `GET` (any case): the method of the request that issues a new key.",
    ),
    Key::new(
        "url",
        "yes",
        "The endpoint that issues a new key (http or https), e.g. \
         `https://api.salestim.io/v1.0/apps/ID/regenerateSecret`.",
    ),
    Key::new(
        "auth",
        "yes",
        "The provider whose header authenticates the request (e.g. an `azure-ad` provider): \
         its current token, through its cache.",
    ),
    Key::new(
        "secret",
        "yes",
        "JSON pointer to the new key in the answer, e.g. `/apiKey`.",
    ),
    Key::new(
        "every",
        "no",
        "Rotate on a schedule, e.g. `30d` (at least `1m`): counted from the last rotation, `tok \
         rotate` included (from when tokend first served a key it never rotated). Without it, \
         only `tok rotate NAME` rotates.",
    ),
    Key::new(
        "timeout",
        "no (10 s)",
        "The whole request must finish within this time (`1s` to `120s`).",
    ),
];

/// `rotate = { … }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// `method` (default `POST`).
    pub method: RotateMethod,
    /// `url`.
    pub url: Url,
    /// `auth`: the provider whose header authenticates the request.
    pub auth: String,
    /// `secret`: JSON pointer to the new key.
    pub secret: String,
    /// `every`: the schedule, if any.
    pub every: Option<Duration>,
    /// `timeout`.
    pub timeout: Option<Duration>,
}

/// The method of a rotation request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RotateMethod {
    /// `POST` (SalesTim's).
    #[default]
    Post,
    /// `PUT`.
    Put,
    /// `GET`.
    Get,
}

impl RotateMethod {
    fn as_reqwest(self) -> reqwest::Method {
        match self {
            Self::Post => reqwest::Method::POST,
            Self::Put => reqwest::Method::PUT,
            Self::Get => reqwest::Method::GET,
        }
    }
}

/// The shortest `every`: each rotation asks the API for a key and writes the store.
pub(crate) const MIN_EVERY: Duration = Duration::from_secs(60);

const HINT: &str = "write it as rotate = { url = \"https://…/regenerateSecret\", auth = \
     \"PROVIDER\", secret = \"/apiKey\" } (optionally with method and every)";

/// Reads the provider's `rotate` table, if any. `auth` is checked against the other providers
/// once all are read.
pub(crate) fn read(table: &Table<'_, '_>) -> Result<Option<Rotation>, ConfigError> {
    let Some(rotate) = table.table("rotate", HINT)? else {
        return Ok(None);
    };
    rotate.check_keys_of(None, &[KEYS], "`rotate`")?;
    let method = match rotate.str("method")? {
        None => RotateMethod::Post,
        Some(found) => match found.text.to_ascii_uppercase().as_str() {
            "POST" => RotateMethod::Post,
            "PUT" => RotateMethod::Put,
            "GET" => RotateMethod::Get,
            _ => {
                return Err(rotate.error(
                    &found.span,
                    &found.key,
                    format!("unknown method {:?}", found.text),
                    "use one of: POST, PUT, GET",
                ));
            }
        },
    };
    let (url, _) = rotate.url("url")?.ok_or_else(|| {
        rotate.missing(
            "url",
            "`rotate` needs a `url`".to_owned(),
            "add the endpoint that issues a new key, e.g. url = \
             \"https://api.example.com/apps/ID/regenerateSecret\"",
        )
    })?;
    let auth = rotate.required_text(
        "auth",
        "`rotate`",
        "name the provider whose header authenticates the rotation, e.g. auth = \
         \"salestim-admin\"",
    )?;
    if auth.text == table.provider {
        return Err(rotate.error(
            &auth.span,
            &auth.key,
            "`auth` names this provider itself".to_owned(),
            "the key being replaced cannot authenticate its own replacement here; name \
             another provider (e.g. the administrator's azure-ad login)",
        ));
    }
    let secret = rotate.pointer("secret")?.ok_or_else(|| {
        rotate.missing(
            "secret",
            "`rotate` needs `secret`".to_owned(),
            "add the JSON pointer to the new key in the answer, e.g. secret = \"/apiKey\"",
        )
    })?;
    // The duration grammar refuses zero.
    let every = rotate.duration("every")?;
    if let Some(every) = every
        && every < MIN_EVERY
        && let Some(found) = rotate.str("every")?
    {
        return Err(rotate.error(
            &found.span,
            &found.key,
            format!("`every` = {:?} is shorter than a minute", found.text),
            "rotate at most once a minute, e.g. every = \"30d\" (`tok rotate NAME` rotates \
             now)",
        ));
    }
    let timeout = rotate.timeout()?;
    Ok(Some(Rotation {
        method,
        url,
        auth: auth.text.to_owned(),
        secret,
        every,
        timeout,
    }))
}

/// Asks the API for a new key. The old one may be dead as soon as the request arrives: the
/// caller stops serving it first.
pub(crate) async fn request_new_key(
    cx: &FetchCx<'_>,
    rotation: &Rotation,
) -> Result<Secret, FetchError> {
    let where_ = format!(
        "rotation {} {}",
        rotation.method.as_reqwest(),
        shown(&rotation.url)
    );
    let grant = cx
        .secrets
        .provider_token(&rotation.auth, PROVIDER_MIN_TTL)
        .await
        .map_err(|err| resolve_failure(&format!("{where_}: the `auth` provider's token"), err))?;
    let mut request = cx
        .http
        .client()
        .request(rotation.method.as_reqwest(), rotation.url.clone())
        .header(http::header::ACCEPT, "application/json");
    if let Some(header) = &grant.header {
        cx.sent.record(grant.token.expose());
        let mut value = http::HeaderValue::from_str(header.value.expose()).map_err(|_| {
            FetchError::Config(format!(
                "{where_}: the `auth` provider's header cannot be sent"
            ))
        })?;
        value.set_sensitive(true);
        request = request.header(header.name.as_str(), value);
    }
    if let Some(timeout) = rotation.timeout {
        request = request.timeout(timeout);
    }
    let request = request
        .build()
        .map_err(|err| FetchError::Config(format!("{where_}: {err}")))?;
    let answer = cx.send(request).await?;
    let document = parse_answer(&where_, &answer)?;
    let key = document
        .pointer(&rotation.secret)
        .and_then(Value::as_str)
        .filter(|key| !key.is_empty())
        .ok_or_else(|| FetchError::Transient {
            message: format!(
                "{where_}: the 2xx answer has no new key (a string) at {}; the API may already \
                 have replaced the key, so the one tokend keeps serving may be dead: check \
                 `secret` against the answer's format, then get the app's current key from the \
                 API (or its console), put it in the config and run `tok reload`",
                rotation.secret
            ),
            retry_after: None,
        })?;
    if key.chars().any(char::is_control) {
        return Err(FetchError::Transient {
            message: format!(
                "{where_}: the new key has a control character, which would corrupt the header \
                 it is sent in; it was not taken"
            ),
            retry_after: None,
        });
    }
    Ok(Secret::new(key.to_owned()))
}
