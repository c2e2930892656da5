//! Reading `kind = "http"` and the `timekit` and `crm.com` presets.
use base64::Engine as _;
use std::time::Duration;
use tokend_protocol::Secret;

use crate::config::test_support::*;
use crate::config::*;
use crate::kinds::http::*;

#[test]
fn http_variants() {
    let (config, warnings) = parse_ok(
        r#"
[providers.get]
kind = "http"
url = "https://api.example.com/token?x=1"
token = "/token"

[providers.form]
kind = "http"
url = "http://localhost/token"
form = { z = "${env:Z}", a = "", m = "plain" }
token = ""
expires = "/expires_in"
headers = { "X-B" = "b", "X-A" = "${env:A}" }
basic = { user = "${env:U}", password = "${env:PW}" }
ok = { pointer = "/code", equals = 0 }

[providers.get-upper]
kind = "http"
method = "GET"
url = "https://api.example.com/"
token = "/t"
ok = { pointer = "/ok", equals = true }

[providers.post-lower]
kind = "http"
method = "Post"
url = "https://api.example.com/"
token = "/t"
"#,
    );
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(
        http(&config, "get"),
        HttpExchange {
            method: HttpMethod::Get,
            url: url("https://api.example.com/token?x=1"),
            basic: None,
            headers: Vec::new(),
            body: None,
            token: "/token".to_owned(),
            expires: ExpiresFrom::Unknown,
            ttl: None,
            ok: None,
            timeout: None,
            jwt: None,
        }
    );
    assert_eq!(
        http(&config, "form"),
        HttpExchange {
            method: HttpMethod::Post,
            url: url("http://localhost/token"),
            basic: Some(BasicPair {
                user: tpl("${env:U}"),
                password: tpl("${env:PW}"),
            }),
            headers: vec![
                ("X-B".to_owned(), tpl("b")),
                ("X-A".to_owned(), tpl("${env:A}")),
            ],
            body: Some(HttpBody::Form(vec![
                ("z".to_owned(), tpl("${env:Z}")),
                ("a".to_owned(), tpl("")),
                ("m".to_owned(), tpl("plain")),
            ])),
            token: String::new(),
            expires: ExpiresFrom::Pointer("/expires_in".to_owned()),
            ttl: None,
            ok: Some(OkCheck {
                pointer: "/code".to_owned(),
                equals: "0".to_owned(),
                message: None,
            }),
            timeout: None,
            jwt: None,
        }
    );
    let get_upper = http(&config, "get-upper");
    assert_eq!(get_upper.method, HttpMethod::Get);
    assert_eq!(get_upper.ok.unwrap().equals, "true");
    assert_eq!(http(&config, "post-lower").method, HttpMethod::Post);
}

