//! `tok exec` with several providers, and as a supervisor (`--restart-on-change`, `--signal`),
//! through the real `tok` and `tokend`, against a loopback API whose tokens live 3 seconds
//! (`tokend_e2e::http_upstream`), with `sh` scripts as the supervised programs.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use rustix::process::Signal;
use tokend_e2e::http_upstream::HttpUpstream;
use tokend_e2e::{Daemon, code, eventually, signal, stderr, stdout, tok_command, wait_bounded};

/// Providers `NAME` whose tokens (`tok-1`, `tok-2`, …) live `ttl` seconds.
fn config(upstream: &HttpUpstream, names: &[&str], ttl: u64) -> String {
    names
        .iter()
        .map(|name| {
            format!(
                "[providers.\"{name}\"]\nkind = \"http\"\nurl = \"{}/token?ttl={ttl}\"\n\
                 token = \"/token\"\nexpires = \"/expires_in\"\n",
                upstream.url()
            )
        })
        .collect()
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// `tok exec ARGS` in the background, its stderr captured.
fn spawn_tok(daemon: &Daemon, args: &[&str]) -> Child {
    tok_command(daemon.socket())
        .arg("exec")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tok exec")
}

fn finish(mut child: Child) -> (i32, String) {
    let status = wait_bounded(&mut child);
    let mut text = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut err, &mut text);
    }
    (status.code().unwrap_or(-1), text)
}

