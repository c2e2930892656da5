//! The durable, encrypted store through the real `tokend` and `tok`, against the real OAuth 2.0
//! server (panva's `oidc-provider`, which rotates refresh tokens on every use and revokes the
//! whole grant when a rotated one is used again): what survives a restart, what a damaged store
//! does to a start, and that no token reaches the trace-level log.

use tokend_e2e::oidc::{APP, OidcServer};
use tokend_e2e::{Daemon, code, stderr, stdout};

/// A `refresh_token` provider `user` for the `app` client, plus `extra` lines in its table.
fn refresh_token_config(server: &OidcServer, extra: &str) -> String {
    format!(
        r#"
[providers.user]
kind = "oauth2"
grant = "refresh_token"
token_url = "{}"
client_id = "{}"
client_secret = "${{env:E2E_CLIENT_SECRET}}"
refresh_token = "${{env:E2E_REFRESH_TOKEN}}"
{extra}
"#,
        server.token_url(),
        APP.id
    )
}

fn token_of(daemon: &Daemon) -> String {
    let out = daemon.tok(&["get", "user", "--min-ttl", "1"]);
    assert_eq!(
        code(&out),
        0,
        "{}\ndaemon log:\n{}",
        stderr(&out),
        daemon.log()
    );
    stdout(&out).trim_end().to_owned()
}

fn refresh_grants(server: &OidcServer) -> u64 {
    server.stats()["by_grant"]["refresh_token"]
        .as_u64()
        .unwrap_or(0)
}

/// Asserts that no value in `secrets` appears in `log`.
fn assert_no_secret_in(log: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!log.contains(secret), "a secret value is in the daemon log");
    }
}

#[test]
fn tokens_survive_restarts_without_an_upstream_request() {
    let server = OidcServer::start(600);
    let refresh_token = server.mint_refresh_token();
    let env = [
        ("E2E_CLIENT_SECRET", APP.secret),
        ("E2E_REFRESH_TOKEN", refresh_token.as_str()),
    ];
    let mut daemon = Daemon::start_with_env(&refresh_token_config(&server, ""), &env);
    let first = token_of(&daemon);
    assert_eq!(refresh_grants(&server), 1);
    let mut logs = daemon.log();

    // A clean stop, then a kill -9: the still-valid token is served from the store each time.
    daemon.terminate();
    daemon.restart(&env);
    assert_eq!(token_of(&daemon), first, "the stored token is served");
    assert!(daemon.log().contains("serving the token kept in the store"));
    logs.push_str(&daemon.log());
    daemon.kill();
    daemon.restart(&env);
    assert_eq!(token_of(&daemon), first);
    assert_eq!(
        refresh_grants(&server),
        1,
        "no upstream request after a restart"
    );

    // The rotated refresh token survived too: the configured one was used once already, and
    // oidc-provider would revoke the grant (invalid_grant) if it were used again.
    assert_eq!(code(&daemon.tok(&["invalidate", "user"])), 0);
    let second = token_of(&daemon);
    assert_ne!(second, first);
    assert_eq!(refresh_grants(&server), 2);
    logs.push_str(&daemon.log());
    daemon.kill();
    daemon.restart(&env);
    assert_eq!(
        token_of(&daemon),
        second,
        "an invalidated token does not come back"
    );
    logs.push_str(&daemon.log());

    let stats = server.stats();
    assert!(stats["errors"]["invalid_grant"].is_null(), "{stats}");
    assert_no_secret_in(&logs, &[&refresh_token, &first, &second, APP.secret]);
}

#[test]
fn persist_false_keeps_access_tokens_out_but_follows_the_rotated_refresh_token() {
    let server = OidcServer::start(600);
    let refresh_token = server.mint_refresh_token();
    let env = [
        ("E2E_CLIENT_SECRET", APP.secret),
        ("E2E_REFRESH_TOKEN", refresh_token.as_str()),
    ];
    let config = refresh_token_config(&server, "persist = false");
    let mut daemon = Daemon::start_with_env(&config, &env);
    let first = token_of(&daemon);
    daemon.kill();
    daemon.restart(&env);
    let second = token_of(&daemon);
    assert_ne!(
        second, first,
        "no access token is kept with persist = false"
    );
    // Two refreshes, each with the refresh token in force: no reuse, so no invalid_grant.
    assert_eq!(refresh_grants(&server), 2);
    let stats = server.stats();
    assert!(stats["errors"]["invalid_grant"].is_null(), "{stats}");
    let store = std::fs::read(daemon.data_dir().join("store.tokend")).unwrap();
    assert!(
        !store.windows(second.len()).any(|w| w == second.as_bytes()),
        "the store is encrypted"
    );
}

