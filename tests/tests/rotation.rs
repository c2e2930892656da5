//! API-key rotation through the real `tokend` and `tok`, against a fake SalesTim that behaves as
//! its document says: `POST /apps/{id}/regenerateSecret` (authenticated in delegated mode)
//! issues a new key and the old one stops working at once. The new key is in the store before
//! it is served and survives a `kill -9`; a failed rotation keeps the key in force and shows in
//! `tok status`; `every` rotates on its own.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokend_e2e::{Daemon, code, eventually, stderr, stdout};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const ADMIN_TOKEN: &str = "eyJ.delegated-admin-token.sig";
const FIRST_KEY: &str = "st-key-configured-0000";

/// The fake SalesTim: per app its one valid key; `GET /v1.0/apps` needs a valid `X-API-KEY`,
/// `POST /v1.0/apps/{id}/regenerateSecret` the administrator's bearer token, and replaces the
/// app's key as the request arrives (the old one is refused from then on), answering after
/// `delay`. `failing` makes regeneration answer 500.
#[derive(Clone, Default)]
struct SalesTim {
    keys: Arc<Mutex<BTreeMap<String, String>>>,
    regenerated: Arc<Mutex<BTreeMap<String, u32>>>,
    failing: Arc<Mutex<bool>>,
    /// Answers 200 without the key (another format than the one configured).
    keyless: Arc<Mutex<bool>>,
    delay: Arc<Mutex<Duration>>,
}

impl SalesTim {
    fn regenerated(&self, app: &str) -> u32 {
        self.regenerated
            .lock()
            .unwrap()
            .get(app)
            .copied()
            .unwrap_or(0)
    }

    fn accepts(&self, key: &str) -> bool {
        self.keys.lock().unwrap().values().any(|valid| valid == key)
    }
}

