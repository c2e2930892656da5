//! The auth proxy (`proxy = { listen, upstream }`) through the real `tokend`, with curl and
//! Python as the callers and a loopback API (`tokend_e2e::http_upstream`) that records what
//! reaches it: both listener kinds, the header swap, streaming in constant memory, the retry
//! after a 401, no open proxy, other users refused, status and metrics, reload.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tokend_e2e::http_upstream::HttpUpstream;
use tokend_e2e::{Daemon, code, stderr, stdout};

/// A provider whose token comes from the upstream's `/token` (`tok-1`, `tok-2`, …).
fn provider(name: &str, upstream: &HttpUpstream, extra: &str) -> String {
    format!(
        "[providers.{name}]\nkind = \"http\"\nurl = \"{}/token\"\ntoken = \"/token\"\n\
         expires = \"/expires_in\"\n{extra}\n",
        upstream.url()
    )
}

fn proxy_url(daemon: &Daemon, name: &str) -> String {
    let out = daemon.tok(&["proxy-url", name]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    stdout(&out).trim().to_owned()
}

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "60"])
        .args(args)
        .output()
        .expect("run curl");
    assert_eq!(code(&out), 0, "curl {args:?}: {}", stderr(&out));
    stdout(&out)
}

/// Sends `request` as is to `address` and returns the whole answer (the request asks the
/// proxy to close the connection).
fn raw(address: &str, request: &str) -> String {
    let mut stream = TcpStream::connect(address).expect("connect to the proxy");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// `127.0.0.1:PORT` and `CAPABILITY` of `http://127.0.0.1:PORT/CAPABILITY`.
fn split_url(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (address, capability) = rest.split_once('/').expect("a capability path");
    (address.to_owned(), capability.to_owned())
}

fn vm_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn curl_and_python_reach_the_upstream_with_the_providers_header_through_both_listeners() {
    let upstream = HttpUpstream::start(1);
    let sockets = tokend_e2e::private_dir();
    let socket = sockets.path().join("proxies/local.sock");
    let config = format!(
        "{}{}",
        provider(
            "api",
            &upstream,
            &format!(
                "proxy = {{ listen = \"127.0.0.1:0\", upstream = \"{}/base/\" }}",
                upstream.url()
            ),
        ),
        provider(
            "local",
            &upstream,
            &format!(
                "header = \"X-Api-Key\"\nproxy = {{ listen = \"unix:{}\", upstream = \"{}\" }}",
                socket.display(),
                upstream.url()
            ),
        )
    );
    let daemon = Daemon::start(&config);
    let url = proxy_url(&daemon, "api");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    // curl over TCP: the caller's Authorization is replaced, everything else passes.
    let answer = curl(&[
        "-i",
        "-H",
        "Authorization: Bearer caller-junk",
        "-H",
        "X-Custom: 1",
        "-H",
        "Connection: keep-alive, x-hop",
        "-H",
        "X-Hop: dropped",
        &format!("{url}/items/created?q=1&r=%2F"),
    ]);
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("x-upstream: yes"),
        "{answer}"
    );
    let seen = upstream.seen_under("/base");
    assert_eq!(seen.len(), 1, "{seen:?}");
    let request = &seen[0];
    assert_eq!(request.method, "GET");
    assert_eq!(request.path, "/base/items/created");
    assert_eq!(request.query.as_deref(), Some("q=1&r=%2F"));
    let token = request.header("authorization").expect("a token").to_owned();
    assert!(token.starts_with("Bearer tok-"), "{token}");
    assert_eq!(request.header("x-custom"), Some("1"));
    assert_eq!(
        request.header("x-hop"),
        None,
        "named by Connection: hop-by-hop"
    );
    assert_eq!(
        request.header("host"),
        Some(upstream.url().trim_start_matches("http://"))
    );
    assert!(
        answer.contains(&token),
        "the echo shows the provider's token: {answer}"
    );

    // Python's urllib over TCP.
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, urllib.request\n\
             r = urllib.request.urlopen(sys.argv[1] + '/py?from=urllib', timeout=30)\n\
             print(r.status, r.read().decode())",
            &url,
        ])
        .output()
        .expect("run python3");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).starts_with("200 "), "{}", stdout(&out));
    assert!(stdout(&out).contains(&token), "{}", stdout(&out));

    // curl over the Unix socket: the provider's header is X-Api-Key; the caller's
    // Authorization does not go through either.
    let unix_url = proxy_url(&daemon, "local");
    assert!(unix_url.starts_with("http+unix://%2F"), "{unix_url}");
    let answer = curl(&[
        "--unix-socket",
        &socket.display().to_string(),
        "-H",
        "Authorization: Bearer caller-junk",
        "-d",
        "body=1",
        "http://localhost/via/unix",
    ]);
    assert!(answer.contains("\"method\":\"POST\""), "{answer}");
    let seen = upstream.seen_under("/via/unix");
    assert_eq!(seen.len(), 1);
    assert!(
        seen[0]
            .header("x-api-key")
            .is_some_and(|key| key.starts_with("tok-"))
    );
    assert_eq!(seen[0].header("authorization"), None);
    assert_eq!(seen[0].body_len, 6);

    // Python's http.client over the Unix socket.
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, socket, http.client\n\
             class Unix(http.client.HTTPConnection):\n\
             \x20   def connect(self):\n\
             \x20       self.sock = socket.socket(socket.AF_UNIX)\n\
             \x20       self.sock.connect(sys.argv[1])\n\
             c = Unix('localhost', timeout=30)\n\
             c.request('PUT', '/py/unix', body=b'abc')\n\
             r = c.getresponse()\n\
             print(r.status, r.read().decode())",
            &socket.display().to_string(),
        ])
        .output()
        .expect("run python3");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).starts_with("200 "), "{}", stdout(&out));
    assert_eq!(upstream.seen_under("/py/unix")[0].method, "PUT");

    // tok status and tok metrics list the proxies.
    let status = stdout(&daemon.tok(&["status"]));
    assert!(
        status.contains("PROXY") && status.contains("UPSTREAM"),
        "{status}"
    );
    let row = status
        .lines()
        .find(|line| line.starts_with("api ") && line.contains("127.0.0.1:"))
        .unwrap_or_else(|| panic!("{status}"));
    assert!(row.contains("/base"), "{row}");
    assert!(
        status.contains(&format!("unix:{}", socket.display())),
        "{status}"
    );
    assert!(
        !status.contains(url.rsplit('/').next().unwrap()),
        "no capability in status"
    );
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&daemon.tok(&["status", "--json"]))).unwrap();
    let api = json["proxies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["provider"] == "api")
        .unwrap();
    assert_eq!(api["requests"], 2);
    assert_eq!(api["last_status"], 200);
    let metrics = stdout(&daemon.tok(&["metrics"]));
    assert!(
        metrics.contains("tokend_proxy_requests_total{provider=\"api\",code=\"2xx\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tokend_proxy_upstream_latency_seconds_count{provider=\"local\"} 2"),
        "{metrics}"
    );
    daemon.assert_no_secret_logged();
}

