//! Reading `kind = "static"` and `preset = "salestim"`.

use crate::config::test_support::*;
use crate::config::*;
use crate::kinds::ProviderKind;

#[test]
fn salestim_preset_and_presentation_overrides() {
    let (config, warnings) = parse_ok(
        r#"
[providers.st]
preset = "salestim"
api_key = "${env:SALESTIM_API_KEY}"

[providers.st-bearer]
preset = "salestim"
api_key = "${env:SALESTIM_API_KEY}"
header = "Authorization"
scheme = "bearer"

[providers.tk-user]
preset = "timekit"
app = "a"
email = "${env:E}"
api_key = "${env:K}"
basic_user = "someone"

[providers.crm-header]
preset = "crm.com"
base_url = "https://crm.example.com/"
api_key = "${env:K}"
authentication_code = "${env:C}"
header = "X-Crm-Token"
"#,
    );
    assert!(warnings.is_empty(), "{warnings:?}");
    let st = &config.providers["st"];
    assert_eq!(
        st.kind,
        ProviderKind::Static {
            secret: tpl("${env:SALESTIM_API_KEY}"),
            rotate: None,
        }
    );
    assert_eq!(
        st.presentation,
        Presentation {
            header: "X-API-KEY".to_owned(),
            scheme: Scheme::Raw,
            basic_user: String::new(),
        }
    );
    assert_eq!(
        config.providers["st-bearer"].presentation,
        Presentation::default()
    );
    let tk = &config.providers["tk-user"].presentation;
    assert_eq!(
        (tk.scheme, tk.basic_user.as_str()),
        (Scheme::Basic, "someone")
    );
    // A preset's scheme stays unless `scheme` is set.
    let crm = &config.providers["crm-header"].presentation;
    assert_eq!(
        (crm.header.as_str(), crm.scheme),
        ("X-Crm-Token", Scheme::Raw)
    );
    assert_eq!(
        http(&config, "crm-header").url,
        url("https://crm.example.com/authentication/consumer_application_key/token")
    );
}

#[test]
fn salestim_errors_name_file_line_and_key() {
    let cases: &[(&str, String, usize, Option<&str>, &str)] = &[
        (
            "salestim without api_key",
            "[providers.a]\npreset = \"salestim\"\n".to_owned(),
            1,
            Some("[providers.a] key `api_key`"),
            "preset \"salestim\" needs `api_key`",
        ),
        (
            "salestim with secret",
            format!("[providers.a]\npreset = \"salestim\"\nsecret = \"{SECRET}\"\n"),
            3,
            Some("[providers.a] key `secret`"),
            "known keys: preset, api_key, rotate, header, scheme, basic_user",
        ),
        (
            "salestim basic_user with raw scheme",
            "[providers.a]\npreset = \"salestim\"\napi_key = \"${env:K}\"\nbasic_user = \"u\"\n"
                .to_owned(),
            4,
            Some("[providers.a] key `basic_user`"),
            "scheme is \"raw\"",
        ),
    ];
    check_errors(cases);
}

#[test]
fn a_key_an_api_rotates() {
    use std::time::Duration;

    use crate::kinds::static_secret::rotate::RotateMethod;
    let (config, _) = parse_ok(
        r#"
[providers.admin]
preset = "azure-ad"
tenant = "t"
client_id = "c"

[providers.st]
preset = "salestim"
api_key = "${secret:salestim}"
rotate = { url = "https://api.salestim.io/v1.0/apps/a1/regenerateSecret", auth = "admin", secret = "/apiKey", every = "30d" }

[providers.pat]
kind = "static"
secret = "${env:PAT}"
rotate = { method = "put", url = "https://forge.example.com/token/rotate", auth = "admin", secret = "/token", timeout = "20s" }
"#,
    );
    let ProviderKind::Static {
        rotate: Some(st), ..
    } = &config.providers["st"].kind
    else {
        panic!("a rotating static key");
    };
    assert_eq!(st.method, RotateMethod::Post);
    assert_eq!(st.auth, "admin");
    assert_eq!(st.secret, "/apiKey");
    assert_eq!(st.every, Some(Duration::from_secs(30 * 86_400)));
    assert_eq!(config.providers["st"].kind.provider_refs(), ["admin"]);
    let ProviderKind::Static {
        rotate: Some(pat), ..
    } = &config.providers["pat"].kind
    else {
        panic!("a rotating static key");
    };
    assert_eq!(
        (pat.method, pat.every, pat.timeout),
        (RotateMethod::Put, None, Some(Duration::from_secs(20)))
    );

    let head = "[providers.admin]\nkind = \"static\"\nsecret = \"${env:A}\"\n\
                [providers.a]\nkind = \"static\"\nsecret = \"${env:K}\"\n";
    let cases: &[(&str, String, usize, Option<&str>, &str)] = &[
        (
            "no url",
            format!("{head}rotate = {{ auth = \"admin\", secret = \"/k\" }}\n"),
            7,
            Some("key `rotate.url`"),
            "needs a `url`",
        ),
        (
            "no auth",
            format!("{head}rotate = {{ url = \"https://x/\", secret = \"/k\" }}\n"),
            7,
            Some("key `rotate.auth`"),
            "needs `auth`",
        ),
        (
            "itself",
            format!("{head}rotate = {{ url = \"https://x/\", auth = \"a\", secret = \"/k\" }}\n"),
            7,
            Some("key `rotate.auth`"),
            "names this provider itself",
        ),
        (
            "unknown auth",
            format!(
                "{head}rotate = {{ url = \"https://x/\", auth = \"nobody\", secret = \"/k\" }}\n"
            ),
            4,
            Some("[providers.a]"),
            "provider `nobody`, which is not configured",
        ),
        (
            "bad pointer",
            format!(
                "{head}rotate = {{ url = \"https://x/\", auth = \"admin\", secret = \"k\" }}\n"
            ),
            7,
            Some("key `rotate.secret`"),
            "JSON pointer",
        ),
        (
            "zero every",
            format!(
                "{head}rotate = {{ url = \"https://x/\", auth = \"admin\", secret = \"/k\", every = \"0\" }}\n"
            ),
            7,
            Some("key `rotate.every`"),
            "a duration of zero",
        ),
        (
            "every below a minute",
            format!(
                "{head}rotate = {{ url = \"https://x/\", auth = \"admin\", secret = \"/k\", every = \"30s\" }}\n"
            ),
            7,
            Some("key `rotate.every`"),
            "`every` = \"30s\" is shorter than a minute",
        ),
        (
            "unknown key",
            format!(
                "{head}rotate = {{ url = \"https://x/\", auth = \"admin\", secret = \"/k\", body = \"x\" }}\n"
            ),
            7,
            Some("key `rotate.body`"),
            "known keys: method, url, auth, secret, every, timeout",
        ),
        (
            "another provider's token as a static key",
            "[providers.b]\nkind = \"static\"\nsecret = \"${env:B}\"\n\
             [providers.a]\nkind = \"static\"\nsecret = \"${provider:b}\"\n"
                .to_owned(),
            6,
            Some("key `secret`"),
            "cannot be another provider's token",
        ),
    ];
    check_errors(cases);
}
