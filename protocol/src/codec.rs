//! The single bincode configuration and the encode/decode of one message payload.
//!
//! Everything that touches bincode goes through this module, so replacing the (unmaintained,
//! RUSTSEC-2025-0141) bincode 2 later means changing this file only.

use bincode::config::{Configuration, Limit, LittleEndian, Varint};
use bincode::{Decode, Encode};

use crate::error::ProtocolError;
use crate::frame::{FrameBuf, HEADER_LEN, MAX_FRAME_LEN, MAX_MESSAGE_LEN};
use crate::secret::SecretBuf;

/// The one codec configuration: bincode's standard encoding, with the frame limit as a decode
/// limit so a hostile length inside a payload cannot make the decoder allocate past it.
const CONFIG: Configuration<LittleEndian, Varint, Limit<MAX_FRAME_LEN>> =
    bincode::config::standard().with_limit::<MAX_FRAME_LEN>();

/// The same encoding with the message limit: for responses that may span several frames.
const MESSAGE_CONFIG: Configuration<LittleEndian, Varint, Limit<MAX_MESSAGE_LEN>> =
    bincode::config::standard().with_limit::<MAX_MESSAGE_LEN>();

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

/// Encodes one message as a complete frame (length prefix + payload) in a single buffer that is
/// wiped when dropped: no intermediate copy of the payload (which may hold a token) is left behind,
/// and the frame goes out in one write.
///
/// # Errors
/// [`ProtocolError::Encode`] if the message cannot be encoded, [`ProtocolError::FrameTooLarge`] if
/// its payload exceeds [`MAX_FRAME_LEN`].
pub fn encode_frame<T: Encode>(message: &T) -> Result<FrameBuf, ProtocolError> {
    // Measure first, so the buffer is allocated once at its final size: growing it while
    // encoding would free partial copies of the message (which may hold a token) unwiped.
    let mut size = bincode::enc::write::SizeWriter::default();
    bincode::encode_into_writer(message, &mut size, CONFIG)
        .map_err(|err| ProtocolError::Encode(err.to_string()))?;
    let len = size.bytes_written;
    let prefix = u32::try_from(len)
        .ok()
        .filter(|_| len <= MAX_FRAME_LEN)
        .ok_or(ProtocolError::FrameTooLarge {
            len,
            max: MAX_FRAME_LEN,
        })?;
    let mut frame = SecretBuf::with_capacity(HEADER_LEN + len);
    frame.extend_from_slice(&prefix.to_be_bytes());
    bincode::encode_into_std_write(message, &mut *frame, CONFIG)
        .map_err(|err| ProtocolError::Encode(err.to_string()))?;
    Ok(frame)
}

/// Encodes one message of any size up to [`MAX_MESSAGE_LEN`] as one or more frames (see
/// [`crate::frame`]): what the daemon answers with, since some answers grow with the config or
/// the store. A message that fits in a frame is exactly [`encode_frame`]'s.
///
/// # Errors
/// [`ProtocolError::Encode`] if the message cannot be encoded, [`ProtocolError::FrameTooLarge`] if
/// it exceeds [`MAX_MESSAGE_LEN`].
pub fn encode_message<T: Encode>(message: &T) -> Result<FrameBuf, ProtocolError> {
    let mut size = bincode::enc::write::SizeWriter::default();
    bincode::encode_into_writer(message, &mut size, MESSAGE_CONFIG)
        .map_err(|err| ProtocolError::Encode(err.to_string()))?;
    if size.bytes_written <= MAX_FRAME_LEN {
        return encode_frame(message);
    }
    if size.bytes_written > MAX_MESSAGE_LEN {
        return Err(ProtocolError::FrameTooLarge {
            len: size.bytes_written,
            max: MAX_MESSAGE_LEN,
        });
    }
    let mut payload = SecretBuf::with_capacity(size.bytes_written);
    bincode::encode_into_std_write(message, &mut *payload, MESSAGE_CONFIG)
        .map_err(|err| ProtocolError::Encode(err.to_string()))?;
    crate::frame::encode_message(&payload)
}

/// Decodes one message read with [`crate::frame::read_message_into`] (up to
/// [`MAX_MESSAGE_LEN`]); the payload must be consumed exactly.
///
/// # Errors
/// [`ProtocolError::Decode`] for malformed payloads or trailing bytes.
pub fn decode_message<T: Decode<()>>(payload: &[u8]) -> Result<T, ProtocolError> {
    decode_exact(payload, MESSAGE_CONFIG)
}

/// The [`crate::Request::GetToken`] in `payload`, read without allocating: `None` for any other
/// request, and for a payload that does not decode (read those with [`decode`], which says
/// what is wrong).
#[must_use]
pub fn decode_get_token(payload: &[u8]) -> Option<crate::GetTokenRef<'_>> {
    // `GetToken` is the request's variant 0: one varint byte, then its fields.
    let fields = payload.strip_prefix(&[0])?;
    let (get, used) = bincode::borrow_decode_from_slice(fields, CONFIG).ok()?;
    (used == fields.len()).then_some(get)
}

/// Decodes one message; the payload must be consumed exactly.
///
/// # Errors
/// [`ProtocolError::Decode`] for malformed payloads or trailing bytes.
pub fn decode<T: Decode<()>>(payload: &[u8]) -> Result<T, ProtocolError> {
    decode_exact(payload, CONFIG)
}

fn decode_exact<T: Decode<()>, C: bincode::config::Config>(
    payload: &[u8],
    config: C,
) -> Result<T, ProtocolError> {
    let (message, used) = bincode::decode_from_slice(payload, config)
        .map_err(|err| ProtocolError::Decode(err.to_string()))?;
    if used != payload.len() {
        return Err(ProtocolError::Decode(format!(
            "{} trailing bytes after the message",
            payload.len() - used
        )));
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{GetToken, Request, Response};

    #[test]
    fn encode_frame_is_the_length_prefix_and_the_payload() {
        let request = Request::GetToken(GetToken {
            provider: "crm".into(),
            min_ttl_secs: 30,
        });
        let payload = encode(&request).unwrap();
        let frame = encode_frame(&request).unwrap();
        assert_eq!(
            &frame[..4],
            &u32::try_from(payload.len()).unwrap().to_be_bytes()
        );
        assert_eq!(&frame[4..], payload.as_slice());
    }

    #[test]
    fn encode_frame_refuses_oversized_messages() {
        let huge = Response::error(crate::ErrorCode::Internal, "x".repeat(MAX_FRAME_LEN));
        assert!(matches!(
            encode_frame(&huge),
            Err(ProtocolError::FrameTooLarge { .. })
        ));
    }
}
