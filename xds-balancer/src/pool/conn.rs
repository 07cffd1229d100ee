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
//!   buffering its body; so is a unary request (its one DATA frame kept as a
//!   second handle on the same bytes) whose stream the server refused, or
//!   whose connection failed before any write since the stream opened
//!   reached the socket (a server killed a moment before: the peer's close
//!   is read before the call's HEADERS are written);
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
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use http::uri::{Authority, PathAndQuery, Scheme};
use tonic::{Code, Status};

use tls_reload::client::HandshakeFailure;

use super::stream::{self, Piped, RecvBody};
use crate::error::error_chain;
use crate::model::label;

mod connect;
mod socket;

pub(crate) use connect::connect;
pub(crate) use socket::{ConnSignals, SniffIo};
use socket::{SETTINGS_SEEN, UNUSABLE};

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
            let writes = conn.signals.writes.load(Ordering::Acquire);
            let (response, pipe, whole) = conn.open_stream(request)?;
            match response.await {
                Ok(response) => Ok(response.map(|body| RecvBody::new(body, pipe, slot))),
                Err(error) => match whole {
                    Some((head, data)) if conn.never_reached_server(&error, writes) => {
                        Err(SendError::Unsent {
                            request: Box::new(http::Request::from_parts(head, replay(&data))),
                            error: Some(error),
                        })
                    }
                    _ => Err(SendError::Failed(error)),
                },
            }
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

    /// Whether a call whose stream failed with `error` certainly never
    /// reached the server, so that sending it elsewhere cannot run it twice:
    /// the server refused it (REFUSED_STREAM, or a GOAWAY below its stream),
    /// or the connection failed with no write reaching the socket since the
    /// call's stream was opened (`writes` was the count then): a peer that
    /// died, seen by h2 before it wrote the call's HEADERS.
    fn never_reached_server(&self, error: &h2::Error, writes: usize) -> bool {
        let refused = error.is_remote()
            && (error.is_go_away() || error.reason() == Some(h2::Reason::REFUSED_STREAM));
        let unwritten = error.is_io() && self.signals.writes.load(Ordering::Acquire) == writes;
        refused || unwritten
    }

    /// Opens the request's stream and queues its ready frames.
    fn open_stream(&self, request: http::Request<RequestBody>) -> Result<Opened, SendError> {
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
                let piped = if end {
                    Piped::Whole(Bytes::new())
                } else {
                    stream::pipe(body, stream)
                };
                Ok(match piped {
                    Piped::Whole(data) => (response, None, Some((head, data))),
                    Piped::Rest(pipe) => (response, Some(pipe), None),
                    Piped::Sent => (response, None, None),
                })
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

/// A stream handed to h2: its response, the task sending the rest of its
/// body (if any), and the request's head and body when the whole body went
/// at once (to send again if it never reached the server).
type Opened = (
    h2::client::ResponseFuture,
    Option<stream::CancelPipe>,
    Option<(http::request::Parts, Bytes)>,
);

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
    /// It certainly never reached the server (never left this client, or
    /// refused by the server): safe to send elsewhere.
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

/// A body for one more attempt with a kept request (its bytes, shared).
pub(crate) fn replay(bytes: &Bytes) -> RequestBody {
    if bytes.is_empty() {
        RequestBody::empty()
    } else {
        RequestBody::new(http_body_util::Full::new(bytes.clone()))
    }
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
