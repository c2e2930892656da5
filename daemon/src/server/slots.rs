//! The connection cap. Every connection holds a [`Slot`] while it is served. When the cap is
//! reached, a new client still gets in: the connection least likely to be missed is asked to
//! close, one that has not finished its handshake first (a silent or hostile peer), else the one
//! idle the longest; a connection in the middle of a request is never chosen. Only when every
//! slot is busy with a request is the newcomer turned away. A flood of idle connections (the
//! cap's worth of them) can therefore never keep legitimate callers out, and the condition is
//! logged once per [`WARN_INTERVAL`], not once per connection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// At most one log line about the cap per this interval.
pub(crate) const WARN_INTERVAL: Duration = Duration::from_secs(60);

/// One served connection, as the cap sees it.
#[derive(Debug)]
pub(crate) struct Slot {
    /// Milliseconds since the server started when the connection last did something.
    last_active_ms: AtomicU64,
    /// The handshake is done.
    greeted: AtomicBool,
    /// A request is being answered.
    busy: AtomicBool,
    /// Chosen to make room; the connection closes at its next chance.
    evicted: AtomicBool,
    close: Notify,
    epoch: Instant,
}

impl Slot {
    /// The connection did something at `at` (a frame arrived, an answer went out).
    fn touch(&self, at: Instant) {
        let millis = at.saturating_duration_since(self.epoch).as_millis();
        self.last_active_ms
            .store(u64::try_from(millis).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// The handshake is done.
    pub(crate) fn greeted(&self) {
        self.greeted.store(true, Ordering::Relaxed);
        self.touch(Instant::now());
    }

    /// A request that arrived at `at` starts (`true`), or its answer has been sent (`false`):
    /// the connection counts as active from its last request (no clock read per answer).
    pub(crate) fn set_busy(&self, busy: bool, at: Instant) {
        self.busy.store(busy, Ordering::Relaxed);
        self.touch(at);
    }

    /// Completes when the cap asks this connection to make room.
    pub(crate) async fn evicted(&self) {
        self.close.notified().await;
    }
}

fn millis_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Every live connection, and the cap.
#[derive(Debug)]
pub(crate) struct Slots {
    cap: usize,
    epoch: Instant,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    live: HashMap<u64, Arc<Slot>>,
    /// Live connections not asked to close: what counts against the cap (kept as connections
    /// come and go, so admitting one costs no scan of the others below the cap).
    holding: usize,
    /// When the cap was last logged, and how often it acted since.
    warned_at: Option<Instant>,
    evicted_since: u64,
    refused_since: u64,
}

/// A connection's hold on its slot; the slot is freed when it drops.
#[derive(Debug)]
pub(crate) struct Held {
    slots: Arc<Slots>,
    id: u64,
    slot: Arc<Slot>,
}

impl Held {
    pub(crate) fn slot(&self) -> &Slot {
        &self.slot
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut inner = self.slots.lock();
        inner.live.remove(&self.id);
        // An evicted slot stopped counting when it was asked to close.
        if !self.slot.evicted.load(Ordering::Relaxed) {
            inner.holding -= 1;
        }
    }
}

impl Slots {
    /// A cap of `cap` connections (at least 1).
    pub(crate) fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            cap: cap.max(1),
            epoch: Instant::now(),
            inner: Mutex::new(Inner::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every change under the lock leaves the map consistent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot for a new connection: at the cap, another connection is asked to close first.
    /// `None`: every slot is busy with a request, so the newcomer is turned away.
    pub(crate) fn admit(self: &Arc<Self>) -> Option<Held> {
        let mut inner = self.lock();
        if inner.holding >= self.cap {
            let victim = inner
                .live
                .values()
                .filter(|slot| {
                    !slot.evicted.load(Ordering::Relaxed) && !slot.busy.load(Ordering::Relaxed)
                })
                .min_by_key(|slot| {
                    (
                        slot.greeted.load(Ordering::Relaxed),
                        slot.last_active_ms.load(Ordering::Relaxed),
                    )
                })
                .cloned();
            match victim {
                Some(victim) => {
                    victim.evicted.store(true, Ordering::Relaxed);
                    victim.close.notify_one();
                    inner.holding -= 1;
                    inner.evicted_since += 1;
                }
                None => {
                    inner.refused_since += 1;
                    self.warn(&mut inner);
                    return None;
                }
            }
            self.warn(&mut inner);
        }
        let id = inner.next_id;
        inner.next_id += 1;
        inner.holding += 1;
        let slot = Arc::new(Slot {
            last_active_ms: AtomicU64::new(millis_since(self.epoch)),
            greeted: AtomicBool::new(false),
            busy: AtomicBool::new(false),
            evicted: AtomicBool::new(false),
            close: Notify::new(),
            epoch: self.epoch,
        });
        inner.live.insert(id, Arc::clone(&slot));
        Some(Held {
            slots: Arc::clone(self),
            id,
            slot,
        })
    }

    /// Logs what the cap did, at most once per [`WARN_INTERVAL`].
    fn warn(&self, inner: &mut Inner) {
        let now = Instant::now();
        if inner
            .warned_at
            .is_some_and(|at| now.saturating_duration_since(at) < WARN_INTERVAL)
        {
            return;
        }
        tracing::warn!(
            cap = self.cap,
            evicted = inner.evicted_since,
            refused = inner.refused_since,
            "the connection cap of {} is reached: the connections idle the longest (or still \
             in their handshake) are closed to let new clients in; raise --max-connections if \
             this many clients are legitimate",
            self.cap
        );
        inner.warned_at = Some(now);
        inner.evicted_since = 0;
        inner.refused_since = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn at_the_cap_the_silent_then_the_idlest_make_room_never_a_busy_one() {
        let slots = Slots::new(3);
        let busy = slots.admit().unwrap();
        busy.slot().greeted();
        busy.slot().set_busy(true, Instant::now());
        tokio::time::advance(Duration::from_secs(1)).await;
        let idle_old = slots.admit().unwrap();
        idle_old.slot().greeted();
        tokio::time::advance(Duration::from_secs(1)).await;
        let silent = slots.admit().unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        let idle_new = slots.admit().unwrap();
        idle_new.slot().greeted();
        // The one that never completed its handshake went first, although it is newer.
        assert!(silent.slot().evicted.load(Ordering::Relaxed));
        assert!(!idle_old.slot().evicted.load(Ordering::Relaxed));
        drop(silent);
        // Then the one idle the longest.
        let another = slots.admit().unwrap();
        assert!(idle_old.slot().evicted.load(Ordering::Relaxed));
        assert!(!busy.slot().evicted.load(Ordering::Relaxed));
        drop(idle_old);
        // Everyone busy: turned away.
        idle_new.slot().set_busy(true, Instant::now());
        another.slot().set_busy(true, Instant::now());
        assert!(slots.admit().is_none());
        assert_eq!(slots.lock().live.len(), 3);
        assert_eq!(slots.lock().holding, 3);
        // As connections close, their slots come back: below the cap nobody is evicted.
        drop((busy, idle_new, another));
        assert_eq!(slots.lock().holding, 0);
        let again: Vec<Held> = (0..3).map(|_| slots.admit().unwrap()).collect();
        assert!(
            again
                .iter()
                .all(|held| !held.slot().evicted.load(Ordering::Relaxed))
        );
        assert_eq!(slots.lock().holding, 3);
    }
}
