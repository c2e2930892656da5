//! The shared store as the fleet needs it, behind one trait ([`SharedStore`]) so another store
//! could follow Redis. Values are opaque bytes here (sealed by [`super::crypto`]); the store
//! keeps them, their remaining lifetime, the lock and the generation, and tells waiters when an
//! entry changed.
//!
//! Per share, under the key prefix `B` (see [`Keys`]):
//! - `B:access` — the access token entry, `GEN:HASH:SEALED`, expiring with the token (its
//!   remaining lifetime is the key's TTL, read in the same round trip as the value);
//! - `B:refresh` — the refresh token entry, `GEN:SEALED`;
//! - `B:gen` — the generation of the last commit; every commit must name the one it read;
//! - `B:lock` — who may fetch upstream now (`SET NX PX`, a random owner id);
//! - `B:inval` — the fleet-wide invalidation rate limit;
//! - channel `B:done` — a commit happened (waiters also poll, as a backstop).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// A store operation in progress.
pub(crate) type StoreFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Why the store could not answer (the fleet is then down for this call).
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum StoreError {
    #[error("{0}")]
    Unavailable(String),
    #[error("no answer within {}", tokend_protocol::duration::format(*.0))]
    Timeout(Duration),
}

/// The Redis keys of one share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Keys {
    base: String,
}

impl Keys {
    pub(crate) fn new(base: String) -> Self {
        Self { base }
    }

    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    pub(crate) fn access(&self) -> String {
        format!("{}:access", self.base)
    }

    pub(crate) fn refresh(&self) -> String {
        format!("{}:refresh", self.base)
    }

    pub(crate) fn generation(&self) -> String {
        format!("{}:gen", self.base)
    }

    pub(crate) fn lock(&self) -> String {
        format!("{}:lock", self.base)
    }

    pub(crate) fn invalidation(&self) -> String {
        format!("{}:inval", self.base)
    }

    pub(crate) fn done(&self) -> String {
        format!("{}:done", self.base)
    }
}

/// What a share holds right now.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    /// The access entry and its remaining lifetime (`None`: no expiry).
    pub(crate) access: Option<(Vec<u8>, Option<Duration>)>,
    /// The refresh entry.
    pub(crate) refresh: Option<Vec<u8>>,
    /// The generation of the last commit (0: none yet).
    pub(crate) generation: u64,
}

/// A commit: fenced by the lock (when `owner` is set) and by the generation it read.
#[derive(Debug)]
pub(crate) struct Commit<'a> {
    /// The lock holder; `None` for a commit that needs no lock (a login replaces the session).
    pub(crate) owner: Option<&'a str>,
    /// The generation the committer read; the commit fails if another came first.
    pub(crate) expected: u64,
    /// The access entry and how long it lives (`None`: no expiry); `None`: left as it is.
    pub(crate) access: Option<(Vec<u8>, Option<Duration>)>,
    /// The refresh entry; `None`: left as it is.
    pub(crate) refresh: Option<Vec<u8>>,
}

/// How a commit ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Committed {
    Yes,
    /// The lock had expired and someone else holds it now: nothing was written.
    LockLost,
    /// Another commit came first (the generation moved): nothing was written.
    Conflict,
}

/// How a fleet-wide invalidation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Invalidated {
    /// The shared token was the one named, and is gone.
    Dropped,
    /// The shared token is another one (already replaced): kept.
    Other,
    /// Another machine invalidated this share a moment ago.
    RateLimited,
}

/// A shared store.
pub(crate) trait SharedStore: Send + Sync + std::fmt::Debug {
    /// The share's entries, their lifetime and generation, in one round trip.
    fn read<'a>(&'a self, keys: &'a Keys) -> StoreFuture<'a, Snapshot>;
    /// Takes the share's lock for `ttl` if nobody holds it.
    fn lock<'a>(&'a self, keys: &'a Keys, owner: &'a str, ttl: Duration) -> StoreFuture<'a, bool>;
    /// Gives the lock back, if `owner` still holds it.
    fn unlock<'a>(&'a self, keys: &'a Keys, owner: &'a str) -> StoreFuture<'a, ()>;
    /// Writes a commit (at generation `expected + 1`) and tells the waiters.
    fn commit<'a>(&'a self, keys: &'a Keys, commit: Commit<'a>) -> StoreFuture<'a, Committed>;
    /// Drops the access entry if its token hash is `hash`, at most once per `interval` per share.
    fn invalidate<'a>(
        &'a self,
        keys: &'a Keys,
        hash: &'a str,
        interval: Duration,
    ) -> StoreFuture<'a, Invalidated>;
    /// Completes when the share's entries may have changed (a commit anywhere in the fleet), or
    /// after `max` at the latest.
    fn changed<'a>(
        &'a self,
        keys: &'a Keys,
        max: Duration,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
}

/// `GEN:` and the rest of an entry value.
pub(crate) fn split_generation(value: &[u8]) -> Option<(u64, &[u8])> {
    let colon = value.iter().position(|&b| b == b':')?;
    let generation = std::str::from_utf8(&value[..colon]).ok()?.parse().ok()?;
    Some((generation, &value[colon + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_are_read_from_the_prefix() {
        assert_eq!(
            split_generation(b"12:abc:\x00\xff"),
            Some((12, &b"abc:\x00\xff"[..]))
        );
        assert_eq!(split_generation(b"x:abc"), None);
        assert_eq!(split_generation(b"nocolon"), None);
        let keys = Keys::new("tokend:prod:ab12".into());
        assert_eq!(keys.access(), "tokend:prod:ab12:access");
        assert_eq!(keys.done(), "tokend:prod:ab12:done");
    }
}
