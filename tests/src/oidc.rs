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
//!
//! Interactive logins (for the daemon's authorization-code and device-flow logins):
//!
//! * [`CLI`]: a public native client (no secret, `client_id` in the form), authorization code
//!   with PKCE S256 (required), refresh token and device flow; its redirect URI
//!   [`LOOPBACK_REDIRECT`] is accepted on any port (RFC 8252 §7.3);
//! * [`PKJWT`]: `private_key_jwt` (RS256, key [`PKJWT_KEY`]), client credentials, authorization
//!   code, refresh token and device flow;
//! * the RFC 7523 §2.1 JWT bearer grant ([`JWT_BEARER_GRANT`]) for assertions signed with
//!   [`JWT_BEARER_KEY`] whose `iss` is [`SERVICE_ACCOUNT`], as client [`SA`] (public) or
//!   [`SVC_BASIC`];
//! * headless drivers of oidc-provider's development login and consent pages:
//!   [`OidcServer::approve_login`], [`OidcServer::deny_login`] (stop at the redirect to the
//!   client, see [`deliver_redirect`]), [`OidcServer::approve_device`] and
//!   [`OidcServer::deny_device`];
//! * with `AZURE_TENANT` in [`OidcServer::start_with_env`], the Azure AD v2.0 endpoint layout
//!   under [`OidcServer::azure_authority`].
//!
//! What a client of these logins must respect (all proven in `tests/tests/oidc_harness.rs`):
//!
//! * the loopback redirect URI is `http://127.0.0.1:PORT/callback`, any port, for the native
//!   clients only ([`APP`] is a web client: exact match); the redirect carries `code`, `state`
//!   and `iss` (RFC 9207);
//! * PKCE: S256 only, required for [`CLI`] (a missing challenge is an `invalid_request` error
//!   redirect), checked when sent by confidential clients;
//! * a refresh token needs `offline_access` in the scope (the server adds `prompt=consent` when
//!   no `prompt` is given; an explicit `prompt=login` drops `offline_access`); `resource` is not
//!   needed: access tokens are JWTs for [`DEFAULT_RESOURCE`], and the token response's `scope`
//!   lists the resource's scopes only (`api.read`);
//! * authorization and device codes are single-use, and reusing one revokes its whole grant
//!   (refresh tokens included); refresh tokens rotate on every use;
//! * public clients revoke with `client_id` in the form (RFC 7009, 200 even for unknown tokens);
//! * `private_key_jwt` assertions are single-use (a replayed `jti` is `invalid_client`, 401).

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

/// Public native client: authorization code (PKCE S256 required), refresh token and device flow
/// (RFC 8628), scopes `openid offline_access api.read`, redirect URI [`LOOPBACK_REDIRECT`] on any
/// port. No secret: it sends `client_id` in the form (token, device authorization and revocation
/// endpoints alike).
pub const CLI: TestClient = TestClient {
    id: "cli",
    secret: "",
};

/// Confidential client authenticating with `private_key_jwt` (RFC 7523 §2.2): RS256 assertions
/// signed with [`fixture_key`]`(`[`PKJWT_KEY`]`)`, `iss` = `sub` = `pkjwt`, `aud` = the token
/// endpoint URL or the issuer, `exp` and a unique `jti`. Client credentials, authorization code,
/// refresh token and device flow; scopes `openid offline_access api.read api.write`; redirect URI
/// [`LOOPBACK_REDIRECT`] on any port. No secret.
pub const PKJWT: TestClient = TestClient {
    id: "pkjwt",
    secret: "",
};

/// Public client for the JWT bearer grant only ([`JWT_BEARER_GRANT`]): sends `client_id=sa` in the
/// form, no other authentication; scopes `api.read api.write`. ([`SVC_BASIC`] may use the grant
/// too, with its secret.)
pub const SA: TestClient = TestClient {
    id: "sa",
    secret: "",
};

/// The token exchange grant only ([`TOKEN_EXCHANGE_GRANT`], RFC 8693), `client_secret_post`,
/// scopes `api.read api.write`.
pub const EXCHANGER: TestClient = TestClient {
    id: "exchanger",
    secret: "exchanger-secret",
};

