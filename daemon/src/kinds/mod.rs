//! Provider kinds and presets: how a provider obtains its token.
//!
//! Each kind (`kind = "…"`) and preset (`preset = "…"`) is one module that owns its config keys
//! (a [`Keys`] list, the one source of its hints and README table), their validation (reading
//! its `[providers.NAME]` table into a [`ProviderKind`]), its model and its fetch:
//!
//! - [`static_secret`]: `kind = "static"`, a fixed secret, optionally rotated through an API
//!   (`rotate`); with the `salestim` preset;
//! - [`anonymous`]: `kind = "anonymous"`, no credentials at all;
//! - [`oauth2`]: `kind = "oauth2"`, OAuth 2.0 grants (token exchange included), discovery,
//!   client assertions and the interactive logins; with the `azure-ad` and
//!   `google-service-account` presets;
//! - [`http`]: `kind = "http"`, any HTTP token exchange (with a signed `${jwt}` and RFC 3339
//!   expiries); with the `timekit`, `crm.com` and `github-app` presets.
//!
//! [`KINDS`] and [`PRESETS`] register them: adding a preset is one file that defines its
//! [`KindSpec`] plus one line in [`PRESETS`].
//!
//! A fetch gets a [`FetchCx`]: the secret resolver and the HTTP client of the daemon (nothing
//! global). Its result is a [`Fetched`] token or a [`FetchError`] (see [`fetched`]).

pub(crate) mod anonymous;
pub(crate) mod fetched;
pub(crate) mod http;
pub(crate) mod jwt;
pub(crate) mod oauth2;
pub(crate) mod static_secret;

use std::sync::Arc;

use tokend_protocol::Secret;

pub(crate) use self::fetched::{FetchError, Fetched, Lifetime};
use crate::config::ConfigError;
use crate::config::keys::Keys;
use crate::config::presentation::Presentation;
use crate::config::reader::{Literal, Table};
use crate::secret::{ResolveError, ResolveOptions, Resolver, SecretTemplate};
use crate::store::Store;
use crate::upstream::{Answer, TransportError, Upstream};

/// How a provider obtains its token. `Debug` is safe: [`SecretTemplate`] never shows literal text.
#[derive(Debug, Clone, PartialEq)]
// One value per configured provider: the large variants are boxed, so that a static provider
// (the common case, and what a config of thousands holds) costs tens of bytes, not the
// ~650 of an inline HTTP exchange (see `tokend-bench scale`, RSS per idle provider).
pub enum ProviderKind {
    /// A fixed secret (API key, personal access token), resolved from its template; with
    /// `rotate`, replaced through an API on demand or on a schedule.
    Static {
        secret: SecretTemplate,
        rotate: Option<Box<static_secret::Rotation>>,
    },
    /// No credentials at all: no header is sent (SalesTim's anonymous `/store` access).
    Anonymous,
    /// An OAuth 2.0 grant against a token endpoint.
    OAuth2(Box<oauth2::OAuth2Config>),
    /// Any HTTP token exchange (also what the `timekit` and `crm.com` presets expand to).
    Http(Box<http::HttpExchange>),
    /// A GitHub App installation token (`preset = "github-app"`): an `http` exchange after the
    /// installation is looked up.
    GitHubApp(Box<http::github::GitHubApp>),
    /// A Google service account's key file and the JWT-bearer grant
    /// (`preset = "google-service-account"`).
    Google(Box<oauth2::google::ServiceAccount>),
}

