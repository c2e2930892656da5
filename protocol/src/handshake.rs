//! The frozen handshake: the first frame in each direction of every connection.
//!
//! Its layout is written by hand (not bincode) and never changes, so that any two builds of
//! tokend and its clients, however far apart, can at least tell each other their versions:
//!
//! ```text
//! Hello   (client → daemon): "TOKD" | protocol: u32 BE | len: u16 BE | client_version: UTF-8
//! Welcome (daemon → client): "TOKD" | protocol: u32 BE | verdict: u8 (0 accepted, 1 incompatible)
//!                            | pid: u32 BE | len: u16 BE | daemon_version: UTF-8
//! ```
//!
//! Each travels in an ordinary length-prefixed frame no longer than
//! [`crate::frame::MAX_HANDSHAKE_LEN`]. After an `incompatible` verdict the daemon closes the
//! connection; after `accepted`, bincode-encoded requests and responses follow.

use crate::error::ProtocolError;

/// First four bytes of both handshake frames.
pub const MAGIC: [u8; 4] = *b"TOKD";

/// Longest version string either side sends (longer ones are cut, never rejected).
const MAX_VERSION_STRING: usize = 64;

/// The client's opening frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The client's [`crate::PROTOCOL_VERSION`].
    pub protocol: u32,
    /// The client's package version (informational).
    pub client_version: String,
}

/// The daemon's verdict on a [`Hello`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Same protocol: requests may follow.
    Accepted,
    /// Different protocol: the daemon closes the connection.
    Incompatible,
}

/// The daemon's answer to a [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// The daemon's [`crate::PROTOCOL_VERSION`].
    pub protocol: u32,
    /// Whether the daemon will serve this client.
    pub verdict: Verdict,
    /// The daemon's process id (so an incompatible daemon can be found and stopped).
    pub pid: u32,
    /// The daemon's package version (informational).
    pub daemon_version: String,
}

impl Hello {
    /// The hello this build sends.
    #[must_use]
    pub fn current() -> Self {
        Self {
            protocol: crate::PROTOCOL_VERSION,
            client_version: crate::PACKAGE_VERSION.to_owned(),
        }
    }

    /// Encodes the frame payload.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.client_version.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&self.protocol.to_be_bytes());
        put_str(&mut out, &self.client_version);
        out
    }

    /// Decodes a frame payload.
    ///
    /// # Errors
    /// [`ProtocolError::BadMagic`] when the payload is not a tokend hello,
    /// [`ProtocolError::Decode`] when it is cut short.
    pub fn decode(payload: &[u8]) -> Result<Self, ProtocolError> {
        let mut reader = Reader::new(payload)?;
        let protocol = reader.u32()?;
        let client_version = reader.string()?;
        Ok(Self {
            protocol,
            client_version,
        })
    }
}

impl Welcome {
    /// The welcome this build of the daemon sends in answer to `hello`.
    #[must_use]
    pub fn answer(hello: &Hello, pid: u32) -> Self {
        let verdict = if hello.protocol == crate::PROTOCOL_VERSION {
            Verdict::Accepted
        } else {
            Verdict::Incompatible
        };
        Self {
            protocol: crate::PROTOCOL_VERSION,
            verdict,
            pid,
            daemon_version: crate::PACKAGE_VERSION.to_owned(),
        }
    }

