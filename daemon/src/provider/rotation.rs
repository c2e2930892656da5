//! Replacing a static provider's key through its `rotate` table: now (`tok rotate NAME`) or on
//! the `every` schedule.
//!
//! A rotation runs under the provider's single flight, so no fetch runs beside it:
//! 1. the key in force stops being served (the API may invalidate it the moment the request
//!    arrives; callers wait for the outcome instead of getting a key that may be dead);
//! 2. the new key is requested (see [`crate::kinds::static_secret::rotate`]);
//! 3. it is written to the store, fsynced, before anything serves it; then it is the cached
//!    token. From then on the old key is never served again: the configured literal or
//!    `${secret:…}` stays only the origin the rotated key descends from (a new configured key
//!    replaces it, as a new refresh token replaces a rotated chain).
//!
//! A failed request keeps the old key (served again) and shows the error in `tok status`. A new
//! key that could not be saved is held in memory and not served: the next request retries the
//! save first.

use std::sync::Arc;
use std::time::Duration;

use tokend_protocol::{ErrorCode, Response, RotationOutcome, clock};
use tokio::time::Instant;

use super::refresh::error_response;
use super::{Current, NewKey, Origin, PoisonError, Provider, Trigger};
use crate::kinds::static_secret::Rotation;
use crate::kinds::{FetchError, FetchState, Fetched, Lifetime, ProviderKind};
use crate::secret::SecretTemplate;
use crate::store::StoredRotated;

/// What `tok status` shows of a rotating key.
#[derive(Debug, Default, Clone)]
pub(crate) struct RotationState {
    /// When tokend last replaced the key (Unix seconds).
    pub(crate) rotated_at_unix: Option<u64>,
    /// When the schedule rotates next (Unix seconds).
    pub(crate) next_unix: Option<u64>,
    /// The same moment on the monotonic clock, from when it was set (see [`Provider::wait_until_due`]).
    next_at: Option<Instant>,
    /// Why the last rotation failed.
    pub(crate) error: Option<String>,
}

impl RotationState {
    /// The schedule rotates next at `unix` (Unix seconds).
    fn due_at(&mut self, unix: u64) {
        self.next_unix = Some(unix);
        self.next_at =
            Some(Instant::now() + Duration::from_secs(unix.saturating_sub(clock::unix_now())));
    }
}

/// The longest a failed scheduled rotation waits before trying again.
const RETRY_CAP: Duration = Duration::from_secs(3600);
/// How often a waiting schedule looks at the wall clock.
const WALL_CLOCK_CHECK: Duration = Duration::from_secs(60);

impl Provider {
    /// The provider's key template and `rotate` table, if it has one.
    fn rotation(&self) -> Option<(&SecretTemplate, &Rotation)> {
        match &self.config.kind {
            ProviderKind::Static {
                secret,
                rotate: Some(rotate),
            } => Some((secret, rotate)),
            _ => None,
        }
    }

    /// Replaces the key now: durably stored, then served. The old key stays if it fails.
    ///
    /// The rotation runs in a task of its own (tracked in [`Services::rotations`]), which this
    /// only waits for: the caller going away (a `tok rotate` that hangs up, the schedule a
    /// reload stops) does not end it halfway, after the API issued a key only it can store.
    ///
    /// [`Services::rotations`]: crate::kinds::Services::rotations
    pub(crate) async fn rotate(self: &Arc<Self>) -> Result<RotationOutcome, Response> {
        let name = &self.config.name;
        if self.rotation().is_none() {
            return Err(Response::error(
                ErrorCode::Config,
                format!(
                    "provider `{name}` has no `rotate` table, so tokend cannot replace its key; \
                     add rotate = {{ url = \"…\", auth = \"PROVIDER\", secret = \"/apiKey\" }} to \
                     [providers.{name}]"
                ),
            ));
        }
        if self.store.is_none() {
            return Err(Response::error(
                ErrorCode::Config,
                format!(
                    "provider `{name}`: this tokend keeps no store, so a new key could not be \
                     written durably before it is served (a restart would lose it after the API \
                     invalidated the old one); rotate it through a tokend that has its store"
                ),
            ));
        }
        let me = Arc::clone(self);
        let rotation = self
            .services
            .rotations
            .spawn(async move { me.rotate_to_the_end().await });
        rotation.await.unwrap_or_else(|err| {
            Err(Response::error(
                ErrorCode::Internal,
                format!(
                    "provider `{}`: the rotation stopped unexpectedly ({err}); see tokend's log \
                     and `tok status`",
                    self.config.name
                ),
            ))
        })
    }

