//! Logins on behalf of a person, through the real `tokend` and `tok`, against the real
//! `oidc-provider` test server, headless: the test drives the server's login and consent pages
//! over HTTP while `tok login` waits on the daemon's loopback redirect.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStderr, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokend_e2e::oidc::{
    CLI, JWT_BEARER_KEY, OidcServer, PKJWT, PKJWT_KEY, SA, SERVICE_ACCOUNT, deliver_redirect,
    fixture_key, jwt_claims,
};
use tokend_e2e::{Daemon, PROCESS_WAIT, code, stderr, stdout, tok_command, wait_bounded};

/// An `authorization_code` provider `lab` for the public native client `cli`.
fn auth_code_config(server: &OidcServer, extra: &str) -> String {
    format!(
        r#"
[providers.lab]
kind = "oauth2"
grant = "authorization_code"
issuer = "{}"
client_id = "{}"
scopes = ["openid", "offline_access", "api.read"]
{extra}
"#,
        server.issuer(),
        CLI.id
    )
}

/// `tok login ARGS` running in the background, its stderr read line by line.
struct Login {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Login {
    fn start(daemon: &Daemon, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = tok_command(daemon.socket());
        command.arg("login").args(args).stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn tok login");
        let stderr: ChildStderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first stderr line that `pick` accepts (bounded wait).
    fn wait_for(&mut self, mut pick: impl FnMut(&str) -> Option<String>) -> String {
        let deadline = Instant::now() + PROCESS_WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let picked = pick(&line);
                    self.seen.push(line);
                    if let Some(value) = picked {
                        return value;
                    }
                }
                Err(_) => panic!("tok login did not print it; stderr so far: {:?}", self.seen),
            }
        }
    }

    /// The authorization URL `tok login` printed.
    fn url(&mut self) -> String {
        self.wait_for(|line| {
            line.trim()
                .starts_with("http://")
                .then(|| line.trim().to_owned())
        })
    }

    /// Exit code and the whole stderr.
    fn finish(mut self) -> (i32, String) {
        let status = wait_bounded(&mut self.child);
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.seen.push(line);
        }
        (status.code().unwrap_or(-1), self.seen.join("\n"))
    }
}

fn stat(server: &OidcServer, path: &[&str]) -> u64 {
    let mut value = server.stats();
    for key in path {
        value = value[*key].clone();
    }
    value.as_u64().unwrap_or(0)
}

#[test]
fn authorization_code_with_pkce_then_refresh_after_expiry() {
    let server = OidcServer::start(3);
    let mut daemon = Daemon::start(&auth_code_config(&server, ""));
    // Before any login: the guard answers at once, and status says what is needed.
    let status = daemon.tok(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&stdout(&status)).unwrap();
    assert_eq!(status["providers"][0]["state"], "needs-login", "{status}");

    let mut login = Login::start(&daemon, &["--no-browser", "lab"], &[]);
    let url = login.url();
    assert!(url.contains("code_challenge_method=S256"), "{url}");
    assert!(url.contains("state="), "{url}");
    let location = server.approve_login(&url, "tester").expect("approve");
    assert!(location.starts_with("http://127.0.0.1:"), "{location}");
    let (status, page) = deliver_redirect(&location).expect("redirect");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("You can close this tab"), "{page}");
    let (exit, text) = login.finish();
    assert_eq!(exit, 0, "{text}");
    assert!(text.contains("logged in to lab"), "{text}");
    assert_eq!(stat(&server, &["by_grant", "authorization_code"]), 1);

    let first = daemon.tok(&["get", "lab", "--min-ttl", "1"]);
    assert_eq!(code(&first), 0, "{}", stderr(&first));
    let first = stdout(&first);
    assert_eq!(jwt_claims(first.trim())["sub"], "tester");
    assert!(
        !daemon.log().contains(first.trim()),
        "a token reached the log"
    );

    // The access token lives 3 s; afterwards the session's refresh token gets a new one, no
    // browser involved.
    std::thread::sleep(Duration::from_millis(3200));
    let second = daemon.tok(&["get", "lab", "--min-ttl", "1"]);
    assert_eq!(code(&second), 0, "{}", stderr(&second));
    assert_ne!(stdout(&second), first);
    assert!(stat(&server, &["by_grant", "refresh_token"]) >= 1);

    // Logout revokes the refresh token at the server and ends the session.
    let output = daemon.tok(&["logout", "lab"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("the refresh token was revoked"),
        "{}",
        stderr(&output)
    );
    assert_eq!(stat(&server, &["revocation_requests"]), 1);
    let output = daemon.tok(&["get", "lab"]);
    assert_eq!(code(&output), 6, "{}", stderr(&output));
    assert!(stderr(&output).contains("tok login lab"));
    daemon.terminate();
}

