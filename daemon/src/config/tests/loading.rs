//! Finding the config file (`resolve_path`) and loading it: missing, unreadable, not UTF-8, with
//! errors naming its path, and the warning about a readable one holding a literal secret.

use std::path::{Path, PathBuf};

use super::{EXAMPLE, temp_dir};
#[cfg(unix)]
use crate::config::test_support::SECRET;
use crate::config::*;

#[test]
fn missing_file_is_empty_config() {
    let dir = temp_dir("missing");
    let path = dir.path().join("config.toml");
    let (config, warnings) = load(&path).unwrap();
    assert_eq!(config.source, ConfigSource::Missing(path.clone()));
    assert_eq!(config.source.path(), path);
    assert!(config.providers.is_empty());
    assert!(warnings.is_empty());
}

#[test]
fn load_reads_file_and_reports_errors_with_path() {
    let dir = temp_dir("load");
    let path = dir.path().join("config.toml");
    std::fs::write(&path, EXAMPLE).unwrap();
    let (config, _) = load(&path).unwrap();
    assert_eq!(config.source, ConfigSource::File(path.clone()));
    assert_eq!(config.providers.len(), 2);

    std::fs::write(&path, "[providers.a]\nkind = \"oauth\"\n").unwrap();
    let message = load(&path).unwrap_err().to_string();
    assert!(
        message.starts_with(&format!("{}:2: ", path.display())),
        "{message}"
    );
}

#[test]
fn load_rejects_non_utf8() {
    let dir = temp_dir("utf8");
    let path = dir.path().join("config.toml");
    std::fs::write(&path, b"[providers.a]\nkind = \"st\xffatic\"\n").unwrap();
    let error = load(&path).unwrap_err();
    assert!(
        matches!(error, ConfigError::NotUtf8 { line: 2, .. }),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&format!("{}:2:", path.display())),
        "{message}"
    );
    assert!(message.contains("UTF-8"), "{message}");
}

#[test]
fn load_directory_is_read_error() {
    let dir = temp_dir("dir");
    let error = load(dir.path()).unwrap_err();
    assert!(matches!(error, ConfigError::Read { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains(&dir.path().display().to_string()),
        "{error}"
    );
}

#[cfg(unix)]
#[test]
fn load_warns_about_readable_file_with_literal_secret() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("mode");
    let path = dir.path().join("config.toml");
    let set_mode = |mode| {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    let literal = format!("[providers.lit]\nkind = \"static\"\nsecret = \"{SECRET}\"\n");

    std::fs::write(&path, &literal).unwrap();
    set_mode(0o644);
    let (_, warnings) = load(&path).unwrap();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    let mode_warning = &warnings[1];
    assert_eq!(mode_warning.line, 3);
    assert!(
        mode_warning
            .message
            .contains(&format!("run chmod 600 {}", path.display())),
        "{mode_warning}"
    );
    assert!(mode_warning.message.contains("0644"), "{mode_warning}");
    assert!(!format!("{warnings:?}").contains(SECRET));

    set_mode(0o600);
    let (_, warnings) = load(&path).unwrap();
    assert_eq!(warnings.len(), 1, "only the literal warning: {warnings:?}");

    // Readable but without a literal secret: nothing to protect.
    std::fs::write(&path, EXAMPLE).unwrap();
    set_mode(0o644);
    let (_, warnings) = load(&path).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");

    set_mode(0o664);
    let (_, warnings) = load(&path).unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].message.contains("writable by group or others"));
    assert_eq!(warnings[0].line, 0);
}

#[test]
fn resolve_path_order() {
    let explicit = Path::new("/explicit/config.toml");
    let with_env = |name: &str| (name == CONFIG_ENV).then(|| OsString::from("/from/env.toml"));
    let empty_env = |name: &str| (name == CONFIG_ENV).then(OsString::new);
    let no_env = |_: &str| None;

    assert_eq!(
        resolve_path(Some(explicit), &with_env).unwrap(),
        PathBuf::from("/explicit/config.toml")
    );
    assert_eq!(
        resolve_path(None, &with_env).unwrap(),
        PathBuf::from("/from/env.toml")
    );
    // Empty TOKEND_CONFIG is ignored like an unset one.
    for env in [&empty_env as &dyn Fn(&str) -> Option<OsString>, &no_env] {
        match resolve_path(None, env) {
            Ok(path) => assert!(path.ends_with("tokend/config.toml"), "{}", path.display()),
            Err(error) => assert!(matches!(error, ConfigError::NoConfigDir)),
        }
    }
}
