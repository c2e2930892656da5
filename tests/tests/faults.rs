//! Upstream faults: every one gives the caller a clear error naming the provider, the URL and
//! what was wrong (exit code 5), never a hang or a crash; transient ones are retried with
//! backoff and `Retry-After` is honoured.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use tokend_e2e::{Daemon, code, stderr, stdout};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn exchange(url: &str) -> String {
    format!(
        r#"
[providers.api]
kind = "http"
url = "{url}/token"
token = "/token"
"#
    )
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// `tok get api` against a daemon configured for `url`: (exit code, stdout, stderr, log).
async fn get(url: String) -> (i32, String, String, String) {
    blocking(move || {
        let daemon = Daemon::start(&exchange(&url));
        let out = daemon.tok(&["get", "api"]);
        (code(&out), stdout(&out), stderr(&out), daemon.log())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_reported_with_provider_url_and_status() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(500).set_body_string("boom"))
        .mount(&server)
        .await;
    let (exit, out, err, _) = get(server.uri()).await;
    assert_eq!(exit, 5, "{err}");
    assert!(out.is_empty());
    assert!(
        err.contains("provider `api`") && err.contains("/token") && err.contains("HTTP 500"),
        "{err}"
    );
    assert!(
        !err.contains("boom"),
        "response bodies are not echoed: {err}"
    );
    // The waiting caller's fetch was retried twice, then the provider backs off.
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_with_retry_after_is_retried_after_the_given_delay() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(503).insert_header("Retry-After", "2"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/token"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(serde_json::json!({"token": "after-503"})),
        )
        .mount(&server)
        .await;
    let started = Instant::now();
    let (exit, out, err, _) = get(server.uri()).await;
    assert_eq!(exit, 0, "{err}");
    assert_eq!(out, "after-503\n");
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "Retry-After: 2 was honoured"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_oversized_and_malformed_answers_are_errors() {
    let server = MockServer::start().await;
    Mock::given(path("/html/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/html")
                .set_body_string("<html><body>Sign in</body></html>"),
        )
        .mount(&server)
        .await;
    Mock::given(path("/big/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string(format!("{{\"token\":\"{}\"}}", "x".repeat(300 * 1024))),
        )
        .mount(&server)
        .await;
    Mock::given(path("/nopointer/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"data": {}})))
        .mount(&server)
        .await;
    let cases = [
        ("html", "HTML page"),
        ("big", "larger than 256 KiB"),
        ("nopointer", "no token (a string) at /token"),
    ];
    for (prefix, expected) in cases {
        let (exit, out, err, _) = get(format!("{}/{prefix}", server.uri())).await;
        assert_eq!(exit, 5, "{prefix}: {err}");
        assert!(out.is_empty());
        assert!(
            err.contains(expected) && err.contains("provider `api`"),
            "{prefix}: {err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_is_an_upstream_error() {
    // A port that was just free: nothing listens there any more.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (exit, _, err, _) = get(format!("http://127.0.0.1:{port}")).await;
    assert_eq!(exit, 5, "{err}");
    assert!(
        err.contains("cannot connect") && err.contains(&port.to_string()),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_body_is_an_error() {
    // A server that promises 100 bytes, sends 10 and hangs up. It stops when told, or after 30 s.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let server = std::thread::spawn({
        let stop = std::sync::Arc::clone(&stop);
        move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        let mut request = [0u8; 1024];
                        let _ = stream.read(&mut request);
                        let _ = stream.write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{\"token\":",
                        );
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        }
    });
    let (exit, _, err, _) = get(format!("http://127.0.0.1:{port}")).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(exit, 5, "{err}");
    assert!(
        err.contains("provider `api`") && err.contains(&port.to_string()),
        "{err}"
    );
    server.join().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_answers_within_the_timeout_succeed_and_slower_ones_time_out() {
    let server = MockServer::start().await;
    Mock::given(path("/slow/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"token": "slow-but-fine"}))
                .set_delay(Duration::from_millis(500)),
        )
        .mount(&server)
        .await;
    Mock::given(path("/stuck/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"token": "too-late"}))
                .set_delay(Duration::from_secs(5)),
        )
        .mount(&server)
        .await;
    let config = |prefix: &str| {
        format!(
            "{}timeout = \"2s\"\n",
            exchange(&format!("{}/{prefix}", server.uri()))
        )
    };

    let slow = config("slow");
    let out = blocking(move || Daemon::start(&slow).tok(&["get", "api"])).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "slow-but-fine\n");

    let stuck = config("stuck");
    let started = Instant::now();
    let out = blocking(move || Daemon::start(&stuck).tok(&["get", "api"])).await;
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("did not answer within 2 s") && err.contains("provider `api`"),
        "{err}"
    );
    // Three attempts of at most 2 s each, with backoff between them: bounded, never a hang.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oauth2_token_request_honours_the_provider_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"access_token": "late", "token_type": "Bearer"}))
                .set_delay(Duration::from_secs(5)),
        )
        .mount(&server)
        .await;
    let config = format!(
        "[providers.api]\nkind = \"oauth2\"\ngrant = \"client_credentials\"\ntoken_url = \"{}/token\"\n\
         client_id = \"svc\"\nclient_secret = \"s3cret\"\ntimeout = \"1s\"\n",
        server.uri()
    );
    let started = Instant::now();
    let out = blocking(move || Daemon::start(&config).tok(&["get", "api"])).await;
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("did not answer within 1 s"),
        "{}",
        stderr(&out)
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}
