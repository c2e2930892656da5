//! Hostile and broken peers lose their own connection and nothing else. These tests speak raw
//! bytes, so the framing contract is pinned independently of our own encoder. They run on
//! Windows too (under Wine in CI), over the named pipe.

use std::io::{Read, Write};
use std::time::Duration;

use interprocess::local_socket::Stream;
use interprocess::local_socket::traits::Listener as _;
use tokend_client::{Client, Endpoint, Error};
use tokend_e2e::{Daemon, private_dir, raw_connect, raw_listen, test_socket};
use tokend_protocol::handshake::{Hello, Verdict, Welcome};
use tokend_protocol::{Request, Response, codec, frame};

const CONFIG: &str = r#"
[providers.pat]
kind = "static"
secret = "${env:E2E_HOSTILE_PAT}"
"#;

fn daemon() -> Daemon {
    Daemon::start_with_env(CONFIG, &[("E2E_HOSTILE_PAT", "pat-hostile")])
}

fn raw(daemon: &Daemon) -> Stream {
    raw_connect(daemon.socket())
}

fn handshaken(daemon: &Daemon) -> Stream {
    let mut stream = raw(daemon);
    frame::write_frame(&mut stream, &Hello::current().encode()).unwrap();
    let welcome = frame::read_frame(&mut stream, 256).unwrap().unwrap();
    assert_eq!(
        Welcome::decode(&welcome).unwrap().verdict,
        Verdict::Accepted
    );
    stream
}

/// The daemon closed this connection: a read returns end of file (or a reset; a broken pipe
/// on Windows).
fn assert_closed(stream: &mut Stream) {
    let mut rest = Vec::new();
    let closed = match stream.read_to_end(&mut rest) {
        Ok(_) => true,
        Err(err) => matches!(
            err.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        ),
    };
    assert!(closed, "the daemon kept a hostile connection open");
}

fn still_serves(daemon: &Daemon) {
    let client = daemon.client();
    assert_eq!(client.get("pat").unwrap().value.expose(), "pat-hostile");
}

#[test]
fn a_raw_hand_built_request_gets_a_raw_answer() {
    let daemon = daemon();
    let mut stream = raw(&daemon);
    // The hello written byte by byte: length 15, "TOKD", the protocol version (big-endian u32),
    // version "0.0.0" (u16 length, bytes).
    let version = tokend_protocol::PROTOCOL_VERSION.to_be_bytes();
    let mut hello = b"\x00\x00\x00\x0fTOKD".to_vec();
    hello.extend_from_slice(&version);
    hello.extend_from_slice(b"\x00\x050.0.0");
    stream.write_all(&hello).unwrap();
    let welcome = frame::read_frame(&mut stream, 256).unwrap().unwrap();
    // Magic, the protocol version, verdict 0 (accepted).
    let mut expected = b"TOKD".to_vec();
    expected.extend_from_slice(&version);
    expected.push(0);
    assert_eq!(&welcome[..9], &expected[..]);
    // Request::Ping is variant 2: one byte.
    stream.write_all(b"\x00\x00\x00\x01\x02").unwrap();
    let answer = frame::read_frame(&mut stream, frame::MAX_FRAME_LEN)
        .unwrap()
        .unwrap();
    assert!(matches!(
        codec::decode::<Response>(&answer).unwrap(),
        Response::Pong(_)
    ));
}

#[test]
fn oversized_length_prefix_closes_only_that_connection() {
    let daemon = daemon();
    let mut before_handshake = raw(&daemon);
    before_handshake.write_all(b"\xff\xff\xff\xff").unwrap();
    assert_closed(&mut before_handshake);

    let mut after_handshake = handshaken(&daemon);
    after_handshake.write_all(b"\x7f\x00\x00\x00").unwrap();
    // The daemon says why before closing.
    let reply = frame::read_frame(&mut after_handshake, frame::MAX_FRAME_LEN)
        .unwrap()
        .unwrap();
    match codec::decode::<Response>(&reply).unwrap() {
        Response::Error(err) => assert!(err.message.contains("exceeds"), "{}", err.message),
        other => panic!("expected an error, got {other:?}"),
    }
    assert_closed(&mut after_handshake);
    still_serves(&daemon);
}

