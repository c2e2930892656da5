//! `tokend`: the per-user token-cache daemon, as a library that the binary and the tests call.
//!
//! [`boot::run`] is the start-up order the `tokend` binary follows; [`server::run`] takes a
//! loaded [`config::Config`], a [`server::listener::BoundListener`] and a shutdown future, so
//! tests can run the daemon in-process on a temporary socket.
//!
//! # Layout
//! - [`boot`] — start-up order: harden the process, load the config, bind or adopt the
//!   endpoint, open the store, serve; the exit codes.
//! - [`cli`] — the command line of `tokend` (clap), shared with the packaging's man page.
//! - [`config`] — the config file: finding and loading it, the spanned TOML readers
//!   (`config::reader`, `config::values`), one provider table (`config::provider`),
//!   presentation, credential-helper routes, `[store]`, and every key with its documentation
//!   (`config::keys`).
//! - [`kinds`] — one module per provider kind and preset, each owning its keys, validation,
//!   model and fetch: `static_secret` (+ `salestim`), `anonymous`, `oauth2` (grants, endpoints
//!   and discovery, client authentication, assertions, logins and the redirect listener,
//!   `azure_ad`), `http` (exchange, `timekit`, `crm`); `kinds::fetched` is what a fetch yields.
//! - `provider` — the runtime of one provider: cache and single flight, refresh-ahead and
//!   backoff (`provider::refresh`), durable state (`provider::durable`), login sessions
//!   (`provider::session`), status.
//! - [`secret`] — secret templates (`${env:…}`, `${file:…}`, `${secret:…}`, `${cmd:…}`) and
//!   their resolution through a `Resolver` passed in.
//! - [`store`] — the encrypted store: file format, key sources, contents.
//! - [`server`] — the listener (private directory, daemon lock, socket activation), connections,
//!   peer identity, the one dispatch `match` and its handlers, the shared state.
//! - [`fleet`] — sharing one token per `share` name across machines through Redis / Valkey:
//!   the address, the sealed entries, the store trait and its Redis implementation.
//! - `outlets` — tokens for callers that cannot link the client: the auth proxy
//!   (`outlets::proxy`: listener, capability, request forwarding) and token files
//!   (`outlets::file`).
//! - `upstream` — the HTTP client and the limits every upstream response gets.
//! - `metrics` — per-provider counters, the upstream-latency histogram, Prometheus rendering.
//! - `fuzzing` (feature `fuzzing`, for `fuzz/` only) — the entry points of the fuzz targets,
//!   each a thin wrapper over a real parser.
//! - [`process_limits`] — the file-descriptor limit the connection cap needs; no core dumps.

pub mod boot;
pub mod cli;
pub mod config;
pub mod fleet;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod heap;
pub mod kinds;
mod metrics;
mod outlets;
pub mod process_limits;
mod provider;
pub mod secret;
pub mod server;
pub mod store;
mod upstream;
