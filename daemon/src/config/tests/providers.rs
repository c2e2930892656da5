//! Provider tables that parse (the examples, an empty file, one provider of each kind), the
//! `persist` key, and the errors of `kind` and `preset`.

use std::path::PathBuf;
use std::time::Duration;

use super::EXAMPLE;
use crate::config::test_support::*;
use crate::config::*;
use crate::kinds::ProviderKind;
use crate::kinds::http::*;
use crate::kinds::oauth2::*;
use crate::secret::SecretTemplate;

#[test]
fn examples_parse() {
    let (config, warnings) = parse_ok(EXAMPLE);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(config.source, ConfigSource::File(PathBuf::from(PATH)));
    assert_eq!(config.providers.len(), 2);

    let salestim = &config.providers["salestim"];
    assert_eq!(salestim.name, "salestim");
    assert_eq!(salestim.kind.name(), "static");
    assert_eq!(
        salestim.kind,
        ProviderKind::Static {
            secret: SecretTemplate::parse("${env:SALESTIM_API_KEY}").unwrap(),
            rotate: None,
        }
    );
    assert_eq!(salestim.presentation.header, "X-API-KEY");
    // A custom header without a scheme carries the bare secret.
    assert_eq!(salestim.presentation.scheme, Scheme::Raw);
    assert_eq!(salestim.presentation.basic_user, "");

    let gitlab = &config.providers["gitlab"];
    assert_eq!(gitlab.presentation, Presentation::default());
    assert_eq!(
        gitlab.kind,
        ProviderKind::Static {
            secret: SecretTemplate::parse("${file:~/.config/gitlab.pat}").unwrap(),
            rotate: None,
        }
    );
}

#[test]
fn empty_file_has_no_providers() {
    let (config, warnings) = parse_ok("# nothing yet\n");
    assert!(config.providers.is_empty());
    assert!(warnings.is_empty());
    let (config, _) = parse_ok("[providers]\n");
    assert!(config.providers.is_empty());
}

#[test]
fn persist_is_a_boolean_of_fetching_kinds_only() {
    let oauth = "[providers.a]\nkind = \"oauth2\"\ngrant = \"client_credentials\"\n\
                 token_url = \"https://a.example/t\"\nclient_id = \"c\"\n\
                 client_secret = \"${env:S}\"\n";
    assert!(parse_ok(oauth).0.providers["a"].persist, "on by default");
    let (config, _) = parse_ok(&format!("{oauth}persist = false\n"));
    assert!(!config.providers["a"].persist);
    let error = parse_err(&format!("{oauth}persist = \"no\"\n")).to_string();
    assert!(
        error.contains(":7:") && error.contains("expected a boolean"),
        "{error}"
    );
    let error =
        parse_err("[providers.s]\nkind = \"static\"\nsecret = \"${env:S}\"\npersist = false\n")
            .to_string();
    assert!(
        error.contains(":4:") && error.contains("unknown key"),
        "{error}"
    );
}

const NEW_KINDS: &str = r#"
[providers.store]               # SalesTim anonymous access
kind = "anonymous"

[providers.api]                 # OAuth 2.0 client credentials
kind = "oauth2"
grant = "client_credentials"
token_url = "https://auth.example.com/oauth/token"
client_id = "svc"
client_secret = "${env:API_SECRET}"
client_auth = "basic"
scopes = ["api.read"]
params = { audience = "https://api.example.com" }
ttl = "1h"

[providers.refreshing]
kind = "oauth2"
grant = "refresh_token"
token_url = "https://auth.example.com/oauth/token"
client_id = "cli"
refresh_token = "${env:MY_REFRESH_TOKEN}"

[providers.exchange]
kind = "http"
method = "post"
url = "https://api.example.com/token"
basic = { user = "${env:KEY}", password = "" }
headers = { "Some-Header" = "value" }
json = { any = { nested = "${env:X}" } }
token = "/data/token"
expires = "jwt"
ttl = "2h"
ok = { pointer = "/status/code", equals = "OK", message = "/status/description" }
"#;

