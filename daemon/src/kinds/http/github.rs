//! `preset = "github-app"`: a GitHub App's installation access token. The app signs a JWT with
//! its private key (RS256, `iss` = the app id, `iat` 60 s in the past against clock drift,
//! `exp` 9 minutes ahead: GitHub refuses more than 10), then `POST
//! {base_url}/app/installations/{id}/access_tokens` with it as `Authorization: Bearer`,
//! optionally narrowing the token to some `repositories` and `permissions`. The token is at
//! `/token`; it expires at `/expires_at` (RFC 3339, an hour later). Presented as
//! `Authorization: Bearer`; git routes answer with the user name `x-access-token`.
//!
//! The exchange is an ordinary `kind = "http"` one (a `jwt` table, `${jwt}` in a header,
//! `expires_at`); what the preset adds is finding the installation of an `owner` (an
//! organization or a user) once: `GET /orgs/{owner}/installation`, else `/users/{owner}/…`.

use serde_json::Value;
use url::Url;

use super::exchange::{parse_answer, read_answer, send, sign_jwt};
use super::{ExpiresFrom, HttpBody, HttpExchange, HttpJwt, HttpMethod, JsonTemplate};
use crate::config::ConfigError;
use crate::config::fleet::PROVIDER_KEYS as FLEET;
use crate::config::keys::{Key, PERSIST, PRESENTATION, ROUTES, TIMEOUT};
use crate::config::outlets::OUTLETS;
use crate::config::reader::{CREDENTIAL, Literal, Table};
use crate::config::values::{join_path, literal_template};
use crate::kinds::jwt::{SigningAlg, SigningKey};
use crate::kinds::{FetchCx, FetchError, FetchState, Fetched, KindSpec, ProviderKind, Read};
use crate::upstream::shown;

const GITHUB_API: &str = "https://api.github.com";
/// The REST API version the requests are written against.
const API_VERSION: &str = "2022-11-28";

const OWN: &[Key] = &[
    Key::new(
        "app_id",
        "yes",
        "The App's id (or its client id), the `iss` of the app JWT: a string or an integer.",
    ),
    Key::new(
        "private_key",
        "yes",
        "Credential template of the App's PEM private key as GitHub issues it, e.g. \
         `\"${file:~/.config/tokend/my-app.private-key.pem}\"`.",
    ),
    Key::new(
        "installation_id",
        "this or `owner`",
        "The installation's id (an integer).",
    ),
    Key::new(
        "owner",
        "this or `installation_id`",
        "The organization or user the App is installed on; its installation is looked up once.",
    ),
    Key::new(
        "repositories",
        "no (all the installation's)",
        "Array of repository names (without the owner) the token is limited to.",
    ),
    Key::new(
        "permissions",
        "no (all the installation's)",
        "Table of permission → `read` / `write` / `admin`, e.g. `{ contents = \"read\" }`, to \
         narrow the token.",
    ),
    Key::new(
        "base_url",
        "no (`https://api.github.com`)",
        "The REST API root; GitHub Enterprise Server: `https://HOST/api/v3`.",
    ),
    TIMEOUT,
    PERSIST,
];

pub(crate) const PRESET: KindSpec = KindSpec {
    key: "preset",
    name: "github-app",
    summary: "A GitHub App installation token: an app JWT (RS256, `iat` 60 s in the past, `exp` 9 minutes ahead) for `POST {base_url}/app/installations/{id}/access_tokens`, narrowed to `repositories` and `permissions` when given. The installation of an `owner` is looked up once. The token lives an hour (its `expires_at`) and is refreshed ahead of expiry; presented as `Authorization: Bearer <token>`; git routes answer with the user name `x-access-token`.",
    keys: &[OWN, FLEET, PRESENTATION, ROUTES, OUTLETS],
    read,
    route_username: "x-access-token",
};

/// `preset = "github-app"`.
#[derive(Debug, Clone, PartialEq)]
pub struct GitHubApp {
    /// `app_id`, as written (the `iss` of the app JWT; what the fleet tells Apps apart by).
    pub app_id: String,
    /// The access-token request (its URL names the installation once known).
    pub exchange: HttpExchange,
    /// `base_url`.
    pub base_url: Url,
    /// Which installation.
    pub installation: Installation,
}

/// `installation_id` or `owner`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installation {
    /// Known by id.
    Id(u64),
    /// Looked up from the organization or user it is installed on.
    Owner(String),
}