#[test]
fn it_is_not_an_open_proxy() {
    let upstream = HttpUpstream::start(1);
    let config = provider(
        "api",
        &upstream,
        &format!(
            "proxy = {{ listen = \"127.0.0.1:0\", upstream = \"{}/base\" }}",
            upstream.url()
        ),
    );
    let daemon = Daemon::start(&config);
    let (address, capability) = split_url(&proxy_url(&daemon, "api"));
    let port = address.rsplit(':').next().unwrap().to_owned();
    let ask = |target: &str, host: &str| {
        raw(
            &address,
            &format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        )
    };

    let absolute = ask("http://evil.example/x", "evil.example");
    assert!(absolute.starts_with("HTTP/1.1 400"), "{absolute}");
    assert!(absolute.contains("not an open proxy") || absolute.contains("absolute-form"));
    let connect = raw(
        &address,
        "CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n",
    );
    assert!(connect.starts_with("HTTP/1.1 405"), "{connect}");
    let rebinding = ask(&format!("/{capability}/x"), &format!("evil.example:{port}"));
    assert!(rebinding.starts_with("HTTP/1.1 421"), "{rebinding}");
    let no_capability = ask("/x", &address);
    assert!(no_capability.starts_with("HTTP/1.1 403"), "{no_capability}");
    assert!(
        no_capability.contains("tok proxy-url api"),
        "{no_capability}"
    );
    let wrong = ask("/0123456789abcdef0123456789abcdef/x", &address);
    assert!(wrong.starts_with("HTTP/1.1 403"), "{wrong}");
    assert!(
        upstream.seen_under("/base").is_empty(),
        "nothing refused got through"
    );

    // A path that looks like another host stays a path on the one origin.
    let sneaky = ask(
        &format!("/{capability}//evil.example/x"),
        &format!("localhost:{port}"),
    );
    assert!(sneaky.starts_with("HTTP/1.1 200"), "{sneaky}");
    let seen = upstream.seen_under("/base");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/base//evil.example/x");

    // Redirects go back to the caller; the proxy follows none. (A reload that changes only
    // the upstream keeps the listener, its port and its capability.)
    let config = provider(
        "api",
        &upstream,
        &format!(
            "proxy = {{ listen = \"127.0.0.1:0\", upstream = \"{}\" }}",
            upstream.url()
        ),
    );
    std::fs::write(daemon.dir().join("config.toml"), config).unwrap();
    assert_eq!(code(&daemon.tok(&["reload"])), 0);
    let redirect = ask(&format!("/{capability}/redirect"), &address);
    assert!(redirect.starts_with("HTTP/1.1 302"), "{redirect}");
    assert!(redirect.contains("http://evil.example/"), "{redirect}");
    assert_eq!(upstream.seen_under("/redirect").len(), 1);
    assert_eq!(
        upstream.seen().iter().filter(|s| s.path == "/").count(),
        0,
        "the redirect was not followed"
    );
}

