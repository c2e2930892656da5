//! The `crm.com` preset: the exchange each way of identifying expands to, and its errors.

use std::time::Duration;

use crate::config::test_support::*;
use crate::config::*;
use crate::kinds::http::*;

#[test]
fn crm_preset_expands() {
    let crm = |identify: &str| {
        format!(
            "[providers.crm]\npreset = \"crm.com\"\n\
             base_url = \"https://crm.example.com/crmapi/rest/v2\"\n\
             api_key = \"${{env:CRM_KEY}}\"\n{identify}"
        )
    };
    let access = |fields: &[(&str, JsonTemplate)]| ("access_token_identifier", object(fields));
    let cases = [
        (
            "authentication_code = \"${env:CODE}\"\nunit = \"1\"\n",
            object(&[
                access(&[("authentication_code", json_str("${env:CODE}"))]),
                ("unit", json_str("1")),
            ]),
        ),
        (
            "authentication_code = \"${env:CODE}\"\n",
            object(&[access(&[("authentication_code", json_str("${env:CODE}"))])]),
        ),
        (
            "pass_code = \"${env:PASS}\"\nidentifier = \"card-1\"\n",
            object(&[access(&[
                ("identifier", json_str("card-1")),
                ("pass_code", json_str("${env:PASS}")),
            ])]),
        ),
        (
            "identifier = \"${env:ID}\"\npass_code = \"${env:PASS}\"\nunit = \"U\"\n",
            object(&[
                access(&[
                    ("identifier", json_str("${env:ID}")),
                    ("pass_code", json_str("${env:PASS}")),
                ]),
                ("unit", json_str("U")),
            ]),
        ),
        (
            "jwt = \"${cmd:idm-token}\"\norganisation = \"org-7\"\n",
            object(&[
                ("jwt", json_str("${cmd:idm-token}")),
                ("organisation", json_str("org-7")),
            ]),
        ),
        (
            "organisation = \"${x}\"\njwt = \"${env:JWT}\"\nunit = \"2\"\n",
            object(&[
                ("jwt", json_str("${env:JWT}")),
                // Plain text, sent as written.
                ("organisation", json_str("$${x}")),
                ("unit", json_str("2")),
            ]),
        ),
    ];
    for (identify, body) in cases {
        let (config, warnings) = parse_ok(&crm(identify));
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            http(&config, "crm"),
            HttpExchange {
                method: HttpMethod::Post,
                url: url("https://crm.example.com/crmapi/rest/v2/authentication/\
                     consumer_application_key/token"),
                basic: Some(BasicPair {
                    user: tpl("${env:CRM_KEY}"),
                    password: tpl(""),
                }),
                headers: Vec::new(),
                body: Some(HttpBody::Json(body)),
                token: "/data/token".to_owned(),
                expires: ExpiresFrom::Jwt,
                ttl: Some(Duration::from_secs(2 * 3600)),
                ok: Some(OkCheck {
                    pointer: "/status/code".to_owned(),
                    equals: "OK".to_owned(),
                    message: Some("/status/description".to_owned()),
                }),
                timeout: None,
                jwt: None,
            },
            "{identify}"
        );
        assert_eq!(
            config.providers["crm"].presentation,
            Presentation {
                header: "authorization".to_owned(),
                scheme: Scheme::Raw,
                basic_user: String::new(),
            }
        );
    }
}

#[test]
fn crm_errors_name_file_line_and_key() {
    let crm = |rest: &str| {
        format!(
            "[providers.a]\npreset = \"crm.com\"\nbase_url = \"https://c.example/\"\n\
             api_key = \"${{env:K}}\"\n{rest}"
        )
    };
    let cases: &[(&str, String, usize, Option<&str>, &str)] = &[
        (
            "crm unknown key",
            crm("kind2 = \"x\"\n"),
            5,
            Some("[providers.a] key `kind2`"),
            "remove it or fix its spelling; known keys: \
             preset, base_url, api_key, authentication_code",
        ),
        (
            "crm without base_url",
            "[providers.a]\npreset = \"crm.com\"\napi_key = \"${env:K}\"\n".to_owned(),
            1,
            Some("[providers.a] key `base_url`"),
            "preset \"crm.com\" needs `base_url`",
        ),
        (
            "crm without api_key",
            "[providers.a]\npreset = \"crm.com\"\nbase_url = \"https://c.example\"\n".to_owned(),
            1,
            Some("[providers.a] key `api_key`"),
            "preset \"crm.com\" needs `api_key`",
        ),
        (
            "crm empty api_key",
            "[providers.a]\npreset = \"crm.com\"\nbase_url = \"https://c.example\"\n\
             api_key = \"\"\n"
                .to_owned(),
            4,
            Some("[providers.a] key `api_key`"),
            "`api_key` is empty",
        ),
        (
            "crm without identification",
            crm("unit = \"1\"\n"),
            1,
            Some("[providers.a] key `authentication_code`"),
            "give exactly one of: authentication_code; identifier and pass_code; jwt and \
             organisation",
        ),
        (
            "crm code and jwt",
            crm(&format!(
                "authentication_code = \"${{env:C}}\"\njwt = \"{SECRET}\"\n"
            )),
            6,
            Some("[providers.a] key `jwt`"),
            "`jwt` cannot be combined with `authentication_code`",
        ),
        (
            "crm identifier and organisation",
            crm("organisation = \"o\"\nidentifier = \"i\"\n"),
            6,
            Some("[providers.a] key `identifier`"),
            "cannot be combined with `organisation`",
        ),
        (
            "crm identifier without pass_code",
            crm("identifier = \"i\"\n"),
            1,
            Some("[providers.a] key `pass_code`"),
            "preset \"crm.com\" needs `pass_code`",
        ),
        (
            "crm pass_code without identifier",
            crm(&format!("pass_code = \"{SECRET}\"\n")),
            1,
            Some("[providers.a] key `identifier`"),
            "preset \"crm.com\" needs `identifier`",
        ),
        (
            "crm jwt without organisation",
            crm("jwt = \"${env:J}\"\n"),
            1,
            Some("[providers.a] key `organisation`"),
            "needs `organisation` with `jwt`",
        ),
        (
            "crm organisation without jwt",
            crm("organisation = \"o\"\n"),
            1,
            Some("[providers.a] key `jwt`"),
            "preset \"crm.com\" needs `jwt`",
        ),
        (
            "crm empty pass_code",
            crm("identifier = \"i\"\npass_code = \"\"\n"),
            6,
            Some("[providers.a] key `pass_code`"),
            "`pass_code` is empty",
        ),
        (
            "crm empty unit",
            crm("authentication_code = \"${env:C}\"\nunit = \"\"\n"),
            6,
            Some("[providers.a] key `unit`"),
            "`unit` is empty",
        ),
        (
            "crm bad authentication_code template",
            crm(&format!("authentication_code = \"{SECRET}${{env:A\"\n")),
            5,
            Some("[providers.a] key `authentication_code`"),
            "invalid secret",
        ),
        (
            "crm api_key with colon",
            format!(
                "[providers.a]\npreset = \"crm.com\"\nbase_url = \"https://c.example\"\n\
                 api_key = \"k:{SECRET}\"\n"
            ),
            4,
            Some("[providers.a] key `api_key`"),
            "contains `:`",
        ),
    ];
    check_errors(cases);
}
