//! Length-prefixed framing: `u32` big-endian payload length, then the payload.
//!
//! The length is checked against the caller's limit *before* anything is allocated, in both
//! directions. A clean end of stream between frames reads as `None`; an end of stream inside a
//! frame is [`ProtocolError::Truncated`]. Frame buffers are wiped when dropped because responses
//! carry tokens.
//!
//! **Messages larger than a frame** (responses that grow with the config or the store: status,
//! metrics, secret lists, credential routes) travel as several frames: the top bit of the length
//! ([`MORE`]) says another frame of the same message follows. Only the readers that accept
//! messages ([`read_message_into`], used by clients for responses) put them back together, up to
//! [`MAX_MESSAGE_LEN`]. Every other reader (the daemon's request reader, the handshake) sees a
//! length with the top bit set as too large and refuses it: the limits that protect the hot path
//! and the pre-handshake stage stay as they are.

use std::io::{self, Read, Write};

use crate::error::ProtocolError;
use crate::secret::SecretBuf;

/// Largest payload either side sends or accepts once the handshake is done. Tokens are small;
/// 64 KiB leaves room for large JWTs and long status lists.
pub const MAX_FRAME_LEN: usize = 64 * 1024;

/// Largest payload accepted for the handshake frames (before the peer is known to be tokend).
pub const MAX_HANDSHAKE_LEN: usize = 256;

/// Size of the length prefix.
pub const HEADER_LEN: usize = 4;

/// In a length prefix: another frame of the same message follows this one.
pub const MORE: u32 = 1 << 31;

/// Largest message a client accepts as a response, over all its frames (a status of about
/// 500,000 providers).
pub const MAX_MESSAGE_LEN: usize = 64 * 1024 * 1024;

/// A received payload; zeroed on drop.
pub type FrameBuf = SecretBuf;