/// `grant_type` of the RFC 8693 token exchange grant.
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// The redirect URI registered for [`CLI`], [`PKJWT`] and [`APP`]; for the native clients any
/// port may be added (`http://127.0.0.1:PORT/callback`).
pub const LOOPBACK_REDIRECT: &str = "http://127.0.0.1/callback";

/// The only `iss` the JWT bearer grant accepts in an assertion.
pub const SERVICE_ACCOUNT: &str = "svc-account@tokend.test";

/// `grant_type` of the RFC 7523 §2.1 JWT bearer authorization grant.
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// `grant_type` of the RFC 8628 device access token request.
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// `client_assertion_type` of RFC 7523 §2.2 client authentication.
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// [`PKJWT`]'s private key: RSA 2048, PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), RS256. The
/// public half is `pkjwt-public.jwk.json` (kid `pkjwt-test-key`) in the same directory.
pub const PKJWT_KEY: &str = "pkjwt-private.pem";

/// The JWT bearer grant's signing key: RSA 2048, PKCS#8 PEM, RS256. The public half is
/// `jwt-bearer-public.jwk.json` (kid `jwt-bearer-test-key`) in the same directory.
pub const JWT_BEARER_KEY: &str = "jwt-bearer-private.pem";

/// At most this many pages and redirects per headless login ([`OidcServer::approve_login`] and
/// friends).
pub const MAX_LOGIN_STEPS: usize = 20;

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
    azure_tenant: Option<String>,
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
    /// `REFRESH_TOKEN_TTL`, `ID_TOKEN_TTL`, `DEVICE_CODE_TTL`, `DEVICE_INTERVAL`,
    /// `DEVICE_SLOW_DOWN`, `AZURE_TENANT`; see the header of `tests/oidc/server.mjs`).
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
            .env_remove("DEVICE_CODE_TTL")
            .env_remove("DEVICE_INTERVAL")
            .env_remove("DEVICE_SLOW_DOWN")
            .env_remove("AZURE_TENANT")
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

        let azure_tenant = env
            .iter()
            .find(|(name, _)| *name == "AZURE_TENANT")
            .map(|(_, value)| (*value).to_owned())
            .filter(|value| !value.is_empty());
        let mut server = Self {
            child,
            azure_tenant,
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

    /// A `[providers.user]` table: grant `refresh_token` for the [`APP`] client, the secret and
    /// refresh token from `E2E_CLIENT_SECRET` and `E2E_REFRESH_TOKEN`, plus `extra` lines.
    #[must_use]
    pub fn refresh_token_provider(&self, extra: &str) -> String {
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
            self.token_url(),
            APP.id
        )
    }

    /// The RFC 7009 revocation endpoint, from the discovery document.
    #[must_use]
    pub fn revocation_url(&self) -> String {
        self.endpoint("revocation_endpoint")
    }

    /// The authorization endpoint, from the discovery document.
    #[must_use]
    pub fn authorization_url(&self) -> String {
        self.endpoint("authorization_endpoint")
    }

    /// The RFC 8628 device authorization endpoint, from the discovery document.
    #[must_use]
    pub fn device_authorization_url(&self) -> String {
        self.endpoint("device_authorization_endpoint")
    }

    /// The tenant given as `AZURE_TENANT` to [`OidcServer::start_with_env`], if any.
    #[must_use]
    pub fn azure_tenant(&self) -> Option<&str> {
        self.azure_tenant.as_deref()
    }

    /// The Azure AD "authority" (the issuer, `http://127.0.0.1:PORT`) under which the server
    /// serves `/{tenant}/oauth2/v2.0/{authorize,token,devicecode,logout}`.
    ///
    /// # Panics
    ///
    /// If the server was not started with `AZURE_TENANT`.
    #[must_use]
    pub fn azure_authority(&self) -> String {
        if self.azure_tenant.is_none() {
            self.fail("azure_authority(): the server was started without AZURE_TENANT");
        }
        self.issuer.clone()
    }

    /// `{authority}/{tenant}/oauth2/v2.0/{endpoint}` (`authorize`, `token`, `devicecode`,
    /// `logout`), the URL an Azure AD client builds.
    ///
    /// # Panics
    ///
    /// If the server was not started with `AZURE_TENANT`.
    #[must_use]
    pub fn azure_url(&self, endpoint: &str) -> String {
        let authority = self.azure_authority();
        let tenant = self.azure_tenant.as_deref().unwrap_or_default();
        format!("{authority}/{tenant}/oauth2/v2.0/{endpoint}")
    }

    /// Logs `account` in (any password) on oidc-provider's development login page and grants
    /// consent, the way a user's browser would after opening `authorization_url` (as printed by
    /// the daemon), with a fresh cookie jar. Redirects on the provider's origin are followed; the
    /// first redirect elsewhere (the client's `redirect_uri`, carrying `code` and `state`, or
    /// `error`) is returned as an absolute URL **without being requested**: hand it to
    /// [`deliver_redirect`], tampered with or not.
    ///
    /// # Errors
    ///
    /// A description (with the page's text) when a request fails, the provider answers an error
    /// page (e.g. an unregistered `redirect_uri`), a page is neither the login nor the consent
    /// form, or the flow takes more than [`MAX_LOGIN_STEPS`] steps.
    pub fn approve_login(&self, authorization_url: &str, account: &str) -> Result<String, String> {
        let mut browser = Browser::new(&self.issuer);
        let page = browser.get(authorization_url)?;
        match browser.drive(page, account, Consent::Grant)? {
            Driven::Redirect(location) => Ok(location),
            Driven::Page(page) => Err(format!(
                "the login ended on a page instead of a redirect to the client: {}",
                page.describe()
            )),
        }
    }

    /// Like [`OidcServer::approve_login`] (as account `tester`), but aborts at the consent page
    /// (devInteractions' abort route): returns the error redirect to the client
    /// (`error=access_denied`, `state`), not requested.
    ///
    /// # Errors
    ///
    /// As [`OidcServer::approve_login`].
    pub fn deny_login(&self, authorization_url: &str) -> Result<String, String> {
        let mut browser = Browser::new(&self.issuer);
        let page = browser.get(authorization_url)?;
        match browser.drive(page, "tester", Consent::Abort)? {
            Driven::Redirect(location) => Ok(location),
            Driven::Page(page) => Err(format!(
                "the denied login ended on a page instead of a redirect to the client: {}",
                page.describe()
            )),
        }
    }

    /// Approves a device authorization (RFC 8628) the way a user would on the verification page:
    /// enters `user_code` on `/device`, confirms, logs `account` in and grants consent. The
    /// device's next poll gets its tokens.
    ///
    /// # Errors
    ///
    /// A description when the user code is unknown, expired or already used, a request fails,
    /// or the flow does not end on the success page within [`MAX_LOGIN_STEPS`] steps.
    pub fn approve_device(&self, user_code: &str, account: &str) -> Result<(), String> {
        let mut browser = Browser::new(&self.issuer);
        let (action, xsrf) = browser.device_confirm_form(&self.issuer, user_code)?;
        let page = browser.post(
            &action,
            &[
                ("xsrf", xsrf.as_str()),
                ("user_code", user_code),
                ("confirm", "yes"),
            ],
        )?;
        match browser.drive(page, account, Consent::Grant)? {
            Driven::Page(page) if page.status == 200 && page.body.contains("Sign-in Success") => {
                Ok(())
            }
            Driven::Page(page) => Err(format!(
                "the device login did not end on the success page: {}",
                page.describe()
            )),
            Driven::Redirect(location) => Err(format!(
                "the device login redirected away from the provider: {location}"
            )),
        }
    }

    /// Denies a device authorization: enters `user_code` on `/device` and presses "Abort" on the
    /// confirmation page. The device's next poll is answered `access_denied`.
    ///
    /// # Errors
    ///
    /// A description when the user code is unknown, expired or already used, or the abort is
    /// not acknowledged.
    pub fn deny_device(&self, user_code: &str) -> Result<(), String> {
        let mut browser = Browser::new(&self.issuer);
        let (action, xsrf) = browser.device_confirm_form(&self.issuer, user_code)?;
        let page = browser.post(
            &action,
            &[
                ("xsrf", xsrf.as_str()),
                ("user_code", user_code),
                ("confirm", "yes"),
                ("abort", "yes"),
            ],
        )?;
        if page.body.contains("interrupted") {
            Ok(())
        } else {
            Err(format!(
                "the device abort was not acknowledged: {}",
                page.describe()
            ))
        }
    }

    /// Revokes `token` (RFC 7009) as the public client `client` (`client_id` in the form, no
    /// other authentication), with `token_type_hint` `hint`; returns the reply (200 with an empty
    /// body on success, also for unknown tokens).
    #[must_use]
    pub fn revoke_as_public_client(
        &self,
        client: TestClient,
        token: &str,
        hint: &str,
    ) -> HttpReply {
        post_form(
            &self.agent,
            &self.revocation_url(),
            None,
            &[
                ("client_id", client.id),
                ("token", token),
                ("token_type_hint", hint),
            ],
        )
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

/// `tests/fixtures/oidc/<name>`: the committed test keys ([`PKJWT_KEY`], [`JWT_BEARER_KEY`] and
/// their `*-public.jwk.json` halves).
#[must_use]
pub fn fixture_key(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/oidc")
        .join(name)
}

/// Requests `location` (a redirect [`OidcServer::approve_login`] or [`OidcServer::deny_login`]
/// returned) the way the browser would: a plain GET without cookies or redirects, to the
/// daemon's loopback listener. Returns the status and the body as text.
///
/// # Errors
///
/// A description when the request fails below HTTP (connection refused, timeout).
pub fn deliver_redirect(location: &str) -> Result<(u16, String), String> {
    let mut response = http_agent()
        .get(location)
        .call()
        .map_err(|err| format!("GET {location} failed: {err}"))?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .read_to_string()
        .map_err(|err| format!("reading the answer of GET {location}: {err}"))?;
    Ok((status, body))
}

/// The first value of query parameter `name` in `url`, decoded.
#[must_use]
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    url.query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// A random base64url string of `bytes` random bytes (for `state`, `jti`, PKCE verifiers).
///
/// # Panics
///
/// If the system's random source fails.
#[must_use]
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0_u8; bytes];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut buf)
        .expect("system randomness");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// A fresh PKCE pair (RFC 7636): `(code_verifier, code_challenge)` for
