//! Golden byte fixtures: every message's encoding is pinned in `tests/fixtures/v<PROTOCOL_VERSION>/`.
//!
//! A failure here means the wire encoding changed. That is only allowed together with a
//! `PROTOCOL_VERSION` bump: bump it, then regenerate with `TOKEND_BLESS=1 cargo test -p
//! tokend-protocol --test golden` and commit the new directory (keep the old one).

use std::path::PathBuf;

use tokend_protocol::handshake::{Hello, Verdict, Welcome};
use tokend_protocol::{
    CredentialRoute, CredentialTool, DaemonStatus, ErrorCode, GetToken, HeaderLine, Invalidate,
    Invalidation, LoginOutcome, LoginPrompt, LoginRequest, LogoutOutcome, PROTOCOL_VERSION,
    PingInfo, ProviderCounters, ProviderState, ProviderStatus, ProxyStatus, ProxyUrl,
    ReloadSummary, Request, Response, Rotate, RotationOutcome, Secret, SecretEntry, SecretRemove,
    SecretSet, TokenFileStatus, TokenGrant, codec,
};

fn samples() -> Vec<(&'static str, Vec<u8>)> {
    let requests = [
        (
            "request_get_token",
            Request::GetToken(GetToken {
                provider: "crm".into(),
                min_ttl_secs: 30,
            }),
        ),
        ("request_status", Request::Status),
        ("request_ping", Request::Ping),
        ("request_shutdown", Request::Shutdown),
        ("request_reload", Request::Reload),
        ("request_metrics", Request::Metrics),
        ("request_credential_routes", Request::CredentialRoutes),
        (
            "request_login",
            Request::Login(LoginRequest {
                provider: "lab".into(),
            }),
        ),
        (
            "request_await_login",
            Request::AwaitLogin(LoginRequest {
                provider: "lab".into(),
            }),
        ),
        (
            "request_logout",
            Request::Logout(LoginRequest {
                provider: "lab".into(),
            }),
        ),
        (
            "request_secret_set",
            Request::SecretSet(SecretSet {
                name: "gitlab".into(),
                value: Secret::from("glpat-fixture"),
            }),
        ),
        ("request_secret_list", Request::SecretList),
        (
            "request_secret_remove",
            Request::SecretRemove(SecretRemove {
                name: "gitlab".into(),
            }),
        ),
        (
            "request_proxy_url",
            Request::ProxyUrl(ProxyUrl {
                provider: "crm".into(),
            }),
        ),
        (
            "request_invalidate",
            Request::Invalidate(Invalidate {
                provider: "crm".into(),
            }),
        ),
        (
            "request_get_id_token",
            Request::GetIdToken(GetToken {
                provider: "lab".into(),
                min_ttl_secs: 30,
            }),
        ),
        (
            "request_rotate",
            Request::Rotate(Rotate {
                provider: "salestim".into(),
            }),
        ),
    ];
    let responses = [
        (
            "response_token",
            Response::Token(TokenGrant {
                provider: "salestim".into(),
                token: Secret::from("abc123"),
                header: Some(HeaderLine {
                    name: "X-API-KEY".into(),
                    value: Secret::from("abc123"),
                }),
                expires_at_unix: Some(1_800_000_000),
            }),
        ),
        (
            "response_token_anonymous",
            Response::Token(TokenGrant {
                provider: "store".into(),
                token: Secret::from(""),
                header: None,
                expires_at_unix: None,
            }),
        ),
        (
            "response_status",
            Response::Status(Box::new(DaemonStatus {
                endpoint: "/run/user/1000/tokend/tokend.sock".into(),
                config: "/home/a/.config/tokend/config.toml".into(),
                store: "/home/a/.local/share/tokend/store.tokend: encrypted (key file /home/a/.config/tokend/store.key)".into(),
                fleet: "redis://10.0.0.5:6379/0: connected".into(),
                proxies: vec![ProxyStatus {
                    provider: "crm".into(),
                    listen: "127.0.0.1:8701".into(),
                    upstream: "https://crm.example.com/".into(),
                    requests: 42,
                    last_status: Some(200),
                    error: None,
                }],
                token_files: vec![TokenFileStatus {
                    provider: "gitlab".into(),
                    path: "/home/a/.cache/tokend/gitlab.token".into(),
                    format: "raw".into(),
                    written_at_unix: Some(1_800_000_000),
                    error: Some("cannot write: permission denied".into()),
                }],
                providers: vec![
                    ProviderStatus {
                        name: "gitlab".into(),
                        kind: "static".into(),
                        state: ProviderState::Fresh,
                        expires_at_unix: None,
                        last_error: None,
                        last_refresh_unix: Some(1_800_000_000),
                        next_refresh_unix: Some(1_800_005_400),
                        counters: ProviderCounters {
                            requests: 12,
                            cache_hits: 10,
                            refreshes: 2,
                            failures: 1,
                        },
                        origin: "upstream".into(),
                        share: String::new(),
                        id_token_expires_at_unix: Some(1_800_003_600),
                        rotated_at_unix: Some(1_799_000_000),
                        next_rotation_unix: Some(1_801_592_000),
                        rotation_error: Some("HTTP 500".into()),
                    },
                    ProviderStatus {
                        name: "broken".into(),
                        kind: "static".into(),
                        state: ProviderState::Error,
                        expires_at_unix: Some(5),
                        last_error: Some("env var X is not set".into()),
                        last_refresh_unix: None,
                        next_refresh_unix: None,
                        counters: ProviderCounters::default(),
                        origin: "upstream".into(),
                        share: String::new(),
                        id_token_expires_at_unix: None,
                        rotated_at_unix: None,
                        next_rotation_unix: None,
                        rotation_error: None,
                    },
                    ProviderStatus {
                        name: "later".into(),
                        kind: "static".into(),
                        state: ProviderState::Idle,
                        expires_at_unix: None,
                        last_error: None,
                        last_refresh_unix: Some(1_800_000_000),
                        next_refresh_unix: Some(1_800_005_400),
                        counters: ProviderCounters {
                            requests: 12,
                            cache_hits: 10,
                            refreshes: 2,
                            failures: 1,
                        },
                        origin: "upstream".into(),
                        share: String::new(),
                        id_token_expires_at_unix: None,
                        rotated_at_unix: None,
                        next_rotation_unix: None,
                        rotation_error: None,
                    },
                    ProviderStatus {
                        name: "busy".into(),
                        kind: "oauth2".into(),
                        state: ProviderState::Refreshing,
                        expires_at_unix: Some(7),
                        last_error: None,
                        last_refresh_unix: None,
                        next_refresh_unix: None,
                        counters: ProviderCounters::default(),
                        origin: "upstream".into(),
                        share: String::new(),
                        id_token_expires_at_unix: None,
                        rotated_at_unix: None,
                        next_rotation_unix: None,
                        rotation_error: None,
                    },
                    ProviderStatus {
                        name: "old".into(),
                        kind: "oauth2".into(),
                        state: ProviderState::Expired,
                        expires_at_unix: Some(7),
                        last_error: None,
                        last_refresh_unix: None,
                        next_refresh_unix: None,
                        counters: ProviderCounters::default(),
                        origin: "upstream".into(),
                        share: String::new(),
                        id_token_expires_at_unix: None,
                        rotated_at_unix: None,
                        next_rotation_unix: None,
                        rotation_error: None,
                    },
                    ProviderStatus {
                        name: "person".into(),
                        kind: "oauth2".into(),
                        state: ProviderState::NeedsLogin,
                        expires_at_unix: Some(7),
                        last_error: None,
                        last_refresh_unix: None,
                        next_refresh_unix: None,
                        counters: ProviderCounters::default(),
                        origin: "upstream".into(),
                        share: String::new(),
                        id_token_expires_at_unix: None,
                        rotated_at_unix: None,
                        next_rotation_unix: None,
                        rotation_error: None,
                    },
                ],
            })),
        ),
        (
            "response_pong",
            Response::Pong(PingInfo {
                daemon_version: "0.1.0".into(),
                protocol: 1,
                pid: 4242,
                uptime_secs: 3600,
            }),
        ),
        ("response_shutting_down", Response::ShuttingDown),
        (
            "response_metrics",
            Response::Metrics("tokend_requests_total{provider=\"crm\"} 3\n".into()),
        ),
        (
            "response_proxy_url",
            Response::ProxyUrl(Secret::from(
                "http://127.0.0.1:8701/0123456789abcdef0123456789abcdef",
            )),
        ),
        (
            "response_secrets",
            Response::Secrets(vec![
                SecretEntry {
                    name: "gitlab".into(),
                    set_at_unix: 1_800_000_000,
                },
                SecretEntry {
                    name: "crm.key".into(),
                    set_at_unix: 1_800_000_100,
                },
            ]),
        ),
        (
            "response_reloaded",
            Response::Reloaded(ReloadSummary {
                added: vec!["new".into()],
                changed: vec!["crm".into()],
                removed: vec![],
                kept: vec!["gitlab".into(), "salestim".into()],
            }),
        ),
        (
            "response_rotated",
            Response::Rotated(RotationOutcome {
                provider: "salestim".into(),
                rotated_at_unix: 1_800_000_000,
                next_rotation_unix: Some(1_802_592_000),
            }),
        ),
        (
            "response_invalidated",
            Response::Invalidated(Invalidation {
                dropped: true,
                message: "dropped".into(),
            }),
        ),
        (
            "response_login_started",
            Response::LoginStarted(LoginPrompt {
                provider: "lab".into(),
                url: "https://login.example.com/device".into(),
                user_code: Some("WDJB-MJHT".into()),
                expires_in_secs: 900,
            }),
        ),
        (
            "response_logged_in",
            Response::LoggedIn(LoginOutcome {
                provider: "lab".into(),
                expires_at_unix: Some(1_800_000_000),
                refreshable: true,
            }),
        ),
        (
            "response_logged_out",
            Response::LoggedOut(LogoutOutcome {
                revoked: true,
                message: "revoked".into(),
            }),
        ),
        (
            "response_credential_routes",
            Response::CredentialRoutes(vec![
                CredentialRoute {
                    provider: "gitlab".into(),
                    tool: CredentialTool::Git,
                    host: "gitlab.example.com".into(),
                    username: "oauth2".into(),
                    path: String::new(),
                },
                CredentialRoute {
                    provider: "gitlab-bob".into(),
                    tool: CredentialTool::Git,
                    host: "gitlab.example.com".into(),
                    username: "bob".into(),
                    path: "bob-org/tools".into(),
                },
                CredentialRoute {
                    provider: "registry".into(),
                    tool: CredentialTool::Docker,
                    host: "registry.example.com:5000".into(),
                    username: "tokend".into(),
                    path: String::new(),
                },
            ]),
        ),
    ];
    let codes = [
        ErrorCode::BadRequest,
        ErrorCode::UnknownProvider,
        ErrorCode::Config,
        ErrorCode::Upstream,
        ErrorCode::LoginRequired,
        ErrorCode::ShuttingDown,
        ErrorCode::Internal,
    ];

    let mut out = Vec::new();
    for (name, request) in requests {
        out.push((name, codec::encode(&request).unwrap()));
    }
    for (name, response) in responses {
        out.push((name, codec::encode(&response).unwrap()));
    }
    for code in codes {
        let name: &'static str =
            Box::leak(format!("response_error_{}", code.as_str()).into_boxed_str());
        out.push((name, codec::encode(&Response::error(code, "why")).unwrap()));
    }
    out.push((
        "handshake_hello",
        Hello {
            protocol: 1,
            client_version: "0.1.0".into(),
        }
        .encode(),
    ));
    out.push((
        "handshake_welcome",
        Welcome {
            protocol: 1,
            verdict: Verdict::Accepted,
            pid: 4242,
            daemon_version: "0.1.0".into(),
        }
        .encode(),
    ));
    out
}

