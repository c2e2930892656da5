//! `tok login` with a real browser: Debian's headless Chromium is the `$BROWSER` that `tok login`
//! opens (a wrapper adds the test flags and a fresh profile), and Playwright (`playwright-core`
//! from tests/oidc, attached over the DevTools protocol; no browser is downloaded) signs in on
//! oidc-provider's real login page and grants or cancels on its consent page. The test then
//! reads tokend's redirect page as the browser rendered it, and keeps a screenshot of it in
//! `target/tmp/browser-login/` (its path is printed).
//!
//! Needs `/usr/bin/chromium` (Debian's `chromium` package; `.ci/run` installs it) and
//! `npm ci --prefix tests/oidc`. Without them the tests say SKIPPED, except under CI
//! (`CI=true`), where they fail.
#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokend_e2e::oidc::{CLI, OidcServer, oidc_dir, query_param};
use tokend_e2e::{Daemon, PROCESS_WAIT, code, stderr, stdout, tok_command, wait_bounded};

const CHROMIUM: &str = "/usr/bin/chromium";
/// How long the browser may take for the whole login (it starts cold, with a fresh profile).
const BROWSER_WAIT: Duration = Duration::from_secs(60);

/// Whether the browser and the driver are here; under CI their absence is a failure.
fn browser_available() -> bool {
    let missing: Vec<&str> = [
        (!Path::new(CHROMIUM).exists()).then_some("/usr/bin/chromium (Debian's chromium)"),
        (!oidc_dir().join("node_modules/playwright-core").exists())
            .then_some("playwright-core (npm ci --prefix tests/oidc)"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "the browser-login test needs {missing:?}; .ci/run installs them"
    );
    eprintln!("SKIPPED: the browser-login test needs {missing:?}");
    false
}

/// The headless browser started by `tok login`: a wrapper script for `$BROWSER` and the
/// profile it uses. Dropping it ends the browser if the driver could not.
struct Browser {
    script: PathBuf,
    profile: PathBuf,
}

impl Browser {
    fn new(dir: &Path) -> Self {
        let profile = dir.join("chromium-profile");
        let script = dir.join("browser");
        // The flags of Debian's Chromium on a machine without a display or outside network,
        // a fresh profile, and a DevTools port for Playwright; the URL tok passes comes last.
        tokend_e2e::write_script(
            &script,
            &format!(
                "#!/bin/sh\nexec {CHROMIUM} --headless --no-sandbox --disable-gpu --no-first-run \
                 --disable-background-networking --disable-component-update --disable-sync \
                 --remote-debugging-port=0 --user-data-dir='{}' \"$1\" >'{}' 2>&1\n",
                profile.display(),
                dir.join("chromium.log").display()
            ),
        );
        Self { script, profile }
    }

    /// The browser's pid, from the profile's lock (`HOST-PID`).
    fn pid(&self) -> Option<u32> {
        let target = std::fs::read_link(self.profile.join("SingletonLock")).ok()?;
        target.to_str()?.rsplit('-').next()?.parse().ok()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(pid) = self.pid()
            && Path::new(&format!("/proc/{pid}")).exists()
        {
            tokend_e2e::signal(pid, rustix::process::Signal::KILL);
        }
    }
}

/// What the driver saw of tokend's page.
struct Shown {
    page: serde_json::Value,
    screenshot: PathBuf,
}

/// Runs `tok login lab` with the browser as `$BROWSER` and drives it to the redirect page;
/// returns tok login's exit code and stderr, and what the page showed.
fn login_in_the_browser(daemon: &Daemon, choice: &str) -> (i32, String, Shown) {
    let browser = Browser::new(daemon.dir());
    let mut login = tok_command(daemon.socket())
        .args(["login", "lab"])
        .env("BROWSER", &browser.script)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tok login");
    let lines = stderr_lines(&mut login);
    let url = lines
        .recv_timeout(PROCESS_WAIT)
        .into_iter()
        .chain(lines.iter())
        .map(|line| line.trim().to_owned())
        .find(|line| line.starts_with("http://"))
        .expect("tok login printed the authorization URL");
    let redirect = query_param(&url, "redirect_uri").expect("a redirect_uri");
    let redirect = url::Url::parse(&redirect).expect("redirect URL");
    let origin = redirect.origin().ascii_serialization();

    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-login");
    std::fs::create_dir_all(&shots).unwrap();
    let screenshot = shots.join(format!("login-{choice}.png"));
    let _ = std::fs::remove_file(&screenshot);
    let mut driver = Command::new("node")
        .arg(oidc_dir().join("browser-login.mjs"))
        .arg(&browser.profile)
        .arg(&screenshot)
        .arg(choice)
        .arg("tester")
        .arg(&origin)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run node");
    let finished = wait_up_to(&mut driver, BROWSER_WAIT);
    let output = driver.wait_with_output().unwrap();
    assert!(
        finished && output.status.success(),
        "the browser driver failed ({:?}): {}\nbrowser log:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        std::fs::read_to_string(daemon.dir().join("chromium.log")).unwrap_or_default()
    );
    let page: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("the driver's JSON line");
    eprintln!(
        "screenshot of tokend's page ({choice}): {}",
        screenshot.display()
    );

    let status = wait_bounded(&mut login);
    let mut text = Vec::new();
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(2)) {
        text.push(line);
    }
    drop(browser);
    (
        status.code().unwrap_or(-1),
        text.join("\n"),
        Shown { page, screenshot },
    )
}

