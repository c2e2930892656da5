//! Signed JWT assertions (RFC 7523): the client assertion of `client_auth = "private_key_jwt"`
//! (section 2.2) and the assertion of `grant = "jwt_bearer"` (section 2.1).

use std::time::Duration;

use tokend_protocol::clock;

use super::endpoints::Endpoints;
use super::{ClientAuth, OAuth2Config, SigningAlg, SigningKey};
use crate::kinds::{FetchCx, FetchError};

/// The form parameters of `client_auth = "private_key_jwt"` (RFC 7523 section 2.2) for a
/// request to `endpoints`; none for other client authentication.
pub(crate) async fn client_assertion(
    cx: &FetchCx<'_>,
    config: &OAuth2Config,
    endpoints: &Endpoints,
) -> Result<Vec<(String, String)>, FetchError> {
    if config.client_auth != ClientAuth::PrivateKeyJwt {
        return Ok(Vec::new());
    }
    let key = config.signing_key.as_ref().ok_or_else(|| {
        FetchError::Config("client_auth \"private_key_jwt\" without private_key".to_owned())
    })?;
    let assertion = sign_assertion(
        cx,
        key,
        &config.client_id,
        &config.client_id,
        endpoints.token.as_str(),
    )
    .await?;
    Ok(vec![
        (
            "client_assertion_type".to_owned(),
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
        ),
        ("client_assertion".to_owned(), assertion),
    ])
}

/// How long a signed assertion is valid: long enough for clock skew and a slow request, short
/// enough that a leaked one is soon useless.
const ASSERTION_LIFETIME: Duration = Duration::from_secs(300);

/// Signs an RFC 7523 assertion with `key`: `iss`, `sub`, `aud`, `iat`, `exp` (in
/// [`ASSERTION_LIFETIME`]) and a random `jti`, so that no two assertions are alike.
pub(crate) async fn sign_assertion(
    cx: &FetchCx<'_>,
    key: &SigningKey,
    issuer: &str,
    subject: &str,
    audience: &str,
) -> Result<String, FetchError> {
    let pem = key
        .private_key
        .resolve_multiline(cx.secrets)
        .await
        .map_err(|err| FetchError::Config(format!("private_key: {err}")))?;
    let (alg, encoding, kind) = match key.alg {
        SigningAlg::Rs256 => (
            jsonwebtoken::Algorithm::RS256,
            jsonwebtoken::EncodingKey::from_rsa_pem(pem.expose().as_bytes()),
            "RSA",
        ),
        SigningAlg::Es256 => (
            jsonwebtoken::Algorithm::ES256,
            jsonwebtoken::EncodingKey::from_ec_pem(pem.expose().as_bytes()),
            "EC P-256",
        ),
    };
    let encoding = encoding.map_err(|_| {
        FetchError::Config(format!(
            "private_key is not a PEM {kind} private key; give the key in \
             PEM (PKCS#8 \"BEGIN PRIVATE KEY\", or PKCS#1/SEC1), or set signing_alg to match it"
        ))
    })?;
    let mut header = jsonwebtoken::Header::new(alg);
    header.kid.clone_from(&key.key_id);
    let now = clock::unix_now();
    let claims = serde_json::json!({
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "iat": now,
        "exp": now + ASSERTION_LIFETIME.as_secs(),
        "jti": oauth2::CsrfToken::new_random().secret(),
    });
    let assertion = jsonwebtoken::encode(&header, &claims, &encoding).map_err(|err| {
        FetchError::Config(format!(
            "cannot sign the assertion with private_key ({err})"
        ))
    })?;
    // It authenticates the client for five minutes: as secret as a client secret.
    cx.sent.record(&assertion);
    Ok(assertion)
}
