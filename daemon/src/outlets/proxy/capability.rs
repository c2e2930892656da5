//! The capability of a TCP proxy: a random path prefix (128 bits, hex) that every request must
//! start with. A loopback port is open to every local user; the capability is what keeps the
//! others out (a Unix-socket proxy needs none: its directory and the peer-uid check do that).
//! It is kept in the store so that a URL handed to a program survives a restart, and compared
//! in constant time.

use chacha20poly1305::aead::OsRng;
use chacha20poly1305::aead::rand_core::RngCore as _;
use tokend_protocol::Secret;
use zeroize::Zeroizing;

/// Bytes of randomness in a capability.
const BYTES: usize = 16;

/// A new capability: 32 lower-case hex digits.
pub(crate) fn generate() -> Secret {
    let mut bytes = Zeroizing::new([0_u8; BYTES]);
    OsRng.fill_bytes(bytes.as_mut());
    let mut text = String::with_capacity(BYTES * 2);
    for byte in bytes.iter() {
        text.push(char::from(HEX[usize::from(byte >> 4)]));
        text.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    Secret::new(text)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The rest of `path` after the capability prefix `/CAPABILITY`, if it starts with it: `/` for
/// `/CAPABILITY` and `/CAPABILITY/`, `/x/y` for `/CAPABILITY/x/y`.
pub(crate) fn strip<'p>(path: &'p str, capability: &Secret) -> Option<&'p str> {
    let expected = capability.expose().as_bytes();
    let given = path.strip_prefix('/')?.as_bytes();
    if given.len() < expected.len() {
        return None;
    }
    let (head, rest) = given.split_at(expected.len());
    // Constant time over the capability's length: no early exit on the first wrong byte.
    let difference = head
        .iter()
        .zip(expected)
        .fold(0_u8, |acc, (a, b)| acc | (a ^ b));
    if difference != 0 {
        return None;
    }
    match rest.first() {
        None => Some("/"),
        Some(b'/') => std::str::from_utf8(rest).ok(),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_are_random_hex_and_strip_exactly() {
        let a = generate();
        assert_eq!(a.expose().len(), 32);
        assert!(a.expose().bytes().all(|b| HEX.contains(&b)));
        assert_ne!(a.expose(), generate().expose());
        let cap = Secret::from("0123456789abcdef0123456789abcdef");
        assert_eq!(strip("/0123456789abcdef0123456789abcdef", &cap), Some("/"));
        assert_eq!(strip("/0123456789abcdef0123456789abcdef/", &cap), Some("/"));
        assert_eq!(
            strip("/0123456789abcdef0123456789abcdef/v1/items", &cap),
            Some("/v1/items")
        );
        for wrong in [
            "/",
            "/v1/items",
            "/0123456789abcdef0123456789abcdee/v1",
            "/0123456789abcdef0123456789abcdefX",
            "/0123456789abcdef",
            "0123456789abcdef0123456789abcdef/",
        ] {
            assert_eq!(strip(wrong, &cap), None, "{wrong}");
        }
    }
}
