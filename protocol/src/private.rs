//! Private files and directories: the one implementation of the rule every path of tokend
//! follows (the socket directory and its lock files, the store's data directory, the store and
//! its key file, the user-service unit files).
//!
//! - Directories are created with mode 0700. An existing one must be a real directory (not a
//!   symbolic link) owned by this user that group and others cannot enter ([`check_dir`]).
//! - Files are created with mode 0600 and opened without following a symbolic link
//!   ([`file_options`]).
//! - A file that must never be seen half-written is replaced atomically ([`write_atomic`]):
//!   a fresh temporary file beside it, fsync, rename, fsync of the directory.
//! - One process at a time: an exclusive advisory lock on a lock file ([`lock`]), released by the
//!   OS when the process dies, so a killed holder never leaves it taken.
//!
//! On Windows the permission checks do not apply (the user's profile directories are private);
//! creation, atomic replacement and locks work the same way.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Why a directory cannot be used as a private one.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    /// Creating or inspecting it failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// It exists but is not private to this user; the text says why and what to do.
    #[error("{0}")]
    NotPrivate(String),
}

/// Creates `dir` and its missing parents with mode 0700 (an existing directory is left as it
/// is: see [`ensure_dir`] to check it too).
///
/// # Errors
/// The I/O error of the creation.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Creates `dir` (see [`create_dir`]) and checks that it is private ([`check_dir`]).
///
/// # Errors
/// [`DirError::Io`] when it cannot be created or inspected, [`DirError::NotPrivate`] when it is
/// not private.
pub fn ensure_dir(dir: &Path) -> Result<(), DirError> {
    create_dir(dir)?;
    match check_dir(dir)? {
        Some(reason) => Err(DirError::NotPrivate(reason)),
        None => Ok(()),
    }
}

/// Why `dir` is not private to this user, and what to do about it: a symbolic link, not a
/// directory, another owner, or access for group or others. `None` when it is private (always,
/// on Windows).
///
/// # Errors
/// The I/O error of inspecting it (for example, it does not exist).
#[cfg(unix)]
pub fn check_dir(dir: &Path) -> io::Result<Option<String>> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = fs::symlink_metadata(dir)?;
    if meta.file_type().is_symlink() {
        return Ok(Some("it is a symbolic link; use a real directory".into()));
    }
    if !meta.is_dir() {
        return Ok(Some("it is not a directory".into()));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Ok(Some(format!(
            "it is owned by uid {}, not by this user (uid {me}); use a directory you own",
            meta.uid()
        )));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Ok(Some(format!(
            "its mode {mode:04o} lets other users in; run `chmod 700 {}`",
            dir.display()
        )));
    }
    Ok(None)
}

/// Windows: see the module docs.
///
/// # Errors
/// The I/O error of inspecting it (for example, it does not exist).
#[cfg(not(unix))]
pub fn check_dir(dir: &Path) -> io::Result<Option<String>> {
    fs::metadata(dir).map(|_| None)
}

/// Options that create a missing file with mode 0600 and never follow a symbolic link (a link
/// planted in its place fails the open). Add `read`, `write`, `truncate` or `create_new` as
/// needed.
#[must_use]
pub fn file_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
        options.custom_flags(i32::try_from(rustix::fs::OFlags::NOFOLLOW.bits()).unwrap_or(0));
    }
    options
}

/// The file name prefix of [`write_atomic`]'s temporary files for `path`: `.STEM.` (`.store.`
/// for `store.tokend`).
#[must_use]
pub fn temp_prefix(path: &Path) -> String {
    format!(
        ".{}.",
        path.file_stem().unwrap_or_default().to_string_lossy()
    )
}

/// The file name suffix of [`write_atomic`]'s temporary files.
pub const TEMP_SUFFIX: &str = ".tmp";

