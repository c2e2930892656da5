//! The seed APIs' token exchanges (Timekit, CRM.COM) against HTTP fakes that check every request
//! detail their documents specify, plus SalesTim's key and anonymous modes, through the real
//! `tokend` and `tok`.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use tokend_e2e::{Daemon, code, stderr, stdout};
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// A JWT (unsigned for our purposes) whose `exp` is a string, as CRM.COM sends it.
fn crm_jwt(exp: u64) -> String {
    let part = |json: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
    format!(
        "{}.{}.yvRGqFy7dL2H6RcqXOJQtD3zBoWHUDpoRN9Ma6hKfpg",
        part(r#"{"typ":"JWT","alg":"HS256"}"#),
        part(&format!(
            r#"{{"usr":"maytemplate","org":"ps_dev","oun":"1","exp":"{exp}"}}"#
        ))
    )
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Runs a blocking closure (the real `tok` process) while the fake server keeps serving.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timekit_app_token_is_fetched_with_basic_and_the_app_header() {
    let server = MockServer::start().await;
    // The request exactly as the Timekit document shows it.
    Mock::given(method("GET"))
        .and(path("/v2/app"))
        .and(query_param("include", "app_token"))
        .and(header("Timekit-App", "back-to-the-future"))
        .and(header(
            "authorization",
            format!(
                "Basic {}",
                b64("doc.brown@timekit.io:nvHfRSlhvsnlg4rS7Wt28Ty47qdgegwSu3YK7hPW")
            )
            .as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "data": {
                "id": "0c3aa054-dcba-4e9f-9717-ac855fe6bb4f",
                "slug": "back-to-the-future",
                "app_token": [{
                    "id": "4d89ce01-aa33-45e4-bdba-8ab383aa8ea5",
                    "type": "server-token",
                    "token": "live_api_key_7nzvc7wsBQQISLeFSVhROys9V1bUJ1z7",
                    "scopes": ["global"]
                }]
            }
        })))
        .expect(1)
        .mount(&server)
        .await;
    let config = format!(
        r#"
[providers.timekit]
preset = "timekit"
app = "back-to-the-future"
email = "${{env:TK_EMAIL}}"
api_key = "${{env:TK_KEY}}"
base_url = "{}"
"#,
        server.uri()
    );
    let out = blocking(move || {
        let daemon = Daemon::start_with_env(
            &config,
            &[
                ("TK_EMAIL", "doc.brown@timekit.io"),
                ("TK_KEY", "nvHfRSlhvsnlg4rS7Wt28Ty47qdgegwSu3YK7hPW"),
            ],
        );
        let first = daemon.tok(&["header", "timekit"]);
        let second = daemon.tok(&["header", "timekit"]);
        assert_eq!(stdout(&first), stdout(&second), "cached");
        (first, daemon.log())
    })
    .await;
    let (out, log) = out;
    assert_eq!(code(&out), 0, "{}\n{log}", stderr(&out));
    // Used as Basic with an empty user and the token as password.
    assert_eq!(
        stdout(&out),
        format!(
            "Authorization: Basic {}\n",
            b64(":live_api_key_7nzvc7wsBQQISLeFSVhROys9V1bUJ1z7")
        )
    );
    server.verify().await;
}

async fn crm_server(expected_body: serde_json::Value, answer: serde_json::Value) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/authentication/consumer_application_key/token"))
        // Basic with the key as user and an empty password.
        .and(header(
            "authorization",
            format!("Basic {}", b64("EE73C0AE64524371B5DDEFF5F7BB2192:")).as_str(),
        ))
        .and(header("content-type", "application/json"))
        .and(body_json(expected_body))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer))
        .mount(&server)
        .await;
    server
}

fn crm_config(server: &MockServer, identifier: &str) -> String {
    format!(
        r#"
[providers.crm]
preset = "crm.com"
base_url = "{}"
api_key = "${{env:CRM_KEY}}"
{identifier}
"#,
        server.uri()
    )
}

