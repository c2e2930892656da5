//! The credential-helper protocols through the real tools and binaries: the real `git`
//! (`git credential fill|reject`, `git ls-remote` against a loopback HTTP server that requires
//! the token) with `tok git-credential` as its helper, and `docker-credential-tok` driven
//! through Docker's documented helper protocol (server URL on stdin, JSON on stdout).

use std::path::Path;
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use tokend_e2e::{Daemon, bin, code, run_with_input, stderr, stdout};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const PAT: &str = "glpat-c7b1d2e3f4a5b6c7d8e9";
/// A commit id for the fake repository's one branch.
const HEAD: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `git` isolated from the user's and the system's configuration, never prompting, with
/// `tok git-credential` (aimed at `socket`) as its only credential helper.
fn git(home: &Path, socket: &Path) -> Command {
    let mut command = Command::new("git");
    let helper = format!(
        "!'{}' --socket '{}' git-credential",
        bin("tok").display(),
        socket.display()
    );
    command
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("TOKEND_NO_AUTOSTART", "1")
        .env_remove("GIT_ASKPASS")
        .env_remove("SSH_ASKPASS")
        .env_remove("TOKEND_SOCKET")
        .args(["-c", "credential.helper=", "-c"])
        .arg(format!("credential.helper={helper}"));
    command
}

/// Runs `git ARGS` (as [`git`] sets it up for `daemon`) with `input` on stdin, off the async
/// runtime so the fake servers keep serving.
async fn run_git(daemon: &Daemon, args: &[&str], input: &[u8]) -> Output {
    let (home, socket) = (daemon.dir().to_owned(), daemon.socket().to_owned());
    let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    let input = input.to_vec();
    blocking(move || run_with_input(git(&home, &socket).args(&args), &input)).await
}

fn git_available() -> bool {
    let found = Command::new("git").arg("--version").output().is_ok();
    if !found {
        // .ci/run installs git; a developer machine without it cannot run this test.
        eprintln!("skipping: `git` is not installed");
    }
    found
}

fn fields(output: &Output) -> Vec<(String, String)> {
    stdout(output)
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

fn field<'a>(fields: &'a [(String, String)], key: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(name, _)| name == key)
        .map(|(_, value)| value.as_str())
}

/// A dumb-HTTP git repository at `/repo.git` that answers only requests carrying
/// `Basic base64(user:PAT)`, and asks for Basic credentials otherwise.
async fn git_server(user: &str) -> MockServer {
    let server = MockServer::start().await;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{PAT}"));
    Mock::given(method("GET"))
        .and(path("/repo.git/info/refs"))
        .and(header("authorization", format!("Basic {basic}").as_str()))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/plain")
                .set_body_string(format!("{HEAD}\trefs/heads/main\n")),
        )
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(401).insert_header("www-authenticate", "Basic realm=\"repo\""),
        )
        .with_priority(2)
        .mount(&server)
        .await;
    server
}

