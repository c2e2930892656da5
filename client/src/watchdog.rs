//! Deadlines for blocking named-pipe I/O (Windows). A synchronous pipe has no read or write
//! timeouts, so each blocking connection has a watchdog thread: a call arms it with its
//! deadline and disarms it when done; if the deadline passes first, the watchdog cancels the
//! pipe's pending I/O (`CancelIoEx`) and the blocked call fails, reported as a timeout.
//!
//! The cancel happens under the state's lock and a disarm takes the same lock, so once
//! [`Watchdog::disarm`] returns no cancel can hit a later call's I/O. The thread wakes only when
//! it must: arming wakes it only if it would otherwise sleep past the new deadline.

use std::io;
use std::os::windows::io::{AsHandle, BorrowedHandle, OwnedHandle};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

#[derive(Debug, Default)]
struct State {
    /// The running call's deadline.
    deadline: Option<Instant>,
    /// When the thread will wake by itself (`None`: only when notified).
    wakes_at: Option<Instant>,
    /// The deadline passed and the I/O was cancelled.
    fired: bool,
    /// The connection is gone: the thread ends.
    closed: bool,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The watchdog of one connection; its thread ends when this is dropped.
#[derive(Debug)]
pub(crate) struct Watchdog {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    /// Starts the watchdog of the pipe behind `handle` (it keeps a duplicate of the handle).
    pub(crate) fn start(handle: BorrowedHandle<'_>) -> io::Result<Self> {
        let handle = handle.try_clone_to_owned()?;
        let shared = Arc::new(Shared::default());
        let theirs = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("tokend-pipe-watchdog".into())
            .spawn(move || watch(&theirs, &handle))?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// The next call must end by `deadline`.
    pub(crate) fn arm(&self, deadline: Instant) {
        let mut state = self.shared.lock();
        state.deadline = Some(deadline);
        state.fired = false;
        if state.wakes_at.is_none_or(|wake| wake > deadline) {
            self.shared.changed.notify_one();
        }
    }

    /// The call is over; true if its deadline passed and its I/O was cancelled.
    pub(crate) fn disarm(&self) -> bool {
        let mut state = self.shared.lock();
        state.deadline = None;
        std::mem::take(&mut state.fired)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.changed.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn watch(shared: &Shared, pipe: &OwnedHandle) {
    let mut state = shared.lock();
    loop {
        if state.closed {
            return;
        }
        match state.deadline {
            None => {
                state.wakes_at = None;
                state = shared
                    .changed
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            Some(deadline) => {
                let now = Instant::now();
                if now >= deadline {
                    tokend_protocol::win32::cancel_io(pipe.as_handle());
                    state.fired = true;
                    state.deadline = None;
                } else {
                    state.wakes_at = Some(deadline);
                    state = shared
                        .changed
                        .wait_timeout(state, deadline - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        }
    }
}
