//! The clients of the in-process rows: tokend's library [`Client`], and the baselines speaking
//! the same sizes over the same kind of socket.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use tokend_client::{Client, Endpoint};
use tokend_protocol::frame::{read_frame, write_frame};
use tokend_protocol::handshake::{Hello, Verdict, Welcome};
use tokend_protocol::{GetToken, MAX_FRAME_LEN, MAX_HANDSHAKE_LEN, Request, Response, codec};

use crate::{IO_TIMEOUT, PROVIDER};

// ---------------------------------------------------------------------------------------------
// Clients

/// One request/response on an open connection.
pub(crate) trait RoundTrip {
    fn round_trip(&mut self) -> Result<(), String>;
}

/// The library under test: a blocking `Client` on one persistent connection, asking for one
/// provider.
pub(crate) struct LibClient {
    pub(crate) client: Client,
    provider: String,
}

impl LibClient {
    /// A client of the bench's own provider.
    pub(crate) fn connect(socket: &Path) -> Result<Self, String> {
        Self::connect_to(socket, PROVIDER)
    }

    /// A client asking for `provider`.
    pub(crate) fn connect_to(socket: &Path, provider: &str) -> Result<Self, String> {
        let client = Client::builder()
            .endpoint(Endpoint::from_path(socket))
            .autostart(false)
            .timeout(IO_TIMEOUT)
            .build();
        // Connect and handshake now, outside any timed loop.
        client.get(provider).map_err(|err| err.to_string())?;
        Ok(Self {
            client,
            provider: provider.to_owned(),
        })
    }
}

impl RoundTrip for LibClient {
    fn round_trip(&mut self) -> Result<(), String> {
        let token = self
            .client
            .get(&self.provider)
            .map_err(|err| err.to_string())?;
        std::hint::black_box(&token);
        Ok(())
    }
}

/// One `Client` shared by every thread (a reference to it): each call takes a pooled
/// connection of its own.
pub(crate) struct SharedClient<'a>(pub(crate) &'a Client);

impl RoundTrip for SharedClient<'_> {
    fn round_trip(&mut self) -> Result<(), String> {
        let token = self.0.get(PROVIDER).map_err(|err| err.to_string())?;
        std::hint::black_box(&token);
        Ok(())
    }
}

/// The baseline client: a std `UnixStream`, one prebuilt request frame, one reused buffer.
pub(crate) struct RawClient {
    pub(crate) stream: UnixStream,
    pub(crate) request: Vec<u8>,
    pub(crate) response: Vec<u8>,
    pub(crate) expected_len: usize,
}

impl RawClient {
    pub(crate) fn connect(
        socket: &Path,
        request_len: usize,
        response_len: usize,
    ) -> Result<Self, String> {
        let stream = UnixStream::connect(socket).map_err(|err| format!("connect: {err}"))?;
        stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)))
            .map_err(|err| format!("socket timeouts: {err}"))?;
        let mut request = Vec::with_capacity(4 + request_len);
        request.extend_from_slice(
            &u32::try_from(request_len)
                .map_err(|_| "request too long".to_owned())?
                .to_be_bytes(),
        );
        request.resize(4 + request_len, b'r');
        Ok(Self {
            stream,
            request,
            response: Vec::with_capacity(response_len),
            expected_len: response_len,
        })
    }
}

impl RoundTrip for RawClient {
    fn round_trip(&mut self) -> Result<(), String> {
        self.stream
            .write_all(&self.request)
            .map_err(|err| format!("raw write: {err}"))?;
        let mut header = [0u8; 4];
        self.stream
            .read_exact(&mut header)
            .map_err(|err| format!("raw read: {err}"))?;
        let len = u32::from_be_bytes(header) as usize;
        if len != self.expected_len {
            return Err(format!(
                "raw server answered {len} bytes, expected {}",
                self.expected_len
            ));
        }
        self.response.resize(len, 0);
        self.stream
            .read_exact(&mut self.response)
            .map_err(|err| format!("raw read: {err}"))?;
        std::hint::black_box(&self.response);
        Ok(())
    }
}

/// Encoded sizes of tokend's GetToken request and of its answer, measured on the wire: a
/// handshake and one GetToken by hand against the running daemon.
pub(crate) fn wire_sizes(socket: &Path, token_len: usize) -> (usize, usize) {
    let mut stream = UnixStream::connect(socket).expect("connect to tokend for the size probe");
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .expect("read timeout");
    write_frame(&mut stream, &Hello::current().encode()).expect("send hello");
    let welcome = read_frame(&mut stream, MAX_HANDSHAKE_LEN)
        .expect("read welcome")
        .expect("tokend closed the connection during the handshake");
    let welcome = Welcome::decode(&welcome).expect("decode welcome");
    assert_eq!(
        welcome.verdict,
        Verdict::Accepted,
        "tokend refused the hello"
    );
    let request = codec::encode(&Request::GetToken(GetToken {
        provider: PROVIDER.to_owned(),
        min_ttl_secs: u32::try_from(tokend_client::DEFAULT_MIN_TTL.as_secs())
            .expect("min ttl fits u32"),
    }))
    .expect("encode GetToken");
    write_frame(&mut stream, &request).expect("send GetToken");
    let answer = read_frame(&mut stream, MAX_FRAME_LEN)
        .expect("read the token response")
        .expect("tokend closed the connection instead of answering");
    match codec::decode::<Response>(&answer).expect("decode the token response") {
        Response::Token(grant) => assert_eq!(grant.token.len(), token_len, "token length"),
        other => panic!("tokend did not answer with a token: {other:?}"),
    }
    (request.len(), answer.len())
}
