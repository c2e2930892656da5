//! The fake token endpoint of e and f: a wiremock server that hands out numbered, short-lived
//! tokens after a fixed delay. It runs on threads pinned away from the same-CPU measurements.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rustix::thread::CpuSet;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::pin_current_thread;

/// How long the fake endpoint takes to answer: the floor of any caller that waits for a fetch.
pub(crate) const UPSTREAM_DELAY: Duration = Duration::from_millis(50);

/// One token path of the fake endpoint and the `http` provider configured against it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Issuer {
    /// The provider's name in tokend's config; also the prefix of the tokens it hands out.
    pub(crate) provider: &'static str,
    /// The wiremock path.
    pub(crate) path: &'static str,
    /// The `expires_in` of every answer, in seconds.
    pub(crate) expires_in: u64,
}

/// e: a 3 s token, left to expire, then asked for by every client at once.
pub(crate) const STAMPEDE: Issuer = Issuer {
    provider: "stampede",
    path: "/token",
    expires_in: 3,
};

/// f: a 4 s token kept in use, so tokend refreshes it in the background every ~2 s.
pub(crate) const REFRESHING: Issuer = Issuer {
    provider: "refreshing",
    path: "/short",
    expires_in: 4,
};

/// When each path last received a request.
type Arrivals = Arc<Mutex<HashMap<&'static str, Instant>>>;

/// Answers `{"token": "<provider>-<n>", "expires_in": …}` after [`UPSTREAM_DELAY`], `n`
/// counting this path's requests from 1.
#[derive(Debug)]
struct Numbered {
    issuer: Issuer,
    issued: AtomicUsize,
    arrivals: Arrivals,
}

impl Respond for Numbered {
    fn respond(&self, _request: &Request) -> ResponseTemplate {
        self.arrivals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(self.issuer.path, Instant::now());
        let n = self.issued.fetch_add(1, Ordering::Relaxed) + 1;
        ResponseTemplate::new(200)
            .set_body_json(serde_json::json!({
                "token": format!("{}-{n}", self.issuer.provider),
                "expires_in": self.issuer.expires_in,
            }))
            .set_delay(UPSTREAM_DELAY)
    }
}

/// The running fake endpoint. Its multi-thread runtime lives as long as this value; wiremock's
/// own server thread stops when it drops.
#[derive(Debug)]
pub(crate) struct FakeEndpoint {
    server: MockServer,
    runtime: tokio::runtime::Runtime,
    arrivals: Arrivals,
}

impl FakeEndpoint {
    /// Starts the server with both issuers mounted. Every thread it uses (the runtime's, and
    /// wiremock's server thread) is created from a thread pinned to `cpus`, and so inherits it.
    pub(crate) fn start(cpus: CpuSet) -> Self {
        std::thread::spawn(move || {
            pin_current_thread(&cpus);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("tokio runtime for the fake token endpoint");
            let arrivals = Arrivals::default();
            let server = runtime.block_on(async {
                let server = MockServer::builder().start().await;
                for issuer in [STAMPEDE, REFRESHING] {
                    Mock::given(method("GET"))
                        .and(path(issuer.path))
                        .respond_with(Numbered {
                            issuer,
                            issued: AtomicUsize::new(0),
                            arrivals: Arc::clone(&arrivals),
                        })
                        .mount(&server)
                        .await;
                }
                server
            });
            Self {
                server,
                runtime,
                arrivals,
            }
        })
        .join()
        .expect("starting the fake token endpoint panicked")
    }

    /// The `[providers.…]` table of `issuer` for tokend's config.
    pub(crate) fn provider_toml(&self, issuer: Issuer) -> String {
        format!(
            "\n[providers.{}]\nkind = \"http\"\nurl = \"{}{}\"\ntoken = \"/token\"\n\
             expires = \"/expires_in\"\n",
            issuer.provider,
            self.server.uri(),
            issuer.path
        )
    }

    /// Requests received so far on `issuer`'s path, or on any path with `None`. Must not be
    /// called from inside another tokio runtime.
    pub(crate) fn requests(&self, issuer: Option<Issuer>) -> usize {
        let received = self
            .runtime
            .block_on(self.server.received_requests())
            .expect("the fake token endpoint records requests");
        received
            .iter()
            .filter(|request| issuer.is_none_or(|issuer| request.url.path() == issuer.path))
            .count()
    }

    /// When `issuer`'s path last received a request.
    pub(crate) fn last_arrival(&self, issuer: Issuer) -> Option<Instant> {
        self.arrivals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(issuer.path)
            .copied()
    }
}
