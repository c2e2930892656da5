//! Where a provider's tokens come from ([`Fetch`]): the configured kind in the daemon
//! (`Configured`, which names the provider in its errors once and masks what upstream echoed),
//! a scripted source in tests, so that time-dependent behaviour runs under paused time without a
//! network. A source also asks for a new key when a `rotate` table replaces one.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokend_protocol::Secret;

use crate::config::ProviderConfig;
use crate::kinds::{
    FetchError, FetchState, Fetched, ProviderKind, SentSecrets, Services, static_secret,
};

/// A fetch in progress.
pub(crate) type FetchFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Fetched, FetchError>> + Send + 'a>>;

/// A request for a new key in progress (`rotate`).
pub(crate) type NewKeyFuture<'a> =
    Pin<Box<dyn Future<Output = Result<NewKey, FetchError>> + Send + 'a>>;

/// A key an API just issued in place of the one in force, and the configured key it descends
/// from.
#[derive(Debug)]
pub(crate) struct NewKey {
    pub(crate) key: Secret,
    pub(crate) origin: Secret,
}

/// Where a provider's tokens come from: its configured kind in the daemon, a scripted one in
/// tests (so that time-dependent behaviour runs under paused time, without a network).
pub(crate) trait Fetch: Send + Sync + std::fmt::Debug {
    fn fetch<'a>(&'a self, state: &'a mut FetchState) -> FetchFuture<'a>;

    /// Asks the API for a new key through the provider's `rotate` table (`state`: the key in
    /// force and what it descends from). A source that replaces no key says so.
    fn new_key<'a>(&'a self, _state: &'a FetchState) -> NewKeyFuture<'a> {
        Box::pin(async { Err(FetchError::Config(NO_ROTATE.to_owned())) })
    }
}

/// Why a source without a `rotate` table issues no new key.
const NO_ROTATE: &str = "it has no `rotate` table";

/// The configured kind of a provider. Its errors get the provider's name here, once.
#[derive(Debug)]
pub(super) struct Configured {
    /// The provider's own config (shared with it, not copied).
    pub(super) config: Arc<ProviderConfig>,
    pub(super) services: Arc<Services>,
}

impl Fetch for Configured {
    fn fetch<'a>(&'a self, state: &'a mut FetchState) -> FetchFuture<'a> {
        Box::pin(async move {
            let sent = SentSecrets::default();
            let cx = self.services.cx(&self.config.name, &sent);
            // Whatever upstream echoed of the request is masked before anyone sees it.
            self.config.kind.fetch(&cx, state).await.map_err(|error| {
                error
                    .map_message(|message| sent.mask(&message))
                    .in_provider(&self.config.name)
            })
        })
    }

    fn new_key<'a>(&'a self, state: &'a FetchState) -> NewKeyFuture<'a> {
        Box::pin(async move {
            let sent = SentSecrets::default();
            let cx = self.services.cx(&self.config.name, &sent);
            let requested = async {
                let ProviderKind::Static {
                    secret,
                    rotate: Some(rotation),
                } = &self.config.kind
                else {
                    return Err(FetchError::Config(NO_ROTATE.to_owned()));
                };
                let origin = static_secret::rotation_origin(&cx, secret, state).await?;
                let key = static_secret::rotate::request_new_key(&cx, rotation).await?;
                Ok(NewKey { key, origin })
            };
            requested.await.map_err(|error| {
                error
                    .map_message(|message| sent.mask(&message))
                    .in_provider(&self.config.name)
            })
        })
    }
}
