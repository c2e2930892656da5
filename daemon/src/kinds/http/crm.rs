//! `preset = "crm.com"`: CRM.COM's consumer application key.
//! `POST {base_url}/authentication/consumer_application_key/token` with HTTP Basic `api_key:`
//! (empty password) and the documented JSON body, e.g.
//! `{"access_token_identifier": {"authentication_code": …}, "unit": …}`. The exchange fails
//! unless `/status/code` is `"OK"` (the error then carries `/status/description`); the token is
//! at `/data/token`, a JWT whose `exp` gives its expiry (2 hours when it has none). Presented as
//! `authorization: <token>`.

use std::ops::Range;
use std::time::Duration;

use super::{
    BasicPair, ExpiresFrom, HttpBody, HttpExchange, HttpMethod, JsonTemplate, OkCheck, basic_user,
};
use crate::config::ConfigError;
use crate::config::fleet::PROVIDER_KEYS as FLEET;
use crate::config::keys::{Key, PERSIST, PRESENTATION, ROUTES, TIMEOUT};
use crate::config::outlets::OUTLETS;
use crate::config::presentation::{Presentation, Scheme};
use crate::config::reader::{CREDENTIAL, Literal, NON_EMPTY_TEXT, Table};
use crate::config::values::{join_path, literal_template};
use crate::kinds::{KindSpec, ProviderKind, Read};
use crate::secret::SecretTemplate;

const CRM_IDENTIFY_HINT: &str = "give exactly one of: authentication_code; identifier and \
     pass_code; jwt and organisation";

/// The CRM.COM ways to identify the consumer; exactly one is used.
const CRM_IDENTIFIERS: [&[&str]; 3] = [
    &["authentication_code"],
    &["identifier", "pass_code"],
    &["jwt", "organisation"],
];

/// CRM.COM tokens expire after two hours; used when the JWT has no usable `exp`.
pub(crate) const CRM_TTL: Duration = Duration::from_secs(2 * 60 * 60);
const OWN: &[Key] = &[
    Key::new(
        "base_url",
        "yes",
        "The Web API root, e.g. `https://crm.example.com/crmapi/rest/v2`.",
    ),
    Key::new("api_key", "yes", "Credential template: the Web API key."),
    Key::new(
        "authentication_code",
        "one way to identify the consumer",
        "Credential template.",
    ),
    Key::new(
        "identifier",
        "one way, with `pass_code`",
        "Template: the consumer's identifier.",
    ),
    Key::new("pass_code", "with `identifier`", "Credential template."),
    Key::new(
        "jwt",
        "one way, with `organisation`",
        "Credential template: a consumer JWT.",
    ),
    Key::new(
        "organisation",
        "with `jwt`",
        "Plain text: the organisation id.",
    ),
    Key::new(
        "unit",
        "no",
        "Plain text: the unit to log in to (default: the user's default unit).",
    ),
    TIMEOUT,
    PERSIST,
];

pub(crate) const PRESET: KindSpec = KindSpec {
    key: "preset",
    name: "crm.com",
    summary: "CRM.COM's consumer application key: `POST {base_url}/authentication/consumer_application_key/token` with Basic `api_key:` and the documented JSON body, e.g. `{\"access_token_identifier\": {\"authentication_code\": …}, \"unit\": …}`. Give exactly one way to identify the consumer: `authentication_code`; `identifier` and `pass_code`; or `jwt` and `organisation`. The exchange fails unless `status.code` is `\"OK\"` (the error then carries `status.description`). The token is at `/data/token`; its expiry comes from the JWT `exp`, else 2 hours. Presented as `authorization: <token>`.",
    keys: &[OWN, FLEET, PRESENTATION, ROUTES, OUTLETS],
    read,
    route_username: crate::kinds::DEFAULT_ROUTE_USERNAME,
};