impl Respond for SalesTim {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let path = request.url.path();
        if request.method.as_str() == "POST"
            && let Some(app) = path
                .strip_prefix("/v1.0/apps/")
                .and_then(|rest| rest.strip_suffix("/regenerateSecret"))
        {
            let bearer = request
                .headers
                .get("authorization")
                .and_then(|value| value.to_str().ok());
            if bearer != Some(&format!("Bearer {ADMIN_TOKEN}")) {
                return ResponseTemplate::new(401).set_body_json(json!({"error": "unauthorized"}));
            }
            if *self.failing.lock().unwrap() {
                return ResponseTemplate::new(500).set_body_json(json!({"error": "try later"}));
            }
            if *self.keyless.lock().unwrap() {
                return ResponseTemplate::new(200).set_body_json(json!({"id": app}));
            }
            let mut regenerated = self.regenerated.lock().unwrap();
            let count = regenerated.entry(app.to_owned()).or_default();
            *count += 1;
            let key = format!("st-key-{app}-{count}");
            self.keys
                .lock()
                .unwrap()
                .insert(app.to_owned(), key.clone());
            return ResponseTemplate::new(200)
                .set_body_json(json!({"id": app, "apiKey": key}))
                .set_delay(*self.delay.lock().unwrap());
        }
        let key = request
            .headers
            .get("x-api-key")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        if request.method.as_str() == "GET" && path == "/v1.0/apps" && self.accepts(key) {
            return ResponseTemplate::new(200).set_body_json(json!({"apps": []}));
        }
        ResponseTemplate::new(401).set_body_json(json!({"error": "invalid api key"}))
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_is_stored_before_it_is_served_and_survives_kill_9() {
    let server = MockServer::start().await;
    let salestim = SalesTim::default();
    salestim
        .keys
        .lock()
        .unwrap()
        .insert("app-1".to_owned(), FIRST_KEY.to_owned());
    Mock::given(wiremock::matchers::any())
        .respond_with(salestim.clone())
        .mount(&server)
        .await;
    let api = format!("{}/v1.0", server.uri());
    let config = format!(
        r#"
[providers.salestim-admin]
kind = "static"
secret = "${{env:ADMIN_TOKEN}}"

[providers.salestim]
preset = "salestim"
api_key = "${{env:SALESTIM_API_KEY}}"
rotate = {{ method = "POST", url = "{api}/apps/app-1/regenerateSecret", auth = "salestim-admin", secret = "/apiKey" }}
"#
    );
    let env = [
        ("ADMIN_TOKEN", ADMIN_TOKEN),
        ("SALESTIM_API_KEY", FIRST_KEY),
    ];
    let mut daemon = Daemon::start_with_env(&config, &env);
    let socket = daemon.socket().to_owned();
    let tok = move |args: &[&str]| {
        tokend_e2e::tok_command(&socket)
            .args(args)
            .output()
            .expect("run tok")
    };
    let key_of = {
        let tok = tok.clone();
        move |name: &str| {
            let out = tok(&["get", name]);
            assert_eq!(code(&out), 0, "tok get {name}: {}", stderr(&out));
            stdout(&out).trim_end().to_owned()
        }
    };

    let (first, rotated, after) = blocking({
        let (tok, key_of) = (tok.clone(), key_of.clone());
        move || {
            let first = key_of("salestim");
            let out = tok(&["rotate", "salestim"]);
            assert_eq!(code(&out), 0, "{}", stderr(&out));
            assert!(stdout(&out).is_empty());
            assert!(
                stderr(&out).contains("new one is in force"),
                "{}",
                stderr(&out)
            );
            (first, stderr(&out), key_of("salestim"))
        }
    })
    .await;
    assert_eq!(
        first, FIRST_KEY,
        "the configured key until the first rotation"
    );
    assert_eq!(after, "st-key-app-1-1", "{rotated}");
    assert!(salestim.accepts(&after) && !salestim.accepts(FIRST_KEY));
    assert!(
        !daemon.log().contains(&after),
        "the new key reached the log"
    );

    // kill -9 right after the rotation: the key was in the store before `tok rotate` returned,
    // so the restarted daemon serves it (the config still names the old one) and asks
    // SalesTim for nothing.
    daemon.kill();
    daemon.restart(&env);
    let served = blocking({
        let key_of = key_of.clone();
        move || key_of("salestim")
    })
    .await;
    assert_eq!(served, after);
    assert_eq!(salestim.regenerated("app-1"), 1);

    // A failed rotation keeps the key in force and shows why in `tok status`.
    *salestim.failing.lock().unwrap() = true;
    let (failed, status, still) = blocking({
        let (tok, key_of) = (tok.clone(), key_of.clone());
        move || {
            let failed = tok(&["rotate", "salestim"]);
            let status = stdout(&tok(&["status", "--json"]));
            (failed, status, key_of("salestim"))
        }
    })
    .await;
    assert_eq!(code(&failed), 5, "{}", stderr(&failed));
    assert!(stderr(&failed).contains("HTTP 500"), "{}", stderr(&failed));
    assert_eq!(still, after);
    let status: Value = serde_json::from_str(&status).unwrap();
    let provider = status["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "salestim")
        .unwrap();
    assert!(
        provider["rotation_error"]
            .as_str()
            .is_some_and(|error| error.contains("HTTP 500")),
        "{provider}"
    );
    assert!(provider["rotated_at"].is_string(), "{provider}");
    *salestim.failing.lock().unwrap() = false;

    // A 2xx answer without the key: the error says the key in force may be dead and what to do.
    *salestim.keyless.lock().unwrap() = true;
    let keyless = blocking({
        let tok = tok.clone();
        move || tok(&["rotate", "salestim"])
    })
    .await;
    assert_eq!(code(&keyless), 5, "{}", stderr(&keyless));
    assert!(
        stderr(&keyless).contains("may already have replaced the key")
            && stderr(&keyless).contains("tok reload"),
        "{}",
        stderr(&keyless)
    );
    *salestim.keyless.lock().unwrap() = false;

    // Removing the `rotate` table stops rotations; it does not bring back the key SalesTim
    // invalidated (the config still names it).
    let without_rotate = config.replace(
        &format!(
            "rotate = {{ method = \"POST\", url = \"{api}/apps/app-1/regenerateSecret\", auth = \"salestim-admin\", secret = \"/apiKey\" }}\n"
        ),
        "",
    );
    assert_ne!(without_rotate, config);
    std::fs::write(daemon.dir().join("config.toml"), &without_rotate).unwrap();
    let served = blocking({
        let (tok, key_of) = (tok.clone(), key_of.clone());
        move || {
            let reload = tok(&["reload"]);
            assert_eq!(code(&reload), 0, "{}", stderr(&reload));
            key_of("salestim")
        }
    })
    .await;
    assert_eq!(served, after, "the invalidated key came back");
    // The table shows the rotation.
    let table = blocking(move || stdout(&tok(&["status"]))).await;
    assert!(table.contains("ROTATED KEY"), "{table}");
}

const AUTO_KEY: &str = "st-key-auto-configured";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rotates_on_its_own_and_a_stop_waits_for_the_rotation_in_flight() {
    let server = MockServer::start().await;
    let salestim = SalesTim::default();
    salestim
        .keys
        .lock()
        .unwrap()
        .insert("app-2".to_owned(), AUTO_KEY.to_owned());
    // SalesTim takes 3 s to answer: the daemon is asked to stop meanwhile.
    *salestim.delay.lock().unwrap() = Duration::from_secs(3);
    Mock::given(wiremock::matchers::any())
        .respond_with(salestim.clone())
        .mount(&server)
        .await;
    let api = format!("{}/v1.0", server.uri());
    // `every` is at least a minute: this test waits for one (beside the other tests).
    let config = format!(
        r#"
[providers.salestim-admin]
kind = "static"
secret = "${{env:ADMIN_TOKEN}}"

[providers.auto]
preset = "salestim"
api_key = "${{env:AUTO_API_KEY}}"
rotate = {{ url = "{api}/apps/app-2/regenerateSecret", auth = "salestim-admin", secret = "/apiKey", every = "1m" }}
"#
    );
    let env = [("ADMIN_TOKEN", ADMIN_TOKEN), ("AUTO_API_KEY", AUTO_KEY)];
    let mut daemon = Daemon::start_with_env(&config, &env);
    let socket = daemon.socket().to_owned();
    let key_of = move || {
        let out = tokend_e2e::tok_command(&socket)
            .args(["get", "auto"])
            .output()
            .expect("run tok");
        assert_eq!(code(&out), 0, "tok get auto: {}", stderr(&out));
        stdout(&out).trim_end().to_owned()
    };
    assert_eq!(blocking(key_of.clone()).await, AUTO_KEY);

    // The schedule's request reaches SalesTim (which replaces the key at once) about a minute
    // after the key was first used.
    let (regenerated, salestim_clone) = (Duration::from_secs(90), salestim.clone());
    let arrived =
        blocking(move || eventually(regenerated, || salestim_clone.regenerated("app-2") == 1))
            .await;
    assert!(arrived, "no scheduled rotation; log:\n{}", daemon.log());
    // Stopped while the answer is on its way: the daemon waits for the rotation to store the
    // new key before it exits, so the restarted one serves it (and does not rotate again yet:
    // the next rotation is a minute after this one).
    let status = tokio::task::block_in_place(|| daemon.terminate());
    assert!(status.success(), "{status}; log:\n{}", daemon.log());
    assert!(
        daemon.log().contains("waiting for 1 key rotation"),
        "{}",
        daemon.log()
    );
    daemon.restart(&env);
    let served = blocking(key_of).await;
    assert_eq!(served, "st-key-app-2-1", "log:\n{}", daemon.log());
    assert!(salestim.accepts(&served));
    assert_eq!(salestim.regenerated("app-2"), 1);
}