fn hex(bytes: &[u8]) -> String {
    let mut text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    text.push('\n');
    text
}

#[test]
fn every_message_matches_its_golden_fixture() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("v{PROTOCOL_VERSION}"));
    let bless = std::env::var_os("TOKEND_BLESS").is_some();
    let mut mismatches = Vec::new();
    for (name, bytes) in samples() {
        let path = dir.join(format!("{name}.hex"));
        if bless {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, hex(&bytes)).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|err| panic!("missing fixture {}: {err}", path.display()));
        if expected != hex(&bytes) {
            mismatches.push(format!(
                "{name}: expected {} got {}",
                expected.trim(),
                hex(&bytes).trim()
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "wire encoding changed (bump PROTOCOL_VERSION and re-bless):\n{}",
        mismatches.join("\n")
    );
}

#[test]
fn fixtures_decode_back_to_the_same_messages() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1");
    let text = std::fs::read_to_string(dir.join("request_get_token.hex")).unwrap();
    let bytes: Vec<u8> = (0..text.trim().len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text.trim()[i..i + 2], 16).unwrap())
        .collect();
    let request: Request = codec::decode(&bytes).unwrap();
    assert_eq!(
        request,
        Request::GetToken(GetToken {
            provider: "crm".into(),
            min_ttl_secs: 30
        })
    );
}
