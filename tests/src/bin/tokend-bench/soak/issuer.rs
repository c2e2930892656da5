//! The token endpoints behind the chaos upstream, and their ledger.
//!
//! Each provider of the soak has its own path (see [`super::providers`]); the endpoint checks
//! the credentials the provider must send, issues a token that names the provider, and writes
//! it in the ledger with its true expiry (for `expires_in`, counted from when the answer is
//! made; for a JWT, its `exp`). The soak's clients check every token served to them against
//! the ledger. Refresh tokens rotate: every use of the current one answers a successor; the
//! immediately previous one is honoured once more (a reuse, recorded with when its successor
//! was issued, so the report can tell a kill -9 that landed mid-rotation from a real double
//! spend); any older one is refused with `invalid_grant` and counted as spent twice.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;

use super::providers::{Kind, Spec};

/// One HTTP request as the chaos server read it.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) query: String,
    /// Names lower-cased.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    /// When its head arrived.
    pub(crate) arrived: Instant,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn form(&self) -> HashMap<String, String> {
        url::form_urlencoded::parse(&self.body)
            .into_owned()
            .collect()
    }

    /// `user:password` of a Basic `Authorization`.
    fn basic(&self) -> Option<(String, String)> {
        let encoded = self.header("authorization")?.strip_prefix("Basic ")?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, password) = text.split_once(':')?;
        let decode = |part: &str| {
            url::form_urlencoded::parse(format!("x={part}").as_bytes())
                .next()
                .map_or_else(String::new, |(_, v)| v.into_owned())
        };
        Some((decode(user), decode(password)))
    }
}

/// One HTTP answer.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) content_type: &'static str,
    pub(crate) retry_after: Option<u64>,
    pub(crate) body: Vec<u8>,
}

impl Answer {
    pub(crate) fn text(status: u16, text: &str) -> Self {
        Self {
            status,
            content_type: "text/plain",
            retry_after: None,
            body: text.as_bytes().to_vec(),
        }
    }

    pub(crate) fn json(status: u16, value: &serde_json::Value) -> Self {
        Self {
            status,
            content_type: "application/json",
            retry_after: None,
            body: value.to_string().into_bytes(),
        }
    }

    /// The whole response, keep-alive.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut head = format!(
            "HTTP/1.1 {} X\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
            self.status,
            self.content_type,
            self.body.len()
        );
        if let Some(seconds) = self.retry_after {
            head.push_str(&format!("Retry-After: {seconds}\r\n"));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// A token the endpoints issued (or a static provider's configured value).
#[derive(Debug, Clone)]
struct Issued {
    provider: String,
    /// Its true expiry; `None` for tokens that do not expire.
    expires: Option<SystemTime>,
}

/// A refresh token given again after its successor was issued.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reuse {
    /// When the request that was answered with the successor arrived.
    pub(crate) successor_asked: Instant,
    /// When that answer was made.
    pub(crate) successor_issued: Instant,
}

#[derive(Debug)]
struct Chain {
    current: String,
    previous: Option<String>,
    serial: u64,
    /// The last rotation: when its request arrived and when it was answered.
    asked: Instant,
    issued: Instant,
}

/// What the ledger says of a token served to a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Good,
    /// Never issued by the endpoints, or issued for another provider.
    Foreign,
    /// Already expired when the caller received it.
    Expired,
    /// Valid, but for less than the caller's minimum lifetime.
    BelowMinimum,
    /// Valid for long enough, but tokend said it expires later than it does.
    Overstated,
}

/// The endpoints and their ledger.
#[derive(Debug)]
pub(crate) struct Issuer {
    specs: HashMap<String, Spec>,
    tokens: Mutex<HashMap<String, Issued>>,
    chains: Mutex<HashMap<String, Chain>>,
    reuses: Mutex<Vec<Reuse>>,
    serial: AtomicU64,
    /// Requests whose credentials were not the configured ones (must stay 0).
    pub(crate) bad_credentials: AtomicU64,
    /// Refresh tokens older than the previous one, presented again (must stay 0).
    pub(crate) spent_twice: AtomicU64,
    /// Tokens issued.
    pub(crate) issued: AtomicU64,
    /// Rotations of refresh tokens.
    pub(crate) rotations: AtomicU64,
}

