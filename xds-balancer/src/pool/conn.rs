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
//!   watches the server's frames ([`crate::frames`]) and the socket's end,
//!   and publishes them in [`ConnSignals`], which the picker reads with one
//!   atomic load per call. A GOAWAY, EOF or read error takes the connection
//!   out of rotation at once, before hyper itself notices.
//!
//! A connection counts as established once the server's SETTINGS frame has
//! arrived (it speaks HTTP/2 and is responsive), within the connect timeout.
//!
//! Requests reach hyper in one of two ways. With few calls in flight a call
//! hands its request to hyper itself: the shortest path. With more than
//! [`BATCH_ABOVE`] in flight, calls queue their requests for the
//! connection's dispatch task, which hands hyper everything queued at once.
//! Handed over one at a time, each request wakes hyper's tasks, which tend
//! to run at once (tokio runs a task woken by the running one next) and
//! write it alone; handed over in batches, they leave in fewer, fuller
//! writes, which costs both ends less per call under load
//! (`docs/benchmarks.md`, data path).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::Either;
use hyper::body::Incoming;
use hyper::client::conn::TrySendError;
use hyper::client::conn::http2::{self, Connection, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc, oneshot};

use http::uri::{Authority, PathAndQuery, Scheme};
use tonic::{Code, Status};

use tls_reload::client::{HandshakeFailure, Note, Observed, establish};

use super::tls::EndpointTls;
use crate::error::error_chain;
use crate::frames::{FrameEvent, FrameReader};
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
    /// To the connection's dispatch task.
    queue: mpsc::UnboundedSender<Queued>,
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
    ///
    /// Call it after [`ConnHandle::enter`]: the calls in flight decide
    /// whether the request goes to hyper directly or through the
    /// connection's dispatch task.
    pub(crate) fn send(
        &self,
        request: http::Request<RequestBody>,
    ) -> impl Future<Output = Result<http::Response<Incoming>, SendError>> + Send + 'static {
        let mut sender = self.sender.clone();
        let route = if self.in_flight() > BATCH_ABOVE {
            let (reply, answer) = oneshot::channel();
            match self.queue.send(Queued {
                request: Some(request),
                reply: Some(reply),
            }) {
                Ok(()) => Route::Queued(answer),
                // The dispatch task is gone (the connection is closing):
                // hyper hands the request back.
                Err(mpsc::error::SendError(mut queued)) => match queued.request.take() {
                    Some(request) => Route::Direct(request),
                    None => Route::Lost,
                },
            }
        } else {
            Route::Direct(request)
        };
        async move {
            let sent = match route {
                Route::Direct(request) => Either::Left(sender.try_send_request(request)),
                Route::Queued(answer) => match answer.await {
                    Ok(Reply::Sent(sent)) => Either::Right(sent),
                    Ok(Reply::Unsent(request)) => Either::Left(sender.try_send_request(*request)),
                    Err(_) => return Err(SendError::DispatchEnded),
                },
                Route::Lost => return Err(SendError::DispatchEnded),
            };
            sent.await.map_err(|mut error| match error.take_message() {
                Some(request) => SendError::Unsent {
                    request: Box::new(request),
                    error: error.into_error(),
                },
                None => SendError::Failed(error.into_error()),
            })
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

/// Above this many calls in flight on a connection, requests go through its
/// dispatch task (see the module docs). Measured with `bench data-path
/// --backends 1`: below it the direct path is faster (concurrency 16), above
/// it batching is (concurrency 64).
const BATCH_ABOVE: usize = 32;

/// hyper's answer to one request, once handed to it.
type SentFuture = Pin<
    Box<
        dyn Future<
                Output = Result<http::Response<Incoming>, TrySendError<http::Request<RequestBody>>>,
            > + Send,
    >,
>;

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    /// It never left this client (the connection closed while it was
    /// queued): safe to send elsewhere.
    #[error("the request was not sent: {error}")]
    Unsent {
        request: Box<http::Request<RequestBody>>,
        #[source]
        error: hyper::Error,
    },
    /// It failed on the connection; the server may have seen it.
    #[error(transparent)]
    Failed(hyper::Error),
    /// The connection's dispatch task ended before taking the request (the
    /// runtime is shutting down).
    #[error("the connection's dispatch task ended")]
    DispatchEnded,
}

