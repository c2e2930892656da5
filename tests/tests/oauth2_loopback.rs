//! An `oauth2` provider against a token endpoint on loopback that the test process serves itself
//! (wiremock): the client-credentials grant, the refresh-token grant with rotation, and an
//! upstream refusal. The OAuth 2.0 behaviour in depth is tested against the real oidc-provider
//! (`engine_oauth2.rs`, `logins.rs`); this file is what the Windows run under Wine covers,
//! where that Node.js server cannot be started (Wine starts a Linux program but hands the
//! Windows process no handle to it, so no pipe to read its address from).

use tokend_e2e::{Daemon, code, stderr, stdout};
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const CLIENT_SECRET: &str = "loopback-client-secret-0123";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn client_credentials_against_a_loopback_token_endpoint() {
    let runtime = runtime();
    let server = runtime.block_on(MockServer::start());
    runtime.block_on(
        Mock::given(method("POST"))
            .and(path("/oauth/token"))
            // HTTP Basic with the client id and secret (RFC 6749 2.3.1).
            .and(header(
                "authorization",
                "Basic c3ZjOmxvb3BiYWNrLWNsaWVudC1zZWNyZXQtMDEyMw==",
            ))
            .and(body_string_contains("grant_type=client_credentials"))
            .and(body_string_contains("scope=api.read"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "access_token": "cc-access-token-1",
                "token_type": "Bearer",
                "expires_in": 3600,
            })))
            .expect(1)
            .mount(&server),
    );
    let config = format!(
        r#"
[providers.svc]
kind = "oauth2"
grant = "client_credentials"
token_url = "{}/oauth/token"
client_id = "svc"
client_secret = "${{env:E2E_CC_SECRET}}"
scopes = ["api.read"]
"#,
        server.uri()
    );
    let daemon = Daemon::start_with_env(&config, &[("E2E_CC_SECRET", CLIENT_SECRET)]);
    for _ in 0..3 {
        let out = daemon.tok(&["header", "svc"]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        assert_eq!(stdout(&out), "Authorization: Bearer cc-access-token-1\n");
    }
    let status = daemon.tok(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&stdout(&status)).unwrap();
    assert_eq!(status["providers"][0]["state"], "fresh", "{status}");
    // One token request for three callers: the token is cached (wiremock checks `expect(1)`).
    runtime.block_on(server.verify());
}

#[test]
fn a_rotated_refresh_token_is_followed_and_a_refusal_is_reported() {
    let runtime = runtime();
    let server = runtime.block_on(MockServer::start());
    runtime.block_on(async {
        Mock::given(method("POST"))
            .and(path("/token"))
            .and(body_string_contains("refresh_token=rt-first"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "access_token": "at-one",
                "token_type": "Bearer",
                "expires_in": 1,
                "refresh_token": "rt-second",
            })))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/token"))
            .and(body_string_contains("refresh_token=rt-second"))
            .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
                "error": "invalid_grant",
                "error_description": "refresh token revoked",
            })))
            .mount(&server)
            .await;
    });
    let config = format!(
        r#"
[providers.api]
kind = "oauth2"
grant = "refresh_token"
token_url = "{}/token"
client_id = "public-app"
refresh_token = "${{env:E2E_RT}}"
"#,
        server.uri()
    );
    let daemon = Daemon::start_with_env(&config, &[("E2E_RT", "rt-first")]);
    let out = daemon.tok(&["get", "api", "--min-ttl", "0"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "at-one\n");
    // The access token lives 1 s; the next request spends the rotated refresh token, which the
    // server refuses: a login is needed (exit 6), and the message says what the server said.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let out = daemon.tok(&["get", "api"]);
    assert_eq!(code(&out), 6, "{}", stderr(&out));
    assert!(stderr(&out).contains("invalid_grant"), "{}", stderr(&out));
    let requests = runtime.block_on(server.received_requests()).unwrap();
    let spent: Vec<String> = requests
        .iter()
        .map(|request| String::from_utf8_lossy(&request.body).into_owned())
        .collect();
    assert!(
        spent
            .iter()
            .any(|body| body.contains("refresh_token=rt-second")),
        "the rotated refresh token was not used: {spent:?}"
    );
    runtime.block_on(server.verify());
}
