//! One HTTP/2 connection to one endpoint.
//!
//! Built on h2's client directly rather than hyper's or a tonic `Channel`:
//!
//! - a call opens its stream and hands its request frames to h2 from its own
//!   task ([`super::stream`]), with no dispatch task between; h2's connection
//!   task then writes whatever every call queued meanwhile, HEADERS and DATA
//!   together. (hyper's client hands each request to its dispatch task, and
//!   the body of each to a task of its own that waits for h2 to open the
//!   stream: two more task wake-ups per call, and the DATA frame often in a
//!   second write: `docs/benchmarks.md`, data path.)
//! - a request h2 refuses to open (the connection is closing) is handed back
//!   untouched, so it can be sent on another endpoint exactly, without
//!   buffering its body;
//! - the connection's state is visible: the socket wrapper [`SniffIo`]
//!   watches the server's frames ([`crate::frames`]) and the socket's end,
//!   and publishes them in [`ConnSignals`], which the picker reads with one
//!   atomic load per call. A GOAWAY, EOF or read error takes the connection
//!   out of rotation at once.
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

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use http::uri::{Authority, PathAndQuery, Scheme};
use tonic::{Code, Status};

use tls_reload::client::{HandshakeFailure, Note, Observed, establish};

use super::stream::{self, RecvBody};
use super::tls::EndpointTls;
use crate::error::error_chain;
use crate::frames::{FrameEvent, FrameReader};
use crate::model::label;

/// Request body type sent on connections.
pub(crate) type RequestBody = tonic::body::Body;

/// The task that reads and writes the connection (h2's connection future,
/// with keepalive pings); it ends when the connection is closed.
pub(crate) type Driver = JoinHandle<Result<(), DriverError>>;

/// How a connection's task ended badly.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DriverError {
    /// HTTP/2 or the socket failed.
    #[error(transparent)]
    H2(#[from] h2::Error),
    /// No PING answer within the keepalive timeout.
    #[error("no answer to a keepalive PING within {0:?}")]
    KeepaliveTimeout(Duration),
}

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
        source: h2::Error,
    },
    /// The server closed the connection before sending its SETTINGS.
    #[error("{endpoint} closed the connection before its HTTP/2 SETTINGS (not an HTTP/2 server?)")]
    ClosedEarly { endpoint: String },
    /// TLS failed, for the reason named (unknown CA, SAN mismatch, expired,
    /// client certificate required, not a TLS port, ...).
    #[error("connect to {endpoint} failed: {failure}")]
    Tls {
        endpoint: String,
        failure: HandshakeFailure,
    },
    /// The Cluster asks for TLS this client cannot set up (a certificate
    /// provider without the files it needs, files that do not load).
    #[error("connect to {endpoint} failed: TLS cannot be set up: {reason}")]
    TlsSettings { endpoint: String, reason: String },
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
    /// Writes to the socket that took bytes (what the tests count).
    #[cfg(test)]
    pub(crate) writes: AtomicUsize,
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

/// The connection (TCP, or TLS over TCP), with the server's frames watched
/// on the way in.
#[derive(Debug)]
pub(crate) struct SniffIo {
    stream: Observed,
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

impl SniffIo {
    #[cfg(test)]
    fn count(&self, written: &Poll<io::Result<usize>>) {
        if let Poll::Ready(Ok(1..)) = written {
            self.signals.writes.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[cfg(not(test))]
    fn count(&self, _: &Poll<io::Result<usize>>) {}
}

impl AsyncWrite for SniffIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.count(&written);
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.count(&written);
        written
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
    sender: h2::client::SendRequest<Bytes>,
    pub(crate) signals: Arc<ConnSignals>,
    in_flight: AtomicUsize,
    /// Streams handed to h2 and not yet done.
    open: AtomicUsize,
    /// A stream ended (a slot may be free).
    slot_freed: Notify,
}

impl ConnHandle {
    /// Whether a new call may use it.
    pub(crate) fn usable(&self) -> bool {
        self.signals.usable()
    }

    /// `hostname (addr)`.
    pub(crate) fn label(&self) -> String {
        label(&self.hostname, self.addr)
    }

    /// Sends a request; hands it back when it never left the client.
    ///
    /// The stream is opened and the body's ready frames queued before this
    /// returns (see [`super::stream`]); the future waits for the response.
    pub(crate) fn send(
        self: &Arc<Self>,
        request: http::Request<RequestBody>,
    ) -> impl Future<Output = Result<http::Response<RecvBody>, SendError>> + Send + 'static {
        let conn = self.clone();
        async move {
            let slot = match conn.slot() {
                Some(slot) => slot,
                None => match conn.wait_for_slot().await {
                    Some(slot) => slot,
                    None => {
                        return Err(SendError::Unsent {
                            request: Box::new(request),
                            error: None,
                        });
                    }
                },
            };
            let (response, pipe) = conn.open_stream(request)?;
            let response = response.await.map_err(SendError::Failed)?;
            Ok(response.map(|body| RecvBody::new(body, pipe, slot)))
        }
    }