fn static_provider(host: &str, extra: &str) -> String {
    format!(
        r#"
[providers.lab]
kind = "static"
secret = "${{env:LAB_PAT}}"
git = {{ host = "{host}"{extra} }}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_ls_remote_authenticates_with_the_providers_token() {
    if !git_available() {
        return;
    }
    let server = git_server("oauth2").await;
    let host = server.address().to_string();
    let daemon = Daemon::start_with_env(&static_provider(&host, ""), &[("LAB_PAT", PAT)]);
    let url = format!("{}/repo.git", server.uri());
    let output = run_git(&daemon, &["ls-remote", &url], b"").await;
    assert_eq!(
        code(&output),
        0,
        "git ls-remote failed: {}",
        stderr(&output)
    );
    assert_eq!(stdout(&output), format!("{HEAD}\trefs/heads/main\n"));
    assert!(!stderr(&output).contains(PAT), "{}", stderr(&output));

    // Without the helper git has no credential and gives up (the server really checks).
    let home = daemon.dir().to_owned();
    let url = format!("{}/repo.git", server.uri());
    let output = blocking(move || {
        let mut command = Command::new("git");
        command
            .env("HOME", &home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env_remove("GIT_ASKPASS")
            .args(["-c", "credential.helper=", "ls-remote", &url]);
        run_with_input(&mut command, b"")
    })
    .await;
    assert_ne!(code(&output), 0, "{}", stdout(&output));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_uses_the_routes_username_and_ignores_other_hosts() {
    if !git_available() {
        return;
    }
    let server = git_server("robot").await;
    let host = server.address().to_string();
    let config = static_provider(&host, r#", username = "robot""#);
    let daemon = Daemon::start_with_env(&config, &[("LAB_PAT", PAT)]);

    let url = format!("{}/repo.git", server.uri());
    let output = run_git(&daemon, &["ls-remote", &url], b"").await;
    assert_eq!(
        code(&output),
        0,
        "git ls-remote failed: {}",
        stderr(&output)
    );

    // A host without a route: the helper answers nothing, so git has no password and fails
    // (it may not prompt), and tokend was asked nothing but the routes.
    let output = run_git(
        &daemon,
        &["credential", "fill"],
        b"protocol=https\nhost=elsewhere.example.com\n\n",
    )
    .await;
    assert_ne!(code(&output), 0);
    assert!(!stdout(&output).contains(PAT));
    let status = daemon.tok(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&stdout(&status)).unwrap();
    assert_eq!(
        status["providers"][0]["counters"]["requests"], 1,
        "{status}"
    );
}

/// Two accounts on one host: `/alice/…` wants `alice`'s token, `/bob/…` `bob`'s.
async fn two_account_server() -> MockServer {
    let server = MockServer::start().await;
    for (user, pat) in [("alice", PAT), ("bob", BOB_PAT)] {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pat}"));
        Mock::given(method("GET"))
            .and(path(format!("/{user}/repo.git/info/refs")))
            .and(header("authorization", format!("Basic {basic}").as_str()))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("content-type", "text/plain")
                    .set_body_string(format!("{HEAD}\trefs/heads/{user}\n")),
            )
            .with_priority(1)
            .mount(&server)
            .await;
    }
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(401).insert_header("www-authenticate", "Basic realm=\"repo\""),
        )
        .with_priority(2)
        .mount(&server)
        .await;
    server
}

const BOB_PAT: &str = "glpat-b0b0b0b0b0b0b0b0b0b0";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_accounts_on_one_host_are_told_apart_by_path() {
    if !git_available() {
        return;
    }
    let server = two_account_server().await;
    let host = server.address().to_string();
    let config = format!(
        r#"
[providers.alice]
kind = "static"
secret = "${{env:ALICE_PAT}}"
git = {{ host = "{host}", path = "alice", username = "alice" }}

[providers.bob]
kind = "static"
secret = "${{env:BOB_PAT}}"
git = {{ host = "{host}", path = "bob/repo", username = "bob" }}
"#
    );
    let daemon = Daemon::start_with_env(&config, &[("ALICE_PAT", PAT), ("BOB_PAT", BOB_PAT)]);
    // As the README says: git sends the path only with credential.useHttpPath.
    let use_path = format!("credential.{}.useHttpPath=true", server.uri());
    for user in ["alice", "bob"] {
        let url = format!("{}/{user}/repo.git", server.uri());
        let output = run_git(&daemon, &["-c", &use_path, "ls-remote", &url], b"").await;
        assert_eq!(code(&output), 0, "{user}: {}", stderr(&output));
        assert_eq!(stdout(&output), format!("{HEAD}\trefs/heads/{user}\n"));
    }
    // Without the path, no route is specific enough: git gets no password.
    let url = format!("{}/bob/repo.git", server.uri());
    let output = run_git(&daemon, &["ls-remote", &url], b"").await;
    assert_ne!(code(&output), 0, "{}", stdout(&output));
    // The user name of the URL picks the account as well (the longest prefix of its routes).
    let output = run_git(
        &daemon,
        &["-c", &use_path, "credential", "fill"],
        format!("protocol=http\nhost={host}\nusername=alice\npath=alice/other.git\n\n").as_bytes(),
    )
    .await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let answer = fields(&output);
    assert_eq!(field(&answer, "password"), Some(PAT));
    let status = daemon.tok(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&stdout(&status)).unwrap();
    for index in [0, 1] {
        assert!(
            status["providers"][index]["counters"]["requests"].as_u64() >= Some(1),
            "{status}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_credential_fill_gives_the_expiry_and_reject_invalidates() {
    if !git_available() {
        return;
    }
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": "ghs_short_lived_installation_token",
            "expires_in": 3600
        })))
        .expect(2)
        .mount(&upstream)
        .await;
    let config = format!(
        r#"
[providers.forge]
kind = "http"
method = "POST"
url = "{}/token"
token = "/access_token"
expires = "/expires_in"
git = {{ host = "forge.example.com", username = "x-access-token" }}
"#,
        upstream.uri()
    );
    let daemon = Daemon::start(&config);
    let request: &[u8] = b"protocol=https\nhost=forge.example.com\npath=org/repo.git\n\n";

    let before = now();
    let output = run_git(&daemon, &["credential", "fill"], request).await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let answer = fields(&output);
    assert_eq!(field(&answer, "username"), Some("x-access-token"));
    assert_eq!(
        field(&answer, "password"),
        Some("ghs_short_lived_installation_token")
    );
    let expiry: u64 = field(&answer, "password_expiry_utc")
        .expect("password_expiry_utc")
        .parse()
        .unwrap();
    assert!(
        (before + 3590..=now() + 3600).contains(&expiry),
        "{expiry} vs {before}"
    );

    // The same host over plain http gets nothing: a token never goes out in clear text (except
    // to loopback hosts), so a forged 401 on an http:// URL cannot fish for it.
    let output = run_git(
        &daemon,
        &["credential", "fill"],
        b"protocol=http\nhost=forge.example.com\n\n",
    )
    .await;
    assert_ne!(code(&output), 0);
    assert!(!stdout(&output).contains("ghs_"), "{}", stdout(&output));

    // The server rejected it: git sends `erase`, tokend drops the token, and the next fill
    // fetches a new one (two upstream requests in all, checked by `expect(2)`).
    let reject = b"protocol=https\nhost=forge.example.com\nusername=x-access-token\n\
                   password=ghs_short_lived_installation_token\n\n";
    let output = run_git(&daemon, &["credential", "reject"], reject).await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let output = run_git(&daemon, &["credential", "fill"], request).await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    // `store` (sent after a success) is accepted and changes nothing.
    let output = run_git(&daemon, &["credential", "approve"], reject).await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(
        !daemon.log().contains("ghs_short_lived"),
        "a token reached the log"
    );
    upstream.verify().await;
}

