//! The OIDC test-server harness itself, driven over plain HTTP: proves that the real
//! `oidc-provider` behaves the way tokend's engine relies on (token responses, TTLs, JWT access
//! tokens, client authentication errors, refresh-token rotation and revocation) and that the
//! fixture's counters work. Each test starts its own server.

use serde_json::Value;
use tokend_e2e::oidc::{
    APP, CLI, CLIENT_ASSERTION_TYPE, DEFAULT_RESOURCE, DEVICE_CODE_GRANT, EXCHANGER, HttpReply,
    JWT_BEARER_GRANT, JWT_BEARER_KEY, OidcServer, PKJWT, PKJWT_KEY, SA, SERVICE_ACCOUNT, SVC_BASIC,
    SVC_POST, TOKEN_EXCHANGE_GRANT, TestClient, deliver_redirect, fixture_key, http_agent,
    jwt_claims, now_secs, pkce_pair, pkjwt_assertion, post_form, query_param, random_token,
    sign_rs256,
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

// ---- interactive logins: authorization code + PKCE, device flow, private_key_jwt, jwt-bearer ----

/// An authorization request URL for `client` with PKCE S256 (`challenge`), `redirect_uri` and
/// `state`, as the daemon builds it; `authorize` is the authorization endpoint.
fn authorize_url(
    authorize: &str,
    client: TestClient,
    redirect_uri: &str,
    state: &str,
    challenge: Option<&str>,
) -> String {
    let mut url = url::Url::parse(authorize).expect("authorization endpoint URL");
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", client.id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", "openid offline_access api.read")
            .append_pair("state", state);
        if let Some(challenge) = challenge {
            query
                .append_pair("code_challenge", challenge)
                .append_pair("code_challenge_method", "S256");
        }
    }
    url.to_string()
}

/// A one-shot HTTP listener on an ephemeral loopback port standing in for the daemon's redirect
/// listener: answers the first request with 200 "login complete" and hands back its request line.
fn one_shot_listener() -> (u16, std::thread::JoinHandle<String>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = listener.local_addr().expect("local addr").port();
    let handle = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .expect("read timeout");
        let mut buf = [0_u8; 4096];
        let n = stream.read(&mut buf).unwrap_or(0);
        let request = String::from_utf8_lossy(&buf[..n]).into_owned();
        let _ = stream.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 14\r\nconnection: close\r\n\r\nlogin complete",
        );
        request.lines().next().unwrap_or_default().to_owned()
    });
    (port, handle)
}

fn public_token_request(server: &OidcServer, form: &[(&str, &str)]) -> HttpReply {
    token_request(server, None, form)
}