    /// A stream slot, when h2 would open the stream at once (or keep at
    /// most one waiting, as hyper's client does). Streams beyond the
    /// server's limit would wait inside h2, where a failed connection takes
    /// them down as if they had been sent; they wait here instead, and come
    /// back unsent.
    fn slot(self: &Arc<Self>) -> Option<Slot> {
        let limit = self.sender.current_max_send_streams();
        let mut open = self.open.load(Ordering::Acquire);
        while open <= limit {
            match self.open.compare_exchange_weak(
                open,
                open + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(Slot(self.clone())),
                Err(now) => open = now,
            }
        }
        None
    }

    /// Waits for a slot; `None` once the connection takes no new calls.
    async fn wait_for_slot(self: &Arc<Self>) -> Option<Slot> {
        loop {
            let freed = self.slot_freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if !self.usable() {
                return None;
            }
            if let Some(slot) = self.slot() {
                return Some(slot);
            }
            tokio::select! {
                () = freed => {}
                () = self.signals.wait_for(|f| f & SETTINGS_SEEN == 0 || f & UNUSABLE != 0) => {}
            }
        }
    }

    /// Opens the request's stream and queues its ready frames.
    fn open_stream(
        &self,
        request: http::Request<RequestBody>,
    ) -> Result<(h2::client::ResponseFuture, Option<stream::CancelPipe>), SendError> {
        let (mut head, body) = request.into_parts();
        strip_connection_headers(&mut head.headers);
        let end = http_body::Body::is_end_stream(&body);
        // h2 takes the request head and gives nothing back when it cannot
        // open the stream, so it gets a copy (h2 keeps no extensions).
        let mut h2_head = http::Request::new(());
        *h2_head.method_mut() = head.method.clone();
        *h2_head.uri_mut() = head.uri.clone();
        *h2_head.headers_mut() = head.headers.clone();
        // A clone per call: an h2 handle may have only one stream waiting
        // to open, so each call has its own.
        let mut sender = self.sender.clone();
        match sender.send_request(h2_head, end) {
            Ok((response, stream)) => {
                drop(head);
                let pipe = if end {
                    None
                } else {
                    stream::pipe(body, stream)
                };
                Ok((response, pipe))
            }
            Err(error) => Err(SendError::Unsent {
                request: Box::new(http::Request::from_parts(head, body)),
                error: Some(error),
            }),
        }
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

/// A stream handed to h2, until it is done.
#[derive(Debug)]
pub(crate) struct Slot(Arc<ConnHandle>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
        self.0.slot_freed.notify_waiters();
    }
}

/// Removes what HTTP/2 forbids (RFC 9113 §8.2.2) and h2 would refuse.
fn strip_connection_headers(headers: &mut http::HeaderMap) {
    use http::header::{CONNECTION, TE, TRANSFER_ENCODING, UPGRADE};
    for name in [CONNECTION, TRANSFER_ENCODING, UPGRADE] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
    if headers.get(TE).is_some_and(|te| te != "trailers") {
        headers.remove(TE);
    }
}

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    /// It never left this client (the connection is closing): safe to send
    /// elsewhere.
    #[error("the request was not sent: {}", match error { Some(e) => e.to_string(), None => "the connection takes no new calls".to_owned() })]
    Unsent {
        request: Box<http::Request<RequestBody>>,
        error: Option<h2::Error>,
    },
    /// It failed on the connection; the server may have seen it.
    #[error(transparent)]
    Failed(h2::Error),
}

impl SendError {
    /// The status a call gets for this error on the connection to
    /// `endpoint`.
    pub(crate) fn status(&self, endpoint: &str) -> tonic::Status {
        match self {
            SendError::Unsent { error, .. } => unsent_status(error.as_ref(), endpoint),
            SendError::Failed(error) => transport_status(error, endpoint),
        }
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
    tls: Option<&EndpointTls>,
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
    let note = Note::default();
    let stream = tokio::time::timeout_at(deadline, establish(stream, tls, note.clone()))
        .await
        .map_err(|_| timed_out())?
        .map_err(|failure| ConnectError::Tls {
            endpoint: endpoint(),
            failure,
        })?;
    let tls_failure = || {
        note.get().map(|failure| ConnectError::Tls {
            endpoint: endpoint(),
            failure,
        })
    };
    let signals = Arc::new(ConnSignals::default());
    let io = SniffIo {
        stream,
        reader: FrameReader::default(),
        signals: signals.clone(),
    };
    let (sender, connection) = tokio::time::timeout_at(
        deadline,
        h2::client::Builder::new()
            .enable_push(false)
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_send_buffer_size(MAX_SEND_BUFFER)
            .handshake::<_, Bytes>(io),
    )
    .await
    .map_err(|_| timed_out())?
    .map_err(|source| {
        tls_failure().unwrap_or_else(|| ConnectError::Handshake {
            endpoint: endpoint(),
            source,
        })
    })?;
    let keepalive = settings
        .keepalive_interval
        .map(|interval| (interval, settings.keepalive_timeout));
    let mut driver = tokio::spawn(drive(connection, keepalive));
    // The connection's task reads the socket; the SETTINGS frame shows up in
    // the signals.
    let settled = tokio::time::timeout_at(
        deadline,
        signals.wait_for(|f| f & (SETTINGS_SEEN | READ_CLOSED) != 0),
    )
    .await;
    if settled.is_err() || signals.flags.load(Ordering::Acquire) & SETTINGS_SEEN == 0 {
        driver.abort();
        let ended = (&mut driver).await;
        if settled.is_err() {
            return Err(timed_out());
        }
        return Err(tls_failure().unwrap_or_else(|| match ended {
            Ok(Err(DriverError::H2(source))) => ConnectError::Handshake {
                endpoint: endpoint(),
                source,
            },
            _ => ConnectError::ClosedEarly {
                endpoint: endpoint(),
            },
        }));
    }
    let handle = Arc::new(ConnHandle {
        addr,
        hostname,
        sender,
        signals,
        in_flight: AtomicUsize::new(0),
        open: AtomicUsize::new(0),
        slot_freed: Notify::new(),
    });
    Ok((handle, driver))
}

/// HTTP/2 flow-control windows and send buffer: hyper's client defaults,
/// which every tonic channel has.
const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 5 * 1024 * 1024;
const MAX_SEND_BUFFER: usize = 1024 * 1024;

/// Runs the connection: h2's connection future, and a PING every
/// `keepalive.0` that must be answered within `keepalive.1`.
async fn drive(
    mut connection: h2::client::Connection<SniffIo, Bytes>,
    keepalive: Option<(Duration, Duration)>,
) -> Result<(), DriverError> {
    let pings = keepalive.and_then(|k| Some((k, connection.ping_pong()?)));
    let Some(((interval, timeout), mut ping_pong)) = pings else {
        return Ok(connection.await?);
    };
    let pinging = async move {
        loop {
            tokio::time::sleep(interval).await;
            if ping_pong.send_ping(h2::Ping::opaque()).is_err() {
                // Closing: the connection's own end says why.
                return std::future::pending().await;
            }
            let pong = std::future::poll_fn(|cx| ping_pong.poll_pong(cx));
            match tokio::time::timeout(timeout, pong).await {
                Ok(Ok(_)) => {}
                Ok(Err(_)) => return std::future::pending().await,
                Err(_) => return DriverError::KeepaliveTimeout(timeout),
            }
        }
    };
    tokio::select! {
        biased;
        ended = &mut connection => Ok(ended?),
        error = pinging => Err(error),
    }
}

/// Points `request` at `scheme://authority`, keeping its path.
pub(crate) fn set_origin<B>(request: &mut http::Request<B>, scheme: Scheme, authority: &Authority) {
    let mut parts = std::mem::take(request.uri_mut()).into_parts();
    parts.scheme = Some(scheme);
    parts.authority = Some(authority.clone());
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(PathAndQuery::from_static("/"));
    }
    *request.uri_mut() = http::Uri::from_parts(parts).unwrap_or_default();
}

/// The status for a call handed back unsent by the connection to
/// `endpoint` (h2's error, if h2 refused it).
pub(crate) fn unsent_status(error: Option<&h2::Error>, endpoint: &str) -> Status {
    match error {
        Some(error) => transport_status(error, endpoint),
        None => Status::unavailable(format!(
            "call to {endpoint} failed: the connection closed before the call was sent"
        )),
    }
}

/// The status for a call that failed on the connection to `endpoint`.
pub(crate) fn transport_status(error: &h2::Error, endpoint: &str) -> Status {
    let code = match error.reason() {
        Some(h2::Reason::CANCEL) => Code::Cancelled,
        _ => Code::Unavailable,
    };
    Status::new(
        code,
        format!("call to {endpoint} failed: {}", error_chain(error)),
    )
}