#[test]
fn git_credential_rejects_bad_input_and_reports_an_unreachable_daemon() {
    let daemon = Daemon::start_with_env(&static_provider("h.example", ""), &[("LAB_PAT", PAT)]);
    let mut command = tokend_e2e::tok_command(daemon.socket());
    command.args(["git-credential", "get"]);
    let output = run_with_input(&mut command, b"protocol=https\nthis is not git\n");
    assert_eq!(code(&output), 2, "{}", stderr(&output));
    assert!(stderr(&output).contains("line 2 of the request is not key=value"));
    assert!(stdout(&output).is_empty());

    let mut command = tokend_e2e::tok_command(&daemon.dir().join("nobody.sock"));
    command.args(["git-credential", "get"]);
    let output = run_with_input(&mut command, b"protocol=https\nhost=h.example\n\n");
    assert_eq!(code(&output), 3, "{}", stderr(&output));
    assert!(stdout(&output).is_empty());

    let output = daemon.tok(&["git-credential", "fetch"]);
    assert_eq!(code(&output), 2);
    assert!(stderr(&output).contains("get"), "{}", stderr(&output));
}

fn docker_helper(socket: &Path, args: &[&str], input: &[u8]) -> Output {
    let mut command = Command::new(bin("docker-credential-tok"));
    command
        .args(args)
        .env("TOKEND_SOCKET", socket)
        .env("TOKEND_NO_AUTOSTART", "1");
    run_with_input(&mut command, input)
}