#[test]
fn cli_authorization_code_with_pkce_on_any_loopback_port() {
    let server = OidcServer::start(40);
    let (port, listener) = one_shot_listener();
    let redirect_uri = format!("http://127.0.0.1:{port}/callback");
    let (verifier, challenge) = pkce_pair();
    let state = random_token(16);
    let url = authorize_url(
        &server.authorization_url(),
        CLI,
        &redirect_uri,
        &state,
        Some(&challenge),
    );

    let location = server.approve_login(&url, "alice").expect("login");
    assert!(
        location.starts_with(&format!("{redirect_uri}?")),
        "{location}"
    );
    assert_eq!(
        query_param(&location, "state").as_deref(),
        Some(state.as_str())
    );
    let code = query_param(&location, "code").expect("code in the redirect");
    // The harness stops before the callback: nothing reached the listener yet.
    assert!(!listener.is_finished());
    let (status, body) = deliver_redirect(&location).expect("deliver the redirect");
    assert_eq!((status, body.as_str()), (200, "login complete"));
    let request_line = listener.join().expect("listener thread");
    assert!(
        request_line.starts_with("GET /callback?code=") && request_line.contains(&state),
        "{request_line}"
    );

    // The code, without `resource`, yields an access token and a refresh token.
    let reply = public_token_request(
        &server,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", CLI.id),
            ("code", &code),
            ("redirect_uri", &redirect_uri),
            ("code_verifier", &verifier),
        ],
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.str("token_type"), Some("Bearer"));
    assert_eq!(
        reply.body["expires_in"].as_u64(),
        Some(40),
        "{}",
        reply.body
    );
    assert!(reply.str("id_token").is_some(), "{}", reply.body);
    let access_token = reply.str("access_token").expect("access_token");
    let claims = jwt_claims(access_token);
    assert_eq!(claims["sub"].as_str(), Some("alice"), "{claims}");
    assert_eq!(claims["aud"].as_str(), Some(DEFAULT_RESOURCE), "{claims}");
    assert_eq!(claims["client_id"].as_str(), Some("cli"), "{claims}");
    assert_eq!(claims["scope"].as_str(), Some("api.read"), "{claims}");
    let refresh = reply
        .str("refresh_token")
        .expect("refresh_token")
        .to_owned();

    // The refresh token works for the public client (client_id in the form) and rotates.
    let reply = public_token_request(
        &server,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", CLI.id),
            ("refresh_token", &refresh),
        ],
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let claims = jwt_claims(reply.str("access_token").expect("access_token"));
    assert_eq!(claims["aud"].as_str(), Some(DEFAULT_RESOURCE), "{claims}");
    let rotated = reply.str("refresh_token").expect("rotated").to_owned();
    assert_ne!(rotated, refresh);

    // Logout: the public client revokes with client_id only; the grant is gone.
    let reply = server.revoke_as_public_client(CLI, &rotated, "refresh_token");
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = public_token_request(
        &server,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", CLI.id),
            ("refresh_token", &rotated),
        ],
    );
    assert_oauth_error(&reply, 400, "invalid_grant");
    // The code is single-use (and reusing it would revoke its grant).
    let reply = public_token_request(
        &server,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", CLI.id),
            ("code", &code),
            ("redirect_uri", &redirect_uri),
            ("code_verifier", &verifier),
        ],
    );
    assert_oauth_error(&reply, 400, "invalid_grant");

    let stats = server.stats();
    assert_eq!(stats["revocation_requests"].as_u64(), Some(1), "{stats}");
    assert_eq!(
        stats["by_grant"]["authorization_code"].as_u64(),
        Some(2),
        "{stats}"
    );
    assert_eq!(stats["by_auth_method"]["none"].as_u64(), Some(4), "{stats}");
}

#[test]
fn pkce_is_required_and_checked_for_the_public_client() {
    let server = OidcServer::start(60);
    let redirect_uri = "http://127.0.0.1:50123/callback";

    // No code_challenge: an error redirect to the client, before any login page.
    let url = authorize_url(&server.authorization_url(), CLI, redirect_uri, "s1", None);
    let location = server.approve_login(&url, "alice").expect("error redirect");
    assert!(location.starts_with(redirect_uri), "{location}");
    assert_eq!(
        query_param(&location, "error").as_deref(),
        Some("invalid_request")
    );
    assert_eq!(query_param(&location, "state").as_deref(), Some("s1"));
    assert!(query_param(&location, "code").is_none());

    // "plain" is refused.
    let plain = format!(
        "{}&code_challenge={}&code_challenge_method=plain",
        authorize_url(&server.authorization_url(), CLI, redirect_uri, "s2", None),
        "a".repeat(43)
    );
    let location = server
        .approve_login(&plain, "alice")
        .expect("error redirect");
    assert_eq!(
        query_param(&location, "error").as_deref(),
        Some("invalid_request")
    );

    // A wrong code_verifier is invalid_grant at the token endpoint.
    let (_verifier, challenge) = pkce_pair();
    let url = authorize_url(
        &server.authorization_url(),
        CLI,
        redirect_uri,
        "s3",
        Some(&challenge),
    );
    let location = server.approve_login(&url, "alice").expect("login");
    let code = query_param(&location, "code").expect("code");
    let (other_verifier, _) = pkce_pair();
    let reply = public_token_request(
        &server,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", CLI.id),
            ("code", &code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", &other_verifier),
        ],
    );
    assert_oauth_error(&reply, 400, "invalid_grant");

    // An unregistered redirect path is an error page, never a redirect.
    let url = authorize_url(
        &server.authorization_url(),
        CLI,
        "http://127.0.0.1:50123/elsewhere",
        "s4",
        Some(&challenge),
    );
    let err = server
        .approve_login(&url, "alice")
        .expect_err("bad redirect_uri");
    assert!(err.contains("redirect_uri"), "{err}");
}

