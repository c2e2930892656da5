//! Refresh-ahead and the failure policy: one upstream attempt (timed and counted), the retries a
//! waiting caller gets, background refreshes in the advisory window and at the scheduled
//! moment, and the backoff after failures.

use std::sync::Arc;
use std::time::Duration;

use tokend_protocol::{ErrorCode, Response};
use tokio::time::Instant;

use super::fleet::Want;
use super::{
    BACKOFF_BASE, BACKOFF_CAP, InFlight, Inner, Provider, REFERENCED_HOLD, REJECTED_COOLDOWN,
    RETRY_AFTER_CAP, RETRY_BUDGET, Trigger, WAITING_RETRIES,
};
use crate::kinds::{FetchError, FetchState, Fetched};

#[derive(Debug)]
pub(super) enum Failure {
    /// Transient failures: no new attempt before `until`.
    Backoff {
        until: Instant,
        streak: u32,
        error: FetchError,
    },
    /// Rejected credentials: no attempt before `since + REJECTED_COOLDOWN`.
    Rejected { since: Instant, error: FetchError },
    /// Another provider this one needs gave no token ([`FetchError::Referenced`]): callers are
    /// not refused (that provider answers them from its own state, and once it is fixed this
    /// one works at once); background refreshes wait until `since + REFERENCED_HOLD`.
    Referenced { since: Instant, error: FetchError },
}

impl Inner {
    /// The failure that stops a new attempt right now, if any.
    pub(super) fn blocking(&self, now: Instant) -> Option<Response> {
        match &self.failure {
            Some(Failure::Backoff { until, error, .. }) if *until > now => {
                let wait = until.saturating_duration_since(now).as_secs().max(1);
                Some(error_response(
                    error,
                    &format!("; next attempt in {wait} s"),
                ))
            }
            Some(Failure::Rejected { since, error }) if now < *since + REJECTED_COOLDOWN => {
                Some(error_response(error, ""))
            }
            _ => None,
        }
    }

    /// What a caller that waited while a fetch ran is told instead of fetching again: the
    /// failure that blocks, or the referenced provider's failure that fetch met.
    pub(super) fn outcome_refusal(&self, now: Instant) -> Option<Response> {
        match &self.failure {
            Some(Failure::Referenced { error, .. }) => Some(error_response(error, "")),
            _ => self.blocking(now),
        }
    }

    /// Whether a background refresh (advisory or scheduled) must not start now.
    pub(super) fn holds_background(&self, now: Instant) -> bool {
        match &self.failure {
            Some(Failure::Referenced { since, .. }) => now < *since + REFERENCED_HOLD,
            _ => self.blocking(now).is_some(),
        }
    }
}

pub(super) fn error_response(error: &FetchError, suffix: &str) -> Response {
    let code = match error {
        FetchError::Config(_) => ErrorCode::Config,
        FetchError::Transient { .. } => ErrorCode::Upstream,
        FetchError::Rejected {
            needs_login: true, ..
        } => ErrorCode::LoginRequired,
        FetchError::Rejected {
            needs_login: false, ..
        } => ErrorCode::Upstream,
        FetchError::Referenced { code, .. } => *code,
    };
    Response::error(code, format!("{}{suffix}", error.message()))
}

/// Backoff after `streak` consecutive transient failures: doubling from 1 s to 5 min, with jitter
/// between half and all of it, and never shorter than `Retry-After` (itself capped).
pub(super) fn backoff(streak: u32, retry_after: Option<Duration>) -> Duration {
    let doubled = BACKOFF_BASE
        .saturating_mul(1u32 << streak.saturating_sub(1).min(16))
        .min(BACKOFF_CAP);
    let jittered = doubled.mul_f64(0.5 + fastrand::f64() / 2.0);
    jittered.max(retry_after.unwrap_or(Duration::ZERO).min(RETRY_AFTER_CAP))
}

