//! Windows only, run under Wine in CI (`.ci/run`, `tests/wine/run`): what is particular to the
//! named pipe, the store key in Credential Manager and the Task Scheduler service. The
//! platform-neutral tests that also run there (get/header, status, auto-start, reload, hostile
//! frames, the client library, secrets in the store, oauth2 and http providers against loopback
//! servers) are in their own files.
//!
//! What Wine cannot show, so no test here claims it: Wine runs every process as one user and
//! does not hold a pipe's DACL against its callers. So a refusal of another user (by the DACL,
//! by the daemon's check of each client's user, or by the client's check of the pipe server's
//! user before it sends anything) cannot happen under Wine. Instead the DACL is read back from
//! the live pipe ([`the_pipe_is_owned_by_and_open_to_this_user_alone`]), every connection in
//! these tests passes both same-user checks for real, and the rule that refuses another user's
//! SID is unit-tested in `tokend_protocol::peer_user`. Starting the logon task needs
//! `schtasks /Run`, which Wine does not implement: its registration is tested.
#![cfg(windows)]

use std::io::Write;
use std::os::windows::io::AsHandle;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use interprocess::os::windows::named_pipe::DuplexPipeStream;
use interprocess::os::windows::named_pipe::pipe_mode::Bytes;
use tokend_e2e::{
    Daemon, bin, code, output_via_files, private_dir, raw_listen, stderr, stdout, test_socket,
    tok_command, wait_bounded,
};

const CONFIG: &str = r#"
[providers.pat]
kind = "static"
secret = "${env:E2E_WINDOWS_PAT}"
"#;

