//! A shared provider's fetch: through the fleet first (see [`crate::fleet`]).
//!
//! Under the provider's own single flight (one task per daemon gets here):
//! 1. read the shared entry (value and remaining lifetime in one round trip); a token with the
//!    lifetime this fetch needs is adopted without any upstream request; the shared refresh
//!    token chain, if any, replaces the local one;
//! 2. else take the fleet lock: only its holder fetches upstream, after reading the entry once
//!    more (a commit may have landed meanwhile), with one attempt, and commits the token (and the
//!    rotated refresh token) fenced by the lock and the generation it read; everyone else waits
//!    for the commit (notified, and polling as a backstop) while callers with a still-valid
//!    token keep being served from memory. A holder that dies leaves a lock that expires.
//! 3. a commit that fails (the lock expired, or another commit came first) is never retried:
//!    the newer refresh token in the fleet is adopted instead of spending one twice.
//!
//! When the fleet is down, the provider fetches locally with its own single flight, except that
//! a refresh-token provider does not spend its refresh token without the fleet lock unless it
//! says `on_fleet_down = "local"`: it fails with a clear error once its access token expired.

use std::sync::Arc;
use std::time::Duration;

use tokend_protocol::Secret;
use tokio::time::Instant;

use super::{Origin, Provider, RETRY_BUDGET};
use crate::fleet::store::Committed;
use crate::fleet::{Down, Fleet, Share, View};
use crate::kinds::oauth2::{OAuth2Grant, google};
use crate::kinds::{FetchError, FetchState, Fetched, Lifetime, ProviderKind, SentSecrets};

/// How long a waiter sleeps between two reads of the shared entry when no notification came.
const POLL: Duration = Duration::from_millis(200);
/// What the lock adds to the provider's request timeout: the commit after the fetch.
const LOCK_MARGIN: Duration = Duration::from_secs(5);
/// Invalidations of one share closer together than this, fleet-wide, are ignored.
pub(super) const FLEET_INVALIDATE_INTERVAL: Duration = Duration::from_secs(5);

/// A provider's part in the fleet.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(super) fleet: Arc<Fleet>,
    pub(super) share: Share,
    /// `on_fleet_down = "local"`.
    pub(super) local_when_down: bool,
}

/// What a fetch needs from the fleet's token.
#[derive(Debug, Clone, Copy)]
pub(super) enum Want {
    /// A caller waits: at least this lifetime.
    Caller(Duration),
    /// A background refresh: a token that lives longer than the current one (which has this
    /// much left; `None`: none or no expiry).
    Fresher(Option<Duration>),
    /// Only what the fleet holds (this daemon backs off after a failure): no lock, no upstream.
    AdoptOnly(Duration),
}

impl Want {
    fn accepts(self, remaining: Option<Duration>) -> bool {
        let Some(remaining) = remaining else {
            return true;
        };
        match self {
            Self::Caller(min) | Self::AdoptOnly(min) => {
                remaining >= min.max(Duration::from_secs(1))
            }
            // The entry of the token this daemon holds has the same expiry, give or take the
            // milliseconds of Redis's PTTL: anything later by more is a newer token.
            Self::Fresher(current) => {
                remaining > current.unwrap_or_default() + Duration::from_millis(250)
            }
        }
    }
}

/// The upstream identity of a kind: what an entry must have been obtained from to be served
/// (token URL or issuer, client id, grant, scopes, parameters; for an exchange its method, URL
/// and token pointer; a GitHub App's id; a Google service account's e-mail and key id, from its
/// key file at each fetch: see `Provider::for_account`). Secrets and machine-specific
/// references are left out, so every machine of the fleet with the same configuration agrees.
pub(crate) fn identity(kind: &ProviderKind) -> String {
    match kind {
        ProviderKind::OAuth2(config) => {
            let endpoint = match &config.endpoint {
                crate::kinds::oauth2::TokenEndpoint::TokenUrl(url)
                | crate::kinds::oauth2::TokenEndpoint::Issuer(url) => url.as_str(),
            };
            format!(
                "oauth2 {endpoint} {} {} {:?} {:?}",
                config.client_id,
                config.grant.name(),
                config.scopes,
                config.params
            )
        }
        ProviderKind::Http(exchange) => format!(
            "http {} {} {}",
            exchange.method.as_str(),
            exchange.url,
            exchange.token
        ),
        ProviderKind::GitHubApp(app) => format!(
            "github-app {} app {} {:?} {:?}",
            app.base_url, app.app_id, app.installation, app.exchange.body
        ),
        ProviderKind::Google(account) => format!(
            "google-service-account {:?} {:?}",
            account.wants, account.subject
        ),
        other => other.name().to_owned(),
    }
}