#[test]
fn a_new_configured_refresh_token_replaces_the_stored_chain() {
    let server = OidcServer::start(600);
    let old = server.mint_refresh_token();
    let config = refresh_token_config(&server, "persist = false");
    let mut daemon = Daemon::start_with_env(
        &config,
        &[
            ("E2E_CLIENT_SECRET", APP.secret),
            ("E2E_REFRESH_TOKEN", &old),
        ],
    );
    token_of(&daemon);
    daemon.kill();
    // The user logs in elsewhere and configures the new refresh token; the old grant is gone.
    server.revoke_refresh_token(&old);
    let new = server.mint_refresh_token();
    daemon.restart(&[
        ("E2E_CLIENT_SECRET", APP.secret),
        ("E2E_REFRESH_TOKEN", &new),
    ]);
    token_of(&daemon);
    let stats = server.stats();
    assert!(stats["errors"]["invalid_grant"].is_null(), "{stats}");
}

#[cfg(unix)]
#[test]
fn store_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let server = OidcServer::start(600);
    let refresh_token = server.mint_refresh_token();
    let daemon = Daemon::start_with_env(
        &refresh_token_config(&server, ""),
        &[
            ("E2E_CLIENT_SECRET", APP.secret),
            ("E2E_REFRESH_TOKEN", &refresh_token),
        ],
    );
    token_of(&daemon);
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&daemon.data_dir()), 0o700);
    assert_eq!(mode(&daemon.data_dir().join("store.tokend")), 0o600);
    assert_eq!(mode(&daemon.dir().join("store.key")), 0o600);
}

/// Damages the store of a stopped daemon with `damage`, restarts it, and checks that it starts
/// with an empty store, says why in the log, and keeps the damaged file aside.
fn damaged_store_is_moved_aside(damage: impl FnOnce(&std::path::Path), expected: &str) {
    let server = OidcServer::start(600);
    let refresh_token = server.mint_refresh_token();
    let env = [
        ("E2E_CLIENT_SECRET", APP.secret),
        ("E2E_REFRESH_TOKEN", refresh_token.as_str()),
    ];
    let mut daemon = Daemon::start_with_env(&refresh_token_config(&server, ""), &env);
    token_of(&daemon);
    daemon.terminate();
    damage(daemon.dir());
    daemon.restart(&env);
    let log = daemon.log();
    assert!(
        log.contains("cannot be read") && log.contains(expected),
        "the log says why:\n{log}"
    );
    assert!(log.contains("moved it to"), "{log}");
    let aside = std::fs::read_dir(daemon.data_dir())
        .unwrap()
        .filter(|entry| {
            entry
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("store.tokend.unreadable-")
        })
        .count();
    assert_eq!(aside, 1);
    // It serves (the rotated refresh token is lost with the store, so the grant is not usable:
    // the configured one was rotated away), and `tok status` answers.
    assert_eq!(code(&daemon.tok(&["status"])), 0);
    assert_no_secret_in(&daemon.log(), &[&refresh_token, APP.secret]);
}

#[test]
fn a_truncated_store_is_moved_aside_and_the_daemon_starts() {
    damaged_store_is_moved_aside(
        |dir| {
            let path = dir.join("data/store.tokend");
            let bytes = std::fs::read(&path).unwrap();
            std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        },
        "authentication failed",
    );
}

#[test]
fn a_bit_flipped_store_is_moved_aside_and_the_daemon_starts() {
    damaged_store_is_moved_aside(
        |dir| {
            let path = dir.join("data/store.tokend");
            let mut bytes = std::fs::read(&path).unwrap();
            let at = bytes.len() - 20;
            bytes[at] ^= 0x01;
            std::fs::write(&path, &bytes).unwrap();
        },
        "authentication failed",
    );
}

#[test]
fn a_store_under_another_key_is_moved_aside_and_the_daemon_starts() {
    damaged_store_is_moved_aside(
        |dir| std::fs::remove_file(dir.join("store.key")).unwrap(),
        "authentication failed",
    );
}

#[test]
fn a_store_with_a_bad_header_is_moved_aside_and_the_daemon_starts() {
    damaged_store_is_moved_aside(
        |dir| std::fs::write(dir.join("data/store.tokend"), b"not a store").unwrap(),
        "bad header",
    );
}