#[test]
fn the_browser_is_opened_with_the_url() {
    let server = OidcServer::start(60);
    let daemon = Daemon::start(&auth_code_config(&server, ""));
    let opened = daemon.dir().join("opened");
    let browser = daemon.dir().join("browser");
    tokend_e2e::write_script(
        &browser,
        &format!("#!/bin/sh\nprintf '%s' \"$1\" > '{}'\n", opened.display()),
    );
    let mut login = Login::start(&daemon, &["lab"], &[("BROWSER", browser.to_str().unwrap())]);
    let printed = login.url();
    let deadline = Instant::now() + PROCESS_WAIT;
    while !opened.exists() {
        assert!(Instant::now() < deadline, "the browser was not started");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(50));
    let url = std::fs::read_to_string(&opened).unwrap();
    assert_eq!(url, printed);
    let location = server.approve_login(&url, "tester").expect("approve");
    deliver_redirect(&location).expect("redirect");
    let (exit, text) = login.finish();
    assert_eq!(exit, 0, "{text}");
}

#[test]
fn a_forged_state_and_a_wrong_code_are_rejected() {
    let server = OidcServer::start(60);
    let daemon = Daemon::start(&auth_code_config(&server, ""));

    // A redirect with a forged state is refused, nothing is exchanged, and the login goes on
    // (whoever can reach the port cannot cut it short): the genuine redirect still completes it.
    let mut login = Login::start(&daemon, &["--no-browser", "lab"], &[]);
    let location = server.approve_login(&login.url(), "tester").unwrap();
    let forged = regex_replace(&location, "state=", "state=forged");
    let (status, page) = deliver_redirect(&forged).unwrap();
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("state does not match"), "{page}");
    assert_eq!(stat(&server, &["by_grant", "authorization_code"]), 0);
    let (status, page) = deliver_redirect(&location).unwrap();
    assert_eq!(status, 200, "{page}");
    let (exit, text) = login.finish();
    assert_eq!(exit, 0, "{text}");
    assert_eq!(stat(&server, &["by_grant", "authorization_code"]), 1);

    let mut login = Login::start(&daemon, &["--no-browser", "lab"], &[]);
    let location = server.approve_login(&login.url(), "tester").unwrap();
    let wrong = regex_replace(&location, "code=", "code=not-the-code");
    let (status, page) = deliver_redirect(&wrong).unwrap();
    assert_eq!(status, 400, "{page}");
    let (exit, text) = login.finish();
    assert_eq!(exit, 6, "{text}");
    assert!(text.contains("refused the authorization code"), "{text}");

    // A person who denies consent: the server's error ends the login.
    let mut login = Login::start(&daemon, &["--no-browser", "lab"], &[]);
    let location = server.deny_login(&login.url()).unwrap();
    deliver_redirect(&location).unwrap();
    let (exit, text) = login.finish();
    assert_eq!(exit, 6, "{text}");
    assert!(text.contains("access_denied"), "{text}");
}

/// `url` with the value of the query parameter starting at `key` replaced by `replacement`'s.
fn regex_replace(url: &str, key: &str, replacement: &str) -> String {
    let start = url.find(key).expect("parameter");
    let end = url[start..].find('&').map_or(url.len(), |end| start + end);
    format!("{}{replacement}{}", &url[..start], &url[end..])
}

