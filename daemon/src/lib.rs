//! `tokend`: the per-user token-cache daemon, as a library that the binary and the tests call.
//!
//! [`server::run`] takes a loaded [`config::Config`], a [`listener::BoundListener`] and a shutdown
//! future, so tests can run the daemon in-process on a temporary socket.
//!
//! # Layout
//! - [`config`] — the TOML config file: providers and how their tokens are presented.
//! - [`kinds`] — the data model of the OAuth 2.0 and HTTP-exchange kinds.
//! - [`secret_ref`] — `${env:…}`, `${file:…}`, `${cmd:…}` references in secret-bearing strings.
//! - [`listener`] — claiming the endpoint: private directory, daemon lock, stale sockets.
//! - [`process_limits`] — the file-descriptor limit the connection cap needs; no core dumps.
//! - [`store`] — the durable, encrypted store of refresh and access tokens, and its key.
//! - [`server`] — the accept loop, the connection cap and graceful shutdown.
//! - `connection` — one client: peer check, handshake, request/response loop, timeouts.
//! - `dispatch` — the one `match` on requests.
//! - `metrics` — per-provider counters, the upstream-latency histogram, Prometheus rendering.
//! - `provider` — providers at run time and their caches.
//! - `state` — what all connections share.
//! - `source` — obtaining one token: static, anonymous, OAuth 2.0 (`oauth2` crate), HTTP exchange.
//! - `upstream` — the HTTP client and the limits every upstream response gets.

pub mod config;
pub mod kinds;
mod login;
mod metrics;
pub mod process_limits;
mod provider;
pub mod secret_ref;
pub mod server;
mod source;
pub mod store;
mod upstream;