#[test]
fn a_denied_login_redirects_access_denied() {
    let server = OidcServer::start(60);
    let (_verifier, challenge) = pkce_pair();
    let url = authorize_url(
        &server.authorization_url(),
        CLI,
        "http://127.0.0.1:40000/callback",
        "st",
        Some(&challenge),
    );
    let location = server.deny_login(&url).expect("error redirect");
    assert!(
        location.starts_with("http://127.0.0.1:40000/callback?"),
        "{location}"
    );
    assert_eq!(
        query_param(&location, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(query_param(&location, "state").as_deref(), Some("st"));
    assert!(query_param(&location, "code").is_none());
}

fn device_authorization(server: &OidcServer, url: &str) -> HttpReply {
    let reply = post_form(
        &http_agent(),
        url,
        None,
        &[
            ("client_id", CLI.id),
            ("scope", "openid offline_access api.read"),
        ],
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    for field in [
        "device_code",
        "user_code",
        "verification_uri",
        "verification_uri_complete",
    ] {
        assert!(reply.str(field).is_some(), "{field}: {}", reply.body);
    }
    assert_eq!(
        reply.str("verification_uri").map(str::to_owned),
        Some(format!("{}/device", server.issuer()))
    );
    reply
}

fn poll_device(server: &OidcServer, device_code: &str) -> HttpReply {
    public_token_request(
        server,
        &[
            ("grant_type", DEVICE_CODE_GRANT),
            ("client_id", CLI.id),
            ("device_code", device_code),
        ],
    )
}

#[test]
fn device_flow_approved() {
    let server =
        OidcServer::start_with_env(&[("ACCESS_TOKEN_TTL", "33"), ("DEVICE_INTERVAL", "1")]);
    let reply = device_authorization(&server, &server.device_authorization_url());
    assert_eq!(reply.body["interval"].as_u64(), Some(1), "{}", reply.body);
    assert_eq!(
        reply.body["expires_in"].as_u64(),
        Some(600),
        "{}",
        reply.body
    );
    let device_code = reply.str("device_code").expect("device_code").to_owned();
    let user_code = reply.str("user_code").expect("user_code").to_owned();

    assert_oauth_error(
        &poll_device(&server, &device_code),
        400,
        "authorization_pending",
    );
    // Polling faster than the interval is not throttled by default.
    assert_oauth_error(
        &poll_device(&server, &device_code),
        400,
        "authorization_pending",
    );

    server.approve_device(&user_code, "bob").expect("approve");
    let reply = poll_device(&server, &device_code);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.body["expires_in"].as_u64(),
        Some(33),
        "{}",
        reply.body
    );
    let claims = jwt_claims(reply.str("access_token").expect("access_token"));
    assert_eq!(claims["sub"].as_str(), Some("bob"), "{claims}");
    assert_eq!(claims["aud"].as_str(), Some(DEFAULT_RESOURCE), "{claims}");
    let refresh = reply
        .str("refresh_token")
        .expect("refresh_token")
        .to_owned();

    // The refresh token works.
    let refresh_form = |token: &str| {
        public_token_request(
            &server,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", CLI.id),
                ("refresh_token", token),
            ],
        )
    };
    let reply = refresh_form(&refresh);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let rotated = reply.str("refresh_token").expect("rotated").to_owned();

    // The device code is single-use, and polling it again revokes everything it yielded.
    assert_oauth_error(&poll_device(&server, &device_code), 400, "invalid_grant");
    assert_oauth_error(&refresh_form(&rotated), 400, "invalid_grant");

    // A used user code cannot be approved again.
    assert!(server.approve_device(&user_code, "bob").is_err());
    let stats = server.stats();
    assert_eq!(
        stats["by_grant"][DEVICE_CODE_GRANT].as_u64(),
        Some(4),
        "{stats}"
    );
    assert_eq!(
        stats["errors"]["authorization_pending"].as_u64(),
        Some(2),
        "{stats}"
    );
}

#[test]
fn device_flow_denied() {
    let server = OidcServer::start(60);
    let reply = device_authorization(&server, &server.device_authorization_url());
    // Without DEVICE_INTERVAL the response has no interval (RFC 8628: 5 s).
    assert!(reply.body.get("interval").is_none(), "{}", reply.body);
    let device_code = reply.str("device_code").expect("device_code").to_owned();
    let user_code = reply.str("user_code").expect("user_code").to_owned();
    server.deny_device(&user_code).expect("deny");
    assert_oauth_error(&poll_device(&server, &device_code), 400, "access_denied");
    assert!(
        server.approve_device("WXYZ-BCDF", "bob").is_err(),
        "an unknown user code"
    );
}

#[test]
fn device_codes_expire() {
    let server = OidcServer::start_with_env(&[("DEVICE_CODE_TTL", "1")]);
    let reply = device_authorization(&server, &server.device_authorization_url());
    assert_eq!(reply.body["expires_in"].as_u64(), Some(1), "{}", reply.body);
    let device_code = reply.str("device_code").expect("device_code").to_owned();
    let user_code = reply.str("user_code").expect("user_code").to_owned();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    assert_oauth_error(&poll_device(&server, &device_code), 400, "expired_token");
    let err = server
        .approve_device(&user_code, "bob")
        .expect_err("expired");
    assert!(err.contains("device form"), "{err}");
}

#[test]
fn device_polls_too_fast_are_slowed_down_when_asked() {
    let server = OidcServer::start_with_env(&[("DEVICE_INTERVAL", "1"), ("DEVICE_SLOW_DOWN", "1")]);
    let reply = device_authorization(&server, &server.device_authorization_url());
    let device_code = reply.str("device_code").expect("device_code").to_owned();
    assert_oauth_error(
        &poll_device(&server, &device_code),
        400,
        "authorization_pending",
    );
    assert_oauth_error(&poll_device(&server, &device_code), 400, "slow_down");
    // The interval is now 1 + 5 s: a poll 1.1 s later is still too early.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_oauth_error(&poll_device(&server, &device_code), 400, "slow_down");
    assert_eq!(server.stats()["errors"]["slow_down"].as_u64(), Some(2));
}

fn pkjwt_form<'a>(assertion: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut form = vec![
        ("client_assertion_type", CLIENT_ASSERTION_TYPE),
        ("client_assertion", assertion),
    ];
    form.extend_from_slice(extra);
    form
}

