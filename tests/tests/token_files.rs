//! Token files (`file = { path, format }`) through the real `tokend`, against a loopback API
//! (`tokend_e2e::http_upstream`) that issues short-lived tokens: every format, the modes, the
//! rewrite ahead of expiry with no caller at all, a symbolic link replaced and not followed, a
//! path that cannot be written (reported, the daemon keeps serving), and the file removed when
//! the provider has no valid token or leaves the config.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Duration;

use tokend_e2e::http_upstream::HttpUpstream;
use tokend_e2e::{Daemon, code, eventually, stderr, stdout};

/// A provider whose tokens (`tok-1`, `tok-2`, …) live `ttl` seconds, with a token file.
fn provider(name: &str, upstream: &HttpUpstream, ttl: u64, file: &str) -> String {
    format!(
        "[providers.{name}]\nkind = \"http\"\nurl = \"{}/token?ttl={ttl}\"\ntoken = \"/token\"\n\
         expires = \"/expires_in\"\nfile = {{ {file} }}\n",
        upstream.url()
    )
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

fn status_json(daemon: &Daemon) -> serde_json::Value {
    let out = daemon.tok(&["status", "--json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).expect("status JSON")
}

#[test]
fn every_format_is_written_private_and_rewritten_before_expiry_without_any_caller() {
    let upstream = HttpUpstream::start(1);
    let files = tokend_e2e::private_dir();
    // The directory does not exist yet: the daemon creates it 0700.
    let dir = files.path().join("made/by/tokend");
    let path = |name: &str| dir.join(format!("{name}.token"));
    let file = |name: &str, format: &str| {
        format!("path = \"{}\", format = \"{format}\"", path(name).display())
    };
    let config = [
        provider("raw", &upstream, 3, &file("raw", "raw")),
        provider("head", &upstream, 3600, &file("head", "header")),
        provider("js", &upstream, 3600, &file("js", "json")),
        provider("env-file", &upstream, 3600, &file("env-file", "env")),
    ]
    .concat();
    let daemon = Daemon::start(&config);
    let all_there = || {
        ["raw", "head", "js", "env-file"]
            .iter()
            .all(|name| read(&path(name)).is_some_and(|text| !text.is_empty()))
    };
    assert!(
        eventually(Duration::from_secs(20), all_there),
        "not every token file was written; log:\n{}",
        daemon.log()
    );
    assert_eq!(mode(&dir), 0o700, "the directory the daemon made");
    for name in ["raw", "head", "js", "env-file"] {
        assert_eq!(mode(&path(name)), 0o600, "{name}");
    }

    let token_of = |text: &str| text.trim().rsplit(['\'', ' ']).next().map(str::to_owned);
    let header = read(&path("head")).unwrap();
    assert!(
        header.starts_with("Authorization: Bearer tok-") && header.ends_with('\n'),
        "{header:?}"
    );
    let env = read(&path("env-file")).unwrap();
    assert!(env.starts_with("ENV_FILE_TOKEN='tok-"), "{env:?}");
    assert!(env.ends_with("'\n"), "{env:?}");
    let json: serde_json::Value = serde_json::from_str(&read(&path("js")).unwrap()).unwrap();
    assert_eq!(json["provider"], "js");
    let token = json["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("tok-"), "{json}");
    assert_eq!(json["header"], format!("Authorization: Bearer {token}"));
    assert!(
        json["expires_at"].as_str().unwrap().ends_with('Z'),
        "{json}"
    );
    // What the file holds is what `tok get --json` prints.
    let out = daemon.tok(&["get", "js", "--json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let got: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(got["token"], json["token"]);
    assert_eq!(got["header"], json["header"]);

    // Nobody asks for `raw`, yet its 3-second tokens keep being replaced before they expire.
    let first = read(&path("raw")).unwrap();
    assert!(
        first.starts_with("tok-") && !first.contains('\n'),
        "{first:?}"
    );
    let mut seen = vec![first];
    let rewritten = eventually(Duration::from_secs(20), || {
        if let Some(now) = read(&path("raw")).filter(|t| !t.is_empty())
            && seen.last() != Some(&now)
        {
            seen.push(now);
        }
        seen.len() >= 3
    });
    assert!(rewritten, "raw was not rewritten: {seen:?}");
    assert_eq!(mode(&path("raw")), 0o600, "the rewritten file");
    for text in &seen {
        assert_eq!(token_of(text).as_deref(), Some(text.as_str()));
    }

    let status = status_json(&daemon);
    let entries = status["token_files"].as_array().expect("token_files");
    assert_eq!(entries.len(), 4, "{status}");
    let raw = entries.iter().find(|e| e["provider"] == "raw").unwrap();
    assert_eq!(raw["format"], "raw");
    assert_eq!(raw["path"], path("raw").display().to_string());
    assert!(raw["error"].is_null(), "{raw}");
    let written = raw["written_at"].as_str().expect("written_at");
    assert!(written.starts_with("20") && written.ends_with('Z'), "{raw}");
    let table = daemon.tok(&["status"]);
    assert!(stdout(&table).contains("TOKEN FILE"), "{}", stdout(&table));
    daemon.assert_no_secret_logged();
}

#[test]
fn a_symbolic_link_at_the_path_is_replaced_and_its_target_left_alone() {
    let upstream = HttpUpstream::start(1);
    let files = tokend_e2e::private_dir();
    let target = files.path().join("precious");
    std::fs::write(&target, "keep me").unwrap();
    let link = files.path().join("api.token");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let daemon = Daemon::start(&provider(
        "api",
        &upstream,
        3600,
        &format!("path = \"{}\"", link.display()),
    ));
    assert!(
        eventually(Duration::from_secs(20), || {
            std::fs::symlink_metadata(&link).is_ok_and(|meta| meta.is_file())
        }),
        "the link was not replaced; log:\n{}",
        daemon.log()
    );
    assert!(read(&link).unwrap().starts_with("tok-"));
    assert_eq!(read(&target).as_deref(), Some("keep me"));
    assert_eq!(mode(&link), 0o600);
}

#[test]
fn a_path_that_cannot_be_written_is_reported_and_the_daemon_keeps_serving() {
    let upstream = HttpUpstream::start(1);
    let files = tokend_e2e::private_dir();
    // A directory others can read: the daemon will not put a token there.
    let open = files.path().join("shared");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = open.join("api.token");
    let daemon = Daemon::start(&provider(
        "api",
        &upstream,
        3600,
        &format!("path = \"{}\"", path.display()),
    ));
    let mut error = String::new();
    assert!(
        eventually(Duration::from_secs(20), || {
            let status = status_json(&daemon);
            error = status["token_files"][0]["error"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            !error.is_empty()
        }),
        "no error reported; log:\n{}",
        daemon.log()
    );
    assert!(
        error.contains(&path.display().to_string()) && error.contains("chmod 700"),
        "{error}"
    );
    assert!(!path.exists());
    let out = daemon.tok(&["get", "api"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).starts_with("tok-"));
    let table = stdout(&daemon.tok(&["status"]));
    assert!(table.contains("chmod 700"), "{table}");

    // Once the directory is made private, the retry writes the file.
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert!(
        eventually(Duration::from_secs(20), || read(&path)
            .is_some_and(|t| t.starts_with("tok-"))),
        "the retry did not write the file; log:\n{}",
        daemon.log()
    );
    assert!(eventually(Duration::from_secs(5), || status_json(&daemon)
        ["token_files"][0]["error"]
        .is_null()));
}

#[test]
fn the_file_goes_when_the_token_is_rejected_and_when_the_provider_leaves_the_config() {
    let upstream = HttpUpstream::start(1);
    let files = tokend_e2e::private_dir();
    let path = |name: &str| files.path().join(format!("{name}.token"));
    let entry = |name: &str| {
        provider(
            name,
            &upstream,
            3600,
            &format!("path = \"{}\"", path(name).display()),
        )
    };
    let daemon = Daemon::start(&[entry("kept"), entry("gone")].concat());
    assert!(eventually(Duration::from_secs(20), || path("kept")
        .exists()
        && path("gone").exists()));

    // The credentials are revoked: the next token cannot be had, and the old one is dropped.
    upstream.reject_tokens(true);
    let out = daemon.tok(&["invalidate", "kept"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        eventually(Duration::from_secs(20), || !path("kept").exists()),
        "the file of a provider without a valid token stayed; log:\n{}",
        daemon.log()
    );
    let status = status_json(&daemon);
    let kept = status["token_files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["provider"] == "kept")
        .cloned()
        .unwrap();
    assert!(
        kept["error"]
            .as_str()
            .unwrap()
            .contains("no token to write"),
        "{kept}"
    );
    // Rejected credentials are not retried on their own (for 10 minutes): once they are fixed,
    // `tok invalidate` clears the failure and the file comes back (the next invalidation is
    // allowed 5 s after the previous one).
    upstream.reject_tokens(false);
    assert!(
        eventually(Duration::from_secs(20), || {
            let _ = daemon.tok(&["invalidate", "kept"]);
            std::thread::sleep(Duration::from_millis(500));
            path("kept").exists()
        }),
        "the file did not come back; log:\n{}",
        daemon.log()
    );

    // A reload without `gone` removes its file; `kept` keeps its token and file.
    let before = read(&path("kept")).unwrap();
    std::fs::write(daemon.dir().join("config.toml"), entry("kept")).unwrap();
    let out = daemon.tok(&["reload"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        eventually(Duration::from_secs(10), || !path("gone").exists()),
        "the removed provider's file stayed"
    );
    assert_eq!(read(&path("kept")), Some(before));
    assert_eq!(
        status_json(&daemon)["token_files"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn bad_file_tables_are_config_errors_naming_the_key() {
    let upstream = HttpUpstream::start(1);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let check = |text: &str, wanted: &str| {
        std::fs::write(&config, text).unwrap();
        let log = dir.path().join("log");
        let mut child = std::process::Command::new(tokend_e2e::bin("tokend"))
            .arg("--config")
            .arg(&config)
            .arg("--socket")
            .arg(dir.path().join("s.sock"))
            .env("TOKEND_DATA", dir.path().join("data"))
            .stdin(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let status = tokend_e2e::wait_bounded(&mut child);
        let said = std::fs::read_to_string(&log).unwrap();
        assert!(!status.success(), "{text}");
        assert!(said.contains(wanted), "{text}\n{said}");
    };
    check(
        &provider("a", &upstream, 60, "path = \"/tmp/x\", format = \"yaml\""),
        "use one of: raw, header, json, env",
    );
    check(&provider("a", &upstream, 60, "format = \"raw\""), "path");
    let twice = [
        provider("a", &upstream, 60, "path = \"/tmp/same.token\""),
        provider("b", &upstream, 60, "path = \"/tmp/same.token\""),
    ]
    .concat();
    check(&twice, "/tmp/same.token");
    check(
        "[providers.a]\nkind = \"anonymous\"\nfile = { path = \"/tmp/a\" }\n",
        "file",
    );
}
