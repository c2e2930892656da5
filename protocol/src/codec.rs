//! The single bincode configuration and the encode/decode of one message payload.
//!
//! Everything that touches bincode goes through this module, so replacing the (unmaintained,
//! RUSTSEC-2025-0141) bincode 2 later means changing this file only.

use bincode::config::{Configuration, Limit, LittleEndian, Varint};
use bincode::{Decode, Encode};

use crate::error::ProtocolError;
use crate::frame::MAX_FRAME_LEN;

/// The one codec configuration: bincode's standard encoding, with the frame limit as a decode
/// limit so a hostile length inside a payload cannot make the decoder allocate past it.
const CONFIG: Configuration<LittleEndian, Varint, Limit<MAX_FRAME_LEN>> =
    bincode::config::standard().with_limit::<MAX_FRAME_LEN>();

/// Encodes one message into a payload no longer than [`MAX_FRAME_LEN`].
///
/// # Errors
/// [`ProtocolError::Encode`] if the message cannot be encoded or is too large for a frame.
pub fn encode<T: Encode>(message: &T) -> Result<Vec<u8>, ProtocolError> {
    let bytes = bincode::encode_to_vec(message, CONFIG)
        .map_err(|err| ProtocolError::Encode(err.to_string()))?;
    if bytes.len() > MAX_FRAME_LEN {
        return Err(ProtocolError::FrameTooLarge {
            len: bytes.len(),
            max: MAX_FRAME_LEN,
        });
    }
    Ok(bytes)
}

/// Decodes one message; the payload must be consumed exactly.
///
/// # Errors
/// [`ProtocolError::Decode`] for malformed payloads or trailing bytes.
pub fn decode<T: Decode<()>>(payload: &[u8]) -> Result<T, ProtocolError> {
    let (message, used) = bincode::decode_from_slice(payload, CONFIG)
        .map_err(|err| ProtocolError::Decode(err.to_string()))?;
    if used != payload.len() {
        return Err(ProtocolError::Decode(format!(
            "{} trailing bytes after the message",
            payload.len() - used
        )));
    }
    Ok(message)
}