/// `code_challenge_method=S256`.
#[must_use]
pub fn pkce_pair() -> (String, String) {
    let verifier = random_token(32);
    (verifier.clone(), pkce_challenge(&verifier))
}

/// The S256 `code_challenge` of `verifier`: base64url(SHA-256(verifier)).
#[must_use]
pub fn pkce_challenge(verifier: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// Seconds since the Unix epoch.
#[must_use]
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// Signs `claims` as an RS256 JWS (compact) with the PKCS#8 PEM RSA private key at `pem`, header
/// `{"alg":"RS256","typ":"JWT"}` plus `kid` when given.
///
/// # Panics
///
/// If the key cannot be read or is not a PKCS#8 RSA key, or `claims` is not an object.
#[must_use]
pub fn sign_rs256(pem: &Path, kid: Option<&str>, claims: &Value) -> String {
    assert!(claims.is_object(), "JWT claims must be an object: {claims}");
    let text = std::fs::read_to_string(pem)
        .unwrap_or_else(|err| panic!("reading {}: {err}", pem.display()));
    let b64: String = text
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .unwrap_or_else(|err| panic!("{} is not PEM ({err})", pem.display()));
    let key = ring::signature::RsaKeyPair::from_pkcs8(&der)
        .unwrap_or_else(|err| panic!("{} is not a PKCS#8 RSA key: {err}", pem.display()));
    let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
    if let Some(kid) = kid {
        header["kid"] = Value::String(kid.to_owned());
    }
    let b64url = |value: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string().as_bytes())
    };
    let signing_input = format!("{}.{}", b64url(&header), b64url(claims));
    let mut signature = vec![0_u8; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signing_input.as_bytes(),
        &mut signature,
    )
    .expect("RS256 signature");
    format!(
        "{signing_input}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signature)
    )
}

