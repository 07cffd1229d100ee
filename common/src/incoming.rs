//! The accept loop handed to tonic's `serve_with_incoming_shutdown`.
//!
//! Serving from our own listener (instead of letting tonic bind) lets the
//! caller bind first (port 0 in tests, log the real address) and lets us tag
//! each connection. Two things tonic would otherwise do for its own listener
//! are done here: `TCP_NODELAY` on every accepted socket (without it, small
//! unary calls on a busy connection wait on Nagle against delayed ACKs), and
//! pausing briefly after an accept error such as `EMFILE` instead of spinning.
//!
//! With TLS ([`ServerTls`]), each accepted connection's handshake runs in a
//! task of its own, bounded by [`HANDSHAKE_TIMEOUT`], so a slow or garbage
//! client never holds up the accept loop; a failed handshake closes that
//! connection only and is logged with its cause. The peer's certificate
//! identity (mutual TLS) is part of [`ConnInfo`].

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use futures::stream::BoxStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tonic::transport::server::Connected;

use crate::tls::{PeerIdentity, ServerTls};

/// How long to pause accepting after an accept error.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);
/// How long a client may take to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshaken connections waiting for the server to take them.
const HANDSHAKEN_QUEUE: usize = 64;

/// What a handler can learn about the connection its call arrived on; tonic
/// puts it in every request's extensions.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// Unique per accepted connection within this process, starting at 1.
    pub id: u64,
    /// The peer's address.
    pub remote_addr: Option<SocketAddr>,
    /// Our address on this connection.
    pub local_addr: Option<SocketAddr>,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// The identity in the client's verified certificate (mutual TLS only).
    pub peer_identity: Option<Arc<PeerIdentity>>,
}

/// Counts of accepted connections, shared with the accept loop.
#[derive(Debug, Default)]
pub struct ConnCounters {
    accepted: AtomicU64,
}

impl ConnCounters {
    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
}

/// An accepted connection (plaintext or TLS) tagged with its [`ConnInfo`].
#[derive(Debug)]
pub struct Conn {
    stream: Transport,
    info: ConnInfo,
}

#[derive(Debug)]
enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

macro_rules! delegate {
    ($self:ident, $stream:ident => $call:expr) => {
        match &mut $self.stream {
            Transport::Plain($stream) => {
                let $stream = Pin::new($stream);
                $call
            }
            Transport::Tls($stream) => {
                let $stream = Pin::new($stream.as_mut());
                $call
            }
        }
    };
}

impl Connected for Conn {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        self.info.clone()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        delegate!(self, stream => stream.poll_read(cx, buf))
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, stream => stream.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, stream => stream.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match &self.stream {
            Transport::Plain(stream) => stream.is_write_vectored(),
            Transport::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, stream => stream.poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, stream => stream.poll_shutdown(cx))
    }
}

/// Turns a bound listener into the connection stream tonic serves from:
/// plaintext, or TLS with `tls`.
///
/// The stream never ends on its own; tonic stops polling it (and drops it,
/// closing the listening socket) when its shutdown signal fires.
pub fn accept(
    listener: TcpListener,
    counters: Arc<ConnCounters>,
    tls: Option<ServerTls>,
) -> BoxStream<'static, io::Result<Conn>> {
    match tls {
        None => Box::pin(accept_plain(listener, counters)),
        Some(tls) => Box::pin(accept_tls(listener, counters, tls)),
    }
}

fn accept_plain(
    listener: TcpListener,
    counters: Arc<ConnCounters>,
) -> impl Stream<Item = io::Result<Conn>> + Send + 'static {
    futures::stream::unfold((listener, counters), |(listener, counters)| async move {
        let item = match listener.accept().await {
            Ok((stream, remote_addr)) => {
                let info = accepted(&stream, remote_addr, &counters);
                Ok(Conn {
                    stream: Transport::Plain(stream),
                    info,
                })
            }
            Err(error) => {
                tracing::warn!(%error, "accept failed; pausing before the next accept");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                Err(error)
            }
        };
        Some((item, (listener, counters)))
    })
}

/// Sets `TCP_NODELAY`, numbers the connection and logs it.
fn accepted(stream: &TcpStream, remote_addr: SocketAddr, counters: &ConnCounters) -> ConnInfo {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, %remote_addr, "could not set TCP_NODELAY");
    }
    let id = counters.accepted.fetch_add(1, Ordering::Relaxed) + 1;
    tracing::debug!(conn = id, %remote_addr, "connection accepted");
    ConnInfo {
        id,
        remote_addr: Some(remote_addr),
        local_addr: stream.local_addr().ok(),
        tls: false,
        peer_identity: None,
    }
}

/// Accepts in a task of its own, one handshake task per connection; the
/// accept task (and the listening socket) ends when the returned stream is
/// dropped.
fn accept_tls(
    listener: TcpListener,
    counters: Arc<ConnCounters>,
    tls: ServerTls,
) -> impl Stream<Item = io::Result<Conn>> + Send + 'static {
    let (ready_tx, ready_rx) = mpsc::channel(HANDSHAKEN_QUEUE);
    tokio::spawn(async move {
        loop {
            let accepted_result = tokio::select! {
                () = ready_tx.closed() => return,
                result = listener.accept() => result,
            };
            match accepted_result {
                Ok((stream, remote_addr)) => {
                    let info = accepted(&stream, remote_addr, &counters);
                    let acceptor = tls.acceptor();
                    let ready_tx = ready_tx.clone();
                    tokio::spawn(async move {
                        let id = info.id;
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                        {
                            Ok(Ok(stream)) => {
                                let peer_identity = stream
                                    .get_ref()
                                    .1
                                    .peer_certificates()
                                    .and_then(|certs| certs.first())
                                    .and_then(PeerIdentity::from_certificate)
                                    .map(Arc::new);
                                match &peer_identity {
                                    Some(peer) => tracing::debug!(
                                        conn = id,
                                        %remote_addr,
                                        peer = %peer,
                                        serial = %peer.serial,
                                        "TLS connection with a client certificate"
                                    ),
                                    None => {
                                        tracing::debug!(conn = id, %remote_addr, "TLS connection")
                                    }
                                }
                                let info = ConnInfo {
                                    tls: true,
                                    peer_identity,
                                    ..info
                                };
                                let conn = Conn {
                                    stream: Transport::Tls(Box::new(stream)),
                                    info,
                                };
                                // A closed queue means the server stopped.
                                let _ = ready_tx.send(Ok(conn)).await;
                            }
                            Ok(Err(error)) => {
                                tracing::info!(conn = id, %remote_addr, %error, "TLS handshake failed; connection closed");
                            }
                            Err(_) => {
                                tracing::info!(conn = id, %remote_addr, timeout = ?HANDSHAKE_TIMEOUT, "TLS handshake timed out; connection closed");
                            }
                        }
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, "accept failed; pausing before the next accept");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(ready_rx)
}