impl Issuer {
    pub(crate) fn new(specs: &[Spec]) -> Self {
        let mut tokens = HashMap::new();
        let mut chains = HashMap::new();
        let now = Instant::now();
        for spec in specs {
            match &spec.kind {
                Kind::Static(_) | Kind::Salestim => {
                    tokens.insert(
                        spec.secret.clone(),
                        Issued {
                            provider: spec.name.clone(),
                            expires: None,
                        },
                    );
                }
                Kind::RefreshToken => {
                    chains.insert(
                        spec.name.clone(),
                        Chain {
                            current: spec.refresh_token.clone(),
                            previous: None,
                            serial: 0,
                            asked: now,
                            issued: now,
                        },
                    );
                }
                _ => {}
            }
        }
        Self {
            specs: specs
                .iter()
                .map(|spec| (spec.name.clone(), spec.clone()))
                .collect(),
            tokens: Mutex::new(tokens),
            chains: Mutex::new(chains),
            reuses: Mutex::new(Vec::new()),
            serial: AtomicU64::new(0),
            bad_credentials: AtomicU64::new(0),
            spent_twice: AtomicU64::new(0),
            issued: AtomicU64::new(0),
            rotations: AtomicU64::new(0),
        }
    }

    /// The provider a request path belongs to: `/KIND/NAME/…`.
    fn spec_of(&self, request: &Request) -> Option<&Spec> {
        let name = request.path.split('/').nth(2)?;
        self.specs.get(name)
    }

    /// Whether answering `request` rotates a refresh token.
    pub(crate) fn rotates(&self, request: &Request) -> bool {
        self.spec_of(request)
            .is_some_and(|spec| matches!(spec.kind, Kind::RefreshToken))
    }

    /// The endpoint's answer to `request` (issuing a token, rotating a refresh token).
    pub(crate) fn answer(&self, request: &Request) -> Answer {
        let Some(spec) = self.spec_of(request) else {
            return Answer::text(404, "no such endpoint");
        };
        if !self.credentials_ok(spec, request) {
            self.bad_credentials.fetch_add(1, Ordering::Relaxed);
            return Answer::json(
                401,
                &serde_json::json!({"error": "invalid_client", "error_description": "bad credentials"}),
            );
        }
        let lifetime = spec.lifetime;
        match &spec.kind {
            Kind::ClientCredentials { jwt, .. } | Kind::AzureAd { jwt } => {
                let (token, expires_in) = if *jwt {
                    (self.jwt(spec, lifetime), None)
                } else {
                    (self.opaque(spec, lifetime), Some(lifetime))
                };
                let mut body = serde_json::json!({"access_token": token, "token_type": "Bearer"});
                if let Some(expires_in) = expires_in {
                    body["expires_in"] = expires_in.into();
                }
                Answer::json(200, &body)
            }
            Kind::RefreshToken => self.refresh(spec, request),
            Kind::Http { jwt, .. } => {
                if *jwt {
                    Answer::json(200, &serde_json::json!({"token": self.jwt(spec, lifetime)}))
                } else {
                    Answer::json(
                        200,
                        &serde_json::json!({"data": {
                            "token": self.opaque(spec, lifetime),
                            "expires_in": lifetime.to_string(),
                        }}),
                    )
                }
            }
            Kind::Crm => Answer::json(
                200,
                &serde_json::json!({"status": {"code": "OK"}, "data": {"token": self.jwt(spec, lifetime)}}),
            ),
            Kind::Timekit => {
                let token = self.record(spec, format!("tk-{}-{}", spec.name, self.next()), None);
                Answer::json(
                    200,
                    &serde_json::json!({"data": {"app_token": [{"token": token}]}}),
                )
            }
            Kind::Static(_) | Kind::Salestim | Kind::Anonymous => {
                Answer::text(404, "static providers have no endpoint")
            }
        }
    }

    fn credentials_ok(&self, spec: &Spec, request: &Request) -> bool {
        let form = request.form();
        let field = |name: &str| form.get(name).map(String::as_str);
        match &spec.kind {
            Kind::ClientCredentials { basic: true, .. } => {
                request.method == "POST"
                    && field("grant_type") == Some("client_credentials")
                    && request.basic() == Some((spec.name.clone(), spec.secret.clone()))
            }
            Kind::ClientCredentials { basic: false, .. } | Kind::AzureAd { .. } => {
                request.method == "POST"
                    && field("grant_type") == Some("client_credentials")
                    && field("client_id") == Some(spec.name.as_str())
                    && field("client_secret") == Some(spec.secret.as_str())
            }
            Kind::RefreshToken => {
                request.method == "POST"
                    && field("grant_type") == Some("refresh_token")
                    && request.basic() == Some((spec.name.clone(), spec.secret.clone()))
            }
            Kind::Http { post, .. } => {
                let method = if *post { "POST" } else { "GET" };
                request.method == method
                    && request.header("x-api-key") == Some(spec.secret.as_str())
            }
            Kind::Crm => {
                request.method == "POST"
                    && request.basic() == Some((spec.secret.clone(), String::new()))
                    && serde_json::from_slice::<serde_json::Value>(&request.body).is_ok_and(
                        |body| {
                            body.pointer("/access_token_identifier/authentication_code")
                                .and_then(serde_json::Value::as_str)
                                == Some(spec.refresh_token.as_str())
                        },
                    )
            }
            Kind::Timekit => {
                request.method == "GET"
                    && request.query == "include=app_token"
                    && request.header("timekit-app") == Some(spec.name.as_str())
                    && request.basic()
                        == Some((format!("{}@example.com", spec.name), spec.secret.clone()))
            }
            Kind::Static(_) | Kind::Salestim | Kind::Anonymous => false,
        }
    }