/// Verifies a compact JWS signed with the RSA key at `pem` (the PKCS#8 private half: its public
/// half is derived) with `alg` (`RS256` or `PS256`, which the header must name); returns the
/// header and the claims. For HTTP fakes that check what tokend signs.
///
/// # Errors
///
/// Why the JWT does not verify.
pub fn verify_jwt(jwt: &str, pem: &Path, alg: &str) -> Result<(Value, Value), String> {
    let text = std::fs::read_to_string(pem).map_err(|err| format!("{}: {err}", pem.display()))?;
    let b64: String = text
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|err| err.to_string())?;
    let key = ring::signature::RsaKeyPair::from_pkcs8(&der).map_err(|err| err.to_string())?;
    let mut parts = jwt.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not a compact JWS".to_owned());
    };
    let decode = |part: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|err| format!("not base64url: {err}"))
    };
    let header_json: Value =
        serde_json::from_slice(&decode(header)?).map_err(|err| err.to_string())?;
    if header_json["alg"] != alg {
        return Err(format!("header alg is {}, not {alg}", header_json["alg"]));
    }
    let algorithm: &dyn ring::signature::VerificationAlgorithm = match alg {
        "RS256" => &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        "PS256" => &ring::signature::RSA_PSS_2048_8192_SHA256,
        other => return Err(format!("unsupported alg {other}")),
    };
    ring::signature::UnparsedPublicKey::new(algorithm, key.public().as_ref())
        .verify(format!("{header}.{claims}").as_bytes(), &decode(signature)?)
        .map_err(|_| "the signature does not verify with the public key".to_owned())?;
    let claims: Value = serde_json::from_slice(&decode(claims)?).map_err(|err| err.to_string())?;
    Ok((header_json, claims))
}

