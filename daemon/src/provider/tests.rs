//! The provider runtime under paused time: scripted fetches, no network.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokend_protocol::Secret;

mod id_tokens;
mod references;

use super::cache::advisory_start;
use super::refresh::backoff;
use super::source::FetchFuture;
use super::*;
use crate::config::Presentation;
use crate::kinds::Lifetime;
use crate::kinds::{FetchError, Fetched, ProviderKind, SentSecrets};
use crate::secret::SecretTemplate;
use tokend_protocol::ProviderState;

/// One scripted fetch: after `delay`, a token with a lifetime, or a failure.
#[derive(Debug)]
enum Step {
    Token(&'static str, Option<u64>),
    /// A token living `.1` s with an id_token whose `exp` is `.2` s from now.
    WithIdToken(&'static str, u64, u64),
    Fail(FetchError),
}

/// An unsigned JWT with `sub` and `exp` `secs` from now (wall clock).
fn id_jwt(sub: &str, secs: u64) -> String {
    use base64::Engine as _;
    let b64 = |text: String| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text);
    format!(
        "{}.{}.sig",
        b64(r#"{"alg":"RS256"}"#.to_owned()),
        b64(format!(
            r#"{{"sub":"{sub}","exp":{}}}"#,
            tokend_protocol::clock::unix_now() + secs
        ))
    )
}

#[derive(Debug, Default)]
struct Script {
    steps: Mutex<VecDeque<(Duration, Step)>>,
    calls: AtomicUsize,
}

impl Script {
    fn new(steps: Vec<(u64, Step)>) -> Arc<Self> {
        Arc::new(Self {
            steps: Mutex::new(
                steps
                    .into_iter()
                    .map(|(delay, step)| (Duration::from_secs(delay), step))
                    .collect(),
            ),
            calls: AtomicUsize::new(0),
        })
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[derive(Debug)]
struct Scripted(Arc<Script>);

/// Records the refresh token in force when it is asked for a token.
#[derive(Debug, Default)]
struct SeesRefreshToken(Mutex<Vec<Option<String>>>);

impl Fetch for SeesRefreshToken {
    fn fetch<'a>(&'a self, state: &'a mut FetchState) -> FetchFuture<'a> {
        let seen = state.refresh_token.as_ref().map(|t| t.expose().to_owned());
        self.0.lock().unwrap().push(seen);
        Box::pin(async move {
            Ok(Fetched::new(
                Secret::from("access"),
                Lifetime::Expires(Duration::from_secs(3600)),
            ))
        })
    }
}

#[tokio::test]
async fn a_rotation_saved_by_a_replaced_instance_is_followed_but_not_an_older_one() {
    use crate::store::{KeySource, Store, StoredRefresh};
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        Store::open(
            &dir.path().join("data"),
            &KeySource::File(dir.path().join("store.key")),
        )
        .unwrap(),
    );
    let save = |token: &str| {
        store
            .update(|contents| {
                contents.refresh_tokens.insert(
                    "api".into(),
                    StoredRefresh {
                        token: Secret::from(token),
                        origin: Secret::from("chain"),
                    },
                );
            })
            .unwrap();
    };
    let fetcher = Arc::new(SeesRefreshToken::default());
    #[derive(Debug)]
    struct Shared(Arc<SeesRefreshToken>);
    impl Fetch for Shared {
        fn fetch<'a>(&'a self, state: &'a mut FetchState) -> FetchFuture<'a> {
            self.0.fetch(state)
        }
    }
    let config = ProviderConfig {
        name: "api".into(),
        kind: ProviderKind::Static {
            secret: SecretTemplate::parse("${env:UNUSED}").unwrap(),
            rotate: None,
        },
        presentation: Presentation::default(),
        persist: true,
        share: None,
    };
    let mut provider = Provider::with_fetcher(
        config,
        Box::new(Shared(Arc::clone(&fetcher))),
        Arc::new(Services::new(None)),
    );
    provider.store = Some(Arc::clone(&store));
    {
        let state = provider.flight.get_mut();
        state.refresh_token = Some(Secret::from("rt-1"));
        state.origin = Some(Secret::from("chain"));
    }
    let provider = Arc::new(provider);

    // The replaced instance rotated rt-1 into rt-2 and saved it: this one follows.
    save("rt-2");
    provider.token(Duration::from_secs(1)).await.unwrap();
    // A rotation this instance could not save is newer than the store's: it is kept.
    {
        let mut state = provider.flight.lock().await;
        state.refresh_token = Some(Secret::from("rt-3"));
        state.unsaved_rotation = true;
    }
    provider.invalidate();
    provider.token(Duration::from_secs(1)).await.unwrap();
    // Another chain in the store (the user configured a new refresh token) is not taken.
    save("rt-9");
    store
        .update(|contents| {
            contents.refresh_tokens.get_mut("api").unwrap().origin = Secret::from("other");
        })
        .unwrap();
    {
        let mut state = provider.flight.lock().await;
        state.unsaved_rotation = false;
    }
    tokio::time::pause();
    tokio::time::advance(INVALIDATE_INTERVAL).await;
    tokio::time::resume();
    provider.invalidate();
    provider.token(Duration::from_secs(1)).await.unwrap();
    assert_eq!(
        *fetcher.0.lock().unwrap(),
        [
            Some("rt-2".to_owned()),
            Some("rt-3".to_owned()),
            Some("rt-3".to_owned())
        ]
    );
}

/// Rotates the refresh token in force into its successor (`rt-N` → `rt-N+1`) after `delay`,
/// recording each token it was handed.
#[derive(Debug)]
struct Rotating {
    delay: Duration,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Fetch for Rotating {
    fn fetch<'a>(&'a self, state: &'a mut FetchState) -> FetchFuture<'a> {
        let presented = state
            .refresh_token
            .as_ref()
            .map(|t| t.expose().to_owned())
            .unwrap_or_default();
        self.seen.lock().unwrap().push(presented.clone());
        Box::pin(async move {
            tokio::time::sleep(self.delay).await;
            let n: u32 = presented.trim_start_matches("rt-").parse().unwrap_or(0);
            Ok(Fetched {
                refresh_token: Some(Secret::from(format!("rt-{}", n + 1))),
                ..Fetched::new(
                    Secret::from("access"),
                    Lifetime::Expires(Duration::from_secs(3600)),
                )
            })
        })
    }
}

#[tokio::test]
async fn a_replacement_waits_for_the_rotation_its_predecessor_is_running() {
    // A reload replaced the provider while the old instance's refresh was in flight: the new
    // instance must present the token that refresh rotates to, not the one it spent (the soak
    // saw a refresh token presented twice after a reload).
    use crate::store::{KeySource, Store, StoredRefresh};
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        Store::open(
            &dir.path().join("data"),
            &KeySource::File(dir.path().join("store.key")),
        )
        .unwrap(),
    );
    store
        .update(|contents| {
            contents.refresh_tokens.insert(
                "api".into(),
                StoredRefresh {
                    token: Secret::from("rt-1"),
                    origin: Secret::from("chain"),
                },
            );
        })
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let instance = |delay: u64| {
        let config = ProviderConfig {
            name: "api".into(),
            kind: ProviderKind::Static {
                secret: SecretTemplate::parse("${env:UNUSED}").unwrap(),
                rotate: None,
            },
            presentation: Presentation::default(),
            persist: true,
            share: None,
        };
        let mut provider = Provider::with_fetcher(
            config,
            Box::new(Rotating {
                delay: Duration::from_millis(delay),
                seen: Arc::clone(&seen),
            }),
            Arc::new(Services::new(None)),
        );
        provider.store = Some(Arc::clone(&store));
        let state = provider.flight.get_mut();
        state.refresh_token = Some(Secret::from("rt-1"));
        state.origin = Some(Secret::from("chain"));
        provider
    };
    let old = Arc::new(instance(300));
    let new = Arc::new(instance(0).succeeding(&old));
    let refreshing = {
        let old = Arc::clone(&old);
        tokio::spawn(async move { old.token(Duration::from_secs(1)).await.map(|_| ()) })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    new.token(Duration::from_secs(1)).await.unwrap();
    refreshing.await.unwrap().unwrap();
    assert_eq!(*seen.lock().unwrap(), ["rt-1", "rt-2"]);
    assert_eq!(
        store.refresh_token("api").unwrap().token.expose(),
        "rt-3",
        "the new instance's rotation is the one in force"
    );
}

impl Fetch for Scripted {
    fn fetch<'a>(&'a self, _state: &'a mut FetchState) -> FetchFuture<'a> {
        Box::pin(async move {
            self.0.calls.fetch_add(1, Ordering::SeqCst);
            let next = self.0.steps.lock().unwrap().pop_front();
            let (delay, step) = next.expect("the script ran out of steps: an unexpected fetch");
            tokio::time::sleep(delay).await;
            match step {
                Step::Token(value, lifetime) => Ok(Fetched::new(
                    Secret::from(value),
                    lifetime.map_or(Lifetime::Unbounded, |secs| {
                        Lifetime::Expires(Duration::from_secs(secs))
                    }),
                )),
                Step::WithIdToken(value, lifetime, id_exp) => Ok(Fetched {
                    id_token: Some(Secret::new(id_jwt(value, id_exp))),
                    ..Fetched::new(
                        Secret::from(value),
                        Lifetime::Expires(Duration::from_secs(lifetime)),
                    )
                }),
                Step::Fail(error) => Err(error),
            }
        })
    }
}

fn provider(script: &Arc<Script>) -> Arc<Provider> {
    let config = ProviderConfig {
        name: "api".into(),
        kind: ProviderKind::Static {
            secret: SecretTemplate::parse("${env:UNUSED}").unwrap(),
            rotate: None,
        },
        presentation: Presentation::default(),
        persist: true,
        share: None,
    };
    Arc::new(Provider::with_fetcher(
        config,
        Box::new(Scripted(Arc::clone(script))),
        Arc::new(Services::new(None)),
    ))
}

fn transient(retry_after: Option<u64>) -> Step {
    Step::Fail(FetchError::Transient {
        message: "HTTP 503".into(),
        retry_after: retry_after.map(Duration::from_secs),
    })
}

async fn get(provider: &Arc<Provider>, min_ttl: u64) -> Result<String, Response> {
    provider
        .token(Duration::from_secs(min_ttl))
        .await
        .map(|served| served.cached.grant.token.expose().to_owned())
}

fn error_text(response: Response) -> (ErrorCode, String) {
    match response {
        Response::Error(reply) => (reply.code, reply.message),
        other => panic!("expected an error, got {other:?}"),
    }
}

async fn advance(secs: u64) {
    tokio::time::advance(Duration::from_secs(secs)).await;
    // Let woken tasks (scheduled refreshes) run.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn concurrent_requests_cause_one_fetch() {
    let script = Script::new(vec![(1, Step::Token("t1", Some(3600)))]);
    let provider = provider(&script);
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let provider = Arc::clone(&provider);
            tokio::spawn(async move { get(&provider, 30).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), "t1");
    }
    assert_eq!(script.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn refreshes_ahead_in_the_background_while_serving_the_cached_token() {
    let script = Script::new(vec![
        (0, Step::Token("t1", Some(1000))),
        (5, Step::Token("t2", Some(1000))),
    ]);
    let provider = provider(&script);
    assert_eq!(get(&provider, 30).await.unwrap(), "t1");
    // The advisory window of a 1000 s token opens 250-300 s before expiry.
    advance(760).await;
    assert_eq!(script.calls(), 2, "the scheduled refresh started");
    assert_eq!(provider.status().state, ProviderState::Refreshing);
    // Callers keep getting the cached token at once while the refresh runs.
    assert_eq!(get(&provider, 30).await.unwrap(), "t1");
    advance(6).await;
    assert_eq!(get(&provider, 30).await.unwrap(), "t2");
    assert_eq!(provider.status().state, ProviderState::Fresh);
    assert_eq!(script.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_mandatory_window_makes_callers_wait_for_a_new_token() {
    let script = Script::new(vec![
        (0, Step::Token("t1", Some(100))),
        (2, Step::Token("t2", Some(100))),
    ]);
    let provider = provider(&script);
    assert_eq!(get(&provider, 30).await.unwrap(), "t1");
    advance(15).await;
    // 85 s left, but this caller needs 90 s: it waits for a new token.
    assert_eq!(get(&provider, 90).await.unwrap(), "t2");
    assert_eq!(script.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_failed_refresh_keeps_the_still_valid_token() {
    let script = Script::new(vec![
        (0, Step::Token("t1", Some(1000))),
        (0, transient(None)),
    ]);
    let provider = provider(&script);
    assert_eq!(get(&provider, 30).await.unwrap(), "t1");
    advance(760).await;
    assert_eq!(script.calls(), 2, "the background refresh ran and failed");
    assert_eq!(get(&provider, 30).await.unwrap(), "t1");
    let status = provider.status();
    assert_eq!(status.state, ProviderState::Fresh);
    assert_eq!(status.last_error.as_deref(), Some("HTTP 503"));
    assert!(status.next_refresh_unix.is_some(), "a retry is planned");
}

#[tokio::test(start_paused = true)]
async fn rejections_are_not_retried_until_invalidated() {
    let rejected = FetchError::Rejected {
        message: "invalid_client".into(),
        needs_login: false,
    };
    let script = Script::new(vec![
        (0, Step::Fail(rejected)),
        (0, Step::Token("t1", None)),
    ]);
    let provider = provider(&script);
    for _ in 0..5 {
        let (code, message) = error_text(get(&provider, 30).await.unwrap_err());
        assert_eq!(code, ErrorCode::Upstream);
        assert!(message.contains("invalid_client"));
    }
    assert_eq!(script.calls(), 1, "no retry loop after a rejection");
    assert_eq!(provider.status().state, ProviderState::Error);
    assert!(!provider.invalidate().dropped, "there was no token to drop");
    assert_eq!(get(&provider, 30).await.unwrap(), "t1");
    assert_eq!(script.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_refused_refresh_token_needs_a_login() {
    let refused = FetchError::Rejected {
        message: "invalid_grant".into(),
        needs_login: true,
    };
    let script = Script::new(vec![(0, Step::Fail(refused))]);
    let provider = provider(&script);
    let (code, _) = error_text(get(&provider, 30).await.unwrap_err());
    assert_eq!(code, ErrorCode::LoginRequired);
    assert_eq!(provider.status().state, ProviderState::NeedsLogin);
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured() {
    let script = Script::new(vec![
        (0, transient(Some(120))),
        (0, Step::Token("t1", None)),
    ]);
    let provider = provider(&script);
    let (code, _) = error_text(get(&provider, 30).await.unwrap_err());
    assert_eq!(code, ErrorCode::Upstream);
    advance(60).await;
    let (_, message) = error_text(get(&provider, 30).await.unwrap_err());
    assert!(message.contains("next attempt in"), "{message}");
    assert_eq!(
        script.calls(),
        1,
        "nothing is sent before Retry-After passes"
    );
    advance(61).await;
    assert_eq!(get(&provider, 30).await.unwrap(), "t1");
}

#[tokio::test(start_paused = true)]
async fn a_waiting_caller_gets_a_retry_after_a_transient_failure() {
    let script = Script::new(vec![(0, transient(None)), (0, Step::Token("t1", None))]);
    let provider = provider(&script);
    assert_eq!(get(&provider, 30).await.unwrap(), "t1");
    assert_eq!(script.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn tokens_shorter_than_the_minimum_are_refused() {
    let script = Script::new(vec![(0, Step::Token("short", Some(20)))]);
    let provider = provider(&script);
    let (code, message) = error_text(get(&provider, 30).await.unwrap_err());
    assert_eq!(code, ErrorCode::Upstream);
    assert!(
        message.contains("20 s") && message.contains("30 s"),
        "{message}"
    );
    // A caller that asks for less gets it from the cache.
    assert_eq!(get(&provider, 10).await.unwrap(), "short");
    // Asking again for more than the endpoint issues does not fetch again (no hammering).
    for _ in 0..5 {
        let (_, message) = error_text(get(&provider, 30).await.unwrap_err());
        assert!(message.contains("less than"), "{message}");
    }
    assert_eq!(script.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn local_failures_back_off_too() {
    let broken = FetchError::Config("secret: env var X is not set".into());
    let script = Script::new(vec![(0, Step::Fail(broken)), (0, Step::Token("t1", None))]);
    let provider = provider(&script);
    for _ in 0..5 {
        let (code, message) = error_text(get(&provider, 30).await.unwrap_err());
        assert_eq!(code, ErrorCode::Config);
        assert!(message.contains("env var X"), "{message}");
    }
    assert_eq!(
        script.calls(),
        1,
        "callers within the backoff do not re-run the source"
    );
    advance(2).await;
    assert_eq!(get(&provider, 30).await.unwrap(), "t1");
}

#[tokio::test(start_paused = true)]
async fn invalidation_drops_the_token_and_is_rate_limited() {
    let script = Script::new(vec![
        (0, Step::Token("t1", None)),
        (0, Step::Token("t2", None)),
    ]);
    let provider = provider(&script);
    assert_eq!(get(&provider, 30).await.unwrap(), "t1");
    assert!(provider.invalidate().dropped);
    assert_eq!(get(&provider, 30).await.unwrap(), "t2");
    let again = provider.invalidate();
    assert!(
        !again.dropped && again.message.contains("rate limit"),
        "{}",
        again.message
    );
    assert_eq!(get(&provider, 30).await.unwrap(), "t2");
    assert_eq!(script.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn idle_providers_are_not_kept_warm() {
    let script = Script::new(vec![
        (0, Step::Token("t1", Some(1000))),
        (0, Step::Token("t2", Some(1000))),
    ]);
    let provider = provider(&script);
    assert_eq!(get(&provider, 30).await.unwrap(), "t1");
    advance(760).await;
    assert_eq!(script.calls(), 2, "t1 was used, so it was refreshed");
    // Nobody asks for t2: its refresh stands down and it expires.
    advance(1100).await;
    assert_eq!(script.calls(), 2);
    assert_eq!(provider.status().state, ProviderState::Expired);
}

#[tokio::test(start_paused = true)]
async fn a_huge_upstream_lifetime_is_capped_instead_of_overflowing() {
    let script = Script::new(vec![(0, Step::Token("forever", Some(u64::MAX)))]);
    let provider = provider(&script);
    assert_eq!(get(&provider, 30).await.unwrap(), "forever");
    let status = provider.status();
    assert_eq!(status.state, ProviderState::Fresh);
    assert!(status.expires_at_unix.is_some());
}

#[tokio::test(start_paused = true)]
async fn a_slow_answer_counts_its_lifetime_from_the_request() {
    // The endpoint took 5 s to say "60 s": the token lives until 60 s after the request, not
    // after the answer (the soak's slow drips showed tokens reported as living longer).
    let script = Script::new(vec![(5, Step::Token("t1", Some(60)))]);
    let provider = provider(&script);
    let asked = Instant::now();
    let served = provider.token(Duration::from_secs(30)).await.unwrap();
    let expires = provider.inner().current.as_ref().unwrap().expires;
    assert_eq!(expires, Some(asked + Duration::from_secs(60)));
    let reported = served.cached.grant.expires_at_unix.unwrap();
    assert!(
        reported <= tokend_protocol::clock::unix_now() + 55,
        "reported {reported}, 55 s left"
    );
    // Whatever happens between the answer and the cache (the store's fsync) does not lengthen
    // it either: the entry counts from the fetch's `since`.
    let fetched = Fetched::new(
        Secret::from("t2"),
        Lifetime::Expires(Duration::from_secs(60)),
    );
    let since = fetched.since;
    advance(3).await;
    let cached = provider
        .cache(Ok(fetched), Trigger::Caller, Origin::Upstream)
        .unwrap();
    assert_eq!(
        provider.inner().current.as_ref().unwrap().expires,
        Some(since + Duration::from_secs(60))
    );
    assert!(cached.grant.expires_at_unix.unwrap() <= tokend_protocol::clock::unix_now() + 57);
}

#[tokio::test(start_paused = true)]
async fn an_abandoned_fetch_does_not_leave_the_provider_refreshing() {
    let script = Script::new(vec![
        (60, Step::Token("slow", None)),
        (0, Step::Token("t1", None)),
    ]);
    let provider = provider(&script);
    let waiting = tokio::spawn({
        let provider = Arc::clone(&provider);
        async move { get(&provider, 30).await }
    });
    advance(1).await;
    assert_eq!(provider.status().state, ProviderState::Refreshing);
    waiting.abort();
    let _ = waiting.await;
    assert_eq!(provider.status().state, ProviderState::Idle);
    assert_eq!(get(&provider, 30).await.unwrap(), "t1");
}

#[test]
fn advisory_window_is_a_quarter_at_least_a_minute_at_most_half() {
    let start = Instant::now();
    for _ in 0..50 {
        // One hour: a quarter (15 min) plus up to 3 min of jitter before expiry.
        let at = advisory_start(start, start + Duration::from_secs(3600));
        let before = (start + Duration::from_secs(3600)) - at;
        assert!(
            before >= Duration::from_secs(900) && before <= Duration::from_secs(1080),
            "{before:?}"
        );
        // Two minutes: the 60 s floor, capped at half the lifetime (60 s), plus jitter.
        let at = advisory_start(start, start + Duration::from_secs(120));
        let before = (start + Duration::from_secs(120)) - at;
        assert!(
            before >= Duration::from_secs(60) && before <= Duration::from_secs(72),
            "{before:?}"
        );
        // Ten seconds: half the lifetime, never before the token was obtained.
        let at = advisory_start(start, start + Duration::from_secs(10));
        assert!(at >= start && at <= start + Duration::from_secs(5));
    }
}

#[test]
fn backoff_doubles_with_jitter_caps_and_honours_retry_after() {
    for _ in 0..50 {
        let first = backoff(1, None);
        assert!(first >= Duration::from_millis(500) && first <= Duration::from_secs(1));
        let fourth = backoff(4, None);
        assert!(fourth >= Duration::from_secs(4) && fourth <= Duration::from_secs(8));
        let late = backoff(30, None);
        assert!(late <= BACKOFF_CAP && late >= BACKOFF_CAP / 2);
        assert_eq!(
            backoff(1, Some(Duration::from_secs(120))),
            Duration::from_secs(120)
        );
        assert_eq!(
            backoff(1, Some(Duration::from_secs(99_999))),
            RETRY_AFTER_CAP
        );
    }
}
