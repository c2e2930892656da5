//! `preset = "google-service-account"`: a Google service account's JSON key file, as Google
//! issues it (`client_email`, `private_key`, `private_key_id`, `token_uri`), and the JWT-bearer
//! grant (RFC 7523 section 2.1) against its `token_uri`. The assertion (RS256, `kid` =
//! `private_key_id`, `iss` = `client_email`, `aud` = `token_uri`, an hour at most) carries the
//! `scope` for an access token, or the `target_audience` for an ID token (then the ID token is
//! the token, with the expiry of its `exp`). `subject` impersonates a user (domain-wide
//! delegation). The key file is read at every fetch, so a replaced key is picked up.

use std::time::Duration;

use serde_json::Value;
use tokend_protocol::{Secret, clock};
use url::Url;

use super::config::scopes;
use super::grants::form_grant_answer;
use crate::config::ConfigError;
use crate::config::fleet::PROVIDER_KEYS as FLEET;
use crate::config::keys::{Key, PERSIST, PRESENTATION, ROUTES, TIMEOUT};
use crate::config::outlets::OUTLETS;
use crate::config::reader::{Literal, Table};
use crate::kinds::jwt::{SigningAlg, random_jti, sign_with};
use crate::kinds::{FetchCx, FetchError, Fetched, KindSpec, ProviderKind, Read};
use crate::secret::SecretTemplate;
use crate::upstream::shown;

/// How long an assertion lives (Google accepts at most an hour).
const ASSERTION_LIFETIME: Duration = Duration::from_secs(3600);

const OWN: &[Key] = &[
    Key::new(
        "key_file",
        "yes",
        "The JSON key file as Google issues it (`~/` is the home directory; mode 0600): \
         `client_email`, `private_key`, `private_key_id`, `token_uri`. Read at every token \
         request.",
    ),
    Key::new(
        "scopes",
        "this or `audience`",
        "Array of OAuth scopes of the access token, e.g. \
         `[\"https://www.googleapis.com/auth/cloud-platform\"]`.",
    ),
    Key::new(
        "audience",
        "this or `scopes`",
        "An ID token for this audience (e.g. a Cloud Run URL) instead of an access token: \
         the token is the ID token, expiring at its `exp`.",
    ),
    Key::new(
        "subject",
        "no",
        "The user to impersonate (domain-wide delegation): the assertion's `sub`.",
    ),
    TIMEOUT,
    PERSIST,
];

pub(crate) const PRESET: KindSpec = KindSpec {
    key: "preset",
    name: "google-service-account",
    summary: "A Google service account's JSON key file and the JWT-bearer grant (RFC 7523) against its `token_uri`: an RS256 assertion (`kid` = `private_key_id`, `iss` = `client_email`) with the `scopes` for an access token, or the `audience` for an ID token. Presented as `Authorization: Bearer <token>`.",
    keys: &[OWN, FLEET, PRESENTATION, ROUTES, OUTLETS],
    read,
    route_username: crate::kinds::DEFAULT_ROUTE_USERNAME,
};

/// `preset = "google-service-account"`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceAccount {
    /// `key_file`, as a `${file:…}` template (read with the secret-file rules).
    pub key_file: SecretTemplate,
    /// `scopes` (an access token) or `audience` (an ID token).
    pub wants: Wants,
    /// `subject`: the user to impersonate.
    pub subject: Option<String>,
    /// `timeout`.
    pub timeout: Option<Duration>,
}

/// What the token is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wants {
    /// An access token with these scopes.
    Scopes(Vec<String>),
    /// An ID token for this audience.
    Audience(String),
}

fn read(
    spec: &KindSpec,
    table: &Table<'_, '_>,
    _literals: &mut Vec<Literal>,
) -> Result<Read, ConfigError> {
    table.check_keys(spec)?;
    let hint = "give the path of the JSON key file, e.g. key_file = \"~/keys/sa.json\"";
    let found = table.required_text("key_file", &spec.owner(), hint)?;
    if found.text.contains(['}', '\0']) || found.text.contains("${") {
        return Err(table.error(
            &found.span,
            &found.key,
            "`key_file` is a path, not a template".to_owned(),
            hint,
        ));
    }
    let key_file = SecretTemplate::parse(&format!("${{file:{}}}", found.text))
        .map_err(|message| table.error(&found.span, &found.key, message, hint))?;
    let scopes = scopes(table)?;
    let audience = table.str("audience")?;
    let wants = match (scopes.is_empty(), audience) {
        (false, Some(audience)) => {
            return Err(table.error(
                &audience.span,
                &audience.key,
                "`scopes` and `audience` are both set".to_owned(),
                "keep one: scopes for an access token, audience for an ID token",
            ));
        }
        (false, None) => Wants::Scopes(scopes),
        (true, Some(audience)) => {
            table.non_empty(&audience, "give the audience, e.g. a Cloud Run service URL")?;
            Wants::Audience(audience.text.to_owned())
        }
        (true, None) => {
            return Err(table.missing(
                "scopes",
                format!("{} needs `scopes` or `audience`", spec.owner()),
                "add scopes = [\"https://www.googleapis.com/auth/cloud-platform\"], or \
                 audience = \"https://…\" for an ID token",
            ));
        }
    };
    let subject = match table.str("subject")? {
        Some(found) => {
            table.non_empty(&found, "give the user's e-mail address, or remove subject")?;
            Some(found.text.to_owned())
        }
        None => None,
    };
    let account = ServiceAccount {
        key_file,
        wants,
        subject,
        timeout: table.timeout()?,
    };
    Ok((ProviderKind::Google(Box::new(account)), None))
}