impl ProviderKind {
    /// The `kind` value in the config file.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Static { .. } => "static",
            Self::Anonymous => "anonymous",
            Self::OAuth2(_) | Self::Google(_) => "oauth2",
            Self::Http(_) | Self::GitHubApp(_) => "http",
        }
    }

    /// Every template of the kind's model (to check their references).
    #[must_use]
    pub fn templates(&self) -> Vec<&SecretTemplate> {
        match self {
            Self::Static { secret, .. } => vec![secret],
            Self::Anonymous => Vec::new(),
            Self::OAuth2(config) => config.templates(),
            Self::Http(exchange) => exchange.templates(),
            Self::GitHubApp(app) => app.exchange.templates(),
            Self::Google(account) => vec![&account.key_file],
        }
    }

    /// The other providers this one needs a token of: `${provider:NAME}` in its templates,
    /// and the `auth` provider of a `rotate` table.
    #[must_use]
    pub fn provider_refs(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .templates()
            .into_iter()
            .flat_map(SecretTemplate::provider_refs)
            .collect();
        if let Self::Static {
            rotate: Some(rotate),
            ..
        } = self
        {
            names.push(&rotate.auth);
        }
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Obtains one token.
    pub(crate) async fn fetch(
        &self,
        cx: &FetchCx<'_>,
        state: &mut FetchState,
    ) -> Result<Fetched, FetchError> {
        match self {
            Self::Static { secret, .. } => static_secret::fetch(cx, secret, state).await,
            Self::Anonymous => Ok(anonymous::fetch()),
            Self::OAuth2(config) => oauth2::fetch(cx, config, state).await,
            Self::Http(exchange) => http::fetch(cx, exchange).await,
            Self::GitHubApp(app) => http::github::fetch(cx, app, state).await,
            Self::Google(account) => oauth2::google::fetch(cx, account).await,
        }
    }
}

/// What one `[providers.NAME]` table reads into: the kind, and a preset's presentation
/// defaults (`None`: the built-in ones).
pub(crate) type Read = (ProviderKind, Option<Presentation>);

/// Reads a provider table whose `kind` or `preset` names this spec. It checks the table's keys
/// against [`KindSpec::keys`] itself, so that it can say more about a key that has no meaning
/// here first.
pub(crate) type ReadFn =
    fn(&KindSpec, &Table<'_, '_>, &mut Vec<Literal>) -> Result<Read, ConfigError>;

/// A kind or preset as the config file names it.
#[derive(Debug)]
pub(crate) struct KindSpec {
    /// `kind` or `preset`: the key that names it.
    pub(crate) key: &'static str,
    /// Its name (`oauth2`, `crm.com`).
    pub(crate) name: &'static str,
    /// What it does, for the key reference (Markdown).
    pub(crate) summary: &'static str,
    /// The keys it accepts besides [`KindSpec::key`].
    pub(crate) keys: Keys,
    pub(crate) read: ReadFn,
    /// The user name its `git` and `docker` routes answer with unless they say otherwise.
    pub(crate) route_username: &'static str,
}

impl KindSpec {
    /// How messages name it: `kind "oauth2"`, `preset "crm.com"`.
    pub(crate) fn owner(&self) -> String {
        format!("{} \"{}\"", self.key, self.name)
    }
}

/// Every kind, in the order hints list them.
pub(crate) const KINDS: [&KindSpec; 4] = [
    &static_secret::KIND,
    &anonymous::KIND,
    &oauth2::KIND,
    &http::KIND,
];

/// Every preset, in the order hints list them.
pub(crate) const PRESETS: [&KindSpec; 6] = [
    &http::timekit::PRESET,
    &http::crm::PRESET,
    &static_secret::salestim::PRESET,
    &oauth2::azure_ad::PRESET,
    &http::github::PRESET,
    &oauth2::google::PRESET,
];

/// The user name of a credential-helper route unless the kind or the route says otherwise:
/// GitLab wants exactly this for OAuth 2.0 tokens, and hosts that take personal access tokens
/// accept any.
pub(crate) const DEFAULT_ROUTE_USERNAME: &str = "oauth2";

/// What every fetch of a daemon uses, one of each: the resolver of secret references, the HTTP
/// client, and the fleet; and the key rotations in flight.
#[derive(Debug)]
pub(crate) struct Services {
    pub(crate) secrets: Arc<Resolver>,
    pub(crate) http: Arc<Upstream>,
    /// The fleet of `share`d providers, with `[fleet]`.
    pub(crate) fleet: Option<Arc<crate::fleet::Fleet>>,
    /// Key rotations in flight, each in its own task: once the request is out, the API may
    /// have issued a key only the rotation can store, so neither a caller that hangs up nor a
    /// reload ends one halfway, and shutdown waits for them (bounded).
    pub(crate) rotations: tokio_util::task::TaskTracker,
}

impl Services {
    /// `${secret:NAME}` resolves from `store` (none: no user secrets).
    pub(crate) fn new(store: Option<Arc<Store>>) -> Self {
        Self {
            secrets: Arc::new(Resolver::new(store)),
            http: Arc::new(Upstream::default()),
            fleet: None,
            rotations: tokio_util::task::TaskTracker::new(),
        }
    }

