//! One client connection: peer check, handshake under a timeout, then request/response until the
//! client closes, goes idle, misbehaves, or the daemon shuts down.
//!
//! A misbehaving client (garbage, an oversized length, silence) loses its own connection and
//! nothing else: every read is bounded in size and time.

use std::sync::Arc;
use std::time::Duration;

use interprocess::local_socket::tokio::Stream;
use tokend_protocol::frame::nonblocking::{read_frame, read_frame_into, write_frame};
use tokend_protocol::handshake::{Hello, Verdict, Welcome};
use tokend_protocol::{
    ErrorCode, MAX_FRAME_LEN, MAX_HANDSHAKE_LEN, ProtocolError, Response, SecretBuf, codec,
};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::sync::watch;
use tokio::time::{Instant, timeout};

use super::audit::ConnectionAudit;
use super::dispatch::{Reply, dispatch_payload};
use super::peer::check_peer;
use super::slots::Slot;
use super::socket::{ClientSocket, for_requests};
use super::state::State;

/// Time a new connection has to complete the handshake.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// An open connection with no request for this long is closed (clients reconnect transparently).
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// A client that does not read its response within this time loses the connection.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Read buffer per connection: requests are tens of bytes, so a small buffer takes a whole
/// request in one system call without costing much memory across many connections.
const READ_BUFFER: usize = 512;

/// Serves one connection to completion.
pub(crate) async fn serve(
    stream: Stream,
    state: Arc<State>,
    mut shutdown: watch::Receiver<bool>,
    slot: &Slot,
) {
    let mut peer = match check_peer(&stream) {
        Ok(peer) => peer,
        Err(refusal) => {
            tracing::warn!("refused a connection: {refusal}");
            return;
        }
    };
    if state.audit.enabled() {
        peer.exe();
    }
    let stream = match for_requests(stream) {
        Ok(stream) => stream,
        Err(err) => {
            tracing::warn!(peer_pid = peer.pid, "could not serve a connection: {err}");
            return;
        }
    };
    let mut stream = BufReader::with_capacity(READ_BUFFER, stream);
    let greeting = tokio::select! {
        greeting = timeout(HANDSHAKE_TIMEOUT, handshake(&mut stream)) => greeting,
        () = slot.evicted() => {
            tracing::debug!(peer_pid = peer.pid, "closed in its handshake to make room");
            return;
        }
    };
    match greeting {
        Ok(Ok(true)) => slot.greeted(),
        Ok(Ok(false)) => return,
        Ok(Err(err)) => {
            tracing::debug!(peer_pid = peer.pid, "handshake failed: {err}");
            return;
        }
        Err(_) => {
            tracing::debug!(
                peer_pid = peer.pid,
                "no handshake within {HANDSHAKE_TIMEOUT:?}; closing"
            );
            return;
        }
    }
    let evicted = slot.evicted();
    tokio::pin!(evicted);

    // Both futures are created once and stay registered across requests: re-registering a
    // waker and re-arming a timer on every request costs more than the request itself. The idle
    // timer is only moved when it fires and the connection turns out to have been busy.
    let stop = shutdown.wait_for(|stop| *stop);
    tokio::pin!(stop);
    let mut last_request = Instant::now();
    // Request payloads, reused across requests (wiped when the connection ends).
    let mut payload = SecretBuf::default();
    // This connection's token requests, handed to the audit trail once answered.
    let mut audit = ConnectionAudit::new(&state.audit);
    let idle = tokio::time::sleep_until(last_request + IDLE_TIMEOUT);
    tokio::pin!(idle);
    loop {
        // The read future lives across idle-timer re-arms: dropping it halfway through a frame
        // would lose the bytes it had already taken from the buffer.
        let frame = {
            let read = read_frame_into(&mut stream, MAX_FRAME_LEN, &mut payload);
            tokio::pin!(read);
            loop {
                // The read first: a request that has arrived is answered without polling
                // the rest (a stop lets in-flight requests finish anyway).
                tokio::select! {
                    biased;
                    read = &mut read => break Some(read),
                    _ = &mut stop => break None,
                    () = &mut evicted => {
                        tracing::debug!(peer_pid = peer.pid, "idle connection closed to make room");
                        break None;
                    }
                    () = &mut idle => {
                        let quiet_since = last_request + IDLE_TIMEOUT;
                        if Instant::now() >= quiet_since {
                            tracing::debug!(peer_pid = peer.pid, "idle connection closed");
                            break None;
                        }
                        idle.as_mut().reset(quiet_since);
                    }
                }
            }
        };
        let Some(frame) = frame else { break };
        last_request = Instant::now();
        slot.set_busy(true, last_request);
        match frame {
            Ok(false) => break,
            Ok(true) => {}
            Err(err) => {
                tracing::debug!(peer_pid = peer.pid, "bad frame: {err}");
                if matches!(err, ProtocolError::FrameTooLarge { .. }) {
                    let reply = Response::error(
                        ErrorCode::BadRequest,
                        format!("{err}; closing the connection"),
                    );
                    let _ = send(&mut stream, &reply.into()).await;
                }
                break;
            }
        }
        let reply = match dispatch_payload(&state, &payload, &mut audit).await {
            Ok(reply) => reply,
            Err(err) => {
                tracing::debug!(peer_pid = peer.pid, "undecodable request: {err}");
                let reply = Response::error(ErrorCode::BadRequest, format!("{err}"));
                let _ = send(&mut stream, &reply.into()).await;
                break;
            }
        };
        if let Err(err) = send(&mut stream, &reply).await {
            tracing::debug!(peer_pid = peer.pid, "could not answer: {err}");
            break;
        }
        slot.set_busy(false, last_request);
        // After the answer, off the caller's wait.
        if audit.due(last_request) {
            state.audit.collect(&mut peer, &mut audit);
        }
    }
    state.audit.collect(&mut peer, &mut audit);
}

