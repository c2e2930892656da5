//! A client connection's socket as the request loop reads and writes it.
//!
//! On Unix, tokio's `UnixStream` asks the reactor for both read and write readiness, edge
//! triggered, so every time a client reads its answer the socket turns writable again and wakes
//! the daemon for nothing: one more `epoll_wait` and, when the client shares the CPU, one more
//! pair of context switches per request, about a tenth of a cache hit. Answers nearly always fit
//! the socket buffer and go out in one write, so [`ClientSocket`] registers for readability only
//! and adds write interest the first time a write would block (a large status answer to a slow
//! reader), for the rest of that connection. Redis registers its client sockets the same way.
//!
//! On Windows the named pipe is used as it is.
//!
//! One of the workspace's `unsafe` modules (see `tests/layout.rs`): tokio's registration of a
//! descriptor with chosen interest is `unsafe` because it cannot check that the descriptor
//! stays open; here the registration owns the socket.

#![allow(unsafe_code)]

#[cfg(windows)]
pub(crate) type ClientSocket = interprocess::local_socket::tokio::Stream;

/// Prepares an accepted connection for the request loop (after its peer was checked).
#[cfg(windows)]
pub(crate) fn for_requests(
    stream: interprocess::local_socket::tokio::Stream,
) -> std::io::Result<ClientSocket> {
    Ok(stream)
}

#[cfg(unix)]
pub(crate) use self::unix::{ClientSocket, for_requests};

#[cfg(unix)]
mod unix {
    use std::io::{self, Read};
    use std::os::fd::OwnedFd;
    use std::os::unix::net::UnixStream;
    use std::pin::Pin;
    use std::task::{Context, Poll, ready};

    use interprocess::local_socket::tokio::Stream;
    use rustix::net::{SendFlags, send};
    use tokio::io::unix::AsyncFd;
    use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

    /// A connected Unix socket registered for readability, and for writability only once a
    /// write has had to wait.
    pub(crate) struct ClientSocket {
        /// `None` only for the instant of a re-registration that failed (the connection ends).
        fd: Option<AsyncFd<UnixStream>>,
        /// Write interest was added after a write would have blocked.
        watching_writes: bool,
    }

    /// Takes the accepted stream off tokio's read-and-write registration and registers it for
    /// reads only.
    pub(crate) fn for_requests(stream: Stream) -> io::Result<ClientSocket> {
        let Stream::UdSocket(stream) = stream;
        ClientSocket::new(UnixStream::from(OwnedFd::try_from(stream)?))
    }

    /// Registers `stream` with the reactor for `interest`.
    fn register(stream: UnixStream, interest: Interest) -> io::Result<AsyncFd<UnixStream>> {
        // SAFETY: the `AsyncFd` owns the stream, so its descriptor stays open and the same
        // until the `AsyncFd` is dropped or gives the stream back with `into_inner`.
        unsafe { AsyncFd::register_with_interest(stream, interest) }.map_err(io::Error::from)
    }

    fn gone() -> io::Error {
        io::Error::new(
            io::ErrorKind::NotConnected,
            "the connection's socket could not be registered again",
        )
    }

    impl ClientSocket {
        /// Registers a connected, non-blocking socket for reads.
        pub(crate) fn new(stream: UnixStream) -> io::Result<Self> {
            #[cfg(target_vendor = "apple")]
            rustix::net::sockopt::set_socket_nosigpipe(&stream, true)?;
            Ok(Self {
                fd: Some(register(stream, Interest::READABLE)?),
                watching_writes: false,
            })
        }

        fn fd(&self) -> io::Result<&AsyncFd<UnixStream>> {
            self.fd.as_ref().ok_or_else(gone)
        }

        /// Registers the socket again, for writes as well as reads.
        fn watch_writes(&mut self) -> io::Result<()> {
            let fd = self.fd.take().ok_or_else(gone)?;
            let stream = fd.into_inner();
            self.fd = Some(register(stream, Interest::READABLE | Interest::WRITABLE)?);
            self.watching_writes = true;
            Ok(())
        }
    }

