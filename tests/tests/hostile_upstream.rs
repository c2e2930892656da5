//! A token endpoint that does not play fair, against the real `tokend` and `tok`: a token that
//! would inject HTTP headers, an error body that echoes the request's secrets (client secrets,
//! JSON-body secrets, secret header values), and JWTs whose
//! `exp` says they have already expired (however it is written). Each is refused with an error
//! naming the provider; nothing harmful is served, cached, shown or logged.

use base64::Engine as _;
use tokend_e2e::{Daemon, code, stderr, stdout};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Runs a blocking closure (the real `tok` process) while the fake server keeps serving.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

fn jwt(claims: &str) -> String {
    let part = |json: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
    format!(
        "{}.{}.c2ln",
        part(r#"{"alg":"HS256","typ":"JWT"}"#),
        part(claims)
    )
}

async fn answering(path_: &str, body: serde_json::Value) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(path(path_))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(&server)
        .await;
    server
}

fn http_provider(url: &str) -> String {
    format!(
        r#"
[providers.api]
kind = "http"
url = "{url}/token"
token = "/token"
expires = "jwt"
"#
    )
}

fn oauth2_provider(url: &str) -> String {
    format!(
        r#"
[providers.api]
kind = "oauth2"
grant = "client_credentials"
token_url = "{url}/token"
client_id = "svc"
client_secret = "${{env:E2E_CLIENT_SECRET}}"
"#
    )
}

/// The daemon environment of most tests here: the client secret the endpoints echo.
const CLIENT_SECRET: &[(&str, &str)] = &[("E2E_CLIENT_SECRET", "Echoed-Client-Secret+9/x")];