impl Provider {
    /// Whether this provider's refresh token may be spent only under the fleet lock.
    fn spends_refresh_tokens(&self) -> bool {
        matches!(
            &self.config.kind,
            ProviderKind::OAuth2(config) if !matches!(
                config.grant,
                OAuth2Grant::ClientCredentials | OAuth2Grant::JwtBearer(_)
            )
        )
    }

    /// Obtains a token: through the fleet for a shared provider, else upstream. Returns where
    /// it came from.
    pub(super) async fn obtain(
        &self,
        state: &mut FetchState,
        want: Want,
    ) -> (Result<Fetched, FetchError>, Origin) {
        let Some(configured) = &self.shared else {
            let outcome = match want {
                Want::Caller(_) => self.fetch_retrying(state).await,
                _ => self.timed_fetch(state).await,
            };
            return (outcome, Origin::Upstream);
        };
        let shared = &match self.for_account(configured).await {
            Ok(shared) => shared,
            Err(error) => return (Err(error), Origin::Upstream),
        };
        let deadline = Instant::now() + RETRY_BUDGET;
        loop {
            let view = match shared.fleet.read(&shared.share).await {
                Ok(view) => view,
                Err(down) => return self.fleet_down(shared, state, want, &down).await,
            };
            if let Some(adopted) = self.adopt(shared, state, view, want).await {
                return (Ok(adopted), Origin::Fleet);
            }
            if let Want::AdoptOnly(_) = want {
                return (
                    Err(FetchError::Transient {
                        message: "the fleet holds no token yet and this daemon is backing off"
                            .to_owned(),
                        retry_after: None,
                    }),
                    Origin::Fleet,
                );
            }
            let ttl = self.lock_ttl();
            match shared.fleet.lock(&shared.share, ttl).await {
                Ok(true) => return self.fetch_as_holder(shared, state, want).await,
                Ok(false) => {
                    self.counters.fleet_lock_wait();
                    let now = Instant::now();
                    if now >= deadline {
                        return (
                            Err(FetchError::Transient {
                                message: format!(
                                    "another tokend of the fleet holds the lock of share `{}` \
                                     and committed no token within {} s",
                                    shared.share.name,
                                    RETRY_BUDGET.as_secs()
                                ),
                                retry_after: None,
                            }),
                            Origin::Fleet,
                        );
                    }
                    let wait = POLL.min(deadline.saturating_duration_since(now));
                    shared.fleet.changed(&shared.share, wait).await;
                }
                Err(down) => return self.fleet_down(shared, state, want, &down).await,
            }
        }
    }

    /// The share with the identity of the account this fetch would use: a Google service
    /// account's comes from its key file, which is read at every fetch (two machines with one
    /// share name but different key files never share tokens).
    async fn for_account(&self, shared: &Shared) -> Result<Shared, FetchError> {
        let share = match &self.config.kind {
            ProviderKind::Google(account) => {
                let sent = SentSecrets::default();
                let cx = self.services.cx(&self.config.name, &sent);
                let identity = google::account_identity(&cx, account)
                    .await
                    .map_err(|error| {
                        error
                            .map_message(|message| sent.mask(&message))
                            .in_provider(&self.config.name)
                    })?;
                shared.share.for_account(&identity)
            }
            _ => shared.share.clone(),
        };
        Ok(Shared {
            fleet: Arc::clone(&shared.fleet),
            share,
            local_when_down: shared.local_when_down,
        })
    }

    /// How long the fleet lock is held at most: one upstream attempt and the commit.
    fn lock_ttl(&self) -> Duration {
        self.request_timeout() + LOCK_MARGIN
    }