    impl AsyncRead for ClientSocket {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let fd = self.get_mut().fd()?;
            loop {
                let mut ready = ready!(fd.poll_read_ready(cx))?;
                let unfilled = buf.initialize_unfilled();
                match ready.try_io(|socket| socket.get_ref().read(unfilled)) {
                    Ok(Ok(len)) => {
                        // Readiness is kept even after a short read that emptied the socket: the
                        // connection's next read asks the socket again (a `recv` that under load
                        // usually says would-block, just after the answer went out) before it waits
                        // for the reactor, as tokio's own streams do after full reads. Clearing it
                        // here saves that call, but `tokend-bench` measured what the saving costs
                        // with 64 busy clients on 2 CPUs: their CPU per request 1.2x, throughput
                        // 0.93x the raw server's instead of 1.00x (p50 latency 1.5x; p99 lower, 1.0
                        // ms against 4.6 ms: service was more even). The call gives the scheduler a
                        // point to switch to the client just answered. A single client measured no
                        // cost: its next request is usually there.
                        buf.advance(len);
                        return Poll::Ready(Ok(()));
                    }
                    Ok(Err(err)) => return Poll::Ready(Err(err)),
                    Err(_would_block) => {}
                }
            }
        }
    }

    /// Flags of every `send`: a client gone away is an error, never a SIGPIPE. Apple systems
    /// have no `MSG_NOSIGNAL`; there the socket's `SO_NOSIGPIPE`, set in [`ClientSocket::new`],
    /// does the same.
    #[cfg(not(target_vendor = "apple"))]
    const SEND_FLAGS: SendFlags = SendFlags::NOSIGNAL;
    #[cfg(target_vendor = "apple")]
    const SEND_FLAGS: SendFlags = SendFlags::empty();

    /// `send` rather than `write`, for [`SEND_FLAGS`].
    fn write(socket: &UnixStream, buf: &[u8]) -> io::Result<usize> {
        send(socket, buf, SEND_FLAGS).map_err(io::Error::from)
    }

    impl AsyncWrite for ClientSocket {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            if !this.watching_writes {
                match write(this.fd()?.get_ref(), buf) {
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => this.watch_writes()?,
                    done => return Poll::Ready(done),
                }
            }
            let fd = this.fd()?;
            loop {
                let mut ready = ready!(fd.poll_write_ready(cx))?;
                match ready.try_io(|socket| write(socket.get_ref(), buf)) {
                    Ok(done) => return Poll::Ready(done),
                    Err(_would_block) => {}
                }
            }
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            let fd = self.get_mut().fd()?;
            Poll::Ready(fd.get_ref().shutdown(std::net::Shutdown::Write))
        }
    }

    #[cfg(test)]
    mod tests {
        use std::io::{Read, Write};
        use std::os::unix::net::UnixStream;
        use std::time::Duration;

        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        use super::ClientSocket;

        fn pair() -> (ClientSocket, UnixStream) {
            let (ours, theirs) = UnixStream::pair().unwrap();
            ours.set_nonblocking(true).unwrap();
            theirs
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            (ClientSocket::new(ours).unwrap(), theirs)
        }

        #[tokio::test]
        async fn a_write_larger_than_the_socket_buffer_waits_for_the_reader_then_reads_go_on() {
            let (mut socket, mut theirs) = pair();
            let answer: Vec<u8> = (0..4 << 20).map(|i: u32| (i % 251) as u8).collect();
            let expected = answer.clone();
            let reader = std::thread::spawn(move || {
                // The writer fills the socket and has to wait for this reader.
                std::thread::sleep(Duration::from_millis(50));
                let mut got = vec![0; expected.len()];
                theirs.read_exact(&mut got).unwrap();
                assert!(got == expected, "the answer arrived altered");
                theirs.write_all(b"next request").unwrap();
                theirs
            });
            socket.write_all(&answer).await.unwrap();
            assert!(socket.watching_writes, "4 MiB fitted the socket buffer");
            let mut next = [0; 12];
            socket.read_exact(&mut next).await.unwrap();
            assert_eq!(&next, b"next request");
            drop(reader.join().unwrap());
        }

        #[tokio::test]
        async fn bytes_arriving_after_a_short_read_wake_the_next_read() {
            let (mut socket, mut theirs) = pair();
            let writer = std::thread::spawn(move || {
                theirs.write_all(b"ab").unwrap();
                std::thread::sleep(Duration::from_millis(50));
                theirs.write_all(b"cd").unwrap();
                theirs
            });
            let mut buf = [0; 512];
            let first = socket.read(&mut buf).await.unwrap();
            let mut got = buf[..first].to_vec();
            while got.len() < 4 {
                let more = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut buf))
                    .await
                    .expect("the second write never woke the reader")
                    .unwrap();
                assert_ne!(more, 0, "end of file before the second write");
                got.extend_from_slice(&buf[..more]);
            }
            assert_eq!(got, b"abcd");
            assert!(!socket.watching_writes);
            drop(writer.join().unwrap());
        }

        #[tokio::test]
        async fn a_client_gone_away_is_an_error_for_the_writer_and_end_of_file_for_the_reader() {
            let (mut socket, theirs) = pair();
            drop(theirs);
            let mut buf = [0; 16];
            assert_eq!(socket.read(&mut buf).await.unwrap(), 0);
            let err = socket.write_all(b"answer").await.unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe, "{err}");
        }
    }
}
