//! `TokendAuth` (feature `reqwest`): a [`reqwest_middleware`] layer that puts a provider's
//! header on every request and, when the API answers 401, invalidates the token and sends the
//! request once more with a fresh one (when the request can be cloned: a streamed body
//! cannot, and its 401 goes back to the caller).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use tokend_client::AsyncClient;
//! use tokend_client::middleware::TokendAuth;
//!
//! let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(TokendAuth::new(AsyncClient::new(), "crm"))
//!     .build();
//! let contacts = http.get("https://crm.example.com/crmapi/rest/v2/contacts").send().await?;
//! # Ok(()) }
//! ```

use std::time::Duration;

use http::{Extensions, HeaderName, HeaderValue, StatusCode};
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};

use crate::{AsyncClient, GetOptions, Token};

/// The provider's header cannot go into an HTTP request (its name or value has characters
/// HTTP does not allow); the request is not sent.
#[derive(Debug, thiserror::Error)]
#[error("the provider's header {0} is not valid in HTTP; check the provider's `header` key")]
pub struct InvalidHeader(&'static str);

/// Adds `provider`'s header to each request; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct TokendAuth {
    tokens: AsyncClient,
    provider: String,
    options: GetOptions,
}

impl TokendAuth {
    /// Tokens of `provider` from `tokens` (share one `AsyncClient` between all the middleware
    /// and tasks of a program; it is cheap to clone).
    #[must_use]
    pub fn new(tokens: AsyncClient, provider: impl Into<String>) -> Self {
        Self {
            tokens,
            provider: provider.into(),
            options: GetOptions::default(),
        }
    }

    /// Each token sent must stay valid at least this long (default 30 s).
    #[must_use]
    pub fn min_ttl(mut self, min_ttl: Duration) -> Self {
        self.options.min_ttl = min_ttl;
        self
    }

    async fn token(&self) -> reqwest_middleware::Result<Token> {
        self.tokens
            .get_with(&self.provider, &self.options)
            .await
            .map_err(reqwest_middleware::Error::middleware)
    }
}

/// Sets the token's header on `request`, replacing any the caller set.
fn authorize(request: &mut Request, token: &Token) -> reqwest_middleware::Result<()> {
    let Some(header) = &token.header else {
        // An anonymous provider adds nothing.
        return Ok(());
    };
    let bad = |what: &'static str| reqwest_middleware::Error::middleware(InvalidHeader(what));
    let name = HeaderName::from_bytes(header.name.as_bytes()).map_err(|_| bad("name"))?;
    let mut value = HeaderValue::from_str(header.value.expose()).map_err(|_| bad("value"))?;
    value.set_sensitive(true);
    request.headers_mut().insert(name, value);
    Ok(())
}

#[async_trait::async_trait]
impl Middleware for TokendAuth {
    async fn handle(
        &self,
        mut request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let again = request.try_clone();
        let token = self.token().await?;
        authorize(&mut request, &token)?;
        let response = next.clone().run(request, extensions).await?;
        let Some(mut again) = again else {
            return Ok(response);
        };
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        // The API refused the token: drop it (rate-limited by the daemon) and try a fresh one.
        let _ = self.tokens.invalidate(&self.provider).await;
        let fresh = self.token().await?;
        if fresh.value.expose() == token.value.expose() {
            // No new token to try (invalidated shortly before by someone else).
            return Ok(response);
        }
        drop(response);
        authorize(&mut again, &fresh)?;
        next.run(again, extensions).await
    }
}
