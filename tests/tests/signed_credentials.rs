//! The credentials people hold that tokend signs with, against HTTP fakes of the vendors' APIs
//! that check every request detail (the signatures with the keys' public halves, the claims and
//! their time bounds), through the real `tokend` and `tok`: a GitHub App (app JWT, installation
//! lookup, installation token with an RFC 3339 expiry, its git route), a Google service account
//! key file (RFC 7523 JWT bearer, access and ID tokens), and an Entra ID certificate credential
//! (a PS256 client assertion with the certificate's thumbprints).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde_json::{Value, json};
use tokend_e2e::oidc::{JWT_BEARER_KEY, PKJWT_KEY, fixture_key, now_secs, verify_jwt};
use tokend_e2e::{Daemon, code, run_with_input, stderr, stdout, write_private};
use tokend_protocol::clock::rfc3339;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

type Check = dyn Fn(&Request) -> Result<ResponseTemplate, String> + Send + Sync;

/// A fake endpoint: `check` answers a request it accepts, or says what is wrong with it (the
/// fake then answers 400 and the test fails on [`Fake::assert_no_problems`]).
#[derive(Clone)]
struct Fake {
    check: Arc<Check>,
    problems: Arc<Mutex<Vec<String>>>,
}

impl Fake {
    fn new(
        check: impl Fn(&Request) -> Result<ResponseTemplate, String> + Send + Sync + 'static,
    ) -> Self {
        Self {
            check: Arc::new(check),
            problems: Arc::default(),
        }
    }

    fn assert_no_problems(&self) {
        let problems = self.problems.lock().unwrap();
        assert!(
            problems.is_empty(),
            "the fake saw bad requests: {problems:#?}"
        );
    }
}

impl Respond for Fake {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        match (self.check)(request) {
            Ok(template) => template,
            Err(problem) => {
                self.problems.lock().unwrap().push(problem.clone());
                ResponseTemplate::new(400).set_body_json(
                    json!({"error": "invalid_request", "error_description": problem}),
                )
            }
        }
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

fn header<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request
        .headers
        .get(name)
        .and_then(|value| value.to_str().ok())
}

fn form(request: &Request) -> Vec<(String, String)> {
    url::form_urlencoded::parse(&request.body)
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect()
}

fn field<'a>(form: &'a [(String, String)], key: &str) -> Result<&'a str, String> {
    form.iter()
        .find(|(name, _)| name == key)
        .map(|(_, value)| value.as_str())
        .ok_or_else(|| format!("no `{key}` in the form"))
}

/// A copy of a fixture key (or any file) that `${file:…}` accepts: mode 0600.
fn private_copy(dir: &Path, source: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    write_private(&path, &std::fs::read_to_string(source).unwrap());
    path
}

// ---- GitHub App ---------------------------------------------------------------------------------

const APP_ID: u64 = 123_456;