fn read(
    spec: &KindSpec,
    table: &Table<'_, '_>,
    literals: &mut Vec<Literal>,
) -> Result<Read, ConfigError> {
    table.check_keys(spec)?;
    const OWNER: &str = "preset \"github-app\"";
    let (app_id, app_id_text) = match table.entry("app_id") {
        None => {
            return Err(table.missing(
                "app_id",
                format!("{OWNER} needs `app_id`"),
                "add the App's id from its settings page, e.g. app_id = 123456",
            ));
        }
        Some((name, value)) => match value.get_ref() {
            toml::de::DeValue::Integer(_) => {
                let id = positive_integer(table, "app_id")?;
                (JsonTemplate::Integer(id.cast_signed()), id.to_string())
            }
            toml::de::DeValue::String(_) => {
                let found = table.required_text(
                    "app_id",
                    OWNER,
                    "give the App's id, e.g. app_id = 123456",
                )?;
                (
                    JsonTemplate::String(literal_template(found.text)),
                    found.text.to_owned(),
                )
            }
            other => {
                return Err(table.wrong_type(
                    &name.span(),
                    "app_id",
                    "an integer or a string",
                    other,
                    "give the App's id, e.g. app_id = 123456",
                ));
            }
        },
    };
    let private_key = table.required_template("private_key", CREDENTIAL, OWNER, literals)?;
    let installation = match (table.key_span("installation_id"), table.str("owner")?) {
        (Some(_), Some(owner)) => {
            return Err(table.error(
                &owner.span,
                &owner.key,
                "`installation_id` and `owner` are both set".to_owned(),
                "keep one: owner is looked up to find the installation id",
            ));
        }
        (Some(_), None) => Installation::Id(positive_integer(table, "installation_id")?),
        (None, Some(owner)) => {
            let hint = "give the organization or user name, e.g. owner = \"my-org\"";
            table.non_empty(&owner, hint)?;
            if !owner
                .text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            {
                return Err(table.error(
                    &owner.span,
                    &owner.key,
                    "`owner` is not a GitHub account name".to_owned(),
                    hint,
                ));
            }
            Installation::Owner(owner.text.to_owned())
        }
        (None, None) => {
            return Err(table.missing(
                "installation_id",
                format!("{OWNER} needs `installation_id` or `owner`"),
                "add installation_id = 12345678 (from the installation's settings URL), or \
                 owner = \"my-org\" to look it up",
            ));
        }
    };
    let mut narrowing = Vec::new();
    if let Some(repositories) = repositories(table)? {
        narrowing.push(("repositories".to_owned(), repositories));
    }
    if let Some(permissions) = permissions(table)? {
        narrowing.push(("permissions".to_owned(), permissions));
    }
    let base_url = match table.base_url("base_url")? {
        Some(url) => url,
        None => Url::parse(GITHUB_API).expect("the GitHub API URL parses"),
    };
    let timeout = table.timeout()?;
    let exchange = HttpExchange {
        method: HttpMethod::Post,
        url: access_tokens_url(
            &base_url,
            match &installation {
                Installation::Id(id) => *id,
                Installation::Owner(_) => 0,
            },
        ),
        basic: None,
        headers: vec![
            (
                "Authorization".to_owned(),
                crate::secret::SecretTemplate::parse("Bearer ${jwt}")
                    .expect("the header template parses"),
            ),
            (
                "Accept".to_owned(),
                literal_template("application/vnd.github+json"),
            ),
            (
                "X-GitHub-Api-Version".to_owned(),
                literal_template(API_VERSION),
            ),
        ],
        body: (!narrowing.is_empty()).then(|| HttpBody::Json(JsonTemplate::Object(narrowing))),
        token: "/token".to_owned(),
        expires: ExpiresFrom::At("/expires_at".to_owned()),
        ttl: None,
        ok: None,
        timeout,
        jwt: Some(HttpJwt {
            key: SigningKey {
                private_key,
                alg: SigningAlg::Rs256,
                key_id: None,
                certificate: None,
            },
            claims: JsonTemplate::Object(vec![("iss".to_owned(), app_id)]),
            // GitHub: `exp` no more than 10 minutes ahead, `iat` 60 s back against drift.
            lifetime: std::time::Duration::from_secs(540),
            backdate: std::time::Duration::from_secs(60),
        }),
    };
    let app = GitHubApp {
        app_id: app_id_text,
        exchange,
        base_url,
        installation,
    };
    Ok((ProviderKind::GitHubApp(Box::new(app)), None))
}

/// A positive integer at `key`.
fn positive_integer(table: &Table<'_, '_>, key: &str) -> Result<u64, ConfigError> {
    let Some((name, value)) = table.entry(key) else {
        return Err(table.missing(key, format!("`{key}` is missing"), "add it"));
    };
    let hint = "write the number without quotes, e.g. 12345678";
    match value.get_ref() {
        toml::de::DeValue::Integer(integer) => {
            u64::from_str_radix(integer.as_str(), integer.radix())
                .ok()
                .filter(|id| *id > 0 && i64::try_from(*id).is_ok())
                .ok_or_else(|| {
                    table.error(
                        &value.span(),
                        key,
                        format!("`{key}` is not a positive integer"),
                        hint,
                    )
                })
        }
        other => Err(table.wrong_type(&name.span(), key, "an integer", other, hint)),
    }
}

