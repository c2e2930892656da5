//! Key rotation in the provider runtime under tokio's paused time: a scripted API issues the new
//! keys (no network), the store is a real one in a temporary directory.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokend_protocol::Secret;

use super::source::{FetchFuture, NewKeyFuture};
use super::*;
use crate::config::Presentation;
use crate::kinds::static_secret::Rotation;
use crate::kinds::static_secret::rotate::RotateMethod;
use crate::kinds::{FetchError, ProviderKind, SentSecrets, static_secret};
use crate::secret::SecretTemplate;
use crate::store::{KeySource, Store};

/// The API that issues keys: the `n`th new key is `kN`, issued (and in force at the API) as
/// soon as the request arrives, answered after `delay`; `failing` answers 500 instead.
#[derive(Debug, Default)]
struct Api {
    issued: AtomicUsize,
    failing: AtomicBool,
    delay: Duration,
}

impl Api {
    fn with_delay(secs: u64) -> Arc<Self> {
        Arc::new(Self {
            delay: Duration::from_secs(secs),
            ..Self::default()
        })
    }

    fn issued(&self) -> usize {
        self.issued.load(Ordering::SeqCst)
    }
}

/// A static provider's source: its configured key (a literal template) through the static
/// kind's own rules, and new keys from [`Api`].
#[derive(Debug)]
struct Keys {
    api: Arc<Api>,
    services: Arc<Services>,
    configured: SecretTemplate,
}

impl Fetch for Keys {
    fn fetch<'a>(&'a self, state: &'a mut FetchState) -> FetchFuture<'a> {
        Box::pin(async move {
            let sent = SentSecrets::default();
            let cx = self.services.cx("api", &sent);
            static_secret::fetch(&cx, &self.configured, state).await
        })
    }

    fn new_key<'a>(&'a self, state: &'a FetchState) -> NewKeyFuture<'a> {
        Box::pin(async move {
            let sent = SentSecrets::default();
            let cx = self.services.cx("api", &sent);
            let origin = static_secret::rotation_origin(&cx, &self.configured, state).await?;
            if self.api.failing.load(Ordering::SeqCst) {
                tokio::time::sleep(self.api.delay).await;
                return Err(FetchError::Transient {
                    message: "rotation POST https://api.example/rotate: HTTP 500".to_owned(),
                    retry_after: None,
                });
            }
            let n = self.api.issued.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(self.api.delay).await;
            Ok(NewKey {
                key: Secret::new(format!("k{n}")),
                origin,
            })
        })
    }
}

fn store(dir: &tempfile::TempDir) -> Arc<Store> {
    Arc::new(
        Store::open(
            &dir.path().join("data"),
            &KeySource::File(dir.path().join("store.key")),
        )
        .unwrap(),
    )
}

/// Provider `api`: the static key `configured`, with a `rotate` table (`every` seconds, if
/// any) when `rotates`, restored from `store` (none: no store).
fn instance(
    api: &Arc<Api>,
    store: Option<&Arc<Store>>,
    configured: &str,
    rotates: bool,
    every: Option<u64>,
) -> Provider {
    let secret = SecretTemplate::parse(configured).unwrap();
    let rotate = rotates.then(|| Rotation {
        method: RotateMethod::Post,
        url: "https://api.example/rotate".parse().unwrap(),
        auth: "admin".to_owned(),
        secret: "/apiKey".to_owned(),
        every: every.map(Duration::from_secs),
        timeout: None,
    });
    let config = ProviderConfig {
        name: "api".into(),
        kind: ProviderKind::Static {
            secret: secret.clone(),
            rotate: rotate.map(Box::new),
        },
        presentation: Presentation::default(),
        persist: true,
        share: None,
    };
    let services = Arc::new(Services::new(store.cloned()));
    let keys = Keys {
        api: Arc::clone(api),
        services: Arc::clone(&services),
        configured: secret,
    };
    let mut provider = Provider::with_fetcher(config, Box::new(keys), services);
    if let Some(store) = store {
        provider.restore(store);
        provider.store = Some(Arc::clone(store));
    }
    provider
}

async fn key(provider: &Arc<Provider>) -> Result<String, Response> {
    provider
        .token(Duration::from_secs(1))
        .await
        .map(|served| served.cached.grant.token.expose().to_owned())
}

fn stored_key(store: &Store) -> Option<String> {
    store
        .rotated_key("api")
        .map(|rotated| rotated.key.expose().to_owned())
}

