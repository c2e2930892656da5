//! Shell integration of `tok` as whole processes against the real daemon: `tok env` read back by
//! a real `sh`, `tok exec` (token in the environment, exit code passed through), `tok curl`
//! against a loopback HTTP server (header required, exit code passed through, the token in no
//! process's argv), `tok completions`, and the "waiting for tokend" notice.

use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tokend_e2e::{
    Daemon, PROCESS_WAIT, bin, code, private_dir, stderr, stdout, tok_command, wait_bounded,
};
use wiremock::matchers::{body_string, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The token of the provider `tok curl` uses. It must appear in no test's argv (the argv scan
/// of `curl_keeps_the_token_out_of_every_argv` looks for it), so it travels only through the
/// daemon's environment and the tests' assertions.
const CURL_KEY: &str = "st-curl-key-5f0c3e9a7b1d";
const CRM_TOKEN: &str = "crm-token-0123456789";
/// Quotes, spaces and shell syntax: `tok env` must quote it so `sh` reads it back unchanged.
const NASTY_TOKEN: &str = r#"it's a $(touch pwned) `id` "x" \n ; |&<>*?~ 'end'"#;

const CONFIG: &str = r#"
[providers.crm]
kind = "static"
secret = "${env:E2E_CRM_TOKEN}"

[providers."crm.com"]
kind = "static"
secret = "${env:E2E_CRM_TOKEN}"

[providers.nasty]
kind = "static"
secret = "${env:E2E_NASTY_TOKEN}"

[providers.salestim]
kind = "static"
secret = "${env:E2E_CURL_KEY}"
header = "X-API-KEY"

[providers.store]
kind = "anonymous"
"#;

const ENV: &[(&str, &str)] = &[
    ("E2E_CRM_TOKEN", CRM_TOKEN),
    ("E2E_NASTY_TOKEN", NASTY_TOKEN),
    ("E2E_CURL_KEY", CURL_KEY),
];

fn start() -> Daemon {
    Daemon::start_with_env(CONFIG, ENV)
}

/// Runs `sh -c SCRIPT` with `$TOK` = the tok binary and `$SOCK` = the daemon's socket, plus
/// `env` (values go through the environment, never argv).
fn sh(daemon: &Daemon, script: &str, env: &[(&str, &str)]) -> Output {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(script)
        .env("TOK", bin("tok"))
        .env("SOCK", daemon.socket())
        .env("TOKEND_NO_AUTOSTART", "1")
        .env_remove("TOKEND_SOCKET")
        .stdin(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run sh")
}

// ---------------------------------------------------------------------------------------------
// tok env

#[test]
fn env_prints_one_export_line_with_the_default_or_given_name() {
    let daemon = start();
    let cases: [(&[&str], &str); 4] = [
        (&["env", "crm"], "export CRM_TOKEN='crm-token-0123456789'\n"),
        (
            &["env", "crm.com"],
            "export CRM_COM_TOKEN='crm-token-0123456789'\n",
        ),
        (
            &["env", "crm", "--var", "MY_Api_2"],
            "export MY_Api_2='crm-token-0123456789'\n",
        ),
        // Anonymous providers have an empty token.
        (&["env", "store"], "export STORE_TOKEN=''\n"),
    ];
    for (args, expected) in cases {
        let out = daemon.tok(args);
        assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
        assert_eq!(stdout(&out), expected, "{args:?}");
        assert!(stderr(&out).is_empty(), "{args:?}: {}", stderr(&out));
    }
    let out = daemon.tok(&["env", "nasty", "--var", "N"]);
    assert_eq!(
        stdout(&out),
        format!("export N='{}'\n", NASTY_TOKEN.replace('\'', r"'\''"))
    );
}

#[test]
fn env_output_is_read_back_by_a_real_sh() {
    let daemon = start();
    let out = sh(
        &daemon,
        r#"eval "$("$TOK" --socket "$SOCK" env crm)" && test "$CRM_TOKEN" = "$EXPECTED""#,
        &[("EXPECTED", CRM_TOKEN)],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));

    let out = sh(
        &daemon,
        r#"eval "$("$TOK" --socket "$SOCK" env crm.com)" && test "$CRM_COM_TOKEN" = "$EXPECTED""#,
        &[("EXPECTED", CRM_TOKEN)],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));

    // Quotes, `$(…)` and backquotes in the token are data, not code; the variable is exported.
    let dir = private_dir();
    let out = sh(
        &daemon,
        r#"cd "$DIR" && eval "$("$TOK" --socket "$SOCK" env nasty --var NASTY)" &&
           test "$NASTY" = "$EXPECTED" && sh -c 'test "$NASTY" = "$EXPECTED"'"#,
        &[
            ("EXPECTED", NASTY_TOKEN),
            ("DIR", dir.path().to_str().unwrap()),
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        !dir.path().join("pwned").exists(),
        "the token was run as code"
    );
}

#[test]
fn env_rejects_invalid_variable_names_and_unknown_providers() {
    let daemon = start();
    for var in ["1X", "A-B", "A B", "X=1", "$X", "", "É"] {
        let out = daemon.tok(&["env", "crm", "--var", var]);
        assert_eq!(code(&out), 2, "--var {var:?}: {}", stderr(&out));
        assert!(stdout(&out).is_empty(), "--var {var:?}");
        assert!(
            stderr(&out).contains("not a shell variable name"),
            "{}",
            stderr(&out)
        );
    }
    let out = daemon.tok(&["env", "nope"]);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
    assert!(
        stderr(&out).contains("unknown provider `nope`"),
        "{}",
        stderr(&out)
    );
}

// ---------------------------------------------------------------------------------------------
// tok exec

#[test]
fn exec_passes_the_token_in_the_environment_and_the_exit_code_through() {
    let daemon = start();
    // Default variable name; the program's exit code is tok's.
    let out = daemon.tok(&[
        "exec",
        "crm",
        "--",
        "sh",
        "-c",
        r#"test "$CRM_TOKEN" = crm-token-0123456789 && exit 7"#,
    ]);
    assert_eq!(code(&out), 7, "{}", stderr(&out));

    // Explicit variable; the program's stdout is tok's stdout; 0 passes through.
    let out = daemon.tok(&[
        "exec",
        "crm.com",
        "--var",
        "X",
        "--",
        "sh",
        "-c",
        r#"printf '%s|%s' "$X" "${CRM_COM_TOKEN-unset}""#,
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{CRM_TOKEN}|unset"));
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));

    // Arguments after `--` are the program's, even when they look like tok's options.
    let out = daemon.tok(&[
        "exec",
        "crm",
        "--",
        "sh",
        "-c",
        r#"printf %s "$1""#,
        "sh",
        "--var",
    ]);
    assert_eq!(stdout(&out), "--var");

    // The program inherits stdin.
    let mut child = tok_command(daemon.socket())
        .args(["exec", "crm", "--", "sh", "-c", "read line && exit $line"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"42\n").unwrap();
    assert_eq!(child.wait_with_output().unwrap().status.code(), Some(42));
}

#[test]
fn exec_reports_signals_as_128_plus_the_signal() {
    let daemon = start();
    let out = daemon.tok(&["exec", "crm", "--", "sh", "-c", "kill -TERM $$"]);
    assert_eq!(code(&out), 128 + 15, "{}", stderr(&out));
}

#[test]
fn exec_does_not_run_the_program_without_a_token() {
    let daemon = start();
    let dir = private_dir();
    let marker = dir.path().join("ran");
    let script = format!("touch '{}'", marker.display());

    let out = daemon.tok(&["exec", "nope", "--", "sh", "-c", &script]);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
    assert!(
        stderr(&out).contains("unknown provider `nope`"),
        "{}",
        stderr(&out)
    );
    assert!(!marker.exists(), "the program ran without a token");

    let out = daemon.tok(&["exec", "crm", "--var", "9X", "--", "sh", "-c", &script]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(!marker.exists(), "the program ran despite a usage error");

    // No program, or no `--`: usage errors.
    assert_eq!(code(&daemon.tok(&["exec", "crm"])), 2);
    assert_eq!(code(&daemon.tok(&["exec", "crm", "true"])), 2);
}

#[test]
fn exec_of_a_missing_program_is_127() {
    let daemon = start();
    let out = daemon.tok(&["exec", "crm", "--", "tok-no-such-program-x7"]);
    assert_eq!(code(&out), 127, "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
    let err = stderr(&out);
    assert!(
        err.starts_with("tok: ")
            && err.contains("tok-no-such-program-x7")
            && err.contains("not found"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// tok curl

fn have_curl() -> bool {
    let found = Command::new("curl")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        eprintln!("skipped: `curl` is not installed");
    }
    found
}

/// Runs a blocking closure (the real `tok` process) while the fake server keeps serving.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// A server that answers `GET /data` and `POST /echo` only with the salestim header.
async fn api_server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/data"))
        .and(header("X-API-KEY", CURL_KEY))
        .respond_with(ResponseTemplate::new(200).set_body_string("hello from the API\n"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/echo"))
        .and(header("X-API-KEY", CURL_KEY))
        .and(body_string("payload from stdin"))
        .respond_with(ResponseTemplate::new(201).set_body_string("stored\n"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/public"))
        .respond_with(ResponseTemplate::new(200).set_body_string("public\n"))
        .mount(&server)
        .await;
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_sends_the_header_and_passes_the_exit_code_through() {
    if !have_curl() {
        return;
    }
    let server = api_server().await;
    let uri = server.uri();
    let daemon = start();
    let (ok, not_found, without_f, stdin, anonymous, anonymous_needs_key, daemon) =
        blocking(move || {
            let ok = daemon.tok(&["curl", "salestim", "--", "-sS", &format!("{uri}/data")]);
            let not_found = daemon.tok(&["curl", "salestim", "--", "-sSf", &format!("{uri}/nope")]);
            let without_f = daemon.tok(&["curl", "salestim", "--", "-sS", &format!("{uri}/nope")]);
            // stdin stays curl's: the body comes from it while the header comes from tok.
            let mut child = tok_command(daemon.socket())
                .args(["curl", "salestim", "--", "-sS", "--data-binary", "@-"])
                .arg(format!("{uri}/echo"))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(b"payload from stdin")
                .unwrap();
            let stdin = child.wait_with_output().unwrap();
            let anonymous = daemon.tok(&["curl", "store", "--", "-sS", &format!("{uri}/public")]);
            let anonymous_needs_key =
                daemon.tok(&["curl", "store", "--", "-sSf", &format!("{uri}/data")]);
            (
                ok,
                not_found,
                without_f,
                stdin,
                anonymous,
                anonymous_needs_key,
                daemon,
            )
        })
        .await;

    assert_eq!(code(&ok), 0, "{}", stderr(&ok));
    assert_eq!(stdout(&ok), "hello from the API\n");
    assert!(stderr(&ok).is_empty(), "{}", stderr(&ok));

    // curl -f and an HTTP 404: curl's exit code 22 passes through.
    assert_eq!(code(&not_found), 22, "{}", stderr(&not_found));
    assert!(stdout(&not_found).is_empty());
    assert_eq!(code(&without_f), 0, "{}", stderr(&without_f));

    assert_eq!(code(&stdin), 0, "{}", stderr(&stdin));
    assert_eq!(stdout(&stdin), "stored\n");

    // Anonymous: curl runs without any header (so /data, which needs the key, is a 404).
    assert_eq!(code(&anonymous), 0, "{}", stderr(&anonymous));
    assert_eq!(stdout(&anonymous), "public\n");
    assert_eq!(code(&anonymous_needs_key), 22);
    let requests = server.received_requests().await.unwrap();
    let public = requests
        .iter()
        .find(|r| r.url.path() == "/public")
        .expect("the anonymous request arrived");
    assert!(
        !public.headers.contains_key("x-api-key") && !public.headers.contains_key("authorization"),
        "{:?}",
        public.headers
    );
    // Exactly one X-API-KEY header on authenticated requests.
    let data = requests.iter().find(|r| r.url.path() == "/data").unwrap();
    assert_eq!(data.headers.get_all("x-api-key").iter().count(), 1);
    drop(daemon);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_keeps_the_token_out_of_every_argv() {
    if !have_curl() {
        return;
    }
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/slow"))
        .and(header("X-API-KEY", CURL_KEY))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string("slow answer\n")
                .set_delay(Duration::from_millis(1200)),
        )
        .mount(&server)
        .await;
    let url = format!("{}/slow", server.uri());
    let daemon = start();
    let (output, scans, curl_argv, daemon) = blocking(move || {
        let child = tok_command(daemon.socket())
            .args(["curl", "salestim", "--", "-sS", &url])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let tok_pid = child.id();
        // Scan every process's argv while curl waits for the delayed answer (bounded).
        let deadline = Instant::now() + PROCESS_WAIT;
        let mut scans = 0_u32;
        let mut curl_argv: Option<Vec<u8>> = None;
        let mut child = child;
        loop {
            for (pid, cmdline) in all_cmdlines() {
                assert!(
                    !contains(&cmdline, CURL_KEY.as_bytes()),
                    "the token is in the argv of pid {pid}: {}",
                    String::from_utf8_lossy(&cmdline).replace('\0', " ")
                );
                if pid != tok_pid && contains(&cmdline, url.as_bytes()) {
                    curl_argv = Some(cmdline);
                }
            }
            scans += 1;
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("tok curl did not finish within {PROCESS_WAIT:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        (child.wait_with_output().unwrap(), scans, curl_argv, daemon)
    })
    .await;

    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(stdout(&output), "slow answer\n");
    assert!(
        scans > 10,
        "curl ran too briefly to be scanned ({scans} scans)"
    );
    // The scan did see curl, and curl read its header from the inherited pipe.
    let argv =
        String::from_utf8_lossy(&curl_argv.expect("curl's argv was seen")).replace('\0', " ");
    assert!(argv.contains("-H @/dev/fd/"), "{argv}");
    drop(daemon);
}

fn all_cmdlines() -> Vec<(u32, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            Some((pid, cmdline))
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn curl_not_found_is_127_and_tok_curl_overrides_it() {
    let daemon = start();
    let out = tok_command(daemon.socket())
        .args(["curl", "salestim", "--", "http://127.0.0.1:9/"])
        .env("TOK_CURL", "/nonexistent/tok-curl")
        .output()
        .unwrap();
    assert_eq!(code(&out), 127, "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
    assert!(
        stderr(&out).contains("/nonexistent/tok-curl") && stderr(&out).contains("TOK_CURL"),
        "{}",
        stderr(&out)
    );

    // TOK_CURL names the program. It gets `-H @/dev/fd/N` before the user's arguments, except
    // that `-q` (which curl honours only first) stays first. (The header's arrival on that
    // descriptor is what the real curl against the fake API above proves.)
    let out = tok_command(daemon.socket())
        .args(["curl", "salestim", "--", "-q", "--flag", "http://x/"])
        .env("TOK_CURL", "echo")
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    let words: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(words.len(), 5, "{text}");
    assert_eq!(words[..2], ["-q", "-H"], "{text}");
    assert!(words[2].starts_with("@/dev/fd/"), "{text}");
    assert_eq!(words[3..], ["--flag", "http://x/"], "{text}");
    assert!(!text.contains(CURL_KEY));

    // The program's exit code passes through.
    let out = tok_command(daemon.socket())
        .args(["curl", "salestim", "--", "http://x/"])
        .env("TOK_CURL", "false")
        .output()
        .unwrap();
    assert_eq!(code(&out), 1, "{}", stderr(&out));
}

// ---------------------------------------------------------------------------------------------
// tok completions

#[test]
fn completions_print_a_script_for_each_shell() {
    let dir = private_dir();
    let socket = dir.path().join("none.sock");
    let out = tok_command(&socket)
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let script = stdout(&out);
    assert!(
        script.contains("_tok") && script.contains("complete"),
        "{script}"
    );
    for command in ["env", "exec", "curl", "completions"] {
        assert!(script.contains(command), "{command} is missing:\n{script}");
    }
    assert!(stderr(&out).is_empty());
    // bash parses it.
    let file = dir.path().join("tok.bash");
    std::fs::write(&file, &script).unwrap();
    if let Ok(status) = Command::new("bash").arg("-n").arg(&file).status() {
        assert!(status.success(), "bash -n rejected the script");
    }

    let out = tok_command(&socket)
        .args(["completions", "zsh"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0);
    assert!(stdout(&out).starts_with("#compdef tok"), "{}", stdout(&out));
    let out = tok_command(&socket)
        .args(["completions", "fish"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0);
    assert!(stdout(&out).contains("complete -c tok"), "{}", stdout(&out));

    let out = tok_command(&socket)
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 2);
    assert!(stdout(&out).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Help

#[test]
fn help_shows_examples_for_the_shell_commands() {
    let dir = private_dir();
    let socket = dir.path().join("none.sock");
    let out = tok_command(&socket).arg("--help").output().unwrap();
    let text = stdout(&out);
    for example in [
        "tok curl crm --",
        "eval \"$(tok env",
        "tok exec gitlab --",
        "tok completions",
    ] {
        assert!(text.contains(example), "{example} is missing:\n{text}");
    }
    for command in ["env", "exec", "curl", "completions"] {
        let out = tok_command(&socket)
            .args([command, "--help"])
            .output()
            .unwrap();
        assert_eq!(code(&out), 0);
        let text = stdout(&out);
        assert!(
            text.contains("Example") && text.contains(&format!("tok {command} ")),
            "{command}:\n{text}"
        );
    }
    let text = stdout(
        &tok_command(&socket)
            .args(["exec", "--help"])
            .output()
            .unwrap(),
    );
    assert!(text.contains("127") && text.contains("128+N"), "{text}");
    let text = stdout(
        &tok_command(&socket)
            .args(["curl", "--help"])
            .output()
            .unwrap(),
    );
    assert!(text.contains("TOK_CURL") && text.contains("127"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// The "waiting for tokend" notice

/// A provider whose token endpoint answers after 1.5 s.
async fn slow_token_server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({ "token": "slow-token" }))
                .set_delay(Duration::from_millis(1500)),
        )
        .mount(&server)
        .await;
    server
}

fn slow_config(uri: &str) -> String {
    let mut config = String::new();
    for name in ["slow_pipe", "slow_tty", "slow_env"] {
        config.push_str(&format!(
            "[providers.{name}]\nkind = \"http\"\nurl = \"{uri}/token\"\ntoken = \"/token\"\n\n"
        ));
    }
    config.push_str("[providers.fast]\nkind = \"static\"\nsecret = \"fast-token\"\n");
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_fetches_print_a_notice_only_on_a_terminal() {
    let server = slow_token_server().await;
    let daemon = Daemon::start(&slow_config(&server.uri()));
    let (pipe, env_pipe, tty, fast_tty, daemon) = blocking(move || {
        // stderr is a pipe here: never a notice, however slow.
        let pipe = daemon.tok(&["get", "slow_pipe"]);
        let env_pipe = daemon.tok(&["env", "slow_env"]);
        // `script` gives tok a terminal (stdout and stderr both land in its output). Bounded:
        // a tok that hangs fails the test instead of blocking it.
        let in_terminal = |args: &str| -> Option<String> {
            let command = format!(
                "'{}' --socket '{}' {args}",
                bin("tok").display(),
                daemon.socket().display()
            );
            let mut child = Command::new("script")
                .args(["-qec", &command, "/dev/null"])
                .env("TOKEND_NO_AUTOSTART", "1")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .spawn()
                .ok()?;
            let status = wait_bounded(&mut child);
            let mut text = String::new();
            child.stdout.take()?.read_to_string(&mut text).ok()?;
            assert!(status.success(), "{status}: {text}");
            Some(text)
        };
        let tty = in_terminal("get slow_tty");
        let fast_tty = in_terminal("get fast");
        (pipe, env_pipe, tty, fast_tty, daemon)
    })
    .await;

    assert_eq!(code(&pipe), 0, "{}", stderr(&pipe));
    assert_eq!(stdout(&pipe), "slow-token\n");
    assert!(stderr(&pipe).is_empty(), "{}", stderr(&pipe));
    assert_eq!(code(&env_pipe), 0, "{}", stderr(&env_pipe));
    assert_eq!(stdout(&env_pipe), "export SLOW_ENV_TOKEN='slow-token'\n");
    assert!(stderr(&env_pipe).is_empty(), "{}", stderr(&env_pipe));

    match (tty, fast_tty) {
        (Some(text), Some(fast)) => {
            // The notice comes before the token.
            let notice = text.find("tok: waiting for tokend to fetch slow_tty…");
            let token = text.find("slow-token");
            assert!(notice.is_some() && notice < token, "{text}");
            assert!(
                fast.contains("fast-token") && !fast.contains("waiting"),
                "{fast}"
            );
        }
        _ => eprintln!("skipped the terminal half: `script` (util-linux) is not installed"),
    }
    drop(daemon);
}
