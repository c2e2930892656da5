//! The durable, encrypted store, `<data dir>/store.tokend`: what tokend must not forget across a
//! restart (rotated refresh tokens, cached access tokens with their absolute expiry, and user
//! secrets).
//!
//! It also holds the user secrets set with `tok secret set NAME` (for `${secret:NAME}`).
//!
//! This module owns the file format, where the key comes from (a key file or the OS keystore),
//! the atomic replacement of the file, and what happens to a file that cannot be read.
//!
//! **Format** (version [`FORMAT_VERSION`]): a 35-byte header — the magic `TOKENDST`, the format
//! version (u16, big-endian), the key-source id (1 = key file, 2 = OS keystore) and a random
//! 24-byte nonce — followed by the XChaCha20-Poly1305 encryption of the contents (JSON), with the
//! header as associated data, so that no byte of the file can change unnoticed.
//!
//! **Writes** replace the whole file: a temporary file (0600) in the same directory, fsync,
//! rename over the store, fsync of the directory. A crash at any point leaves either the old or
//! the new store. One mutex serializes writers, so concurrent updates never lose each other.
//!
//! **Unreadable stores** (bad header, unknown version, another key, a failed authentication
//! tag, truncation) are moved aside as `store.tokend.unreadable-<unix time>` with an error line
//! saying why, and tokend starts with an empty store rather than refusing to start.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use chacha20poly1305::aead::{AeadCore, AeadInPlace, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokend_protocol::{Secret, SecretEntry};
use zeroize::Zeroizing;

/// The store file's name inside the data directory.
pub const STORE_FILE: &str = "store.tokend";
/// Environment variable overriding the data directory.
pub const DATA_ENV: &str = "TOKEND_DATA";
/// The format version this tokend writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// The default key file's name, in the directory of the config file.
pub const KEY_FILE: &str = "store.key";

const MAGIC: [u8; 8] = *b"TOKENDST";
/// Names of the temporary files of atomic writes: `.store.<random>.tmp`.
const TEMP_PREFIX: &str = ".store.";
const TEMP_SUFFIX: &str = ".tmp";
/// The lock file that makes one daemon the owner of a data directory.
const LOCK_FILE: &str = "store.lock";
const NONCE_LEN: usize = 24;
const HEADER_LEN: usize = MAGIC.len() + 2 + 1 + NONCE_LEN;
const KEY_LEN: usize = 32;
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
    fn id(&self) -> u8 {
        match self {
            Self::File(_) => 1,
            Self::Keyring => 2,
        }
    }

    fn name_of(id: u8) -> &'static str {
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

fn keyring_backend() -> &'static str {
    if cfg!(target_os = "macos") {
        "Keychain"
    } else if cfg!(windows) {
        "Credential Manager"
    } else {
        "Secret Service"
    }
}

/// Why the store cannot be used at all (tokend does not start). An unreadable store file is not
/// one of these: it is moved aside.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "cannot create the data directory {}: {source}; set {DATA_ENV} to a directory you can \
         write",
        path.display()
    )]
    DataDir { path: PathBuf, source: io::Error },
    #[error("the data directory {} is not safe: {reason}", path.display())]
    DataDirUnsafe { path: PathBuf, reason: String },
    #[error("key file {}: {problem}; {hint}", path.display())]
    KeyFile {
        path: PathBuf,
        problem: String,
        hint: &'static str,
    },
    #[error(
        "the OS keystore ({backend}) is unavailable: {reason}; start and unlock it, or set \
         key = \"file\" in the [store] table of the config to keep the key in a file"
    )]
    Keyring {
        backend: &'static str,
        reason: String,
    },
    #[error(
        "cannot write the store {}: {source}; check the free space and the permissions of {}",
        path.display(),
        path.parent().unwrap_or(Path::new(".")).display()
    )]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot read the store {}: {source}; check its permissions", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "another tokend already uses the data directory {}; give this one its own data \
         directory with {DATA_ENV}=DIR, or stop the other one",
        path.display()
    )]
    InUse { path: PathBuf },
}