/// A `private_key_jwt` client assertion for [`PKJWT`] addressed to `audience` (the token
/// endpoint URL), valid 60 s, with a fresh `jti`.
#[must_use]
pub fn pkjwt_assertion(audience: &str) -> String {
    let now = now_secs();
    sign_rs256(
        &fixture_key(PKJWT_KEY),
        Some("pkjwt-test-key"),
        &serde_json::json!({
            "iss": PKJWT.id,
            "sub": PKJWT.id,
            "aud": audience,
            "iat": now,
            "exp": now + 60,
            "jti": random_token(16),
        }),
    )
}

// ---- the headless browser ---------------------------------------------------------------------

/// What to do at the consent page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Consent {
    Grant,
    Abort,
}

/// Where [`Browser::drive`] stopped.
#[derive(Debug)]
enum Driven {
    /// A redirect off the provider's origin (absolute URL), not followed.
    Redirect(String),
    /// A page that is neither the login nor the consent form.
    Page(Page),
}

/// One HTTP response as the browser saw it.
#[derive(Debug)]
struct Page {
    url: String,
    status: u16,
    /// The absolute `Location` of a 3xx answer.
    location: Option<String>,
    body: String,
}

impl Page {
    fn describe(&self) -> String {
        let text = html_text(&self.body);
        let text: String = text.chars().take(600).collect();
        format!("{} answered {}: {text}", self.url, self.status)
    }
}

/// A minimal cookie-keeping browser for the provider's pages: one per login, no redirects
/// followed by itself, every request bounded by [`HTTP_TIMEOUT`].
#[derive(Debug)]
struct Browser {
    agent: ureq::Agent,
    origin: String,
    /// (name, value, path)
    cookies: Vec<(String, String, String)>,
    steps: usize,
}

impl Browser {
    fn new(issuer: &str) -> Self {
        Self {
            agent: http_agent(),
            origin: origin_of(issuer).unwrap_or_else(|| issuer.to_owned()),
            cookies: Vec::new(),
            steps: 0,
        }
    }

    fn get(&mut self, url: &str) -> Result<Page, String> {
        self.request(url, None)
    }

    fn post(&mut self, url: &str, form: &[(&str, &str)]) -> Result<Page, String> {
        self.request(url, Some(form))
    }