    /// Takes over what the fleet holds: its refresh token chain always, its access token when
    /// it lives long enough for `want`.
    async fn adopt(
        &self,
        shared: &Shared,
        state: &mut FetchState,
        view: View,
        want: Want,
    ) -> Option<Fetched> {
        let mut adopted_refresh = None;
        if let Some(refresh) = view.refresh
            && state.refresh_token.as_ref() != Some(&refresh)
        {
            self.take_chain(state, &refresh).await;
            adopted_refresh = Some(refresh);
        }
        let access = view.access?;
        if !want.accepts(access.remaining) {
            return None;
        }
        self.counters.fleet_hit();
        tracing::debug!(provider = %self.config.name, share = %shared.share.name, "token from the fleet");
        // Id tokens stay on the machine that fetched them.
        Some(Fetched {
            refresh_token: adopted_refresh,
            ..Fetched::new(
                access.token,
                access
                    .remaining
                    .map_or(Lifetime::Unbounded, Lifetime::Expires),
            )
        })
    }

    /// Makes the fleet's refresh token the one in force (the chain the fleet rotates wins over
    /// the configured token and over any local session).
    async fn take_chain(&self, state: &mut FetchState, refresh: &Secret) {
        state.refresh_token = Some(refresh.clone());
        if let Some(origin) = self.login_origin() {
            state.origin = Some(origin);
            self.inner().has_session = true;
        } else if let ProviderKind::OAuth2(config) = &self.config.kind
            && let OAuth2Grant::RefreshToken { refresh_token } = &config.grant
        {
            // A configured refresh_token grant follows its chain only while the chain
            // descends from the configured token: the fleet's does (same configuration).
            state.origin = refresh_token.resolve(&self.services.secrets).await.ok();
        }
    }

    /// The lock holder's fetch: read once more, one upstream attempt, the fenced commit.
    async fn fetch_as_holder(
        &self,
        shared: &Shared,
        state: &mut FetchState,
        want: Want,
    ) -> (Result<Fetched, FetchError>, Origin) {
        let fleet = &shared.fleet;
        let view = match fleet.read(&shared.share).await {
            Ok(view) => view,
            Err(down) => {
                fleet.unlock(&shared.share).await;
                return self.fleet_down(shared, state, want, &down).await;
            }
        };
        let read = view.generation;
        if let Some(adopted) = self.adopt(shared, state, view, want).await {
            fleet.unlock(&shared.share).await;
            return (Ok(adopted), Origin::Fleet);
        }
        let outcome = self.timed_fetch(state).await;
        let mut fetched = match outcome {
            Ok(fetched) => fetched,
            Err(error) => {
                fleet.unlock(&shared.share).await;
                return (Err(error), Origin::Upstream);
            }
        };
        let remaining = fetched.remaining();
        let committed = fleet
            .commit(
                &shared.share,
                read,
                true,
                Some((&fetched.token, remaining)),
                fetched.refresh_token.as_ref(),
            )
            .await;
        match committed {
            Ok(Committed::Yes) => {}
            Ok(conflict) => {
                tracing::warn!(
                    provider = %self.config.name,
                    share = %shared.share.name,
                    "the fleet commit did not happen ({conflict:?}): another tokend committed \
                     first; its refresh token is adopted, this one is not kept"
                );
                fleet.unlock(&shared.share).await;
                // The newer chain in the fleet wins: a refresh token is never spent twice.
                if fetched.refresh_token.take().is_some()
                    && let Ok(view) = fleet.read(&shared.share).await
                    && let Some(refresh) = view.refresh
                {
                    self.take_chain(state, &refresh).await;
                }
            }
            Err(down) => {
                tracing::warn!(provider = %self.config.name, "the token is not shared: {down}");
            }
        }
        (Ok(fetched), Origin::Upstream)
    }

    /// The fleet is down: fetch locally with this daemon's own single flight, unless this
    /// provider must not spend its refresh token without the fleet lock.
    async fn fleet_down(
        &self,
        shared: &Shared,
        state: &mut FetchState,
        want: Want,
        down: &Down,
    ) -> (Result<Fetched, FetchError>, Origin) {
        self.counters.fleet_error();
        if matches!(want, Want::AdoptOnly(_))
            || (self.spends_refresh_tokens() && !shared.local_when_down)
        {
            return (
                Err(FetchError::Transient {
                    message: format!(
                        "{down}; share `{}` spends its refresh token only under the fleet lock \
                         (on_fleet_down = \"wait\"), so no new token until the fleet store is \
                         back",
                        shared.share.name
                    ),
                    retry_after: Some(Duration::from_secs(5)),
                }),
                Origin::Upstream,
            );
        }
        let outcome = match want {
            Want::Caller(_) => self.fetch_retrying(state).await,
            _ => self.timed_fetch(state).await,
        };
        (outcome, Origin::Upstream)
    }