/// Reads the client's hello and answers it. `Ok(false)` when the client is incompatible.
async fn handshake(stream: &mut BufReader<ClientSocket>) -> Result<bool, ProtocolError> {
    let payload = read_frame(stream, MAX_HANDSHAKE_LEN)
        .await?
        .ok_or(ProtocolError::Truncated)?;
    let hello = Hello::decode(&payload)?;
    let welcome = Welcome::answer(&hello, std::process::id());
    write_frame(stream.get_mut(), &welcome.encode()).await?;
    if welcome.verdict == Verdict::Incompatible {
        tracing::info!(
            client_protocol = hello.protocol,
            client_version = %hello.client_version,
            "refused a client speaking another protocol version"
        );
        return Ok(false);
    }
    Ok(true)
}

async fn send(stream: &mut BufReader<ClientSocket>, reply: &Reply) -> Result<(), ProtocolError> {
    let encoded;
    let frame: &[u8] = match reply {
        Reply::Cached(cached) => cached.frame(),
        Reply::CachedId(cached) => match cached.id_token() {
            Some(id) => id.frame(),
            None => {
                encoded = codec::encode_frame(&Response::error(
                    ErrorCode::Internal,
                    format!("provider `{}` has no id_token", cached.grant().provider),
                ))?;
                &encoded
            }
        },
        Reply::Message(response) => {
            // Answers that grow with the config or the store may span several frames.
            encoded = match codec::encode_message(response) {
                Ok(frame) => frame,
                Err(err) => {
                    tracing::error!("could not encode a response: {err}");
                    codec::encode_frame(&Response::error(
                        ErrorCode::Internal,
                        format!("response could not be sent: {err}"),
                    ))?
                }
            };
            &encoded
        }
    };
    // One write usually takes the whole answer (a client reads it at once): only what the
    // socket did not take waits, under the write timeout (whose timer costs more than the
    // write itself).
    let stream = stream.get_mut();
    let mut written = 0;
    while written < frame.len() {
        let mut write = std::pin::pin!(stream.write(&frame[written..]));
        match futures_util::FutureExt::now_or_never(write.as_mut()) {
            Some(Ok(0)) => return Err(ProtocolError::Io(std::io::ErrorKind::WriteZero.into())),
            Some(Ok(n)) => written += n,
            Some(Err(err)) => return Err(ProtocolError::Io(err)),
            None => break,
        }
    }
    if written == frame.len() {
        return Ok(());
    }
    timeout(WRITE_TIMEOUT, stream.write_all(&frame[written..]))
        .await
        .map_err(|_| ProtocolError::Io(std::io::ErrorKind::TimedOut.into()))?
        .map_err(ProtocolError::Io)
}
