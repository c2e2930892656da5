//! The token engine against a real, independently written OAuth 2.0 server (panva's
//! `oidc-provider`, started on 127.0.0.1 by the fixture), through the real `tokend` and `tok`.

use std::time::{Duration, Instant};

use tokend_e2e::oidc::{APP, OidcServer, SVC_BASIC, SVC_POST, jwt_claims};
use tokend_e2e::{Daemon, code, stderr, stdout};

fn client_credentials(server: &OidcServer, client: &str, auth: &str, endpoint: &str) -> String {
    format!(
        r#"
[providers.api]
kind = "oauth2"
grant = "client_credentials"
{endpoint}
client_id = "{client}"
client_secret = "${{env:E2E_CLIENT_SECRET}}"
client_auth = "{auth}"
scopes = ["api.read"]
"#,
    )
    .replace("TOKEN_URL", &server.token_url())
}

fn token_of(daemon: &Daemon, provider: &str) -> String {
    let out = daemon.tok(&["get", provider, "--min-ttl", "1"]);
    assert_eq!(
        code(&out),
        0,
        "{}\ndaemon log:\n{}",
        stderr(&out),
        daemon.log()
    );
    stdout(&out).trim_end().to_owned()
}

#[test]
fn client_credentials_with_basic_auth_is_fetched_once_and_cached() {
    let server = OidcServer::start(60);
    let config = client_credentials(&server, SVC_BASIC.id, "basic", r#"token_url = "TOKEN_URL""#);
    let daemon = Daemon::start_with_env(&config, &[("E2E_CLIENT_SECRET", SVC_BASIC.secret)]);

    let token = token_of(&daemon, "api");
    let claims = jwt_claims(&token);
    assert_eq!(claims["client_id"], SVC_BASIC.id);
    assert_eq!(claims["scope"], "api.read");
    let out = daemon.tok(&["get", "api", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["token"], token.as_str());
    assert_eq!(json["header"], format!("Authorization: Bearer {token}"));
    assert!(
        json["expires_at"].is_string(),
        "expiry from expires_in: {json}"
    );

    for _ in 0..5 {
        assert_eq!(token_of(&daemon, "api"), token, "served from the cache");
    }
    let stats = server.stats();
    assert_eq!(server.token_requests(), 1, "{stats}");
    assert_eq!(stats["by_auth_method"]["client_secret_basic"], 1, "{stats}");
    let status = daemon.tok(&["status"]);
    assert!(
        stdout(&status)
            .lines()
            .any(|l| l.starts_with("api") && l.contains("fresh")),
        "{}",
        stdout(&status)
    );
}

#[test]
fn client_credentials_with_post_auth_and_oidc_discovery() {
    let server = OidcServer::start(60);
    let issuer = format!(r#"issuer = "{}""#, server.issuer());
    let config = client_credentials(&server, SVC_POST.id, "post", &issuer);
    let daemon = Daemon::start_with_env(&config, &[("E2E_CLIENT_SECRET", SVC_POST.secret)]);
    let token = token_of(&daemon, "api");
    assert_eq!(jwt_claims(&token)["client_id"], SVC_POST.id);
    let stats = server.stats();
    assert_eq!(stats["by_auth_method"]["client_secret_post"], 1, "{stats}");
}

#[test]
fn a_wrong_secret_is_reported_once_and_not_retried_in_a_loop() {
    let server = OidcServer::start(60);
    let config = client_credentials(&server, SVC_BASIC.id, "basic", r#"token_url = "TOKEN_URL""#);
    let daemon = Daemon::start_with_env(&config, &[("E2E_CLIENT_SECRET", "not-the-secret")]);
    for _ in 0..3 {
        let out = daemon.tok(&["get", "api"]);
        assert_eq!(code(&out), 5, "{}", stderr(&out));
        assert!(stdout(&out).is_empty());
        assert!(stderr(&out).contains("invalid_client"), "{}", stderr(&out));
        assert!(
            !stderr(&out).contains("not-the-secret"),
            "the secret must not be echoed"
        );
    }
    assert_eq!(server.token_requests(), 1, "a rejection is not retried");
    let status = stdout(&daemon.tok(&["status"]));
    assert!(
        status.contains("error") && status.contains("invalid_client"),
        "{status}"
    );
    assert!(!daemon.log().contains("not-the-secret"));
}

#[test]
fn refresh_token_grant_follows_rotation() {
    let server = OidcServer::start(60);
    let refresh_token = server.mint_refresh_token();
    let config = server.refresh_token_provider("");
    let daemon = Daemon::start_with_env(
        &config,
        &[
            ("E2E_CLIENT_SECRET", APP.secret),
            ("E2E_REFRESH_TOKEN", &refresh_token),
        ],
    );
    let first = token_of(&daemon, "user");
    // Each refresh rotates the refresh token; reusing an old one would revoke the whole grant
    // (oidc-provider's reuse detection), so three successful refreshes prove rotation is followed.
    let mut seen = vec![first];
    for _ in 0..2 {
        let out = daemon.tok(&["invalidate", "user"]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        std::thread::sleep(Duration::from_millis(5_100)); // invalidation is rate-limited to one per 5 s
        let next = token_of(&daemon, "user");
        assert!(
            !seen.contains(&next),
            "a new access token after invalidation"
        );
        seen.push(next);
    }
    assert_eq!(server.stats()["by_grant"]["refresh_token"], 3);
    for secret in [&refresh_token, &seen[0]] {
        assert!(
            !daemon.log().contains(secret.as_str()),
            "no token in the log"
        );
    }
}

#[test]
fn a_revoked_refresh_token_needs_a_login() {
    let server = OidcServer::start(60);
    let refresh_token = server.mint_refresh_token();
    server.revoke_refresh_token(&refresh_token);
    let config = server.refresh_token_provider("");
    let daemon = Daemon::start_with_env(
        &config,
        &[
            ("E2E_CLIENT_SECRET", APP.secret),
            ("E2E_REFRESH_TOKEN", &refresh_token),
        ],
    );
    let out = daemon.tok(&["get", "user"]);
    assert_eq!(code(&out), 6, "{}", stderr(&out));
    assert!(stderr(&out).contains("invalid_grant"), "{}", stderr(&out));
    let status = stdout(&daemon.tok(&["status"]));
    assert!(status.contains("needs-login"), "{status}");
}

#[test]
fn a_token_is_refreshed_ahead_of_expiry_while_callers_are_served() {
    // Six-second tokens: the advisory window is the last half (capped), so a refresh starts about
    // three seconds after the first fetch, with no caller waiting for it.
    let server = OidcServer::start(6);
    let config = client_credentials(&server, SVC_BASIC.id, "basic", r#"token_url = "TOKEN_URL""#);
    let daemon = Daemon::start_with_env(&config, &[("E2E_CLIENT_SECRET", SVC_BASIC.secret)]);
    let first = token_of(&daemon, "api");
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut served_during_refresh = 0;
    while server.token_requests() < 2 {
        assert!(
            Instant::now() < deadline,
            "no background refresh happened:\n{}",
            daemon.log()
        );
        // Callers keep getting a token at once meanwhile.
        let started = Instant::now();
        let token = token_of(&daemon, "api");
        assert!(started.elapsed() < Duration::from_secs(2));
        if token == first {
            served_during_refresh += 1;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(served_during_refresh > 0);
    // The refreshed token arrives without any caller having waited for an expired one.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let token = token_of(&daemon, "api");
        if token != first {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the refreshed token never replaced the old one"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        daemon.log().contains("refreshing ahead of expiry"),
        "{}",
        daemon.log()
    );
}