const CRM_ENV: &[(&str, &str)] = &[
    ("CRM_KEY", "EE73C0AE64524371B5DDEFF5F7BB2192"),
    ("CRM_CODE", "p_kestora1!"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crm_consumer_key_exchange_returns_a_two_hour_jwt_used_raw() {
    let exp = now() + 7200;
    let token = crm_jwt(exp);
    let server = crm_server(
        serde_json::json!({"access_token_identifier": {"authentication_code": "p_kestora1!"}, "unit": "1"}),
        serde_json::json!({"data": {"token": token}, "status": {"code": "OK", "description": "", "message": ""}}),
    )
    .await;
    let config = crm_config(
        &server,
        "authentication_code = \"${env:CRM_CODE}\"\nunit = \"1\"",
    );
    let (header_out, json_out) = blocking(move || {
        let daemon = Daemon::start_with_env(&config, CRM_ENV);
        (
            daemon.tok(&["header", "crm"]),
            daemon.tok(&["get", "crm", "--json"]),
        )
    })
    .await;
    assert_eq!(code(&header_out), 0, "{}", stderr(&header_out));
    assert_eq!(stdout(&header_out), format!("authorization: {token}\n"));
    let json: serde_json::Value = serde_json::from_str(&stdout(&json_out)).unwrap();
    // Expiry from the JWT's (string) exp claim.
    let expires_at = json["expires_at"].as_str().unwrap().to_owned();
    assert!(expires_at.ends_with('Z'), "{expires_at}");
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crm_identifier_and_jwt_forms_send_the_documented_bodies() {
    let token = crm_jwt(now() + 7200);
    let ok = serde_json::json!({"data": {"token": token}, "status": {"code": "OK"}});
    let identifier = crm_server(
        serde_json::json!({"access_token_identifier": {"identifier": "card-1", "pass_code": "p_kestora1!"}}),
        ok.clone(),
    )
    .await;
    let jwt = crm_server(
        serde_json::json!({"jwt": "p_kestora1!", "organisation": "ps_dev"}),
        ok,
    )
    .await;
    let configs = [
        crm_config(
            &identifier,
            "identifier = \"card-1\"\npass_code = \"${env:CRM_CODE}\"",
        ),
        crm_config(&jwt, "jwt = \"${env:CRM_CODE}\"\norganisation = \"ps_dev\""),
    ];
    for config in configs {
        let out =
            blocking(move || Daemon::start_with_env(&config, CRM_ENV).tok(&["get", "crm"])).await;
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        assert_eq!(stdout(&out), format!("{token}\n"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crm_non_ok_status_fails_with_its_description() {
    let server = crm_server(
        serde_json::json!({"access_token_identifier": {"authentication_code": "p_kestora1!"}}),
        serde_json::json!({"data": {}, "status": {"code": "INVALID_AUTHENTICATION_CODE", "description": "The authentication code is not valid"}}),
    )
    .await;
    let config = crm_config(&server, "authentication_code = \"${env:CRM_CODE}\"");
    let out = blocking(move || Daemon::start_with_env(&config, CRM_ENV).tok(&["get", "crm"])).await;
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
    let err = stderr(&out);
    assert!(
        err.contains("The authentication code is not valid") && err.contains("/status/code"),
        "{err}"
    );
    assert!(!err.contains("p_kestora1!"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwt_without_exp_falls_back_to_the_ttl() {
    let part = |json: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
    let no_exp = format!(
        "{}.{}.sig",
        part(r#"{"alg":"HS256"}"#),
        part(r#"{"usr":"x"}"#)
    );
    let server = crm_server(
        serde_json::json!({"access_token_identifier": {"authentication_code": "p_kestora1!"}}),
        serde_json::json!({"data": {"token": no_exp}, "status": {"code": "OK"}}),
    )
    .await;
    let config = crm_config(&server, "authentication_code = \"${env:CRM_CODE}\"");
    let out =
        blocking(move || Daemon::start_with_env(&config, CRM_ENV).tok(&["get", "crm", "--json"]))
            .await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    // The preset's two-hour fallback applies.
    assert!(json["expires_at"].is_string(), "{json}");
}

#[test]
fn salestim_key_and_anonymous_modes() {
    let config = r#"
[providers.salestim]
preset = "salestim"
api_key = "${env:ST_KEY}"

[providers.store]
kind = "anonymous"
"#;
    let daemon = Daemon::start_with_env(config, &[("ST_KEY", "st-0123")]);
    let out = daemon.tok(&["header", "salestim"]);
    assert_eq!(stdout(&out), "X-API-KEY: st-0123\n");
    let out = daemon.tok(&["header", "store"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "", "anonymous access sends no header at all");
    let out = daemon.tok(&["get", "store", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(json["header"].is_null());
}