/// What the store holds.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Contents {
    /// The refresh token in force per provider, once the server rotated the configured one.
    #[serde(default)]
    pub(crate) refresh_tokens: BTreeMap<String, StoredRefresh>,
    /// The last access token per provider (unless the provider says `persist = false`).
    #[serde(default)]
    pub(crate) access_tokens: BTreeMap<String, StoredAccess>,
    /// User secrets (`tok secret set NAME`), for `${secret:NAME}` in the config.
    #[serde(default)]
    pub(crate) secrets: BTreeMap<String, StoredSecret>,
}

/// A user secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredSecret {
    #[serde(with = "secret_serde")]
    pub(crate) value: Secret,
    /// When it was set (Unix seconds).
    pub(crate) set_at_unix: u64,
}

/// A rotated refresh token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredRefresh {
    #[serde(with = "secret_serde")]
    pub(crate) token: Secret,
    /// The configured refresh token this one descends from: if the user configures another one,
    /// the stored chain is abandoned for it.
    #[serde(with = "secret_serde")]
    pub(crate) origin: Secret,
}

/// A cached access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredAccess {
    #[serde(with = "secret_serde")]
    pub(crate) token: Secret,
    /// Absolute expiry (Unix seconds); `None`: valid until invalidated.
    pub(crate) expires_at_unix: Option<u64>,
    /// The provider's configuration it was obtained with (its `Debug` form, which shows no
    /// secret): a token obtained under another configuration is not served.
    pub(crate) config: String,
}

/// `Secret` as a JSON string.
mod secret_serde {
    use super::{Deserialize, Deserializer, Secret, Serializer};

    pub(super) fn serialize<S: Serializer>(
        secret: &Secret,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(secret.expose())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Secret, D::Error> {
        String::deserialize(deserializer).map(Secret::new)
    }
}

/// The 32-byte key; wiped on drop, never printed.
struct StoreKey(Zeroizing<[u8; KEY_LEN]>);

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreKey([redacted])")
    }
}

impl StoreKey {
    fn generate() -> Self {
        let key = XChaCha20Poly1305::generate_key(&mut OsRng);
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        bytes.copy_from_slice(&key);
        // `generate_key` returned a plain array: wipe it as well.
        let mut key = key;
        zeroize::Zeroize::zeroize(key.as_mut_slice());
        Self(bytes)
    }

    fn from_slice(bytes: &[u8]) -> Option<Self> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        (bytes.len() == KEY_LEN).then(|| {
            key.copy_from_slice(bytes);
            Self(key)
        })
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.0.as_slice().into())
    }
}

/// The open store: its contents in memory, written through on every update.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    key: StoreKey,
    source: KeySource,
    contents: Mutex<Contents>,
    /// `store.lock` in the data directory, locked for as long as the store is open: one daemon
    /// owns a store (a second writer would silently undo the first one's updates).
    _lock: File,
}

