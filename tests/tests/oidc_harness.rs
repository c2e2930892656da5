//! The OIDC test-server harness itself, driven over plain HTTP: proves that the real
//! `oidc-provider` behaves the way tokend's engine relies on (token responses, TTLs, JWT access
//! tokens, client authentication errors, refresh-token rotation and revocation) and that the
//! fixture's counters work. Each test starts its own server.

use serde_json::Value;
use tokend_e2e::oidc::{
    APP, DEFAULT_RESOURCE, HttpReply, OidcServer, SVC_BASIC, SVC_POST, TestClient, http_agent,
    jwt_claims, post_form,
};

fn token_request(
    server: &OidcServer,
    basic: Option<TestClient>,
    form: &[(&str, &str)],
) -> HttpReply {
    post_form(&http_agent(), &server.token_url(), basic, form)
}

/// Asserts a successful Bearer token response with `expires_in` == `ttl` and the given scope,
/// and returns the access token's JWT claims.
fn assert_token_response(reply: &HttpReply, ttl: u64, scope: &str) -> Value {
    assert_eq!(reply.status, 200, "token response: {}", reply.body);
    assert_eq!(reply.str("token_type"), Some("Bearer"), "{}", reply.body);
    assert_eq!(
        reply.body.get("expires_in").and_then(Value::as_u64),
        Some(ttl),
        "{}",
        reply.body
    );
    assert_eq!(reply.str("scope"), Some(scope), "{}", reply.body);
    let access_token = reply.str("access_token").expect("access_token");
    assert!(!access_token.is_empty());
    let claims = jwt_claims(access_token);
    let iat = claims["iat"].as_u64().expect("iat");
    let exp = claims["exp"].as_u64().expect("exp");
    assert_eq!(exp - iat, ttl, "JWT lifetime: {claims}");
    assert_eq!(claims["scope"].as_str(), Some(scope), "{claims}");
    claims
}

fn assert_oauth_error(reply: &HttpReply, status: u16, error: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.str("error"), Some(error), "{}", reply.body);
}

#[test]
fn discovery_names_the_token_and_revocation_endpoints() {
    let server = OidcServer::start(60);
    let issuer = server.issuer().to_owned();
    assert!(issuer.starts_with("http://127.0.0.1:"), "{issuer}");
    let discovery = server.discovery();
    assert_eq!(discovery["issuer"].as_str(), Some(issuer.as_str()));
    assert_eq!(server.token_url(), format!("{issuer}/token"));
    assert_eq!(
        server.revocation_url(),
        format!("{issuer}/token/revocation")
    );
    let grants = discovery["grant_types_supported"].to_string();
    for grant in ["client_credentials", "refresh_token"] {
        assert!(grants.contains(grant), "{grants}");
    }
    let methods = discovery["token_endpoint_auth_methods_supported"].to_string();
    for method in ["client_secret_basic", "client_secret_post"] {
        assert!(methods.contains(method), "{methods}");
    }
}

#[test]
fn client_credentials_with_basic_auth() {
    let server = OidcServer::start(37);
    let reply = token_request(
        &server,
        Some(SVC_BASIC),
        &[("grant_type", "client_credentials"), ("scope", "api.read")],
    );
    let claims = assert_token_response(&reply, 37, "api.read");
    assert_eq!(claims["client_id"].as_str(), Some("svc-basic"));
    assert_eq!(claims["aud"].as_str(), Some(DEFAULT_RESOURCE));
    assert_eq!(claims["iss"].as_str(), Some(server.issuer()));
    assert_eq!(
        server.stats()["by_auth_method"]["client_secret_basic"].as_u64(),
        Some(1)
    );
}

#[test]
fn client_credentials_with_the_secret_in_the_form() {
    let server = OidcServer::start(90);
    let reply = token_request(
        &server,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", SVC_POST.id),
            ("client_secret", SVC_POST.secret),
            ("scope", "api.read api.write"),
        ],
    );
    let claims = assert_token_response(&reply, 90, "api.read api.write");
    assert_eq!(claims["client_id"].as_str(), Some("svc-post"));
    assert_eq!(
        server.stats()["by_auth_method"]["client_secret_post"].as_u64(),
        Some(1)
    );
}

