//! The socket side of a connection: [`SniffIo`] wraps the TCP (or TLS)
//! stream, watches the server's frames on the way in, and publishes what it
//! sees in [`ConnSignals`], which the picker reads with one atomic load.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

use tls_reload::client::Observed;

use crate::frames::{FrameEvent, FrameReader};

/// The server's HTTP/2 SETTINGS arrived.
pub(super) const SETTINGS_SEEN: u8 = 1 << 0;
/// The server sent GOAWAY.
pub(super) const GOAWAY: u8 = 1 << 1;
/// The read side ended (EOF or error).
pub(super) const READ_CLOSED: u8 = 1 << 2;
/// The socket was closed (dropped).
pub(super) const DROPPED: u8 = 1 << 3;
/// Taken out of rotation by its owner (retired, driver ended).
pub(super) const WITHDRAWN: u8 = 1 << 4;
/// Its health service reports NOT_SERVING.
pub(super) const NOT_SERVING: u8 = 1 << 5;
/// Any of these makes the connection unusable for new calls.
pub(super) const UNUSABLE: u8 = GOAWAY | READ_CLOSED | DROPPED | WITHDRAWN | NOT_SERVING;

/// What is known about a connection, shared by its socket, its owner task
/// and the picker.
#[derive(Debug, Default)]
pub(crate) struct ConnSignals {
    pub(super) flags: AtomicU8,
    changed: Notify,
    /// Writes to the socket that took bytes: a call whose connection failed
    /// with none since its stream was opened never reached the server.
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

    pub(super) async fn wait_for(&self, done: impl Fn(u8) -> bool) {
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
    pub(super) stream: Observed,
    pub(super) reader: FrameReader,
    pub(super) signals: Arc<ConnSignals>,
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
    fn count(&self, written: &Poll<io::Result<usize>>) {
        if let Poll::Ready(Ok(1..)) = written {
            // Release: a call that reads the count after its stream failed
            // sees every write made before the failure.
            self.signals.writes.fetch_add(1, Ordering::Release);
        }
    }
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