#[test]
fn private_key_jwt_client_credentials() {
    let server = OidcServer::start(50);
    let assertion = pkjwt_assertion(&server.token_url());
    let form = pkjwt_form(
        &assertion,
        &[("grant_type", "client_credentials"), ("scope", "api.write")],
    );
    let reply = token_request(&server, None, &form);
    let claims = assert_token_response(&reply, 50, "api.write");
    assert_eq!(claims["client_id"].as_str(), Some("pkjwt"));
    // An assertion is single-use.
    assert_oauth_error(&token_request(&server, None, &form), 401, "invalid_client");
    // The issuer is an accepted audience too.
    let assertion = pkjwt_assertion(server.issuer());
    let form = pkjwt_form(&assertion, &[("grant_type", "client_credentials")]);
    assert_eq!(token_request(&server, None, &form).status, 200);
    // An assertion signed with another key is refused.
    let now = now_secs();
    let forged = sign_rs256(
        &fixture_key(JWT_BEARER_KEY),
        None,
        &serde_json::json!({"iss": "pkjwt", "sub": "pkjwt", "aud": server.token_url(),
            "iat": now, "exp": now + 60, "jti": random_token(16)}),
    );
    let form = pkjwt_form(&forged, &[("grant_type", "client_credentials")]);
    assert_oauth_error(&token_request(&server, None, &form), 401, "invalid_client");
    assert_eq!(
        server.stats()["by_auth_method"]["client_assertion"].as_u64(),
        Some(4)
    );
}

#[test]
fn private_key_jwt_authorization_code() {
    let server = OidcServer::start(60);
    let redirect_uri = "http://127.0.0.1:39999/callback";
    let (verifier, challenge) = pkce_pair();
    let url = authorize_url(
        &server.authorization_url(),
        PKJWT,
        redirect_uri,
        "x",
        Some(&challenge),
    );
    let location = server.approve_login(&url, "carol").expect("login");
    let code = query_param(&location, "code").expect("code");
    let assertion = pkjwt_assertion(&server.token_url());
    let form = pkjwt_form(
        &assertion,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", &verifier),
        ],
    );
    let reply = token_request(&server, None, &form);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.str("refresh_token").is_some(), "{}", reply.body);
    assert_eq!(
        jwt_claims(reply.str("access_token").expect("at"))["sub"].as_str(),
        Some("carol")
    );
}

