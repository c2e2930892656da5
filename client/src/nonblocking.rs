//! [`AsyncClient`]: the same calls as [`crate::Client`], as `async fn`s on tokio.

use std::sync::Arc;

use interprocess::local_socket::tokio::Stream;
use interprocess::local_socket::tokio::prelude::*;
use tokend_protocol::frame::MAX_MESSAGE_LEN;
use tokend_protocol::frame::nonblocking::{read_frame, read_message_into, write_frame};
use tokend_protocol::handshake::{Hello, Welcome};
use tokend_protocol::{
    DaemonStatus, MAX_HANDSHAKE_LEN, PingInfo, ProtocolError, Request, Response, codec,
};

use crate::connection::{check_welcome, closed, connect_error, connection_lost};
use crate::pool::Pool;
use crate::{Error, GetOptions, Settings, Start, Token, autostart, exchange};

/// Async client on tokio. Connects on first use, keeps the connection, reconnects once if the
/// daemon closed it, and auto-starts the daemon like the blocking client. Cheap to clone;
/// clones share their idle connections, and every method takes `&self`, so one client serves
/// any number of tasks at once, each call on a connection of its own.
#[derive(Debug, Clone)]
pub struct AsyncClient {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    settings: Settings,
    pool: Pool<Stream>,
}

impl AsyncClient {
    pub(crate) fn from_settings(settings: Settings) -> Self {
        Self {
            inner: Arc::new(Shared {
                settings,
                pool: Pool::new(),
            }),
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
    pub async fn get(&self, provider: &str) -> Result<Token, Error> {
        self.get_with(provider, &GetOptions::default()).await
    }

    /// A provider's token with explicit options.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn get_with(&self, provider: &str, options: &GetOptions) -> Result<Token, Error> {
        let request = exchange::get_request(provider, options);
        exchange::expect_token(self.call(&request, Start::IfNeeded).await?)
    }

    /// The id_token that came with the provider's token (see
    /// [`crate::Client::get_id_token`]).
    ///
    /// # Errors
    /// See [`crate::Client::get_id_token`].
    pub async fn get_id_token(&self, provider: &str) -> Result<Token, Error> {
        self.get_id_token_with(provider, &GetOptions::default())
            .await
    }

    /// [`AsyncClient::get_id_token`] with explicit options.
    ///
    /// # Errors
    /// See [`crate::Client::get_id_token`].
    pub async fn get_id_token_with(
        &self,
        provider: &str,
        options: &GetOptions,
    ) -> Result<Token, Error> {
        let request = exchange::get_id_token_request(provider, options);
        exchange::expect_token(self.call(&request, Start::IfNeeded).await?)
    }

    /// Replaces a static provider's key now (see [`crate::Client::rotate`]).
    ///
    /// # Errors
    /// See [`crate::Client::rotate`].
    pub async fn rotate(&self, provider: &str) -> Result<tokend_protocol::RotationOutcome, Error> {
        let request = exchange::rotate_request(provider);
        exchange::expect_rotated(self.call(&request, Start::IfNeeded).await?)
    }

    /// The daemon's view of every provider (starts the daemon if needed).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn status(&self) -> Result<DaemonStatus, Error> {
        exchange::expect_status(self.call(&Request::Status, Start::IfNeeded).await?)
    }

    /// Drops the provider's current token (see [`crate::Client::invalidate`]).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn invalidate(&self, provider: &str) -> Result<tokend_protocol::Invalidation, Error> {
        let request = Request::Invalidate(tokend_protocol::Invalidate {
            provider: provider.to_owned(),
        });
        exchange::expect_invalidated(self.call(&request, Start::Never).await?)
    }

    /// Version and liveness of a running daemon (never starts one).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn ping(&self) -> Result<PingInfo, Error> {
        exchange::expect_pong(self.call(&Request::Ping, Start::Never).await?)
    }

    async fn call(&self, request: &Request, start: Start) -> Result<Response, Error> {
        let Shared { settings, pool } = &*self.inner;
        if let Some(mut stream) = pool.take() {
            match round_trip(&mut stream, request, settings).await {
                Ok(response) => {
                    pool.give(stream);
                    return Ok(response);
                }
                // The daemon closed an idle connection or restarted: one fresh attempt.
                Err(err) if connection_lost(&err) => pool.clear(),
                Err(err) => return Err(err),
            }
        }
        let mut stream = self.connect(start).await?;
        let response = round_trip(&mut stream, request, settings).await?;
        pool.give(stream);
        Ok(response)
    }

    async fn connect(&self, start: Start) -> Result<Stream, Error> {
        match open(&self.inner.settings).await {
            Err(Error::NotRunning { endpoint, .. }) => {
                if start == Start::Never {
                    return Err(Error::NotRunning { endpoint, hint: "" });
                }
                if !self.inner.settings.autostart {
                    return Err(Error::NotRunning {
                        endpoint,
                        hint: autostart::off_hint(),
                    });
                }
            }
            other => return other,
        }
        // Taking the lock and waiting for readiness block: keep them off the async workers.
        let settings = self.inner.settings.clone();
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
        open(&self.inner.settings).await
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
    #[cfg(windows)]
    {
        use interprocess::local_socket::traits::StreamCommon as _;
        let pid = stream.peer_creds().and_then(|creds| {
            creds
                .pid()
                .ok_or_else(|| std::io::Error::other("no process id"))
        });
        crate::connection::check_server_user(pid, &shown)?;
    }
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