#[test]
fn docker_credential_helper_protocol() {
    let config = format!(
        r#"
[providers.registry]
kind = "static"
secret = "${{env:REGISTRY_TOKEN}}"
docker = {{ host = "registry.example.com:5000", username = "robot$ci" }}

[providers.hub]
kind = "static"
secret = "${{env:HUB_TOKEN}}"
docker = {{ host = "index.docker.io" }}
{}"#,
        static_provider("git.example.com", "")
    );
    let daemon = Daemon::start_with_env(
        &config,
        &[
            ("REGISTRY_TOKEN", "reg-token-\"quoted\"\\"),
            ("HUB_TOKEN", "dckr_pat_hub"),
            ("LAB_PAT", PAT),
        ],
    );
    let socket = daemon.socket();

    // get: the server URL on stdin, the credential as JSON on stdout.
    let output = docker_helper(socket, &["get"], b"https://registry.example.com:5000\n");
    assert_eq!(code(&output), 0, "{}", stdout(&output));
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        answer,
        serde_json::json!({
            "ServerURL": "https://registry.example.com:5000",
            "Username": "robot$ci",
            "Secret": "reg-token-\"quoted\"\\"
        })
    );
    // Docker Hub's server URL has a path; a bare host works too.
    let output = docker_helper(socket, &["get"], b"https://index.docker.io/v1/");
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(answer["Secret"], "dckr_pat_hub");
    assert_eq!(answer["Username"], "oauth2");
    let output = docker_helper(socket, &["get"], b"registry.example.com:5000");
    assert_eq!(code(&output), 0, "{}", stdout(&output));

    // A registry without a route (git routes do not count): Docker's "not found" text, exit 1.
    for unknown in [&b"https://other.example.com"[..], b"git.example.com"] {
        let output = docker_helper(socket, &["get"], unknown);
        assert_eq!(code(&output), 1);
        assert_eq!(
            stdout(&output).trim(),
            "credentials not found in native keychain"
        );
    }

    // list: server → user name, Docker routes only.
    let output = docker_helper(socket, &["list"], b"");
    assert_eq!(code(&output), 0, "{}", stdout(&output));
    let listed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        listed,
        serde_json::json!({
            "index.docker.io": "oauth2",
            "registry.example.com:5000": "robot$ci"
        })
    );

    // store and erase: tokend keeps no credentials from Docker; the message says what to do.
    let stored = br#"{"ServerURL":"https://registry.example.com:5000","Username":"u","Secret":"docker-login-password"}"#;
    for (action, input) in [
        ("store", &stored[..]),
        ("erase", b"registry.example.com:5000"),
    ] {
        let output = docker_helper(socket, &[action], input);
        assert_eq!(code(&output), 2, "{action}");
        let message = stdout(&output);
        assert!(
            message.contains(&format!("nothing to {action}")) && message.contains("docker = {"),
            "{message}"
        );
        assert!(!message.contains("docker-login-password"));
    }
    assert!(!daemon.log().contains("docker-login-password"));

    let output = docker_helper(socket, &["version"], b"");
    assert_eq!(code(&output), 0);
    assert!(stdout(&output).starts_with("docker-credential-tok (tokend) "));

    // No daemon: a message on stdout (Docker shows it) and the documented exit code.
    let output = docker_helper(
        &daemon.dir().join("nobody.sock"),
        &["get"],
        b"registry.example.com:5000",
    );
    assert_eq!(code(&output), 3);
    assert!(
        stdout(&output).contains("tokend is not running"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn reloading_a_changed_route_keeps_the_token_and_moves_the_route() {
    let config = |host: &str| {
        format!(
            "[providers.registry]\nkind = \"static\"\nsecret = \"${{env:REGISTRY_TOKEN}}\"\n\
             docker = {{ host = \"{host}\" }}\n"
        )
    };
    let daemon = Daemon::start_with_env(&config("old.example.com"), &[("REGISTRY_TOKEN", "t0k")]);
    let output = docker_helper(daemon.socket(), &["get"], b"old.example.com");
    assert_eq!(code(&output), 0, "{}", stdout(&output));

    tokend_e2e::write_private(
        &daemon.dir().join("config.toml"),
        &config("new.example.com"),
    );
    let output = daemon.tok(&["reload"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("unchanged (tokens kept) registry"),
        "{}",
        stderr(&output)
    );
    let output = docker_helper(daemon.socket(), &["get"], b"old.example.com");
    assert_eq!(code(&output), 1, "{}", stdout(&output));
    let output = docker_helper(daemon.socket(), &["get"], b"new.example.com");
    assert_eq!(code(&output), 0, "{}", stdout(&output));
}
