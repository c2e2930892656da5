//! Reading a `kind = "http"` table: methods, URL, `basic`, headers, form and JSON bodies,
//! `expires`, `ok`.

use crate::config::test_support::*;
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
