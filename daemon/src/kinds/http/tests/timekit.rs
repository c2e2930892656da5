//! The `timekit` preset: the exchange it expands to, its presentation, and its errors.

use base64::Engine as _;
use tokend_protocol::Secret;

use crate::config::test_support::*;
use crate::config::*;
use crate::kinds::http::*;

#[test]
fn timekit_preset_expands() {
    let timekit = |base_url: &str| {
        format!(
            "[providers.tk]\npreset = \"timekit\"\napp = \"back-to-the-future\"\n\
             email = \"${{env:TK_EMAIL}}\"\napi_key = \"${{env:TK_KEY}}\"\n{base_url}"
        )
    };
    let expected = |request_url: &str| HttpExchange {
        method: HttpMethod::Get,
        url: url(request_url),
        basic: Some(BasicPair {
            user: tpl("${env:TK_EMAIL}"),
            password: tpl("${env:TK_KEY}"),
        }),
        headers: vec![
            ("Content-Type".to_owned(), tpl("application/json")),
            ("Timekit-App".to_owned(), tpl("back-to-the-future")),
        ],
        body: None,
        token: "/data/app_token/0/token".to_owned(),
        expires: ExpiresFrom::Unknown,
        ttl: None,
        ok: None,
        timeout: None,
        jwt: None,
    };
    for (base_url, request_url) in [
        ("", "https://api.timekit.io/v2/app?include=app_token"),
        (
            "base_url = \"https://api.timekit.io\"",
            "https://api.timekit.io/v2/app?include=app_token",
        ),
        (
            "base_url = \"https://api.timekit.io/\"",
            "https://api.timekit.io/v2/app?include=app_token",
        ),
        (
            "base_url = \"http://127.0.0.1:9000/mock/\"",
            "http://127.0.0.1:9000/mock/v2/app?include=app_token",
        ),
        (
            "base_url = \"http://127.0.0.1:9000/mock\"",
            "http://127.0.0.1:9000/mock/v2/app?include=app_token",
        ),
    ] {
        let (config, warnings) = parse_ok(&timekit(base_url));
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(http(&config, "tk"), expected(request_url), "{base_url}");
        let presentation = &config.providers["tk"].presentation;
        assert_eq!(
            *presentation,
            Presentation {
                header: "Authorization".to_owned(),
                scheme: Scheme::Basic,
                basic_user: String::new(),
            }
        );
        // `Authorization: Basic base64(":" + token)`, as Timekit documents.
        assert_eq!(
            presentation
                .header_value(&Secret::from("live_api_key_7nzv"))
                .expose(),
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(":live_api_key_7nzv")
            )
        );
    }

    // A slug that looks like a reference is sent as written.
    let (config, _) = parse_ok(
        "[providers.tk]\npreset = \"timekit\"\napp = \"${env:NOT_A_REF}\"\n\
         email = \"doc@example.com\"\napi_key = \"${env:K}\"\n",
    );
    assert_eq!(
        http(&config, "tk").headers[1],
        ("Timekit-App".to_owned(), tpl("$${env:NOT_A_REF}"))
    );
}

#[test]
fn timekit_errors_name_file_line_and_key() {
    let cases: &[(&str, String, usize, Option<&str>, &str)] = &[
        (
            "timekit unknown key",
            format!("[providers.a]\npreset = \"timekit\"\nsecret = \"{SECRET}\"\n"),
            3,
            Some("[providers.a] key `secret`"),
            "remove it or fix its spelling; known keys: \
             preset, app, email, api_key, base_url",
        ),
        (
            "timekit without app",
            "[providers.a]\npreset = \"timekit\"\nemail = \"e\"\napi_key = \"${env:K}\"\n"
                .to_owned(),
            1,
            Some("[providers.a] key `app`"),
            "preset \"timekit\" needs `app`",
        ),
        (
            "timekit empty app",
            "[providers.a]\npreset = \"timekit\"\napp = \"\"\n".to_owned(),
            3,
            Some("[providers.a] key `app`"),
            "`app` is empty",
        ),
        (
            "timekit app with control character",
            "[providers.a]\npreset = \"timekit\"\napp = \"a\\r\\nX-Evil: 1\"\n".to_owned(),
            3,
            Some("[providers.a] key `app`"),
            "control character",
        ),
        (
            "timekit without email",
            "[providers.a]\npreset = \"timekit\"\napp = \"a\"\napi_key = \"${env:K}\"\n".to_owned(),
            1,
            Some("[providers.a] key `email`"),
            "preset \"timekit\" needs `email`",
        ),
        (
            "timekit email with colon",
            format!("[providers.a]\npreset = \"timekit\"\napp = \"a\"\nemail = \"me:{SECRET}\"\n"),
            4,
            Some("[providers.a] key `email`"),
            "contains `:`",
        ),
        (
            "timekit without api_key",
            "[providers.a]\npreset = \"timekit\"\napp = \"a\"\nemail = \"e\"\n".to_owned(),
            1,
            Some("[providers.a] key `api_key`"),
            "preset \"timekit\" needs `api_key`",
        ),
        (
            "timekit empty api_key",
            "[providers.a]\npreset = \"timekit\"\napp = \"a\"\nemail = \"e\"\napi_key = \"\"\n"
                .to_owned(),
            5,
            Some("[providers.a] key `api_key`"),
            "`api_key` is empty",
        ),
        (
            "timekit bad base_url",
            "[providers.a]\npreset = \"timekit\"\napp = \"a\"\nemail = \"e\"\n\
             api_key = \"${env:K}\"\nbase_url = \"api.timekit.io\"\n"
                .to_owned(),
            6,
            Some("[providers.a] key `base_url`"),
            "`base_url` is not a valid URL",
        ),
        (
            "timekit base_url with query",
            "[providers.a]\npreset = \"timekit\"\napp = \"a\"\nemail = \"e\"\n\
             api_key = \"${env:K}\"\nbase_url = \"https://api.timekit.io/?x=1\"\n"
                .to_owned(),
            6,
            Some("[providers.a] key `base_url`"),
            "has a query or a fragment",
        ),
        (
            "timekit basic_user with scheme raw",
            "[providers.a]\npreset = \"timekit\"\napp = \"a\"\nemail = \"e\"\n\
             api_key = \"${env:K}\"\nscheme = \"raw\"\nbasic_user = \"u\"\n"
                .to_owned(),
            7,
            Some("[providers.a] key `basic_user`"),
            "scheme is \"raw\"",
        ),
    ];
    check_errors(cases);
}
