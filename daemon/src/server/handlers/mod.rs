//! One handler per request family. A handler takes the shared [`State`](super::state::State)
//! and the request, and returns what to answer; it never sees the socket.

pub(crate) mod control;
pub(crate) mod login;
pub(crate) mod secrets;
pub(crate) mod token;
