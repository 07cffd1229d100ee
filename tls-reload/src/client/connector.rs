//! Connecting: tonic's connector (TCP, then TLS when configured), and two
//! probes that tell a TLS port from a plaintext one after a connection
//! failed without a word.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::{ClientTls, HandshakeFailure, Note, Observed, ServerVerification, establish};
use crate::{ALPN_H2, provider};

/// A connector for tonic's `Endpoint::connect_with_connector`: TCP with
/// `TCP_NODELAY`, then TLS when configured; failures recognised on the
/// way go to its [`Note`]. Give tonic an `http://` URI either way: TLS is
/// this connector's business.
#[derive(Debug, Clone)]
pub struct Connector {
    tls: Option<(ClientTls, ServerVerification)>,
    note: Note,
}

impl Connector {
    /// Plaintext when `tls` is `None`.
    pub fn new(tls: Option<(ClientTls, ServerVerification)>) -> Self {
        Self {
            tls,
            note: Note::default(),
        }
    }

    /// Where recognised failures are written.
    pub fn note(&self) -> Note {
        self.note.clone()
    }
}

impl tower::Service<Uri> for Connector {
    type Response = TokioIo<Observed>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TokioIo<Observed>>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = self.tls.clone();
        let note = self.note.clone();
        Box::pin(async move {
            let host = uri
                .host()
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no host in URI"))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri.port_u16().unwrap_or(80);
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            match establish(tcp, tls.as_ref(), note.clone()).await {
                Ok(stream) => Ok(TokioIo::new(stream)),
                Err(failure) => {
                    note.set(failure.clone());
                    Err(io::Error::other(failure))
                }
            }
        })
    }
}

/// A second look at a plaintext connection that failed without a word: a
/// server that answers a cleartext HTTP/2 preface with a TLS record speaks
/// TLS on that port. (Its alert can lose the race with a reset on the first
/// connection; a fresh one that only reads tells it reliably.)
pub async fn plaintext_to_tls(
    authority: &str,
    limit: std::time::Duration,
) -> Option<HandshakeFailure> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let look = async {
        let mut stream = TcpStream::connect(authority).await.ok()?;
        stream
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .ok()?;
        let mut first = [0u8; 2];
        stream.read_exact(&mut first).await.ok()?;
        (matches!(first[0], 21 | 22) && first[1] == 3).then_some(HandshakeFailure::PlaintextToTls)
    };
    tokio::time::timeout(limit, look).await.ok().flatten()
}

/// Whether the server at `authority` speaks TLS: a TLS handshake that
/// trusts no CA gets as far as the server's certificate (or a TLS alert)
/// from a TLS server, and plaintext, a reset or silence from anything else.
/// Nothing is sent after the ClientHello. For telling a TLS-only port
/// apart from one that closes connections it cannot make sense of.
pub async fn speaks_tls(authority: &str, limit: std::time::Duration) -> bool {
    let look = async {
        let Ok(tcp) = TcpStream::connect(authority).await else {
            return false;
        };
        let Ok(builder) =
            ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()
        else {
            return false;
        };
        let mut config = builder
            .with_root_certificates(RootCertStore::empty())
            .with_no_client_auth();
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        let host = authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host)
            .trim_start_matches('[')
            .trim_end_matches(']');
        let name = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => match ServerName::try_from(host.to_owned()) {
                Ok(name) => name,
                Err(_) => return false,
            },
        };
        match TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
        {
            // No CA is trusted, so this cannot succeed; if it did, it is TLS.
            Ok(_) => true,
            Err(error) => error
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .is_some_and(|tls| {
                    matches!(
                        tls,
                        rustls::Error::InvalidCertificate(_)
                            | rustls::Error::AlertReceived(_)
                            | rustls::Error::PeerIncompatible(_)
                            | rustls::Error::NoApplicationProtocol
                    )
                }),
        }
    };
    tokio::time::timeout(limit, look).await.unwrap_or(false)
}
