//! One blocking connection to the daemon: connect, handshake, then request/response round trips.
//!
//! On Windows the connection is a named pipe opened directly: before anything is sent, the
//! pipe's server process must run as this user (a squatter gets nothing), and since a
//! synchronous pipe has no I/O timeouts, a [`Watchdog`] bounds each call instead.

use std::io::{self, BufReader, Write};
use std::time::Duration;

use interprocess::ConnectWaitMode;
#[cfg(not(windows))]
use interprocess::local_socket::traits::Stream as _;
#[cfg(not(windows))]
use interprocess::local_socket::{ConnectOptions, Stream};
use tokend_protocol::frame::{MAX_MESSAGE_LEN, read_frame, read_message_into, write_frame};
use tokend_protocol::handshake::{Hello, Verdict, Welcome};
use tokend_protocol::{
    Endpoint, MAX_HANDSHAKE_LEN, ProtocolError, Request, Response, SecretBuf, codec,
};

use crate::error::Error;
#[cfg(windows)]
use crate::watchdog::Watchdog;

/// The byte stream of a blocking connection.
#[cfg(windows)]
type Stream = interprocess::os::windows::named_pipe::DuplexPipeStream<
    interprocess::os::windows::named_pipe::pipe_mode::Bytes,
>;

/// Read buffer: a whole typical response (about 1 KiB) arrives in one read system call.
const READ_BUFFER: usize = 4096;

/// An open, handshaken connection. Reads go through a buffer (one system call per frame); writes
/// go straight to the stream, one complete frame at a time.
pub(crate) struct Connection {
    stream: BufReader<Stream>,
    /// Response payloads, reused across calls (wiped when the connection is dropped).
    response: SecretBuf,
    /// Whether the daemon's welcome has been read and accepted. The hello goes out on connect,
    /// but the welcome is read together with the first response: the first request rides along
    /// with the hello instead of waiting a round trip for the welcome (the daemon reads frames in
    /// order, so this is safe; an incompatible daemon answers the hello and never reads on).
    welcomed: bool,
    /// The hello frame, sent together with the first request in one write: one system call
    /// and one wake-up of the daemon fewer per short-lived client such as `tok get`.
    hello: Option<Vec<u8>>,
    endpoint: String,
    timeout: Duration,
    /// Bounds each call's pipe I/O (Windows).
    #[cfg(windows)]
    watchdog: Watchdog,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// Nobody listens at the endpoint: the socket file is missing or stale.
fn nobody_listens(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
    )
}

/// Maps a connect failure: nobody listening is [`Error::NotRunning`] (with an empty hint; callers
/// add theirs), anything else [`Error::Connect`].
pub(crate) fn connect_error(endpoint: &str, source: io::Error) -> Error {
    if nobody_listens(&source) {
        Error::NotRunning {
            endpoint: endpoint.to_owned(),
            hint: "",
        }
    } else {
        Error::Connect {
            endpoint: endpoint.to_owned(),
            source,
        }
    }
}

/// Windows: accepts the pipe only if its server process runs as this user (see
/// [`tokend_protocol::peer_user`]); `pid` is the server's, as the OS reports it.
#[cfg(windows)]
pub(crate) fn check_server_user(pid: io::Result<u32>, endpoint: &str) -> Result<(), Error> {
    let refuse = |reason: String| Error::NotOurs {
        endpoint: endpoint.to_owned(),
        reason,
    };
    let pid = pid.map_err(|err| {
        refuse(format!(
            "the OS does not say which process serves the pipe ({err})"
        ))
    })?;
    tokend_protocol::peer_user::check_process("server", pid).map_err(refuse)
}

/// Accepts the daemon's welcome only if it speaks our protocol.
pub(crate) fn check_welcome(welcome: Welcome, endpoint: &str) -> Result<(), Error> {
    match welcome.verdict {
        Verdict::Accepted if welcome.protocol == tokend_protocol::PROTOCOL_VERSION => Ok(()),
        _ => Err(Error::Incompatible {
            endpoint: endpoint.to_owned(),
            daemon_protocol: welcome.protocol,
            client_protocol: tokend_protocol::PROTOCOL_VERSION,
            daemon_version: welcome.daemon_version,
            pid: welcome.pid,
        }),
    }
}

/// The error for a daemon that hung up before answering.
pub(crate) fn closed() -> ProtocolError {
    ProtocolError::Io(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "tokend closed the connection",
    ))
}

