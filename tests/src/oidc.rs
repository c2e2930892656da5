//! A real OAuth 2.0 authorization server for the end-to-end tests: panva's `oidc-provider` (an
//! independently written, certified OpenID Connect / OAuth 2.0 implementation, pinned in
//! `tests/oidc/package.json`), run by `node tests/oidc/server.mjs` on 127.0.0.1.
//!
//! [`OidcServer::start`] spawns one server per test on an ephemeral port and waits (at most
//! [`READY_TIMEOUT`]) for the single ready line the script prints on stdout. The server's stderr
//! goes to a log file in a private temporary directory; its tail is quoted in every panic the
//! fixture raises. The child's stdin stays piped: the script exits when that pipe closes, so a
//! test process that dies, even by SIGKILL, leaves no server behind. Dropping the fixture closes
//! the pipe and then kills and reaps the child after a bounded wait.
//!
//! The node dependencies are not vendored: install them once with `npm ci --prefix tests/oidc`
//! (CI does the same before `cargo test`).
//!
//! What the server offers (see the header of `tests/oidc/server.mjs` for the details):
//!
//! * clients [`SVC_BASIC`] and [`SVC_POST`] (client credentials, scopes `api.read api.write`,
//!   registered for `client_secret_basic` and `client_secret_post`: oidc-provider accepts either
//!   method from either client, so check [`OidcServer::stats`]' `by_auth_method` to see which one
//!   a caller used) and [`APP`] (authorization code + refresh token, scopes
//!   `openid offline_access api.read`);
//! * every access token lives exactly the TTL given to [`OidcServer::start`]; client-credentials
//!   tokens are RS256 JWTs (`typ` `at+jwt`) with `exp`, `aud` = the resource (default
//!   [`DEFAULT_RESOURCE`]; a `resource` or `audience` form parameter naming any `https` URI under
//!   `example.test` picks another, anything else is `invalid_target`);
//! * refresh tokens rotate on every use; reusing a rotated one is `invalid_grant` **and revokes
//!   the whole grant** (the newest refresh token stops working too);
//! * test-only routes under `/__test/`: minting a refresh token for [`APP`], request counters,
//!   and the record of every refresh-token grant ([`OidcServer::refresh_chain`]).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;

/// How long [`OidcServer::start`] waits for the server's ready line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// Timeout for each HTTP request the fixture or [`http_agent`] makes.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// The resource (audience) client-credentials tokens are issued for when none is requested.
pub const DEFAULT_RESOURCE: &str = "https://api.example.test";

/// A registered client: id and secret (fixed test values, see `tests/oidc/server.mjs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestClient {
    /// `client_id`.
    pub id: &'static str,
    /// `client_secret`.
    pub secret: &'static str,
}

/// Client credentials grant, registered for `client_secret_basic`, scopes `api.read api.write`.
pub const SVC_BASIC: TestClient = TestClient {
    id: "svc-basic",
    secret: "svc-basic-secret",
};

/// Client credentials grant, registered for `client_secret_post`, scopes `api.read api.write`.
pub const SVC_POST: TestClient = TestClient {
    id: "svc-post",
    secret: "svc-post-secret",
};

/// Authorization code + refresh token grants, `client_secret_basic`, scopes
/// `openid offline_access api.read`; the owner of [`OidcServer::mint_refresh_token`]'s tokens.
pub const APP: TestClient = TestClient {
    id: "app",
    secret: "app-secret",
};

/// One successful refresh-token grant ([`OidcServer::refresh_chain`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refresh {
    /// The refresh token presented.
    pub used: String,
    /// The access token issued.
    pub access_token: String,
    /// The rotated refresh token issued.
    pub refresh_token: String,
}

/// One running `oidc-provider` test server; stopped when dropped.
#[derive(Debug)]
pub struct OidcServer {
    child: Child,
    /// Held open for the server's lifetime: the server exits when it closes.
    stdin: Option<ChildStdin>,
    issuer: String,
    discovery: Value,
    agent: ureq::Agent,
    log: PathBuf,
    /// Owns the directory of `log`.
    _dir: tempfile::TempDir,
}