#[test]
fn a_rejected_token_is_replaced_and_the_request_sent_once_more() {
    let upstream = HttpUpstream::start(1);
    let config = provider(
        "api",
        &upstream,
        &format!(
            "proxy = {{ listen = \"127.0.0.1:0\", upstream = \"{}\" }}",
            upstream.url()
        ),
    );
    let daemon = Daemon::start(&config);
    let url = proxy_url(&daemon, "api");
    let answer = curl(&["-i", "-d", "small body", &format!("{url}/strict/a")]);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("ok"), "{answer}");
    let seen = upstream.seen_under("/strict");
    assert_eq!(seen.len(), 2, "the 401, then the retry");
    assert_ne!(
        seen[0].header("authorization"),
        seen[1].header("authorization")
    );
    assert_eq!(seen[1].body_len, 10, "the body was sent again");
    assert_eq!(upstream.tokens_issued(), 2);
    let metrics = stdout(&daemon.tok(&["metrics"]));
    assert!(
        metrics.contains("tokend_proxy_retries_total{provider=\"api\"} 1"),
        "{metrics}"
    );

    // A streamed body (unknown length) cannot be replayed: the 401 goes to the caller.
    let fresh = HttpUpstream::start(1);
    let config = provider(
        "api",
        &fresh,
        &format!(
            "proxy = {{ listen = \"127.0.0.1:0\", upstream = \"{}\" }}",
            fresh.url()
        ),
    );
    let daemon = Daemon::start(&config);
    let url = proxy_url(&daemon, "api");
    let out = Command::new("sh")
        .args([
            "-c",
            "head -c 100000 /dev/zero | curl -sS -i --max-time 60 -T - \"$1\"",
            "sh",
            &format!("{url}/strict/streamed"),
        ])
        .output()
        .unwrap();
    // curl sends `Expect: 100-continue` with an upload; the proxy answers it itself.
    let answer = stdout(&out).replace("HTTP/1.1 100 Continue\r\n\r\n", "");
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    let seen = fresh.seen_under("/strict");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body_len, 100_000);
    // With retry_on = [], not even a small request is retried.
    let config = provider(
        "api",
        &fresh,
        &format!(
            "proxy = {{ listen = \"127.0.0.1:0\", upstream = \"{}\", retry_on = [] }}",
            fresh.url()
        ),
    );
    std::fs::write(daemon.dir().join("config.toml"), config).unwrap();
    assert_eq!(code(&daemon.tok(&["reload"])), 0);
    let answer = curl(&["-i", &format!("{}/strict/again", proxy_url(&daemon, "api"))]);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert_eq!(fresh.seen_under("/strict").len(), 2);
}

#[test]
fn large_bodies_stream_both_ways_in_constant_memory() {
    const SIZE: u64 = 192 * 1024 * 1024;
    let upstream = HttpUpstream::start(1);
    let config = provider(
        "api",
        &upstream,
        &format!(
            "proxy = {{ listen = \"127.0.0.1:0\", upstream = \"{}\" }}",
            upstream.url()
        ),
    );
    let daemon = Daemon::start(&config);
    let url = proxy_url(&daemon, "api");
    let before = vm_kib(daemon.pid(), "VmRSS:");
    let downloaded = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{size_download}",
        &format!("{url}/download/{SIZE}"),
    ]);
    assert_eq!(downloaded, SIZE.to_string());
    let out = Command::new("sh")
        .args([
            "-c",
            "head -c \"$2\" /dev/zero | curl -sS --max-time 120 -T - \"$1\"",
            "sh",
            &format!("{url}/upload"),
            &SIZE.to_string(),
        ])
        .output()
        .unwrap();
    assert_eq!(stdout(&out), SIZE.to_string(), "{}", stderr(&out));
    let peak = vm_kib(daemon.pid(), "VmHWM:");
    eprintln!(
        "daemon RSS before {before} KiB, peak after 2 × {} MiB streamed: {peak} KiB",
        SIZE >> 20
    );
    assert!(
        peak < before + 48 * 1024,
        "the daemon held the body: peak {peak} KiB, {before} KiB before"
    );
}