#[test]
fn json_body_is_any_toml_tree() {
    let (config, _) = parse_ok(
        r#"
[providers.j]
kind = "http"
url = "https://api.example.com/"
token = "/t"

[providers.j.json]
zeta = "${env:Z}"
alpha = [1, -2, 0xff, 1_000, 2.5, true, "$${literal}", [], {}]
nested.deeper = { b = false, a = "x" }
"#,
    );
    let body = http(&config, "j").body;
    let expected = object(&[
        ("zeta", json_str("${env:Z}")),
        (
            "alpha",
            JsonTemplate::Array(vec![
                JsonTemplate::Integer(1),
                JsonTemplate::Integer(-2),
                JsonTemplate::Integer(255),
                JsonTemplate::Integer(1000),
                JsonTemplate::Float(2.5),
                JsonTemplate::Bool(true),
                json_str("$${literal}"),
                JsonTemplate::Array(Vec::new()),
                JsonTemplate::Object(Vec::new()),
            ]),
        ),
        (
            "nested",
            object(&[(
                "deeper",
                object(&[("b", JsonTemplate::Bool(false)), ("a", json_str("x"))]),
            )]),
        ),
    ]);
    assert_eq!(body, Some(HttpBody::Json(expected)));

    // A JSON body that is not an object is still JSON.
    let (config, _) = parse_ok(
        "[providers.j]\nkind = \"http\"\nurl = \"https://a.example/\"\ntoken = \"/t\"\n\
         json = [\"${env:A}\", 1]\n",
    );
    assert_eq!(
        http(&config, "j").body,
        Some(HttpBody::Json(JsonTemplate::Array(vec![
            json_str("${env:A}"),
            JsonTemplate::Integer(1)
        ])))
    );
}

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
fn http_errors_name_file_line_and_key() {
    let http = |rest: &str| {
        format!("[providers.a]\nkind = \"http\"\nurl = \"https://a.example/t\"\n{rest}")
    };
    let http_t = |rest: &str| http(&format!("token = \"/t\"\n{rest}"));
    let cases: &[(&str, String, usize, Option<&str>, &str)] = &[
        (
            "http unknown key",
            http_t("secret = \"x\"\n"),
            5,
            Some("[providers.a] key `secret`"),
            "remove it or fix its spelling; known keys: kind, \
             method, url",
        ),
        (
            "http without url",
            "[providers.a]\nkind = \"http\"\ntoken = \"/t\"\n".to_owned(),
            1,
            Some("[providers.a] key `url`"),
            "kind \"http\" needs a `url`",
        ),
        (
            "http relative url",
            format!("[providers.a]\nkind = \"http\"\nurl = \"/token?{SECRET}\"\n"),
            3,
            Some("[providers.a] key `url`"),
            "`url` is not a valid URL",
        ),
        (
            "http non-http url",
            format!("[providers.a]\nkind = \"http\"\nurl = \"mailto:{SECRET}@x\"\n"),
            3,
            Some("[providers.a] key `url`"),
            "not an http or https URL",
        ),
        (
            "http without token",
            http(""),
            1,
            Some("[providers.a] key `token`"),
            "kind \"http\" needs a `token`",
        ),
        (
            "token not a pointer",
            http("token = \"data.token\"\n"),
            4,
            Some("[providers.a] key `token`"),
            "`token` is not a JSON pointer",
        ),
        (
            "unknown method",
            http_t("method = \"PUT\"\n"),
            5,
            Some("[providers.a] key `method`"),
            "use one of: GET, POST",
        ),
        (
            "GET with a json body",
            http_t("method = \"get\"\njson = { a = 1 }\n"),
            5,
            Some("[providers.a] key `method`"),
            "method GET cannot send a body",
        ),
        (
            "GET with a form body",
            http_t("form = { a = \"1\" }\nmethod = \"GET\"\n"),
            6,
            Some("[providers.a] key `method`"),
            "method GET cannot send a body",
        ),
        (
            "json and form",
            http_t("json = { a = 1 }\nform = { a = \"1\" }\n"),
            6,
            Some("[providers.a] key `form`"),
            "`json` and `form` are both set",
        ),
        (
            "basic not a table",
            http_t(&format!("basic = \"user:{SECRET}\"\n")),
            5,
            Some("[providers.a] key `basic`"),
            "expected a table, found a string",
        ),
        (
            "basic without user",
            http_t(&format!("basic = {{ password = \"{SECRET}\" }}\n")),
            5,
            Some("[providers.a] key `basic.user`"),
            "`basic` needs a `user`",
        ),
        (
            "basic unknown key",
            http_t(&format!(
                "\n[providers.a.basic]\nuser = \"u\"\npasswd = \"{SECRET}\"\n"
            )),
            8,
            Some("[providers.a] key `basic.passwd`"),
            "known keys: user, password",
        ),
        (
            "basic empty user",
            http_t("basic = { user = \"\", password = \"${env:P}\" }\n"),
            5,
            Some("[providers.a] key `basic.user`"),
            "`basic.user` is empty",
        ),
        (
            "basic user with colon",
            http_t(&format!("basic = {{ user = \"me:{SECRET}\" }}\n")),
            5,
            Some("[providers.a] key `basic.user`"),
            "`basic.user` contains `:`",
        ),
        (
            "basic password bad template",
            http_t(&format!(
                "basic = {{ user = \"u\", password = \"{SECRET}${{env:}}\" }}\n"
            )),
            5,
            Some("[providers.a] key `basic.password`"),
            "invalid secret",
        ),
        (
            "headers not a table",
            http_t("headers = [\"X-A: b\"]\n"),
            5,
            Some("[providers.a] key `headers`"),
            "expected a table, found an array",
        ),
        (
            "header name with space",
            http_t("headers = { \"X A\" = \"b\" }\n"),
            5,
            Some("[providers.a] key `headers.\"X A\"`"),
            "not a valid HTTP header name",
        ),
        (
            "header name with newline stays on one line",
            http_t("headers = { \"X\\nA\" = \"b\" }\n"),
            5,
            Some("[providers.a] key `headers.\"X\\nA\"`"),
            "not a valid HTTP header name",
        ),
        (
            "Authorization header with basic",
            http_t("basic = { user = \"${env:U}\" }\nheaders = { authorization = \"x\" }\n"),
            6,
            Some("[providers.a] key `headers.authorization`"),
            "as well as `basic`",
        ),
        (
            "duplicate header",
            http_t("[providers.a.headers]\nX-Key = \"a\"\nx-key = \"b\"\n"),
            7,
            Some("[providers.a] key `headers.x-key`"),
            "given twice",
        ),
        (
            "empty header value",
            http_t("headers = { X-Key = \"\" }\n"),
            5,
            Some("[providers.a] key `headers.X-Key`"),
            "the header value is empty",
        ),
        (
            "header value not a string",
            http_t("headers = { X-Key = 1 }\n"),
            5,
            Some("[providers.a] key `headers.X-Key`"),
            "expected a string, found an integer",
        ),
        (
            "header value bad template",
            http_t(&format!("headers = {{ X-Key = \"{SECRET}${{file:}}\" }}\n")),
            5,
            Some("[providers.a] key `headers.X-Key`"),
            "invalid value",
        ),
        (
            "json datetime",
            http_t("[providers.a.json]\nwhen = 2024-01-31\n"),
            6,
            Some("[providers.a] key `json.when`"),
            "a TOML date or time",
        ),
        (
            "json datetime in array",
            http_t("json = { list = [\"a\", 07:30:00] }\n"),
            5,
            Some("[providers.a] key `json.list[1]`"),
            "a TOML date or time",
        ),
        (
            "json nan",
            http_t("json = { a = { b = nan } }\n"),
            5,
            Some("[providers.a] key `json.a.b`"),
            "not a finite number",
        ),
        (
            "json bad template",
            http_t(&format!(
                "json = {{ a = {{ \"b c\" = \"{SECRET}${{cmd:\" }} }}\n"
            )),
            5,
            Some("[providers.a] key `json.a.\"b c\"`"),
            "invalid value",
        ),
        (
            "form value not a string",
            http_t("form = { a = true }\n"),
            5,
            Some("[providers.a] key `form.a`"),
            "expected a string, found a boolean",
        ),
        (
            "form bad template",
            http_t(&format!("form = {{ a = \"${{env:{SECRET}\" }}\n")),
            5,
            Some("[providers.a] key `form.a`"),
            "invalid value",
        ),
        (
            "bad expires",
            http_t("expires = \"exp\"\n"),
            5,
            Some("[providers.a] key `expires`"),
            "neither \"jwt\" nor a JSON pointer",
        ),
        (
            "bad http ttl",
            http_t("ttl = \"soon\"\n"),
            5,
            Some("[providers.a] key `ttl`"),
            "not a duration",
        ),
        (
            "ok not a table",
            http_t("ok = \"/status\"\n"),
            5,
            Some("[providers.a] key `ok`"),
            "expected a table, found a string",
        ),
        (
            "ok without pointer",
            http_t("ok = { equals = \"OK\" }\n"),
            5,
            Some("[providers.a] key `ok.pointer`"),
            "`ok` needs a `pointer`",
        ),
        (
            "ok without equals",
            http_t("\n[providers.a.ok]\npointer = \"/s\"\n"),
            6,
            Some("[providers.a] key `ok.equals`"),
            "`ok` needs `equals`",
        ),
        (
            "ok equals a table",
            http_t("ok = { pointer = \"/s\", equals = {} }\n"),
            5,
            Some("[providers.a] key `ok.equals`"),
            "expected a string, integer or boolean, found a table",
        ),
        (
            "ok message not a pointer",
            http_t("ok = { pointer = \"/s\", equals = \"OK\", message = \"desc\" }\n"),
            5,
            Some("[providers.a] key `ok.message`"),
            "`ok.message` is not a JSON pointer",
        ),
        (
            "ok unknown key",
            http_t("ok = { pointer = \"/s\", equal = \"OK\" }\n"),
            5,
            Some("[providers.a] key `ok.equal`"),
            "known keys: pointer, equals, message",
        ),
        (
            "http bad scheme",
            http_t("scheme = \"digest\"\n"),
            5,
            Some("[providers.a] key `scheme`"),
            "use one of: bearer, basic, raw",
        ),
    ];
    check_errors(cases);
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