/// GitHub's REST API as far as an App's installation token goes (under a GitHub Enterprise
/// Server style base path, `/api/v3`): every request must carry an app JWT signed with the
/// App's key (RS256), `iss` = the app id, `iat` about 60 s in the past and `exp` no more than
/// 10 minutes ahead. The App is installed on the user `acme` (so the organization lookup is a
/// 404), as installation `installed` (42 at first; another one answers 404).
fn github(key: PathBuf, tokens: Arc<Mutex<u32>>, installed: Arc<Mutex<u64>>) -> Fake {
    Fake::new(move |request| {
        let path = request.url.path();
        let bearer = header(request, "authorization")
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or("no Authorization: Bearer")?;
        let (_, claims) = verify_jwt(bearer, &key, "RS256")?;
        let now = now_secs();
        let (iat, exp) = (
            claims["iat"].as_u64().ok_or("no iat")?,
            claims["exp"].as_u64().ok_or("no exp")?,
        );
        if claims["iss"] != APP_ID {
            return Err(format!("iss is {}", claims["iss"]));
        }
        if !(now.saturating_sub(70)..=now.saturating_sub(50)).contains(&iat) {
            return Err(format!("iat {iat} is not about 60 s before {now}"));
        }
        if exp <= now || exp > now + 600 || exp - iat > 600 {
            return Err(format!(
                "exp {exp} is not in (now, now + 10 min] (now {now})"
            ));
        }
        if header(request, "accept") != Some("application/vnd.github+json") {
            return Err("Accept is not application/vnd.github+json".to_owned());
        }
        if header(request, "x-github-api-version") != Some("2022-11-28") {
            return Err("no X-GitHub-Api-Version".to_owned());
        }
        if !header(request, "user-agent").is_some_and(|agent| agent.starts_with("tokend/")) {
            return Err("no User-Agent (GitHub refuses requests without one)".to_owned());
        }
        match (request.method.as_str(), path) {
            ("GET", "/api/v3/orgs/acme/installation") => {
                Ok(ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found"})))
            }
            ("GET", "/api/v3/users/acme/installation") => {
                let id = *installed.lock().unwrap();
                Ok(ResponseTemplate::new(200)
                    .set_body_json(json!({"id": id, "account": {"login": "acme"}})))
            }
            ("POST", path)
                if path
                    .strip_prefix("/api/v3/app/installations/")
                    .and_then(|rest| rest.strip_suffix("/access_tokens"))
                    .is_some_and(|id| id != installed.lock().unwrap().to_string()) =>
            {
                Ok(ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found"})))
            }
            ("POST", path)
                if path.starts_with("/api/v3/app/installations/")
                    && path.ends_with("/access_tokens") =>
            {
                let body: Value =
                    serde_json::from_slice(&request.body).map_err(|_| "the body is not JSON")?;
                let wanted = json!({"repositories": ["tools"], "permissions": {"contents": "read", "pull_requests": "write"}});
                if body != wanted {
                    return Err(format!("body {body} instead of {wanted}"));
                }
                let mut issued = tokens.lock().unwrap();
                *issued += 1;
                Ok(ResponseTemplate::new(201).set_body_json(json!({
                    "token": format!("ghs_installation_token_{issued}"),
                    "expires_at": rfc3339(now + 3600),
                    "permissions": {"contents": "read", "pull_requests": "write"},
                    "repository_selection": "selected",
                })))
            }
            (method, path) => Err(format!("unexpected {method} {path}")),
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_app_installation_tokens_from_a_verified_app_jwt() {
    let server = MockServer::start().await;
    let tokens = Arc::new(Mutex::new(0));
    let installed = Arc::new(Mutex::new(42));
    let fake = github(
        fixture_key(JWT_BEARER_KEY),
        Arc::clone(&tokens),
        Arc::clone(&installed),
    );
    Mock::given(wiremock::matchers::any())
        .respond_with(fake.clone())
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let key = private_copy(dir.path(), &fixture_key(JWT_BEARER_KEY), "app.pem");
    let config = format!(
        r#"
[providers.gh]
preset = "github-app"
app_id = {APP_ID}
private_key = "${{file:{}}}"
owner = "acme"
repositories = ["tools"]
permissions = {{ contents = "read", pull_requests = "write" }}
base_url = "{}/api/v3"
git = {{ host = "github.example.com" }}
"#,
        key.display(),
        server.uri()
    );
    let daemon = Daemon::start(&config);
    let json: Value = serde_json::from_str(
        &blocking({
            let daemon_socket = daemon.socket().to_owned();
            move || {
                let out = tokend_e2e::tok_command(&daemon_socket)
                    .args(["get", "gh", "--json"])
                    .output()
                    .unwrap();
                stdout(&out)
            }
        })
        .await,
    )
    .unwrap_or_else(|_| panic!("tok get failed; daemon log:\n{}", daemon.log()));
    fake.assert_no_problems();
    assert_eq!(json["token"], "ghs_installation_token_1");
    assert_eq!(
        json["header"],
        "Authorization: Bearer ghs_installation_token_1"
    );
    // The expiry is GitHub's `expires_at`.
    let expires = json["expires_at"].as_str().unwrap().to_owned();
    let now = now_secs();
    assert!(
        (now + 3590..=now + 3600).any(|at| rfc3339(at) == expires),
        "{expires}"
    );

    // git gets the token as the password of `x-access-token`.
    let socket = daemon.socket().to_owned();
    let output = blocking(move || {
        let mut command = tokend_e2e::tok_command(&socket);
        command.args(["git-credential", "get"]);
        run_with_input(
            &mut command,
            b"protocol=https\nhost=github.example.com\npath=acme/tools.git\n\n",
        )
    })
    .await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(
        stdout(&output).lines().take(2).collect::<Vec<_>>(),
        [
            "username=x-access-token",
            "password=ghs_installation_token_1"
        ]
    );

    // A new token after invalidation: the installation is not looked up again.
    let socket = daemon.socket().to_owned();
    let token = blocking(move || {
        let invalidate = tokend_e2e::tok_command(&socket)
            .args(["invalidate", "gh"])
            .output()
            .unwrap();
        assert_eq!(code(&invalidate), 0, "{}", stderr(&invalidate));
        stdout(
            &tokend_e2e::tok_command(&socket)
                .args(["get", "gh"])
                .output()
                .unwrap(),
        )
    })
    .await;
    assert_eq!(token.trim(), "ghs_installation_token_2");
    fake.assert_no_problems();
    let requests = server.received_requests().await.unwrap();
    let lookups = requests
        .iter()
        .filter(|request| request.url.path().ends_with("/installation"))
        .count();
    assert_eq!(lookups, 2, "one organization and one user lookup, once");
    assert_eq!(*tokens.lock().unwrap(), 2);

    // The App was uninstalled and installed again, as installation 43: the token request for
    // 42 is a 404 that says so, and the installation is looked up again afterwards.
    *installed.lock().unwrap() = 43;
    let socket = daemon.socket().to_owned();
    let (refused, token) = blocking(move || {
        let tok = |args: &[&str]| {
            tokend_e2e::tok_command(&socket)
                .args(args)
                .output()
                .unwrap()
        };
        // (Each invalidation past the rate limit of one per 5 s.)
        let invalidate = || {
            std::thread::sleep(std::time::Duration::from_secs(5));
            let out = tok(&["invalidate", "gh"]);
            assert!(!stderr(&out).contains("rate limit"), "{}", stderr(&out));
        };
        invalidate();
        let refused = tok(&["get", "gh"]);
        invalidate();
        (refused, tok(&["get", "gh"]))
    })
    .await;
    assert_eq!(code(&refused), 5, "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("installation 42 is not there")
            && stderr(&refused).contains("looks up the App's installation on `acme` again"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(code(&token), 0, "{}", stderr(&token));
    assert_eq!(stdout(&token).trim(), "ghs_installation_token_3");
    fake.assert_no_problems();
}

// ---- Google service account ---------------------------------------------------------------------

const CLIENT_EMAIL: &str = "deployer@tokend-test.iam.gserviceaccount.com";
const RUN_URL: &str = "https://hello-abc123-uc.a.run.app";

/// An unsigned JWT (the fake's ID tokens; tokend does not verify them, only reads `exp`).
fn unsigned_jwt(claims: &Value) -> String {
    let b64 = |value: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string().as_bytes())
    };
    format!(
        "{}.{}.sig",
        b64(&json!({"alg": "RS256", "typ": "JWT"})),
        b64(claims)
    )
}

/// Google's token endpoint for a service account: the JWT-bearer grant whose assertion must be
/// signed with the key file's key (RS256, `kid` = its `private_key_id`), `iss` = the account,
/// `aud` = the token URI, at most an hour; `scope` gives an access token, `target_audience` an
/// ID token.
fn google(key: PathBuf, token_uri: String) -> Fake {
    Fake::new(move |request| {
        let form = form(request);
        if field(&form, "grant_type")? != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
            return Err("grant_type is not jwt-bearer".to_owned());
        }
        let (header, claims) = verify_jwt(field(&form, "assertion")?, &key, "RS256")?;
        if header["kid"] != "0123456789abcdef" {
            return Err(format!("kid is {}", header["kid"]));
        }
        if claims["iss"] != CLIENT_EMAIL || claims["aud"] != token_uri.as_str() {
            return Err(format!("iss/aud: {claims}"));
        }
        let now = now_secs();
        let (iat, exp) = (
            claims["iat"].as_u64().ok_or("no iat")?,
            claims["exp"].as_u64().ok_or("no exp")?,
        );
        if iat > now + 5 || iat + 60 < now || exp <= now || exp > iat + 3600 {
            return Err(format!("iat {iat} / exp {exp} out of bounds (now {now})"));
        }
        match (claims.get("scope"), claims.get("target_audience")) {
            (Some(scope), None) if scope == "https://www.googleapis.com/auth/cloud-platform" => {
                Ok(ResponseTemplate::new(200).set_body_json(json!({
                    "access_token": "ya29.c.service-account-access-token",
                    "expires_in": 3599,
                    "token_type": "Bearer",
                })))
            }
            (None, Some(audience)) if audience == RUN_URL => Ok(ResponseTemplate::new(200)
                .set_body_json(json!({
                    "id_token": unsigned_jwt(&json!({
                        "aud": RUN_URL,
                        "email": CLIENT_EMAIL,
                        "exp": now + 1800,
                        "iat": now,
                    })),
                }))),
            _ => Err(format!("neither the expected scope nor audience: {claims}")),
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_service_account_key_file_gets_access_and_id_tokens() {
    let server = MockServer::start().await;
    let token_uri = format!("{}/token", server.uri());
    let fake = google(fixture_key(JWT_BEARER_KEY), token_uri.clone());
    Mock::given(wiremock::matchers::path("/token"))
        .respond_with(fake.clone())
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("sa.json");
    let pem = std::fs::read_to_string(fixture_key(JWT_BEARER_KEY)).unwrap();
    // As Google issues it.
    let key_json = json!({
        "type": "service_account",
        "project_id": "tokend-test",
        "private_key_id": "0123456789abcdef",
        "private_key": pem,
        "client_email": CLIENT_EMAIL,
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
    });
    write_private(&key_file, &serde_json::to_string_pretty(&key_json).unwrap());
    let config = format!(
        r#"
[providers.gcp]
preset = "google-service-account"
key_file = "{key}"
scopes = ["https://www.googleapis.com/auth/cloud-platform"]

[providers.run]
preset = "google-service-account"
key_file = "{key}"
audience = "{RUN_URL}"
"#,
        key = key_file.display()
    );
    let daemon = Daemon::start(&config);
    let (access, id, id_json, id_token) = blocking({
        let socket = daemon.socket().to_owned();
        move || {
            let run = |args: &[&str]| {
                let out = tokend_e2e::tok_command(&socket)
                    .args(args)
                    .output()
                    .unwrap();
                assert_eq!(code(&out), 0, "tok {args:?}: {}", stderr(&out));
                stdout(&out).trim_end().to_owned()
            };
            (
                run(&["get", "gcp", "--json"]),
                run(&["get", "run", "--json"]),
                run(&["get", "run", "--id-token", "--json"]),
                run(&["get", "run"]),
            )
        }
    })
    .await;
    fake.assert_no_problems();
    let access: Value = serde_json::from_str(&access).unwrap();
    assert_eq!(access["token"], "ya29.c.service-account-access-token");
    assert!(access["expires_at"].is_string());
    // The ID token is the token, expiring at its `exp`; it is also the provider's id_token.
    let id: Value = serde_json::from_str(&id).unwrap();
    let claims = tokend_e2e::oidc::jwt_claims(&id_token);
    assert_eq!(claims["aud"], RUN_URL);
    // Its `exp`, or the second before: the time left is measured to the nanosecond and the
    // reported second rounded down, so it is never later than the token's own.
    let exp = claims["exp"].as_u64().unwrap();
    assert!(
        id["expires_at"] == rfc3339(exp) || id["expires_at"] == rfc3339(exp - 1),
        "{} for exp {exp}",
        id["expires_at"]
    );
    let id_json: Value = serde_json::from_str(&id_json).unwrap();
    assert_eq!(id_json["token"], id["token"]);
    assert!(
        !daemon.log().contains("PRIVATE KEY"),
        "the key reached the log"
    );
}

// ---- Entra ID certificate credentials ---------------------------------------------------------------

/// `openssl x509 -in pkjwt-cert.pem -outform DER | openssl dgst -sha256 -binary | base64url`.
const CERT_SHA256: &str = "jIWDWTLwR53_FvzNMraBkUcnqj3MdQHQa4LBg29wDuA";
/// The same with `-sha1`.
const CERT_SHA1: &str = "xK5190350uwtlmj535fNHyRPHPs";
const CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";

/// Entra ID's v2.0 token endpoint for a certificate credential: client credentials whose client
/// assertion is signed PS256 with the key of the registered certificate, which its
/// `x5t#S256` and `x5t` headers name; `iss` = `sub` = the client id, `aud` = the token URL.
fn entra(key: PathBuf, token_url: String) -> Fake {
    Fake::new(move |request| {
        let form = form(request);
        for (key, value) in [
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("scope", "https://graph.microsoft.com/.default"),
        ] {
            if field(&form, key)? != value {
                return Err(format!("{key} is not {value}"));
            }
        }
        if form.iter().any(|(name, _)| name == "client_secret") {
            return Err("a client_secret was sent".to_owned());
        }
        let (header, claims) = verify_jwt(field(&form, "client_assertion")?, &key, "PS256")?;
        if header["x5t#S256"] != CERT_SHA256 || header["x5t"] != CERT_SHA1 {
            return Err(format!("thumbprints: {header}"));
        }
        if claims["iss"] != CLIENT_ID
            || claims["sub"] != CLIENT_ID
            || claims["aud"] != token_url.as_str()
        {
            return Err(format!("iss/sub/aud: {claims}"));
        }
        let now = now_secs();
        let exp = claims["exp"].as_u64().ok_or("no exp")?;
        if exp <= now || exp > now + 600 || claims["jti"].as_str().is_none_or(str::is_empty) {
            return Err(format!("exp or jti: {claims}"));
        }
        Ok(ResponseTemplate::new(200).set_body_json(json!({
            "token_type": "Bearer",
            "expires_in": 3599,
            "access_token": "entra-app-token-from-a-certificate",
        })))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_certificate_credentials_sign_ps256_with_the_thumbprints() {
    let server = MockServer::start().await;
    let token_url = format!("{}/contoso.onmicrosoft.com/oauth2/v2.0/token", server.uri());
    let fake = entra(fixture_key(PKJWT_KEY), token_url);
    Mock::given(wiremock::matchers::path(
        "/contoso.onmicrosoft.com/oauth2/v2.0/token",
    ))
    .respond_with(fake.clone())
    .mount(&server)
    .await;
    let dir = tempfile::tempdir().unwrap();
    let key = private_copy(dir.path(), &fixture_key(PKJWT_KEY), "app-key.pem");
    let cert = private_copy(
        dir.path(),
        &fixture_key(PKJWT_KEY).with_file_name("pkjwt-cert.pem"),
        "app-cert.pem",
    );
    let config = format!(
        r#"
[providers.graph]
preset = "azure-ad"
tenant = "contoso.onmicrosoft.com"
client_id = "{CLIENT_ID}"
private_key = "${{file:{}}}"
certificate = "${{file:{}}}"
signing_alg = "PS256"
scopes = ["https://graph.microsoft.com/.default"]
authority = "{}"
"#,
        key.display(),
        cert.display(),
        server.uri()
    );
    let daemon = Daemon::start(&config);
    let socket = daemon.socket().to_owned();
    let out = blocking(move || {
        tokend_e2e::tok_command(&socket)
            .args(["header", "graph"])
            .output()
            .unwrap()
    })
    .await;
    fake.assert_no_problems();
    assert_eq!(code(&out), 0, "{}\n{}", stderr(&out), daemon.log());
    assert_eq!(
        stdout(&out),
        "Authorization: Bearer entra-app-token-from-a-certificate\n"
    );
}