#[test]
fn several_providers_each_get_their_variable() {
    let upstream = HttpUpstream::start(1);
    let daemon = Daemon::start(&config(&upstream, &["alpha", "beta.io"], 3600));
    let out = daemon.tok(&[
        "exec",
        "alpha",
        "beta.io",
        "--var",
        "beta.io=BETA",
        "--",
        "sh",
        "-c",
        r#"printf '%s|%s|%s' "$ALPHA_TOKEN" "$BETA" "${BETA_IO_TOKEN-unset}""#,
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let printed = stdout(&out);
    let parts: Vec<&str> = printed.split('|').collect();
    assert_eq!(parts.len(), 3, "{printed}");
    assert!(
        parts[0].starts_with("tok-") && parts[1].starts_with("tok-"),
        "{printed}"
    );
    assert_ne!(parts[0], parts[1]);
    assert_eq!(parts[2], "unset");

    // Usage errors run nothing.
    for args in [
        &["exec", "alpha", "beta.io", "--var", "X", "--", "true"][..],
        &["exec", "alpha", "alpha", "--", "true"],
        &["exec", "alpha", "--var", "gamma=X", "--", "true"],
        &["exec", "alpha", "--signal", "KILL", "--", "true"],
        &[
            "exec",
            "alpha",
            "--signal",
            "HUP",
            "--restart-on-change",
            "--",
            "true",
        ],
    ] {
        let out = daemon.tok(args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        assert!(stdout(&out).is_empty());
    }
    // One provider that cannot be had: the program does not run.
    let out = daemon.tok(&["exec", "alpha", "nope", "--", "sh", "-c", "echo ran"]);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
}

#[test]
fn restart_on_change_restarts_the_program_with_each_new_token() {
    let upstream = HttpUpstream::start(1);
    let daemon = Daemon::start(&config(&upstream, &["api"], 3));
    let dir = tokend_e2e::private_dir();
    let log = dir.path().join("log");
    let script = format!(
        "echo \"start $API_TOKEN\" >> {log}; trap 'echo stop >> {log}; exit 0' TERM; \
         while :; do sleep 0.1; done",
        log = log.display()
    );
    let tok = spawn_tok(
        &daemon,
        &[
            "--restart-on-change",
            "--min-ttl",
            "1s",
            "api",
            "--",
            "sh",
            "-c",
            &script,
        ],
    );
    let started = || {
        lines(&log)
            .iter()
            .filter(|l| l.starts_with("start"))
            .count()
    };
    assert!(
        eventually(Duration::from_secs(30), || started() >= 3),
        "not restarted: {:?}",
        lines(&log)
    );
    // Each run got a new token, and each was stopped with SIGTERM before the next began.
    let seen = lines(&log);
    let starts: Vec<&String> = seen.iter().filter(|l| l.starts_with("start")).collect();
    assert_ne!(starts[0], starts[1]);
    assert_ne!(starts[1], starts[2]);
    assert_eq!(seen[1], "stop", "{seen:?}");

    // SIGTERM to tok reaches the program, and tok exits with its code.
    signal(tok.id(), Signal::TERM);
    let (code, said) = finish(tok);
    assert_eq!(code, 0, "{said}");
    assert!(said.contains("new token for api; restarting"), "{said}");
    assert_eq!(lines(&log).last().map(String::as_str), Some("stop"));
}

#[test]
fn a_program_that_ignores_sigterm_is_killed_after_the_grace_period() {
    let upstream = HttpUpstream::start(1);
    let daemon = Daemon::start(&config(&upstream, &["api"], 3));
    let dir = tokend_e2e::private_dir();
    let log = dir.path().join("log");
    let script = format!(
        "trap '' TERM; echo $$ >> {}; while :; do sleep 0.1; done",
        log.display()
    );
    let tok = spawn_tok(
        &daemon,
        &[
            "--restart-on-change",
            "--grace",
            "1s",
            "--min-ttl",
            "1s",
            "api",
            "--",
            "sh",
            "-c",
            &script,
        ],
    );
    assert!(
        eventually(Duration::from_secs(30), || lines(&log).len() >= 2),
        "not restarted: {:?}",
        lines(&log)
    );
    // Now stop: tok passes SIGTERM on (ignored) and restarts nothing more; the program is
    // killed by hand and tok reports it as 128 + 9.
    signal(tok.id(), Signal::TERM);
    std::thread::sleep(Duration::from_millis(300));
    let last: u32 = lines(&log).last().unwrap().parse().unwrap();
    signal(last, Signal::KILL);
    let (code, said) = finish(tok);
    assert_eq!(code, 128 + 9, "{said}");
    assert!(said.contains("did not stop in time; killing it"), "{said}");
}

#[test]
fn signal_mode_rewrites_the_token_file_and_signals_the_same_program() {
    let upstream = HttpUpstream::start(1);
    let daemon = Daemon::start(&config(&upstream, &["api"], 3));
    let dir = tokend_e2e::private_dir();
    let log = dir.path().join("log");
    let script = format!(
        "echo \"file $API_TOKEN_FILE\" >> {log}; echo \"env $API_TOKEN\" >> {log}; \
         trap 'echo \"hup $(cat \"$API_TOKEN_FILE\")\" >> {log}' HUP; \
         while :; do sleep 0.1; done",
        log = log.display()
    );
    let tok = spawn_tok(
        &daemon,
        &[
            "--signal",
            "HUP",
            "--min-ttl",
            "1s",
            "api",
            "--",
            "sh",
            "-c",
            &script,
        ],
    );
    let hups = || {
        lines(&log)
            .into_iter()
            .filter(|l| l.starts_with("hup "))
            .collect::<Vec<_>>()
    };
    assert!(
        eventually(Duration::from_secs(30), || hups().len() >= 2),
        "no signals: {:?}",
        lines(&log)
    );
    let seen = lines(&log);
    let file = seen[0]
        .strip_prefix("file ")
        .expect("the file line")
        .to_owned();
    let file = Path::new(&file);
    assert_eq!(
        std::fs::metadata(file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(file.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    // One program (started once), each signal after a new token was written.
    assert_eq!(seen.iter().filter(|l| l.starts_with("file ")).count(), 1);
    let first = seen[1].strip_prefix("env ").unwrap();
    let hups = hups();
    assert_ne!(hups[0], format!("hup {first}"));
    assert_ne!(hups[0], hups[1]);
    assert!(hups[1].starts_with("hup tok-"), "{hups:?}");

    // SIGTERM is passed on; the program dies of it; the private directory goes with tok.
    signal(tok.id(), Signal::TERM);
    let (code, said) = finish(tok);
    assert_eq!(code, 128 + 15, "{said}");
    assert!(
        !file.parent().unwrap().exists(),
        "the token directory stayed"
    );
}

#[test]
fn a_supervised_program_that_exits_passes_its_code_through() {
    let upstream = HttpUpstream::start(1);
    let daemon = Daemon::start(&config(&upstream, &["api"], 3600));
    let out = daemon.tok(&[
        "exec",
        "--restart-on-change",
        "api",
        "--",
        "sh",
        "-c",
        r#"test -n "$API_TOKEN" && exit 7"#,
    ]);
    assert_eq!(code(&out), 7, "{}", stderr(&out));
    let out = daemon.tok(&[
        "exec",
        "--signal",
        "USR1",
        "api",
        "--",
        "tok-no-such-program-x7",
    ]);
    assert_eq!(code(&out), 127, "{}", stderr(&out));
}

#[test]
fn a_terminals_ctrl_c_reaches_the_program_once() {
    use std::io::Write as _;
    let upstream = HttpUpstream::start(1);
    let daemon = Daemon::start(&config(&upstream, &["api"], 3600));
    let dir = tokend_e2e::private_dir();
    let log = dir.path().join("log");
    // `script` gives tok a terminal of its own; `exec` makes tok the terminal's session leader,
    // so the terminal's SIGINT goes to tok and the program alike, as in an interactive shell.
    let command = format!(
        "exec '{}' --socket '{}' exec --restart-on-change api -- sh -c \
         'trap \"echo int >> {log}\" INT; echo $$ >> {log}; while :; do sleep 0.1; done'",
        tokend_e2e::bin("tok").display(),
        daemon.socket().display(),
        log = log.display()
    );
    let Ok(mut script) = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("TOKEND_NO_AUTOSTART", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
    else {
        eprintln!("skipped: `script` (util-linux) is not installed");
        return;
    };
    assert!(
        eventually(Duration::from_secs(20), || !lines(&log).is_empty()),
        "the program did not start"
    );
    let program: u32 = lines(&log)[0].parse().unwrap();
    // Ctrl-C typed on the terminal.
    script.stdin.as_mut().unwrap().write_all(b"\x03").unwrap();
    assert!(eventually(Duration::from_secs(10), || lines(&log)
        .iter()
        .any(|l| l == "int")));
    std::thread::sleep(Duration::from_millis(500));
    let ints = lines(&log).iter().filter(|l| *l == "int").count();
    assert_eq!(ints, 1, "SIGINT reached the program {ints} times");
    // tok stopped restarting and waits for the program, whose exit it passes on.
    signal(program, Signal::TERM);
    let status = wait_bounded(&mut script);
    assert_eq!(status.code(), Some(128 + 15));
}