#[test]
fn truncated_frames_and_random_bytes_close_only_that_connection() {
    let daemon = daemon();
    // A frame cut short by the end of the stream. Unix only: a named pipe cannot be closed
    // for writing alone, and closing it whole leaves nothing to read the answer from.
    #[cfg(unix)]
    {
        let mut truncated = std::os::unix::net::UnixStream::connect(daemon.socket()).unwrap();
        truncated
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        frame::write_frame(&mut truncated, &Hello::current().encode()).unwrap();
        frame::read_frame(&mut truncated, 256).unwrap().unwrap();
        truncated.write_all(b"\x00\x00\x00\x10abc").unwrap();
        truncated.shutdown(std::net::Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        let closed = match truncated.read_to_end(&mut rest) {
            Ok(_) => true,
            Err(err) => err.kind() == std::io::ErrorKind::ConnectionReset,
        };
        assert!(closed, "the daemon kept a truncated connection open");
    }

    let mut garbage = raw(&daemon);
    garbage.write_all(b"\x00\x00\x00\x08GET / HT").unwrap();
    assert_closed(&mut garbage);

    let mut undecodable = handshaken(&daemon);
    undecodable
        .write_all(b"\x00\x00\x00\x03\xff\xff\xff")
        .unwrap();
    let reply = frame::read_frame(&mut undecodable, frame::MAX_FRAME_LEN)
        .unwrap()
        .unwrap();
    assert!(matches!(
        codec::decode::<Response>(&reply).unwrap(),
        Response::Error(_)
    ));
    assert_closed(&mut undecodable);
    still_serves(&daemon);
}

#[test]
fn silent_connections_do_not_block_others() {
    let daemon = daemon();
    let silent: Vec<Stream> = (0..20).map(|_| raw(&daemon)).collect();
    let idle = handshaken(&daemon);
    still_serves(&daemon);
    // The silent ones are dropped after the handshake timeout (5 s).
    let mut first = silent.into_iter().next().unwrap();
    assert_closed(&mut first);
    still_serves(&daemon);
    drop(idle);
}

#[test]
fn a_slow_reader_of_a_large_answer_gets_it_whole_and_holds_up_no_one() {
    // A status answer several times a socket buffer (208 KiB by default on Linux): the daemon's
    // write has to wait for this reader, which takes its time.
    let mut config = String::from(CONFIG);
    for index in 0..10_000 {
        config.push_str(&format!(
            "[providers.a-provider-with-a-rather-long-name-{index:05}]\n\
             kind = \"static\"\nsecret = \"${{env:E2E_HOSTILE_PAT}}\"\n"
        ));
    }
    let daemon = Daemon::start_with_env(&config, &[("E2E_HOSTILE_PAT", "pat-hostile")]);
    let mut slow = handshaken(&daemon);
    let request = codec::encode(&Request::Status).unwrap();
    frame::write_frame(&mut slow, &request).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // Meanwhile others are served.
    still_serves(&daemon);
    let mut answer = tokend_protocol::SecretBuf::default();
    assert!(frame::read_message_into(&mut slow, frame::MAX_MESSAGE_LEN, &mut answer).unwrap());
    assert!(answer.len() > 512 * 1024, "{} bytes", answer.len());
    match codec::decode_message::<Response>(&answer).unwrap() {
        Response::Status(status) => {
            assert_eq!(status.providers.len(), 10_001);
            assert_eq!(
                status.providers[9999].name,
                "a-provider-with-a-rather-long-name-09999"
            );
        }
        other => panic!("expected a status, got {other:?}"),
    }
    // The connection goes on serving after the long write.
    let request = codec::encode(&Request::Ping).unwrap();
    frame::write_frame(&mut slow, &request).unwrap();
    let answer = frame::read_frame(&mut slow, frame::MAX_FRAME_LEN)
        .unwrap()
        .unwrap();
    assert!(matches!(
        codec::decode::<Response>(&answer).unwrap(),
        Response::Pong(_)
    ));
}

#[test]
fn an_incompatible_client_is_told_so_in_the_handshake() {
    let daemon = daemon();
    let mut stream = raw(&daemon);
    let future = Hello {
        protocol: 999,
        client_version: "9.9.9".into(),
    };
    frame::write_frame(&mut stream, &future.encode()).unwrap();
    let welcome = Welcome::decode(&frame::read_frame(&mut stream, 256).unwrap().unwrap()).unwrap();
    assert_eq!(welcome.verdict, Verdict::Incompatible);
    assert_eq!(welcome.pid, daemon.pid());
    assert_closed(&mut stream);
    assert!(daemon.log().contains("another protocol version"));
    let _ = codec::encode(&Request::Ping).unwrap();
}

#[test]
fn a_client_facing_an_incompatible_daemon_gets_a_restart_hint() {
    // A fake daemon of a future version: it answers the hello with its own protocol and closes.
    let dir = private_dir();
    let path = test_socket(dir.path());
    let listener = raw_listen(&path);
    let fake = std::thread::spawn(move || {
        let mut stream = listener.accept().unwrap();
        let _ = frame::read_frame(&mut stream, 256).unwrap();
        let welcome = Welcome {
            protocol: 2,
            verdict: Verdict::Incompatible,
            pid: 4242,
            daemon_version: "9.0.0".into(),
        };
        frame::write_frame(&mut stream, &welcome.encode()).unwrap();
    });
    let client = Client::builder()
        .endpoint(Endpoint::from_path(&path))
        .autostart(false)
        .build();
    let err = client.ping().unwrap_err();
    fake.join().unwrap();
    assert!(
        matches!(
            err,
            Error::Incompatible {
                daemon_protocol: 2,
                pid: 4242,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.exit_code(), 3);
    let message = err.to_string();
    assert!(
        message.contains("incompatible daemon") && message.contains("kill 4242"),
        "{message}"
    );
}

#[test]
fn a_flood_of_idle_connections_cannot_keep_callers_out() {
    let daemon = Daemon::start_with_args(
        CONFIG,
        &[("E2E_HOSTILE_PAT", "pat-hostile")],
        &["--max-connections", "16"],
    );
    // Twice the cap: half never say hello, half complete the handshake and then idle.
    let mut flood: Vec<Stream> = (0..16).map(|_| raw(&daemon)).collect();
    flood.extend((0..16).map(|_| handshaken(&daemon)));
    for _ in 0..5 {
        let started = std::time::Instant::now();
        still_serves(&daemon);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "a caller waited {:?} behind the flood",
            started.elapsed()
        );
    }
    // Connections still in their handshake made room first.
    let mut silent = flood.remove(0);
    assert_closed(&mut silent);
    // The condition is logged once per interval, not once per connection.
    let log = daemon.log();
    let lines = log
        .lines()
        .filter(|line| line.contains("connection cap of 16 is reached"))
        .count();
    assert_eq!(lines, 1, "{log}");
}

#[cfg(unix)]
#[test]
fn a_cap_above_the_open_file_limit_is_lowered_to_what_fits() {
    // 300 descriptors, 256 of them kept for everything but clients: room for 44 connections,
    // however many were asked for. Else idle connections could use every descriptor up before
    // the cap makes room, and accept would fail for everyone.
    let daemon = Daemon::start_wrapped(
        CONFIG,
        &[("E2E_HOSTILE_PAT", "pat-hostile")],
        &["--max-connections", "1000"],
        &["prlimit", "--nofile=300:300", "--"],
    );
    let log = daemon.log();
    assert!(
        log.contains("--max-connections 1000: serving at most 44 connections"),
        "{log}"
    );
    let _flood: Vec<Stream> = (0..60).map(|_| handshaken(&daemon)).collect();
    for _ in 0..3 {
        still_serves(&daemon);
    }
}

/// What the daemon holds, read from outside: open descriptors and resident memory (`/proc`),
/// and the tasks it runs (`tokend_runtime_tasks` in `tok metrics`).
#[cfg(target_os = "linux")]
fn holdings(daemon: &Daemon) -> (usize, u64, u64) {
    let proc_dir = std::path::PathBuf::from(format!("/proc/{}", daemon.pid()));
    let fds = std::fs::read_dir(proc_dir.join("fd")).unwrap().count();
    let status = std::fs::read_to_string(proc_dir.join("status")).unwrap();
    let rss_kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    let metrics = tokend_e2e::stdout(&daemon.tok(&["metrics"]));
    let tasks = metrics
        .lines()
        .find_map(|line| line.strip_prefix("tokend_runtime_tasks "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no tokend_runtime_tasks in:\n{metrics}"));
    (fds, rss_kib, tasks)
}

#[cfg(target_os = "linux")]
#[test]
fn ten_thousand_connect_close_cycles_leave_nothing_behind() {
    let daemon = daemon();
    // Every way a connection can end early: closed before a byte, mid-hello, after the
    // handshake, after a request without reading the answer, after garbage.
    let cycle = |i: usize| match i % 5 {
        0 => drop(raw(&daemon)),
        1 => {
            let mut stream = raw(&daemon);
            let _ = stream.write_all(b"\x00\x00\x00\x0fTOK");
        }
        2 => drop(handshaken(&daemon)),
        3 => {
            let mut stream = handshaken(&daemon);
            let request = codec::encode(&Request::Ping).unwrap();
            let _ = frame::write_frame(&mut stream, &request);
        }
        _ => {
            let mut stream = handshaken(&daemon);
            let _ = stream.write_all(b"\x00\x00\x00\x03\xff\xfe\xfd");
        }
    };
    // Warm-up: the runtime and the allocator reach their working size.
    (0..1_000).for_each(cycle);
    let settled = |daemon: &Daemon, before: (usize, u64, u64)| {
        let mut now = holdings(daemon);
        tokend_e2e::eventually(Duration::from_secs(10), || {
            now = holdings(daemon);
            now.0 <= before.0 && now.2 <= before.2
        });
        now
    };
    let before = settled(&daemon, holdings(&daemon));
    (0..10_000).for_each(cycle);
    let after = settled(&daemon, before);
    assert!(
        after.0 <= before.0,
        "descriptors {} -> {}",
        before.0,
        after.0
    );
    assert!(after.2 <= before.2, "tasks {} -> {}", before.2, after.2);
    // A connection left behind costs about 6 KiB: 10 000 of them would be 60 MiB.
    assert!(
        after.1 <= before.1 + 2048,
        "RSS {} KiB -> {} KiB after 10 000 connections",
        before.1,
        after.1
    );
    still_serves(&daemon);
}
