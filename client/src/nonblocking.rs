//! [`AsyncClient`]: the same calls as [`crate::Client`], as `async fn`s on tokio.

use interprocess::local_socket::tokio::Stream;
use interprocess::local_socket::tokio::prelude::*;
use tokend_protocol::frame::MAX_MESSAGE_LEN;
use tokend_protocol::frame::nonblocking::{read_frame, read_message_into, write_frame};
use tokend_protocol::handshake::{Hello, Welcome};
use tokend_protocol::{
    DaemonStatus, MAX_HANDSHAKE_LEN, PingInfo, ProtocolError, Request, Response, codec,
};

use crate::connection::{check_welcome, closed, connect_error, connection_lost};
use crate::{Error, GetOptions, Settings, Start, Token, autostart, exchange};

/// Async client on tokio. Connects on first use, keeps the connection, reconnects once if the
/// daemon closed it, and auto-starts the daemon like the blocking client.
#[derive(Debug)]
pub struct AsyncClient {
    settings: Settings,
    stream: Option<Stream>,
}

impl AsyncClient {
    pub(crate) fn from_settings(settings: Settings) -> Self {
        Self {
            settings,
            stream: None,
        }
    }

    /// A client for the resolved endpoint with default settings.
    #[must_use]
    pub fn new() -> Self {
        crate::ClientBuilder::default().build_async()
    }

    /// A provider's token, valid for at least the default 30 s.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn get(&mut self, provider: &str) -> Result<Token, Error> {
        self.get_with(provider, &GetOptions::default()).await
    }

    /// A provider's token with explicit options.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn get_with(&mut self, provider: &str, options: &GetOptions) -> Result<Token, Error> {
        let request = exchange::get_request(provider, options);
        exchange::expect_token(self.call(&request, Start::IfNeeded).await?)
    }

    /// The daemon's view of every provider (starts the daemon if needed).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn status(&mut self) -> Result<DaemonStatus, Error> {
        exchange::expect_status(self.call(&Request::Status, Start::IfNeeded).await?)
    }

    /// Drops the provider's current token (see [`crate::Client::invalidate`]).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn invalidate(
        &mut self,
        provider: &str,
    ) -> Result<tokend_protocol::Invalidation, Error> {
        let request = Request::Invalidate(tokend_protocol::Invalidate {
            provider: provider.to_owned(),
        });
        exchange::expect_invalidated(self.call(&request, Start::Never).await?)
    }

    /// Version and liveness of a running daemon (never starts one).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn ping(&mut self) -> Result<PingInfo, Error> {
        exchange::expect_pong(self.call(&Request::Ping, Start::Never).await?)
    }

    async fn call(&mut self, request: &Request, start: Start) -> Result<Response, Error> {
        if let Some(stream) = self.stream.as_mut() {
            match round_trip(stream, request, &self.settings).await {
                Ok(response) => return Ok(response),
                Err(err) if connection_lost(&err) => self.stream = None,
                Err(err) => {
                    self.stream = None;
                    return Err(err);
                }
            }
        }
        let mut stream = self.connect(start).await?;
        let response = round_trip(&mut stream, request, &self.settings).await?;
        self.stream = Some(stream);
        Ok(response)
    }

    async fn connect(&self, start: Start) -> Result<Stream, Error> {
        match open(&self.settings).await {
            Err(Error::NotRunning { endpoint, .. }) => {
                if start == Start::Never {
                    return Err(Error::NotRunning { endpoint, hint: "" });
                }
                if !self.settings.autostart {
                    return Err(Error::NotRunning {
                        endpoint,
                        hint: autostart::off_hint(),
                    });
                }
            }
            other => return other,
        }
        // Taking the lock and waiting for readiness block: keep them off the async workers.
        let settings = self.settings.clone();
        tokio::task::spawn_blocking(move || -> Result<(), Error> {
            let _lock =
                autostart::StartupLock::acquire(&settings.endpoint, settings.startup_timeout)?;
            if crate::connection::Connection::open(&settings.endpoint, settings.timeout).is_ok() {
                // Another caller started it while we waited for the lock.
                return Ok(());
            }
            let program = autostart::daemon_program(settings.daemon_program.as_deref());
            autostart::spawn_and_wait(&settings.endpoint, &program, settings.startup_timeout)?;
            Ok(())
        })
        .await
        .map_err(|err| Error::StartFailed {
            program: "tokend".into(),
            reason: format!("start-up task failed: {err}"),
            log: None,
            config_error: false,
        })??;
        open(&self.settings).await
    }
}

impl Default for AsyncClient {
    fn default() -> Self {
        Self::new()
    }
}

fn fail(settings: &Settings, source: ProtocolError) -> Error {
    Error::Protocol {
        endpoint: settings.endpoint.to_string(),
        source,
    }
}

fn timeout_error(settings: &Settings) -> Error {
    Error::Timeout {
        endpoint: settings.endpoint.to_string(),
        seconds: settings.timeout.as_secs(),
    }
}

async fn open(settings: &Settings) -> Result<Stream, Error> {
    let shown = settings.endpoint.to_string();
    let connect_error = |source| connect_error(&shown, source);
    let name = settings.endpoint.to_name().map_err(connect_error)?;
    let mut stream = tokio::time::timeout(settings.timeout, Stream::connect(name))
        .await
        .map_err(|_| timeout_error(settings))?
        .map_err(connect_error)?;
    let handshake = async {
        write_frame(&mut stream, &Hello::current().encode()).await?;
        let payload = read_frame(&mut stream, MAX_HANDSHAKE_LEN)
            .await?
            .ok_or_else(closed)?;
        Welcome::decode(&payload)
    };
    let welcome = tokio::time::timeout(settings.timeout, handshake)
        .await
        .map_err(|_| timeout_error(settings))?
        .map_err(|err| fail(settings, err))?;
    check_welcome(welcome, &shown)?;
    Ok(stream)
}

async fn round_trip(
    stream: &mut Stream,
    request: &Request,
    settings: &Settings,
) -> Result<Response, Error> {
    let exchange = async {
        let frame = codec::encode_frame(request)?;
        tokio::io::AsyncWriteExt::write_all(stream, &frame).await?;
        // A response may span several frames (status of many providers, say).
        let mut answer = tokend_protocol::SecretBuf::default();
        if !read_message_into(stream, MAX_MESSAGE_LEN, &mut answer).await? {
            return Err(closed());
        }
        codec::decode_message(&answer)
    };
    tokio::time::timeout(settings.timeout, exchange)
        .await
        .map_err(|_| timeout_error(settings))?
        .map_err(|err| fail(settings, err))
}