#[test]
fn client_credentials_for_a_resource_or_audience() {
    let server = OidcServer::start(45);
    let reply = token_request(
        &server,
        Some(SVC_BASIC),
        &[
            ("grant_type", "client_credentials"),
            ("scope", "api.read"),
            ("resource", "https://api.example.test"),
        ],
    );
    let claims = assert_token_response(&reply, 45, "api.read");
    assert_eq!(claims["aud"].as_str(), Some("https://api.example.test"));

    // The non-standard `audience` parameter works as `resource` does.
    let reply = token_request(
        &server,
        Some(SVC_BASIC),
        &[
            ("grant_type", "client_credentials"),
            ("scope", "api.write"),
            ("audience", "https://other.example.test"),
        ],
    );
    let claims = assert_token_response(&reply, 45, "api.write");
    assert_eq!(claims["aud"].as_str(), Some("https://other.example.test"));

    // An unknown resource is refused.
    let reply = token_request(
        &server,
        Some(SVC_BASIC),
        &[
            ("grant_type", "client_credentials"),
            ("scope", "api.read"),
            ("resource", "https://unknown.invalid"),
        ],
    );
    assert_oauth_error(&reply, 400, "invalid_target");
}

#[test]
fn scopes_outside_the_clients_allow_list_are_refused() {
    let server = OidcServer::start(60);
    let reply = token_request(
        &server,
        Some(SVC_BASIC),
        &[("grant_type", "client_credentials"), ("scope", "openid")],
    );
    assert_oauth_error(&reply, 400, "invalid_scope");
}

#[test]
fn wrong_or_missing_client_credentials_are_refused() {
    let server = OidcServer::start(60);
    let form = [("grant_type", "client_credentials"), ("scope", "api.read")];
    let wrong = TestClient {
        id: SVC_BASIC.id,
        secret: "not-the-secret",
    };
    assert_oauth_error(
        &token_request(&server, Some(wrong), &form),
        401,
        "invalid_client",
    );

    let unknown = TestClient {
        id: "nobody",
        secret: "x",
    };
    assert_oauth_error(
        &token_request(&server, Some(unknown), &form),
        401,
        "invalid_client",
    );

    let reply = token_request(
        &server,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", SVC_POST.id),
            ("client_secret", "not-the-secret"),
        ],
    );
    assert_oauth_error(&reply, 401, "invalid_client");

    // No client authentication at all is a 400 invalid_request, not a 401.
    assert_oauth_error(&token_request(&server, None, &form), 400, "invalid_request");

    let stats = server.stats();
    assert_eq!(stats["failures"].as_u64(), Some(4), "{stats}");
    assert_eq!(
        stats["errors"]["invalid_client"].as_u64(),
        Some(3),
        "{stats}"
    );
}

#[test]
fn minted_refresh_tokens_work_once_and_rotate() {
    let server = OidcServer::start(30);
    let first = server.mint_refresh_token();

    let reply = token_request(
        &server,
        Some(APP),
        &[("grant_type", "refresh_token"), ("refresh_token", &first)],
    );
    let claims = assert_token_response(&reply, 30, "api.read");
    assert_eq!(claims["sub"].as_str(), Some("tester"));
    assert_eq!(claims["client_id"].as_str(), Some("app"));
    let second = reply.str("refresh_token").expect("rotated refresh token");
    assert_ne!(second, first);

    // The rotated one works...
    let reply = token_request(
        &server,
        Some(APP),
        &[("grant_type", "refresh_token"), ("refresh_token", second)],
    );
    assert_token_response(&reply, 30, "api.read");
    let third = reply
        .str("refresh_token")
        .expect("rotated refresh token")
        .to_owned();

    // ...the consumed one does not...
    let reply = token_request(
        &server,
        Some(APP),
        &[("grant_type", "refresh_token"), ("refresh_token", &first)],
    );
    assert_oauth_error(&reply, 400, "invalid_grant");

    // ...and its reuse revoked the whole grant, the newest refresh token included.
    let reply = token_request(
        &server,
        Some(APP),
        &[("grant_type", "refresh_token"), ("refresh_token", &third)],
    );
    assert_oauth_error(&reply, 400, "invalid_grant");
}