/// The data directory: `$TOKEND_DATA`, else the platform's (`~/.local/share/tokend` on Linux).
pub fn data_dir(env: &dyn Fn(&str) -> Option<std::ffi::OsString>) -> Option<PathBuf> {
    if let Some(dir) = env(DATA_ENV).filter(|value| !value.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    directories::BaseDirs::new().map(|dirs| dirs.data_dir().join("tokend"))
}

impl Store {
    /// Opens (or creates) the store in `data_dir`, with the key from `source`. An unreadable
    /// store file is moved aside (logged) and the store starts empty.
    pub fn open(data_dir: &Path, source: &KeySource) -> Result<Self, StoreError> {
        private_dir(data_dir).map_err(|err| match err {
            DirProblem::Io(source) => StoreError::DataDir {
                path: data_dir.to_owned(),
                source,
            },
            #[cfg(unix)]
            DirProblem::Unsafe(reason) => StoreError::DataDirUnsafe {
                path: data_dir.to_owned(),
                reason,
            },
        })?;
        let lock = lock_data_dir(data_dir)?;
        let key = match source {
            KeySource::File(path) => key_from_file(path)?,
            KeySource::Keyring => key_from_keyring(data_dir)?,
        };
        remove_stale_temp_files(data_dir);
        let path = data_dir.join(STORE_FILE);
        let contents = match fs::read(&path) {
            Ok(bytes) => match decode(&bytes, &key, source) {
                Ok(contents) => contents,
                Err(reason) => {
                    move_aside(&path, &reason);
                    Contents::default()
                }
            },
            Err(err) if err.kind() == io::ErrorKind::NotFound => Contents::default(),
            Err(source) => return Err(StoreError::Read { path, source }),
        };
        tracing::info!(
            refresh_tokens = contents.refresh_tokens.len(),
            access_tokens = contents.access_tokens.len(),
            "store {}: {}",
            path.display(),
            source.describe()
        );
        Ok(Self {
            path,
            key,
            source: source.clone(),
            contents: Mutex::new(contents),
            _lock: lock,
        })
    }

    /// The protection in force, for `tok status`.
    #[must_use]
    pub fn protection(&self) -> String {
        format!("{}: {}", self.path.display(), self.source.describe())
    }

    fn contents(&self) -> std::sync::MutexGuard<'_, Contents> {
        // Every update leaves the contents consistent (the file write comes after the change).
        self.contents.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The rotated refresh token the store holds for `provider`: for inspection (the crash test
    /// checks it against the token server's record).
    #[must_use]
    pub fn rotated_refresh_token(&self, provider: &str) -> Option<Secret> {
        self.contents()
            .refresh_tokens
            .get(provider)
            .map(|stored| stored.token.clone())
    }

    /// The user secret `name` (`${secret:NAME}`).
    #[must_use]
    pub fn user_secret(&self, name: &str) -> Option<Secret> {
        self.contents()
            .secrets
            .get(name)
            .map(|stored| stored.value.clone())
    }

    /// The user secrets' names and when each was set, sorted by name; never their values.
    #[must_use]
    pub fn user_secrets(&self) -> Vec<SecretEntry> {
        self.contents()
            .secrets
            .iter()
            .map(|(name, stored)| SecretEntry {
                name: name.clone(),
                set_at_unix: stored.set_at_unix,
            })
            .collect()
    }

    /// Sets the user secret `name` (replacing any value it had), durably. Blocking.
    pub fn set_user_secret(&self, name: &str, value: Secret) -> Result<SecretEntry, StoreError> {
        let set_at_unix = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.update(|contents| {
            contents
                .secrets
                .insert(name.to_owned(), StoredSecret { value, set_at_unix });
        })?;
        Ok(SecretEntry {
            name: name.to_owned(),
            set_at_unix,
        })
    }

    /// Removes the user secret `name`, durably; `None` when there was none. Blocking.
    pub fn remove_user_secret(&self, name: &str) -> Result<Option<SecretEntry>, StoreError> {
        let mut removed = None;
        self.update(|contents| {
            removed = contents.secrets.remove(name).map(|stored| SecretEntry {
                name: name.to_owned(),
                set_at_unix: stored.set_at_unix,
            });
        })?;
        Ok(removed)
    }

    /// The stored rotated refresh token of `provider`.
    pub(crate) fn refresh_token(&self, provider: &str) -> Option<StoredRefresh> {
        self.contents().refresh_tokens.get(provider).cloned()
    }

    /// The stored access token of `provider`.
    pub(crate) fn access_token(&self, provider: &str) -> Option<StoredAccess> {
        self.contents().access_tokens.get(provider).cloned()
    }

    /// Applies `change` and writes the whole store durably before returning. Blocking (file
    /// writes and fsyncs): call it off the async threads where a wait matters.
    pub(crate) fn update(&self, change: impl FnOnce(&mut Contents)) -> Result<(), StoreError> {
        let mut contents = self.contents();
        change(&mut contents);
        let bytes = encode(&contents, &self.key, &self.source);
        write_atomic(&self.path, &bytes).map_err(|source| StoreError::Write {
            path: self.path.clone(),
            source,
        })
    }
}

/// Takes `store.lock` in the data directory (an exclusive, non-blocking `flock`, released by
/// the kernel when the process dies, so a killed daemon never leaves it held).
fn lock_data_dir(data_dir: &Path) -> Result<File, StoreError> {
    let path = data_dir.join(LOCK_FILE);
    let failed = |source: io::Error| StoreError::DataDir {
        path: data_dir.to_owned(),
        source,
    };
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(&path).map_err(failed)?;
    #[cfg(unix)]
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(rustix::io::Errno::WOULDBLOCK) => {
            return Err(StoreError::InUse {
                path: data_dir.to_owned(),
            });
        }
        Err(err) => return Err(failed(err.into())),
    }
    // Windows: the daemon lock per endpoint is the only guard (no flock there).
    Ok(file)
}

enum DirProblem {
    Io(io::Error),
    /// A symbolic link, not ours, or open to others (unix only); says what to do.
    #[cfg(unix)]
    Unsafe(String),
}

/// Creates `dir` (and missing parents) with mode 0700; an existing one must be a real
/// directory, owned by this user, that group and others cannot enter.
fn private_dir(dir: &Path) -> Result<(), DirProblem> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(DirProblem::Io)?;
    #[cfg(unix)]
    if let Some(reason) = crate::listener::not_private(dir).map_err(DirProblem::Io)? {
        return Err(DirProblem::Unsafe(reason));
    }
    Ok(())
}

