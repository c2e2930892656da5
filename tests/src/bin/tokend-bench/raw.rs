//! The raw ping-pong server (`tokend-bench serve-raw SOCKET RESPONSE_LEN`): the floor every
//! cache-hit row is compared with.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use rustix::process::Signal;
use tokend_protocol::MAX_FRAME_LEN;

use crate::RAW_SERVER_LIFETIME;

// ---------------------------------------------------------------------------------------------
// The raw ping-pong server (subcommand `serve-raw`)

/// A tokio current-thread Unix-socket server (tokend's runtime flavour): one task per connection,
/// reads a u32-BE length-prefixed request, answers a prebuilt frame of `response_len` payload
/// bytes. Prints READY once it accepts; exits on SIGTERM, when its parent dies, or after
/// [`RAW_SERVER_LIFETIME`].
pub(crate) fn serve_raw(socket: &Path, response_len: usize) -> ExitCode {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    if response_len > MAX_FRAME_LEN {
        eprintln!("serve-raw: RESPONSE_LEN above {MAX_FRAME_LEN}");
        return ExitCode::from(2);
    }
    // Best effort: do not outlive a bench that was killed without running its cleanup.
    let _ = rustix::process::set_parent_process_death_signal(Some(Signal::TERM));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio current-thread runtime");
    let mut response = Vec::with_capacity(4 + response_len);
    response.extend_from_slice(
        &u32::try_from(response_len)
            .expect("length checked above")
            .to_be_bytes(),
    );
    response.resize(4 + response_len, b'x');
    let response: Arc<[u8]> = response.into();

    runtime.block_on(async move {
        let listener = match tokio::net::UnixListener::bind(socket) {
            Ok(listener) => listener,
            Err(err) => {
                eprintln!("serve-raw: bind {}: {err}", socket.display());
                return ExitCode::FAILURE;
            }
        };
        {
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{}", tokend_protocol::endpoint::READY_LINE);
            let _ = stdout.flush();
        }
        let serve = async {
            loop {
                match listener.accept().await {
                    Ok((mut stream, _)) => {
                        let response = Arc::clone(&response);
                        tokio::spawn(async move {
                            let mut header = [0u8; 4];
                            let mut payload = Vec::with_capacity(256);
                            loop {
                                if stream.read_exact(&mut header).await.is_err() {
                                    return;
                                }
                                let len = u32::from_be_bytes(header) as usize;
                                if len > MAX_FRAME_LEN {
                                    return;
                                }
                                payload.resize(len, 0);
                                if stream.read_exact(&mut payload).await.is_err()
                                    || stream.write_all(&response).await.is_err()
                                {
                                    return;
                                }
                            }
                        });
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
        };
        let _ = tokio::time::timeout(RAW_SERVER_LIFETIME, serve).await;
        ExitCode::SUCCESS
    })
}
