//! The fleet key and what is derived from it: entries are sealed with XChaCha20-Poly1305 under an
//! entry subkey, with the entry's Redis key and generation as associated data (an entry copied
//! to another name or replayed at another generation fails to open); Redis key names are a keyed
//! hash of the share name (they reveal no provider, tenant or client id); a served token is
//! compared by a keyed hash, never stored in clear. Subkeys come from HKDF-SHA256 with the
//! namespace in the info, so two namespaces never share a subkey.

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;

/// The 32-byte fleet key; wiped on drop, never printed.
pub(crate) struct FleetKey(Zeroizing<[u8; KEY_LEN]>);

impl std::fmt::Debug for FleetKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FleetKey([redacted])")
    }
}

impl FleetKey {
    /// Reads a key written as 64 hex digits or as base64 (standard or URL-safe, padded or not)
    /// of 32 bytes. The error says what is wrong without quoting the value.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bytes: Option<Zeroizing<Vec<u8>>> =
            if text.len() == 2 * KEY_LEN && text.bytes().all(|b| b.is_ascii_hexdigit()) {
                (0..KEY_LEN)
                    .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok())
                    .collect::<Option<Vec<u8>>>()
                    .map(Zeroizing::new)
            } else {
                [
                    &base64::engine::general_purpose::STANDARD,
                    &base64::engine::general_purpose::STANDARD_NO_PAD,
                    &base64::engine::general_purpose::URL_SAFE,
                    &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                ]
                .into_iter()
                .find_map(|engine| engine.decode(text).ok())
                .map(Zeroizing::new)
            };
        match bytes {
            Some(bytes) if bytes.len() == KEY_LEN => {
                let mut key = Zeroizing::new([0u8; KEY_LEN]);
                key.copy_from_slice(&bytes);
                Ok(Self(key))
            }
            Some(bytes) => Err(format!(
                "the fleet key is {} bytes long, not {KEY_LEN}",
                bytes.len()
            )),
            None => Err("the fleet key is neither 64 hex digits nor base64".to_owned()),
        }
    }
}

/// The subkeys of one fleet namespace.
pub(crate) struct Sealer {
    entries: XChaCha20Poly1305,
    names: Zeroizing<[u8; KEY_LEN]>,
    tokens: Zeroizing<[u8; KEY_LEN]>,
    namespace: String,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    pub(crate) fn new(key: &FleetKey, namespace: &str) -> Self {
        let hkdf = hkdf::Hkdf::<Sha256>::new(Some(b"tokend fleet v1"), key.0.as_slice());
        let derive = |purpose: &str| {
            let mut out = Zeroizing::new([0u8; KEY_LEN]);
            let info = format!("{purpose}\0{namespace}");
            hkdf.expand(info.as_bytes(), out.as_mut_slice())
                .expect("32 bytes is within HKDF-SHA256's output limit");
            out
        };
        let entries = derive("entries");
        Self {
            entries: XChaCha20Poly1305::new(entries.as_slice().into()),
            names: derive("names"),
            tokens: derive("tokens"),
            namespace: namespace.to_owned(),
        }
    }

    /// The Redis key prefix of a share: `tokend:NAMESPACE:HASH`, the hash keyed so that the
    /// name reveals nothing.
    pub(crate) fn key_base(&self, share: &str) -> String {
        format!(
            "tokend:{}:{}",
            self.namespace,
            keyed_hex(&self.names, share.as_bytes(), 16)
        )
    }

    /// The keyed hash a served token is compared by (`tok invalidate`).
    pub(crate) fn token_hash(&self, token: &str) -> String {
        keyed_hex(&self.tokens, token.as_bytes(), 16)
    }

    /// `nonce ‖ ciphertext` of `plain`, bound to `context` (the entry's key and generation).
    pub(crate) fn seal(&self, context: &[u8], plain: &[u8]) -> Vec<u8> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .entries
            .encrypt(
                &nonce,
                Payload {
                    msg: plain,
                    aad: context,
                },
            )
            .unwrap_or_default();
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens what [`seal`](Self::seal) made for the same `context`; `None` for anything else
    /// (another key, another entry, a tampered or truncated value).
    pub(crate) fn open(&self, context: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        self.entries
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: context,
                },
            )
            .ok()
            .map(Zeroizing::new)
    }
}

/// The first `bytes` bytes of HMAC-SHA256(`key`, `data`), in hex.
fn keyed_hex(key: &[u8; KEY_LEN], data: &[u8], bytes: usize) -> String {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes()[..bytes]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn keys_are_hex_or_base64_of_32_bytes() {
        assert!(FleetKey::parse(HEX).is_ok());
        let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert!(FleetKey::parse(&b64).is_ok());
        assert!(FleetKey::parse(b64.trim_end_matches('=')).is_ok());
        let short = base64::engine::general_purpose::STANDARD.encode([7u8; 16]);
        assert!(FleetKey::parse(&short).unwrap_err().contains("16 bytes"));
        assert!(
            FleetKey::parse("not a key!")
                .unwrap_err()
                .contains("neither")
        );
        assert_eq!(
            format!("{:?}", FleetKey::parse(HEX).unwrap()),
            "FleetKey([redacted])"
        );
    }

    #[test]
    fn sealed_entries_open_only_in_their_place() {
        let sealer = Sealer::new(&FleetKey::parse(HEX).unwrap(), "prod");
        let sealed = sealer.seal(b"tokend:prod:abc:access:7", b"token");
        assert_eq!(
            sealer
                .open(b"tokend:prod:abc:access:7", &sealed)
                .unwrap()
                .as_slice(),
            b"token"
        );
        // Another entry, another generation, a flipped bit, a truncation, another key.
        assert!(sealer.open(b"tokend:prod:xyz:access:7", &sealed).is_none());
        assert!(sealer.open(b"tokend:prod:abc:access:8", &sealed).is_none());
        let mut flipped = sealed.clone();
        flipped[30] ^= 1;
        assert!(sealer.open(b"tokend:prod:abc:access:7", &flipped).is_none());
        assert!(
            sealer
                .open(b"tokend:prod:abc:access:7", &sealed[..10])
                .is_none()
        );
        let other = Sealer::new(&FleetKey::parse(&"ff".repeat(32)).unwrap(), "prod");
        assert!(other.open(b"tokend:prod:abc:access:7", &sealed).is_none());
    }

    #[test]
    fn names_are_keyed_hashes_per_namespace() {
        let key = FleetKey::parse(HEX).unwrap();
        let prod = Sealer::new(&key, "prod");
        let base = prod.key_base("crm-prod");
        assert!(base.starts_with("tokend:prod:"), "{base}");
        assert!(!base.contains("crm"), "{base}");
        assert_eq!(base, prod.key_base("crm-prod"));
        assert_ne!(base, prod.key_base("crm-test"));
        let test = Sealer::new(&key, "test");
        assert_ne!(
            prod.key_base("crm-prod").rsplit(':').next(),
            test.key_base("crm-prod").rsplit(':').next()
        );
        assert_ne!(prod.token_hash("a"), prod.token_hash("b"));
    }
}
