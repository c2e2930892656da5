//! The client's reqwest middleware (`tokend_client::middleware::TokendAuth`, feature
//! `reqwest`) in a real reqwest-middleware chain, against the real `tokend` and a loopback API
//! (`tokend_e2e::http_upstream`) that records what reaches it.

use tokend_client::middleware::TokendAuth;
use tokend_client::{AsyncClient, Client};
use tokend_e2e::Daemon;
use tokend_e2e::http_upstream::HttpUpstream;

fn setup(upstream: &HttpUpstream, header: &str) -> Daemon {
    Daemon::start(&format!(
        "[providers.api]\nkind = \"http\"\nurl = \"{}/token\"\ntoken = \"/token\"\n\
         expires = \"/expires_in\"\n{header}\n",
        upstream.url()
    ))
}

fn tokens(daemon: &Daemon) -> AsyncClient {
    Client::builder()
        .endpoint(daemon.endpoint())
        .autostart(false)
        .build_async()
}

fn authed(daemon: &Daemon, provider: &str) -> reqwest_middleware::ClientWithMiddleware {
    // reqwest as the workspace configures it needs a process-wide TLS crypto provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(TokendAuth::new(tokens(daemon), provider))
        .build()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn each_request_carries_the_providers_header_and_a_401_is_retried_once_with_a_fresh_token() {
    let upstream = HttpUpstream::start(1);
    let daemon = setup(&upstream, "");
    let http = authed(&daemon, "api");
    runtime().block_on(async {
        // The caller's own Authorization is replaced.
        let echo: serde_json::Value = http
            .get(format!("{}/items?page=2", upstream.url()))
            .header("authorization", "Bearer the-callers-own")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(echo["authorization"], "Bearer tok-1");
        assert_eq!(echo["query"], "page=2");

        // /strict refuses the first token it sees: invalidated, fetched anew, sent again.
        let response = http
            .post(format!("{}/strict/orders", upstream.url()))
            .body("{\"n\":1}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "ok");
    });
    let strict = upstream.seen_under("/strict");
    assert_eq!(strict.len(), 2, "one refusal, one retry");
    assert_eq!(strict[0].header("authorization"), Some("Bearer tok-1"));
    assert_eq!(strict[1].header("authorization"), Some("Bearer tok-2"));
    assert_eq!(strict[1].body_len, 7, "the body went again");
    assert_eq!(upstream.tokens_issued(), 2);
    daemon.assert_no_secret_logged();
}

#[test]
fn a_401_with_no_fresher_token_and_daemon_errors_reach_the_caller() {
    let upstream = HttpUpstream::start(1);
    let daemon = setup(&upstream, "header = \"X-Api-Key\"\nscheme = \"raw\"");
    let http = authed(&daemon, "api");
    runtime().block_on(async {
        let echo: serde_json::Value = http
            .get(format!("{}/items", upstream.url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(echo["authorization"], serde_json::Value::Null);

        // The token endpoint now refuses: the invalidation leaves no token, the error says so.
        upstream.reject_tokens(true);
        let err = http
            .get(format!("{}/strict/x", upstream.url()))
            .send()
            .await
            .unwrap_err();
        assert!(err.to_string().contains("401"), "{err}");

        // An unknown provider fails before anything is sent.
        let other = authed(&daemon, "nope");
        let err = other
            .get(format!("{}/never", upstream.url()))
            .send()
            .await
            .unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    });
    assert!(upstream.seen_under("/never").is_empty());
    let strict = upstream.seen_under("/strict");
    assert_eq!(strict.len(), 1);
    assert_eq!(
        strict[0].header("x-api-key").map(|v| v.starts_with("tok-")),
        Some(true)
    );
}
