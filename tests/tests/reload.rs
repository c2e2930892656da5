//! Config reload (`Client::reload`, `tok reload`, SIGHUP) with the real daemon: the new config is
//! validated whole, then swapped in; unchanged providers keep their cached tokens.

use tokend_client::{Error, ErrorCode};
use tokend_e2e::{Daemon, code, stderr, write_private};
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn exchange(name: &str, server: &MockServer, extra: &str) -> String {
    format!(
        "[providers.{name}]\nkind = \"http\"\nurl = \"{}/{name}\"\ntoken = \"/token\"\n{extra}\n",
        server.uri()
    )
}

async fn requests_to(server: &MockServer, name: &str) -> usize {
    let wanted = format!("/{name}");
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|request| request.url.path() == wanted)
        .count()
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_unchanged_providers_and_refuses_invalid_configs() {
    let server = MockServer::start().await;
    for name in ["a", "b"] {
        Mock::given(path(format!("/{name}")))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(serde_json::json!({"token": format!("{name}-token")})),
            )
            .mount(&server)
            .await;
    }
    let first = format!(
        "{}[providers.s]\nkind = \"static\"\nsecret = \"${{env:E2E_S}}\"\n",
        exchange("a", &server, "")
    );
    let daemon = blocking(move || Daemon::start_with_env(&first, &[("E2E_S", "s-token")])).await;
    let config = daemon.dir().join("config.toml");

    let client = daemon.client();
    let (client, got) = blocking(move || {
        let got = client.get("a").map(|t| t.value.expose().to_owned());
        (client, got)
    })
    .await;
    assert_eq!(got.unwrap(), "a-token");
    assert_eq!(requests_to(&server, "a").await, 1);

    // a unchanged, b added, s removed.
    write_private(
        &config,
        &format!(
            "{}{}",
            exchange("a", &server, ""),
            exchange("b", &server, "")
        ),
    );
    let client = client;
    let (client, summary, a, s) = blocking(move || {
        let summary = client.reload();
        let a = client.get("a").map(|t| t.value.expose().to_owned());
        let s = client.get("s");
        (client, summary, a, s)
    })
    .await;
    let summary = summary.unwrap();
    assert_eq!(summary.kept, vec!["a".to_owned()]);
    assert_eq!(summary.added, vec!["b".to_owned()]);
    assert_eq!(summary.removed, vec!["s".to_owned()]);
    assert!(summary.changed.is_empty());
    assert_eq!(a.unwrap(), "a-token");
    assert_eq!(
        requests_to(&server, "a").await,
        1,
        "an unchanged provider keeps its cached token"
    );
    assert_eq!(s.unwrap_err().code(), Some(ErrorCode::UnknownProvider));

    // An invalid config is refused whole; the old one stays in force.
    write_private(
        &config,
        &format!(
            "{}[providers.broken]\nkind = \"nope\"\n",
            exchange("a", &server, "")
        ),
    );
    let client = client;
    let (client, refused, still) = blocking(move || {
        let refused = client.reload();
        let still = client.get("b").map(|t| t.value.expose().to_owned());
        (client, refused, still)
    })
    .await;
    match refused {
        Err(Error::Daemon { code, message }) => {
            assert_eq!(code, ErrorCode::Config);
            assert!(
                message.contains("config.toml:") && message.contains("old config stays"),
                "{message}"
            );
        }
        other => panic!("expected a refused reload, got {other:?}"),
    }
    assert_eq!(
        still.unwrap(),
        "b-token",
        "b (from the config in force) is still served"
    );

    // A changed provider starts afresh.
    write_private(&config, &exchange("a", &server, "header = \"X-Token\""));
    let client = client;
    let (summary, a) = blocking(move || {
        let summary = client.reload();
        let a = client
            .get("a")
            .map(|t| t.header.unwrap().line().expose().to_owned());
        (summary, a)
    })
    .await;
    assert_eq!(summary.unwrap().changed, vec!["a".to_owned()]);
    assert_eq!(a.unwrap(), "X-Token: a-token");
    assert_eq!(requests_to(&server, "a").await, 2);
}

/// Unix: Windows has no SIGHUP (`tok reload` is the way there, tested above).
#[cfg(unix)]
#[test]
fn sighup_reloads_the_config() {
    use std::time::{Duration, Instant};

    let daemon = Daemon::start("[providers.one]\nkind = \"static\"\nsecret = \"${env:HOME}\"\n");
    write_private(
        &daemon.dir().join("config.toml"),
        "[providers.one]\nkind = \"static\"\nsecret = \"${env:HOME}\"\n[providers.two]\nkind = \"anonymous\"\n",
    );
    tokend_e2e::signal(daemon.pid(), rustix::process::Signal::HUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = daemon.tok(&["header", "two"]);
        if code(&out) == 0 {
            break;
        }
        assert_eq!(code(&out), 4, "{}", stderr(&out));
        assert!(
            Instant::now() < deadline,
            "SIGHUP did not reload:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        daemon.log().contains("SIGHUP: reloading"),
        "{}",
        daemon.log()
    );
}

#[test]
fn tok_reload_reports_changes_and_exits_2_on_an_invalid_config() {
    let daemon = Daemon::start("[providers.one]\nkind = \"anonymous\"\n");
    let config = daemon.dir().join("config.toml");
    write_private(
        &config,
        "[providers.one]\nkind = \"anonymous\"\n[providers.two]\nkind = \"anonymous\"\n",
    );
    let out = daemon.tok(&["reload"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    assert!(
        stderr(&out).contains("added two") && stderr(&out).contains("(tokens kept) one"),
        "{}",
        stderr(&out)
    );

    write_private(
        &config,
        "[providers.one]\nkind = \"anonymous\"\nheader = \"X\"\n",
    );
    let out = daemon.tok(&["reload"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("config.toml:3") && err.contains("header") && err.contains("old config stays"),
        "{err}"
    );
    assert_eq!(
        code(&daemon.tok(&["header", "two"])),
        0,
        "the old config (with `two`) is still in force"
    );
}