/// Reads the key file, or creates it (0600, 32 random bytes) when it does not exist.
fn key_from_file(path: &Path) -> Result<StoreKey, StoreError> {
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
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(parent).map_err(failed)?;
    }
    let key = StoreKey::generate();
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(key.0.as_slice())
                .and_then(|()| file.sync_all())
                .map_err(failed)?;
            sync_parent(path).map_err(failed)?;
            tracing::info!("created the store key file {}", path.display());
            Ok(key)
        }
        // Another process created it meanwhile: use theirs.
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => key_from_file(path),
        Err(err) => Err(failed(err)),
    }
}

/// The key from the OS keystore, created there on first use. One entry per data directory.
fn key_from_keyring(data_dir: &Path) -> Result<StoreKey, StoreError> {
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

/// The whole file: header, then the sealed contents.
fn encode(contents: &Contents, key: &StoreKey, source: &KeySource) -> Vec<u8> {
    // Measure first, so that the plaintext buffer never reallocates (which would leave an
    // unwiped copy of the secrets behind).
    let mut counter = Counter(0);
    serde_json::to_writer(&mut counter, contents).expect("the store contents serialize");
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let mut file = Vec::with_capacity(HEADER_LEN + counter.0 + 16);
    file.extend_from_slice(&MAGIC);
    file.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
    file.push(source.id());
    file.extend_from_slice(&nonce);
    let mut body = Zeroizing::new(Vec::with_capacity(counter.0 + 16));
    serde_json::to_writer(&mut *body, contents).expect("the store contents serialize");
    key.cipher()
        .encrypt_in_place(&nonce, &file, &mut *body)
        .expect("the buffer has room for the tag");
    file.extend_from_slice(&body);
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
fn decode(bytes: &[u8], key: &StoreKey, source: &KeySource) -> Result<Contents, String> {
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

/// Moves an unreadable store aside, with an error line that says why and what it means.
fn move_aside(path: &Path, reason: &str) {
    let stamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let aside = path.with_file_name(format!("{STORE_FILE}.unreadable-{stamp}"));
    match fs::rename(path, &aside) {
        Ok(()) => tracing::error!(
            "the store {} cannot be read ({reason}); moved it to {} and starting with an empty \
             store: providers fetch anew, and refresh tokens it held must be configured again",
            path.display(),
            aside.display()
        ),
        Err(err) => tracing::error!(
            "the store {} cannot be read ({reason}) nor moved aside ({err}); starting with an \
             empty store that will replace it",
            path.display()
        ),
    }
}

/// Removes the temporary files of writes that a crash interrupted (they never replaced the
/// store, so they hold nothing the store does not).
fn remove_stale_temp_files(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX) {
            match fs::remove_file(entry.path()) {
                Ok(()) => tracing::debug!("removed {name}, left by an interrupted write"),
                Err(err) => tracing::warn!("cannot remove {}: {err}", entry.path().display()),
            }
        }
    }
}

/// Replaces `path` with `bytes`: temp file in the same directory (0600), fsync, rename, fsync
/// of the directory.
fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    // tempfile creates the file with mode 0600 and a random name (no clash between writers).
    let mut temp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .suffix(TEMP_SUFFIX)
        .tempfile_in(dir)?;
    temp.write_all(bytes)?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|err| err.error)?;
    sync_parent(path)
}