#[test]
fn the_login_guard_never_starts_a_flow_and_one_login_runs_at_a_time() {
    let server = OidcServer::start(60);
    let daemon = Daemon::start(&auth_code_config(&server, "login_timeout = \"10s\""));
    let opened = daemon.dir().join("opened");
    let browser = daemon.dir().join("browser");
    tokend_e2e::write_script(
        &browser,
        &format!("#!/bin/sh\necho \"$1\" >> '{}'\n", opened.display()),
    );

    // 100 parallel gets of a provider without a session: all fail at once with exit 6 and the
    // advice, and nothing is opened or asked upstream.
    let children: Vec<Child> = (0..100)
        .map(|_| {
            tok_command(daemon.socket())
                .args(["get", "lab"])
                .env("BROWSER", &browser)
                .env("DISPLAY", ":0")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn tok get")
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert_eq!(output.status.code(), Some(6));
        assert!(
            stderr(&output).contains("run `tok login lab`"),
            "{}",
            stderr(&output)
        );
    }
    assert!(!opened.exists(), "a get opened a browser");
    assert_eq!(stat(&server, &["token_requests"]), 0);

    // One login at a time.
    let mut first = Login::start(&daemon, &["--no-browser", "lab"], &[]);
    let _ = first.url();
    let second = daemon.tok(&["login", "--no-browser", "lab"]);
    assert_eq!(code(&second), 2, "{}", stderr(&second));
    assert!(
        stderr(&second).contains("already in progress"),
        "{}",
        stderr(&second)
    );
    // Nobody completes the first: it times out with a clear message.
    let (exit, text) = first.finish();
    assert_eq!(exit, 6, "{text}");
    assert!(text.contains("no redirect arrived within 10s"), "{text}");
    // Providers that do not log in say so.
    let output = daemon.tok(&["login", "nosuch"]);
    assert_eq!(code(&output), 4, "{}", stderr(&output));
}

#[test]
fn a_refused_refresh_needs_a_login_and_keeps_the_valid_token() {
    let server =
        OidcServer::start_with_env(&[("ACCESS_TOKEN_TTL", "60"), ("REFRESH_TOKEN_TTL", "2")]);
    let daemon = Daemon::start(&auth_code_config(&server, ""));
    let mut login = Login::start(&daemon, &["--no-browser", "lab"], &[]);
    let location = server.approve_login(&login.url(), "tester").unwrap();
    deliver_redirect(&location).unwrap();
    assert_eq!(login.finish().0, 0);
    let token = stdout(&daemon.tok(&["get", "lab"]));

    std::thread::sleep(Duration::from_millis(2500));
    // Asking for more than the token has left forces a refresh, which the server refuses.
    let output = daemon.tok(&["get", "lab", "--min-ttl", "59s"]);
    assert_eq!(code(&output), 6, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("tok login lab"),
        "{}",
        stderr(&output)
    );
    let status = daemon.tok(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&stdout(&status)).unwrap();
    assert_eq!(status["providers"][0]["state"], "needs-login", "{status}");
    // The access token is still valid: it keeps being served.
    let output = daemon.tok(&["get", "lab"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(stdout(&output), token);
}

fn device_config(server: &OidcServer) -> String {
    format!(
        r#"
[providers.tv]
kind = "oauth2"
grant = "device_code"
issuer = "{}"
client_id = "{}"
scopes = ["offline_access", "api.read"]
"#,
        server.issuer(),
        CLI.id
    )
}

/// The user code `tok login` printed.
fn user_code(login: &mut Login) -> String {
    login.wait_for(|line| {
        line.split("enter the code ")
            .nth(1)
            .map(|code| code.trim().to_owned())
    })
}

#[test]
fn device_flow_pending_then_approved() {
    let server =
        OidcServer::start_with_env(&[("ACCESS_TOKEN_TTL", "60"), ("DEVICE_INTERVAL", "1")]);
    let daemon = Daemon::start(&device_config(&server));
    let mut login = Login::start(&daemon, &["tv"], &[]);
    let code_text = user_code(&mut login);
    // The daemon polls at the server's interval: the first polls are pending.
    let deadline = Instant::now() + PROCESS_WAIT;
    while stat(&server, &["errors", "authorization_pending"]) == 0 {
        assert!(Instant::now() < deadline, "no pending poll");
        std::thread::sleep(Duration::from_millis(100));
    }
    server.approve_device(&code_text, "viewer").unwrap();
    let (exit, text) = login.finish();
    assert_eq!(exit, 0, "{text}");
    let output = daemon.tok(&["get", "tv"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(jwt_claims(stdout(&output).trim())["sub"], "viewer");
}

#[test]
fn device_flow_denied_slowed_down_and_expired() {
    let server = OidcServer::start_with_env(&[
        ("DEVICE_INTERVAL", "1"),
        ("DEVICE_CODE_TTL", "4"),
        ("DEVICE_SLOW_DOWN", "1"),
    ]);
    let daemon = Daemon::start(&device_config(&server));

    let mut login = Login::start(&daemon, &["tv"], &[]);
    let code_text = user_code(&mut login);
    server.deny_device(&code_text).unwrap();
    let (exit, text) = login.finish();
    assert_eq!(exit, 6, "{text}");
    assert!(text.contains("denied"), "{text}");
    assert_eq!(
        stat(&server, &["errors", "slow_down"]),
        0,
        "polled too fast"
    );

    // Nobody approves: the code expires and the login says so.
    let login = Login::start(&daemon, &["tv"], &[]);
    let (exit, text) = login.finish();
    assert_eq!(exit, 6, "{text}");
    assert!(text.contains("expired"), "{text}");
}

#[test]
fn device_flow_backs_off_after_slow_down() {
    // The server advertises 1 s but enforces 2 s: the second poll is answered `slow_down`. A
    // client that honours it polls 5 s slower from then on and is never told again; one that
    // ignored it would be answered `slow_down` at every poll.
    let server = OidcServer::start_with_env(&[
        ("DEVICE_INTERVAL", "1"),
        ("DEVICE_SLOW_DOWN", "1"),
        ("DEVICE_MIN_INTERVAL", "2"),
    ]);
    let daemon = Daemon::start(&device_config(&server));
    let mut login = Login::start(&daemon, &["tv"], &[]);
    let code_text = user_code(&mut login);
    let deadline = Instant::now() + PROCESS_WAIT;
    while stat(&server, &["errors", "slow_down"]) == 0 {
        assert!(Instant::now() < deadline, "no slow_down answered");
        std::thread::sleep(Duration::from_millis(100));
    }
    server.approve_device(&code_text, "viewer").unwrap();
    let (exit, text) = login.finish();
    assert_eq!(exit, 0, "{text}");
    assert_eq!(
        stat(&server, &["errors", "slow_down"]),
        1,
        "{}",
        server.stats()
    );
}

/// A copy of a fixture key that `${file:…}` accepts (mode 0600).
fn private_copy(dir: &Path, name: &str) -> String {
    let path = dir.join(name);
    tokend_e2e::write_private(&path, &std::fs::read_to_string(fixture_key(name)).unwrap());
    path.display().to_string()
}

#[test]
fn private_key_jwt_client_authentication() {
    let server = OidcServer::start(60);
    let dir = tokend_e2e::private_dir();
    let config = format!(
        r#"
[providers.signed]
kind = "oauth2"
grant = "client_credentials"
token_url = "{}"
client_id = "{}"
client_auth = "private_key_jwt"
private_key = "${{file:{}}}"
scopes = ["api.read"]
"#,
        server.token_url(),
        PKJWT.id,
        private_copy(dir.path(), PKJWT_KEY)
    );
    let daemon = Daemon::start(&config);
    let output = daemon.tok(&["get", "signed"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    // Each fetch signs a new assertion (a fresh jti): the server refuses replays.
    assert_eq!(code(&daemon.tok(&["invalidate", "signed"])), 0);
    let output = daemon.tok(&["get", "signed"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(stat(&server, &["by_auth_method", "client_assertion"]), 2);
    assert_eq!(stat(&server, &["failures"]), 0, "{}", server.stats());
}

#[test]
fn jwt_bearer_grant_for_a_service_account() {
    let server = OidcServer::start(60);
    let dir = tokend_e2e::private_dir();
    let config = format!(
        r#"
[providers.robot]
kind = "oauth2"
grant = "jwt_bearer"
token_url = "{}"
client_id = "{}"
assertion_issuer = "{SERVICE_ACCOUNT}"
assertion_subject = "deploy-bot"
private_key = "${{file:{}}}"
scopes = ["api.read"]
"#,
        server.token_url(),
        SA.id,
        private_copy(dir.path(), JWT_BEARER_KEY)
    );
    let daemon = Daemon::start(&config);
    let output = daemon.tok(&["get", "robot"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(jwt_claims(stdout(&output).trim())["sub"], "deploy-bot");

    // The wrong key: refused with a message naming what to check, exit 5.
    let wrong = format!(
        "{}\n[providers.forged]\nkind = \"oauth2\"\ngrant = \"jwt_bearer\"\ntoken_url = \"{}\"\n\
         client_id = \"{}\"\nassertion_issuer = \"{SERVICE_ACCOUNT}\"\n\
         private_key = \"${{file:{}}}\"\n",
        config,
        server.token_url(),
        SA.id,
        private_copy(dir.path(), PKJWT_KEY)
    );
    let daemon = Daemon::start(&wrong);
    let output = daemon.tok(&["get", "forged"]);
    assert_eq!(code(&output), 5, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("the assertion was refused (invalid_grant"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn azure_ad_preset_against_the_local_server() {
    let server =
        OidcServer::start_with_env(&[("ACCESS_TOKEN_TTL", "60"), ("AZURE_TENANT", "contoso-test")]);
    let config = format!(
        r#"
[providers.salestim-admin]
preset = "azure-ad"
tenant = "contoso-test"
client_id = "{}"
scopes = ["api.read"]
authority = "{}"

[providers.daemon-app]
preset = "azure-ad"
tenant = "contoso-test"
client_id = "{}"
client_secret = "${{env:APP_SECRET}}"
scopes = ["api.read"]
authority = "{}"
"#,
        CLI.id,
        server.azure_authority(),
        tokend_e2e::oidc::SVC_POST.id,
        server.azure_authority()
    );
    let daemon = Daemon::start_with_env(
        &config,
        &[("APP_SECRET", tokend_e2e::oidc::SVC_POST.secret)],
    );

    // Interactive by default: the v2.0 authorize endpoint of the tenant, with offline_access
    // added so that the session has a refresh token.
    let mut login = Login::start(&daemon, &["--no-browser", "salestim-admin"], &[]);
    let url = login.url();
    assert!(
        url.starts_with(&format!(
            "{}/contoso-test/oauth2/v2.0/authorize?",
            server.azure_authority()
        )),
        "{url}"
    );
    assert!(url.contains("offline_access"), "{url}");
    let location = server.approve_login(&url, "admin@contoso").unwrap();
    deliver_redirect(&location).unwrap();
    let (exit, text) = login.finish();
    assert_eq!(exit, 0, "{text}");
    let output = daemon.tok(&["header", "salestim-admin"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert!(stdout(&output).starts_with("Authorization: Bearer ey"));

    // With a client secret: the app's own client-credentials token, no login.
    let output = daemon.tok(&["get", "daemon-app"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(stat(&server, &["by_grant", "client_credentials"]), 1);
}

#[test]
fn a_login_session_survives_a_crash_and_logout_ends_it_for_good() {
    let server = OidcServer::start(60);
    let mut daemon = Daemon::start(&auth_code_config(&server, ""));
    let mut login = Login::start(&daemon, &["--no-browser", "lab"], &[]);
    let location = server.approve_login(&login.url(), "tester").unwrap();
    deliver_redirect(&location).unwrap();
    assert_eq!(login.finish().0, 0);
    let token = stdout(&daemon.tok(&["get", "lab"]));
    let requests = stat(&server, &["token_requests"]);

    // kill -9: the session and its still-valid token come back from the store, with no
    // upstream request and no login.
    daemon.kill();
    daemon.restart(&[]);
    let output = daemon.tok(&["get", "lab"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(stdout(&output), token);
    assert_eq!(stat(&server, &["token_requests"]), requests);
    // The session's refresh token was restored too: a fresh token needs no login.
    assert_eq!(code(&daemon.tok(&["invalidate", "lab"])), 0);
    let output = daemon.tok(&["get", "lab"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_ne!(stdout(&output), token);
    assert!(stat(&server, &["by_grant", "refresh_token"]) >= 1);

    // Logout forgets it durably: after another restart the provider needs a login.
    assert_eq!(code(&daemon.tok(&["logout", "lab"])), 0);
    daemon.kill();
    daemon.restart(&[]);
    let output = daemon.tok(&["get", "lab"]);
    assert_eq!(code(&output), 6, "{}", stderr(&output));
    daemon.terminate();
}

#[test]
fn a_token_file_appears_after_the_login_and_goes_with_the_logout() {
    let server = OidcServer::start(3600);
    let files = tokend_e2e::private_dir();
    let path = files.path().join("lab.token");
    let daemon = Daemon::start(&auth_code_config(
        &server,
        &format!("file = {{ path = \"{}\" }}", path.display()),
    ));
    // No session yet: nothing to write, and status says why.
    std::thread::sleep(Duration::from_millis(300));
    assert!(!path.exists());
    let status: serde_json::Value =
        serde_json::from_str(&stdout(&daemon.tok(&["status", "--json"]))).unwrap();
    let error = status["token_files"][0]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(error.contains("tok login lab"), "{status}");

    let mut login = Login::start(&daemon, &["--no-browser", "lab"], &[]);
    let location = server.approve_login(&login.url(), "tester").unwrap();
    deliver_redirect(&location).unwrap();
    assert_eq!(login.finish().0, 0);
    tokend_e2e::eventually(Duration::from_secs(20), || path.exists());
    let written = std::fs::read_to_string(&path).expect("the token file after the login");
    assert_eq!(jwt_claims(written.trim())["sub"], "tester");

    assert_eq!(code(&daemon.tok(&["logout", "lab"])), 0);
    assert!(
        tokend_e2e::eventually(Duration::from_secs(20), || !path.exists()),
        "the token file outlived the logout"
    );
}
