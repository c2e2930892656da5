//! [`ProtocolError`]: everything that can go wrong below the request/response level.

use std::io;

/// Failure to read, write, encode or decode a frame.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The transport failed.
    #[error("connection error: {0}")]
    Io(#[from] io::Error),
    /// A length prefix announced more than the limit allows (checked before allocating).
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    FrameTooLarge {
        /// Announced or attempted length.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed in the middle of a frame")]
    Truncated,
    /// The handshake frame did not start with the tokend magic: the peer is not tokend.
    #[error("the peer did not answer with a tokend handshake (wrong magic)")]
    BadMagic,
    /// A frame could not be decoded as the expected message.
    #[error(
        "malformed message ({0}); if tokend or tok was upgraded recently, restart the daemon with `tok stop`"
    )]
    Decode(String),
    /// A message could not be encoded (for example, it is larger than the frame limit).
    #[error("could not encode message: {0}")]
    Encode(String),
}
