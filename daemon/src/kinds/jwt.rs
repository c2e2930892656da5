//! Signing JWTs: the signing key every kind that signs shares ([`SigningKey`]: a PEM private key
//! template, the algorithm, the `kid` and an optional certificate whose thumbprints go in the
//! header), reading its keys from a table, and signing a set of claims with it.
//!
//! Used by the client assertions and the `jwt_bearer` grant of `kind = "oauth2"` (RFC 7523), the
//! `jwt` table of `kind = "http"` (`${jwt}`, e.g. a GitHub App's JWT) and the Google service
//! account preset. Every assertion is signed anew for its request.

use base64::Engine as _;
use sha2::Digest as _;

use crate::config::ConfigError;
use crate::config::keys::Key;
use crate::config::reader::{CREDENTIAL, Literal, Table};
use crate::kinds::{FetchCx, FetchError};
use crate::secret::SecretTemplate;
use tokend_protocol::Secret;

/// `private_key`, `key_id`, `signing_alg` and `certificate`, wherever a table signs.
pub(crate) const KEYS: &[Key] = &[
    Key::new(
        "private_key",
        "to sign",
        "Credential template holding a PEM private key (PKCS#8, PKCS#1 or SEC1; line breaks \
         allowed), e.g. `\"${file:~/.config/tokend/key.pem}\"`.",
    ),
    Key::new("key_id", "no", "The `kid` header of the signed JWTs."),
    Key::new(
        "signing_alg",
        "no (`RS256`)",
        "`RS256` or `PS256` (an RSA key), or `ES256` (a P-256 key).",
    ),
    Key::new(
        "certificate",
        "no",
        "Template holding the PEM certificate of the key (as registered with Entra ID): its \
         SHA-256 and SHA-1 thumbprints go in the `x5t#S256` and `x5t` headers.",
    ),
];

/// A private key that signs JWTs.
#[derive(Debug, Clone, PartialEq)]
pub struct SigningKey {
    /// `private_key`: a PEM private key (PKCS#8, or PKCS#1 for RSA, SEC1 for EC).
    pub private_key: SecretTemplate,
    /// `signing_alg` (default `RS256`).
    pub alg: SigningAlg,
    /// `key_id`: the `kid` header, when the server needs it to pick the key.
    pub key_id: Option<String>,
    /// `certificate`: the key's PEM certificate, whose thumbprints go in `x5t#S256` and `x5t`
    /// (Entra ID's certificate credentials identify the key this way).
    pub certificate: Option<SecretTemplate>,
}

/// `signing_alg = …`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SigningAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    #[default]
    Rs256,
    /// RSASSA-PSS with SHA-256 (Entra ID accepts it for client assertions).
    Ps256,
    /// ECDSA P-256 with SHA-256.
    Es256,
}

/// Reads `private_key`, `key_id`, `signing_alg` and `certificate` when `needed`; refuses them
/// otherwise, saying what would sign with them (`signs_with`).
pub(crate) fn read_signing_key(
    table: &Table<'_, '_>,
    literals: &mut Vec<Literal>,
    needed: bool,
    signs_with: &'static str,
) -> Result<Option<SigningKey>, ConfigError> {
    if !needed {
        for key in KEYS.iter().map(|key| key.name) {
            if let Some(span) = table.key_span(key) {
                return Err(table.error(
                    &span,
                    &table.key_path(key),
                    format!("`{key}` is set but nothing signs with it"),
                    format!("remove it, or {signs_with}"),
                ));
            }
        }
        return Ok(None);
    }
    let private_key = table
        .template("private_key", CREDENTIAL, literals)?
        .ok_or_else(|| {
            table.missing(
                "private_key",
                format!("signing needs `private_key` ({signs_with})"),
                "add the PEM private key, e.g. \
                 private_key = \"${file:~/.config/tokend/client-key.pem}\"",
            )
        })?;
    let alg = match table.str("signing_alg")? {
        None => SigningAlg::default(),
        Some(found) => match found.text {
            "RS256" => SigningAlg::Rs256,
            "PS256" => SigningAlg::Ps256,
            "ES256" => SigningAlg::Es256,
            other => {
                return Err(table.error(
                    &found.span,
                    &found.key,
                    format!("unknown signing_alg {other:?}"),
                    "use one of: RS256 or PS256 (an RSA key), ES256 (a P-256 key)",
                ));
            }
        },
    };
    let key_id = match table.str("key_id")? {
        Some(found) => {
            table.non_empty(
                &found,
                "give the key's id as the server knows it, or remove it",
            )?;
            Some(found.text.to_owned())
        }
        None => None,
    };
    let certificate = table.template("certificate", crate::config::reader::TEXT, literals)?;
    Ok(Some(SigningKey {
        private_key,
        alg,
        key_id,
        certificate,
    }))
}