#[test]
fn new_kinds_parse() {
    let (config, warnings) = parse_ok(NEW_KINDS);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(config.providers.len(), 4);

    let store = &config.providers["store"];
    assert_eq!(store.kind, ProviderKind::Anonymous);
    assert_eq!(store.kind.name(), "anonymous");
    assert_eq!(store.presentation, Presentation::default());

    let api = &config.providers["api"];
    assert_eq!(
        api.kind,
        ProviderKind::OAuth2(Box::new(OAuth2Config {
            grant: OAuth2Grant::ClientCredentials,
            endpoint: TokenEndpoint::TokenUrl(url("https://auth.example.com/oauth/token")),
            client_id: "svc".to_owned(),
            client_secret: Some(tpl("${env:API_SECRET}")),
            client_auth: ClientAuth::Basic,
            scopes: vec!["api.read".to_owned()],
            params: vec![("audience".to_owned(), "https://api.example.com".to_owned())],
            ttl: Some(Duration::from_secs(3600)),
            timeout: None,
            revocation_url: None,
            signing_key: None,
            client_assertion: None,
        }))
    );
    assert_eq!(api.presentation, Presentation::default());

    assert_eq!(
        config.providers["refreshing"].kind,
        ProviderKind::OAuth2(Box::new(OAuth2Config {
            grant: OAuth2Grant::RefreshToken {
                refresh_token: tpl("${env:MY_REFRESH_TOKEN}"),
            },
            endpoint: TokenEndpoint::TokenUrl(url("https://auth.example.com/oauth/token")),
            client_id: "cli".to_owned(),
            client_secret: None,
            client_auth: ClientAuth::Basic,
            scopes: Vec::new(),
            params: Vec::new(),
            ttl: None,
            timeout: None,
            revocation_url: None,
            signing_key: None,
            client_assertion: None,
        }))
    );

    assert_eq!(
        http(&config, "exchange"),
        HttpExchange {
            method: HttpMethod::Post,
            url: url("https://api.example.com/token"),
            basic: Some(BasicPair {
                user: tpl("${env:KEY}"),
                password: tpl(""),
            }),
            headers: vec![("Some-Header".to_owned(), tpl("value"))],
            body: Some(HttpBody::Json(object(&[(
                "any",
                object(&[("nested", json_str("${env:X}"))]),
            )]))),
            token: "/data/token".to_owned(),
            expires: ExpiresFrom::Jwt,
            ttl: Some(Duration::from_secs(7200)),
            ok: Some(OkCheck {
                pointer: "/status/code".to_owned(),
                equals: "OK".to_owned(),
                message: Some("/status/description".to_owned()),
            }),
            timeout: None,
            jwt: None,
        }
    );
    assert_eq!(
        config.providers["exchange"].presentation,
        Presentation::default()
    );
}

#[test]
fn kind_and_preset_errors_name_file_line_and_key() {
    let cases: &[(&str, String, usize, Option<&str>, &str)] = &[
        (
            "kind and preset",
            "[providers.a]\nkind = \"static\"\npreset = \"salestim\"\n".to_owned(),
            3,
            Some("[providers.a] key `preset`"),
            "both `kind` and `preset` are set",
        ),
        (
            "preset and kind",
            "[providers.a]\npreset = \"salestim\"\nkind = \"static\"\n".to_owned(),
            3,
            Some("[providers.a] key `kind`"),
            "both `kind` and `preset` are set",
        ),
        (
            "unknown preset",
            "[providers.a]\n\npreset = \"timekit2\"\n".to_owned(),
            3,
            Some("[providers.a] key `preset`"),
            "use one of: timekit, crm.com, salestim",
        ),
        (
            "preset not a string",
            "[providers.a]\npreset = [\"timekit\"]\n".to_owned(),
            2,
            Some("[providers.a] key `preset`"),
            "expected a string, found an array",
        ),
        (
            "missing kind mentions presets",
            "[providers.a]\napi_key = \"${env:K}\"\n".to_owned(),
            1,
            Some("[providers.a] key `kind`"),
            "known presets: timekit, crm.com, salestim",
        ),
        (
            "unknown kind lists new kinds",
            "[providers.a]\nkind = \"oauth\"\n".to_owned(),
            2,
            Some("[providers.a] key `kind`"),
            "use one of: static, anonymous, oauth2, http",
        ),
    ];
    check_errors(cases);
}