impl SendError {
    /// The status a call gets for this error on the connection to
    /// `endpoint`.
    pub(crate) fn status(&self, endpoint: &str) -> tonic::Status {
        match self {
            SendError::Unsent { error, .. } | SendError::Failed(error) => {
                transport_status(error, endpoint)
            }
            SendError::DispatchEnded => {
                tonic::Status::unavailable(format!("call to {endpoint} failed: {self}"))
            }
        }
    }
}

/// How a request reaches hyper.
#[expect(
    clippy::large_enum_variant,
    reason = "held once per call, in its future, where the request would be anyway"
)]
enum Route {
    Direct(http::Request<RequestBody>),
    Queued(oneshot::Receiver<Reply>),
    Lost,
}

/// The dispatch task's answer to a queued request.
enum Reply {
    Sent(SentFuture),
    /// Not handed to hyper (the task stopped first).
    Unsent(Box<http::Request<RequestBody>>),
}

/// A request waiting for the dispatch task; dropped untaken, it goes back
/// to its call.
struct Queued {
    request: Option<http::Request<RequestBody>>,
    reply: Option<oneshot::Sender<Reply>>,
}

impl Drop for Queued {
    fn drop(&mut self) {
        if let (Some(request), Some(reply)) = (self.request.take(), self.reply.take()) {
            let _ = reply.send(Reply::Unsent(Box::new(request)));
        }
    }
}

/// Hands queued requests to hyper, everything waiting at once; ends when
/// the connection's handle is dropped.
async fn dispatch(
    mut sender: SendRequest<RequestBody>,
    mut queue: mpsc::UnboundedReceiver<Queued>,
) {
    let mut batch = Vec::new();
    while queue.recv_many(&mut batch, 256).await > 0 {
        for mut queued in batch.drain(..) {
            if let (Some(request), Some(reply)) = (queued.request.take(), queued.reply.take()) {
                // A caller that gave up drops the answer, and with it the
                // request's stream.
                let _ = reply.send(Reply::Sent(Box::pin(sender.try_send_request(request))));
            }
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
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .keep_alive_interval(settings.keepalive_interval)
        .keep_alive_timeout(settings.keepalive_timeout)
        .keep_alive_while_idle(true);
    let (sender, driver) = tokio::time::timeout_at(deadline, builder.handshake(TokioIo::new(io)))
        .await
        .map_err(|_| timed_out())?
        .map_err(|source| {
            tls_failure().unwrap_or_else(|| ConnectError::Handshake {
                endpoint: endpoint(),
                source,
            })
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
        return Err(tls_failure().unwrap_or_else(|| ConnectError::ClosedEarly {
            endpoint: endpoint(),
        }));
    }
    let (queue, queued) = mpsc::unbounded_channel();
    tokio::spawn(dispatch(sender.clone(), queued));
    let handle = Arc::new(ConnHandle {
        addr,
        hostname,
        sender,
        queue,
        signals,
        in_flight: AtomicUsize::new(0),
    });
    Ok((handle, driver))
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

/// The status for a call that failed on the connection to `endpoint`.
pub(crate) fn transport_status(error: &hyper::Error, endpoint: &str) -> Status {
    let h2 = std::error::Error::source(error).and_then(|s| s.downcast_ref::<h2::Error>());
    let code = match h2.and_then(h2::Error::reason) {
        Some(h2::Reason::CANCEL) => Code::Cancelled,
        _ => Code::Unavailable,
    };
    Status::new(
        code,
        format!("call to {endpoint} failed: {}", error_chain(error)),
    )
}