/// Builds header + payload in one buffer, so that a frame goes out in a single write.
///
/// # Errors
/// [`ProtocolError::FrameTooLarge`] if the payload exceeds [`MAX_FRAME_LEN`].
pub fn encode_frame(payload: &[u8]) -> Result<FrameBuf, ProtocolError> {
    let len = checked_len(payload.len(), MAX_FRAME_LEN)?;
    let mut frame = SecretBuf::with_capacity(HEADER_LEN + payload.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(payload);
    Ok(frame)
}

/// Builds a message of any size up to [`MAX_MESSAGE_LEN`] as frames of at most
/// [`MAX_FRAME_LEN`] in one buffer: one frame when it fits (the same bytes as [`encode_frame`]),
/// else frames whose headers carry [`MORE`] but for the last one.
///
/// # Errors
/// [`ProtocolError::FrameTooLarge`] if the payload exceeds [`MAX_MESSAGE_LEN`].
pub fn encode_message(payload: &[u8]) -> Result<FrameBuf, ProtocolError> {
    if payload.len() > MAX_MESSAGE_LEN {
        return Err(ProtocolError::FrameTooLarge {
            len: payload.len(),
            max: MAX_MESSAGE_LEN,
        });
    }
    let frames = payload.len().div_ceil(MAX_FRAME_LEN).max(1);
    let mut message = SecretBuf::with_capacity(frames * HEADER_LEN + payload.len());
    let mut chunks = payload.chunks(MAX_FRAME_LEN).peekable();
    if chunks.peek().is_none() {
        message.extend_from_slice(&0u32.to_be_bytes());
    }
    while let Some(chunk) = chunks.next() {
        let mut header = checked_len(chunk.len(), MAX_FRAME_LEN)?;
        if chunks.peek().is_some() {
            header |= MORE;
        }
        message.extend_from_slice(&header.to_be_bytes());
        message.extend_from_slice(chunk);
    }
    Ok(message)
}

/// Splits a message header into the frame's length and whether more frames follow.
fn message_part(header: [u8; HEADER_LEN]) -> Result<(usize, bool), ProtocolError> {
    let announced = u32::from_be_bytes(header);
    let more = announced & MORE != 0;
    let len = usize::try_from(announced & !MORE).unwrap_or(usize::MAX);
    if len > MAX_FRAME_LEN {
        return Err(ProtocolError::FrameTooLarge {
            len,
            max: MAX_FRAME_LEN,
        });
    }
    Ok((len, more))
}

/// The room left for a message of `max` bytes that holds `filled`, for a frame of `len`.
fn message_room(filled: usize, len: usize, max: usize) -> Result<(), ProtocolError> {
    let total = filled.saturating_add(len);
    if total > max {
        return Err(ProtocolError::FrameTooLarge { len: total, max });
    }
    Ok(())
}

fn checked_len(len: usize, max: usize) -> Result<u32, ProtocolError> {
    if len > max {
        return Err(ProtocolError::FrameTooLarge { len, max });
    }
    u32::try_from(len).map_err(|_| ProtocolError::FrameTooLarge { len, max })
}

/// Validates a received header against `max` and returns the payload length.
fn payload_len(header: [u8; HEADER_LEN], max: usize) -> Result<usize, ProtocolError> {
    let announced = u32::from_be_bytes(header);
    let len = usize::try_from(announced).unwrap_or(usize::MAX);
    if len > max {
        return Err(ProtocolError::FrameTooLarge { len, max });
    }
    Ok(len)
}

/// Writes one frame (blocking).
///
/// # Errors
/// [`ProtocolError::FrameTooLarge`] or the transport's error.
pub fn write_frame<W: Write + ?Sized>(writer: &mut W, payload: &[u8]) -> Result<(), ProtocolError> {
    let frame = encode_frame(payload)?;
    writer.write_all(&frame)?;
    writer.flush()?;
    Ok(())
}

/// Reads one frame of at most `max` payload bytes (blocking). `Ok(None)` on a clean end of
/// stream before the first header byte.
///
/// # Errors
/// [`ProtocolError::FrameTooLarge`] before allocating, [`ProtocolError::Truncated`], or the
/// transport's error.
pub fn read_frame<R: Read + ?Sized>(
    reader: &mut R,
    max: usize,
) -> Result<Option<FrameBuf>, ProtocolError> {
    let mut payload = SecretBuf::default();
    Ok(read_frame_into(reader, max, &mut payload)?.then_some(payload))
}

/// Like [`read_frame`], but reads the payload into `payload` (replacing its contents), so a
/// connection can reuse one buffer for every frame. Returns `false` on a clean end of stream.
///
/// # Errors
/// As [`read_frame`].
pub fn read_frame_into<R: Read + ?Sized>(
    reader: &mut R,
    max: usize,
    payload: &mut SecretBuf,
) -> Result<bool, ProtocolError> {
    let mut header = [0u8; HEADER_LEN];
    let mut filled = 0;
    while filled < HEADER_LEN {
        match reader.read(&mut header[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => return Err(ProtocolError::Truncated),
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err.into()),
        }
    }
    let len = payload_len(header, max)?;
    payload.clear();
    payload.grow_to(len);
    payload.resize(len, 0);
    reader.read_exact(payload).map_err(truncated_on_eof)?;
    Ok(true)
}

/// Reads one message of at most `max` bytes over all its frames (see the module docs) into
/// `payload`, replacing its contents. Returns `false` on a clean end of stream before the first
/// frame; an end of stream between two frames of one message is [`ProtocolError::Truncated`].
///
/// # Errors
/// [`ProtocolError::FrameTooLarge`] before allocating past `max` or [`MAX_FRAME_LEN`] per
/// frame, [`ProtocolError::Truncated`], or the transport's error.
pub fn read_message_into<R: Read + ?Sized>(
    reader: &mut R,
    max: usize,
    payload: &mut SecretBuf,
) -> Result<bool, ProtocolError> {
    payload.clear();
    let mut first = true;
    loop {
        let mut header = [0u8; HEADER_LEN];
        let mut filled = 0;
        while filled < HEADER_LEN {
            match reader.read(&mut header[filled..]) {
                Ok(0) if filled == 0 && first => return Ok(false),
                Ok(0) => return Err(ProtocolError::Truncated),
                Ok(n) => filled += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err.into()),
            }
        }
        first = false;
        let (len, more) = message_part(header)?;
        message_room(payload.len(), len, max)?;
        let start = payload.len();
        payload.grow_to(start + len);
        payload.resize(start + len, 0);
        reader
            .read_exact(&mut payload[start..])
            .map_err(truncated_on_eof)?;
        if !more {
            return Ok(true);
        }
    }
}

