//! `tok kube`: a Kubernetes `ExecCredential` on stdout, and the REAL `kubectl` using `tok` as its
//! exec credential plugin against a loopback API server fake that checks the bearer token.
//!
//! kubectl runs exec credential plugins only for `https` servers (over plain `http` it sends no
//! credentials at all), so the wiremock fake sits behind a TLS terminator: `openssl s_server`
//! with a throwaway self-signed certificate, relayed to wiremock by a thread of this test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use tokend_e2e::{Daemon, bin, code, stderr, stdout, write_private};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "kube-e2e-token-0123456789";
const PODS: &str = "/api/v1/namespaces/default/pods";

const CONFIG: &str = r#"
[providers.kube-provider]
kind = "static"
secret = "${env:E2E_KUBE_TOKEN}"
"#;

fn start_daemon() -> Daemon {
    Daemon::start_with_env(CONFIG, &[("E2E_KUBE_TOKEN", TOKEN)])
}

/// Runs a blocking closure (a real process) while the fake server keeps serving.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// The real kubectl, or `None` (the caller skips) when it is not installed.
fn kubectl() -> Option<PathBuf> {
    available("kubectl", &["version", "--client"]).then(|| PathBuf::from("kubectl"))
}

/// Whether `program` runs (`ARGS` succeed).
fn available(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// `openssl s_server` terminating TLS on 127.0.0.1 and relaying each request to `upstream`;
/// killed on drop.
struct TlsFront {
    child: Child,
    port: u16,
}

impl TlsFront {
    fn start(dir: &Path, upstream: SocketAddr) -> Self {
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        let status = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
            .args([
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run openssl req");
        assert!(status.success(), "openssl req failed");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("free port")
            .port();
        let mut child = Command::new("openssl")
            .args(["s_server", "-quiet", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn openssl s_server");
        let from_tls = child.stdout.take().expect("stdout pipe");
        let to_tls = child.stdin.take().expect("stdin pipe");
        std::thread::spawn(move || relay(from_tls, to_tls, upstream));
        let front = Self { child, port };
        front.wait_listening();
        front
    }

    /// Waits (bounded) until the port is in LISTEN state, without connecting to it.
    fn wait_listening(&self) {
        let needle = format!(":{:04X} ", self.port);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
            if table.lines().any(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                fields.len() > 3
                    && format!("{} ", fields[1]).ends_with(&needle)
                    && fields[3] == "0A"
            }) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("openssl s_server did not listen on port {}", self.port);
    }

    fn uri(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Forwards each decrypted GET request (kubectl sends no bodies here) to `upstream` with
/// `Connection: close`, and its whole response back, so kubectl closes after each response.
fn relay(from_tls: ChildStdout, mut to_tls: ChildStdin, upstream: SocketAddr) {
    let mut reader = BufReader::new(from_tls);
    loop {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if head.is_empty() && !line.starts_with("GET ") {
                continue;
            }
            if line.trim().is_empty() {
                break;
            }
            let lower = line.to_ascii_lowercase();
            if !lower.starts_with("connection:") && !lower.starts_with("accept-encoding:") {
                head.push_str(&line);
            }
        }
        head.push_str("Connection: close\r\n\r\n");
        let mut response = Vec::new();
        let forwarded = TcpStream::connect(upstream).and_then(|mut stream| {
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            stream.write_all(head.as_bytes())?;
            stream.read_to_end(&mut response)
        });
        if forwarded.is_err()
            || to_tls
                .write_all(&response)
                .and_then(|()| to_tls.flush())
                .is_err()
        {
            return;
        }
    }
}

#[test]
fn kube_prints_an_exec_credential_without_expiry_for_a_static_provider() {
    let daemon = start_daemon();
    let output = daemon.tok(&["kube", "kube-provider"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let value: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    assert_eq!(value["apiVersion"], "client.authentication.k8s.io/v1");
    assert_eq!(value["kind"], "ExecCredential");
    assert_eq!(value["status"]["token"], TOKEN);
    assert!(
        value["status"].get("expirationTimestamp").is_none(),
        "{value}"
    );
}

#[test]
fn kube_errors_go_to_stderr_with_the_documented_exit_code() {
    let daemon = start_daemon();
    let output = daemon.tok(&["kube", "no-such-provider"]);
    assert_eq!(code(&output), 4, "{}", stderr(&output));
    assert!(stdout(&output).is_empty());
    assert!(stderr(&output).starts_with("tok: "), "{}", stderr(&output));
}

#[test]
fn kube_help_shows_the_kubeconfig_stanza() {
    let daemon = start_daemon();
    let output = daemon.tok(&["kube", "--help"]);
    assert_eq!(code(&output), 0);
    let help = stdout(&output);
    for needle in [
        "apiVersion: client.authentication.k8s.io/v1",
        "command: tok",
        "args: [kube, NAME]",
        "interactiveMode: Never",
    ] {
        assert!(help.contains(needle), "{needle} missing:\n{help}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_authenticates_with_the_token_from_tok_kube() {
    let Some(kubectl) = kubectl() else {
        eprintln!("skipping: kubectl not found");
        return;
    };
    if !available("openssl", &["version"]) {
        eprintln!("skipping: openssl (the TLS front of the fake API server) not found");
        return;
    }
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(PODS))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "kind": "PodList",
            "apiVersion": "v1",
            "metadata": {},
            "items": []
        })))
        .expect(1..)
        .mount(&server)
        .await;
    let daemon = start_daemon();
    let dir = daemon.dir().to_path_buf();
    let front = TlsFront::start(&dir, *server.address());
    // JSON is YAML, so kubectl reads this kubeconfig as is.
    let kubeconfig = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "fake", "cluster": {
            "server": front.uri(),
            "certificate-authority": dir.join("cert.pem").to_str().unwrap()
        } }],
        "users": [{
            "name": "tok-user",
            "user": { "exec": {
                "apiVersion": "client.authentication.k8s.io/v1",
                "command": bin("tok").to_str().unwrap(),
                "args": ["--socket", daemon.socket().to_str().unwrap(), "kube", "kube-provider"],
                "env": [{ "name": "TOKEND_NO_AUTOSTART", "value": "1" }],
                "interactiveMode": "Never"
            }}
        }],
        "contexts": [{ "name": "fake", "context": { "cluster": "fake", "user": "tok-user" } }],
        "current-context": "fake"
    });
    let config_path = dir.join("kubeconfig");
    write_private(&config_path, &kubeconfig.to_string());
    let output = blocking(move || {
        Command::new(kubectl)
            .arg("--kubeconfig")
            .arg(&config_path)
            .arg("--cache-dir")
            .arg(dir.join("kube-cache"))
            .args(["--request-timeout=10s", "get", "--raw", PODS])
            .env("HOME", &dir)
            .env_remove("KUBECONFIG")
            .env_remove("TOKEND_SOCKET")
            .stdin(Stdio::null())
            .output()
            .expect("run kubectl")
    })
    .await;
    let requests = server.received_requests().await.unwrap_or_default();
    let seen: Vec<String> = requests
        .iter()
        .map(|r| {
            format!(
                "{} {} auth={:?}",
                r.method,
                r.url.path(),
                r.headers.get("authorization")
            )
        })
        .collect();
    assert_eq!(
        code(&output),
        0,
        "kubectl failed: {}\nrequests: {seen:#?}",
        stderr(&output)
    );
    let list: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("PodList JSON");
    assert_eq!(list["kind"], "PodList");
    assert!(
        requests.iter().any(|r| r.url.path() == PODS
            && r.headers
                .get("authorization")
                .is_some_and(|v| v.as_bytes() == format!("Bearer {TOKEN}").as_bytes())),
        "{seen:#?}"
    );
    // The token never reaches kubectl's own output.
    assert!(!stderr(&output).contains(TOKEN));
}
