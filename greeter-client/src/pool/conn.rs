//! One HTTP/2 connection to one endpoint.
//!
//! Built on hyper's low-level `http2` client connection rather than a tonic
//! `Channel`, for two reasons:
//!
//! - `SendRequest::try_send_request` hands a request back when it never
//!   left the client (the connection closed while it was queued), so such
//!   calls can be retried on another endpoint exactly, without buffering
//!   their bodies;
//! - the connection's state is visible: the socket wrapper [`SniffIo`]
//!   watches the server's frames ([`super::frames`]) and the socket's end,
//!   and publishes them in [`ConnSignals`], which the picker reads with one
//!   atomic load per call. A GOAWAY, EOF or read error takes the connection
//!   out of rotation at once, before hyper itself notices.
//!
//! A connection counts as established once the server's SETTINGS frame has
//! arrived (it speaks HTTP/2 and is responsive), within the connect timeout.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::client::conn::TrySendError;
use hyper::client::conn::http2::{self, Connection, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::frames::{FrameEvent, FrameReader};
use crate::model::label;

/// Request body type sent on connections.
pub(crate) type RequestBody = tonic::body::Body;

/// The future that dispatches requests onto the connection; it ends when the
/// connection can take no more requests.
pub(crate) type Driver = Connection<TokioIo<SniffIo>, RequestBody, TokioExecutor>;

/// How connections are made.
#[derive(Debug, Clone)]
pub(crate) struct ConnSettings {
    pub(crate) connect_timeout: Duration,
    pub(crate) keepalive_interval: Option<Duration>,
    pub(crate) keepalive_timeout: Duration,
}

/// Why a connection attempt failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    /// TCP connect failed.
    #[error("connect to {endpoint} failed: {source}")]
    Tcp {
        endpoint: String,
        #[source]
        source: io::Error,
    },
    /// Nothing within the connect timeout.
    #[error("connect to {endpoint} timed out after {after:?}")]
    Timeout { endpoint: String, after: Duration },
    /// The HTTP/2 handshake failed.
    #[error("HTTP/2 handshake with {endpoint} failed: {source}")]
    Handshake {
        endpoint: String,
        #[source]
        source: hyper::Error,
    },
    /// The server closed the connection before sending its SETTINGS.
    #[error("{endpoint} closed the connection before its HTTP/2 SETTINGS (not an HTTP/2 server?)")]
    ClosedEarly { endpoint: String },
}

/// The server's HTTP/2 SETTINGS arrived.
const SETTINGS_SEEN: u8 = 1 << 0;
/// The server sent GOAWAY.
const GOAWAY: u8 = 1 << 1;
/// The read side ended (EOF or error).
const READ_CLOSED: u8 = 1 << 2;
/// The socket was closed (dropped).
const DROPPED: u8 = 1 << 3;
/// Taken out of rotation by its owner (retired, driver ended).
const WITHDRAWN: u8 = 1 << 4;
/// Its health service reports NOT_SERVING.
const NOT_SERVING: u8 = 1 << 5;
/// Any of these makes the connection unusable for new calls.
const UNUSABLE: u8 = GOAWAY | READ_CLOSED | DROPPED | WITHDRAWN | NOT_SERVING;

/// What is known about a connection, shared by its socket, its owner task
/// and the picker.
#[derive(Debug, Default)]
pub(crate) struct ConnSignals {
    flags: AtomicU8,
    changed: Notify,
}

impl ConnSignals {
    fn set(&self, flag: u8) {
        if self.flags.fetch_or(flag, Ordering::AcqRel) & flag != flag {
            self.changed.notify_waiters();
        }
    }

    fn clear(&self, flag: u8) {
        if self.flags.fetch_and(!flag, Ordering::AcqRel) & flag != 0 {
            self.changed.notify_waiters();
        }
    }

    /// Whether new calls may go on this connection.
    pub(crate) fn usable(&self) -> bool {
        self.flags.load(Ordering::Acquire) & (SETTINGS_SEEN | UNUSABLE) == SETTINGS_SEEN
    }

    pub(crate) fn goaway(&self) -> bool {
        self.flags.load(Ordering::Acquire) & GOAWAY != 0
    }

    /// Takes the connection out of rotation for good.
    pub(crate) fn withdraw(&self) {
        self.set(WITHDRAWN);
    }

    /// Health reports from the server's health service.
    pub(crate) fn set_serving(&self, serving: bool) {
        if serving {
            self.clear(NOT_SERVING);
        } else {
            self.set(NOT_SERVING);
        }
    }

