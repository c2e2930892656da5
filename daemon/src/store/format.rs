//! The store file's format (version [`FORMAT_VERSION`]): a 35-byte header — the magic
//! `TOKENDST`, the format version (u16, big-endian), the key-source id (1 = key file, 2 = OS
//! keystore) and a random 24-byte nonce — followed by the XChaCha20-Poly1305 encryption of the
//! contents (JSON), with the header as associated data, so that no byte of the file can change
//! unnoticed.

use std::io::{self, Write};

use chacha20poly1305::aead::{AeadCore, AeadInPlace, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use super::contents::Contents;
use super::key::{KeySource, StoreKey};

/// The format version this tokend writes and reads.
pub const FORMAT_VERSION: u16 = 1;
const MAGIC: [u8; 8] = *b"TOKENDST";
const NONCE_LEN: usize = 24;
pub(super) const HEADER_LEN: usize = MAGIC.len() + 2 + 1 + NONCE_LEN;

/// The whole file: header, then the sealed contents.
pub(crate) fn encode(contents: &Contents, key: &StoreKey, source: &KeySource) -> Vec<u8> {
    // Measure first, so that the plaintext buffer never reallocates (which would leave an
    // unwiped copy of the secrets behind).
    let mut counter = Counter(0);
    serde_json::to_writer(&mut counter, contents).expect("the store contents serialize");
    let mut body = Zeroizing::new(Vec::with_capacity(counter.0 + 16));
    serde_json::to_writer(&mut *body, contents).expect("the store contents serialize");
    seal_in_place(&mut body, key, source)
}

/// The whole file for serialized `contents` (which need not be valid: the fuzz targets seal
/// arbitrary bytes to reach the contents parser).
#[cfg(feature = "fuzzing")]
pub(crate) fn seal(contents: &[u8], key: &StoreKey, source: &KeySource) -> Vec<u8> {
    let mut body = Zeroizing::new(Vec::with_capacity(contents.len() + 16));
    body.extend_from_slice(contents);
    seal_in_place(&mut body, key, source)
}

/// The header with a fresh nonce, then `body` encrypted in place (it needs 16 bytes of spare
/// capacity for the tag, so that it never reallocates).
fn seal_in_place(body: &mut Zeroizing<Vec<u8>>, key: &StoreKey, source: &KeySource) -> Vec<u8> {
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let mut file = Vec::with_capacity(HEADER_LEN + body.len() + 16);
    file.extend_from_slice(&MAGIC);
    file.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
    file.push(source.id());
    file.extend_from_slice(&nonce);
    key.cipher()
        .encrypt_in_place(&nonce, &file, &mut **body)
        .expect("the buffer has room for the tag");
    file.extend_from_slice(body);
    file
}

/// Counts bytes written.
struct Counter(usize);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Opens a store file; the error says why it cannot be read.
pub(crate) fn decode(bytes: &[u8], key: &StoreKey, source: &KeySource) -> Result<Contents, String> {
    if bytes.len() < HEADER_LEN || bytes[..MAGIC.len()] != MAGIC {
        return Err("bad header: it is not a tokend store, or it was truncated".to_owned());
    }
    let (header, sealed) = bytes.split_at(HEADER_LEN);
    let version = u16::from_be_bytes([header[8], header[9]]);
    if version != FORMAT_VERSION {
        return Err(format!(
            "it has format version {version}, and this tokend reads version {FORMAT_VERSION}"
        ));
    }
    let key_id = header[10];
    if key_id != source.id() {
        return Err(format!(
            "it was encrypted with a key from {}, and the config now chooses {}",
            KeySource::name_of(key_id),
            KeySource::name_of(source.id())
        ));
    }
    let nonce = XNonce::from_slice(&header[11..HEADER_LEN]);
    let mut body = Zeroizing::new(sealed.to_vec());
    key.cipher()
        .decrypt_in_place(nonce, header, &mut *body)
        .map_err(|_| {
            "authentication failed: a different key, or the file was altered or truncated"
                .to_owned()
        })?;
    serde_json::from_slice(&body).map_err(|err| {
        // serde_json's message names a position, never the content.
        format!("its decrypted contents are malformed ({err})")
    })
}
