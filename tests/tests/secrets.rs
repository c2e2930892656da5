//! `tok secret set/list/rm` and `${secret:NAME}`, through the real `tok` and `tokend`: values come
//! from stdin (without echo on a terminal), never from argv; lists show names, never values;
//! secrets survive a restart in the encrypted store; no value reaches the trace-level log.

use std::io::Write;
use std::process::{Output, Stdio};

use tokend_e2e::{Daemon, code, stderr, stdout, tok_command};

const CONFIG: &str = r#"
[providers.gl]
kind = "static"
secret = "${secret:gitlab}"
"#;

const VALUE: &str = "glpat-e2e-user-secret-value";

/// `tok ARGS` with `input` on its stdin.
fn tok_with_stdin(daemon: &Daemon, args: &[&str], input: &[u8]) -> Output {
    let mut child = tok_command(daemon.socket())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn a_secret_set_from_stdin_serves_its_provider_across_restarts_until_removed() {
    let mut daemon = Daemon::start(CONFIG);
    let out = daemon.tok(&["get", "gl"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("tok secret set gitlab"),
        "the error says what to do: {}",
        stderr(&out)
    );

    let out = tok_with_stdin(
        &daemon,
        &["secret", "set", "gitlab"],
        format!("{VALUE}\n").as_bytes(),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
    assert!(
        stderr(&out).contains("secret `gitlab` set"),
        "{}",
        stderr(&out)
    );
    // The failed attempt before the secret existed does not hold the provider back.
    let out = daemon.tok(&["get", "gl"]);
    assert_eq!(stdout(&out), format!("{VALUE}\n"), "{}", stderr(&out));

    let list = daemon.tok(&["secret", "list"]);
    assert_eq!(code(&list), 0, "{}", stderr(&list));
    assert!(stdout(&list).contains("gitlab"), "{}", stdout(&list));
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&daemon.tok(&["secret", "list", "--json"]))).unwrap();
    assert_eq!(json[0]["name"], "gitlab");
    assert!(json[0]["set_at"].is_string(), "{json}");
    for output in [stdout(&list), json.to_string()] {
        assert!(!output.contains(VALUE), "a list never shows a value");
    }

    // A new value is served at once, not the cached old one.
    let out = tok_with_stdin(&daemon, &["secret", "set", "gitlab"], b"second-value\n");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&daemon.tok(&["get", "gl"])), "second-value\n");
    let out = tok_with_stdin(&daemon, &["secret", "set", "gitlab"], VALUE.as_bytes());
    assert_eq!(code(&out), 0, "{}", stderr(&out));

    let mut log = daemon.log();
    daemon.kill();
    daemon.restart(&[]);
    assert_eq!(stdout(&daemon.tok(&["get", "gl"])), format!("{VALUE}\n"));

    let out = daemon.tok(&["secret", "rm", "gitlab"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = daemon.tok(&["get", "gl"]);
    assert_eq!(
        code(&out),
        2,
        "a removed secret is no longer served: {}",
        stdout(&out)
    );
    let out = daemon.tok(&["secret", "rm", "gitlab"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("no secret named `gitlab`"),
        "{}",
        stderr(&out)
    );
    log.push_str(&daemon.log());
    daemon.terminate();
    daemon.restart(&[]);
    assert_eq!(code(&daemon.tok(&["get", "gl"])), 2, "removed for good");
    assert!(stdout(&daemon.tok(&["secret", "list"])).contains("no secrets set"));
    log.push_str(&daemon.log());
    assert!(!log.contains(VALUE), "a secret value is in the daemon log");
}

#[test]
fn bad_names_and_values_are_refused_with_exit_2() {
    let daemon = Daemon::start(CONFIG);
    for (args, input, expected) in [
        (
            &["secret", "set", "x"][..],
            &b""[..],
            "no value for secret `x`",
        ),
        (&["secret", "set", "x"], b"\n", "no value for secret `x`"),
        (
            &["secret", "set", "x"],
            b"two\nlines\n",
            "control character",
        ),
        (&["secret", "set", "a/b"], b"v\n", "invalid secret name"),
        (&["secret", "set", "x"], &[0xff, 0xfe][..], "not UTF-8"),
    ] {
        let out = tok_with_stdin(&daemon, args, input);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(expected),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    // The value is never taken from argv: there is no argument for it.
    let out = daemon.tok(&["secret", "set", "x", "value-on-argv"]);
    assert_eq!(code(&out), 2);
    assert!(stdout(&daemon.tok(&["secret", "list"])).contains("no secrets set"));
}

/// On a terminal, `tok secret set` prompts and reads without echo: the typed value never appears
/// on the terminal. `script` (util-linux) gives tok a pseudo-terminal.
#[cfg(unix)]
#[test]
fn on_a_terminal_the_value_is_read_without_echo() {
    use std::io::Read;
    use std::process::Command;

    use tokend_e2e::{bin, wait_bounded};

    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("SKIPPED: script (util-linux) is not installed");
        return;
    }
    let daemon = Daemon::start(CONFIG);
    let command = format!(
        "'{}' --socket '{}' secret set gitlab",
        bin("tok").display(),
        daemon.socket().display()
    );
    let mut child = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("TOKEND_NO_AUTOSTART", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut terminal = child.stdout.take().unwrap();
    // Type only once the prompt is there (echo is off from then on).
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !String::from_utf8_lossy(&seen).contains("(not shown): ") {
        assert_eq!(terminal.read(&mut byte).unwrap(), 1, "no prompt: {seen:?}");
        seen.push(byte[0]);
    }
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(format!("{VALUE}\r").as_bytes()).unwrap();
    stdin.flush().unwrap();
    let status = wait_bounded(&mut child);
    drop(stdin);
    let mut rest = String::new();
    let _ = terminal.read_to_string(&mut rest);
    let shown = format!("{}{rest}", String::from_utf8_lossy(&seen));
    assert!(status.success(), "{status}: {shown}");
    assert!(!shown.contains(VALUE), "the value was echoed: {shown:?}");
    assert!(shown.contains("secret `gitlab` set"), "{shown:?}");
    assert_eq!(stdout(&daemon.tok(&["get", "gl"])), format!("{VALUE}\n"));
}