fn truncated_on_eof(err: io::Error) -> ProtocolError {
    if err.kind() == io::ErrorKind::UnexpectedEof {
        ProtocolError::Truncated
    } else {
        ProtocolError::Io(err)
    }
}

/// Async framing over tokio I/O, with the same rules as the blocking functions.
#[cfg(feature = "tokio")]
pub mod nonblocking {
    use super::{
        FrameBuf, HEADER_LEN, encode_frame, message_part, message_room, payload_len,
        truncated_on_eof,
    };
    use crate::error::ProtocolError;
    use crate::secret::SecretBuf;
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

    /// Writes one frame.
    ///
    /// # Errors
    /// [`ProtocolError::FrameTooLarge`] or the transport's error.
    pub async fn write_frame<W: AsyncWrite + Unpin + ?Sized>(
        writer: &mut W,
        payload: &[u8],
    ) -> Result<(), ProtocolError> {
        let frame = encode_frame(payload)?;
        writer.write_all(&frame).await?;
        writer.flush().await?;
        Ok(())
    }

    /// Reads one frame of at most `max` payload bytes; `Ok(None)` on a clean end of stream.
    ///
    /// # Errors
    /// [`ProtocolError::FrameTooLarge`] before allocating, [`ProtocolError::Truncated`], or the
    /// transport's error.
    pub async fn read_frame<R: AsyncRead + Unpin + ?Sized>(
        reader: &mut R,
        max: usize,
    ) -> Result<Option<FrameBuf>, ProtocolError> {
        let mut payload = SecretBuf::default();
        Ok(read_frame_into(reader, max, &mut payload)
            .await?
            .then_some(payload))
    }

    /// Like [`read_frame`], reusing `payload` (its contents are replaced). Returns `false` on a
    /// clean end of stream.
    ///
    /// # Errors
    /// As [`read_frame`].
    pub async fn read_frame_into<R: AsyncRead + Unpin + ?Sized>(
        reader: &mut R,
        max: usize,
        payload: &mut SecretBuf,
    ) -> Result<bool, ProtocolError> {
        let mut header = [0u8; HEADER_LEN];
        let mut filled = 0;
        while filled < HEADER_LEN {
            match reader.read(&mut header[filled..]).await? {
                0 if filled == 0 => return Ok(false),
                0 => return Err(ProtocolError::Truncated),
                n => filled += n,
            }
        }
        let len = payload_len(header, max)?;
        payload.clear();
        payload.grow_to(len);
        payload.resize(len, 0);
        reader.read_exact(payload).await.map_err(truncated_on_eof)?;
        Ok(true)
    }

