//! `${file:…}`: reading a secret file off the async threads, bounded in size and time (a file on
//! a hung mount), opened without blocking (a FIFO or device is refused before any read), its
//! metadata checked on the opened file, and who may change it: a secret file is for tokend's user
//! alone (0600); a token file the platform writes ([`ResolveOptions::platform_file`]) may be read
//! by others, never written, and belongs to tokend's user or root.
//!
//! [`ResolveOptions::platform_file`]: super::ResolveOptions::platform_file

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use zeroize::Zeroizing;

use super::ResolveError;

/// Largest `${file:…}` accepted, in bytes. A token file is tiny; anything bigger is a wrong path.
pub const MAX_FILE_SIZE: u64 = 64 * 1024;

/// How long reading a `${file:…}` may take (a file on a hung network mount).
pub const FILE_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Expands a leading `~/` to the home directory.
fn expand_home(path: &str) -> Result<PathBuf, ResolveError> {
    match path.strip_prefix("~/") {
        Some(rest) => directories::BaseDirs::new()
            .map(|dirs| dirs.home_dir().join(rest))
            .ok_or_else(|| ResolveError::NoHomeDir {
                path: path.to_owned(),
            }),
        None => Ok(PathBuf::from(path)),
    }
}

pub(super) async fn read_secret_file(
    path: &str,
    platform_file: bool,
) -> Result<Zeroizing<String>, ResolveError> {
    let path = expand_home(path)?;
    // Blocking file I/O runs off the async workers, bounded in time: the path may be on a slow
    // or hung mount (a FIFO or device is refused before any read, see below).
    let task_path = path.clone();
    let read =
        tokio::task::spawn_blocking(move || read_secret_file_blocking(&task_path, platform_file));
    match tokio::time::timeout(FILE_READ_TIMEOUT, read).await {
        Ok(Ok(result)) => result,
        Ok(Err(join_error)) => Err(ResolveError::FileRead {
            path,
            source: io::Error::other(join_error.to_string()),
        }),
        Err(_) => Err(ResolveError::FileRead {
            path,
            source: io::Error::new(
                io::ErrorKind::TimedOut,
                format!("not read within {} s", FILE_READ_TIMEOUT.as_secs()),
            ),
        }),
    }
}

fn read_secret_file_blocking(
    path: &Path,
    platform_file: bool,
) -> Result<Zeroizing<String>, ResolveError> {
    let read_error = |source: io::Error| ResolveError::FileRead {
        path: path.to_owned(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    // Non-blocking: opening a FIFO for reading would otherwise wait for a writer forever. A
    // regular file reads the same either way.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(
        &mut options,
        i32::try_from(rustix::fs::OFlags::NONBLOCK.bits()).unwrap_or(0),
    );
    let file = options.open(path).map_err(read_error)?;
    // Check the opened file's metadata, not the path's: no window for a swap between the two.
    let metadata = file.metadata().map_err(read_error)?;
    if !metadata.is_file() {
        return Err(read_error(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file (a directory, FIFO or device cannot hold a secret)",
        )));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let access = FileAccess {
            mode: metadata.permissions().mode() & 0o7777,
            owner: metadata.uid(),
            daemon: rustix::process::geteuid().as_raw(),
        };
        access.check(path, platform_file)?;
    }
    // Other systems have no modes to check.
    #[cfg(not(unix))]
    let _ = platform_file;
    let too_large = || ResolveError::FileTooLarge {
        path: path.to_owned(),
        limit: MAX_FILE_SIZE,
    };
    if metadata.len() > MAX_FILE_SIZE {
        return Err(too_large());
    }
    // Sized from the metadata so the buffer normally never reallocates (no stray copies).
    let capacity = usize::try_from(metadata.len()).unwrap_or(0) + 1;
    let mut content = Zeroizing::new(Vec::with_capacity(capacity));
    file.take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut content)
        .map_err(read_error)?;
    if content.len() as u64 > MAX_FILE_SIZE {
        return Err(too_large());
    }
    let text = std::str::from_utf8(&content).map_err(|_| ResolveError::FileNotUtf8 {
        path: path.to_owned(),
    })?;
    Ok(Zeroizing::new(text.trim().to_owned()))
}

