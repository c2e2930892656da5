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

/// Decodes a string as bincode's `String` does (a varint length, then UTF-8 bytes), but copies
/// the bytes into a plain allocation where the reader holds them (every payload is a slice):
/// bincode's own goes through a zero-filled `vec![0; len]`, which glibc serves with `calloc`,
/// past the per-thread cache and under its arena lock, on every token a client decodes. The
/// bytes of a string that is not UTF-8 are wiped before the error (they may be a secret).
///
/// # Errors
/// As bincode's `String`: the length past the decode limit or the input, or invalid UTF-8.
pub(crate) fn decode_string<D: bincode::de::Decoder>(
    decoder: &mut D,
) -> Result<String, bincode::error::DecodeError> {
    use bincode::de::read::Reader;
    use bincode::error::DecodeError;

    let len = u64::decode(decoder)?;
    let len = usize::try_from(len).map_err(|_| DecodeError::OutsideUsizeRange(len))?;
    decoder.claim_container_read::<u8>(len)?;
    let bytes = if let Some(bytes) = decoder.reader().peek_read(len) {
        let owned = bytes.to_vec();
        decoder.reader().consume(len);
        owned
    } else {
        // A reader that cannot lend its bytes (none of ours): bincode's own way.
        let mut owned = vec![0; len];
        decoder.reader().read(&mut owned)?;
        owned
    };
    String::from_utf8(bytes).map_err(|err| {
        let inner = err.utf8_error();
        let mut bytes = err.into_bytes();
        crate::secret::wipe(&mut bytes);
        DecodeError::Utf8 { inner }
    })
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

    /// A reader without `peek_read`, as a stream's would be.
    struct Plain<'a>(&'a [u8]);

    impl bincode::de::read::Reader for Plain<'_> {
        fn read(&mut self, bytes: &mut [u8]) -> Result<(), bincode::error::DecodeError> {
            let (head, rest) = self
                .0
                .split_at_checked(bytes.len())
                .ok_or(bincode::error::DecodeError::UnexpectedEnd { additional: 1 })?;
            bytes.copy_from_slice(head);
            self.0 = rest;
            Ok(())
        }
    }

    #[test]
    fn strings_decode_as_bincode_decodes_them_from_slices_and_from_readers() {
        for text in ["", "crm", "Bearer é ✓", &"t".repeat(5000)] {
            let payload = encode(&text.to_owned()).unwrap();
            // From a slice (the reader can lend its bytes).
            let mut decoder = bincode::de::DecoderImpl::new(
                bincode::de::read::SliceReader::new(&payload),
                CONFIG,
                (),
            );
            assert_eq!(decode_string(&mut decoder).unwrap(), text);
            // From a reader that cannot lend them.
            let mut decoder = bincode::de::DecoderImpl::new(Plain(&payload), CONFIG, ());
            assert_eq!(decode_string(&mut decoder).unwrap(), text);
        }
    }

    #[test]
    fn a_string_that_is_not_utf8_or_longer_than_its_input_is_an_error() {
        let mut payload = encode(&"ab".to_owned()).unwrap();
        payload[1] = 0xff;
        let mut decoder = bincode::de::DecoderImpl::new(
            bincode::de::read::SliceReader::new(&payload),
            CONFIG,
            (),
        );
        assert!(matches!(
            decode_string(&mut decoder),
            Err(bincode::error::DecodeError::Utf8 { .. })
        ));
        let short = [10u8, b'a'];
        let mut decoder =
            bincode::de::DecoderImpl::new(bincode::de::read::SliceReader::new(&short), CONFIG, ());
        assert!(decode_string(&mut decoder).is_err());
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