/// Replaces `path` with `bytes`, so that a crash leaves either the old or the new content: a new
/// temporary file in the same directory (0600, named `.STEM.<pid>-<n>.tmp`), fsync, rename over
/// `path`, fsync of the directory. A temporary file left by a crash never replaced anything;
/// [`remove_stale_temp_files`] clears them.
///
/// # Errors
/// The I/O error of any step; the temporary file is removed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    let dir = dir.unwrap_or(Path::new("."));
    let prefix = temp_prefix(path);
    let mut options = file_options();
    options.write(true).create_new(true);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut attempt = 0u32;
    let (temporary, mut file) = loop {
        let name = format!(
            "{prefix}{}-{}{TEMP_SUFFIX}",
            std::process::id(),
            u64::from(nanos) + u64::from(attempt)
        );
        let candidate = dir.join(name);
        match options.open(&candidate) {
            Ok(file) => break (candidate, file),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists && attempt < 64 => {
                attempt += 1;
            }
            Err(err) => return Err(err),
        }
    };
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| {
            drop(file);
            fs::rename(&temporary, path)
        });
    if let Err(err) = written {
        let _ = fs::remove_file(&temporary);
        return Err(err);
    }
    sync_parent(path)
}

/// Removes the temporary files that interrupted [`write_atomic`]s of `path` left behind; returns
/// the names of those it could not remove, with the error.
#[must_use]
pub fn remove_stale_temp_files(path: &Path) -> Vec<(String, io::Error)> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    let Ok(entries) = fs::read_dir(dir.unwrap_or(Path::new("."))) else {
        return Vec::new();
    };
    let prefix = temp_prefix(path);
    let mut failures = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix)
            && name.ends_with(TEMP_SUFFIX)
            && let Err(err) = fs::remove_file(entry.path())
        {
            failures.push((name, err));
        }
    }
    failures
}

/// fsync of the directory holding `path`, so that a rename or a new file survives a crash.
///
/// # Errors
/// The I/O error of opening or syncing the directory.
pub fn sync_parent(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        File::open(dir)?.sync_all()?;
    }
    // Windows cannot open a directory as a file; NTFS journals the rename itself.
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// The outcome of [`lock`].
#[derive(Debug)]
pub enum Locked {
    /// This process holds the lock for as long as it keeps the file open.
    Held(File),
    /// Another process holds it; the file is open (read what the holder wrote into it).
    Busy(File),
}

/// Opens (creating it 0600) the lock file at `path` and tries to take its exclusive lock without
/// waiting.
///
/// # Errors
/// The I/O error of opening the file or of the lock call itself.
pub fn lock(path: &Path) -> io::Result<Locked> {
    let file = file_options()
        .read(true)
        .write(true)
        .truncate(false)
        .open(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Locked::Held(file)),
        Err(fs::TryLockError::WouldBlock) => Ok(Locked::Busy(file)),
        Err(fs::TryLockError::Error(err)) => Err(err),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn scratch() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "tokend-private-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        create_dir(&dir).unwrap();
        dir
    }

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn directories_are_0700_and_checked() {
        let root = scratch();
        let dir = root.join("a/b");
        ensure_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o750)).unwrap();
        let reason = check_dir(&dir).unwrap().unwrap();
        assert!(reason.contains("chmod 700"), "{reason}");
        assert!(matches!(ensure_dir(&dir), Err(DirError::NotPrivate(_))));
        let link = root.join("link");
        std::os::unix::fs::symlink(root.join("a"), &link).unwrap();
        assert!(check_dir(&link).unwrap().unwrap().contains("symbolic link"));
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn files_are_0600_and_links_are_not_followed() {
        let root = scratch();
        let path = root.join("f");
        file_options().write(true).open(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        let target = root.join("target");
        fs::write(&target, "x").unwrap();
        let link = root.join("planted");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(file_options().write(true).open(&link).is_err());
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn atomic_writes_replace_and_leave_no_temporary() {
        let root = scratch();
        let path = root.join("store.tokend");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(mode(&path), 0o600);
        let stale = root.join(format!("{}1-2{TEMP_SUFFIX}", temp_prefix(&path)));
        fs::write(&stale, "partial").unwrap();
        assert!(remove_stale_temp_files(&path).is_empty());
        let names: Vec<_> = fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["store.tokend"]);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_lock_is_held_once() {
        let root = scratch();
        let path = root.join("x.lock");
        let Locked::Held(first) = lock(&path).unwrap() else {
            panic!("the first lock must be taken")
        };
        assert!(matches!(lock(&path).unwrap(), Locked::Busy(_)));
        drop(first);
        assert!(matches!(lock(&path).unwrap(), Locked::Held(_)));
        fs::remove_dir_all(&root).unwrap();
    }
}