/// Who may change a secret file, as its metadata says (unix).
#[cfg(unix)]
#[derive(Debug, Clone, Copy)]
struct FileAccess {
    /// Permission bits.
    mode: u32,
    /// The owner's uid.
    owner: u32,
    /// The daemon's effective uid.
    daemon: u32,
}

#[cfg(unix)]
impl FileAccess {
    /// A secret file is for the daemon's user alone (0600). A platform's token file may be read
    /// by others, never written, and must belong to the daemon's user or to root (the platform):
    /// its owner can always rewrite it, whatever its mode.
    fn check(self, path: &Path, platform_file: bool) -> Result<(), ResolveError> {
        let Self {
            mode,
            owner,
            daemon,
        } = self;
        if platform_file {
            if mode & 0o022 != 0 {
                return Err(ResolveError::FileWritable {
                    path: path.to_owned(),
                    mode,
                });
            }
            if owner != daemon && owner != 0 {
                return Err(ResolveError::FileOwner {
                    path: path.to_owned(),
                    owner,
                    daemon,
                });
            }
        } else if mode & 0o077 != 0 {
            return Err(ResolveError::FileInsecure {
                path: path.to_owned(),
                mode,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[cfg(unix)]
    use std::time::Duration;

    #[cfg(unix)]
    use super::super::test_support::{no_env, no_secrets};
    use super::super::test_support::{resolve_test, temp_dir};
    #[cfg(unix)]
    use super::super::{ResolveOptions, Resolver, SecretTemplate};
    use super::*;

    #[cfg(unix)]
    #[tokio::test]
    async fn resolve_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir("file");
        let path = dir.path().join("token");
        std::fs::write(&path, "  file-token\n\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let template = format!("${{file:{}}}", path.display());

        let secret = resolve_test(&template).await.unwrap();
        assert_eq!(secret.expose(), "file-token");

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = resolve_test(&template).await.unwrap_err();
        assert!(
            matches!(error, ResolveError::FileInsecure { mode: 0o644, .. }),
            "{error}"
        );
        let message = error.to_string();
        assert!(
            message.contains(&format!("run chmod 600 {}", path.display())),
            "{message}"
        );
        assert!(message.contains("0644"), "{message}");
        assert!(!message.contains("file-token"), "{message}");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_platform_token_file_may_be_read_by_others_but_not_written() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir("platform");
        let path = dir.path().join("azure-identity-token");
        std::fs::write(&path, "eyJ.platform.token\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let template = SecretTemplate::parse(&format!("${{file:{}}}", path.display())).unwrap();
        let resolver = Resolver::with(no_env, no_secrets, Duration::from_secs(1));
        let platform = ResolveOptions {
            platform_file: true,
            ..ResolveOptions::default()
        };
        let value = template.resolve_with(&resolver, platform).await.unwrap();
        assert_eq!(value.expose(), "eyJ.platform.token");
        // Elsewhere the usual rule holds.
        assert!(matches!(
            template.resolve(&resolver).await,
            Err(ResolveError::FileInsecure { .. })
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let error = template
            .resolve_with(&resolver, platform)
            .await
            .unwrap_err();
        assert!(
            matches!(error, ResolveError::FileWritable { mode: 0o666, .. }),
            "{error}"
        );
        assert!(error.to_string().contains("writable by group or others"));
    }

    #[cfg(unix)]
    #[test]
    fn a_platform_token_file_belongs_to_the_daemons_user_or_root() {
        let path = Path::new("/var/run/secrets/tokens/token");
        let access = |mode, owner| FileAccess {
            mode,
            owner,
            daemon: 1000,
        };
        assert!(access(0o644, 1000).check(path, true).is_ok());
        assert!(access(0o644, 0).check(path, true).is_ok());
        let error = access(0o644, 1001).check(path, true).unwrap_err();
        assert!(
            matches!(error, ResolveError::FileOwner { owner: 1001, .. }),
            "{error}"
        );
        let message = error.to_string();
        assert!(
            message.contains("uid 1001") && message.contains("uid 1000"),
            "{message}"
        );
        // Even 0400: its owner may chmod it and write.
        assert!(access(0o400, 1001).check(path, true).is_err());
        // Elsewhere the mode is the rule (only the daemon's user or root could read a 0600
        // file of another user anyway).
        assert!(access(0o600, 1001).check(path, false).is_ok());
        assert!(access(0o644, 1000).check(path, false).is_err());
    }

    /// Through the real file system: as root, a file handed to another user is refused.
    #[cfg(unix)]
    #[tokio::test]
    async fn a_platform_token_file_of_another_user_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        if !rustix::process::geteuid().is_root() {
            // Only root can give a file away; the rule itself is tested above.
            return;
        }
        let dir = temp_dir("owner");
        let path = dir.path().join("token");
        std::fs::write(&path, "eyJ.platform.token\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let template = SecretTemplate::parse(&format!("${{file:{}}}", path.display())).unwrap();
        let resolver = Resolver::with(no_env, no_secrets, Duration::from_secs(1));
        let platform = ResolveOptions {
            platform_file: true,
            ..ResolveOptions::default()
        };
        assert!(template.resolve_with(&resolver, platform).await.is_ok());
        std::os::unix::fs::chown(&path, Some(65_534), None).unwrap();
        let error = template
            .resolve_with(&resolver, platform)
            .await
            .unwrap_err();
        assert!(
            matches!(error, ResolveError::FileOwner { owner: 65_534, .. }),
            "{error}"
        );
    }

    #[tokio::test]
    async fn resolve_file_missing() {
        let dir = temp_dir("missing");
        let path = dir.path().join("absent");
        let error = resolve_test(&format!("${{file:{}}}", path.display()))
            .await
            .unwrap_err();
        assert!(matches!(error, ResolveError::FileRead { .. }), "{error}");
        assert!(
            error.to_string().contains(&path.display().to_string()),
            "{error}"
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn resolve_file_too_large_and_multiline() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir("large");
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'a'; 64 * 1024 + 1]).unwrap();
        std::fs::set_permissions(&big, std::fs::Permissions::from_mode(0o600)).unwrap();
        let error = resolve_test(&format!("${{file:{}}}", big.display()))
            .await
            .unwrap_err();
        assert!(
            matches!(error, ResolveError::FileTooLarge { .. }),
            "{error}"
        );

        let multi = dir.path().join("multi");
        std::fs::write(&multi, "line1\nline2\n").unwrap();
        std::fs::set_permissions(&multi, std::fs::Permissions::from_mode(0o600)).unwrap();
        let error = resolve_test(&format!("${{file:{}}}", multi.display()))
            .await
            .unwrap_err();
        assert!(matches!(error, ResolveError::ControlChar { .. }), "{error}");
        assert!(!error.to_string().contains("line1"), "{error}");
    }

    #[test]
    fn home_expansion() {
        if let Some(dirs) = directories::BaseDirs::new() {
            assert_eq!(
                expand_home("~/x/y").unwrap(),
                dirs.home_dir().join("x").join("y")
            );
        }
        assert_eq!(expand_home("/abs/~/p").unwrap(), PathBuf::from("/abs/~/p"));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_fifo_or_device_is_refused_at_once_not_waited_on() {
        let dir = temp_dir("fifo");
        let fifo = dir.path().join("secret.fifo");
        let made = std::process::Command::new("mkfifo")
            .arg("-m")
            .arg("600")
            .arg(&fifo)
            .status()
            .expect("mkfifo");
        assert!(made.success());
        for path in [fifo.display().to_string(), "/dev/zero".to_owned()] {
            let template = SecretTemplate::parse(&format!("${{file:{path}}}")).unwrap();
            let started = std::time::Instant::now();
            let error = template
                .resolve(&Resolver::with(no_env, no_secrets, Duration::from_secs(1)))
                .await
                .unwrap_err();
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{path} was waited on"
            );
            assert!(
                error.to_string().contains("not a regular file"),
                "{path}: {error}"
            );
        }
    }
}
