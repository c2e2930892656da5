//! The durable, encrypted store through the real `tokend` and `tok`, against the real OAuth 2.0
//! server (panva's `oidc-provider`, which rotates refresh tokens on every use and revokes the
//! whole grant when a rotated one is used again): what survives a restart, what a damaged store
//! does to a start, and that no token reaches the trace-level log.

use tokend_e2e::oidc::{APP, OidcServer};
use tokend_e2e::{Daemon, code, stderr, stdout};

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
    let mut daemon = Daemon::start_with_env(&server.refresh_token_provider(""), &env);
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
    let config = server.refresh_token_provider("persist = false");
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
    let config = server.refresh_token_provider("persist = false");
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
        &server.refresh_token_provider(""),
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

    // `tok status` says which protection is in force.
    let key_file = daemon.dir().join("store.key").display().to_string();
    let status = stdout(&daemon.tok(&["status"]));
    let line = status
        .lines()
        .find(|line| line.starts_with("store:"))
        .unwrap_or_else(|| panic!("no store line:\n{status}"));
    assert!(
        line.contains("store.tokend") && line.contains(&format!("encrypted (key file {key_file})")),
        "{line}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&daemon.tok(&["status", "--json"]))).unwrap();
    assert!(
        json["store"]
            .as_str()
            .unwrap()
            .ends_with(&format!("encrypted (key file {key_file})")),
        "{json}"
    );
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
    let mut daemon = Daemon::start_with_env(&server.refresh_token_provider(""), &env);
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

/// Waits until the server has handled every token request the killed daemon sent: a grant can
/// still complete (and rotate) after its client died, and the record must show it.
fn settle(server: &OidcServer) {
    use std::time::{Duration, Instant};
    // A request the daemon wrote just before it died may not have been read yet.
    std::thread::sleep(Duration::from_millis(50));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = server.stats();
        if stats["token_requests"] == stats["token_requests_done"] {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "token requests never finished: {stats}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// How many refreshes the crash test drives (`E2E_CRASH_REFRESHES` overrides, for a soak).
const CRASH_REFRESHES: u64 = 200;

/// A small xorshift generator: random kill moments without a dependency; the seed is printed so
/// that a failing run can be repeated with `E2E_CRASH_SEED`.
struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// `kill -9` at random moments while callers make the daemon refresh (`persist = false`: after
/// each restart the next caller needs a refresh with the refresh token in force). After every
/// kill the store must open, and it must hold a refresh token at least as new as the one issued
/// with the newest access token a caller received. oidc-provider is the referee: it records which
/// refresh token each grant consumed and issued, and it revokes the grant if a consumed one is
/// presented again.
#[test]
fn kill_9_during_rotating_refreshes_never_loses_a_refresh_token_in_use() {
    use std::time::{Duration, Instant};
    use tokend::store::{KeySource, Store};

    let target: u64 = std::env::var("E2E_CRASH_REFRESHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CRASH_REFRESHES);
    let seed = std::env::var("E2E_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("crash test: {target} refreshes, E2E_CRASH_SEED={seed}");
    let mut random = Xorshift(seed);

    let server = OidcServer::start(600);
    let mut configured = server.mint_refresh_token();
    let env = |refresh_token: &str| {
        vec![
            ("E2E_CLIENT_SECRET".to_owned(), APP.secret.to_owned()),
            ("E2E_REFRESH_TOKEN".to_owned(), refresh_token.to_owned()),
        ]
    };
    let config = server.refresh_token_provider("persist = false");
    let start_env = env(&configured);
    let start_env: Vec<(&str, &str)> = start_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut daemon = Daemon::start_with_env(&config, &start_env);
    let key = KeySource::File(daemon.dir().join("store.key"));

    // Where the chain of the configured refresh token in force starts in the server's record.
    let mut chain_start = 0;
    // The newest access token a caller received from the current chain.
    let mut newest_handed_out: Option<String> = None;
    let (mut kills, mut lost_races, mut served) = (0, 0, 0);
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut secrets = vec![configured.clone()];
    while refresh_grants(&server) < target {
        assert!(Instant::now() < deadline, "the crash test ran too long");
        let socket = daemon.socket().to_owned();
        let caller = std::thread::spawn(move || {
            tokend_e2e::tok_command(&socket)
                .args(["get", "user", "--min-ttl", "1"])
                .output()
                .unwrap()
        });
        std::thread::sleep(Duration::from_micros(random.next() % 40_000));
        daemon.kill();
        kills += 1;
        let out = caller.join().unwrap();
        settle(&server);
        if code(&out) == 0 {
            served += 1;
            newest_handed_out = Some(stdout(&out).trim_end().to_owned());
        }
        let log = daemon.log();
        assert!(!log.contains("cannot be read"), "{log}");

        // The store always opens, unchanged.
        let data = daemon.data_dir();
        let stored = if data.join("store.tokend").exists() {
            Store::open(&data, &key)
                .expect("the store opens")
                .rotated_refresh_token("user")
                .map(|token| token.expose().to_owned())
        } else {
            None
        };
        let unreadable = std::fs::read_dir(&data)
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_string_lossy().contains("unreadable")
            })
            .count();
        assert_eq!(
            unreadable, 0,
            "a store was found unreadable after a kill -9"
        );

        let chain = server.refresh_chain();
        let current = &chain[chain_start..];
        let position = |token: &str| current.iter().position(|r| r.refresh_token == token);
        let stored_at = stored.as_deref().and_then(position);
        if let Some(access) = &newest_handed_out {
            let issued_at = current
                .iter()
                .position(|r| &r.access_token == access)
                .expect("a handed-out access token comes from the current chain");
            assert!(
                stored_at.is_some_and(|at| at >= issued_at),
                "after kill {kills}, the store holds a refresh token older than the one issued \
                 with an access token a caller received (seed {seed}): stored at {stored_at:?} \
                 (in the whole record: {:?}, or presented: {:?}), access token issued at \
                 {issued_at}, chain of {} from {chain_start}; log:\n{log}",
                stored
                    .as_deref()
                    .and_then(|t| chain.iter().position(|r| r.refresh_token == t)),
                stored
                    .as_deref()
                    .and_then(|t| chain.iter().position(|r| r.used == t)),
                current.len(),
            );
        }
        // Is the refresh token in force still unused? If the daemon died after the server
        // rotated it but before the new one was saved (and so before its access token went to
        // any caller), the one in force was consumed: a restart would present it again and
        // oidc-provider would revoke the grant. That loses no token a caller holds; start a
        // new chain, as a user would after a new login.
        let in_force_unused = match stored_at {
            Some(at) => at + 1 == current.len(),
            None => current.is_empty(),
        };
        if !in_force_unused {
            lost_races += 1;
            configured = server.mint_refresh_token();
            secrets.push(configured.clone());
            chain_start = chain.len();
            newest_handed_out = None;
        }
        secrets.extend(
            current
                .iter()
                .flat_map(|r| [r.access_token.clone(), r.refresh_token.clone()]),
        );
        let restart_env = env(&configured);
        let restart_env: Vec<(&str, &str)> = restart_env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        daemon.restart(&restart_env);
        let secret_refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
        assert_no_secret_in(&daemon.log(), &secret_refs);
    }
    eprintln!(
        "crash test: {kills} kills, {served} tokens served, {lost_races} kills between a \
         rotation and its save, {} refreshes",
        refresh_grants(&server)
    );
    // The chain in force still works, and no consumed refresh token was ever presented again.
    token_of(&daemon);
    let stats = server.stats();
    assert!(stats["errors"]["invalid_grant"].is_null(), "{stats}");
    assert!(
        served > 0 && kills > served,
        "kills hit both idle and busy moments"
    );
}
