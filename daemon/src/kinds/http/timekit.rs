//! `preset = "timekit"`: Timekit's App-Token. `GET {base_url}/v2/app?include=app_token` with HTTP
//! Basic `email:api_key` and the headers `Content-Type: application/json` and `Timekit-App:
//! {app}`; the token is at `/data/app_token/0/token` and has no expiry. It is presented as
//! `Authorization: Basic base64(":" + token)`.

use url::Url;

use super::{BasicPair, ExpiresFrom, HttpExchange, HttpMethod, basic_user};
use crate::config::ConfigError;
use crate::config::fleet::PROVIDER_KEYS as FLEET;
use crate::config::keys::{Key, PERSIST, PRESENTATION, ROUTES, TIMEOUT};
use crate::config::outlets::OUTLETS;
use crate::config::presentation::{Presentation, Scheme};
use crate::config::reader::{CREDENTIAL, Literal, NON_EMPTY_TEXT, Table};
use crate::config::values::{join_path, literal_template};
use crate::kinds::{KindSpec, ProviderKind, Read};

const TIMEKIT_BASE_URL: &str = "https://api.timekit.io";

const OWN: &[Key] = &[
    Key::new(
        "app",
        "yes",
        "Plain text: the app slug, sent in the `Timekit-App` header.",
    ),
    Key::new("email", "yes", "The account e-mail (template)."),
    Key::new("api_key", "yes", "Credential template."),
    Key::new("base_url", "no (`https://api.timekit.io`)", "The API root."),
    TIMEOUT,
    PERSIST,
];

pub(crate) const PRESET: KindSpec = KindSpec {
    key: "preset",
    name: "timekit",
    summary: "Timekit's App-Token: `GET {base_url}/v2/app?include=app_token` with Basic `email:api_key` and the headers `Content-Type: application/json` and `Timekit-App: {app}`. The token is at `/data/app_token/0/token`, has no expiry, and is presented as `Authorization: Basic base64(\":\" + token)`.",
    keys: &[OWN, FLEET, PRESENTATION, ROUTES, OUTLETS],
    read,
    route_username: crate::kinds::DEFAULT_ROUTE_USERNAME,
};

/// `preset = "timekit"`: Timekit's App-Token endpoint.
fn read(
    spec: &KindSpec,
    table: &Table<'_, '_>,
    literals: &mut Vec<Literal>,
) -> Result<Read, ConfigError> {
    table.check_keys(spec)?;
    const OWNER: &str = "preset \"timekit\"";
    let app = table.required_text(
        "app",
        OWNER,
        "add the app slug, as sent in the Timekit-App header, e.g. app = \"my-app\"",
    )?;
    if app.text.chars().any(char::is_control) {
        return Err(table.error(
            &app.span,
            &app.key,
            "`app` contains a control character".to_owned(),
            "give the plain app slug",
        ));
    }
    let email = table.str("email")?.ok_or_else(|| {
        table.missing(
            "email",
            format!("{OWNER} needs `email`"),
            "add the account e-mail, e.g. email = \"me@example.com\"",
        )
    })?;
    let email = basic_user(table, &email, NON_EMPTY_TEXT, literals)?;
    let api_key = table.required_template("api_key", CREDENTIAL, OWNER, literals)?;
    let base = match table.base_url("base_url")? {
        Some(base) => base,
        None => Url::parse(TIMEKIT_BASE_URL).expect("the default Timekit URL is valid"),
    };
    let mut url = join_path(&base, "v2/app");
    url.set_query(Some("include=app_token"));
    let timeout = table.timeout()?;

    let exchange = HttpExchange {
        method: HttpMethod::Get,
        url,
        basic: Some(BasicPair {
            user: email,
            password: api_key,
        }),
        // As in Timekit's documented request.
        headers: vec![
            (
                "Content-Type".to_owned(),
                literal_template("application/json"),
            ),
            ("Timekit-App".to_owned(), literal_template(app.text)),
        ],
        body: None,
        token: "/data/app_token/0/token".to_owned(),
        expires: ExpiresFrom::Unknown,
        ttl: None,
        ok: None,
        timeout,
        jwt: None,
    };
    // The App-Token is then sent as HTTP Basic with an empty user name.
    let presentation = Presentation {
        header: "Authorization".to_owned(),
        scheme: Scheme::Basic,
        basic_user: String::new(),
    };
    Ok((ProviderKind::Http(Box::new(exchange)), Some(presentation)))
}