fn error_message(response: Response) -> (ErrorCode, String) {
    match response {
        Response::Error(reply) => (reply.code, reply.message),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_reload_during_a_rotation_serves_the_new_key_never_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let api = Api::with_delay(5);
    let old = Arc::new(instance(&api, Some(&store), "k0", true, None));
    assert_eq!(key(&old).await.unwrap(), "k0");
    // The reload put a new instance in its place, which served the key too.
    let new = Arc::new(instance(&api, Some(&store), "k0", true, None).succeeding(&old));
    old.retire();
    assert_eq!(key(&new).await.unwrap(), "k0");
    // The replaced instance's rotation is in flight: the API invalidated k0 already.
    let rotation = tokio::spawn({
        let old = Arc::clone(&old);
        async move { old.rotate().await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(api.issued(), 1);
    // The new instance waits for its outcome instead of serving the dead key, and takes it.
    assert_eq!(key(&new).await.unwrap(), "k1");
    rotation.await.unwrap().unwrap();
    assert_eq!(key(&new).await.unwrap(), "k1");
    assert_eq!(stored_key(&store).as_deref(), Some("k1"));
}

#[tokio::test(start_paused = true)]
async fn a_key_a_replaced_instance_rotated_later_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let api = Api::with_delay(1);
    let old = Arc::new(instance(&api, Some(&store), "k0", true, None));
    let new = Arc::new(instance(&api, Some(&store), "k0", true, None).succeeding(&old));
    assert_eq!(key(&new).await.unwrap(), "k0");
    old.rotate().await.unwrap();
    assert_eq!(key(&new).await.unwrap(), "k1");
    // And the next rotation, the new instance's own, descends from the same configured key.
    new.rotate().await.unwrap();
    assert_eq!(key(&new).await.unwrap(), "k2");
    let stored = store.rotated_key("api").unwrap();
    assert_eq!(stored.key.expose(), "k2");
    assert_eq!(stored.origin.expose(), "k0");
}

#[tokio::test(start_paused = true)]
async fn without_the_rotate_table_the_rotated_key_stays_in_force() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let api = Api::with_delay(0);
    let rotating = Arc::new(instance(&api, Some(&store), "k0", true, None));
    rotating.rotate().await.unwrap();
    // The table was removed from the config (or the provider restarted without it): the key
    // the API invalidated does not come back.
    let plain = Arc::new(instance(&api, Some(&store), "k0", false, None));
    assert_eq!(key(&plain).await.unwrap(), "k1");
    // Replacing a running instance: it follows the store as well.
    let again = Arc::new(instance(&api, Some(&store), "k0", false, None).succeeding(&rotating));
    assert_eq!(key(&again).await.unwrap(), "k1");
    let (code, message) = error_message(again.rotate().await.unwrap_err());
    assert_eq!(code, ErrorCode::Config);
    assert!(message.contains("no `rotate` table"), "{message}");
}

#[tokio::test(start_paused = true)]
async fn a_rotation_runs_to_the_end_when_a_reload_stops_its_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let api = Api::with_delay(5);
    let old = Arc::new(instance(&api, Some(&store), "k0", true, Some(60)));
    assert_eq!(key(&old).await.unwrap(), "k0");
    old.start_rotation_schedule();
    // The schedule rotates after a minute; the API issues k1 at once and answers 5 s later.
    tokio::time::sleep(Duration::from_secs(62)).await;
    assert_eq!(api.issued(), 1);
    // A reload replaces the provider meanwhile, which stops its schedule.
    let new = Arc::new(instance(&api, Some(&store), "k0", true, Some(60)).succeeding(&old));
    old.retire();
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        stored_key(&store).as_deref(),
        Some("k1"),
        "the key the API issued was lost"
    );
    assert_eq!(key(&new).await.unwrap(), "k1");
}