    /// The rotation itself (see [`Provider::rotate`]).
    async fn rotate_to_the_end(self: &Arc<Self>) -> Result<RotationOutcome, Response> {
        let name = self.config.name.clone();
        let every = self.rotation().and_then(|(_, rotation)| rotation.every);
        let mut state = self.flight.lock().await;
        // In the chain's turn: an instance a reload replaced (or put in this one's place) neither
        // fetches nor rotates meanwhile, and takes over what this rotation stores.
        let _turn = match self.take_turn().await {
            Ok(turn) => turn,
            Err(error) => return Err(self.rotation_failed(&error)),
        };
        if let Err(error) = self.save_rotated(&mut state).await {
            return Err(self.rotation_failed(&error));
        }
        // The key being replaced is not served from now on, by this instance or one sharing its
        // chain: the API may invalidate it as soon as the request arrives.
        let epoch = self.chain.key_changing();
        let previous = {
            let mut inner = self.inner();
            inner.key_epoch = epoch;
            inner.current.take()
        };
        let (key, origin) = match self.fetcher.new_key(&state).await {
            Ok(NewKey { key, origin }) => (key, origin),
            Err(error) => {
                // The old key stays in force (unless something replaced it meanwhile).
                let mut inner = self.inner();
                if inner.current.is_none() {
                    inner.current = previous.map(|previous| Current {
                        key_epoch: epoch,
                        ..previous
                    });
                }
                drop(inner);
                return Err(self.rotation_failed(&error));
            }
        };
        let rotated_at_unix = clock::unix_now();
        state.rotated_key = Some(key.clone());
        state.rotated_origin = Some(origin);
        state.rotation_unsaved = true;
        if let Err(error) = self.save_rotated(&mut state).await {
            return Err(self.rotation_failed(&error));
        }
        let fetched = Fetched::new(key, Lifetime::Unbounded);
        let cached = self.cache(Ok(fetched), Trigger::Caller, Origin::Upstream);
        drop(state);
        if let Err(error) = cached {
            return Err(self.rotation_failed(&error));
        }
        let next_rotation_unix = every.map(|every| rotated_at_unix + every.as_secs());
        {
            let mut inner = self.inner();
            inner.rotation.rotated_at_unix = Some(rotated_at_unix);
            inner.rotation.error = None;
            if let Some(next) = next_rotation_unix {
                inner.rotation.due_at(next);
            }
        }
        tracing::info!(provider = %name, "rotated the key; the new one is stored and in force");
        Ok(RotationOutcome {
            provider: name,
            rotated_at_unix,
            next_rotation_unix,
        })
    }

    /// Writes a rotated key that is not in the store yet (before anything serves it); else
    /// takes over a newer one the store holds (a rotation the instance this one replaced on a
    /// reload finished after this one started).
    pub(super) async fn save_rotated(&self, state: &mut FetchState) -> Result<(), FetchError> {
        if !state.rotation_unsaved {
            if self.is_static()
                && let Some(stored) = self
                    .store
                    .as_ref()
                    .and_then(|store| store.rotated_key(&self.config.name))
                && state.rotated_key.as_ref() != Some(&stored.key)
            {
                tracing::debug!(provider = %self.config.name, "following a key rotated by a replaced instance");
                state.rotated_key = Some(stored.key);
                state.rotated_origin = Some(stored.origin);
                self.inner().rotation.rotated_at_unix = Some(stored.rotated_at_unix);
            }
            return Ok(());
        }
        let (Some(key), Some(origin)) = (state.rotated_key.clone(), state.rotated_origin.clone())
        else {
            state.rotation_unsaved = false;
            return Ok(());
        };
        let stored = StoredRotated {
            key,
            origin,
            rotated_at_unix: clock::unix_now(),
        };
        self.write_store(move |contents, name| {
            contents.rotated_keys.insert(name.to_owned(), stored);
            contents.key_since.remove(name);
        })
        .await
        .map_err(|message| {
            FetchError::Config(format!(
                "{message}; the new key could not be saved, so it is not served yet (the old \
                 one was replaced at the API: the next request tries the save again)"
            ))
        })?;
        state.rotation_unsaved = false;
        Ok(())
    }

    /// Records a failed rotation for `tok status` and logs it.
    fn rotation_failed(&self, error: &FetchError) -> Response {
        tracing::warn!(provider = %self.config.name, "rotation failed: {}", error.message());
        self.inner().rotation.error = Some(error.message().to_owned());
        error_response(error, "")
    }