/// `tok ARGS` for a daemon with `config` and the environment `env`: exit, stdout, stderr, the
/// daemon log and `tok status --json`.
async fn tok(
    config: String,
    env: &'static [(&'static str, &'static str)],
    args: &'static [&'static str],
) -> (i32, String, String, String, String) {
    blocking(move || {
        let daemon = Daemon::start_with_env(&config, env);
        let out = daemon.tok(args);
        let status = stdout(&daemon.tok(&["status", "--json"]));
        (code(&out), stdout(&out), stderr(&out), daemon.log(), status)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_with_a_line_break_is_refused_not_served_as_a_header() {
    let evil = "abc\r\nX-Injected: yes";
    let http = answering("/token", serde_json::json!({ "token": evil })).await;
    let oauth = answering(
        "/token",
        serde_json::json!({ "access_token": evil, "token_type": "Bearer", "expires_in": 3600 }),
    )
    .await;
    for config in [http_provider(&http.uri()), oauth2_provider(&oauth.uri())] {
        for args in [&["header", "api"][..], &["get", "api"][..]] {
            let args: &'static [&'static str] = Box::leak(args.to_vec().into_boxed_slice());
            let (exit, out, err, log, status) = tok(config.clone(), CLIENT_SECRET, args).await;
            assert_eq!(exit, 5, "{args:?}: {err}");
            assert!(out.is_empty(), "nothing is printed: {out:?}");
            assert!(
                err.contains("provider `api`") && err.contains("control character"),
                "{err}"
            );
            assert!(!out.contains("X-Injected") && !log.contains("X-Injected"));
            // Never cached: the provider has no token.
            let status: serde_json::Value = serde_json::from_str(&status).unwrap();
            assert!(status["providers"][0]["expires_at"].is_null(), "{status}");
            assert_ne!(status["providers"][0]["state"], "fresh", "{status}");
        }
    }
    // Not only line breaks: NUL, other C0 controls, DEL and C1 controls are no header value.
    for (bad, code_point) in [
        ("abc\u{0}def", "U+0000"),
        ("abc\u{1b}[2J", "U+001B"),
        ("abc\u{7f}", "U+007F"),
        ("abc\u{85}def", "U+0085"),
    ] {
        let server = answering("/token", serde_json::json!({ "token": bad })).await;
        let (exit, out, err, _, _) =
            tok(http_provider(&server.uri()), CLIENT_SECRET, &["get", "api"]).await;
        assert_eq!(exit, 5, "{code_point}: {err}");
        assert!(out.is_empty(), "{code_point}: served {out:?}");
        assert!(err.contains(code_point), "{code_point}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_a_token_endpoint_echoes_are_masked_everywhere() {
    let server = MockServer::start().await;
    // Like many servers: the error description repeats the request it refused.
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "error": "invalid_request",
            "error_description":
                "bad request: grant_type=client_credentials&client_secret=Echoed-Client-Secret%2B9%2Fx \
                 (raw: Echoed-Client-Secret+9/x; basic: c3ZjOkVjaG9lZC1DbGllbnQtU2VjcmV0JTJCOSUyRng=)"
        })))
        .mount(&server)
        .await;
    let (exit, out, err, log, status) = tok(
        oauth2_provider(&server.uri()),
        CLIENT_SECRET,
        &["get", "api"],
    )
    .await;
    assert_eq!(exit, 5, "{err}");
    assert!(out.is_empty());
    assert!(
        err.contains("invalid_request") && err.contains("[redacted]"),
        "the error still says what upstream answered: {err}"
    );
    for (what, text) in [
        ("tok's error", &err),
        ("the log", &log),
        ("tok status", &status),
    ] {
        for form in [
            "Echoed-Client-Secret",
            "Echoed-Client-Secret%2B9%2Fx",
            "c3ZjOkVjaG9lZC1DbGllbnQtU2VjcmV0JTJCOSUyRng=",
        ] {
            assert!(
                !text.contains(form),
                "{what} shows the secret ({form}): {text}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_sent_in_a_json_body_and_a_header_are_masked_when_echoed() {
    let server = MockServer::start().await;
    // An `http` exchange whose status object repeats the JSON body and the headers it was
    // sent, as a debugging endpoint would; the `ok` check shows that message.
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "status": {
                "code": "DENIED",
                "description": "refused {\"user\":\"svc\",\"password\":\"Echoed-Client-Secret+9/x\"} \
                                with X-Api-Key: Header-Secret-77"
            }
        })))
        .mount(&server)
        .await;
    let config = format!(
        r#"
[providers.api]
kind = "http"
url = "{}/token"
headers = {{ X-Api-Key = "${{env:E2E_HEADER_SECRET}}" }}
json = {{ user = "svc", password = "${{env:E2E_CLIENT_SECRET}}" }}
token = "/token"
ok = {{ pointer = "/status/code", equals = "OK", message = "/status/description" }}
"#,
        server.uri()
    );
    let env = &[
        ("E2E_CLIENT_SECRET", "Echoed-Client-Secret+9/x"),
        ("E2E_HEADER_SECRET", "Header-Secret-77"),
    ];
    let (exit, out, err, log, status) = tok(config, env, &["get", "api"]).await;
    assert_eq!(exit, 5, "{err}");
    assert!(out.is_empty());
    assert!(
        err.contains("refused") && err.contains("[redacted]"),
        "the error still says what upstream answered: {err}"
    );
    // The request did carry both secrets: what was masked is what was sent.
    let requests = server.received_requests().await.unwrap();
    let sent = &requests[0];
    assert_eq!(sent.headers["x-api-key"], "Header-Secret-77");
    assert!(String::from_utf8_lossy(&sent.body).contains("Echoed-Client-Secret+9/x"));
    for (what, text) in [
        ("tok's error", &err),
        ("the log", &log),
        ("tok status", &status),
    ] {
        for secret in ["Echoed-Client-Secret", "Header-Secret-77"] {
            assert!(
                !text.contains(secret),
                "{what} shows the secret ({secret}): {text}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwt_that_expired_is_refused_however_its_exp_is_written() {
    for exp in ["-5", "0", "1000", "\"-30\"", "-1e10"] {
        let token = jwt(&format!(r#"{{"sub":"x","exp":{exp}}}"#));
        let server = answering("/token", serde_json::json!({ "token": token })).await;
        let (exit, out, err, _, status) =
            tok(http_provider(&server.uri()), CLIENT_SECRET, &["get", "api"]).await;
        assert_eq!(exit, 5, "exp {exp}: {err}");
        assert!(out.is_empty(), "exp {exp}: served {out}");
        assert!(err.contains("already expired"), "exp {exp}: {err}");
        let status: serde_json::Value = serde_json::from_str(&status).unwrap();
        assert!(status["providers"][0]["expires_at"].is_null(), "{status}");
    }
    // An `exp` nothing can read: said, never taken as "valid forever".
    let token = jwt(r#"{"sub":"x","exp":"soon"}"#);
    let server = answering("/token", serde_json::json!({ "token": token })).await;
    let (exit, _, err, _, _) =
        tok(http_provider(&server.uri()), CLIENT_SECRET, &["get", "api"]).await;
    assert_eq!(exit, 5, "{err}");
    assert!(err.contains("lifetime is unknown"), "{err}");
    // A huge one is capped (ten years), not an overflow.
    let token = jwt(r#"{"sub":"x","exp":1e300}"#);
    let server = answering("/token", serde_json::json!({ "token": token })).await;
    let (exit, _, err, _, status) =
        tok(http_provider(&server.uri()), CLIENT_SECRET, &["get", "api"]).await;
    assert_eq!(exit, 0, "{err}");
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    // `expires_at` is RFC 3339: ten years from now.
    let expires = status["providers"][0]["expires_at"].as_str().unwrap();
    let year: u64 = expires[..4].parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let this_year = 1970 + now / 31_556_952;
    assert!((this_year + 9..=this_year + 11).contains(&year), "{status}");
}
