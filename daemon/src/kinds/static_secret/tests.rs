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
            secret: tpl("${env:SALESTIM_API_KEY}")
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
            "known keys: preset, api_key, header, scheme, basic_user",
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