    async fn wait_for(&self, done: impl Fn(u8) -> bool) {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if done(self.flags.load(Ordering::Acquire)) {
                return;
            }
            notified.await;
        }
    }

    /// Resolves once the server sent GOAWAY or the read side ended.
    pub(crate) async fn gone(&self) {
        self.wait_for(|f| f & (GOAWAY | READ_CLOSED | DROPPED) != 0)
            .await;
    }

    /// Resolves once the socket is closed.
    pub(crate) async fn closed(&self) {
        self.wait_for(|f| f & DROPPED != 0).await;
    }
}

/// The TCP stream, with the server's frames watched on the way in.
#[derive(Debug)]
pub(crate) struct SniffIo {
    stream: TcpStream,
    reader: FrameReader,
    signals: Arc<ConnSignals>,
}

impl AsyncRead for SniffIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let room = buf.remaining();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let read = &buf.filled()[before..];
                if read.is_empty() && room > 0 {
                    this.signals.set(READ_CLOSED);
                } else {
                    let signals = &this.signals;
                    this.reader.feed(read, |event| match event {
                        FrameEvent::Settings { .. } => signals.set(SETTINGS_SEEN),
                        FrameEvent::GoAway {
                            last_stream_id,
                            error_code,
                        } => {
                            tracing::debug!(last_stream_id, error_code, "GOAWAY received");
                            signals.set(GOAWAY);
                        }
                    });
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => {
                this.signals.set(READ_CLOSED);
                Poll::Ready(Err(error))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for SniffIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl Drop for SniffIo {
    fn drop(&mut self) {
        self.signals.set(DROPPED | READ_CLOSED);
    }
}

/// An established connection, as the picker and calls see it.
#[derive(Debug)]
pub(crate) struct ConnHandle {
    pub(crate) addr: SocketAddr,
    pub(crate) hostname: Arc<str>,
    sender: SendRequest<RequestBody>,
    pub(crate) signals: Arc<ConnSignals>,
    in_flight: AtomicUsize,
}

impl ConnHandle {
    /// Whether a new call may use it.
    pub(crate) fn usable(&self) -> bool {
        self.signals.usable() && !self.sender.is_closed()
    }

    /// `hostname (addr)`.
    pub(crate) fn label(&self) -> String {
        label(&self.hostname, self.addr)
    }

    /// Sends a request; hands it back when it never left the client.
    pub(crate) fn send(
        &self,
        request: http::Request<RequestBody>,
    ) -> impl Future<
        Output = Result<http::Response<Incoming>, TrySendError<http::Request<RequestBody>>>,
    > + Send
    + 'static {
        self.sender.clone().try_send_request(request)
    }

    /// Counts a call as in flight on this connection until the guard drops.
    pub(crate) fn enter(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Calls in flight right now.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// A call in flight on a connection.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<ConnHandle>);

impl InFlight {
    pub(crate) fn conn(&self) -> &Arc<ConnHandle> {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Connects to `addr` and waits for the server's SETTINGS.
pub(crate) async fn connect(
    addr: SocketAddr,
    hostname: Arc<str>,
    settings: &ConnSettings,
) -> Result<(Arc<ConnHandle>, Driver), ConnectError> {
    let endpoint = || label(&hostname, addr);
    let deadline = tokio::time::Instant::now() + settings.connect_timeout;
    let timed_out = || ConnectError::Timeout {
        endpoint: endpoint(),
        after: settings.connect_timeout,
    };
    let stream = tokio::time::timeout_at(deadline, TcpStream::connect(addr))
        .await
        .map_err(|_| timed_out())?
        .map_err(|source| ConnectError::Tcp {
            endpoint: endpoint(),
            source,
        })?;
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, %addr, "could not set TCP_NODELAY");
    }
    let signals = Arc::new(ConnSignals::default());
    let io = SniffIo {
        stream,
        reader: FrameReader::default(),
        signals: signals.clone(),
    };
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .keep_alive_interval(settings.keepalive_interval)
        .keep_alive_timeout(settings.keepalive_timeout)
        .keep_alive_while_idle(true);
    let (sender, driver) = tokio::time::timeout_at(deadline, builder.handshake(TokioIo::new(io)))
        .await
        .map_err(|_| timed_out())?
        .map_err(|source| ConnectError::Handshake {
            endpoint: endpoint(),
            source,
        })?;
    // hyper's own task reads the socket; the SETTINGS frame shows up in the
    // signals. The driver must stay alive meanwhile (dropping it closes).
    tokio::time::timeout_at(
        deadline,
        signals.wait_for(|f| f & (SETTINGS_SEEN | READ_CLOSED) != 0),
    )
    .await
    .map_err(|_| timed_out())?;
    if signals.flags.load(Ordering::Acquire) & SETTINGS_SEEN == 0 {
        return Err(ConnectError::ClosedEarly {
            endpoint: endpoint(),
        });
    }
    let handle = Arc::new(ConnHandle {
        addr,
        hostname,
        sender,
        signals,
        in_flight: AtomicUsize::new(0),
    });
    Ok((handle, driver))
}