fn bearer_assertion(server: &OidcServer, key: &str, iss: &str, exp_in: u64, jti: &str) -> String {
    let now = now_secs();
    sign_rs256(
        &fixture_key(key),
        None,
        &serde_json::json!({"iss": iss, "sub": "robot-7", "aud": server.token_url(),
            "iat": now, "exp": now + exp_in, "jti": jti}),
    )
}

#[test]
fn jwt_bearer_grant() {
    let server = OidcServer::start(25);
    let assertion = bearer_assertion(&server, JWT_BEARER_KEY, SERVICE_ACCOUNT, 300, "jti-1");
    let form = [
        ("grant_type", JWT_BEARER_GRANT),
        ("client_id", SA.id),
        ("assertion", assertion.as_str()),
        ("scope", "api.read"),
    ];
    let reply = token_request(&server, None, &form);
    let claims = assert_token_response(&reply, 25, "api.read");
    assert_eq!(claims["sub"].as_str(), Some("robot-7"), "{claims}");
    assert_eq!(claims["aud"].as_str(), Some(DEFAULT_RESOURCE), "{claims}");
    assert_eq!(claims["client_id"].as_str(), Some("sa"), "{claims}");
    assert!(reply.body.get("refresh_token").is_none(), "{}", reply.body);

    // Replay.
    let reply = token_request(&server, None, &form);
    assert_oauth_error(&reply, 400, "invalid_grant");
    assert!(
        reply
            .str("error_description")
            .unwrap_or_default()
            .contains("already used"),
        "{}",
        reply.body
    );

    // Wrong key, wrong issuer, too long-lived, no assertion.
    for (assertion, why) in [
        (
            bearer_assertion(&server, PKJWT_KEY, SERVICE_ACCOUNT, 300, "jti-2"),
            "signature",
        ),
        (
            bearer_assertion(&server, JWT_BEARER_KEY, "someone@else", 300, "jti-3"),
            "iss",
        ),
        (
            bearer_assertion(&server, JWT_BEARER_KEY, SERVICE_ACCOUNT, 7200, "jti-4"),
            "ahead",
        ),
    ] {
        let reply = token_request(
            &server,
            None,
            &[
                ("grant_type", JWT_BEARER_GRANT),
                ("client_id", SA.id),
                ("assertion", &assertion),
            ],
        );
        assert_oauth_error(&reply, 400, "invalid_grant");
        assert!(
            reply
                .str("error_description")
                .unwrap_or_default()
                .contains(why),
            "{why}: {}",
            reply.body
        );
    }
    let reply = token_request(
        &server,
        None,
        &[("grant_type", JWT_BEARER_GRANT), ("client_id", SA.id)],
    );
    assert_oauth_error(&reply, 400, "invalid_request");

    // svc-basic may use the grant with its secret; no scope asks for every allowed one.
    let assertion = bearer_assertion(&server, JWT_BEARER_KEY, SERVICE_ACCOUNT, 300, "jti-5");
    let reply = token_request(
        &server,
        Some(SVC_BASIC),
        &[("grant_type", JWT_BEARER_GRANT), ("assertion", &assertion)],
    );
    let claims = assert_token_response(&reply, 25, "api.read api.write");
    assert_eq!(claims["client_id"].as_str(), Some("svc-basic"), "{claims}");
    // A scope outside the allow-list.
    let assertion = bearer_assertion(&server, JWT_BEARER_KEY, SERVICE_ACCOUNT, 300, "jti-6");
    let reply = token_request(
        &server,
        None,
        &[
            ("grant_type", JWT_BEARER_GRANT),
            ("client_id", SA.id),
            ("assertion", &assertion),
            ("scope", "openid"),
        ],
    );
    assert_oauth_error(&reply, 400, "invalid_scope");
    assert_eq!(
        server.stats()["by_grant"][JWT_BEARER_GRANT].as_u64(),
        Some(8)
    );
}