    /// The context of a fetch for provider `name`, recording what it sends in `sent`.
    pub(crate) fn cx<'a>(&'a self, name: &'a str, sent: &'a SentSecrets) -> FetchCx<'a> {
        FetchCx {
            name,
            secrets: &self.secrets,
            http: &self.http,
            sent,
            jwt: None,
        }
    }
}

/// Secrets shorter than this are not masked: too short to be searched for without mangling the
/// text (a one-letter secret would blank every such letter).
const MIN_MASKED_LEN: usize = 4;

/// What masked text shows instead of a secret.
pub(crate) const MASK: &str = "[redacted]";

/// The secret values one fetch sent upstream (resolved credentials, refresh tokens, signed
/// assertions), in the forms they travel in: as is, form-encoded, JSON-escaped, and inside an
/// HTTP Basic header. Many token endpoints echo the request in their error body
/// (`invalid_request: grant_type=…&client_secret=…`): every upstream text that reaches a message,
/// a log line or `tok status` is [masked](Self::mask) first.
#[derive(Debug, Default)]
pub(crate) struct SentSecrets(std::sync::Mutex<Vec<Secret>>);

impl Clone for SentSecrets {
    fn clone(&self) -> Self {
        let seen = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Self(std::sync::Mutex::new(seen.clone()))
    }
}

impl SentSecrets {
    /// Records `value` (and its encoded forms).
    pub(crate) fn record(&self, value: &str) {
        if value.len() < MIN_MASKED_LEN {
            return;
        }
        let form: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
        let json = serde_json::to_string(value).unwrap_or_default();
        let json = json.trim_matches('"').to_owned();
        let mut seen = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for form in [value.to_owned(), form, json] {
            if !seen.iter().any(|known| known.expose() == form) {
                seen.push(Secret::new(form));
            }
        }
    }

    /// Records the HTTP Basic credentials `user:password` as they travel: base64-encoded.
    pub(crate) fn record_basic(&self, user: &str, password: &str) {
        use base64::Engine as _;
        let pair = zeroize::Zeroizing::new(format!("{user}:{password}"));
        let encoded = base64::engine::general_purpose::STANDARD.encode(pair.as_bytes());
        self.record(&encoded);
    }

    /// `text` with every recorded secret replaced by [`MASK`], longest first.
    pub(crate) fn mask(&self, text: &str) -> String {
        let mut seen: Vec<Secret> = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        seen.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
        let mut text = text.to_owned();
        for secret in &seen {
            if text.contains(secret.expose()) {
                text = text.replace(secret.expose(), MASK);
            }
        }
        text
    }
}

/// What a fetch may use: the provider's name (for the hints of its messages: "run `tok login
/// NAME`"), the resolver of its secret references and the daemon's HTTP client.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FetchCx<'a> {
    pub(crate) name: &'a str,
    pub(crate) secrets: &'a Arc<Resolver>,
    pub(crate) http: &'a Arc<Upstream>,
    /// What this fetch sent upstream, to mask in what comes back.
    pub(crate) sent: &'a SentSecrets,
    /// The JWT `${jwt}` stands for in this request (kind `http` with a `jwt` table).
    pub(crate) jwt: Option<&'a Secret>,
}