/// fsync of the directory holding `path`, so that a rename or a new file survives a crash.
fn sync_parent(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        File::open(dir)?.sync_all()?;
    }
    // Windows cannot open a directory as a file; NTFS journals the rename itself.
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed store of the current format version, and its key.
    const FIXTURE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/store-v1");

    fn fixture_contents() -> Contents {
        let mut contents = Contents::default();
        contents.refresh_tokens.insert(
            "corp".to_owned(),
            StoredRefresh {
                token: Secret::from("fixture-rotated-refresh-token-2"),
                origin: Secret::from("fixture-configured-refresh-token"),
            },
        );
        contents.access_tokens.insert(
            "corp".to_owned(),
            StoredAccess {
                token: Secret::from("fixture-access-token"),
                expires_at_unix: Some(4_102_444_800),
                config: "ProviderConfig { .. }".to_owned(),
            },
        );
        contents.secrets.insert(
            "gitlab".to_owned(),
            StoredSecret {
                value: Secret::from("fixture-user-secret"),
                set_at_unix: 1_800_000_000,
            },
        );
        contents
    }

    fn key_file(dir: &Path) -> KeySource {
        KeySource::File(dir.join("config").join(KEY_FILE))
    }

    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_store_survives_reopening_with_private_modes() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let source = key_file(dir.path());
        let store = Store::open(&data, &source).unwrap();
        store
            .update(|contents| *contents = fixture_contents())
            .unwrap();
        drop(store);
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join(STORE_FILE)), 0o600);
        assert_eq!(mode(&dir.path().join("config").join(KEY_FILE)), 0o600);
        assert_eq!(mode(&data.join(LOCK_FILE)), 0o600);
        let mut names: Vec<_> = fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [LOCK_FILE, STORE_FILE],
            "no temporary file is left behind"
        );

        let reopened = Store::open(&data, &source).unwrap();
        let expected = fixture_contents();
        assert_eq!(
            reopened.refresh_token("corp"),
            expected.refresh_tokens.get("corp").cloned()
        );
        assert_eq!(
            reopened.access_token("corp"),
            expected.access_tokens.get("corp").cloned()
        );
        assert_eq!(reopened.refresh_token("other"), None);
    }

    #[test]
    fn one_store_per_data_directory_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("d");
        let first = Store::open(&data, &key_file(dir.path())).unwrap();
        let err = Store::open(&data, &key_file(dir.path())).unwrap_err();
        assert!(matches!(err, StoreError::InUse { .. }), "{err}");
        let err = err.to_string();
        assert!(err.contains("TOKEND_DATA=DIR"), "{err}");
        drop(first);
        Store::open(&data, &key_file(dir.path())).unwrap();
    }

    #[test]
    fn temporary_files_of_interrupted_writes_are_removed_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("d");
        Store::open(&data, &key_file(dir.path())).unwrap();
        fs::write(data.join(".store.AbC123.tmp"), b"half a store").unwrap();
        fs::write(data.join("unrelated"), b"kept").unwrap();
        Store::open(&data, &key_file(dir.path())).unwrap();
        assert!(!data.join(".store.AbC123.tmp").exists());
        assert!(data.join("unrelated").exists());
    }

    #[test]
    fn no_secret_is_in_the_file_in_clear() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("d"), &key_file(dir.path())).unwrap();
        store.update(|c| *c = fixture_contents()).unwrap();
        let bytes = fs::read(dir.path().join("d").join(STORE_FILE)).unwrap();
        for secret in [
            "fixture-rotated",
            "fixture-access",
            "fixture-configured",
            "corp",
        ] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} in clear"
            );
        }
    }

    /// Writes a store, damages it with `damage`, and reopens it with `reopen_source`.
    fn reopen_damaged(damage: impl FnOnce(&mut Vec<u8>), other_key: bool) {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let source = key_file(dir.path());
        Store::open(&data, &source)
            .unwrap()
            .update(|c| *c = fixture_contents())
            .unwrap();
        let path = data.join(STORE_FILE);
        let mut bytes = fs::read(&path).unwrap();
        damage(&mut bytes);
        fs::write(&path, &bytes).unwrap();
        if other_key {
            fs::remove_file(dir.path().join("config").join(KEY_FILE)).unwrap();
        }

        let store = Store::open(&data, &source).unwrap();
        assert_eq!(store.refresh_token("corp"), None, "the store starts empty");
        let aside: Vec<_> = fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.starts_with("store.tokend.unreadable-"))
            .collect();
        assert_eq!(
            aside.len(),
            1,
            "the unreadable store is moved aside: {aside:?}"
        );
        assert_eq!(
            fs::read(data.join(&aside[0])).unwrap(),
            bytes,
            "moved aside unchanged"
        );
        assert!(!path.exists());
        // The empty store is usable again.
        store.update(|c| *c = fixture_contents()).unwrap();
        drop(store);
        assert!(
            Store::open(&data, &source)
                .unwrap()
                .refresh_token("corp")
                .is_some()
        );
    }

    #[test]
    fn a_truncated_store_is_moved_aside() {
        reopen_damaged(|bytes| bytes.truncate(bytes.len() - 7), false);
        reopen_damaged(|bytes| bytes.truncate(HEADER_LEN - 1), false);
        reopen_damaged(Vec::clear, false);
    }

    #[test]
    fn a_bit_flip_anywhere_is_detected() {
        let len = {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(&dir.path().join("d"), &key_file(dir.path())).unwrap();
            store.update(|c| *c = fixture_contents()).unwrap();
            fs::read(dir.path().join("d").join(STORE_FILE))
                .unwrap()
                .len()
        };
        // Magic, version, key id, nonce, body and tag.
        for at in [0, 8, 10, 11, HEADER_LEN + 3, len - 1] {
            reopen_damaged(|bytes| bytes[at] ^= 0x04, false);
        }
    }

    #[test]
    fn a_store_under_another_key_is_moved_aside() {
        reopen_damaged(|_| {}, true);
    }

    #[test]
    fn another_format_version_is_moved_aside() {
        reopen_damaged(|bytes| bytes[9] = 2, false);
    }

    #[test]
    fn a_key_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let source = key_file(dir.path());
        Store::open(&dir.path().join("d"), &source).unwrap();
        let KeySource::File(path) = &source else {
            unreachable!()
        };
        fs::set_permissions(path, fs::Permissions::from_mode(0o640)).unwrap();
        let err = Store::open(&dir.path().join("d"), &source)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("mode 0640") && err.contains("chmod 600"),
            "{err}"
        );
        assert!(err.contains(&path.display().to_string()), "{err}");
    }

    #[test]
    fn a_key_file_of_the_wrong_size_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("short.key");
        write_0600(&path, b"too short");
        let err = Store::open(&dir.path().join("d"), &KeySource::File(path))
            .unwrap_err()
            .to_string();
        assert!(err.contains("holds 9 bytes, not a 32-byte key"), "{err}");
    }

    #[test]
    fn an_open_data_directory_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("d");
        fs::create_dir(&data).unwrap();
        fs::set_permissions(&data, fs::Permissions::from_mode(0o755)).unwrap();
        let err = Store::open(&data, &key_file(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("mode 0755") && err.contains("chmod 700"),
            "{err}"
        );
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&data, &link).unwrap();
        fs::set_permissions(&data, fs::Permissions::from_mode(0o700)).unwrap();
        let err = Store::open(&link, &key_file(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("symbolic link"), "{err}");
    }

    #[test]
    fn the_key_never_prints() {
        let key = StoreKey::generate();
        assert_eq!(format!("{key:?}"), "StoreKey([redacted])");
        let contents = fixture_contents();
        let shown = format!("{contents:?}");
        assert!(!shown.contains("fixture-"), "{shown}");
    }

    fn write_0600(path: &Path, bytes: &[u8]) {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options.open(path).unwrap().write_all(bytes).unwrap();
    }

    /// A store of the current format version, committed to the repository, still opens. Run
    /// with `TOKEND_BLESS=1` to write it anew (only when FORMAT_VERSION changes: then add a
    /// directory for the new version and keep the old one for the migration test).
    #[test]
    fn the_committed_store_of_the_current_version_opens() {
        let dir = Path::new(FIXTURE_DIR);
        if std::env::var_os("TOKEND_BLESS").is_some() {
            fs::create_dir_all(dir).unwrap();
            let key = StoreKey::generate();
            fs::write(dir.join(KEY_FILE), key.0.as_slice()).unwrap();
            let source = KeySource::File(dir.join(KEY_FILE));
            fs::write(
                dir.join(STORE_FILE),
                encode(&fixture_contents(), &key, &source),
            )
            .unwrap();
        }
        let key = StoreKey::from_slice(&fs::read(dir.join(KEY_FILE)).unwrap()).unwrap();
        let bytes = fs::read(dir.join(STORE_FILE)).unwrap();
        assert_eq!(u16::from_be_bytes([bytes[8], bytes[9]]), FORMAT_VERSION);
        let contents = decode(&bytes, &key, &KeySource::File(PathBuf::new())).unwrap();
        let expected = fixture_contents();
        assert_eq!(contents.refresh_tokens, expected.refresh_tokens);
        assert_eq!(contents.access_tokens, expected.access_tokens);
        assert_eq!(contents.secrets, expected.secrets);
    }

    #[test]
    fn user_secrets_are_set_listed_without_values_and_removed_durably() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("d");
        let source = key_file(dir.path());
        let store = Store::open(&data, &source).unwrap();
        let entry = store.set_user_secret("b", Secret::from("value-b")).unwrap();
        store.set_user_secret("a", Secret::from("value-a")).unwrap();
        assert_eq!(store.user_secrets()[1], entry);
        drop(store);
        let store = Store::open(&data, &source).unwrap();
        let names: Vec<_> = store.user_secrets().into_iter().map(|e| e.name).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(store.user_secret("a").unwrap().expose(), "value-a");
        assert_eq!(store.remove_user_secret("a").unwrap().unwrap().name, "a");
        assert_eq!(store.remove_user_secret("a").unwrap(), None);
        drop(store);
        let store = Store::open(&data, &source).unwrap();
        assert_eq!(store.user_secret("a"), None);
        assert_eq!(store.user_secret("b").unwrap().expose(), "value-b");
    }
}
