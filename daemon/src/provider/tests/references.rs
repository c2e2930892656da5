//! Providers that use each other's tokens (`${provider:NAME}`) in the provider runtime under
//! paused time: across a reload they never wait for each other forever, and a referenced
//! provider's failure keeps its class.

use std::collections::BTreeMap;

use super::*;

/// Asks another provider for its token after `delay`, as `${provider:NAME}` does through the
/// providers in force; wired once both exist.
#[derive(Debug, Default)]
struct Refers {
    delay: Duration,
    other: Mutex<Option<Arc<Provider>>>,
}

impl Fetch for Arc<Refers> {
    fn fetch<'a>(&'a self, _state: &'a mut FetchState) -> FetchFuture<'a> {
        Box::pin(async move {
            tokio::time::sleep(self.delay).await;
            let other = self.other.lock().unwrap().clone().expect("wired");
            match other.token(Duration::from_secs(1)).await {
                Ok(served) => Ok(Fetched::new(
                    served.cached.grant.token.clone(),
                    Lifetime::Expires(Duration::from_secs(3600)),
                )),
                Err(response) => Err(FetchError::Transient {
                    message: error_text(response).1,
                    retry_after: None,
                }),
            }
        })
    }
}

fn bare(name: &str, fetcher: Box<dyn Fetch>) -> Provider {
    let config = ProviderConfig {
        name: name.into(),
        kind: ProviderKind::Static {
            secret: SecretTemplate::parse("${env:UNUSED}").unwrap(),
            rotate: None,
        },
        presentation: Presentation::default(),
        persist: true,
        share: None,
    };
    Provider::with_fetcher(config, fetcher, Arc::new(Services::new(None)))
}

#[tokio::test(start_paused = true)]
async fn providers_that_refer_to_each_other_across_a_reload_never_hang() {
    // The old config: a → b. The new one: b → a. Old a's fetch holds the chain's turn it shares
    // with new a while it resolves b through the providers in force (new b), whose fetch
    // resolves new a, which waits for that turn.
    let old_a_refers = Arc::new(Refers {
        delay: Duration::from_secs(2),
        ..Refers::default()
    });
    let new_b_refers = Arc::new(Refers::default());
    let script = Script::new(vec![(0, Step::Token("a2", Some(3600)))]);
    let old_a = Arc::new(bare("a", Box::new(Arc::clone(&old_a_refers))));
    let new_a = Arc::new(bare("a", Box::new(Scripted(Arc::clone(&script)))).succeeding(&old_a));
    let new_b = Arc::new(bare("b", Box::new(Arc::clone(&new_b_refers))));
    *old_a_refers.other.lock().unwrap() = Some(Arc::clone(&new_b));
    *new_b_refers.other.lock().unwrap() = Some(Arc::clone(&new_a));

    let old_a_get = tokio::spawn({
        let old_a = Arc::clone(&old_a);
        async move { get(&old_a, 1).await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let new_b_get = tokio::spawn({
        let new_b = Arc::clone(&new_b);
        async move { get(&new_b, 1).await }
    });
    let ended = tokio::time::timeout(Duration::from_secs(600), async {
        (old_a_get.await.unwrap(), new_b_get.await.unwrap())
    })
    .await;
    let (old_a_got, new_b_got) = ended.expect("the providers waited for each other forever");
    // One side gave up waiting (with an error saying why); the other is then free.
    let (_, message) = error_text(new_b_got.unwrap_err());
    assert!(message.contains("did not finish its request"), "{message}");
    assert!(old_a_got.is_err());
    // Once their backoffs pass, the new config works.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(get(&new_b, 1).await.unwrap(), "a2");
}

/// The providers `${provider:NAME}` resolves through, as the daemon's are.
#[derive(Default)]
struct Named(Mutex<BTreeMap<String, Arc<Provider>>>);

impl crate::secret::TokenSource for Named {
    fn token<'a>(
        &'a self,
        name: &'a str,
        min_ttl: Duration,
    ) -> crate::secret::resolve::TokenFuture<'a> {
        Box::pin(async move {
            let provider = self.0.lock().unwrap().get(name).cloned().expect("known");
            provider.token_for_reference(min_ttl).await
        })
    }
}

/// A token exchange of another provider's token: resolves `${provider:b}` as a kind does.
#[derive(Debug)]
struct ExchangesB(Arc<Services>);

impl Fetch for ExchangesB {
    fn fetch<'a>(&'a self, _state: &'a mut FetchState) -> FetchFuture<'a> {
        Box::pin(async move {
            let sent = SentSecrets::default();
            let cx = self.0.cx("a", &sent);
            let subject = SecretTemplate::parse("${provider:b}").unwrap();
            let token = cx.resolve("subject_token", &subject).await?;
            Ok(Fetched::new(
                Secret::new(format!("exchanged-{}", token.expose())),
                Lifetime::Expires(Duration::from_secs(3600)),
            ))
        })
    }
}

#[tokio::test(start_paused = true)]
async fn a_referenced_providers_failure_keeps_its_class_and_holds_nothing_against_this_one() {
    let services = Arc::new(Services::new(None));
    let named = Arc::new(Named::default());
    services.secrets.set_token_source(Arc::clone(&named) as _);
    let needs_login = FetchError::Rejected {
        message: "provider `b`: its session ended; run `tok login b`".into(),
        needs_login: true,
    };
    let script = Script::new(vec![
        (0, Step::Fail(needs_login)),
        (0, Step::Token("b1", Some(3600))),
    ]);
    let b = Arc::new(bare("b", Box::new(Scripted(Arc::clone(&script)))));
    let a = Arc::new(bare("a", Box::new(ExchangesB(Arc::clone(&services)))));
    named.0.lock().unwrap().insert("b".into(), Arc::clone(&b));
    // b needs a login: so does a (not a transient upstream failure).
    let (code, message) = error_text(get(&a, 30).await.unwrap_err());
    assert_eq!(code, ErrorCode::LoginRequired, "{message}");
    assert!(message.contains("tok login b"), "{message}");
    let (code, _) = error_text(get(&a, 30).await.unwrap_err());
    assert_eq!(code, ErrorCode::LoginRequired);
    assert_eq!(script.calls(), 1, "b's own state answered the second time");
    // b is fixed (a login, here an invalidation that clears its failure): a works at once, with
    // no backoff of its own to sit out.
    b.invalidate();
    assert_eq!(get(&a, 30).await.unwrap(), "exchanged-b1");
}