/// The fields of a key file tokend uses.
struct KeyFile {
    client_email: String,
    private_key: Secret,
    private_key_id: Option<String>,
    token_uri: Url,
}

/// Reads and checks the key file.
async fn key_file(cx: &FetchCx<'_>, account: &ServiceAccount) -> Result<KeyFile, FetchError> {
    let text = cx.resolve_multiline("key_file", &account.key_file).await?;
    let invalid = |problem: &str| {
        FetchError::Config(format!(
            "key_file: {problem}; give the JSON key file of a service account as Google \
             issues it (IAM > Service accounts > Keys > Add key > JSON)"
        ))
    };
    let json: Value = serde_json::from_str(text.expose()).map_err(|_| invalid("not JSON"))?;
    if let Some(kind) = json.get("type").and_then(Value::as_str)
        && kind != "service_account"
    {
        return Err(invalid(&format!(
            "its type is {kind:?}, not \"service_account\""
        )));
    }
    let field = |name: &str| {
        json.get(name)
            .and_then(Value::as_str)
            .filter(|value| !value.is_empty())
    };
    let private_key = field("private_key").ok_or_else(|| invalid("no `private_key`"))?;
    // The private key is now in `sent` (the file's text is): also as the PEM alone.
    cx.sent.record(private_key);
    let token_uri = field("token_uri")
        .and_then(|uri| Url::parse(uri).ok())
        .filter(|url| matches!(url.scheme(), "http" | "https"))
        .ok_or_else(|| invalid("no http(s) `token_uri`"))?;
    if token_uri.scheme() == "http"
        && !token_uri
            .host_str()
            .is_some_and(tokend_protocol::host::is_loopback_host)
    {
        return Err(invalid("its `token_uri` is plain http to a remote host"));
    }
    Ok(KeyFile {
        client_email: field("client_email")
            .ok_or_else(|| invalid("no `client_email`"))?
            .to_owned(),
        private_key: Secret::from(private_key),
        private_key_id: field("private_key_id").map(str::to_owned),
        token_uri,
    })
}

/// The service account the key file is for, as the fleet tells accounts apart (no secret): its
/// `client_email`, the key's `private_key_id` and the `token_uri`.
pub(crate) async fn account_identity(
    cx: &FetchCx<'_>,
    account: &ServiceAccount,
) -> Result<String, FetchError> {
    let key = key_file(cx, account).await?;
    Ok(format!(
        "{} key {} at {}",
        key.client_email,
        key.private_key_id.as_deref().unwrap_or("-"),
        key.token_uri
    ))
}

/// Signs the assertion and asks `token_uri` for the token.
pub(crate) async fn fetch(
    cx: &FetchCx<'_>,
    account: &ServiceAccount,
) -> Result<Fetched, FetchError> {
    let name = cx.name;
    let key = key_file(cx, account).await?;
    let now = clock::unix_now();
    let mut claims = serde_json::json!({
        "iss": key.client_email,
        "aud": key.token_uri.as_str(),
        "iat": now,
        "exp": now + ASSERTION_LIFETIME.as_secs(),
        "jti": random_jti(),
    });
    match &account.wants {
        Wants::Scopes(scopes) => claims["scope"] = Value::from(scopes.join(" ")),
        Wants::Audience(audience) => claims["target_audience"] = Value::from(audience.as_str()),
    }
    if let Some(subject) = &account.subject {
        claims["sub"] = Value::from(subject.as_str());
    }
    let assertion = sign_with(
        cx,
        &key.private_key,
        SigningAlg::Rs256,
        key.private_key_id.as_deref(),
        None,
        &claims,
    )?;
    let body = {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer");
        form.append_pair("assertion", &assertion);
        Secret::new(form.finish())
    };
    let mut request = cx
        .http
        .client()
        .post(key.token_uri.clone())
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(http::header::ACCEPT, "application/json")
        .body(body.expose().to_owned());
    if let Some(timeout) = account.timeout {
        request = request.timeout(timeout);
    }
    let where_ = format!("token endpoint {}", shown(&key.token_uri));
    let request = request
        .build()
        .map_err(|err| FetchError::Config(format!("{where_}: {err}")))?;
    let answer = cx.send(request).await?;
    form_grant_answer(
        &where_,
        &answer,
        None,
        &format!(
            "the service account's assertion was refused ({{}}); check that the key in key_file \
             is still active and the scopes or audience allowed, then run `tok invalidate {name}`"
        ),
    )
}
