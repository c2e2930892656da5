//! Resolving a [`SecretTemplate`] to a [`Secret`] through a [`Resolver`]: the environment of
//! the daemon, files (`file`), commands (`command`: no shell, 30 s timeout), the user secrets of
//! the store and other providers' tokens (a [`TokenSource`]), then the checks on the value
//! (non-empty, no control characters). [`ResolveOptions`] say what one key allows: line breaks
//! (PEM keys), a platform token file others may read, the request's signed `${jwt}`. Errors
//! ([`ResolveError`]) name the reference, never a value, and say what to do next.

use std::ffi::OsString;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokend_protocol::{ErrorCode, Secret, TokenGrant};
use zeroize::{Zeroize, Zeroizing};

use super::command::{CMD_TIMEOUT, run_command};
use super::file::read_secret_file;
use super::{ResolveError, SecretTemplate, Segment};
use crate::store::Store;

/// How long a token `${provider:NAME}` hands over stays valid at least: the request it goes
/// into (bounded by the provider's timeout, 10 s by default), and the server's handling of it,
/// fit in that time.
pub const PROVIDER_MIN_TTL: Duration = Duration::from_secs(15);

/// Looks an environment variable up.
type EnvLookup = dyn Fn(&str) -> Option<OsString> + Send + Sync;
/// Looks a user secret (`${secret:NAME}`) up.
type SecretLookup = dyn Fn(&str) -> Option<Secret> + Send + Sync;

/// A future of [`TokenSource::token`].
pub type TokenFuture<'a> =
    Pin<Box<dyn Future<Output = Result<TokenGrant, TokenFailure>> + Send + 'a>>;

/// Why another provider gave no token: its error code (login required, a config problem, an
/// upstream failure…), which the provider that needs its token reports in turn, and a message
/// for people that already names the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFailure {
    pub code: ErrorCode,
    pub message: String,
}

/// Where `${provider:NAME}` (and a rotation's `auth`) get another provider's current token:
/// the daemon's providers in force, through their caches.
pub trait TokenSource: Send + Sync {
    /// Provider `name`'s token, valid for at least `min_ttl`.
    fn token<'a>(&'a self, name: &'a str, min_ttl: Duration) -> TokenFuture<'a>;
}

/// Where references resolve from: the environment, the user secrets of `${secret:NAME}`, the
/// providers of `${provider:NAME}`, and how long a `${cmd:…}` may run. The daemon makes one from
/// its own environment and store and hands it its providers once they exist; tests inject
/// their own.
pub struct Resolver {
    env: Box<EnvLookup>,
    secrets: Box<SecretLookup>,
    cmd_timeout: Duration,
    providers: OnceLock<Arc<dyn TokenSource>>,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("cmd_timeout", &self.cmd_timeout)
            .field("providers", &self.providers.get().is_some())
            .finish_non_exhaustive()
    }
}

/// What one key's template may yield beyond a one-line value from private sources.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResolveOptions<'a> {
    /// Line breaks are allowed: the value is not sent in a header (a PEM private key).
    pub multiline: bool,
    /// A `${file:…}` may be readable (never writable) by group or others: a short-lived token
    /// the platform writes and rotates (a Kubernetes projected service-account token, which is
    /// 0644 unless every container runs as one user), that tokend could not `chmod`. It must
    /// belong to tokend's user or root.
    pub platform_file: bool,
    /// The JWT `${jwt}` stands for in this request.
    pub jwt: Option<&'a Secret>,
}

impl Resolver {
    /// The daemon's environment, the user secrets of `store` (none without one) and
    /// [`CMD_TIMEOUT`].
    #[must_use]
    pub fn new(store: Option<Arc<Store>>) -> Self {
        Self::with(
            |name| std::env::var_os(name),
            move |name| store.as_ref()?.user_secret(name),
            CMD_TIMEOUT,
        )
    }