fn stderr_lines(child: &mut Child) -> mpsc::Receiver<String> {
    use std::io::BufRead;
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    rx
}

/// Waits for `child` up to `limit`; kills it when the limit passes (false then).
fn wait_up_to(child: &mut Child, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    false
}

fn daemon(server: &OidcServer) -> Daemon {
    Daemon::start(&format!(
        r#"
[providers.lab]
kind = "oauth2"
grant = "authorization_code"
issuer = "{}"
client_id = "{}"
scopes = ["openid", "offline_access", "api.read"]
"#,
        server.issuer(),
        CLI.id
    ))
}

/// The page rendered as a person sees it: a titled card that fits a phone's width, with a
/// readable heading in the outcome's colour, and a screenshot of it.
fn assert_renders_well(shown: &Shown, title: &str, colour: &str) {
    let page = &shown.page;
    assert_eq!(page["title"], format!("tokend: {title}"), "{page}");
    assert!(
        page["heading"]
            .as_str()
            .unwrap_or_default()
            .ends_with(title),
        "{page}"
    );
    assert_eq!(page["lang"], "en", "{page}");
    assert_eq!(page["viewport_meta"], true, "{page}");
    assert_eq!(
        page["fits_width"], true,
        "the page is wider than a phone: {page}"
    );
    assert_eq!(page["card_visible"], true, "{page}");
    assert!(
        page["card_left_px"].as_f64().unwrap_or(0.0) >= 8.0,
        "{page}"
    );
    assert!(page["heading_px"].as_f64().unwrap_or(0.0) >= 20.0, "{page}");
    assert_eq!(page["heading_color"], colour, "{page}");
    let png = std::fs::read(&shown.screenshot).expect("the screenshot");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 2000,
        "not a PNG image"
    );
}

#[test]
fn a_login_in_a_real_browser_ends_on_the_page_that_says_it_worked() {
    if !browser_available() {
        return;
    }
    let server = OidcServer::start(60);
    let daemon = daemon(&server);
    let (exit, text, shown) = login_in_the_browser(&daemon, "grant");
    assert_eq!(exit, 0, "{text}");
    assert!(text.contains("logged in to lab"), "{text}");
    assert_renders_well(&shown, "Logged in", "rgb(26, 127, 55)");
    let body = shown.page["text"].as_str().unwrap_or_default();
    assert!(body.contains("tokend is logged in to lab."), "{body}");
    assert!(body.contains("You can close this tab"), "{body}");
    let token = daemon.tok(&["get", "lab"]);
    assert_eq!(code(&token), 0, "{}", stderr(&token));
    assert!(!stdout(&token).trim().is_empty());
}

#[test]
fn a_cancelled_login_ends_on_a_page_that_says_what_happened_and_what_next() {
    if !browser_available() {
        return;
    }
    let server = OidcServer::start(60);
    let daemon = daemon(&server);
    let (exit, text, shown) = login_in_the_browser(&daemon, "cancel");
    assert_eq!(exit, 6, "{text}");
    assert!(text.contains("access_denied"), "{text}");
    assert_renders_well(&shown, "Login failed", "rgb(207, 34, 46)");
    let body = shown.page["text"].as_str().unwrap_or_default();
    assert!(
        body.contains("tokend did not log in to lab")
            && body.contains("access_denied")
            && body.contains("End-User aborted interaction"),
        "{body}"
    );
    assert!(
        body.contains("Run `tok login lab` to try again") && body.contains("close this tab"),
        "{body}"
    );
    assert_eq!(code(&daemon.tok(&["get", "lab"])), 6);
}
