//! Reading the `jwt` table and `expires_at` of `kind = "http"`, the `github-app` preset, and
//! reading an RFC 3339 expiry from an answer.

use std::time::Duration;

use crate::config::test_support::*;
use crate::kinds::http::exchange::read_answer;
use crate::kinds::http::github::Installation;
use crate::kinds::http::*;
use crate::kinds::jwt::SigningAlg;
use crate::kinds::{FetchError, Lifetime, ProviderKind};
use crate::upstream::Answer;

#[test]
fn a_jwt_table_and_an_rfc3339_expiry() {
    let (config, warnings) = parse_ok(
        r#"
[providers.app]
kind = "http"
method = "POST"
url = "https://api.example.com/token"
headers = { Authorization = "Bearer ${jwt}" }
jwt = { private_key = "${file:~/k.pem}", signing_alg = "ES256", key_id = "k1", claims = { iss = "app", aud = ["x", "y"] }, lifetime = "9m", backdate = "60s" }
token = "/token"
expires_at = "/expires_at"
"#,
    );
    assert!(warnings.is_empty(), "{warnings:?}");
    let app = http(&config, "app");
    assert_eq!(app.expires, ExpiresFrom::At("/expires_at".to_owned()));
    let jwt = app.jwt.expect("a jwt table");
    assert_eq!(jwt.key.alg, SigningAlg::Es256);
    assert_eq!(jwt.key.key_id.as_deref(), Some("k1"));
    assert_eq!(jwt.lifetime, Duration::from_secs(540));
    assert_eq!(jwt.backdate, Duration::from_secs(60));
    assert_eq!(
        jwt.claims,
        object(&[
            ("iss", json_str("app")),
            (
                "aud",
                JsonTemplate::Array(vec![json_str("x"), json_str("y")])
            ),
        ])
    );
}

#[test]
fn jwt_and_expiry_errors() {
    let head = "[providers.a]\nkind = \"http\"\nurl = \"https://t/\"\ntoken = \"/t\"\n";
    let cases: &[(&str, String, usize, Option<&str>, &str)] = &[
        (
            "${jwt} without a jwt table",
            format!("{head}headers = {{ Authorization = \"Bearer ${{jwt}}\" }}\n"),
            1,
            Some("[providers.a]"),
            "nothing here signs a JWT",
        ),
        (
            "a jwt table nobody uses",
            format!("{head}jwt = {{ private_key = \"${{file:/k}}\" }}\n"),
            5,
            Some("key `jwt`"),
            "no template uses `${jwt}`",
        ),
        (
            "a reserved claim",
            format!(
                "{head}headers = {{ A = \"${{jwt}}\" }}\n\
                 jwt = {{ private_key = \"${{file:/k}}\", claims = {{ exp = 1 }} }}\n"
            ),
            6,
            Some("key `jwt.claims`"),
            "`exp` is a claim tokend sets itself",
        ),
        (
            "too long",
            format!(
                "{head}headers = {{ A = \"${{jwt}}\" }}\n\
                 jwt = {{ private_key = \"${{file:/k}}\", lifetime = \"2h\" }}\n"
            ),
            6,
            Some("key `jwt.lifetime`"),
            "out of range",
        ),
        (
            "no key",
            format!("{head}headers = {{ A = \"${{jwt}}\" }}\njwt = {{ lifetime = \"1m\" }}\n"),
            6,
            Some("key `jwt.private_key`"),
            "needs `private_key`",
        ),
        (
            "both expiries",
            format!("{head}expires = \"jwt\"\nexpires_at = \"/at\"\n"),
            5,
            Some("key `expires`"),
            "both set",
        ),
        (
            "${jwt} in another kind",
            "[providers.a]\nkind = \"oauth2\"\ngrant = \"client_credentials\"\n\
             token_url = \"https://t/\"\nclient_id = \"c\"\nclient_secret = \"${jwt}\"\n"
                .to_owned(),
            1,
            Some("[providers.a]"),
            "nothing here signs a JWT",
        ),
    ];
    check_errors(cases);
}