impl Connection {
    /// Connects and sends the handshake hello (the welcome is checked with the first response).
    /// A missing or stale endpoint is [`Error::NotRunning`] (with an empty hint; callers add
    /// theirs).
    pub(crate) fn open(endpoint: &Endpoint, timeout: Duration) -> Result<Self, Error> {
        let shown = endpoint.to_string();
        let connect_error = |source| connect_error(&shown, source);
        #[cfg(not(windows))]
        let stream = {
            let name = endpoint.to_name().map_err(connect_error)?;
            let stream = ConnectOptions::new()
                .name(name)
                .wait_mode(ConnectWaitMode::Timeout(timeout))
                .connect_sync()
                .map_err(connect_error)?;
            stream
                .set_recv_timeout(Some(timeout))
                .map_err(connect_error)?;
            stream
                .set_send_timeout(Some(timeout))
                .map_err(connect_error)?;
            stream
        };
        #[cfg(windows)]
        let (stream, watchdog) = {
            use std::os::windows::io::AsHandle as _;
            let stream = Stream::connect_by_path_with_wait_mode(
                shown.as_str(),
                ConnectWaitMode::Timeout(timeout),
            )
            .map_err(connect_error)?;
            check_server_user(stream.server_process_id(), &shown)?;
            let watchdog = Watchdog::start(stream.as_handle()).map_err(connect_error)?;
            (stream, watchdog)
        };
        let mut hello = Vec::new();
        write_frame(&mut hello, &Hello::current().encode()).map_err(|e| Error::Protocol {
            endpoint: shown.clone(),
            source: e,
        })?;
        Ok(Self {
            stream: BufReader::with_capacity(READ_BUFFER, stream),
            response: SecretBuf::default(),
            welcomed: false,
            hello: Some(hello),
            endpoint: shown,
            timeout,
            #[cfg(windows)]
            watchdog,
        })
    }

    fn read_welcome(&mut self) -> Result<(), Error> {
        let payload = read_frame(&mut self.stream, MAX_HANDSHAKE_LEN)
            .map_err(|e| self.fail(e))?
            .ok_or_else(|| self.fail(closed()))?;
        let welcome = Welcome::decode(&payload).map_err(|e| self.fail(e))?;
        check_welcome(welcome, &self.endpoint)?;
        self.welcomed = true;
        Ok(())
    }

    /// Sends one request and reads its response.
    pub(crate) fn call(&mut self, request: &Request) -> Result<Response, Error> {
        #[cfg(windows)]
        {
            self.watchdog.arm(std::time::Instant::now() + self.timeout);
            let result = self.exchange(request);
            let expired = self.watchdog.disarm();
            match result {
                Err(_) if expired => Err(self.timed_out()),
                other => other,
            }
        }
        #[cfg(not(windows))]
        self.exchange(request)
    }

    fn exchange(&mut self, request: &Request) -> Result<Response, Error> {
        let frame = codec::encode_frame(request).map_err(|e| self.fail(e))?;
        let written = match self.hello.take() {
            Some(mut hello) => {
                hello.extend_from_slice(&frame);
                let written = self.stream.get_mut().write_all(&hello);
                // The request may hold a secret (a user secret being set).
                tokend_protocol::secret::wipe(&mut hello);
                written
            }
            None => self.stream.get_mut().write_all(&frame),
        };
        if let Err(err) = written {
            // An incompatible daemon answers the hello and hangs up, possibly before our request
            // arrives: its welcome, still readable, says why.
            if !self.welcomed {
                self.read_welcome()?;
            }
            return Err(self.fail(err.into()));
        }
        if !self.welcomed {
            self.read_welcome()?;
        }
        // A response may span several frames (status of many providers, say).
        let open = read_message_into(&mut self.stream, MAX_MESSAGE_LEN, &mut self.response)
            .map_err(|e| self.fail(e))?;
        if !open {
            return Err(self.fail(closed()));
        }
        codec::decode_message(&self.response).map_err(|e| self.fail(e))
    }

    fn timed_out(&self) -> Error {
        Error::Timeout {
            endpoint: self.endpoint.clone(),
            seconds: self.timeout.as_secs(),
        }
    }

    /// Classifies a failure: timeouts are [`Error::Timeout`], the rest [`Error::Protocol`].
    fn fail(&self, source: ProtocolError) -> Error {
        if let ProtocolError::Io(io) = &source
            && matches!(
                io.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            )
        {
            return self.timed_out();
        }
        Error::Protocol {
            endpoint: self.endpoint.clone(),
            source,
        }
    }
}

/// Whether a failed call lost the connection in a way a fresh connection may fix (the daemon
/// closed an idle connection, or restarted).
pub(crate) fn connection_lost(err: &Error) -> bool {
    match err {
        Error::Protocol {
            source: ProtocolError::Io(io),
            ..
        } => matches!(
            io.kind(),
            io::ErrorKind::BrokenPipe
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::UnexpectedEof
        ),
        Error::Protocol {
            source: ProtocolError::Truncated,
            ..
        } => true,
        _ => false,
    }
}
