//! A client connection, plaintext or TLS, that watches its first bytes and
//! errors: a failure that only shows after the handshake (a TLS 1.3 server
//! refusing the client's certificate sends its alert after the client
//! thinks it is done), and a plaintext connection answered by a TLS server,
//! are written into the connection's [`Note`].

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::{ClientTls, HandshakeFailure, ServerVerification};

/// The first failure recognised on a connection, shared between the
/// connection and whoever wants to explain its end.
#[derive(Debug, Clone, Default)]
pub struct Note(Arc<Mutex<Option<HandshakeFailure>>>);

impl Note {
    /// What was recognised, if anything.
    pub fn get(&self) -> Option<HandshakeFailure> {
        self.0.lock().ok().and_then(|note| note.clone())
    }

    pub(super) fn set(&self, failure: HandshakeFailure) {
        if let Ok(mut note) = self.0.lock()
            && note.is_none()
        {
            *note = Some(failure);
        }
    }
}

/// A client connection, plaintext or TLS.
#[derive(Debug)]
pub enum ClientStream {
    /// Plaintext.
    Plain(TcpStream),
    /// TLS.
    Tls(Box<TlsStream<TcpStream>>),
}

/// A connection that records in a [`Note`] a TLS failure surfacing after
/// the handshake, or a TLS answer to a plaintext connection.
#[derive(Debug)]
pub struct Observed {
    stream: ClientStream,
    note: Note,
    has_identity: bool,
    first_read: bool,
}

impl AsyncRead for Observed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let result = match &mut this.stream {
            ClientStream::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            ClientStream::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        };
        let tls = matches!(this.stream, ClientStream::Tls(_));
        match &result {
            Poll::Ready(Ok(())) if !this.first_read => {
                let new = &buf.filled()[before..];
                this.first_read = true;
                if tls {
                    if new.is_empty() {
                        // Closed before a single byte of HTTP/2: the server
                        // refused us right after the handshake (a TLS 1.3
                        // server checks the client's certificate last).
                        this.note.set(refused_after_handshake(this.has_identity));
                    }
                } else if new.len() >= 2 && matches!(new[0], 21 | 22) && new[1] == 3 {
                    // A TLS record (alert 21 or handshake 22, version 3.x)
                    // in answer to plaintext.
                    this.note.set(HandshakeFailure::PlaintextToTls);
                }
            }
            Poll::Ready(Err(error)) if tls => {
                match HandshakeFailure::classify(error, this.has_identity) {
                    HandshakeFailure::Other(_) | HandshakeFailure::NotTls if !this.first_read => {
                        this.note.set(refused_after_handshake(this.has_identity));
                    }
                    HandshakeFailure::Other(_) | HandshakeFailure::NotTls => {}
                    known => this.note.set(known),
                }
                this.first_read = true;
            }
            _ => {}
        }
        result
    }
}

impl Observed {
    /// Notes a failed write: on a TLS connection that has read nothing
    /// yet, the server refused us after the handshake.
    fn on_write<T>(&mut self, result: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if let (Poll::Ready(Err(error)), ClientStream::Tls(_)) = (&result, &self.stream) {
            match HandshakeFailure::classify(error, self.has_identity) {
                HandshakeFailure::Other(_) | HandshakeFailure::NotTls if !self.first_read => {
                    self.note.set(refused_after_handshake(self.has_identity));
                }
                HandshakeFailure::Other(_) | HandshakeFailure::NotTls => {}
                known => self.note.set(known),
            }
        }
        result
    }
}

impl AsyncWrite for Observed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = match &mut self.stream {
            ClientStream::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            ClientStream::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        };
        self.on_write(result)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = match &mut self.stream {
            ClientStream::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            ClientStream::Tls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        };
        self.on_write(result)
    }

    /// HTTP/2 writes frames as several buffers: pass them on in one call
    /// where the stream can take them.
    fn is_write_vectored(&self) -> bool {
        match &self.stream {
            ClientStream::Plain(stream) => stream.is_write_vectored(),
            ClientStream::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = match &mut self.stream {
            ClientStream::Plain(stream) => Pin::new(stream).poll_flush(cx),
            ClientStream::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        };
        self.on_write(result)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.stream {
            ClientStream::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            ClientStream::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Why a server closes a TLS connection before sending anything.
fn refused_after_handshake(has_identity: bool) -> HandshakeFailure {
    if has_identity {
        HandshakeFailure::ClientCertificateRefused(
            "it closed the connection right after the handshake".to_owned(),
        )
    } else {
        HandshakeFailure::ClientCertificateRequired
    }
}

/// Runs the TLS handshake over `tcp` when `tls` says so (plaintext
/// otherwise); failures that surface later on the connection (a client
/// certificate refused after a TLS 1.3 handshake, a TLS answer to
/// plaintext) are written to `note`.
pub async fn establish(
    tcp: TcpStream,
    tls: Option<&(ClientTls, ServerVerification)>,
    note: Note,
) -> Result<Observed, HandshakeFailure> {
    let (stream, has_identity) = match tls {
        None => (ClientStream::Plain(tcp), false),
        Some((tls, verify)) => {
            let stream = tls.handshake(tcp, verify).await?;
            (ClientStream::Tls(Box::new(stream)), tls.has_identity())
        }
    };
    Ok(Observed {
        stream,
        note,
        has_identity,
        first_read: false,
    })
}