#[test]
fn github_app_preset() {
    let (config, _) = parse_ok(
        r#"
[providers.gh]
preset = "github-app"
app_id = 123456
private_key = "${file:~/app.pem}"
installation_id = 42
repositories = ["tools"]
permissions = { contents = "read" }
git = { host = "github.com" }

[providers.ghes]
preset = "github-app"
app_id = "Iv1.abc"
private_key = "${file:~/app.pem}"
owner = "acme"
base_url = "https://git.example.com/api/v3"
"#,
    );
    let ProviderKind::GitHubApp(gh) = &config.providers["gh"].kind else {
        panic!("github-app");
    };
    assert_eq!(gh.installation, Installation::Id(42));
    assert_eq!(
        gh.exchange.url.as_str(),
        "https://api.github.com/app/installations/42/access_tokens"
    );
    assert_eq!(
        gh.exchange.expires,
        ExpiresFrom::At("/expires_at".to_owned())
    );
    let jwt = gh.exchange.jwt.as_ref().unwrap();
    assert_eq!(
        (jwt.lifetime, jwt.backdate),
        (Duration::from_secs(540), Duration::from_secs(60))
    );
    assert_eq!(
        jwt.claims,
        object(&[("iss", JsonTemplate::Integer(123_456))])
    );
    assert_eq!(
        gh.exchange.body,
        Some(HttpBody::Json(object(&[
            ("repositories", JsonTemplate::Array(vec![json_str("tools")])),
            ("permissions", object(&[("contents", json_str("read"))])),
        ])))
    );
    // Its git routes answer as GitHub wants.
    assert_eq!(config.routes[0].username, "x-access-token");
    let ProviderKind::GitHubApp(ghes) = &config.providers["ghes"].kind else {
        panic!("github-app");
    };
    assert_eq!(ghes.installation, Installation::Owner("acme".to_owned()));
    assert_eq!(ghes.base_url.as_str(), "https://git.example.com/api/v3");
    assert_eq!(ghes.exchange.body, None);

    let head = "[providers.a]\npreset = \"github-app\"\napp_id = 1\nprivate_key = \"${file:/k}\"\n";
    let cases: &[(&str, String, usize, Option<&str>, &str)] = &[
        (
            "no installation",
            head.to_owned(),
            1,
            Some("key `installation_id`"),
            "`installation_id` or `owner`",
        ),
        (
            "both",
            format!("{head}installation_id = 1\nowner = \"o\"\n"),
            6,
            Some("key `owner`"),
            "both set",
        ),
        (
            "negative id",
            format!("{head}installation_id = -4\n"),
            5,
            Some("key `installation_id`"),
            "not a positive integer",
        ),
        (
            "bad access level",
            format!("{head}owner = \"o\"\npermissions = {{ contents = \"all\" }}\n"),
            6,
            Some("key `permissions.contents`"),
            "unknown access level",
        ),
        (
            "bad repository",
            format!("{head}owner = \"o\"\nrepositories = [\"o/r\"]\n"),
            6,
            Some("key `repositories[0]`"),
            "not a repository name",
        ),
    ];
    check_errors(cases);
}

fn answer(body: &str) -> Answer {
    Answer {
        status: 201,
        retry_after: None,
        content_type: Some("application/json".to_owned()),
        headers: http::HeaderMap::new(),
        body: tokend_protocol::SecretBuf::new(body.as_bytes().to_vec()),
    }
}

#[test]
fn an_rfc3339_expiry_is_read_from_the_answer() {
    let exchange = HttpExchange {
        method: HttpMethod::Post,
        url: url("https://t/"),
        basic: None,
        headers: Vec::new(),
        body: None,
        token: "/token".to_owned(),
        expires: ExpiresFrom::At("/expires_at".to_owned()),
        ttl: None,
        ok: None,
        timeout: None,
        jwt: None,
    };
    let at = tokend_protocol::clock::unix_now() + 3600;
    let body = format!(
        r#"{{"token": "ghs_x", "expires_at": "{}"}}"#,
        tokend_protocol::clock::rfc3339(at)
    );
    let fetched = read_answer(&exchange, "POST t", &answer(&body)).unwrap();
    let Lifetime::Expires(left) = fetched.lifetime else {
        panic!("an expiry");
    };
    assert!((3590..=3600).contains(&left.as_secs()), "{left:?}");
    // With an offset, as RFC 3339 allows.
    let body = r#"{"token": "t", "expires_at": "2999-01-01T02:00:00+02:00"}"#;
    assert!(matches!(
        read_answer(&exchange, "POST t", &answer(body))
            .unwrap()
            .lifetime,
        Lifetime::Expires(_)
    ));
    // Past: expired (the cache refuses it); missing or not a timestamp: said.
    let body = r#"{"token": "t", "expires_at": "2001-01-01T00:00:00Z"}"#;
    assert_eq!(
        read_answer(&exchange, "POST t", &answer(body))
            .unwrap()
            .lifetime,
        Lifetime::Expires(Duration::ZERO)
    );
    for body in [
        r#"{"token": "t"}"#,
        r#"{"token": "t", "expires_at": "tomorrow"}"#,
        r#"{"token": "t", "expires_at": 1800000000}"#,
    ] {
        let error = read_answer(&exchange, "POST t", &answer(body)).unwrap_err();
        assert!(
            matches!(&error, FetchError::Transient { message, .. } if message.contains("no RFC 3339 timestamp at /expires_at")),
            "{body}: {error:?}"
        );
    }
}
