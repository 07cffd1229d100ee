//! The accept loop handed to tonic's `serve_with_incoming_shutdown`.
//!
//! Serving from our own listener (instead of letting tonic bind) lets the
//! caller bind first (port 0 in tests, log the real address) and lets us tag
//! each connection. Two things tonic would otherwise do for its own listener
//! are done here: `TCP_NODELAY` on every accepted socket (without it, small
//! unary calls on a busy connection wait on Nagle against delayed ACKs), and
//! pausing briefly after an accept error such as `EMFILE` instead of spinning.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tonic::transport::server::Connected;

/// How long to pause accepting after an accept error.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

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

/// An accepted TCP connection tagged with its [`ConnInfo`].
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    info: ConnInfo,
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
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
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

/// Turns a bound listener into the connection stream tonic serves from.
///
/// The stream never ends on its own; tonic stops polling it (and drops it,
/// closing the listening socket) when its shutdown signal fires.
pub fn accept(
    listener: TcpListener,
    counters: Arc<ConnCounters>,
) -> impl Stream<Item = io::Result<Conn>> + Send + 'static {
    futures::stream::unfold((listener, counters), |(listener, counters)| async move {
        let item = match listener.accept().await {
            Ok((stream, remote_addr)) => {
                if let Err(error) = stream.set_nodelay(true) {
                    tracing::debug!(%error, %remote_addr, "could not set TCP_NODELAY");
                }
                let id = counters.accepted.fetch_add(1, Ordering::Relaxed) + 1;
                let info = ConnInfo {
                    id,
                    remote_addr: Some(remote_addr),
                    local_addr: stream.local_addr().ok(),
                };
                tracing::debug!(conn = id, %remote_addr, "connection accepted");
                Ok(Conn { stream, info })
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