#[test]
fn azure_ad_layout() {
    let server =
        OidcServer::start_with_env(&[("AZURE_TENANT", "contoso"), ("ACCESS_TOKEN_TTL", "60")]);
    assert_eq!(server.azure_tenant(), Some("contoso"));
    assert_eq!(server.azure_authority(), server.issuer());
    let authorize = format!("{}/contoso/oauth2/v2.0/authorize", server.azure_authority());
    assert_eq!(server.azure_url("authorize"), authorize);
    let token = server.azure_url("token");

    // Authorization code + PKCE through the Azure paths.
    let redirect_uri = "http://127.0.0.1:45678/callback";
    let (verifier, challenge) = pkce_pair();
    let url = authorize_url(&authorize, CLI, redirect_uri, "az", Some(&challenge));
    let location = server.approve_login(&url, "dave").expect("login");
    let code = query_param(&location, "code").expect("code");
    let reply = post_form(
        &http_agent(),
        &token,
        None,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", CLI.id),
            ("code", &code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", &verifier),
        ],
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.str("refresh_token").is_some());

    // Device code through the Azure paths.
    let reply = device_authorization(&server, &server.azure_url("devicecode"));
    let device_code = reply.str("device_code").expect("device_code").to_owned();
    server
        .approve_device(reply.str("user_code").expect("user_code"), "dave")
        .expect("approve");
    let reply = post_form(
        &http_agent(),
        &token,
        None,
        &[
            ("grant_type", DEVICE_CODE_GRANT),
            ("client_id", CLI.id),
            ("device_code", &device_code),
        ],
    );
    assert_eq!(reply.status, 200, "{}", reply.body);

    // private_key_jwt with the Azure token URL as audience.
    let assertion = pkjwt_assertion(&token);
    let reply = post_form(
        &http_agent(),
        &token,
        None,
        &pkjwt_form(&assertion, &[("grant_type", "client_credentials")]),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);

    // The logout path is the provider's end-session endpoint.
    let (status, body) = deliver_redirect(&server.azure_url("logout")).expect("logout page");
    assert_eq!(status, 200, "{body}");

    let stats = server.stats();
    assert_eq!(stats["token_requests"].as_u64(), Some(3), "{stats}");
    // Without AZURE_TENANT the paths do not exist.
    let plain = OidcServer::start(60);
    let reply = post_form(
        &http_agent(),
        &format!("{}/contoso/oauth2/v2.0/token", plain.issuer()),
        None,
        &[("grant_type", "client_credentials")],
    );
    assert_eq!(reply.status, 404, "{}", reply.body);
}

#[test]
fn loopback_ports_are_free_for_native_clients_only() {
    let server = OidcServer::start(60);
    let (_verifier, challenge) = pkce_pair();
    // `app` is a web client: its redirect URI must match exactly, port included.
    let url = authorize_url(
        &server.authorization_url(),
        APP,
        "http://127.0.0.1:41000/callback",
        "w",
        Some(&challenge),
    );
    let err = server
        .approve_login(&url, "erin")
        .expect_err("web client, other port");
    assert!(err.contains("redirect_uri"), "{err}");
    let url = authorize_url(
        &server.authorization_url(),
        APP,
        "http://127.0.0.1/callback",
        "w",
        None,
    );
    let location = server
        .approve_login(&url, "erin")
        .expect("web client, exact URI");
    assert!(query_param(&location, "code").is_some(), "{location}");
    // Unknown scopes (an Azure-style `.default`) are ignored, not refused.
    let (verifier, challenge) = pkce_pair();
    let redirect_uri = "http://127.0.0.1:41001/callback";
    let url = authorize_url(
        &server.authorization_url(),
        CLI,
        redirect_uri,
        "z",
        Some(&challenge),
    )
    .replace(
        "scope=openid+offline_access+api.read",
        "scope=openid+offline_access+api.read+https%3A%2F%2Fgraph.microsoft.com%2F.default",
    );
    let location = server.approve_login(&url, "erin").expect("login");
    // RFC 9207: the redirect names the issuer.
    assert_eq!(
        query_param(&location, "iss").as_deref(),
        Some(server.issuer()),
        "{location}"
    );
    let reply = public_token_request(
        &server,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", CLI.id),
            ("code", &query_param(&location, "code").expect("code")),
            ("redirect_uri", redirect_uri),
            ("code_verifier", &verifier),
        ],
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    // The response's `scope` is the access token's: the resource's scopes only (the OIDC scopes
    // `openid` and `offline_access` show as the id_token and the refresh_token).
    assert_eq!(reply.str("scope"), Some("api.read"), "{}", reply.body);
    assert!(reply.str("refresh_token").is_some(), "{}", reply.body);
}