/// `repositories = ["a", "b"]`.
fn repositories(table: &Table<'_, '_>) -> Result<Option<JsonTemplate>, ConfigError> {
    const HINT: &str = "write repositories = [\"repo-a\", \"repo-b\"]: names without the owner";
    let Some((name, value)) = table.entry("repositories") else {
        return Ok(None);
    };
    let toml::de::DeValue::Array(items) = value.get_ref() else {
        return Err(table.wrong_type(
            &name.span(),
            "repositories",
            "an array of strings",
            value.get_ref(),
            HINT,
        ));
    };
    let mut names = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let key = format!("repositories[{index}]");
        let toml::de::DeValue::String(repo) = item.get_ref() else {
            return Err(table.wrong_type(&item.span(), &key, "a string", item.get_ref(), HINT));
        };
        if repo.is_empty()
            || !repo
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(table.error(&item.span(), &key, "not a repository name".to_owned(), HINT));
        }
        names.push(JsonTemplate::String(literal_template(repo)));
    }
    Ok(Some(JsonTemplate::Array(names)))
}

/// `permissions = { contents = "read" }`.
fn permissions(table: &Table<'_, '_>) -> Result<Option<JsonTemplate>, ConfigError> {
    const HINT: &str = "write permissions = { contents = \"read\", issues = \"write\" }";
    let Some(permissions) = table.table("permissions", HINT)? else {
        return Ok(None);
    };
    let mut fields = Vec::with_capacity(permissions.entries.len());
    for &entry in &permissions.entries {
        let found = permissions.entry_str(entry, HINT)?;
        if !matches!(found.text, "read" | "write" | "admin") {
            return Err(permissions.error(
                &found.span,
                &found.key,
                format!("unknown access level {:?}", found.text),
                "use read, write or admin",
            ));
        }
        fields.push((
            entry.0.get_ref().to_string(),
            JsonTemplate::String(literal_template(found.text)),
        ));
    }
    Ok(Some(JsonTemplate::Object(fields)))
}

fn access_tokens_url(base: &Url, installation: u64) -> Url {
    join_path(
        base,
        &format!("app/installations/{installation}/access_tokens"),
    )
}

/// Looks the installation up if needed (once), then runs the exchange.
pub(crate) async fn fetch(
    cx: &FetchCx<'_>,
    app: &GitHubApp,
    state: &mut FetchState,
) -> Result<Fetched, FetchError> {
    let id = match &app.installation {
        Installation::Id(id) => *id,
        Installation::Owner(owner) => match state.installation {
            Some(id) => id,
            None => {
                let id = lookup(cx, app, owner).await?;
                state.installation = Some(id);
                id
            }
        },
    };
    let mut exchange = app.exchange.clone();
    exchange.url = access_tokens_url(&app.base_url, id);
    let (where_, answer) = send(cx, &exchange).await?;
    if answer.status == 404 {
        // The installation was removed or suspended: a looked-up id is looked up again.
        let next = match &app.installation {
            Installation::Owner(owner) => {
                state.installation = None;
                format!("the next request looks up the App's installation on `{owner}` again")
            }
            Installation::Id(_) => "check installation_id".to_owned(),
        };
        return Err(FetchError::Rejected {
            message: format!(
                "{where_}: HTTP 404: installation {id} is not there (uninstalled or \
                 suspended?); {next}, after `tok invalidate {}`",
                cx.name
            ),
            needs_login: false,
        });
    }
    read_answer(&exchange, &where_, &answer)
}

/// The installation of `owner`: as an organization, else as a user.
async fn lookup(cx: &FetchCx<'_>, app: &GitHubApp, owner: &str) -> Result<u64, FetchError> {
    let jwt = app
        .exchange
        .jwt
        .as_ref()
        .ok_or_else(|| FetchError::Config("github-app without its app JWT".to_owned()))?;
    for kind in ["orgs", "users"] {
        let url = join_path(&app.base_url, &format!("{kind}/{owner}/installation"));
        let where_ = format!("GET {}", shown(&url));
        let signed = sign_jwt(cx, jwt).await?;
        let mut request = cx
            .http
            .client()
            .get(url)
            .bearer_auth(&signed)
            .header(http::header::ACCEPT, "application/vnd.github+json")
            .header("X-GitHub-Api-Version", API_VERSION);
        if let Some(timeout) = app.exchange.timeout {
            request = request.timeout(timeout);
        }
        let request = request
            .build()
            .map_err(|err| FetchError::Config(format!("{where_}: {err}")))?;
        let answer = cx.send(request).await?;
        if answer.status == 404 {
            continue;
        }
        let document = parse_answer(&where_, &answer)?;
        return document
            .get("id")
            .and_then(Value::as_u64)
            .ok_or_else(|| FetchError::Transient {
                message: format!("{where_}: the answer has no installation `id`"),
                retry_after: None,
            });
    }
    Err(FetchError::Rejected {
        message: format!(
            "the App is not installed on `{owner}` (neither an organization nor a user \
             installation was found); install it there, or set installation_id, then run \
             `tok invalidate {}`",
            cx.name
        ),
        needs_login: false,
    })
}