impl FetchCx<'_> {
    fn options(&self) -> ResolveOptions<'_> {
        ResolveOptions {
            jwt: self.jwt,
            ..ResolveOptions::default()
        }
    }

    /// Resolves the template of `key`; a failure is a configuration problem, except that a
    /// `${provider:NAME}` whose provider failed fails the same way.
    pub(crate) async fn resolve(
        &self,
        key: &str,
        template: &SecretTemplate,
    ) -> Result<Secret, FetchError> {
        self.resolve_with(key, template, self.options()).await
    }

    /// [`resolve`](Self::resolve) of a token the platform hands the job (a federated token
    /// file, a subject token): a `${file:…}` there may be readable by others.
    pub(crate) async fn resolve_platform(
        &self,
        key: &str,
        template: &SecretTemplate,
    ) -> Result<Secret, FetchError> {
        let options = ResolveOptions {
            platform_file: true,
            ..self.options()
        };
        self.resolve_with(key, template, options).await
    }

    /// [`resolve`](Self::resolve) of a value that may span lines (a PEM key, a JSON key file).
    pub(crate) async fn resolve_multiline(
        &self,
        key: &str,
        template: &SecretTemplate,
    ) -> Result<Secret, FetchError> {
        let options = ResolveOptions {
            multiline: true,
            ..self.options()
        };
        self.resolve_with(key, template, options).await
    }

    async fn resolve_with(
        &self,
        key: &str,
        template: &SecretTemplate,
        options: ResolveOptions<'_>,
    ) -> Result<Secret, FetchError> {
        let value = template
            .resolve_with(self.secrets, options)
            .await
            .map_err(|err| resolve_failure(key, err))?;
        self.sent.record(value.expose());
        Ok(value)
    }

    /// [`resolve`](Self::resolve) where an empty value is legitimate (the empty password of an
    /// API-key Basic pair, an empty JSON string).
    pub(crate) async fn resolve_allow_empty(
        &self,
        key: &str,
        template: &SecretTemplate,
    ) -> Result<Secret, FetchError> {
        match template.resolve_with(self.secrets, self.options()).await {
            Ok(value) => {
                self.sent.record(value.expose());
                Ok(value)
            }
            Err(ResolveError::Empty { .. }) => Ok(Secret::from("")),
            Err(err) => Err(resolve_failure(key, err)),
        }
    }

    /// Sends a request; one that got no answer is a transient failure.
    pub(crate) async fn send(&self, request: reqwest::Request) -> Result<Answer, FetchError> {
        self.http
            .send(request)
            .await
            .map_err(|err| transport_failure(&err))
    }
}

/// A template of `key` that did not resolve: a configuration problem, except another
/// provider's failure (`${provider:NAME}`), which keeps that provider's error code (see
/// [`FetchError::Referenced`]; its own backoff keeps it from being hammered).
pub(crate) fn resolve_failure(key: &str, err: ResolveError) -> FetchError {
    match err {
        ResolveError::ProviderFailed { code, .. } => FetchError::Referenced {
            message: format!("{key}: {err}"),
            code,
        },
        err => FetchError::Config(format!("{key}: {err}")),
    }
}

/// A request that got no usable answer: worth retrying.
pub(crate) fn transport_failure(err: &TransportError) -> FetchError {
    FetchError::Transient {
        message: err.to_string(),
        retry_after: None,
    }
}

/// State a kind keeps between fetches; owned by the provider's single-flight lock.
#[derive(Debug, Default)]
pub(crate) struct FetchState {
    /// The refresh token in force: the one the server rotated the configured one into, or the
    /// one `tok login` obtained.
    pub(crate) refresh_token: Option<Secret>,
    /// The configured refresh token that `refresh_token` descends from. When the configured one
    /// changes (the user put a new one in place), the rotated chain is abandoned for it.
    pub(crate) origin: Option<Secret>,
    /// The last rotated refresh token could not be saved: the one in memory is newer than the
    /// store's.
    pub(crate) unsaved_rotation: bool,
    /// The endpoints found through OpenID Connect discovery (boxed: most providers have none,
    /// and each provider holds a `FetchState`).
    pub(crate) discovered: Option<Box<oauth2::endpoints::Endpoints>>,
    /// A GitHub App's installation id, looked up once from its `owner`.
    pub(crate) installation: Option<u64>,
    /// A static provider's key as its `rotate` table last replaced it (`None`: the configured
    /// one is in force).
    pub(crate) rotated_key: Option<Secret>,
    /// The configured key that [`FetchState::rotated_key`] descends from: when the configured
    /// one changes (the user put a new key in place), the rotated one is abandoned for it.
    pub(crate) rotated_origin: Option<Secret>,
    /// [`FetchState::rotated_key`] is not in the store yet: it is not served until it is.
    pub(crate) rotation_unsaved: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_keys_are_not_repeated() {
        let mut seen = Vec::new();
        for spec in KINDS.iter().chain(&PRESETS) {
            assert!(!seen.contains(&spec.name), "{} twice", spec.name);
            seen.push(spec.name);
            let names = crate::config::keys::names(Some(spec.key), spec.keys);
            for (index, name) in names.iter().enumerate() {
                assert!(
                    !names[index + 1..].contains(name),
                    "{} lists `{name}` twice",
                    spec.owner()
                );
            }
        }
        assert!(KINDS.iter().all(|spec| spec.key == "kind"));
        assert!(PRESETS.iter().all(|spec| spec.key == "preset"));
    }
}
