//! id_tokens in the provider runtime under paused time: their own expiry, refreshes ahead of
//! it, what a caller is told when there is none or it would not last, and one carried over a
//! refresh that returns none.

use super::*;

async fn get_id(provider: &Arc<Provider>, min_ttl: u64) -> Result<String, Response> {
    provider
        .token_for(Wanted::IdToken, Duration::from_secs(min_ttl))
        .await
        .map(|served| {
            let id = served.cached.id_token().expect("an id_token was served");
            id.grant().token.expose().to_owned()
        })
}

#[tokio::test(start_paused = true)]
async fn an_id_token_is_refreshed_ahead_of_its_own_expiry() {
    // The access token lives an hour, its id_token ten minutes.
    let script = Script::new(vec![
        (0, Step::WithIdToken("a1", 3600, 600)),
        (0, Step::WithIdToken("a2", 3600, 600)),
    ]);
    let provider = provider(&script);
    let first = get_id(&provider, 30).await.unwrap();
    assert_eq!(jwt_sub(&first), "a1");
    let status = provider.status();
    let id_exp = status.id_token_expires_at_unix.unwrap();
    assert!(
        status.expires_at_unix.unwrap() > id_exp + 2900,
        "{status:?}"
    );
    // A caller of the id_token keeps the provider warm by the id_token's expiry: the refresh
    // runs in its advisory window, long before the access token's.
    advance(500).await;
    assert_eq!(script.calls(), 2);
    assert_eq!(jwt_sub(&get_id(&provider, 30).await.unwrap()), "a2");
    assert_eq!(get(&provider, 30).await.unwrap(), "a2");
}

#[tokio::test(start_paused = true)]
async fn a_grant_without_an_id_token_says_so_at_once() {
    let script = Script::new(vec![(0, Step::Token("t1", Some(3600)))]);
    let provider = provider(&script);
    let (code, message) = error_text(get_id(&provider, 30).await.unwrap_err());
    assert_eq!(code, ErrorCode::Upstream);
    assert!(
        message.contains("without an id_token") && message.contains("openid"),
        "{message}"
    );
    // The token it fetched is cached: asking again fetches nothing.
    let (_, again) = error_text(get_id(&provider, 30).await.unwrap_err());
    assert_eq!(again, message);
    assert_eq!(get(&provider, 30).await.unwrap(), "t1");
    assert_eq!(script.calls(), 1);
}

fn jwt_sub(jwt: &str) -> String {
    use base64::Engine as _;
    let claims = jwt.split('.').nth(1).unwrap();
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims)
        .unwrap();
    let claims: serde_json::Value = serde_json::from_slice(&claims).unwrap();
    claims["sub"].as_str().unwrap().to_owned()
}

#[tokio::test(start_paused = true)]
async fn an_expired_id_token_is_fetched_anew_not_reported_missing() {
    // The server hands out an id_token that has already expired, then a good one.
    let script = Script::new(vec![
        (0, Step::WithIdToken("a1", 3600, 0)),
        (0, Step::WithIdToken("a2", 3600, 600)),
    ]);
    let provider = provider(&script);
    assert_eq!(get(&provider, 30).await.unwrap(), "a1");
    assert!(provider.status().id_token_expires_at_unix.is_some());
    // Right after such an answer, asking again would only repeat it: said, not fetched.
    let (_, message) = error_text(get_id(&provider, 30).await.unwrap_err());
    assert!(message.contains("live 0 s"), "{message}");
    assert_eq!(script.calls(), 1);
    // Later (or after a restart, from the store) the expired id_token is fetched anew.
    advance(61).await;
    assert_eq!(jwt_sub(&get_id(&provider, 30).await.unwrap()), "a2");
    assert_eq!(script.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn an_id_token_is_judged_by_its_own_lifetime_not_the_access_tokens() {
    // The access token lives 20 s, its id_token an hour (the end-to-end test's setup).
    let script = Script::new(vec![
        (0, Step::WithIdToken("a1", 20, 3600)),
        (0, Step::WithIdToken("a2", 20, 3600)),
    ]);
    let provider = provider(&script);
    assert_eq!(jwt_sub(&get_id(&provider, 60).await.unwrap()), "a1");
    assert!(provider.invalidate().dropped);
    // That the access tokens live 20 s says nothing about an id_token wanted for a minute.
    assert_eq!(jwt_sub(&get_id(&provider, 60).await.unwrap()), "a2");
    assert_eq!(script.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_too_short_id_token_is_reported_with_its_own_time_left() {
    // The access token lives an hour, its id_token 20 s; two callers want the id_token for a
    // minute at once: both are told the id_token's 20 s, not the access token's hour.
    let script = Script::new(vec![(1, Step::WithIdToken("a1", 3600, 20))]);
    let provider = provider(&script);
    let callers: Vec<_> = (0..2)
        .map(|_| {
            let provider = Arc::clone(&provider);
            tokio::spawn(async move { get_id(&provider, 60).await })
        })
        .collect();
    for caller in callers {
        let (_, message) = error_text(caller.await.unwrap().unwrap_err());
        let left: u64 = message
            .split("live ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|secs| secs.parse().ok())
            .unwrap_or_else(|| panic!("{message}"));
        assert!((18..=20).contains(&left), "{message}");
    }
    assert_eq!(script.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_refresh_without_an_id_token_keeps_the_one_still_valid() {
    // OpenID Connect lets a refresh answer leave the id_token out: the one that came before is
    // served on while its own `exp` lasts, and does not make the provider refresh more often.
    let script = Script::new(vec![
        (0, Step::WithIdToken("a1", 300, 120)),
        (0, Step::Token("a2", Some(300))),
    ]);
    let provider = provider(&script);
    let id_token = get_id(&provider, 30).await.unwrap();
    advance(20).await;
    // 280 s left: this caller needs a new access token.
    assert_eq!(get(&provider, 290).await.unwrap(), "a2");
    assert_eq!(get_id(&provider, 30).await.unwrap(), id_token);
    assert!(provider.status().id_token_expires_at_unix.is_some());
    // Its advisory window opens (50 to 60 s before its end) without a refresh: refreshing
    // would bring no new one; only the access token's own schedule (much later) refreshes.
    advance(60).await;
    assert_eq!(script.calls(), 2);
    assert_eq!(get_id(&provider, 30).await.unwrap(), id_token);
}