    /// Encodes the frame payload.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(20 + self.daemon_version.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&self.protocol.to_be_bytes());
        out.push(match self.verdict {
            Verdict::Accepted => 0,
            Verdict::Incompatible => 1,
        });
        out.extend_from_slice(&self.pid.to_be_bytes());
        put_str(&mut out, &self.daemon_version);
        out
    }

    /// Decodes a frame payload.
    ///
    /// # Errors
    /// [`ProtocolError::BadMagic`] when the payload is not a tokend welcome,
    /// [`ProtocolError::Decode`] when it is cut short or the verdict is unknown.
    pub fn decode(payload: &[u8]) -> Result<Self, ProtocolError> {
        let mut reader = Reader::new(payload)?;
        let protocol = reader.u32()?;
        let verdict = match reader.u8()? {
            0 => Verdict::Accepted,
            1 => Verdict::Incompatible,
            other => {
                return Err(ProtocolError::Decode(format!(
                    "unknown handshake verdict {other}"
                )));
            }
        };
        let pid = reader.u32()?;
        let daemon_version = reader.string()?;
        Ok(Self {
            protocol,
            verdict,
            pid,
            daemon_version,
        })
    }
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    let mut end = text.len().min(MAX_VERSION_STRING);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let bytes = &text.as_bytes()[..end];
    // `end` is at most MAX_VERSION_STRING (64), so it always fits in a u16.
    let len = u16::try_from(bytes.len()).unwrap_or(0);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&bytes[..usize::from(len)]);
}

/// Bounds-checked cursor over a handshake payload.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(payload: &'a [u8]) -> Result<Self, ProtocolError> {
        match payload.split_first_chunk::<4>() {
            Some((magic, rest)) if *magic == MAGIC => Ok(Self { rest }),
            _ => Err(ProtocolError::BadMagic),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtocolError> {
        if self.rest.len() < n {
            return Err(ProtocolError::Decode("handshake frame is cut short".into()));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, ProtocolError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, ProtocolError> {
        let bytes = self.take(4)?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    fn string(&mut self) -> Result<String, ProtocolError> {
        let len_bytes = self.take(2)?;
        let len = u16::from_be_bytes([len_bytes[0], len_bytes[1]]);
        let bytes = self.take(usize::from(len))?;
        // Versions are informational: a non-UTF-8 one is shown lossily rather than refused.
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_round_trips_and_has_a_frozen_layout() {
        let hello = Hello {
            protocol: 7,
            client_version: "1.2.3".into(),
        };
        let bytes = hello.encode();
        assert_eq!(bytes, b"TOKD\x00\x00\x00\x07\x00\x051.2.3");
        assert_eq!(Hello::decode(&bytes).unwrap(), hello);
    }

    #[test]
    fn welcome_round_trips_and_has_a_frozen_layout() {
        let welcome = Welcome {
            protocol: 1,
            verdict: Verdict::Incompatible,
            pid: 0x0102_0304,
            daemon_version: "0.1.0".into(),
        };
        let bytes = welcome.encode();
        assert_eq!(
            bytes,
            b"TOKD\x00\x00\x00\x01\x01\x01\x02\x03\x04\x00\x050.1.0"
        );
        assert_eq!(Welcome::decode(&bytes).unwrap(), welcome);
    }

    #[test]
    fn a_different_protocol_is_answered_incompatible() {
        let old = Hello {
            protocol: crate::PROTOCOL_VERSION + 1,
            client_version: "9.9.9".into(),
        };
        assert_eq!(Welcome::answer(&old, 1).verdict, Verdict::Incompatible);
        assert_eq!(
            Welcome::answer(&Hello::current(), 1).verdict,
            Verdict::Accepted
        );
    }

    #[test]
    fn garbage_is_bad_magic_and_short_frames_are_decode_errors() {
        assert!(matches!(
            Hello::decode(b"GET / HTTP/1.1"),
            Err(ProtocolError::BadMagic)
        ));
        assert!(matches!(
            Hello::decode(b"TOK"),
            Err(ProtocolError::BadMagic)
        ));
        assert!(matches!(
            Hello::decode(b"TOKD\x00"),
            Err(ProtocolError::Decode(_))
        ));
        assert!(matches!(
            Welcome::decode(b"TOKD\x00\x00\x00\x01\x07\x00\x00\x00\x01\x00\x00"),
            Err(ProtocolError::Decode(_))
        ));
    }

    #[test]
    fn long_versions_are_cut_on_a_char_boundary() {
        let hello = Hello {
            protocol: 1,
            client_version: "é".repeat(100),
        };
        let decoded = Hello::decode(&hello.encode()).unwrap();
        assert!(decoded.client_version.len() <= MAX_VERSION_STRING);
        assert!(decoded.client_version.chars().all(|c| c == 'é'));
    }
}
