//! The `timeout` of the kinds and presets that make a request, and its errors.

use std::time::Duration;

use crate::config::test_support::*;
use crate::config::values::MAX_TIMEOUT;
use crate::kinds::ProviderKind;
use crate::kinds::http::crm::CRM_TTL;

#[test]
fn timeout_for_token_kinds_and_presets() {
    let (config, warnings) = parse_ok(
        r#"
[providers.oauth]
kind = "oauth2"
grant = "client_credentials"
token_url = "https://auth.example.com/token"
client_id = "svc"
client_secret = "${env:S}"
timeout = "5s"

[providers.exchange]
kind = "http"
url = "https://api.example.com/token"
token = "/token"
timeout = "2m"

[providers.tk]
preset = "timekit"
app = "a"
email = "${env:E}"
api_key = "${env:K}"
timeout = "30"

[providers.crm]
preset = "crm.com"
base_url = "https://crm.example.com/"
api_key = "${env:K}"
authentication_code = "${env:C}"
timeout = "120s"

[providers.default]
kind = "http"
url = "https://api.example.com/token"
token = "/token"
"#,
    );
    assert!(warnings.is_empty(), "{warnings:?}");
    let ProviderKind::OAuth2(oauth) = &config.providers["oauth"].kind else {
        panic!("{config:?}");
    };
    assert_eq!(oauth.timeout, Some(Duration::from_secs(5)));
    assert_eq!(
        http(&config, "exchange").timeout,
        Some(Duration::from_secs(120))
    );
    assert_eq!(http(&config, "tk").timeout, Some(Duration::from_secs(30)));
    // The rest of a preset's expansion is unchanged by a timeout.
    let crm = http(&config, "crm");
    assert_eq!(crm.timeout, Some(MAX_TIMEOUT));
    assert_eq!(crm.ttl, Some(CRM_TTL));
    assert_eq!(http(&config, "default").timeout, None);
}

#[test]
fn timeout_errors_name_file_line_and_key() {
    // `timeout` is always on line 7.
    let oauth2 = |value: &str| {
        format!(
            "[providers.a]\nkind = \"oauth2\"\ngrant = \"client_credentials\"\n\
             token_url = \"https://a.example/token\"\nclient_id = \"svc\"\n\
             client_secret = \"${{env:S}}\"\ntimeout = {value}\n"
        )
    };
    let http = |value: &str| {
        format!(
            "[providers.a]\nkind = \"http\"\nurl = \"https://a.example/t\"\n\
             token = \"/t\"\n\n\ntimeout = {value}\n"
        )
    };
    let timekit = |value: &str| {
        format!(
            "[providers.a]\npreset = \"timekit\"\napp = \"a\"\nemail = \"e\"\n\
             api_key = \"${{env:K}}\"\n\ntimeout = {value}\n"
        )
    };
    let crm = |value: &str| {
        format!(
            "[providers.a]\npreset = \"crm.com\"\nbase_url = \"https://c.example/\"\n\
             api_key = \"${{env:K}}\"\nauthentication_code = \"${{env:C}}\"\n\n\
             timeout = {value}\n"
        )
    };
    let key = Some("[providers.a] key `timeout`");
    let mut cases: Vec<(&str, String, usize, Option<&str>, &str)> = Vec::new();
    for (kind, config) in [
        ("oauth2", &oauth2 as &dyn Fn(&str) -> String),
        ("http", &http),
        ("timekit", &timekit),
        ("crm.com", &crm),
    ] {
        cases.extend([
            (
                kind,
                config("\"0s\""),
                7,
                key,
                "zero lets no request finish",
            ),
            (kind, config("\"0\""), 7, key, "use at least 1s"),
            (
                kind,
                config("\"3m\""),
                7,
                key,
                "`timeout` is 180s: at most 120s",
            ),
            (kind, config("\"121s\""), 7, key, "at most 120s"),
            (kind, config("\"soon\""), 7, key, "not a duration"),
            (kind, config("\"5w\""), 7, key, "unknown unit"),
            (
                kind,
                config("5"),
                7,
                key,
                "expected a string, found an integer",
            ),
            (
                kind,
                config("\"5s\"\ntimeout2 = \"1s\""),
                8,
                None,
                "timeout2",
            ),
        ]);
    }
    // The hint gives the accepted range.
    cases.push(("zero hint", http("\"0s\""), 7, key, "from 1s to 120s"));
    cases.push(("long hint", crm("\"1h\""), 7, key, "from 1s to 120s"));
    // Not for kinds and presets that make no request.
    cases.extend([
        (
            "static",
            "[providers.a]\nkind = \"static\"\nsecret = \"${env:S}\"\ntimeout = \"5s\"\n"
                .to_owned(),
            4,
            key,
            "unknown key for kind \"static\"",
        ),
        (
            "anonymous",
            "[providers.a]\nkind = \"anonymous\"\ntimeout = \"5s\"\n".to_owned(),
            3,
            key,
            "unknown key for kind \"anonymous\"",
        ),
        (
            "salestim",
            "[providers.a]\npreset = \"salestim\"\napi_key = \"${env:K}\"\ntimeout = \"5s\"\n"
                .to_owned(),
            4,
            key,
            "unknown key for preset \"salestim\"",
        ),
    ]);
    check_errors(&cases);
}