    /// Reads one message over all its frames; see [`super::read_message_into`].
    ///
    /// # Errors
    /// As [`super::read_message_into`].
    pub async fn read_message_into<R: AsyncRead + Unpin + ?Sized>(
        reader: &mut R,
        max: usize,
        payload: &mut SecretBuf,
    ) -> Result<bool, ProtocolError> {
        payload.clear();
        let mut first = true;
        loop {
            let mut header = [0u8; HEADER_LEN];
            let mut filled = 0;
            while filled < HEADER_LEN {
                match reader.read(&mut header[filled..]).await? {
                    0 if filled == 0 && first => return Ok(false),
                    0 => return Err(ProtocolError::Truncated),
                    n => filled += n,
                }
            }
            first = false;
            let (len, more) = message_part(header)?;
            message_room(payload.len(), len, max)?;
            let start = payload.len();
            payload.grow_to(start + len);
            payload.resize(start + len, 0);
            reader
                .read_exact(&mut payload[start..])
                .await
                .map_err(truncated_on_eof)?;
            if !more {
                return Ok(true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    #[test]
    fn two_frames_in_one_buffer_are_read_one_at_a_time() {
        let mut wire = Vec::new();
        write_frame(&mut wire, b"one").unwrap();
        write_frame(&mut wire, b"").unwrap();
        write_frame(&mut wire, b"three").unwrap();
        let mut cursor = Cursor::new(wire);
        assert_eq!(
            read_frame(&mut cursor, 16).unwrap().unwrap().as_slice(),
            b"one"
        );
        assert_eq!(
            read_frame(&mut cursor, 16).unwrap().unwrap().as_slice(),
            b""
        );
        assert_eq!(
            read_frame(&mut cursor, 16).unwrap().unwrap().as_slice(),
            b"three"
        );
        assert!(read_frame(&mut cursor, 16).unwrap().is_none());
    }

    #[test]
    fn a_reused_buffer_holds_exactly_each_frame() {
        let mut wire = Vec::new();
        write_frame(&mut wire, b"a longer first frame").unwrap();
        write_frame(&mut wire, b"short").unwrap();
        let mut cursor = Cursor::new(wire);
        let mut buf = SecretBuf::default();
        assert!(read_frame_into(&mut cursor, 64, &mut buf).unwrap());
        assert_eq!(buf.as_slice(), b"a longer first frame");
        assert!(read_frame_into(&mut cursor, 64, &mut buf).unwrap());
        assert_eq!(buf.as_slice(), b"short");
        assert!(!read_frame_into(&mut cursor, 64, &mut buf).unwrap());
    }

    #[test]
    fn header_is_u32_big_endian() {
        let frame = encode_frame(b"abc").unwrap();
        assert_eq!(frame.as_slice(), b"\x00\x00\x00\x03abc");
    }

    #[test]
    fn hostile_length_is_refused_before_allocating() {
        let mut cursor = Cursor::new(b"\xff\xff\xff\xffpayload".to_vec());
        match read_frame(&mut cursor, MAX_FRAME_LEN) {
            Err(ProtocolError::FrameTooLarge { len, max }) => {
                assert_eq!(len, 0xffff_ffff);
                assert_eq!(max, MAX_FRAME_LEN);
            }
            other => panic!("expected FrameTooLarge, got {other:?}"),
        }
    }

    #[test]
    fn truncated_header_and_payload_are_errors() {
        let mut short_header = Cursor::new(b"\x00\x00".to_vec());
        assert!(matches!(
            read_frame(&mut short_header, 16),
            Err(ProtocolError::Truncated)
        ));
        let mut short_payload = Cursor::new(b"\x00\x00\x00\x05ab".to_vec());
        assert!(matches!(
            read_frame(&mut short_payload, 16),
            Err(ProtocolError::Truncated)
        ));
    }

    #[test]
    fn oversized_payload_is_refused_when_writing() {
        let big = vec![0u8; MAX_FRAME_LEN + 1];
        let mut sink = Vec::new();
        assert!(matches!(
            write_frame(&mut sink, &big),
            Err(ProtocolError::FrameTooLarge { .. })
        ));
        assert!(
            sink.is_empty(),
            "nothing may be written for a refused frame"
        );
    }

    #[cfg(feature = "tokio")]
    #[tokio::test]
    async fn async_framing_matches_blocking_framing() {
        let mut wire = Vec::new();
        nonblocking::write_frame(&mut wire, b"hello").await.unwrap();
        assert_eq!(wire, encode_frame(b"hello").unwrap().as_slice());
        let mut reader = wire.as_slice();
        let frame = nonblocking::read_frame(&mut reader, 16)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(frame.as_slice(), b"hello");
        assert!(
            nonblocking::read_frame(&mut reader, 16)
                .await
                .unwrap()
                .is_none()
        );
        let mut hostile: &[u8] = b"\x00\x01\x00\x00";
        assert!(matches!(
            nonblocking::read_frame(&mut hostile, 16).await,
            Err(ProtocolError::FrameTooLarge { .. })
        ));
    }

    #[test]
    fn a_small_message_is_one_plain_frame() {
        assert_eq!(
            encode_message(b"abc").unwrap().as_slice(),
            encode_frame(b"abc").unwrap().as_slice()
        );
        assert_eq!(encode_message(b"").unwrap().as_slice(), b"\x00\x00\x00\x00");
    }

    #[test]
    fn a_large_message_travels_in_frames_and_reads_back_whole() {
        let payload: Vec<u8> = (0..3 * MAX_FRAME_LEN + 5)
            .map(|i| (i % 251) as u8)
            .collect();
        let wire = encode_message(&payload).unwrap();
        assert_eq!(wire.len(), payload.len() + 4 * HEADER_LEN);
        // First header: a full frame with MORE set; the last one without.
        assert_eq!(&wire[..4], &(MORE | MAX_FRAME_LEN as u32).to_be_bytes());
        let last = 3 * (HEADER_LEN + MAX_FRAME_LEN);
        assert_eq!(&wire[last..last + 4], &5u32.to_be_bytes());
        let mut cursor = Cursor::new(wire.to_vec());
        let mut read = SecretBuf::default();
        assert!(read_message_into(&mut cursor, MAX_MESSAGE_LEN, &mut read).unwrap());
        assert_eq!(read.as_slice(), payload.as_slice());
        assert!(!read_message_into(&mut cursor, MAX_MESSAGE_LEN, &mut read).unwrap());
    }

    #[test]
    fn frame_readers_refuse_continued_frames_and_message_readers_keep_their_bound() {
        let payload = vec![7u8; MAX_FRAME_LEN + 1];
        let wire = encode_message(&payload).unwrap();
        // The daemon's request reader (and the handshake's) never reassemble.
        assert!(matches!(
            read_frame(&mut Cursor::new(wire.to_vec()), MAX_FRAME_LEN),
            Err(ProtocolError::FrameTooLarge { .. })
        ));
        // A message reader refuses a message past its bound before reading it all.
        let mut read = SecretBuf::default();
        assert!(matches!(
            read_message_into(&mut Cursor::new(wire.to_vec()), MAX_FRAME_LEN, &mut read),
            Err(ProtocolError::FrameTooLarge { .. })
        ));
        // A frame claiming more than MAX_FRAME_LEN, even with MORE set, is refused.
        let hostile = (MORE | 0x7fff_ffff).to_be_bytes().to_vec();
        assert!(matches!(
            read_message_into(&mut Cursor::new(hostile), MAX_MESSAGE_LEN, &mut read),
            Err(ProtocolError::FrameTooLarge { .. })
        ));
        // A message cut between its frames is truncated, not complete.
        let cut = wire[..HEADER_LEN + MAX_FRAME_LEN].to_vec();
        assert!(matches!(
            read_message_into(&mut Cursor::new(cut), MAX_MESSAGE_LEN, &mut read),
            Err(ProtocolError::Truncated)
        ));
        assert!(matches!(
            encode_message(&vec![0u8; MAX_MESSAGE_LEN + 1]),
            Err(ProtocolError::FrameTooLarge { .. })
        ));
    }

    #[cfg(feature = "tokio")]
    #[tokio::test]
    async fn async_messages_match_blocking_ones() {
        let payload = vec![3u8; 2 * MAX_FRAME_LEN];
        let wire = encode_message(&payload).unwrap();
        let mut reader = wire.as_slice();
        let mut read = SecretBuf::default();
        assert!(
            nonblocking::read_message_into(&mut reader, MAX_MESSAGE_LEN, &mut read)
                .await
                .unwrap()
        );
        assert_eq!(read.as_slice(), payload.as_slice());
    }
}
