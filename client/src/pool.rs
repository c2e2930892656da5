//! The idle connections of a client, shared by all its clones: a call takes one (or opens a
//! new one when none is idle), gives it back once the answer came, and drops it on any error.
//! So one [`crate::Client`] or [`crate::AsyncClient`] serves many threads or tasks at once,
//! each call on a connection of its own, and a single caller reuses one connection as before.
//! The lock is held only to push or pop, never during a request.

use std::sync::{Mutex, PoisonError};

/// Idle connections kept beyond this many are closed when given back.
pub(crate) const MAX_IDLE: usize = 64;

pub(crate) struct Pool<C> {
    idle: Mutex<Vec<C>>,
}

impl<C> Pool<C> {
    pub(crate) fn new() -> Self {
        Self {
            idle: Mutex::new(Vec::new()),
        }
    }

    /// An idle connection, the most recently used first.
    pub(crate) fn take(&self) -> Option<C> {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
    }

    /// Gives back a connection that just answered.
    pub(crate) fn give(&self, connection: C) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push(connection);
        }
    }

    /// Closes every idle connection (the daemon went away, or the caller is done with it).
    pub(crate) fn clear(&self) {
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(PoisonError::into_inner));
        drop(idle);
    }

    fn idle(&self) -> usize {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl<C> std::fmt::Debug for Pool<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("idle", &self.idle()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_come_back_most_recent_first_up_to_the_cap() {
        let pool = Pool::new();
        assert_eq!(pool.take(), None::<usize>);
        for n in 0..MAX_IDLE + 10 {
            pool.give(n);
        }
        assert_eq!(pool.idle(), MAX_IDLE);
        assert_eq!(pool.take(), Some(MAX_IDLE - 1));
        pool.clear();
        assert_eq!(pool.take(), None);
    }
}