#[tokio::test(start_paused = true)]
async fn a_rotation_runs_to_the_end_when_its_caller_hangs_up() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let api = Api::with_delay(5);
    let provider = Arc::new(instance(&api, Some(&store), "k0", true, None));
    let caller = tokio::spawn({
        let provider = Arc::clone(&provider);
        async move { provider.rotate().await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(api.issued(), 1);
    // `tok rotate` was interrupted: its connection (and the request's future) went away.
    caller.abort();
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(stored_key(&store).as_deref(), Some("k1"));
    assert_eq!(key(&provider).await.unwrap(), "k1");
    assert!(provider.status().rotation_error.is_none());
}

#[tokio::test(start_paused = true)]
async fn tok_rotate_moves_the_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let api = Api::with_delay(0);
    let provider = Arc::new(instance(&api, Some(&store), "k0", true, Some(60)));
    provider.start_rotation_schedule();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let first_due = provider.status().next_rotation_unix.unwrap();
    // Half-way through the period, `tok rotate`: the next scheduled rotation is a whole period
    // after it, in the schedule and in `tok status` alike.
    tokio::time::sleep(Duration::from_secs(29)).await;
    let outcome = provider.rotate().await.unwrap();
    let next = outcome.next_rotation_unix.unwrap();
    assert_eq!(next, outcome.rotated_at_unix + 60);
    assert!(next >= first_due, "{next} {first_due}");
    assert_eq!(provider.status().next_rotation_unix, Some(next));
    tokio::time::sleep(Duration::from_secs(40)).await;
    assert_eq!(api.issued(), 1, "the schedule rotated at its old due time");
    assert_eq!(provider.status().next_rotation_unix, Some(next));
    tokio::time::sleep(Duration::from_secs(25)).await;
    assert_eq!(
        api.issued(),
        2,
        "the schedule did not rotate a period after tok rotate"
    );
    assert_eq!(key(&provider).await.unwrap(), "k2");
}

#[tokio::test(start_paused = true)]
async fn a_new_configured_key_abandons_the_rotated_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let api = Api::with_delay(0);
    let first = Arc::new(instance(&api, Some(&store), "k0", true, None));
    first.rotate().await.unwrap();
    assert_eq!(key(&first).await.unwrap(), "k1");
    // The user put another key in the config: it is in force, and the next rotation descends
    // from it.
    let replaced = Arc::new(instance(&api, Some(&store), "fresh", true, None));
    assert_eq!(key(&replaced).await.unwrap(), "fresh");
    replaced.rotate().await.unwrap();
    assert_eq!(key(&replaced).await.unwrap(), "k2");
    assert_eq!(store.rotated_key("api").unwrap().origin.expose(), "fresh");
    // Back to the old configured key: the key rotated from the new one is not its successor.
    let back = Arc::new(instance(&api, Some(&store), "k0", true, None));
    assert_eq!(key(&back).await.unwrap(), "k0");
}

#[tokio::test(start_paused = true)]
async fn a_new_key_that_cannot_be_saved_is_not_served_until_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let api = Api::with_delay(0);
    let provider = Arc::new(instance(&api, Some(&store), "k0", true, None));
    assert_eq!(key(&provider).await.unwrap(), "k0");
    // The store cannot be written (a directory where its file goes).
    let file = dir.path().join("data").join(crate::store::STORE_FILE);
    let _ = std::fs::remove_file(&file);
    std::fs::create_dir(&file).unwrap();
    let (code, message) = error_message(provider.rotate().await.unwrap_err());
    assert_eq!(code, ErrorCode::Config);
    assert!(message.contains("could not be saved"), "{message}");
    assert_eq!(api.issued(), 1);
    assert!(provider.status().rotation_error.is_some());
    // Neither key is served: the old one is dead at the API, the new one not durable yet.
    for _ in 0..3 {
        let (_, message) = error_message(key(&provider).await.unwrap_err());
        assert!(message.contains("could not be saved"), "{message}");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    // The store works again: the next request saves the key first, then serves it; the API
    // is not asked for another.
    std::fs::remove_dir(&file).unwrap();
    // (After the backoff its failures earned.)
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(key(&provider).await.unwrap(), "k1");
    assert_eq!(stored_key(&store).as_deref(), Some("k1"));
    assert_eq!(api.issued(), 1);
    // A restart finds it.
    drop(provider);
    let restarted = Arc::new(instance(&api, Some(&store), "k0", true, None));
    assert_eq!(key(&restarted).await.unwrap(), "k1");
}

#[tokio::test(start_paused = true)]
async fn without_a_store_a_rotation_is_refused_before_the_api_is_asked() {
    let api = Api::with_delay(0);
    let provider = Arc::new(instance(&api, None, "k0", true, Some(60)));
    let (code, message) = error_message(provider.rotate().await.unwrap_err());
    assert_eq!(code, ErrorCode::Config);
    assert!(message.contains("keeps no store"), "{message}");
    provider.start_rotation_schedule();
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(api.issued(), 0);
    assert_eq!(key(&provider).await.unwrap(), "k0");
}
