//! The `tokend` binary's command line: config errors, usage errors, help. (Having an integration
//! test here also makes `cargo test --workspace` build `tokend` for the end-to-end tests.)

use std::process::Command;

fn tokend() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tokend"));
    command
        .env_remove("TOKEND_CONFIG")
        .env_remove("TOKEND_SOCKET");
    command
}

fn private_dir() -> tempfile::TempDir {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tempfile::Builder::new()
            .prefix("tkd")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in("/tmp")
            .unwrap()
    }
    #[cfg(not(unix))]
    tempfile::Builder::new().prefix("tkd").tempdir().unwrap()
}

#[test]
fn an_invalid_config_exits_2_naming_file_line_and_key() {
    let dir = private_dir();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[providers.a]\nkind = \"static\"\nsecret = \"${env:A}\"\nscheme = \"digest\"\n",
    )
    .unwrap();
    let out = tokend()
        .arg("--config")
        .arg(&config)
        .arg("--socket")
        .arg(dir.path().join("t.sock"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:4:", config.display())), "{err}");
    assert!(err.contains("scheme") && err.contains("digest"), "{err}");
    assert!(
        !dir.path().join("t.sock").exists(),
        "nothing is served with a bad config"
    );
}

#[test]
fn the_config_path_comes_from_tokend_config_when_no_flag_is_given() {
    let dir = private_dir();
    let config = dir.path().join("from-env.toml");
    std::fs::write(&config, "[providers.a]\nkind = \"nope\"\n").unwrap();
    let out = tokend()
        .env("TOKEND_CONFIG", &config)
        .arg("--socket")
        .arg(dir.path().join("t.sock"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("from-env.toml:2:"));
}

#[test]
fn usage_errors_exit_2_and_help_succeeds() {
    let out = tokend().arg("--frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = tokend().arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--notify-ready"));
}

#[test]
fn log_format_json_writes_one_json_object_per_line() {
    let dir = private_dir();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[providers.a]\nkind = \"nope\"\n").unwrap();
    let out = tokend()
        .args(["--log-format", "json", "--config"])
        .arg(&config)
        .arg("--socket")
        .arg(dir.path().join("t.sock"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for line in &lines {
        assert!(
            line.starts_with('{') && line.ends_with('}'),
            "not a JSON object: {line}"
        );
        assert!(
            line.contains("\"level\":\"ERROR\"") || line.contains("\"level\""),
            "{line}"
        );
    }
    assert!(err.contains("config.toml:2"), "{err}");
    let out = tokend().args(["--log-format", "xml"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown format is a usage error"
    );
}