impl OidcServer {
    /// Starts `tests/oidc/server.mjs` with `node`, every access token living
    /// `access_token_ttl_secs` seconds (refresh tokens: the script's default, 3600 s).
    ///
    /// # Panics
    ///
    /// With a message naming `npm ci --prefix tests/oidc` if the node dependencies are not
    /// installed or `node` is not found; with the server log's tail if the server does not
    /// become ready within [`READY_TIMEOUT`] or its discovery document cannot be read.
    #[must_use]
    pub fn start(access_token_ttl_secs: u64) -> Self {
        assert!(
            access_token_ttl_secs > 0,
            "the OIDC test server needs a positive access token TTL"
        );
        Self::start_with_env(&[("ACCESS_TOKEN_TTL", &access_token_ttl_secs.to_string())])
    }

    /// Like [`OidcServer::start`], with extra environment for the script (`ACCESS_TOKEN_TTL`,
    /// `REFRESH_TOKEN_TTL`).
    ///
    /// # Panics
    ///
    /// As [`OidcServer::start`]; a bad TTL value makes the server exit before it is ready.
    #[must_use]
    pub fn start_with_env(env: &[(&str, &str)]) -> Self {
        let oidc_dir = oidc_dir();
        let script = oidc_dir.join("server.mjs");
        assert!(
            oidc_dir
                .join("node_modules/oidc-provider/package.json")
                .is_file(),
            "the OIDC test server's node dependencies are missing in {}: run `npm ci --prefix tests/oidc` \
             (from the workspace root; needs Node.js >= 20 and npm)",
            oidc_dir.display()
        );

        let dir = tempfile::Builder::new()
            .prefix("tkd-oidc")
            .tempdir()
            .expect("temp dir for the OIDC server log");
        let log = dir.path().join("oidc-server.log");
        let log_file = File::create(&log).expect("create the OIDC server log");

        let mut command = Command::new("node");
        command
            .arg(&script)
            .current_dir(&oidc_dir)
            // Only what the caller asks for, never leftovers from the test's environment.
            .env_remove("ACCESS_TOKEN_TTL")
            .env_remove("REFRESH_TOKEN_TTL")
            .env_remove("EXIT_ON_STDIN_CLOSE")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file));
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => panic!(
                "`node` was not found on PATH ({err}): the end-to-end tests need Node.js >= 20 and \
                 `npm ci --prefix tests/oidc`"
            ),
            Err(err) => panic!("cannot start `node {}`: {err}", script.display()),
        };
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");

        // The ready line, read on a thread so the wait is bounded. The thread then drains stdout
        // until the server exits, so a stray write can never block the server.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let first = reader.read_line(&mut line).map(|_| line);
            let _ = tx.send(first);
            let mut sink = String::new();
            while matches!(reader.read_line(&mut sink), Ok(n) if n > 0) {
                sink.clear();
            }
        });

        let mut server = Self {
            child,
            stdin,
            issuer: String::new(),
            discovery: Value::Null,
            agent: http_agent(),
            log,
            _dir: dir,
        };

        let line = match rx.recv_timeout(READY_TIMEOUT) {
            Ok(Ok(line)) if !line.is_empty() => line,
            Ok(Ok(_)) => server.fail("the OIDC test server exited before it was ready"),
            Ok(Err(err)) => server.fail(&format!("reading the OIDC test server's stdout: {err}")),
            Err(_) => server.fail(&format!(
                "the OIDC test server was not ready within {READY_TIMEOUT:?}"
            )),
        };
        let issuer = serde_json::from_str::<Value>(&line)
            .ok()
            .and_then(|ready| ready.get("issuer")?.as_str().map(str::to_owned));
        match issuer {
            Some(issuer) if issuer.starts_with("http://127.0.0.1:") => server.issuer = issuer,
            _ => server.fail(&format!(
                "unexpected ready line from the OIDC test server: {line:?}"
            )),
        }

        let discovery_url = format!("{}/.well-known/openid-configuration", server.issuer);
        let (status, discovery) = server.get_json(&discovery_url);
        if status != 200 || !discovery.is_object() {
            server.fail(&format!(
                "GET {discovery_url} answered {status}: {discovery}"
            ));
        }
        server.discovery = discovery;
        server
    }

    /// The issuer, `http://127.0.0.1:PORT` (no trailing slash).
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The discovery document (`/.well-known/openid-configuration`), fetched once at start.
    #[must_use]
    pub fn discovery(&self) -> &Value {
        &self.discovery
    }

    /// The token endpoint, from the discovery document.
    #[must_use]
    pub fn token_url(&self) -> String {
        self.endpoint("token_endpoint")
    }

    /// The RFC 7009 revocation endpoint, from the discovery document.
    #[must_use]
    pub fn revocation_url(&self) -> String {
        self.endpoint("revocation_endpoint")
    }

    /// Mints a fresh refresh token for client [`APP`] (account `tester`, scopes
    /// `openid offline_access api.read`, resource [`DEFAULT_RESOURCE`]); usable once with
    /// `grant_type=refresh_token` and [`APP`]'s Basic credentials.
    #[must_use]
    pub fn mint_refresh_token(&self) -> String {
        let url = format!("{}/__test/refresh-token", self.issuer);
        let (status, body) = self.send(&url, self.agent.post(&url).send_empty());
        match body.get("refresh_token").and_then(Value::as_str) {
            Some(token) if status == 200 => token.to_owned(),
            _ => self.fail(&format!("POST {url} answered {status}: {body}")),
        }
    }

    /// How many requests reached the token endpoint since start or the last
    /// [`OidcServer::reset_stats`].
    #[must_use]
    pub fn token_requests(&self) -> u64 {
        let stats = self.stats();
        match stats.get("token_requests").and_then(Value::as_u64) {
            Some(n) => n,
            None => self.fail(&format!("no token_requests in the stats: {stats}")),
        }
    }

    /// The server's counters: `token_requests`, `by_grant` (per `grant_type`), `by_auth_method`
    /// (`client_secret_basic`, `client_secret_post`, `none`, ...), `failures` (token responses with
    /// status >= 400), `errors` (per OAuth error code) and `revocation_requests`.
    #[must_use]
    pub fn stats(&self) -> Value {
        let url = format!("{}/__test/stats", self.issuer);
        let (status, body) = self.get_json(&url);
        if status != 200 {
            self.fail(&format!("GET {url} answered {status}: {body}"));
        }
        body
    }

    /// Every successful `refresh_token` grant so far, in order: the refresh token presented and
    /// the access and refresh tokens issued for it.
    #[must_use]
    pub fn refresh_chain(&self) -> Vec<Refresh> {
        let url = format!("{}/__test/refresh-chain", self.issuer);
        let (status, body) = self.get_json(&url);
        if status != 200 {
            self.fail(&format!("GET {url} answered {status}: {body}"));
        }
        let text =
            |entry: &Value, field: &str| entry[field].as_str().unwrap_or_default().to_owned();
        body["refreshes"]
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|entry| Refresh {
                        used: text(entry, "used"),
                        access_token: text(entry, "access_token"),
                        refresh_token: text(entry, "refresh_token"),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Zeroes the server's counters.
    pub fn reset_stats(&self) {
        let url = format!("{}/__test/reset-stats", self.issuer);
        let (status, body) = self.send(&url, self.agent.post(&url).send_empty());
        if status != 200 {
            self.fail(&format!("POST {url} answered {status}: {body}"));
        }
    }

    /// Revokes `token` (RFC 7009, `token_type_hint=refresh_token`) as client [`APP`]. Revoking a
    /// refresh token revokes its whole grant.
    pub fn revoke_refresh_token(&self, token: &str) {
        let url = self.revocation_url();
        let reply = post_form(
            &self.agent,
            &url,
            Some(APP),
            &[("token", token), ("token_type_hint", "refresh_token")],
        );
        if reply.status != 200 {
            self.fail(&format!(
                "revoking at {url} answered {}: {}",
                reply.status, reply.body
            ));
        }
    }

    /// The server's log so far (its stderr).
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last lines of the server's log, for failure messages.
    #[must_use]
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn endpoint(&self, name: &str) -> String {
        match self.discovery.get(name).and_then(Value::as_str) {
            Some(url) => url.to_owned(),
            None => self.fail(&format!("the discovery document has no {name}")),
        }
    }

    fn get_json(&self, url: &str) -> (u16, Value) {
        self.send(url, self.agent.get(url).call())
    }

    fn send(
        &self,
        url: &str,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> (u16, Value) {
        match read_reply(result) {
            Ok(reply) => (reply.status, reply.body),
            Err(err) => self.fail(&format!("request to {url} failed: {err}")),
        }
    }

    fn fail(&self, what: &str) -> ! {
        panic!(
            "{what}\n--- OIDC test server log ({}), last lines ---\n{}\n---",
            self.log.display(),
            self.log_tail()
        )
    }
}

impl Drop for OidcServer {
    fn drop(&mut self) {
        // Closing stdin asks the server to exit; kill it if it has not within a short bound.
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `tests/oidc`, next to this crate's manifest.
#[must_use]
pub fn oidc_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("oidc")
}

/// An HTTP response: its status and its body parsed as JSON (`Value::Null` for an empty body, a
/// JSON string holding the text for a body that is not JSON).
#[derive(Debug, Clone)]
pub struct HttpReply {
    /// The HTTP status code.
    pub status: u16,
    /// The body.
    pub body: Value,
}

impl HttpReply {
    /// The body's `field` as a string, if it is one.
    #[must_use]
    pub fn str(&self, field: &str) -> Option<&str> {
        self.body.get(field).and_then(Value::as_str)
    }
}

/// A blocking HTTP client for talking to the test server directly: no proxy (the environment's
/// proxy variables are ignored), no redirects, every status returned as a response rather than
/// an error, [`HTTP_TIMEOUT`] per request.
#[must_use]
pub fn http_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .proxy(None)
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(HTTP_TIMEOUT))
        .build()
        .into()
}

/// POSTs an `application/x-www-form-urlencoded` form to `url`, authenticating with HTTP Basic
/// (`client_secret_basic`) when `basic` is given.
///
/// # Panics
///
/// If the request fails below HTTP (connection refused, timeout).
#[must_use]
pub fn post_form(
    agent: &ureq::Agent,
    url: &str,
    basic: Option<TestClient>,
    form: &[(&str, &str)],
) -> HttpReply {
    let mut request = agent.post(url);
    if let Some(client) = basic {
        request = request.header("Authorization", basic_auth(client.id, client.secret));
    }
    read_reply(request.send_form(form.iter().copied()))
        .unwrap_or_else(|err| panic!("POST {url} failed: {err}"))
}

/// The `Authorization` header value for `client_secret_basic` (RFC 6749 section 2.3.1: id and
/// secret are form-urlencoded before being joined and base64-encoded).
#[must_use]
pub fn basic_auth(client_id: &str, client_secret: &str) -> String {
    let pair = format!("{}:{}", form_encode(client_id), form_encode(client_secret));
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// Decodes the claims (payload) of a JWT without verifying it.
///
/// # Panics
///
/// If `jwt` is not three dot-separated base64url parts with a JSON object in the middle.
#[must_use]
pub fn jwt_claims(jwt: &str) -> Value {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "not a JWS compact serialization: {jwt:?}");
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[1])
        .unwrap_or_else(|err| panic!("JWT payload is not base64url ({err}): {jwt:?}"));
    let claims: Value = serde_json::from_slice(&payload)
        .unwrap_or_else(|err| panic!("JWT payload is not JSON ({err}): {jwt:?}"));
    assert!(claims.is_object(), "JWT payload is not an object: {claims}");
    claims
}

fn read_reply(
    result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<HttpReply, ureq::Error> {
    let mut response = result?;
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string()?;
    let body = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Ok(HttpReply { status, body })
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(char::from(byte));
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}
