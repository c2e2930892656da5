//! What `tok status` shows of a provider: its state, expiry (and its id_token's), last error,
//! last and next refresh, counters, and the rotation of its key.

use std::time::SystemTime;

use tokend_protocol::{ProviderState, ProviderStatus, clock};
use tokio::time::Instant;

use super::Provider;
use super::refresh::Failure;
use crate::kinds::FetchError;

/// Wall-clock seconds for a monotonic instant (for display only).
fn unix_at(instant: Instant, now: Instant) -> u64 {
    let wall = SystemTime::now();
    let at = if instant >= now {
        wall + instant.saturating_duration_since(now)
    } else {
        wall.checked_sub(now.saturating_duration_since(instant))
            .unwrap_or(wall)
    };
    clock::unix_secs(at)
}

impl Provider {
    pub(crate) fn status(&self) -> ProviderStatus {
        let now = Instant::now();
        let inner = self.inner();
        let valid = inner.current.as_ref().is_some_and(|c| c.valid(now));
        let interactive = self.oauth2().is_some_and(|c| c.grant.is_interactive());
        let state = match &inner.failure {
            Some(Failure::Rejected {
                error:
                    FetchError::Rejected {
                        needs_login: true, ..
                    },
                ..
            }) => ProviderState::NeedsLogin,
            _ if interactive && !inner.has_session && !valid && !inner.refreshing => {
                ProviderState::NeedsLogin
            }
            _ if inner.refreshing => ProviderState::Refreshing,
            _ if valid => ProviderState::Fresh,
            _ if inner.failure.is_some() || inner.last_error.is_some() => ProviderState::Error,
            _ if inner.current.is_some() => ProviderState::Expired,
            _ => ProviderState::Idle,
        };
        let next_refresh = match &inner.failure {
            Some(Failure::Backoff { until, .. }) if valid && self.wanted(&inner) => Some(*until),
            Some(Failure::Referenced { since, .. }) if valid && self.wanted(&inner) => {
                Some(*since + super::REFERENCED_HOLD)
            }
            None if valid && self.wanted(&inner) => {
                inner.current.as_ref().and_then(|c| c.refresh_at)
            }
            _ => None,
        };
        ProviderStatus {
            name: self.config.name.clone(),
            kind: self.config.kind.name().to_owned(),
            state,
            expires_at_unix: inner
                .current
                .as_ref()
                .and_then(|c| c.cached.grant.expires_at_unix),
            last_error: inner.last_error.clone(),
            last_refresh_unix: inner.last_refresh.map(clock::unix_secs),
            next_refresh_unix: next_refresh.map(|at| unix_at(at, now)),
            counters: self.counters.snapshot(),
            origin: inner.origin.as_str().to_owned(),
            share: self
                .config
                .share
                .as_ref()
                .map(|share| share.name.clone())
                .unwrap_or_default(),
            id_token_expires_at_unix: inner
                .current
                .as_ref()
                .and_then(|c| c.cached.id_token())
                .and_then(|id| id.grant().expires_at_unix),
            rotated_at_unix: inner.rotation.rotated_at_unix,
            next_rotation_unix: inner.rotation.next_unix,
            rotation_error: inner.rotation.error.clone(),
        }
    }
}
