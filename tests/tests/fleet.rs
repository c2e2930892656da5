//! The fleet, for real: several `tokend` daemons (each its own socket and data directory) share
//! one token through a real `redis-server` started here on a loopback port, against a token
//! endpoint that counts requests (wiremock, or the oidc-provider harness for rotating refresh
//! tokens).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use tokend_client::{AsyncClient, Client, Endpoint, GetOptions};
use tokend_e2e::redis::RedisServer;
use tokend_e2e::{Daemon, code, stderr, stdout};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const KEY: &str = "c2e8f7a1b4d3069e5f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn now_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The `exp` claim of one of our test JWTs.
fn exp_of(token: &str) -> u64 {
    let claims = token.split('.').nth(1).unwrap();
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims)
        .unwrap();
    let claims: serde_json::Value = serde_json::from_slice(&claims).unwrap();
    claims["exp"].as_u64().unwrap()
}

fn jwt(exp: u64, serial: usize) -> String {
    let part = |json: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
    format!(
        "{}.{}.c2ln",
        part(r#"{"alg":"HS256","typ":"JWT"}"#),
        part(&format!(r#"{{"sub":"svc","n":{serial},"exp":{exp}}}"#))
    )
}

/// A token endpoint whose tokens live `lifetime` seconds, answering after `delay`; counts.
struct Tokens {
    lifetime: u64,
    delay: Duration,
    served: Arc<AtomicUsize>,
}

impl Respond for Tokens {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let serial = self.served.fetch_add(1, Ordering::SeqCst);
        ResponseTemplate::new(200)
            .set_delay(self.delay)
            .set_body_json(serde_json::json!({ "token": jwt(now() + self.lifetime, serial) }))
    }
}

async fn token_endpoint(lifetime: u64, delay: Duration) -> (MockServer, Arc<AtomicUsize>) {
    let server = MockServer::start().await;
    let served = Arc::new(AtomicUsize::new(0));
    Mock::given(method("GET"))
        .and(path("/token"))
        .respond_with(Tokens {
            lifetime,
            delay,
            served: Arc::clone(&served),
        })
        .mount(&server)
        .await;
    (server, served)
}

fn config(redis_url: &str, namespace: &str, upstream: &str, extra: &str) -> String {
    format!(
        r#"
[fleet]
url = "{redis_url}"
key = "${{env:E2E_FLEET_KEY}}"
namespace = "{namespace}"

[providers.api]
kind = "http"
url = "{upstream}/token"
token = "/token"
expires = "jwt"
share = "api-shared"
{extra}
"#
    )
}

fn daemons(count: usize, config: &str) -> Vec<Daemon> {
    (0..count)
        .map(|_| Daemon::start_with_env(config, &[("E2E_FLEET_KEY", KEY)]))
        .collect()
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

fn async_client(endpoint: Endpoint) -> AsyncClient {
    Client::builder()
        .endpoint(endpoint)
        .autostart(false)
        .timeout(Duration::from_secs(30))
        .build_async()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_daemons_and_four_hundred_cold_gets_cause_one_upstream_request() {
    let redis = RedisServer::start();
    let (upstream, served) = token_endpoint(3600, Duration::from_millis(300)).await;
    let config = config(&redis.url(), "stampede", &upstream.uri(), "");
    let daemons = blocking(move || daemons(4, &config)).await;
    let mut gets = Vec::new();
    for daemon in &daemons {
        for _ in 0..100 {
            let endpoint = daemon.endpoint();
            gets.push(tokio::spawn(async move {
                async_client(endpoint)
                    .get("api")
                    .await
                    .map(|token| token.value.expose().to_owned())
            }));
        }
    }
    let mut tokens = Vec::new();
    for get in gets {
        tokens.push(get.await.unwrap().expect("every get succeeds"));
    }
    assert_eq!(
        served.load(Ordering::SeqCst),
        1,
        "one upstream request for the fleet"
    );
    tokens.dedup();
    assert_eq!(tokens.len(), 1, "everyone got the same token");
    // The fleet keeps nothing in clear: key names are hashes, values sealed.
    let keys = redis.keys("tokend:*");
    assert!(
        keys.iter().all(|key| key.starts_with("tokend:stampede:")),
        "{keys:?}"
    );
    assert!(!keys.iter().any(|key| key.contains("api")), "{keys:?}");
    for key in keys.iter().filter(|key| key.ends_with(":access")) {
        let value = redis.cli(&["--raw", "GET", key]).stdout;
        assert!(!String::from_utf8_lossy(&value).contains(&tokens[0][..20]));
    }
    // Status says where the token came from and what the fleet is.
    let out = blocking({
        let socket = daemons[0].socket().to_path_buf();
        move || {
            tokend_e2e::tok_command(&socket)
                .args(["status", "--json"])
                .output()
                .unwrap()
        }
    })
    .await;
    let status: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(
        status["fleet"].as_str().unwrap().ends_with(": connected"),
        "{status}"
    );
    assert_eq!(status["providers"][0]["share"], "api-shared", "{status}");
    let origins: Vec<String> = daemons
        .iter()
        .map(|daemon| {
            let out = daemon.tok(&["status", "--json"]);
            let status: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
            status["providers"][0]["origin"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        origins.iter().filter(|o| *o == "upstream").count(),
        1,
        "{origins:?}"
    );
    assert_eq!(
        origins.iter().filter(|o| *o == "fleet").count(),
        3,
        "{origins:?}"
    );
    drop(daemons);
}

/// Callers on every daemon get tokens for `seconds`; returns the gets and how many were expired.
async fn callers(daemons: &[Daemon], seconds: u64) -> (usize, usize) {
    let clients: Vec<Endpoint> = daemons.iter().map(Daemon::endpoint).collect();
    let started = Instant::now();
    let expired = Arc::new(AtomicUsize::new(0));
    let mut loops = Vec::new();
    for endpoint in clients {
        let expired = Arc::clone(&expired);
        loops.push(tokio::spawn(async move {
            let client = async_client(endpoint);
            let mut gets = 0;
            while started.elapsed() < Duration::from_secs(seconds) {
                let token = client
                    .get_with(
                        "api",
                        &GetOptions {
                            min_ttl: Duration::from_secs(1),
                        },
                    )
                    .await
                    .expect("get");
                gets += 1;
                // Never expired nor below the minimum asked for, by the token's own `exp`
                // (whole seconds: one second of rounding).
                let remaining = exp_of(token.value.expose()) as f64 - now_f64();
                if remaining < 0.0 {
                    expired.fetch_add(1, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            gets
        }));
    }
    let mut total = 0;
    for handle in loops {
        total += handle.await.unwrap();
    }
    (total, expired.load(Ordering::SeqCst))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn short_lived_tokens_are_refreshed_as_often_for_the_fleet_as_for_one_daemon() {
    const LIFETIME: u64 = 3;
    const LIFETIMES: u64 = 5;
    let redis = RedisServer::start();
    // One daemon alone: how many requests refresh-ahead makes over these lifetimes.
    let (upstream, alone) = token_endpoint(LIFETIME, Duration::from_millis(20)).await;
    let single = config(&redis.url(), "alone", &upstream.uri(), "");
    let daemon = blocking(move || daemons(1, &single)).await;
    let (gets, expired) = callers(&daemon, LIFETIME * LIFETIMES).await;
    assert_eq!(expired, 0, "no caller got an expired token");
    assert!(gets > 50, "{gets} gets");
    drop(daemon);
    let alone = alone.load(Ordering::SeqCst);
    // Four daemons sharing: about as many, not four times as many.
    let (upstream, shared) = token_endpoint(LIFETIME, Duration::from_millis(20)).await;
    let config = config(&redis.url(), "refresh", &upstream.uri(), "");
    let daemons = blocking(move || daemons(4, &config)).await;
    let (gets, expired) = callers(&daemons, LIFETIME * LIFETIMES).await;
    assert_eq!(expired, 0, "no caller got an expired token");
    assert!(gets > 200, "{gets} gets");
    let shared = shared.load(Ordering::SeqCst);
    assert!(
        shared * 4 <= alone * 5 + 8,
        "{shared} upstream requests for 4 daemons, {alone} for one alone"
    );
    drop(daemons);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lock_holder_killed_mid_fetch_is_replaced_after_the_lock_expires() {
    let redis = RedisServer::start();
    let upstream = MockServer::start().await;
    let served = Arc::new(AtomicUsize::new(0));
    // The first request hangs (its daemon is killed meanwhile); the next ones answer at once.
    Mock::given(path("/token"))
        .respond_with(Tokens {
            lifetime: 3600,
            delay: Duration::from_secs(30),
            served: Arc::clone(&served),
        })
        .up_to_n_times(1)
        .mount(&upstream)
        .await;
    Mock::given(path("/token"))
        .respond_with(Tokens {
            lifetime: 3600,
            delay: Duration::ZERO,
            served: Arc::clone(&served),
        })
        .mount(&upstream)
        .await;
    let config = config(&redis.url(), "killed", &upstream.uri(), "timeout = \"2s\"");
    let mut daemons = blocking(move || daemons(2, &config)).await;
    let first = daemons[0].endpoint();
    let holder = tokio::spawn(async move { async_client(first).get("api").await });
    // Wait until the first daemon holds the lock and its request is in flight.
    let deadline = Instant::now() + Duration::from_secs(10);
    while served.load(Ordering::SeqCst) == 0 || redis.keys("tokend:killed:*:lock").is_empty() {
        assert!(
            Instant::now() < deadline,
            "the first daemon never took the lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    daemons[0].kill();
    let _ = holder.await;
    let started = Instant::now();
    let second = daemons[1].endpoint();
    let token = async_client(second)
        .get("api")
        .await
        .expect("the second daemon takes over");
    assert!(!token.value.expose().is_empty());
    // It waited for the lock to expire (2 s timeout + 5 s margin), not for ever.
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(served.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_that_is_stopped_or_frozen_costs_no_caller_more_than_its_timeout() {
    let mut redis = RedisServer::start();
    let (upstream, served) = token_endpoint(3600, Duration::ZERO).await;
    let config = config(&redis.url(), "down", &upstream.uri(), "");
    let daemons = blocking(move || daemons(2, &config)).await;
    let get = |index: usize| {
        let endpoint = daemons[index].endpoint();
        async move {
            let started = Instant::now();
            let token = async_client(endpoint).get("api").await;
            (token, started.elapsed())
        }
    };
    let (token, _) = get(0).await;
    let shared = token.unwrap().value.expose().to_owned();
    // Frozen: the cached token is served from memory at once; a daemon that has none fetches
    // locally after at most the fleet timeout (250 ms) per operation.
    redis.pause();
    let (token, took) = get(0).await;
    assert_eq!(token.unwrap().value.expose(), shared);
    assert!(took < Duration::from_millis(200), "{took:?}");
    let _ = daemons[1].tok(&["invalidate", "api"]);
    let (token, took) = get(1).await;
    assert!(
        token.is_ok(),
        "a cold get while Redis is frozen fetches locally"
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
    let status = daemons[1].tok(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&stdout(&status)).unwrap();
    assert!(
        status["fleet"].as_str().unwrap().contains("down since"),
        "{status}"
    );
    redis.resume();
    // Stopped (and restarted empty): the same, then sharing resumes by itself.
    redis.stop();
    let (token, took) = get(0).await;
    assert!(token.is_ok() && took < Duration::from_millis(200));
    redis.restart();
    let before = served.load(Ordering::SeqCst);
    let _ = daemons[0].tok(&["invalidate", "api"]);
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let (token, _) = get(0).await;
        assert!(token.is_ok());
        if !redis.keys("tokend:down:*:access").is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "sharing did not resume");
        let _ = daemons[0].tok(&["invalidate", "api"]);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(served.load(Ordering::SeqCst) > before);
    let metrics = daemons[0].tok(&["metrics"]);
    let metrics = stdout(&metrics);
    assert!(metrics.contains("tokend_fleet_up 1"), "{metrics}");
    assert!(
        metrics.contains("tokend_fleet_errors_total{provider=\"api\"}"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tampered_truncated_or_foreign_entries_are_never_served() {
    let redis = RedisServer::start();
    let (upstream, served) = token_endpoint(3600, Duration::ZERO).await;
    let config = config(&redis.url(), "tamper", &upstream.uri(), "");
    let config_other_key = config.clone();
    let daemons = blocking(move || daemons(1, &config)).await;
    let token = daemons[0]
        .client()
        .get("api")
        .unwrap()
        .value
        .expose()
        .to_owned();
    let access = redis
        .keys("tokend:tamper:*:access")
        .pop()
        .expect("the shared entry");
    let mut original = redis.cli(&["--raw", "GET", &access]).stdout;
    // redis-cli ends what it prints with a line feed.
    assert_eq!(original.pop(), Some(b'\n'));
    let ttl = "3600000";
    let cases: Vec<Vec<u8>> = vec![
        // A flipped byte in the sealed part.
        {
            let mut value = original.clone();
            let last = value.len() - 2;
            value[last] ^= 1;
            value
        },
        // Truncated.
        original[..original.len() / 2].to_vec(),
        // Another generation than it was sealed for.
        {
            let text = String::from_utf8_lossy(&original).into_owned();
            let rest = text.split_once(':').unwrap().1.to_owned();
            format!("999:{rest}").into_bytes()
        },
        // Garbage.
        b"1:00:not sealed at all".to_vec(),
    ];
    for (index, value) in cases.into_iter().enumerate() {
        let value_path = redis.dir().join("value");
        std::fs::write(&value_path, &value).unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "redis-cli -p {port} -x SET {access} < {} && redis-cli -p {port} PEXPIRE {access} {ttl}",
                value_path.display(),
                port = redis.port(),
            ))
            .output()
            .unwrap();
        assert!(out.status.success());
        // A daemon without the token in memory reads the entry: refused, fetched anew.
        let fresh = blocking({
            let config = config_other_key.clone();
            move || {
                let daemon = Daemon::start_with_env(&config, &[("E2E_FLEET_KEY", KEY)]);
                let token = daemon
                    .client()
                    .get("api")
                    .unwrap()
                    .value
                    .expose()
                    .to_owned();
                (token, daemon.log())
            }
        })
        .await;
        assert_ne!(fresh.0.as_bytes(), &value[..], "case {index}");
        assert!(
            fresh.1.contains("cannot be opened"),
            "case {index}: {}",
            fresh.1
        );
        assert!(served.load(Ordering::SeqCst) >= 2 + index, "case {index}");
    }
    // A daemon with another fleet key sees none of this fleet's entries (its key names
    // differ) and fetches its own token.
    let other = config_other_key.clone();
    let before = served.load(Ordering::SeqCst);
    let their = blocking(move || {
        let daemon = Daemon::start_with_env(&other, &[("E2E_FLEET_KEY", &"ab".repeat(32))]);
        daemon
            .client()
            .get("api")
            .unwrap()
            .value
            .expose()
            .to_owned()
    })
    .await;
    assert_ne!(their, token);
    assert_eq!(served.load(Ordering::SeqCst), before + 1);
    drop(daemons);
}

#[test]
fn config_errors_name_the_fleet_key_at_fault() {
    let dir = tokend_e2e::private_dir();
    let cases = [
        (
            "[providers.api]\nkind = \"http\"\nurl = \"http://127.0.0.1:1/t\"\ntoken = \"/t\"\nshare = \"x\"\n",
            "needs a [fleet] table",
        ),
        (
            "[fleet]\nurl = \"redis://127.0.0.1:1/0\"\nkey = \"0011\"\n",
            "fleet.key",
        ),
        (
            "[fleet]\nurl = \"http://x/0\"\nkey = \"${env:K}\"\n",
            "fleet.url",
        ),
        (
            "[fleet]\nurl = \"redis://127.0.0.1:1/0\"\nkey = \"${env:K}\"\n[providers.s]\nkind = \"static\"\nsecret = \"${env:S}\"\nshare = \"s\"\n",
            "nothing to share",
        ),
    ];
    for (text, expected) in cases {
        let path = dir.path().join("config.toml");
        tokend_e2e::write_private(&path, text);
        let out = std::process::Command::new(tokend_e2e::bin("tokend"))
            .arg("--config")
            .arg(&path)
            .arg("--socket")
            .arg(dir.path().join("t.sock"))
            .env("TOKEND_DATA", dir.path().join("data"))
            .output()
            .unwrap();
        assert_eq!(code(&out), 2, "{text}: {}", stderr(&out));
        assert!(stderr(&out).contains(expected), "{text}: {}", stderr(&out));
    }
    // A key given by reference is checked at start: too short, exit 2, naming fleet.key.
    let path = dir.path().join("config.toml");
    tokend_e2e::write_private(
        &path,
        "[fleet]\nurl = \"redis://127.0.0.1:1/0\"\nkey = \"${env:E2E_SHORT_KEY}\"\n",
    );
    let out = std::process::Command::new(tokend_e2e::bin("tokend"))
        .arg("--config")
        .arg(&path)
        .arg("--socket")
        .arg(dir.path().join("t.sock"))
        .env("TOKEND_DATA", dir.path().join("data"))
        .env("E2E_SHORT_KEY", "00112233")
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("fleet.key"), "{}", stderr(&out));
}

#[test]
fn a_rotating_refresh_token_shared_by_three_daemons_is_never_spent_twice() {
    use tokend_e2e::oidc::{APP, OidcServer};
    let redis = RedisServer::start();
    // Access tokens live 2 s: many refreshes, each rotating the refresh token.
    let server = OidcServer::start(2);
    let refresh_token = server.mint_refresh_token();
    let config = format!(
        "[fleet]\nurl = \"{}\"\nkey = \"${{env:E2E_FLEET_KEY}}\"\nnamespace = \"rotation\"\n{}",
        redis.url(),
        server.refresh_token_provider("share = \"user-shared\"")
    );
    let env = [
        ("E2E_FLEET_KEY", KEY),
        ("E2E_CLIENT_SECRET", APP.secret),
        ("E2E_REFRESH_TOKEN", refresh_token.as_str()),
    ];
    let daemons: Vec<Daemon> = (0..3)
        .map(|_| Daemon::start_with_env(&config, &env))
        .collect();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for daemon in &daemons {
            scope.spawn(move || {
                let client = daemon.client();
                while started.elapsed() < Duration::from_secs(14) {
                    let token = client.get_with(
                        "user",
                        &GetOptions {
                            min_ttl: Duration::from_secs(1),
                        },
                    );
                    assert!(token.is_ok(), "{token:?}");
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
        }
    });
    let chain = server.refresh_chain();
    assert!(chain.len() >= 4, "{} refreshes", chain.len());
    // One unbroken chain: each refresh presented the token the previous one issued.
    assert_eq!(chain[0].used, refresh_token);
    for pair in chain.windows(2) {
        assert_eq!(
            pair[1].used, pair[0].refresh_token,
            "the chain broke: {chain:?}"
        );
    }
    let used: std::collections::BTreeSet<&String> = chain.iter().map(|r| &r.used).collect();
    assert_eq!(used.len(), chain.len(), "a refresh token was spent twice");
    let stats = server.stats();
    assert!(stats["errors"].get("invalid_grant").is_none(), "{stats}");
}

#[test]
fn tls_with_a_private_ca_and_an_acl_user_limited_to_its_keys() {
    let certs = tokend_e2e::private_dir();
    tokend_e2e::redis::make_certificates(certs.path());
    let redis = RedisServer::start_tls(certs.path());
    let acl = redis.cli(&[
        "ACL",
        "SETUSER",
        "tokend",
        "on",
        ">e2e-redis-password",
        "resetkeys",
        "~tokend:*",
        "resetchannels",
        "&tokend:*",
        "+@all",
        "-@dangerous",
    ]);
    assert!(
        acl.stdout.starts_with(b"OK"),
        "{}",
        String::from_utf8_lossy(&acl.stdout)
    );
    // The user really is limited: other keys are refused.
    let refused = redis.cli(&[
        "--user",
        "tokend",
        "--pass",
        "e2e-redis-password",
        "SET",
        "other",
        "x",
    ]);
    assert!(
        String::from_utf8_lossy(&refused.stdout).contains("NOPERM"),
        "{refused:?}"
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (upstream, served) = runtime.block_on(token_endpoint(3600, Duration::ZERO));
    let config = format!(
        r#"
[fleet]
url = "{}"
username = "tokend"
password = "${{env:E2E_REDIS_PASSWORD}}"
key = "${{env:E2E_FLEET_KEY}}"
ca_file = "{}"

[providers.api]
kind = "http"
url = "{}/token"
token = "/token"
expires = "jwt"
share = "api"
"#,
        redis.url(),
        certs.path().join("ca.pem").display(),
        upstream.uri()
    );
    let env = [
        ("E2E_FLEET_KEY", KEY),
        ("E2E_REDIS_PASSWORD", "e2e-redis-password"),
    ];
    let first = Daemon::start_with_env(&config, &env);
    let second = Daemon::start_with_env(&config, &env);
    let a = first.client().get("api").unwrap();
    let b = second.client().get("api").unwrap();
    assert_eq!(a.value, b.value);
    assert_eq!(served.load(Ordering::SeqCst), 1, "{}", second.log());
    assert!(!redis.keys("tokend:default:*").is_empty());
}

#[test]
fn sentinel_failover_in_the_middle_of_a_run_keeps_the_fleet_sharing() {
    use tokend_e2e::redis::Sentinel;
    let mut primary = RedisServer::start();
    let replica = RedisServer::start_with(
        &["--replicaof", "127.0.0.1", &primary.port().to_string()],
        &[],
    );
    let sentinels: Vec<Sentinel> = (0..3).map(|_| Sentinel::start(primary.port(), 2)).collect();
    let nodes: Vec<String> = sentinels
        .iter()
        .map(|s| format!("127.0.0.1:{}", s.port()))
        .collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (upstream, served) = runtime.block_on(token_endpoint(3600, Duration::ZERO));
    let config = config(
        &format!("redis-sentinel://{}/mymaster/0", nodes.join(",")),
        "sentinel",
        &upstream.uri(),
        "",
    );
    let env = [("E2E_FLEET_KEY", KEY)];
    let first = Daemon::start_with_env(&config, &env);
    let second = Daemon::start_with_env(&config, &env);
    let token = first.client().get("api").unwrap();
    assert_eq!(second.client().get("api").unwrap().value, token.value);
    assert_eq!(served.load(Ordering::SeqCst), 1);
    // The primary dies; the sentinels promote the replica.
    primary.stop();
    let deadline = Instant::now() + Duration::from_secs(30);
    while sentinels[0].primary_port() != Some(replica.port()) {
        assert!(
            Instant::now() < deadline,
            "no failover: {}",
            sentinels[0].log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Sharing goes on through the new primary: one daemon fetches anew, the other adopts it.
    std::thread::sleep(Duration::from_millis(5_100)); // invalidation is rate-limited
    assert_eq!(code(&first.tok(&["invalidate", "api"])), 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    let renewed = loop {
        let renewed = first.client().get("api").unwrap();
        if replica.keys("tokend:sentinel:*:access").len() == 1 && renewed.value != token.value {
            break renewed;
        }
        assert!(
            Instant::now() < deadline,
            "nothing shared after the failover: {}",
            first.log()
        );
        std::thread::sleep(Duration::from_millis(500));
        let _ = first.tok(&["invalidate", "api"]);
    };
    std::thread::sleep(Duration::from_millis(5_100));
    assert_eq!(code(&second.tok(&["invalidate", "api"])), 0);
    let before = served.load(Ordering::SeqCst);
    assert_eq!(second.client().get("api").unwrap().value, renewed.value);
    assert_eq!(
        served.load(Ordering::SeqCst),
        before,
        "the second daemon took it from the fleet"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalidation_drops_the_shared_token_only_if_it_is_the_one_served() {
    let redis = RedisServer::start();
    let (upstream, served) = token_endpoint(3600, Duration::ZERO).await;
    let config = config(&redis.url(), "inval", &upstream.uri(), "");
    let daemons = blocking(move || daemons(2, &config)).await;
    let get = |index: usize| daemons[index].client().get("api").unwrap().value;
    let first = get(0);
    assert_eq!(get(1), first);
    assert_eq!(served.load(Ordering::SeqCst), 1);
    // The API refused the token on the first machine: it goes, fleet-wide.
    assert_eq!(code(&daemons[0].tok(&["invalidate", "api"])), 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !redis.keys("tokend:inval:*:access").is_empty() {
        assert!(
            Instant::now() < deadline,
            "the shared token was not dropped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = get(0);
    assert_ne!(second, first);
    assert_eq!(served.load(Ordering::SeqCst), 2);
    // The second machine invalidates the token it was served (the old one): the newer shared
    // token stays, and it takes that one instead of fetching.
    assert_eq!(code(&daemons[1].tok(&["invalidate", "api"])), 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(redis.keys("tokend:inval:*:access").len(), 1);
    assert_eq!(get(1), second);
    assert_eq!(served.load(Ordering::SeqCst), 2);
}

#[test]
fn a_login_on_one_machine_is_a_session_for_the_whole_fleet() {
    use std::io::{BufRead, BufReader};
    use tokend_e2e::oidc::{CLI, OidcServer};
    let redis = RedisServer::start();
    let server =
        OidcServer::start_with_env(&[("ACCESS_TOKEN_TTL", "60"), ("DEVICE_INTERVAL", "1")]);
    let config = format!(
        r#"
[fleet]
url = "{}"
key = "${{env:E2E_FLEET_KEY}}"
namespace = "login"

[providers.tv]
kind = "oauth2"
grant = "device_code"
issuer = "{}"
client_id = "{}"
scopes = ["offline_access", "api.read"]
share = "tv"
"#,
        redis.url(),
        server.issuer(),
        CLI.id
    );
    let env = [("E2E_FLEET_KEY", KEY)];
    let here = Daemon::start_with_env(&config, &env);
    let there = Daemon::start_with_env(&config, &env);
    // Before any login, neither machine has a session.
    assert_eq!(code(&there.tok(&["get", "tv"])), 6);
    let mut login = tokend_e2e::tok_command(here.socket())
        .args(["login", "tv"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(login.stderr.take().unwrap()).lines();
    let code_text = loop {
        let line = lines.next().expect("tok login printed the code").unwrap();
        if let Some(code) = line.split("enter the code ").nth(1) {
            break code.trim().to_owned();
        }
    };
    server.approve_device(&code_text, "viewer").unwrap();
    let status = tokend_e2e::wait_bounded(&mut login);
    assert!(status.success(), "{status}");
    let token = here.client().get("tv").unwrap().value;
    // The other machine never logged in: it uses the fleet's session.
    let out = there.tok(&["get", "tv"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out).trim_end(), token.expose());
}