    fn refresh(&self, spec: &Spec, request: &Request) -> Answer {
        let presented = request.form().remove("refresh_token").unwrap_or_default();
        let mut chains = self.chains.lock().expect("chains");
        let chain = chains
            .get_mut(&spec.name)
            .expect("every refresh provider has a chain");
        if presented != chain.current {
            if chain.previous.as_deref() == Some(presented.as_str()) {
                self.reuses.lock().expect("reuses").push(Reuse {
                    successor_asked: chain.asked,
                    successor_issued: chain.issued,
                });
            } else {
                self.spent_twice.fetch_add(1, Ordering::Relaxed);
                return Answer::json(
                    400,
                    &serde_json::json!({"error": "invalid_grant", "error_description": "refresh token already used"}),
                );
            }
        }
        chain.serial += 1;
        let successor = format!(
            "rt-{}-{}-{:08x}",
            spec.name,
            chain.serial,
            fastrand::u32(..)
        );
        chain.previous = Some(presented);
        chain.current = successor.clone();
        chain.asked = request.arrived;
        chain.issued = Instant::now();
        drop(chains);
        self.rotations.fetch_add(1, Ordering::Relaxed);
        let access = self.opaque(spec, spec.lifetime);
        Answer::json(
            200,
            &serde_json::json!({
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": spec.lifetime,
                "refresh_token": successor,
            }),
        )
    }

    fn next(&self) -> u64 {
        self.serial.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn record(&self, spec: &Spec, token: String, expires: Option<SystemTime>) -> String {
        self.issued.fetch_add(1, Ordering::Relaxed);
        self.tokens.lock().expect("tokens").insert(
            token.clone(),
            Issued {
                provider: spec.name.clone(),
                expires,
            },
        );
        token
    }

    /// An opaque token living `lifetime` seconds from now.
    fn opaque(&self, spec: &Spec, lifetime: u64) -> String {
        let token = format!("at-{}-{}-{:08x}", spec.name, self.next(), fastrand::u32(..));
        self.record(
            spec,
            token,
            Some(SystemTime::now() + Duration::from_secs(lifetime)),
        )
    }

    /// A JWT whose `exp` is `lifetime` seconds from now (whole seconds, rounded down).
    fn jwt(&self, spec: &Spec, lifetime: u64) -> String {
        let exp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            + lifetime;
        let part = |json: String| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
        let token = format!(
            "{}.{}.c2ln",
            part(r#"{"alg":"HS256","typ":"JWT"}"#.to_owned()),
            part(format!(
                r#"{{"sub":"{}","n":{},"exp":{exp}}}"#,
                spec.name,
                self.next()
            ))
        );
        self.record(spec, token, Some(UNIX_EPOCH + Duration::from_secs(exp)))
    }

    /// Checks a token `provider` served at `received`, asked with `min_ttl`, which tokend said
    /// expires at `reported` (whole seconds).
    pub(crate) fn check(
        &self,
        provider: &str,
        token: &str,
        reported: Option<SystemTime>,
        min_ttl: Duration,
        received: SystemTime,
    ) -> Verdict {
        let tokens = self.tokens.lock().expect("tokens");
        let Some(issued) = tokens.get(token).filter(|i| i.provider == provider) else {
            return Verdict::Foreign;
        };
        let Some(expires) = issued.expires else {
            return Verdict::Good;
        };
        let left = expires.duration_since(received).unwrap_or(Duration::ZERO);
        if left.is_zero() {
            Verdict::Expired
        } else if left < min_ttl {
            Verdict::BelowMinimum
        } else if reported.is_none_or(|reported| reported > expires) {
            Verdict::Overstated
        } else {
            Verdict::Good
        }
    }

    /// Rotations of `provider`'s refresh-token chain so far (0 for other providers).
    pub(crate) fn rotations_of(&self, provider: &str) -> u64 {
        self.chains
            .lock()
            .expect("chains")
            .get(provider)
            .map_or(0, |chain| chain.serial)
    }

    /// Reuses of the previous refresh token so far.
    pub(crate) fn reuses(&self) -> Vec<Reuse> {
        self.reuses.lock().expect("reuses").clone()
    }
}
