//! The durable, encrypted store, `<data dir>/store.tokend`: what tokend must not forget across a
//! restart (rotated refresh tokens, cached access tokens with their absolute expiry, and user
//! secrets).
//!
//! It also holds the user secrets set with `tok secret set NAME` (for `${secret:NAME}`).
//!
//! - [`format`]: the file format (header, AEAD envelope);
//! - [`key`]: where the key comes from (a key file or the OS keystore);
//! - [`contents`]: what the store holds;
//! - this module: opening the store in its data directory (one daemon per directory), reading
//!   and updating it, and what happens to a file that cannot be read.
//!
//! **Writes** replace the whole file atomically ([`tokend_protocol::private::write_atomic`]): a
//! crash at any point leaves either the old or the new store. One mutex serializes writers, so
//! concurrent updates never lose each other.
//!
//! **Unreadable stores** (bad header, unknown version, another key, a failed authentication
//! tag, truncation) are moved aside as `store.tokend.unreadable-<unix time>` with an error line
//! saying why, and tokend starts with an empty store rather than refusing to start.

mod contents;
pub mod format;
pub mod key;

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use tokend_protocol::private::{self, Locked};
use tokend_protocol::{Secret, SecretEntry, clock};

pub(crate) use self::contents::{
    Contents, StoredAccess, StoredRefresh, StoredRotated, StoredSecret,
};
pub use self::format::FORMAT_VERSION;
pub use self::key::KeySource;
pub(crate) use self::key::StoreKey;

/// The store file's name inside the data directory.
pub const STORE_FILE: &str = "store.tokend";
/// Environment variable overriding the data directory.
pub const DATA_ENV: &str = "TOKEND_DATA";
/// The default key file's name, in the directory of the config file.
pub const KEY_FILE: &str = "store.key";

/// The lock file that makes one daemon the owner of a data directory.
const LOCK_FILE: &str = "store.lock";

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
        private::ensure_dir(data_dir).map_err(|err| match err {
            private::DirError::Io(source) => StoreError::DataDir {
                path: data_dir.to_owned(),
                source,
            },
            private::DirError::NotPrivate(reason) => StoreError::DataDirUnsafe {
                path: data_dir.to_owned(),
                reason,
            },
        })?;
        let lock = lock_data_dir(data_dir)?;
        let key = match source {
            KeySource::File(path) => key::key_from_file(path)?,
            KeySource::Keyring => key::key_from_keyring(data_dir)?,
        };
        let path = data_dir.join(STORE_FILE);
        remove_stale_temp_files(&path);
        let contents = match fs::read(&path) {
            Ok(bytes) => match format::decode(&bytes, &key, source) {
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
        let set_at_unix = clock::unix_now();
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

    /// The capability of `provider`'s TCP auth proxy: the stored one, else `create()`'s, stored
    /// durably first. Blocking.
    pub(crate) fn proxy_capability(
        &self,
        provider: &str,
        create: impl FnOnce() -> Secret,
    ) -> Result<Secret, StoreError> {
        if let Some(stored) = self.contents().proxy_capabilities.get(provider) {
            return Ok(stored.value.clone());
        }
        let value = create();
        let kept = value.clone();
        self.update(|contents| {
            contents.proxy_capabilities.insert(
                provider.to_owned(),
                StoredSecret {
                    value: kept,
                    set_at_unix: clock::unix_now(),
                },
            );
        })?;
        Ok(value)
    }

    /// The stored rotated refresh token of `provider`.
    pub(crate) fn refresh_token(&self, provider: &str) -> Option<StoredRefresh> {
        self.contents().refresh_tokens.get(provider).cloned()
    }

    /// The stored access token of `provider`.
    pub(crate) fn access_token(&self, provider: &str) -> Option<StoredAccess> {
        self.contents().access_tokens.get(provider).cloned()
    }

    /// The key `provider`'s `rotate` table last obtained, if any.
    pub(crate) fn rotated_key(&self, provider: &str) -> Option<StoredRotated> {
        self.contents().rotated_keys.get(provider).cloned()
    }

    /// Since when `provider`'s configured key has been in use (its rotation schedule's start).
    pub(crate) fn key_since(&self, provider: &str) -> Option<u64> {
        self.contents().key_since.get(provider).copied()
    }

    /// Applies `change` and writes the whole store durably before returning. Blocking (file
    /// writes and fsyncs): call it off the async threads where a wait matters.
    pub(crate) fn update(&self, change: impl FnOnce(&mut Contents)) -> Result<(), StoreError> {
        let mut contents = self.contents();
        change(&mut contents);
        let bytes = format::encode(&contents, &self.key, &self.source);
        private::write_atomic(&self.path, &bytes).map_err(|source| StoreError::Write {
            path: self.path.clone(),
            source,
        })
    }
}

/// Takes `store.lock` in the data directory (an exclusive, non-blocking lock, released by the
/// kernel when the process dies, so a killed daemon never leaves it held).
fn lock_data_dir(data_dir: &Path) -> Result<File, StoreError> {
    match private::lock(&data_dir.join(LOCK_FILE)) {
        Ok(Locked::Held(file)) => Ok(file),
        Ok(Locked::Busy(_)) => Err(StoreError::InUse {
            path: data_dir.to_owned(),
        }),
        Err(source) => Err(StoreError::DataDir {
            path: data_dir.to_owned(),
            source,
        }),
    }
}

/// Moves an unreadable store aside, with an error line that says why and what it means.
fn move_aside(path: &Path, reason: &str) {
    let stamp = clock::unix_now();
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
fn remove_stale_temp_files(path: &Path) {
    for (name, err) in private::remove_stale_temp_files(path) {
        tracing::warn!("cannot remove {name}, left by an interrupted write: {err}");
    }
}

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;
    use std::io::Write;

    use super::format::{HEADER_LEN, decode, encode};
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
                id_token: None,
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

    #[cfg(unix)]
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
        #[cfg(unix)]
        {
            assert_eq!(mode(&data), 0o700);
            assert_eq!(mode(&data.join(STORE_FILE)), 0o600);
            assert_eq!(mode(&dir.path().join("config").join(KEY_FILE)), 0o600);
            assert_eq!(mode(&data.join(LOCK_FILE)), 0o600);
        }
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

    #[cfg(unix)]
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

    #[cfg(unix)]
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
        #[cfg(unix)]
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