impl Provider {
    /// One upstream attempt, counted and timed.
    pub(super) async fn timed_fetch(&self, state: &mut FetchState) -> Result<Fetched, FetchError> {
        // A shared provider's chain is the fleet's: the local store may hold an older link.
        if self.shared.is_none() {
            self.follow_stored_rotation(state);
        }
        // A rotated key is served only once it is in the store.
        self.save_rotated(state).await?;
        let started = Instant::now();
        let mut outcome = self.fetcher.fetch(state).await;
        self.counters.fetched(outcome.is_ok(), started.elapsed());
        // `expires_in` counts from when the server answered, which is no earlier than when we
        // asked: count from the request, so a slow endpoint never makes a token look longer-lived.
        if let Ok(fetched) = &mut outcome {
            fetched.since = started;
        }
        outcome
    }

    /// One fetch for a waiting caller: transient failures are retried within the budget.
    pub(super) async fn fetch_retrying(
        &self,
        state: &mut FetchState,
    ) -> Result<Fetched, FetchError> {
        let deadline = Instant::now() + RETRY_BUDGET;
        let mut retries = 0;
        loop {
            let outcome = self.timed_fetch(state).await;
            match outcome {
                Err(FetchError::Transient { retry_after, .. }) if retries < WAITING_RETRIES => {
                    retries += 1;
                    let delay = backoff(retries, retry_after);
                    if Instant::now() + delay > deadline {
                        return outcome;
                    }
                    tracing::debug!(provider = %self.config.name, "retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                }
                other => return other,
            }
        }
    }

    /// A background refresh: one attempt, only if no other fetch is running.
    pub(super) async fn refresh(self: Arc<Self>, trigger: Trigger) {
        {
            let now = Instant::now();
            let mut inner = self.inner();
            if let Trigger::Scheduled(generation) = trigger {
                // Retired, a newer token, an invalidation, an idle token or a blocking failure:
                // stand down.
                if self.retired.load(std::sync::atomic::Ordering::Relaxed)
                    || inner.generation != generation
                    || !self.wanted(&inner)
                    || inner.refreshing
                    || inner.holds_background(now)
                    || inner.current.as_ref().is_none_or(|c| !c.valid(now))
                {
                    return;
                }
                inner.refreshing = true;
            }
        }
        let Ok(mut state) = self.flight.try_lock() else {
            // Someone else is fetching (or about to); their result will do. Their `store` also
            // clears the flag, but clear it here too so it can never stay set.
            self.inner().refreshing = false;
            return;
        };
        tracing::debug!(provider = %self.config.name, ?trigger, "refreshing ahead of expiry");
        let in_flight = InFlight(Some(&self));
        let remaining = {
            let now = Instant::now();
            self.inner()
                .current
                .as_ref()
                .and_then(|current| current.expires)
                .map(|expires| expires.saturating_duration_since(now))
        };
        let (outcome, origin) = self
            .obtain_durably(&mut state, Want::Fresher(remaining))
            .await;
        let _ = self.cache(outcome, trigger, origin);
        in_flight.done();
    }

    /// Runs the refresh of `generation` at `at` (it stands down if no longer wanted). Replaces
    /// the pending one, so superseded timers do not pile up.
    pub(super) fn schedule(self: &Arc<Self>, generation: u64, at: Instant) {
        let me = Arc::clone(self);
        let task = tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            me.refresh(Trigger::Scheduled(generation)).await;
        });
        let previous = self.inner().scheduled.replace(task.abort_handle());
        self.cancel(previous);
    }

    /// Aborts a pending scheduled refresh, unless it is the task running this code (a scheduled
    /// refresh that stores a token schedules the next one from inside itself).
    pub(super) fn cancel(&self, scheduled: Option<tokio::task::AbortHandle>) {
        if let Some(handle) = scheduled
            && tokio::task::try_id() != Some(handle.id())
        {
            handle.abort();
        }
    }
}
