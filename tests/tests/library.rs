//! The client library (blocking and async) against the real daemon.

use std::time::Duration;

use tokend_client::{AsyncClient, Client, Endpoint, ErrorCode, GetOptions, ProviderState};
use tokend_e2e::Daemon;

// A literal TOML string: a Windows path's backslashes are not escapes.
const CONFIG: &str = r#"
[providers.api]
kind = "static"
secret = '${file:SECRET_FILE}'
header = "X-API-KEY"
"#;

/// The daemon and the private directory holding its secret file (dropped after the daemon).
fn daemon_with_secret_file() -> (Daemon, tempfile::TempDir) {
    // The config names the file by absolute path; write it first into a private directory.
    let holder = tokend_e2e::private_dir();
    let secret = holder.path().join("api.key");
    tokend_e2e::write_private(&secret, "key-from-a-file\n");
    let config = CONFIG.replace("SECRET_FILE", secret.to_str().unwrap());
    (Daemon::start(&config), holder)
}

#[test]
fn blocking_client_gets_tokens_status_and_ping_on_one_connection() {
    let (daemon, _secrets) = daemon_with_secret_file();
    let client = daemon.client();
    let token = client.get("api").unwrap();
    assert_eq!(token.value.expose(), "key-from-a-file");
    let header = token.header.as_ref().unwrap();
    assert_eq!(header.name, "X-API-KEY");
    assert_eq!(header.line().expose(), "X-API-KEY: key-from-a-file");
    assert_eq!(token.expires_at, None);
    assert!(
        !format!("{token:?}").contains("key-from-a-file"),
        "Debug must redact"
    );

    let again = client
        .get_with(
            "api",
            &GetOptions {
                min_ttl: Duration::from_secs(600),
            },
        )
        .unwrap();
    assert_eq!(again, token);

    let status = client.status().unwrap();
    assert_eq!(status.providers.len(), 1);
    assert_eq!(status.providers[0].state, ProviderState::Fresh);
    assert_eq!(client.ping().unwrap().pid, daemon.pid());

    let err = client.get("missing").unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::UnknownProvider));
    assert_eq!(err.exit_code(), 4);
    // The connection survives an error response.
    assert!(client.get("api").is_ok());
}

#[test]
fn client_reconnects_after_the_daemon_restarts() {
    let (mut daemon, _secrets) = daemon_with_secret_file();
    let client = daemon.client();
    assert!(client.get("api").is_ok());
    assert!(daemon.terminate().success());
    daemon.restart(&[]);
    assert_eq!(client.get("api").unwrap().value.expose(), "key-from-a-file");
}

#[test]
fn no_daemon_and_no_autostart_is_a_clear_error() {
    let dir = tokend_e2e::private_dir();
    let client = Client::builder()
        .endpoint(Endpoint::from_path(dir.path().join("absent.sock")))
        .autostart(false)
        .build();
    let err = client.get("api").unwrap_err();
    assert_eq!(err.exit_code(), 3);
    let message = err.to_string();
    assert!(
        message.contains("not running") && message.contains("disabled for this client"),
        "{message}"
    );
}

#[test]
fn async_client_gets_the_same_answers() {
    let (daemon, _secrets) = daemon_with_secret_file();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client: AsyncClient = Client::builder()
            .endpoint(daemon.endpoint())
            .autostart(false)
            .build_async();
        let token = client.get("api").await.unwrap();
        assert_eq!(token.value.expose(), "key-from-a-file");
        assert_eq!(client.ping().await.unwrap().pid, daemon.pid());
        assert_eq!(client.status().await.unwrap().providers[0].name, "api");
        let err = client.get("nope").await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::UnknownProvider));
    });
}

/// Sockets the daemon holds open (its listener, its clients' connections, …), as Linux's
/// `/proc` shows them (the tests that count connections are Linux-only).
#[cfg(target_os = "linux")]
fn daemon_sockets(daemon: &Daemon) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", daemon.pid()))
        .unwrap()
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("socket:"))
        .count()
}

/// The daemon's sockets once they number `wanted`, or after 5 s (it notices a closed
/// connection asynchronously).
#[cfg(target_os = "linux")]
fn settle_sockets(daemon: &Daemon, wanted: usize) -> usize {
    tokend_e2e::eventually(Duration::from_secs(5), || daemon_sockets(daemon) == wanted);
    daemon_sockets(daemon)
}

#[cfg(target_os = "linux")]
#[test]
fn one_client_is_shared_by_many_threads_and_a_single_caller_keeps_one_connection() {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    shareable::<Client>();
    shareable::<AsyncClient>();

    let (daemon, _secrets) = daemon_with_secret_file();
    let idle = daemon_sockets(&daemon);
    let client = daemon.client();
    for _ in 0..200 {
        assert_eq!(client.get("api").unwrap().value.expose(), "key-from-a-file");
    }
    assert_eq!(
        settle_sockets(&daemon, idle + 1),
        idle + 1,
        "one caller, one connection"
    );

    // Sixteen threads on one client (borrowed) and its clones, at once.
    std::thread::scope(|scope| {
        for n in 0..16 {
            let clone = client.clone();
            let client = &client;
            scope.spawn(move || {
                let mine = if n % 2 == 0 { client } else { &clone };
                for _ in 0..300 {
                    let token = mine.get("api").expect("a concurrent get");
                    assert_eq!(token.value.expose(), "key-from-a-file");
                }
            });
        }
    });
    let open = daemon_sockets(&daemon);
    assert!(
        open > idle + 1 && open <= idle + 16,
        "{open} sockets, {idle} before: each concurrent call had a connection of its own, \
         and they were kept for reuse"
    );
    // Dropping the last clone closes them.
    drop(client);
    assert_eq!(settle_sockets(&daemon, idle), idle);
}

#[cfg(target_os = "linux")]
#[test]
fn one_async_client_is_shared_by_many_tasks() {
    let (mut daemon, _secrets) = daemon_with_secret_file();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let idle = daemon_sockets(&daemon);
    let client: AsyncClient = Client::builder()
        .endpoint(daemon.endpoint())
        .autostart(false)
        .build_async();
    runtime.block_on(async {
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let client = client.clone();
                tokio::spawn(async move {
                    for _ in 0..50 {
                        let token = client.get("api").await.expect("a concurrent get");
                        assert_eq!(token.value.expose(), "key-from-a-file");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
    });
    let open = daemon_sockets(&daemon);
    assert!(
        open > idle && open <= idle + 64,
        "{open} sockets, {idle} before"
    );
    // After a restart every pooled connection is stale: the next call starts afresh.
    daemon.kill();
    daemon.restart(&[]);
    runtime.block_on(async {
        assert!(client.get("api").await.is_ok());
        assert!(client.get("api").await.is_ok());
    });
}