    fn request(&mut self, url: &str, form: Option<&[(&str, &str)]>) -> Result<Page, String> {
        self.steps += 1;
        if self.steps > MAX_LOGIN_STEPS {
            return Err(format!(
                "the login took more than {MAX_LOGIN_STEPS} requests (last: {url})"
            ));
        }
        let parsed = url::Url::parse(url).map_err(|err| format!("bad URL {url:?}: {err}"))?;
        if origin_of(url).as_deref() != Some(self.origin.as_str()) {
            return Err(format!(
                "refusing to request {url}: not on the provider's origin {}",
                self.origin
            ));
        }
        let cookie = self.cookie_header(parsed.path());
        let result = match form {
            Some(form) => {
                let mut request = self.agent.post(url);
                if let Some(cookie) = &cookie {
                    request = request.header("Cookie", cookie);
                }
                request.send_form(form.iter().copied())
            }
            None => {
                let mut request = self.agent.get(url);
                if let Some(cookie) = &cookie {
                    request = request.header("Cookie", cookie);
                }
                request.call()
            }
        };
        let method = if form.is_some() { "POST" } else { "GET" };
        let mut response = result.map_err(|err| format!("{method} {url} failed: {err}"))?;
        let status = response.status().as_u16();
        for value in response.headers().get_all("set-cookie") {
            if let Ok(value) = value.to_str() {
                self.store_cookie(value);
            }
        }
        let location = match response.headers().get("location") {
            Some(value) if (300..400).contains(&status) => {
                let value = value
                    .to_str()
                    .map_err(|_| format!("{method} {url}: Location is not text"))?;
                let absolute = parsed
                    .join(value)
                    .map_err(|err| format!("{method} {url}: bad Location {value:?}: {err}"))?;
                Some(absolute.to_string())
            }
            _ => None,
        };
        let body = response
            .body_mut()
            .read_to_string()
            .map_err(|err| format!("reading the answer of {method} {url}: {err}"))?;
        Ok(Page {
            url: url.to_owned(),
            status,
            location,
            body,
        })
    }

    fn cookie_header(&self, path: &str) -> Option<String> {
        let pairs: Vec<String> = self
            .cookies
            .iter()
            .filter(|(_, _, cookie_path)| path_matches(path, cookie_path))
            .map(|(name, value, _)| format!("{name}={value}"))
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }

    fn store_cookie(&mut self, header: &str) {
        let mut parts = header.split(';');
        let Some((name, value)) = parts.next().and_then(|pair| pair.split_once('=')) else {
            return;
        };
        let (name, value) = (name.trim().to_owned(), value.trim().to_owned());
        let mut path = "/".to_owned();
        let mut removed = value.is_empty();
        for attribute in parts {
            let (key, val) = attribute.split_once('=').unwrap_or((attribute, ""));
            let (key, val) = (key.trim().to_ascii_lowercase(), val.trim());
            match key.as_str() {
                "path" if val.starts_with('/') => path = val.to_owned(),
                "max-age" if val.parse::<i64>().is_ok_and(|age| age <= 0) => removed = true,
                "expires" if val.contains("1970") => removed = true,
                _ => {}
            }
        }
        self.cookies.retain(|(n, _, p)| !(*n == name && *p == path));
        if !removed {
            self.cookies.push((name, value, path));
        }
    }

    /// Follows `page` through redirects on the provider's origin and the login and consent
    /// forms until a redirect leaves the origin or a page is neither form.
    fn drive(&mut self, mut page: Page, account: &str, consent: Consent) -> Result<Driven, String> {
        loop {
            if let Some(location) = page.location.take() {
                if origin_of(&location).as_deref() != Some(self.origin.as_str()) {
                    return Ok(Driven::Redirect(location));
                }
                page = self.get(&location)?;
                continue;
            }
            if page.status != 200 {
                return Ok(Driven::Page(page));
            }
            let Some(form) = interaction_form(&page.body) else {
                return Ok(Driven::Page(page));
            };
            let action = url::Url::parse(&page.url)
                .and_then(|base| base.join(&form.action))
                .map_err(|err| format!("bad form action {:?}: {err}", form.action))?
                .to_string();
            page = match (form.prompt.as_str(), consent) {
                ("login", _) => self.post(
                    &action,
                    &[
                        ("prompt", "login"),
                        ("login", account),
                        ("password", "any-password"),
                    ],
                )?,
                ("consent", Consent::Grant) => self.post(&action, &[("prompt", "consent")])?,
                ("consent", Consent::Abort) => {
                    self.get(&format!("{}/abort", action.trim_end_matches('/')))?
                }
                (other, _) => {
                    return Err(format!(
                        "unexpected interaction prompt {other:?}: {}",
                        page.describe()
                    ));
                }
            };
        }
    }