    /// Starts the `every` schedule, if the provider has one (a reload's retire stops it).
    pub(crate) fn start_rotation_schedule(self: &Arc<Self>) {
        let Some(every) = self.rotation().and_then(|(_, rotation)| rotation.every) else {
            return;
        };
        if self.store.is_none() {
            tracing::warn!(
                provider = %self.config.name,
                "no store: the `every` schedule does not run (a rotated key must be stored first)"
            );
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let me = Arc::clone(self);
        let task = runtime.spawn(async move { me.rotation_schedule(every).await });
        let previous = self
            .rotation_task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(task.abort_handle());
        if let Some(previous) = previous {
            previous.abort();
        }
    }

    /// Rotates every `every`, counted from the last rotation (from when the configured key was
    /// first used when tokend never rotated it); after a failure, again after a backoff. The due
    /// time is `next_unix` of the rotation state, which every successful rotation moves (`tok
    /// rotate` too): the schedule follows it.
    async fn rotation_schedule(self: Arc<Self>, every: Duration) {
        let start = self.schedule_start().await + every.as_secs();
        {
            let mut inner = self.inner();
            // A rotation that finished meanwhile has set a later one.
            if inner.rotation.next_unix.is_none_or(|next| next < start) {
                inner.rotation.due_at(start);
            }
        }
        let mut failures: u32 = 0;
        loop {
            self.wait_until_due().await;
            if self.retired.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            // A success sets the next due time itself.
            if self.rotate().await.is_ok() {
                failures = 0;
            } else {
                failures = failures.saturating_add(1);
                let retry = clock::unix_now() + retry_delay(failures, every).as_secs();
                self.inner().rotation.due_at(retry);
            }
        }
    }

    /// Waits until the rotation state's next due time, by the wall clock or by the monotonic
    /// one, whichever comes first; a due time that moves meanwhile (`tok rotate`) is followed.
    /// Checked at least every minute, so a machine that slept rotates soon after it wakes (the
    /// monotonic clock stops during sleep), while tests run under tokio's paused time (which the
    /// wall clock does not follow).
    async fn wait_until_due(&self) {
        loop {
            let (Some(due), Some(at)) = ({
                let inner = self.inner();
                (inner.rotation.next_unix, inner.rotation.next_at)
            }) else {
                return;
            };
            let now = Instant::now();
            if clock::unix_now() >= due || now >= at {
                return;
            }
            tokio::time::sleep_until(at.min(now + WALL_CLOCK_CHECK)).await;
        }
    }

    /// Where the schedule counts from: the last rotation, else when tokend first saw the
    /// configured key (kept in the store, so a restart does not postpone the rotation).
    async fn schedule_start(&self) -> u64 {
        if let Some(at) = self.inner().rotation.rotated_at_unix {
            return at;
        }
        if let Some(since) = self
            .store
            .as_ref()
            .and_then(|store| store.key_since(&self.config.name))
        {
            return since;
        }
        let now = clock::unix_now();
        let saved = self
            .write_store(move |contents, name| {
                contents.key_since.entry(name.to_owned()).or_insert(now);
            })
            .await;
        if let Err(message) = saved {
            tracing::warn!("{message}; the rotation schedule starts over at the next start");
        }
        now
    }
}

/// How long a failed scheduled rotation waits: a tenth of `every` (at least a second), doubling
/// with each failure, at most `every` or an hour.
fn retry_delay(failures: u32, every: Duration) -> Duration {
    let first = (every / 10).max(Duration::from_secs(1));
    first
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
        .min(every.min(RETRY_CAP))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_within_the_period() {
        let day = Duration::from_secs(86_400);
        // A tenth of a day is more than the cap.
        assert_eq!(retry_delay(1, day), RETRY_CAP);
        let hours = Duration::from_secs(6 * 3600);
        assert_eq!(retry_delay(1, hours), Duration::from_secs(2160));
        assert_eq!(retry_delay(2, hours), RETRY_CAP);
        let minute = Duration::from_secs(60);
        assert_eq!(retry_delay(1, minute), Duration::from_secs(6));
        assert_eq!(retry_delay(2, minute), Duration::from_secs(12));
        assert_eq!(retry_delay(9, minute), minute);
        let short = Duration::from_secs(2);
        assert_eq!(retry_delay(1, short), Duration::from_secs(1));
        assert_eq!(retry_delay(5, short), short);
    }
}
