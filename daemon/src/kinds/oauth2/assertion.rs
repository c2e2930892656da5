//! Client assertions (RFC 7521/7523): the one `client_auth = "private_key_jwt"` signs for each
//! request (section 2.2), the one the platform hands the job (`client_auth =
//! "client_assertion"`: a Kubernetes projected service-account token, an
//! `AZURE_FEDERATED_TOKEN_FILE`, a CI job's OIDC token), re-read for each request because the
//! platform rotates it, and the assertion of `grant = "jwt_bearer"` (section 2.1).

use std::time::Duration;

use tokend_protocol::clock;

use super::endpoints::Endpoints;
use super::{ClientAuth, JWT_CLIENT_ASSERTION, OAuth2Config, SigningKey};
use crate::kinds::jwt::{random_jti, sign};
use crate::kinds::{FetchCx, FetchError};

/// The form parameters that authenticate the client with an assertion for a request to
/// `endpoints`; none for other client authentication.
pub(crate) async fn client_assertion(
    cx: &FetchCx<'_>,
    config: &OAuth2Config,
    endpoints: &Endpoints,
) -> Result<Vec<(String, String)>, FetchError> {
    let assertion = match config.client_auth {
        ClientAuth::PrivateKeyJwt => {
            let key = config.signing_key.as_ref().ok_or_else(|| {
                FetchError::Config("client_auth \"private_key_jwt\" without private_key".to_owned())
            })?;
            sign_assertion(
                cx,
                key,
                &config.client_id,
                &config.client_id,
                endpoints.token.as_str(),
            )
            .await?
        }
        ClientAuth::ClientAssertion => {
            let template = config.client_assertion.as_ref().ok_or_else(|| {
                FetchError::Config(
                    "client_auth \"client_assertion\" without client_assertion".to_owned(),
                )
            })?;
            // Read now: the platform replaces the file before the old token expires.
            cx.resolve_platform("client_assertion", template)
                .await?
                .expose()
                .to_owned()
        }
        ClientAuth::Basic | ClientAuth::Post => return Ok(Vec::new()),
    };
    Ok(vec![
        (
            "client_assertion_type".to_owned(),
            JWT_CLIENT_ASSERTION.to_owned(),
        ),
        ("client_assertion".to_owned(), assertion),
    ])
}

/// How long a signed assertion is valid: long enough for clock skew and a slow request, short
/// enough that a leaked one is soon useless.
const ASSERTION_LIFETIME: Duration = Duration::from_secs(300);

/// Signs an RFC 7523 assertion with `key`: `iss`, `sub`, `aud`, `iat`, `nbf`, `exp` (in
/// [`ASSERTION_LIFETIME`]) and a random `jti`, so that no two assertions are alike.
pub(crate) async fn sign_assertion(
    cx: &FetchCx<'_>,
    key: &SigningKey,
    issuer: &str,
    subject: &str,
    audience: &str,
) -> Result<String, FetchError> {
    let now = clock::unix_now();
    let claims = serde_json::json!({
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "iat": now,
        "nbf": now,
        "exp": now + ASSERTION_LIFETIME.as_secs(),
        "jti": random_jti(),
    });
    sign(cx, key, &claims).await
}
