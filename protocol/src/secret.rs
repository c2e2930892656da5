//! [`Secret`] carries token material and credentials; [`SecretBuf`] carries frames that may hold
//! them.
//!
//! A `Secret` never prints its value (`Debug` is redacted and there is no `Display`), wipes its
//! memory when dropped, and encodes on the wire as a plain string so the frame layout stays simple.
//!
//! Wiping uses `zeroize`'s slice path (a `memset` followed by an optimization barrier) over the
//! whole allocation, spare capacity included. `zeroize`'s `Vec`/`String` impls write one byte at a
//! time with volatile stores, which costs about a microsecond per kilobyte on the hot path.

use std::fmt;
use std::ops::{Deref, DerefMut};

use bincode::de::Decoder;
use bincode::enc::Encoder;
use bincode::error::{DecodeError, EncodeError};
use bincode::{Decode, Encode};
use zeroize::Zeroize;

/// Overwrites a buffer's whole allocation (length and spare capacity) with zeros and empties it.
pub fn wipe(bytes: &mut Vec<u8>) {
    zero_whole_allocation(bytes);
    bytes.clear();
}

/// Extends `bytes` over its whole capacity and zeroes every byte with a wipe the optimizer
/// cannot remove.
fn zero_whole_allocation(bytes: &mut Vec<u8>) {
    bytes.resize(bytes.capacity(), 0);
    bytes.as_mut_slice().zeroize();
}

/// A secret string (token, API key, header value). Redacted in `Debug`, wiped on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Drop for Secret {
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.0).into_bytes();
        wipe(&mut bytes);
    }
}

impl Secret {
    /// Wraps a value; the `String`'s buffer is wiped when the `Secret` is dropped.
    #[must_use]
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The secret value. Call this only where the value leaves the process on purpose
    /// (printing the token for `tok get`, sending a header upstream).
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Length in bytes (safe to log).
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the value is empty (safe to log).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl Encode for Secret {
    fn encode<E: Encoder>(&self, encoder: &mut E) -> Result<(), EncodeError> {
        self.0.as_str().encode(encoder)
    }
}

impl<Context> Decode<Context> for Secret {
    fn decode<D: Decoder<Context = Context>>(decoder: &mut D) -> Result<Self, DecodeError> {
        Ok(Self::new(crate::codec::decode_string(decoder)?))
    }
}

bincode::impl_borrow_decode!(Secret);

/// A byte buffer (a frame, an encoded response) that may hold secrets: wiped on drop.
#[derive(Default, PartialEq, Eq)]
pub struct SecretBuf(Vec<u8>);

impl SecretBuf {
    /// Wraps a buffer; it is wiped when the `SecretBuf` is dropped.
    #[must_use]
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// An empty buffer with room for `capacity` bytes.
    #[must_use]
    pub fn with_capacity(capacity: usize) -> Self {
        Self(Vec::with_capacity(capacity))
    }

    /// Makes room for at least `capacity` bytes without leaving an unwiped copy behind: when the
    /// allocation must grow, the contents move to a new one and the old one is wiped (a plain
    /// `Vec` reallocation would free the old bytes as they are).
    pub fn grow_to(&mut self, capacity: usize) {
        if capacity <= self.0.capacity() {
            return;
        }
        let mut bigger = Vec::with_capacity(capacity.max(self.0.capacity() * 2));
        bigger.extend_from_slice(&self.0);
        let mut old = std::mem::replace(&mut self.0, bigger);
        wipe(&mut old);
    }
}

impl Drop for SecretBuf {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

impl Deref for SecretBuf {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl DerefMut for SecretBuf {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

impl fmt::Debug for SecretBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBuf({} bytes)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Secret::from("hunter2-token");
        let shown = format!("{secret:?} {:?}", Some(&secret));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn wipe_zeroes_the_whole_allocation() {
        let mut bytes = Vec::with_capacity(64);
        bytes.extend_from_slice(b"token-token-token");
        let capacity = bytes.capacity();
        // Shrink the length: the old bytes now sit in spare capacity and must be wiped too.
        bytes.truncate(5);
        zero_whole_allocation(&mut bytes);
        assert_eq!(bytes.len(), capacity);
        assert!(bytes.iter().all(|b| *b == 0));
        wipe(&mut bytes);
        assert!(bytes.is_empty());
    }

    #[test]
    fn grow_to_keeps_the_contents_in_a_bigger_allocation() {
        let mut buf = SecretBuf::with_capacity(4);
        buf.extend_from_slice(b"abcd");
        buf.grow_to(100);
        assert!(buf.capacity() >= 100);
        assert_eq!(buf.as_slice(), b"abcd");
        let capacity = buf.capacity();
        buf.grow_to(10);
        assert_eq!(
            buf.capacity(),
            capacity,
            "no reallocation when there is room"
        );
    }

    #[test]
    fn secret_buf_debug_shows_only_the_length() {
        let buf = SecretBuf::new(b"hunter2".to_vec());
        assert_eq!(format!("{buf:?}"), "SecretBuf(7 bytes)");
    }

    #[test]
    fn expose_returns_the_value() {
        assert_eq!(Secret::from("abc").expose(), "abc");
        assert_eq!(Secret::from("abc").len(), 3);
    }
}