#[test]
fn reload_keeps_the_port_and_removing_the_proxy_closes_it() {
    let upstream = HttpUpstream::start(1);
    let sockets = tokend_e2e::private_dir();
    let socket = sockets.path().join("p/api.sock");
    let with = |base: &str, unix: bool| {
        let mut text = provider(
            "api",
            &upstream,
            &format!(
                "proxy = {{ listen = \"127.0.0.1:0\", upstream = \"{}{base}\" }}",
                upstream.url()
            ),
        );
        let proxy = if unix {
            format!(
                "proxy = {{ listen = \"unix:{}\", upstream = \"{}\" }}",
                socket.display(),
                upstream.url()
            )
        } else {
            String::new()
        };
        text.push_str(&provider("other", &upstream, &proxy));
        text
    };
    let daemon = Daemon::start(&with("/one", true));
    let url = proxy_url(&daemon, "api");
    curl(&[&format!("{url}/x")]);
    assert_eq!(upstream.seen_under("/one/x").len(), 1);
    assert!(Path::new(&socket).exists());

    std::fs::write(daemon.dir().join("config.toml"), with("/two", false)).unwrap();
    let out = daemon.tok(&["reload"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(proxy_url(&daemon, "api"), url, "same port, same capability");
    curl(&[&format!("{url}/x")]);
    assert_eq!(upstream.seen_under("/two/x").len(), 1);
    assert!(
        !Path::new(&socket).exists(),
        "the removed proxy's socket is gone"
    );
    let out = daemon.tok(&["proxy-url", "other"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("has no auth proxy"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn another_user_cannot_use_the_proxies() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root to run a client as another user (nobody)");
        return;
    }
    use std::os::unix::fs::PermissionsExt as _;
    let upstream = HttpUpstream::start(1);
    let sockets = tokend_e2e::private_dir();
    let socket = sockets.path().join("p/api.sock");
    let config = format!(
        "{}{}",
        provider(
            "api",
            &upstream,
            &format!(
                "proxy = {{ listen = \"127.0.0.1:0\", upstream = \"{}\" }}",
                upstream.url()
            ),
        ),
        provider(
            "unix",
            &upstream,
            &format!(
                "proxy = {{ listen = \"unix:{}\", upstream = \"{}\" }}",
                socket.display(),
                upstream.url()
            ),
        )
    );
    let daemon = Daemon::start(&config);
    let (address, _) = split_url(&proxy_url(&daemon, "api"));
    let as_nobody = |args: &[&str]| {
        Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--",
                "curl",
            ])
            .args([
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "10",
            ])
            .args(args)
            .output()
            .expect("run curl as nobody")
    };
    // The port is open to every local user: without the capability nobody gets a 403.
    let out = as_nobody(&[&format!("http://{address}/items")]);
    assert_eq!(stdout(&out), "403", "{}", stderr(&out));
    // The capability comes only from the daemon's private socket.
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(tokend_e2e::bin("tok"))
        .arg("--socket")
        .arg(daemon.socket())
        .args(["proxy-url", "api"])
        .env("TOKEND_NO_AUTOSTART", "1")
        .output()
        .unwrap();
    assert_ne!(code(&out), 0);
    assert!(out.stdout.is_empty());
    // A Unix-socket proxy reachable by mistake still checks the peer's uid.
    std::fs::set_permissions(sockets.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        socket.parent().unwrap(),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = as_nobody(&[
        "--unix-socket",
        &socket.display().to_string(),
        "http://localhost/items",
    ]);
    assert_ne!(stdout(&out), "200", "{}", stderr(&out));
    assert!(upstream.seen_under("/items").is_empty());
    let log = daemon.log();
    assert!(log.contains("auth proxy: refused a connection") && log.contains("peer uid 65534"));
}