#[test]
fn the_pipe_is_owned_by_and_open_to_this_user_alone() {
    let daemon = Daemon::start_with_env(CONFIG, &[("E2E_WINDOWS_PAT", "pat-windows")]);
    let name = daemon.endpoint().to_string();
    assert!(name.starts_with(r"\\.\pipe\"), "{name}");
    let stream = DuplexPipeStream::<Bytes>::connect_by_path(name.as_str()).expect("connect");
    let sddl = tokend_protocol::win32::security_descriptor_sddl(stream.as_handle()).unwrap();
    let me = tokend_protocol::win32::current_user_sid().unwrap();
    // Owner: this user. DACL: protected (nothing inherited), one entry allowing this user full
    // access (GENERIC_ALL reads back as FILE_ALL_ACCESS, "FA"), nobody else.
    let (owner, dacl) = sddl.split_once("D:").expect("a DACL");
    assert_eq!(owner, format!("O:{me}"), "{sddl}");
    let (flags, aces) = dacl.split_once('(').expect("an entry");
    assert!(flags.contains('P'), "the DACL is not protected: {sddl}");
    let aces: Vec<&str> = aces.trim_end_matches(')').split(")(").collect();
    assert_eq!(aces.len(), 1, "{sddl}");
    let fields: Vec<&str> = aces[0].split(';').collect();
    assert_eq!(fields[0], "A", "{sddl}");
    assert!(matches!(fields[2], "FA" | "GA"), "{sddl}");
    assert_eq!(fields[5], me, "{sddl}");
    drop(stream);
    // And the daemon served this connection's user: both same-user checks passed.
    assert_eq!(
        daemon.client().get("pat").unwrap().value.expose(),
        "pat-windows"
    );
}

#[test]
fn a_program_holding_the_pipe_name_first_makes_tokend_refuse_to_start() {
    let dir = private_dir();
    let socket = test_socket(dir.path());
    let config = dir.path().join("config.toml");
    tokend_e2e::write_private(&config, CONFIG);
    // The squatter: the pipe name's first instance, created before tokend starts.
    let squatter = raw_listen(&socket);
    let out = output_via_files(
        Command::new(bin("tokend"))
            .arg("--config")
            .arg(&config)
            .arg("--socket")
            .arg(&socket)
            .env("TOKEND_DATA", dir.path().join("data"))
            .env("E2E_WINDOWS_PAT", "pat-windows"),
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("already exists, created by another program")
            && err.contains("refuses to serve behind it"),
        "{err}"
    );
    drop(squatter);
}

/// `[store] key = "keyring"`: the store's key lives in Credential Manager (Wine implements it
/// in its registry), not in a key file; a secret set with `tok secret set` survives a restart.
#[test]
fn the_store_key_can_live_in_credential_manager() {
    let config = format!("{CONFIG}\n[store]\nkey = \"keyring\"\n");
    let mut daemon = Daemon::start_with_env(&config, &[("E2E_WINDOWS_PAT", "pat-windows")]);
    let mut child = tok_command(daemon.socket())
        .args(["secret", "set", "deploy"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"deploy-secret-value\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let status = daemon.tok(&["status"]);
    assert!(
        stdout(&status).contains("Credential Manager"),
        "{}",
        stdout(&status)
    );
    assert!(daemon.terminate().success());
    daemon.restart(&[("E2E_WINDOWS_PAT", "pat-windows")]);
    let list = daemon.tok(&["secret", "list"]);
    assert_eq!(code(&list), 0, "{}", stderr(&list));
    assert!(stdout(&list).contains("deploy"), "{}", stdout(&list));
    assert!(
        !daemon.dir().join("store.key").exists(),
        "a key file was written although the key lives in Credential Manager"
    );
}

/// `tok service install --manager windows` registers the logon task with the real `schtasks`
/// (Wine's keeps it where Windows does, in `%SystemRoot%\System32\Tasks`), `uninstall`
/// removes it.
#[test]
fn tok_service_registers_and_removes_the_logon_task() {
    let dir = private_dir();
    let task_file = PathBuf::from(std::env::var_os("SystemRoot").expect("SystemRoot"))
        .join("System32")
        .join("Tasks")
        .join("tokend");
    let service = |action: &str| {
        let mut command = Command::new(bin("tok"));
        command
            .args(["service", action, "--manager", "windows"])
            .env("LOCALAPPDATA", dir.path())
            .env("TOKEND_BIN", bin("tokend"))
            .env_remove("TOKEND_CONFIG")
            .stdin(Stdio::null());
        output_via_files(&mut command)
    };
    let printed = service("install");
    assert_eq!(code(&printed), 0, "{}", stderr(&printed));
    let xml_path = dir.path().join("tokend").join("tokend-task.xml");
    let xml = std::fs::read(&xml_path).unwrap();
    assert_eq!(
        &xml[..2],
        b"\xff\xfe",
        "schtasks reads UTF-16 with a byte-order mark"
    );
    let xml = decode(&xml);
    assert!(xml.contains("<LogonTrigger>"), "{xml}");
    assert!(xml.contains(&bin("tokend").display().to_string()), "{xml}");
    // Registered under its name, with its settings. (Wine's Task Scheduler keeps a task's
    // description and settings but drops what it does not implement: logon triggers, the
    // principal, and with them the action; those are checked in the XML above.)
    let registered = decode(&std::fs::read(&task_file).expect("the task is registered"));
    for kept in [
        "keeps access tokens fresh",
        "<MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>",
        "<DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>",
        "<ExecutionTimeLimit>PT0S</ExecutionTimeLimit>",
    ] {
        assert!(registered.contains(kept), "{kept} is not in {registered}");
    }
    assert!(
        stderr(&printed).contains("schtasks /Create /TN tokend /XML"),
        "{}",
        stderr(&printed)
    );

    let removed = service("uninstall");
    assert_eq!(code(&removed), 0, "{}", stderr(&removed));
    assert!(!task_file.exists(), "the task is still registered");
    assert!(!xml_path.exists());
}

/// A task file as Windows or Wine writes it: UTF-16 with a byte-order mark, or UTF-8.
fn decode(bytes: &[u8]) -> String {
    match bytes {
        [0xFF, 0xFE, rest @ ..] => {
            let units: Vec<u16> = rest
                .chunks_exact(2)
                .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// The daemon started by auto-start is detached: it outlives the `tok` that started it and
/// answers the next one.
#[test]
fn an_auto_started_daemon_outlives_the_tok_that_started_it() {
    let dir = private_dir();
    let socket = test_socket(dir.path());
    tokend_e2e::write_private(&dir.path().join("config.toml"), CONFIG);
    let tok = |args: &[&str]| {
        let mut command = Command::new(bin("tok"));
        command
            .args(args)
            .env("TOKEND_SOCKET", &socket)
            .env("TOKEND_CONFIG", dir.path().join("config.toml"))
            .env("TOKEND_DATA", dir.path().join("data"))
            .env("TOKEND_BIN", bin("tokend"))
            .env("E2E_WINDOWS_PAT", "pat-windows")
            .env_remove("TOKEND_NO_AUTOSTART");
        command
    };
    let first = output_via_files(&mut tok(&["get", "pat"]));
    assert_eq!(code(&first), 0, "{}", stderr(&first));
    let ping = output_via_files(tok_command(&socket).arg("ping"));
    assert_eq!(code(&ping), 0, "{}", stderr(&ping));
    let mut stop = tok(&["stop"]);
    let mut stop = stop
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_bounded(&mut stop).success());
}