/// Signs `claims` with `key` (its `kid`, and the certificate's thumbprints when it has one).
/// The JWT is recorded as sent: it authenticates for minutes, as secret as a password.
pub(crate) async fn sign(
    cx: &FetchCx<'_>,
    key: &SigningKey,
    claims: &serde_json::Value,
) -> Result<String, FetchError> {
    let pem = cx
        .resolve_multiline("private_key", &key.private_key)
        .await?;
    let thumbprints = match &key.certificate {
        Some(certificate) => {
            let pem = cx.resolve_multiline("certificate", certificate).await?;
            Some(thumbprints(pem.expose()).map_err(FetchError::Config)?)
        }
        None => None,
    };
    sign_with(
        cx,
        &pem,
        key.alg,
        key.key_id.as_deref(),
        thumbprints,
        claims,
    )
}

/// Signs `claims` with the PEM private key `pem` (from a key file rather than a template).
pub(crate) fn sign_with(
    cx: &FetchCx<'_>,
    pem: &Secret,
    alg: SigningAlg,
    key_id: Option<&str>,
    thumbprints: Option<(String, String)>,
    claims: &serde_json::Value,
) -> Result<String, FetchError> {
    let (alg, encoding, kind) = match alg {
        SigningAlg::Rs256 => (
            jsonwebtoken::Algorithm::RS256,
            jsonwebtoken::EncodingKey::from_rsa_pem(pem.expose().as_bytes()),
            "RSA",
        ),
        SigningAlg::Ps256 => (
            jsonwebtoken::Algorithm::PS256,
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
            "private_key is not a PEM {kind} private key; give the key in PEM (PKCS#8 \"BEGIN \
             PRIVATE KEY\", or PKCS#1/SEC1), or set signing_alg to match it"
        ))
    })?;
    let mut header = jsonwebtoken::Header::new(alg);
    header.kid = key_id.map(str::to_owned);
    if let Some((sha256, sha1)) = thumbprints {
        header.x5t_s256 = Some(sha256);
        header.x5t = Some(sha1);
    }
    let jwt = jsonwebtoken::encode(&header, claims, &encoding)
        .map_err(|err| FetchError::Config(format!("cannot sign with private_key ({err})")))?;
    cx.sent.record(&jwt);
    Ok(jwt)
}

/// The base64url SHA-256 and SHA-1 thumbprints of the first certificate in `pem` (RFC 7515
/// `x5t#S256` and `x5t`: digests of its DER form).
pub(crate) fn thumbprints(pem: &str) -> Result<(String, String), String> {
    let blocks = pem::parse_many(pem.as_bytes()).map_err(|err| {
        format!("certificate is not PEM ({err}); give the certificate as \"BEGIN CERTIFICATE\"")
    })?;
    let der = blocks
        .iter()
        .find(|block| block.tag() == "CERTIFICATE")
        .ok_or_else(|| {
            "certificate holds no \"BEGIN CERTIFICATE\" block; give the PEM certificate of the \
             key"
            .to_owned()
        })?
        .contents();
    let b64 = |digest: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
    Ok((
        b64(&sha2::Sha256::digest(der)),
        b64(&sha1::Sha1::digest(der)),
    ))
}

/// A random JWT id, so that no two assertions are alike (servers refuse a replayed `jti`).
pub(crate) fn random_jti() -> String {
    oauth2::CsrfToken::new_random().secret().clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test fixture certificate (self-signed, of the OIDC test server's `pkjwt` key).
    const CERT: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/oidc/pkjwt-cert.pem"
    ));

    #[test]
    fn thumbprints_are_digests_of_the_der_form() {
        // As `openssl x509 -outform DER | openssl dgst -sha256 -binary | base64url` says.
        let (sha256, sha1) = thumbprints(&format!("junk before\n{CERT}")).unwrap();
        assert_eq!(sha256, "jIWDWTLwR53_FvzNMraBkUcnqj3MdQHQa4LBg29wDuA");
        assert_eq!(sha1, "xK5190350uwtlmj535fNHyRPHPs");
        let err = thumbprints("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
            .unwrap_err();
        assert!(err.contains("no \"BEGIN CERTIFICATE\""), "{err}");
        assert!(
            thumbprints("not pem")
                .unwrap_err()
                .contains("BEGIN CERTIFICATE")
        );
    }
}
