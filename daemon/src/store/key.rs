//! The store's key: where it comes from ([`KeySource`]: a key file or the OS keystore), how a
//! missing one is created, and the key itself ([`StoreKey`], wiped on drop, never printed).

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::{KeyInit, OsRng};
use tokend_protocol::private;
use zeroize::Zeroizing;

use super::StoreError;

/// The key's length in bytes.
pub(super) const KEY_LEN: usize = 32;
/// The service name of the key's entry in the OS keystore.
const KEYRING_SERVICE: &str = "tokend";

/// Where the store's key comes from (`[store] key` in the config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A file holding the 32-byte key (0600), created on first use.
    File(PathBuf),
    /// The OS keystore: Secret Service on Linux, Keychain on macOS, Credential Manager on Windows.
    Keyring,
}

impl KeySource {
    pub(super) fn id(&self) -> u8 {
        match self {
            Self::File(_) => 1,
            Self::Keyring => 2,
        }
    }

    pub(super) fn name_of(id: u8) -> &'static str {
        match id {
            1 => "a key file",
            2 => "the OS keystore",
            _ => "an unknown key source",
        }
    }

    /// The protection in force, as `tok status` shows it.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::File(path) => format!("encrypted (key file {})", path.display()),
            Self::Keyring => format!("encrypted (OS keystore: {})", keyring_backend()),
        }
    }
}

pub(super) fn keyring_backend() -> &'static str {
    if cfg!(target_os = "macos") {
        "Keychain"
    } else if cfg!(windows) {
        "Credential Manager"
    } else {
        "Secret Service"
    }
}

/// The 32-byte key; wiped on drop, never printed.
pub(crate) struct StoreKey(pub(super) Zeroizing<[u8; KEY_LEN]>);

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreKey([redacted])")
    }
}

impl StoreKey {
    pub(super) fn generate() -> Self {
        let key = XChaCha20Poly1305::generate_key(&mut OsRng);
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        bytes.copy_from_slice(&key);
        // `generate_key` returned a plain array: wipe it as well.
        let mut key = key;
        zeroize::Zeroize::zeroize(key.as_mut_slice());
        Self(bytes)
    }

    pub(crate) fn from_slice(bytes: &[u8]) -> Option<Self> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        (bytes.len() == KEY_LEN).then(|| {
            key.copy_from_slice(bytes);
            Self(key)
        })
    }

    pub(super) fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.0.as_slice().into())
    }
}

/// Reads the key file, or creates it (0600, 32 random bytes) when it does not exist.
pub(super) fn key_from_file(path: &Path) -> Result<StoreKey, StoreError> {
    let problem = |problem: String, hint: &'static str| StoreError::KeyFile {
        path: path.to_owned(),
        problem,
        hint,
    };
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return create_key_file(path),
        Err(err) => {
            return Err(problem(
                format!("cannot be read: {err}"),
                "make it readable by you, or set key_file in the [store] table of the config",
            ));
        }
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file
            .metadata()
            .map_err(|err| problem(format!("cannot be read: {err}"), "check its permissions"))?
            .permissions()
            .mode()
            & 0o7777;
        if mode & 0o077 != 0 {
            return Err(problem(
                format!("group or others have access to it (mode 0{mode:03o})"),
                "run chmod 600 on it: whoever reads it can decrypt the store",
            ));
        }
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(KEY_LEN + 1));
    (&mut file)
        .take(KEY_LEN as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| problem(format!("cannot be read: {err}"), "check the file"))?;
    StoreKey::from_slice(&bytes).ok_or_else(|| {
        problem(
            format!("holds {} bytes, not a {KEY_LEN}-byte key", bytes.len()),
            "it is not a tokend key file: set key_file to the right one, or remove it to start \
             afresh with a new key (the store it protected is then moved aside)",
        )
    })
}

fn create_key_file(path: &Path) -> Result<StoreKey, StoreError> {
    let failed = |err: io::Error| StoreError::KeyFile {
        path: path.to_owned(),
        problem: format!("cannot be created: {err}"),
        hint: "make its directory writable, or set key_file in the [store] table of the config",
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        private::create_dir(parent).map_err(failed)?;
    }
    let key = StoreKey::generate();
    let mut options = private::file_options();
    options.write(true).create_new(true);
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(key.0.as_slice())
                .and_then(|()| file.sync_all())
                .map_err(failed)?;
            private::sync_parent(path).map_err(failed)?;
            tracing::info!("created the store key file {}", path.display());
            Ok(key)
        }
        // Another process created it meanwhile: use theirs.
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => key_from_file(path),
        Err(err) => Err(failed(err)),
    }
}

/// The key from the OS keystore, created there on first use. One entry per data directory.
pub(super) fn key_from_keyring(data_dir: &Path) -> Result<StoreKey, StoreError> {
    let unavailable = |reason: String| StoreError::Keyring {
        backend: keyring_backend(),
        reason,
    };
    let account = format!("store key for {}", data_dir.display());
    let entry = keyring::Entry::new(KEYRING_SERVICE, &account)
        .map_err(|err| unavailable(err.to_string()))?;
    match entry.get_secret() {
        Ok(bytes) => {
            let bytes = Zeroizing::new(bytes);
            StoreKey::from_slice(&bytes).ok_or_else(|| {
                unavailable(format!(
                    "its entry `{KEYRING_SERVICE}` / `{account}` holds {} bytes, not a \
                     {KEY_LEN}-byte key (delete the entry to start afresh)",
                    bytes.len()
                ))
            })
        }
        Err(keyring::Error::NoEntry) => {
            let key = StoreKey::generate();
            entry
                .set_secret(key.0.as_slice())
                .map_err(|err| unavailable(err.to_string()))?;
            tracing::info!(
                "created the store key in the OS keystore ({})",
                keyring_backend()
            );
            Ok(key)
        }
        Err(err) => Err(unavailable(err.to_string())),
    }
}
