//! Literal secrets and the warnings about them, which never show them; `literal_template`,
//! plain text as a template with no reference.

use crate::config::test_support::*;
use crate::config::values::literal_template;
use crate::kinds::ProviderKind;

#[test]
fn literal_secret_warns_without_leaking() {
    let text = format!("[providers.lit]\nkind = \"static\"\n\nsecret = \"{SECRET}\"\n");
    let (config, warnings) = parse_ok(&text);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let warning = &warnings[0];
    assert_eq!(warning.line, 4);
    assert!(warning.message.contains("[providers.lit]"), "{warning}");
    assert!(warning.message.contains("`secret`"), "{warning}");
    assert!(warning.message.contains("${env:…}"), "{warning}");
    assert!(warning.to_string().starts_with("line 4: "), "{warning}");

    let shown = format!("{config:?} {warnings:?} {warning}");
    assert!(!shown.contains(SECRET), "{shown}");
    let ProviderKind::Static { secret, .. } = &config.providers["lit"].kind else {
        panic!("expected a static provider: {config:?}");
    };
    assert!(secret.is_literal());
}

#[test]
fn literal_credentials_warn_without_leaking() {
    let text = format!(
        r#"[providers.o]
kind = "oauth2"
grant = "refresh_token"
token_url = "https://a.example/token"
client_id = "not-a-secret"
client_secret = "{SECRET}1"
refresh_token = "{SECRET}2"
params = {{ audience = "plain" }}

[providers.h]
kind = "http"
url = "https://a.example/"
token = "/t"
basic = {{ user = "{SECRET}3", password = "{SECRET}4" }}
headers = {{ X-Plain = "value" }}
json = {{ a = "text" }}

[providers.crm]
preset = "crm.com"
base_url = "https://crm.example.com/"
api_key = "{SECRET}5"
identifier = "card"
pass_code = "{SECRET}6"

[providers.crm2]
preset = "crm.com"
base_url = "https://crm.example.com/"
api_key = "${{env:K}}"
authentication_code = "{SECRET}7"

[providers.crm3]
preset = "crm.com"
base_url = "https://crm.example.com/"
api_key = "${{env:K}}"
jwt = "{SECRET}8"
organisation = "org"

[providers.tk]
preset = "timekit"
app = "slug"
email = "me@example.com"
api_key = "{SECRET}9"

[providers.st]
preset = "salestim"
api_key = "{SECRET}10"

[providers.empty-password]
kind = "http"
url = "https://a.example/"
token = "/t"
basic = {{ user = "${{env:U}}", password = "" }}
"#
    );
    let (_, warnings) = parse_ok(&text);
    let got: Vec<(usize, &str)> = warnings
        .iter()
        .map(|warning| {
            let key = warning.message.split('`').nth(1).unwrap();
            (warning.line, key)
        })
        .collect();
    assert_eq!(
        got,
        [
            (6, "client_secret"),
            (7, "refresh_token"),
            (14, "basic.user"),
            (14, "basic.password"),
            (21, "api_key"),
            (23, "pass_code"),
            (29, "authentication_code"),
            (35, "jwt"),
            (42, "api_key"),
            (46, "api_key"),
        ]
    );
    for warning in &warnings {
        assert!(!warning.to_string().contains(SECRET), "{warning}");
        assert!(warning.message.contains("literal secret"), "{warning}");
    }
}

#[test]
fn literal_template_escapes_references() {
    for text in [
        "",
        "plain",
        "${env:X}",
        "$${",
        "$$${",
        "a$",
        "$",
        "}${",
        "x${y}z$${",
    ] {
        let template = literal_template(text);
        assert!(template.is_literal(), "{text}");
        let escaped = text.replace("${", "$${");
        assert_eq!(template, tpl(&escaped), "{text}");
    }
}
