//! `tokend`: the per-user token-cache daemon, as a library that the binary and the tests call.
//!
//! [`server::run`] takes a loaded [`config::Config`], a [`listener::BoundListener`] and a shutdown
//! future, so tests can run the daemon in-process on a temporary socket.
//!
//! # Layout
//! - [`config`] — the TOML config file: providers and how their tokens are presented.
//! - [`secret_ref`] — `${env:…}`, `${file:…}`, `${cmd:…}` references in secret-bearing strings.
//! - [`listener`] — claiming the endpoint: private directory, daemon lock, stale sockets.
//! - [`server`] — the accept loop, the connection cap and graceful shutdown.
//! - `connection` — one client: peer check, handshake, request/response loop, timeouts.
//! - `dispatch` — the one `match` on requests.
//! - `provider` — providers at run time and their caches.
//! - `state` — what all connections share.

pub mod config;
mod connection;
mod dispatch;
pub mod listener;
mod provider;
pub mod secret_ref;
pub mod server;
mod state;
