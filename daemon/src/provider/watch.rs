//! Who follows a provider's token besides its callers: change notifications (each time the
//! cached token is replaced or dropped) and standing users (a token file), which keep the
//! provider warm. Without a standing user, a token nobody asked for since its last refresh is
//! not refreshed again (idle providers are not kept warm forever).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::watch;

use super::{Inner, Provider};

/// A standing user of a provider: while it exists, the provider refreshes ahead of expiry as if
/// a caller used every token.
#[derive(Debug)]
pub(crate) struct Standing(Arc<Provider>);

impl Drop for Standing {
    fn drop(&mut self) {
        self.0.standing.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Provider {
    /// Registers a standing user until the returned guard is dropped.
    pub(crate) fn stand(self: &Arc<Self>) -> Standing {
        self.standing.fetch_add(1, Ordering::Relaxed);
        Standing(Arc::clone(self))
    }

    /// Notified each time the cached token is replaced or dropped (the value is a generation
    /// number; only its changes matter).
    pub(crate) fn changes(&self) -> watch::Receiver<u64> {
        self.changes
            .get_or_init(|| watch::Sender::new(0))
            .subscribe()
    }

    /// Whether the current token has a user: a caller asked for it, or a standing user exists.
    pub(super) fn wanted(&self, inner: &Inner) -> bool {
        inner.used || self.standing.load(Ordering::Relaxed) > 0
    }

    /// Tells the followers that the token of `generation` replaced the previous one.
    pub(super) fn announce(&self, generation: u64) {
        if let Some(changes) = self.changes.get() {
            changes.send_replace(generation);
        }
    }
}