    /// Enters `user_code` on the provider's `/device` page; returns the confirmation form's
    /// action and xsrf token.
    fn device_confirm_form(
        &mut self,
        issuer: &str,
        user_code: &str,
    ) -> Result<(String, String), String> {
        let page = self.get(&format!("{issuer}/device"))?;
        let (action, xsrf) = device_form(&page, "op.deviceInputForm")?;
        let page = self.post(&action, &[("xsrf", &xsrf), ("user_code", user_code)])?;
        device_form(&page, "op.deviceConfirmForm")
    }
}

/// A devInteractions form: its action and its hidden `prompt` (`login` or `consent`).
#[derive(Debug)]
struct InteractionForm {
    action: String,
    prompt: String,
}

fn interaction_form(html: &str) -> Option<InteractionForm> {
    let start = html.find("<form")?;
    let form = &html[start..];
    let form = &form[..form.find("</form>").unwrap_or(form.len())];
    let action = attribute(form, "action")?;
    let marker = "name=\"prompt\" value=\"";
    let at = form.find(marker)? + marker.len();
    let prompt = form[at..].split('"').next()?.to_owned();
    Some(InteractionForm { action, prompt })
}

/// The action and hidden `xsrf` value of the device form with id `id`.
fn device_form(page: &Page, id: &str) -> Result<(String, String), String> {
    let not_found = || {
        format!(
            "no device form {id:?} on the page (wrong, expired or used user code?): {}",
            page.describe()
        )
    };
    if page.status != 200 {
        return Err(not_found());
    }
    let start = page
        .body
        .find(&format!("id=\"{id}\""))
        .ok_or_else(not_found)?;
    let form_start = page.body[..start].rfind("<form").ok_or_else(not_found)?;
    let form = &page.body[form_start..];
    let form = &form[..form.find("</form>").unwrap_or(form.len())];
    let action = attribute(form, "action").ok_or_else(not_found)?;
    let marker = "name=\"xsrf\" value=\"";
    let at = form.find(marker).ok_or_else(not_found)? + marker.len();
    let xsrf = form[at..].split('"').next().unwrap_or_default().to_owned();
    let action = url::Url::parse(&page.url)
        .and_then(|base| base.join(&action))
        .map_err(|err| format!("bad device form action {action:?}: {err}"))?;
    Ok((action.to_string(), xsrf))
}

/// The (HTML-unescaped) value of the first `name="..."` attribute in `html`.
fn attribute(html: &str, name: &str) -> Option<String> {
    let marker = format!("{name}=\"");
    let at = html.find(&marker)? + marker.len();
    let raw = html[at..].split('"').next()?;
    Some(
        raw.replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

/// An HTML page's text, tags dropped and whitespace collapsed, for error messages.
fn html_text(html: &str) -> String {
    let mut text = String::with_capacity(html.len());
    let mut in_tag = false;
    let mut in_style = false;
    let lower = html.to_ascii_lowercase();
    let mut index = 0;
    for ch in html.chars() {
        if ch == '<' {
            in_tag = true;
            let rest = &lower[index..];
            if rest.starts_with("<style") || rest.starts_with("<script") {
                in_style = true;
            } else if rest.starts_with("</style") || rest.starts_with("</script") {
                in_style = false;
            }
        } else if ch == '>' {
            in_tag = false;
            text.push(' ');
        } else if !in_tag && !in_style {
            text.push(ch);
        }
        index += ch.len_utf8();
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `scheme://host:port` of `url`.
fn origin_of(url: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    Some(url.origin().ascii_serialization())
}

/// RFC 6265 §5.1.4 path-match.
fn path_matches(request_path: &str, cookie_path: &str) -> bool {
    request_path == cookie_path
        || (request_path.starts_with(cookie_path)
            && (cookie_path.ends_with('/')
                || request_path.as_bytes().get(cookie_path.len()) == Some(&b'/')))
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