    /// After `tok login`: the session goes to the fleet, so every machine can use it.
    pub(super) async fn share_login(
        &self,
        fetched_token: &Secret,
        remaining: Option<Duration>,
        refresh: Option<&Secret>,
    ) {
        let Some(shared) = &self.shared else {
            return;
        };
        for _ in 0..2 {
            let Ok(view) = shared.fleet.read(&shared.share).await else {
                tracing::warn!(provider = %self.config.name, "the login is not shared: the fleet store is down");
                return;
            };
            match shared
                .fleet
                .commit(
                    &shared.share,
                    view.generation,
                    false,
                    Some((fetched_token, remaining)),
                    refresh,
                )
                .await
            {
                Ok(Committed::Yes) => return,
                Ok(_) => {}
                Err(down) => {
                    tracing::warn!(provider = %self.config.name, "the login is not shared: {down}");
                    return;
                }
            }
        }
    }

    /// After `tok invalidate`: the shared token goes too, if it is the one dropped here.
    pub(super) fn invalidate_shared(&self, token: Secret) {
        let Some(shared) = &self.shared else {
            return;
        };
        let fleet = Arc::clone(&shared.fleet);
        let share = shared.share.clone();
        let name = self.config.name.clone();
        tokio::spawn(async move {
            match fleet
                .invalidate(&share, &token, FLEET_INVALIDATE_INTERVAL)
                .await
            {
                Ok(outcome) => tracing::info!(provider = %name, ?outcome, "fleet invalidation"),
                Err(down) => tracing::warn!(provider = %name, "fleet invalidation failed: {down}"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::parse_ok;

    #[test]
    fn github_apps_on_one_owner_have_their_own_identity() {
        let (config, _) = parse_ok(
            r#"
[providers.one]
preset = "github-app"
app_id = 1001
private_key = "${file:/keys/one.pem}"
owner = "acme"

[providers.other]
preset = "github-app"
app_id = "Iv1.other"
private_key = "${file:/keys/other.pem}"
owner = "acme"
"#,
        );
        let one = identity(&config.providers["one"].kind);
        let other = identity(&config.providers["other"].kind);
        assert_ne!(one, other);
        assert!(
            one.contains("1001") && other.contains("Iv1.other"),
            "{one} / {other}"
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn google_service_accounts_are_told_apart_by_their_key_file() {
        use crate::kinds::Services;
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key_file = |name: &str, email: &str| {
            let path = dir.path().join(name);
            let json = serde_json::json!({
                "type": "service_account",
                "client_email": email,
                "private_key": "-----BEGIN PRIVATE KEY-----\nnot-read-here\n-----END PRIVATE KEY-----\n",
                "private_key_id": format!("kid-{name}"),
                "token_uri": "https://oauth2.googleapis.com/token",
            });
            std::fs::write(&path, json.to_string()).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            path
        };
        let deploy = key_file("deploy.json", "deploy@proj.iam.gserviceaccount.com");
        let reader = key_file("reader.json", "reader@proj.iam.gserviceaccount.com");
        let config = |path: &std::path::Path| {
            parse_ok(&format!(
                "[providers.gcp]\npreset = \"google-service-account\"\nkey_file = \"{}\"\n\
                 scopes = [\"https://www.googleapis.com/auth/cloud-platform\"]\n",
                path.display()
            ))
            .0
        };
        let services = Services::new(None);
        let account_of = |path: std::path::PathBuf| {
            let config = config(&path);
            let services = &services;
            async move {
                let ProviderKind::Google(account) = &config.providers["gcp"].kind else {
                    panic!("google");
                };
                let sent = SentSecrets::default();
                let cx = services.cx("gcp", &sent);
                let account = google::account_identity(&cx, account).await.unwrap();
                (identity(&config.providers["gcp"].kind), account)
            }
        };
        let (deploy_config, deploy_account) = account_of(deploy).await;
        let (reader_config, reader_account) = account_of(reader).await;
        // The configurations agree but for the key file's path (left out of the identity: it
        // is machine-specific); the accounts do not.
        assert_eq!(deploy_config, reader_config);
        assert_ne!(deploy_account, reader_account);
        assert!(
            deploy_account.contains("deploy@proj.iam.gserviceaccount.com")
                && deploy_account.contains("kid-deploy.json"),
            "{deploy_account}"
        );
        assert!(
            !deploy_account.contains("not-read-here"),
            "{deploy_account}"
        );
    }
}