    /// A resolver with the environment lookup, the user secrets and the command timeout given.
    pub fn with(
        env: impl Fn(&str) -> Option<OsString> + Send + Sync + 'static,
        secrets: impl Fn(&str) -> Option<Secret> + Send + Sync + 'static,
        cmd_timeout: Duration,
    ) -> Self {
        Self {
            env: Box::new(env),
            secrets: Box::new(secrets),
            cmd_timeout,
            providers: OnceLock::new(),
        }
    }

    /// Where `${provider:NAME}` resolves from (set once, when the daemon's providers exist).
    pub fn set_token_source(&self, source: Arc<dyn TokenSource>) {
        let _ = self.providers.set(source);
    }

    /// Provider `name`'s token through the [`TokenSource`], valid for `min_ttl`.
    pub async fn provider_token(
        &self,
        name: &str,
        min_ttl: Duration,
    ) -> Result<TokenGrant, ResolveError> {
        let source = self
            .providers
            .get()
            .ok_or_else(|| ResolveError::NoProviders {
                name: name.to_owned(),
            })?;
        source
            .token(name, min_ttl)
            .await
            .map_err(|failure| ResolveError::ProviderFailed {
                name: name.to_owned(),
                message: failure.message,
                code: failure.code,
            })
    }
}

impl SecretTemplate {
    /// Resolves every reference (environment of the daemon, files, commands with a 30 s timeout)
    /// and checks the result is non-empty and free of control characters.
    pub async fn resolve(&self, resolver: &Resolver) -> Result<Secret, ResolveError> {
        self.resolve_with(resolver, ResolveOptions::default()).await
    }

    /// [`resolve`](Self::resolve) for a value that is not sent in a header and may span lines
    /// (a PEM private key): line breaks are allowed, other control characters are not.
    pub async fn resolve_multiline(&self, resolver: &Resolver) -> Result<Secret, ResolveError> {
        let options = ResolveOptions {
            multiline: true,
            ..ResolveOptions::default()
        };
        self.resolve_with(resolver, options).await
    }

    /// [`resolve`](Self::resolve) with what this key allows besides.
    pub async fn resolve_with(
        &self,
        resolver: &Resolver,
        options: ResolveOptions<'_>,
    ) -> Result<Secret, ResolveError> {
        let multiline = options.multiline;
        // One resolved value per non-literal segment; concatenated at the end into a buffer of
        // the exact size, so no partial copy of the secret is left in a reallocated buffer.
        let mut resolved: Vec<Option<Zeroizing<String>>> = Vec::with_capacity(self.segments.len());
        for segment in &self.segments {
            let value = match segment {
                Segment::Literal(text) => {
                    check_no_control(text, segment, multiline)?;
                    resolved.push(None);
                    continue;
                }
                Segment::Env(name) => resolve_env(name, &*resolver.env)?,
                Segment::File(path) => read_secret_file(path, options.platform_file).await?,
                Segment::Provider(name) => {
                    let grant = resolver.provider_token(name, PROVIDER_MIN_TTL).await?;
                    Zeroizing::new(grant.token.expose().to_owned())
                }
                Segment::Jwt => match options.jwt {
                    Some(jwt) => Zeroizing::new(jwt.expose().to_owned()),
                    None => return Err(ResolveError::NoJwt),
                },
                Segment::Cmd(cmd) => run_command(cmd, resolver.cmd_timeout).await?,
                Segment::Secret(name) => match (resolver.secrets)(name) {
                    Some(value) => Zeroizing::new(value.expose().to_owned()),
                    None => return Err(ResolveError::SecretNotSet { name: name.clone() }),
                },
            };
            check_no_control(&value, segment, multiline)?;
            resolved.push(Some(value));
        }

        let parts = || {
            self.segments
                .iter()
                .zip(&resolved)
                .map(|(segment, value)| match (segment, value) {
                    (_, Some(value)) => value.as_str(),
                    (Segment::Literal(text), None) => text.as_str(),
                    (_, None) => "",
                })
        };
        let total: usize = parts().map(str::len).sum();
        if total == 0 {
            return Err(ResolveError::Empty {
                reference: self.describe_references(),
            });
        }
        let mut value = String::with_capacity(total);
        for part in parts() {
            value.push_str(part);
        }
        Ok(Secret::new(value))
    }
}