#[test]
fn refresh_tokens_belong_to_their_client() {
    let server = OidcServer::start(60);
    let token = server.mint_refresh_token();
    // A client without the refresh_token grant is refused before the token is looked at.
    let reply = token_request(
        &server,
        Some(SVC_BASIC),
        &[("grant_type", "refresh_token"), ("refresh_token", &token)],
    );
    assert_oauth_error(&reply, 400, "invalid_request");
    // Garbage is invalid_grant.
    let reply = token_request(
        &server,
        Some(APP),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", "garbage"),
        ],
    );
    assert_oauth_error(&reply, 400, "invalid_grant");
    // The real token is still good.
    let reply = token_request(
        &server,
        Some(APP),
        &[("grant_type", "refresh_token"), ("refresh_token", &token)],
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[test]
fn revoked_refresh_tokens_are_invalid_grant() {
    let server = OidcServer::start(60);
    let token = server.mint_refresh_token();
    server.revoke_refresh_token(&token);
    let reply = token_request(
        &server,
        Some(APP),
        &[("grant_type", "refresh_token"), ("refresh_token", &token)],
    );
    assert_oauth_error(&reply, 400, "invalid_grant");
    assert_eq!(server.stats()["revocation_requests"].as_u64(), Some(1));
}

#[test]
fn stats_count_token_requests() {
    let server = OidcServer::start(60);
    assert_eq!(server.token_requests(), 0);

    let cc = [("grant_type", "client_credentials"), ("scope", "api.read")];
    for _ in 0..3 {
        assert_eq!(token_request(&server, Some(SVC_BASIC), &cc).status, 200);
    }
    let refresh_token = server.mint_refresh_token();
    let reply = token_request(
        &server,
        Some(APP),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh_token),
        ],
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let bad = TestClient {
        id: SVC_BASIC.id,
        secret: "wrong",
    };
    assert_eq!(token_request(&server, Some(bad), &cc).status, 401);

    assert_eq!(server.token_requests(), 5);
    let stats = server.stats();
    assert_eq!(stats["by_grant"]["client_credentials"].as_u64(), Some(4));
    assert_eq!(stats["by_grant"]["refresh_token"].as_u64(), Some(1));
    assert_eq!(stats["failures"].as_u64(), Some(1), "{stats}");

    server.reset_stats();
    assert_eq!(server.token_requests(), 0);
    let stats = server.stats();
    assert_eq!(stats["failures"].as_u64(), Some(0), "{stats}");
    assert_eq!(stats["by_grant"], serde_json::json!({}));
}

#[test]
fn the_server_exits_when_the_fixture_drops() {
    let server = OidcServer::start(60);
    let token_url = server.token_url();
    drop(server);
    let reply = http_agent()
        .post(&token_url)
        .send_form([("grant_type", "client_credentials")]);
    assert!(reply.is_err(), "the server still answers after the drop");
}

#[test]
#[should_panic(expected = "REFRESH_TOKEN_TTL must be a positive integer")]
fn a_server_that_fails_to_start_is_reported_with_its_log() {
    let _server = OidcServer::start_with_env(&[("REFRESH_TOKEN_TTL", "soon")]);
}

#[test]
fn refresh_token_ttl_is_configurable() {
    let server =
        OidcServer::start_with_env(&[("ACCESS_TOKEN_TTL", "20"), ("REFRESH_TOKEN_TTL", "1")]);
    let token = server.mint_refresh_token();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let reply = token_request(
        &server,
        Some(APP),
        &[("grant_type", "refresh_token"), ("refresh_token", &token)],
    );
    assert_oauth_error(&reply, 400, "invalid_grant");
}