#[test]
fn plain_oauth_without_openid_still_gets_a_refresh_token() {
    let server = OidcServer::start(60);
    let redirect_uri = "http://127.0.0.1:41002/callback";
    let (verifier, challenge) = pkce_pair();
    let url = authorize_url(
        &server.authorization_url(),
        CLI,
        redirect_uri,
        "n",
        Some(&challenge),
    )
    .replace(
        "scope=openid+offline_access+api.read",
        "scope=offline_access+api.read",
    );
    let location = server.approve_login(&url, "frank").expect("login");
    let reply = public_token_request(
        &server,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", CLI.id),
            ("code", &query_param(&location, "code").expect("code")),
            ("redirect_uri", redirect_uri),
            ("code_verifier", &verifier),
        ],
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.str("id_token").is_none(), "{}", reply.body);
    assert!(reply.str("refresh_token").is_some(), "{}", reply.body);
    assert_eq!(
        jwt_claims(reply.str("access_token").expect("access_token"))["aud"].as_str(),
        Some(DEFAULT_RESOURCE)
    );

    // An explicit prompt other than consent drops offline_access (OpenID Connect Core §11): no
    // refresh token.
    let (verifier, challenge) = pkce_pair();
    let url = format!(
        "{}&prompt=login",
        authorize_url(
            &server.authorization_url(),
            CLI,
            redirect_uri,
            "p",
            Some(&challenge)
        )
    );
    let location = server.approve_login(&url, "frank").expect("login");
    let reply = public_token_request(
        &server,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", CLI.id),
            ("code", &query_param(&location, "code").expect("code")),
            ("redirect_uri", redirect_uri),
            ("code_verifier", &verifier),
        ],
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.str("refresh_token").is_none(), "{}", reply.body);
}

#[test]
fn token_exchange_grant() {
    let server = OidcServer::start(30);
    let reply = token_request(
        &server,
        Some(SVC_BASIC),
        &[("grant_type", "client_credentials"), ("scope", "api.read")],
    );
    let subject = reply.str("access_token").unwrap().to_owned();
    let exchange = |form: &[(&str, &str)]| {
        let mut fields = vec![
            ("grant_type", TOKEN_EXCHANGE_GRANT),
            ("client_id", EXCHANGER.id),
            ("client_secret", EXCHANGER.secret),
        ];
        fields.extend_from_slice(form);
        token_request(&server, None, &fields)
    };
    let access_token_type = "urn:ietf:params:oauth:token-type:access_token";
    let reply = exchange(&[
        ("subject_token", subject.as_str()),
        ("subject_token_type", access_token_type),
        ("audience", "https://other.example.test"),
        ("scope", "api.write"),
    ]);
    let claims = assert_token_response(&reply, 30, "api.write");
    assert_eq!(reply.str("issued_token_type"), Some(access_token_type));
    assert_eq!(claims["sub"], SVC_BASIC.id, "{claims}");
    assert_eq!(claims["client_id"], EXCHANGER.id, "{claims}");
    assert_eq!(claims["aud"], "https://other.example.test", "{claims}");
    let stats = server.stats();
    assert_eq!(stats["last_exchange"]["subject"], SVC_BASIC.id, "{stats}");
    assert_eq!(stats["by_grant"][TOKEN_EXCHANGE_GRANT], 1, "{stats}");

    // Not one of the server's tokens, an unknown audience, a missing subject, another client.
    let forged = sign_rs256(
        &fixture_key(PKJWT_KEY),
        None,
        &serde_json::json!({"iss": server.issuer(), "sub": "x", "exp": now_secs() + 60}),
    );
    for (form, error) in [
        (
            vec![
                ("subject_token", forged.as_str()),
                ("subject_token_type", access_token_type),
            ],
            "invalid_grant",
        ),
        (
            vec![
                ("subject_token", subject.as_str()),
                ("subject_token_type", access_token_type),
                ("audience", "https://elsewhere.example.com"),
            ],
            "invalid_target",
        ),
        (
            vec![("subject_token_type", access_token_type)],
            "invalid_request",
        ),
    ] {
        assert_oauth_error(&exchange(&form), 400, error);
    }
    let reply = token_request(
        &server,
        Some(SVC_BASIC),
        &[
            ("grant_type", TOKEN_EXCHANGE_GRANT),
            ("subject_token", subject.as_str()),
            ("subject_token_type", access_token_type),
        ],
    );
    assert_oauth_error(&reply, 400, "invalid_request");
    assert!(
        reply
            .str("error_description")
            .is_some_and(|text| text.contains("not allowed for this client")),
        "{}",
        reply.body
    );
}