fn check_no_control(value: &str, segment: &Segment, multiline: bool) -> Result<(), ResolveError> {
    let forbidden = |c: char| c.is_control() && !(multiline && matches!(c, '\n' | '\r'));
    if value.contains(forbidden) {
        return Err(ResolveError::ControlChar {
            reference: segment.describe(),
        });
    }
    Ok(())
}

fn resolve_env(
    name: &str,
    env: &(dyn Fn(&str) -> Option<OsString> + Send + Sync),
) -> Result<Zeroizing<String>, ResolveError> {
    match env(name) {
        None => Err(ResolveError::EnvNotSet {
            name: name.to_owned(),
        }),
        Some(value) => match value.into_string() {
            Ok(value) => Ok(Zeroizing::new(value)),
            Err(value) => {
                // Still secret material: wipe it before reporting.
                value.into_encoded_bytes().zeroize();
                Err(ResolveError::EnvNotUnicode {
                    name: name.to_owned(),
                })
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{no_env, no_secrets, resolve_test};
    use super::*;

    #[tokio::test]
    async fn secret_references_resolve_from_the_store_lookup() {
        let template = SecretTemplate::parse("Bearer ${secret:gitlab.pat}").unwrap();
        assert!(matches!(&template.segments[..], [_, Segment::Secret(n)] if n == "gitlab.pat"));
        assert!(!template.is_literal());
        assert!(template.refers_to_secret("gitlab.pat"));
        assert!(!template.refers_to_secret("gitlab"));
        assert_eq!(
            format!("{template:?}"),
            "SecretTemplate[literal(7 bytes), secret:gitlab.pat]"
        );
        let lookup = |name: &str| (name == "gitlab.pat").then(|| Secret::from("glpat-value"));
        let value = template
            .resolve(&Resolver::with(no_env, lookup, Duration::from_secs(1)))
            .await
            .unwrap();
        assert_eq!(value.expose(), "Bearer glpat-value");
        let err = SecretTemplate::parse("${secret:other}")
            .unwrap()
            .resolve(&Resolver::with(no_env, lookup, Duration::from_secs(1)))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no secret named `other`") && err.contains("tok secret set other"),
            "{err}"
        );
        for bad in ["${secret:}", "${secret:a b}", "${secret:a/b}", "${secret:x"] {
            let err = SecretTemplate::parse(bad).unwrap_err();
            assert!(err.contains("${secret:…}"), "{bad}: {err}");
        }
    }

    #[tokio::test]
    async fn resolve_literal() {
        let secret = resolve_test("just-a-token").await.unwrap();
        assert_eq!(secret.expose(), "just-a-token");
        let escaped = resolve_test("a$${b").await.unwrap();
        assert_eq!(escaped.expose(), "a${b");
    }

    #[tokio::test]
    async fn resolve_env_through_injected_lookup() {
        let env = |name: &str| match name {
            "TOKEND_TEST_KEY" => Some(OsString::from("k3y")),
            "TOKEND_TEST_EMPTY" => Some(OsString::new()),
            "TOKEND_TEST_NEWLINE" => Some(OsString::from("abc\n")),
            _ => None,
        };
        let timeout = Duration::from_secs(1);
        let resolve = |text: &str| {
            let template = SecretTemplate::parse(text).unwrap();
            async move {
                template
                    .resolve(&Resolver::with(env, no_secrets, timeout))
                    .await
            }
        };

        let secret = resolve("pre-${env:TOKEND_TEST_KEY}-post").await.unwrap();
        assert_eq!(secret.expose(), "pre-k3y-post");

        let error = resolve("${env:TOKEND_TEST_MISSING}").await.unwrap_err();
        assert!(matches!(error, ResolveError::EnvNotSet { .. }));
        assert!(error.to_string().contains("TOKEND_TEST_MISSING"), "{error}");

        let error = resolve("${env:TOKEND_TEST_EMPTY}").await.unwrap_err();
        assert!(matches!(error, ResolveError::Empty { .. }), "{error}");
        assert!(
            error.to_string().contains("${env:TOKEND_TEST_EMPTY}"),
            "{error}"
        );

        // An empty variable is fine when the whole value is not empty.
        let secret = resolve("x${env:TOKEND_TEST_EMPTY}").await.unwrap();
        assert_eq!(secret.expose(), "x");

        let error = resolve("${env:TOKEND_TEST_NEWLINE}").await.unwrap_err();
        assert!(matches!(error, ResolveError::ControlChar { .. }), "{error}");
        assert!(!error.to_string().contains("abc"), "{error}");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn resolve_env_not_unicode() {
        use std::os::unix::ffi::OsStringExt;
        let env = |_: &str| Some(OsString::from_vec(vec![0x66, 0xff, 0x66]));
        let template = SecretTemplate::parse("${env:BINARY}").unwrap();
        let error = template
            .resolve(&Resolver::with(env, no_secrets, Duration::from_secs(1)))
            .await
            .unwrap_err();
        assert!(
            matches!(error, ResolveError::EnvNotUnicode { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("BINARY"), "{error}");
    }

    #[tokio::test]
    async fn resolve_is_send() {
        fn assert_send<T: Send>(_: &T) {}
        let template = SecretTemplate::parse("${env:X}").unwrap();
        let resolver = Resolver::new(None);
        let future = template.resolve(&resolver);
        assert_send(&future);
        drop(future);
    }

    #[tokio::test]
    async fn jwt_and_provider_references_resolve_from_their_sources() {
        struct Tokens;
        impl TokenSource for Tokens {
            fn token<'a>(&'a self, name: &'a str, min_ttl: Duration) -> TokenFuture<'a> {
                Box::pin(async move {
                    assert_eq!(min_ttl, PROVIDER_MIN_TTL);
                    match name {
                        "ci" => Ok(TokenGrant {
                            provider: name.to_owned(),
                            token: Secret::from("subject-token"),
                            header: None,
                            expires_at_unix: None,
                        }),
                        _ => Err(TokenFailure {
                            code: ErrorCode::LoginRequired,
                            message: format!("provider `{name}`: refused"),
                        }),
                    }
                })
            }
        }
        let resolver = Resolver::with(no_env, no_secrets, Duration::from_secs(1));
        let template = SecretTemplate::parse("${provider:ci}").unwrap();
        let error = template.resolve(&resolver).await.unwrap_err();
        assert!(matches!(error, ResolveError::NoProviders { .. }), "{error}");
        resolver.set_token_source(Arc::new(Tokens));
        assert_eq!(
            template.resolve(&resolver).await.unwrap().expose(),
            "subject-token"
        );
        let error = SecretTemplate::parse("${provider:other}")
            .unwrap()
            .resolve(&resolver)
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                ResolveError::ProviderFailed {
                    code: ErrorCode::LoginRequired,
                    ..
                }
            ),
            "{error}"
        );
        assert_eq!(
            error.to_string(),
            "${provider:other}: provider `other`: refused"
        );

        let jwt = SecretTemplate::parse("Bearer ${jwt}").unwrap();
        assert!(matches!(
            jwt.resolve(&resolver).await,
            Err(ResolveError::NoJwt)
        ));
        let signed = Secret::from("eyJhbGciOi.x.y");
        let options = ResolveOptions {
            jwt: Some(&signed),
            ..ResolveOptions::default()
        };
        assert_eq!(
            jwt.resolve_with(&resolver, options).await.unwrap().expose(),
            "Bearer eyJhbGciOi.x.y"
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn resolve_rejects_control_characters() {
        let error = resolve_test("${cmd:printf \"a\\nb\"}").await.unwrap_err();
        assert!(matches!(error, ResolveError::ControlChar { .. }), "{error}");
        assert!(error.to_string().contains("${cmd:printf …}"), "{error}");

        let error = resolve_test("tab\there").await.unwrap_err();
        assert!(matches!(error, ResolveError::ControlChar { .. }), "{error}");
        assert!(error.to_string().contains("literal text"), "{error}");

        let error = resolve_test("nul\0").await.unwrap_err();
        assert!(matches!(error, ResolveError::ControlChar { .. }), "{error}");
    }
}