/// `preset = "crm.com"`: CRM.COM's consumer application key token endpoint.
fn read(
    spec: &KindSpec,
    table: &Table<'_, '_>,
    literals: &mut Vec<Literal>,
) -> Result<Read, ConfigError> {
    table.check_keys(spec)?;
    const OWNER: &str = "preset \"crm.com\"";
    let base = table.base_url("base_url")?.ok_or_else(|| {
        table.missing(
            "base_url",
            format!("{OWNER} needs `base_url`"),
            "add the Web API root, e.g. base_url = \"https://crm.example.com/crmapi/rest/v2\"",
        )
    })?;
    let api_key = table.str("api_key")?.ok_or_else(|| {
        table.missing(
            "api_key",
            format!("{OWNER} needs `api_key`"),
            "add the Web API key, e.g. api_key = \"${env:CRM_API_KEY}\"",
        )
    })?;
    let api_key = basic_user(table, &api_key, CREDENTIAL, literals)?;

    // Exactly one way to identify the consumer: the group of the first key given.
    let mut given: Vec<(Range<usize>, &str, usize)> = CRM_IDENTIFIERS
        .iter()
        .enumerate()
        .flat_map(|(group, keys)| keys.iter().map(move |&key| (key, group)))
        .filter_map(|(key, group)| Some((table.key_span(key)?, key, group)))
        .collect();
    given.sort_by_key(|(span, _, _)| span.start);
    let Some(&(_, first, group)) = given.first() else {
        return Err(table.missing(
            "authentication_code",
            format!("{OWNER} needs a way to identify the consumer"),
            CRM_IDENTIFY_HINT,
        ));
    };
    if let Some((span, key, _)) = given.iter().find(|(_, _, other)| *other != group) {
        return Err(table.error(
            span,
            key,
            format!("`{key}` cannot be combined with `{first}`"),
            CRM_IDENTIFY_HINT,
        ));
    }

    let plain = |key: &str| -> Result<Option<SecretTemplate>, ConfigError> {
        match table.str(key)? {
            Some(found) => {
                table.non_empty(&found, "give it a value, or remove it")?;
                Ok(Some(literal_template(found.text)))
            }
            None => Ok(None),
        }
    };
    let string = JsonTemplate::String;
    let mut body = match group {
        0 => {
            let code =
                table.required_template("authentication_code", CREDENTIAL, OWNER, literals)?;
            vec![(
                "access_token_identifier".to_owned(),
                JsonTemplate::Object(vec![("authentication_code".to_owned(), string(code))]),
            )]
        }
        1 => {
            let identifier =
                table.required_template("identifier", NON_EMPTY_TEXT, OWNER, literals)?;
            let pass_code = table.required_template("pass_code", CREDENTIAL, OWNER, literals)?;
            vec![(
                "access_token_identifier".to_owned(),
                JsonTemplate::Object(vec![
                    ("identifier".to_owned(), string(identifier)),
                    ("pass_code".to_owned(), string(pass_code)),
                ]),
            )]
        }
        _ => {
            let jwt = table.required_template("jwt", CREDENTIAL, OWNER, literals)?;
            let organisation = plain("organisation")?.ok_or_else(|| {
                table.missing(
                    "organisation",
                    format!("{OWNER} needs `organisation` with `jwt`"),
                    "add the organisation id the session is created in, e.g. organisation = \"…\"",
                )
            })?;
            vec![
                ("jwt".to_owned(), string(jwt)),
                ("organisation".to_owned(), string(organisation)),
            ]
        }
    };
    if let Some(unit) = plain("unit")? {
        body.push(("unit".to_owned(), string(unit)));
    }
    let timeout = table.timeout()?;

    let exchange = HttpExchange {
        method: HttpMethod::Post,
        url: join_path(&base, "authentication/consumer_application_key/token"),
        basic: Some(BasicPair {
            user: api_key,
            password: literal_template(""),
        }),
        headers: Vec::new(),
        body: Some(HttpBody::Json(JsonTemplate::Object(body))),
        token: "/data/token".to_owned(),
        expires: ExpiresFrom::Jwt,
        ttl: Some(CRM_TTL),
        ok: Some(OkCheck {
            pointer: "/status/code".to_owned(),
            equals: "OK".to_owned(),
            message: Some("/status/description".to_owned()),
        }),
        timeout,
        jwt: None,
    };
    let presentation = Presentation {
        header: "authorization".to_owned(),
        scheme: Scheme::Raw,
        basic_user: String::new(),
    };
    Ok((ProviderKind::Http(Box::new(exchange)), Some(presentation)))
}
