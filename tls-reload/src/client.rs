//! The client side: the CA bundle that server certificates must chain to,
//! an optional identity for servers that require one (mutual TLS), server
//! verification by host name or by SAN matchers, and handshake failures
//! told apart by cause.
//!
//! A failure that only shows after the handshake (a TLS 1.3 server refusing
//! the client's certificate sends its alert after the client thinks it is
//! done), and a plaintext connection answered by a TLS server, are caught by
//! [`Observed`], which watches the first bytes and errors of a connection
//! and writes what it recognised into a [`Note`].

use std::fmt;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_cert_signed_by_trust_anchor};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    AlertDescription, CertificateError, ClientConfig, DigitallySignedStruct, OtherError,
    RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::identity::{PeerIdentity, SanMatcher};
use super::reload::{self, Reloading, WatchedFile};
use super::{ALPN_H2, Error, Result, pem, provider};

/// Where a client's TLS files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTlsFiles {
    /// CA certificates that server certificates must chain to (PEM).
    pub ca: PathBuf,
    /// The client's certificate chain, for servers that require one.
    pub cert: Option<PathBuf>,
    /// The key of `cert`.
    pub key: Option<PathBuf>,
}

/// How a server's certificate is checked, beyond chaining to the CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerVerification {
    /// It must be valid for this name (the host the client dialled), as
    /// browsers and `curl` check.
    Hostname(String),
    /// One of its URI or DNS SANs must satisfy one of these matchers, as
    /// gRPC's xDS clients check (an empty list accepts any certificate
    /// from the CA).
    SanMatchers(Vec<SanMatcher>),
}

struct Material {
    roots: Arc<RootCertStore>,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
}

impl fmt::Debug for Material {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Material")
            .field("roots", &self.roots.len())
            .field("identity", &self.identity.is_some())
            .finish()
    }
}

/// A client's TLS material, kept current with its files. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ClientTls {
    material: Reloading<Material>,
}

impl ClientTls {
    /// Loads `files` (an error names the file at fault) and re-reads them
    /// every second. Certificate and key go together. Must be called within
    /// a Tokio runtime.
    pub fn load(files: &ClientTlsFiles) -> Result<Self> {
        Self::load_every(files, reload::DEFAULT_INTERVAL)
    }

    /// [`ClientTls::load`], re-reading every `interval`.
    pub fn load_every(files: &ClientTlsFiles, interval: Duration) -> Result<Self> {
        let mut watched = vec![WatchedFile::new("CA", &files.ca)];
        let identity = match (&files.cert, &files.key) {
            (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
            (None, None) => None,
            (Some(cert), None) => {
                return Err(Error::Empty {
                    what: "client certificate",
                    path: cert.clone(),
                    expected: "matching key (a certificate was given without a key)",
                });
            }
            (None, Some(key)) => {
                return Err(Error::Empty {
                    what: "client key",
                    path: key.clone(),
                    expected: "matching certificate (a key was given without a certificate)",
                });
            }
        };
        if let Some((cert, key)) = &identity {
            watched.push(WatchedFile::new("client certificate", cert));
            watched.push(WatchedFile::new("client key", key));
        }
        let ca = files.ca.clone();
        let material = Reloading::start(watched, interval, move |contents| {
            let roots = Arc::new(pem::roots(&ca, &contents[0])?);
            let identity = match &identity {
                Some((cert_path, key_path)) => {
                    let certs = pem::certificates("client certificate", cert_path, &contents[1])?;
                    let key = pem::private_key(key_path, &contents[2])?;
                    // Checks that the key fits the certificate.
                    ClientConfig::builder_with_provider(provider())
                        .with_safe_default_protocol_versions()
                        .map_err(Error::Config)?
                        .with_root_certificates(roots.clone())
                        .with_client_auth_cert(certs.clone(), key.clone_key())
                        .map_err(|source| Error::Identity {
                            cert: cert_path.clone(),
                            key: key_path.clone(),
                            source,
                        })?;
                    Some((certs, key))
                }
                None => None,
            };
            Ok(Material { roots, identity })
        })?;
        Ok(Self { material })
    }

    /// Whether a client certificate is configured.
    pub fn has_identity(&self) -> bool {
        self.material.current().identity.is_some()
    }

    /// A rustls configuration with the current files, verifying servers as
    /// `verify` says.
    pub fn config(&self, verify: &ServerVerification) -> Result<Arc<ClientConfig>> {
        let material = self.material.current();
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(Error::Config)?;
        let builder = match verify {
            ServerVerification::Hostname(_) => {
                let verifier = WebPkiServerVerifier::builder_with_provider(
                    material.roots.clone(),
                    provider.clone(),
                )
                .build()
                .map_err(|error| Error::Config(rustls::Error::General(error.to_string())))?;
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(verifier)
            }
            ServerVerification::SanMatchers(matchers) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(SanVerifier {
                    roots: material.roots.clone(),
                    matchers: matchers.clone(),
                    provider,
                })),
        };
        let mut config = match &material.identity {
            Some((certs, key)) => builder
                .with_client_auth_cert(certs.clone(), key.clone_key())
                .map_err(Error::Config)?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        Ok(Arc::new(config))
    }

    /// Runs the TLS handshake over `stream`.
    pub async fn handshake(
        &self,
        stream: TcpStream,
        verify: &ServerVerification,
    ) -> Result<TlsStream<TcpStream>, HandshakeFailure> {
        let config = self
            .config(verify)
            .map_err(|error| HandshakeFailure::Other(crate::error_chain(&error)))?;
        let name = match verify {
            ServerVerification::Hostname(host) => {
                ServerName::try_from(host.clone()).map_err(|error| {
                    HandshakeFailure::Other(format!("bad server name {host:?}: {error}"))
                })?
            }
            // The peer's address: rustls sends no SNI for an IP address.
            ServerVerification::SanMatchers(_) => match stream.peer_addr() {
                Ok(addr) => ServerName::IpAddress(addr.ip().into()),
                Err(error) => return Err(HandshakeFailure::Other(error.to_string())),
            },
        };
        TlsConnector::from(config)
            .connect(name, stream)
            .await
            .map_err(|error| HandshakeFailure::classify(&error, self.has_identity()))
    }
}

/// Why a TLS connection failed, by cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// The server's certificate does not chain to the configured CA.
    UnknownCa,
    /// The server's certificate is for other names.
    NameMismatch {
        /// What was expected (a host name, or the SAN matchers).
        expected: String,
        /// The SANs it presented.
        presented: String,
    },
    /// The server's certificate has expired.
    Expired,
    /// The server's certificate is not valid yet.
    NotYetValid,
    /// The server requires a client certificate and none is configured.
    ClientCertificateRequired,
    /// The server refused the client's certificate.
    ClientCertificateRefused(String),
    /// The endpoint does not speak TLS (a plaintext port).
    NotTls,
    /// The endpoint speaks TLS, but this connection was plaintext.
    PlaintextToTls,
    /// Anything else.
    Other(String),
}

impl fmt::Display for HandshakeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownCa => f.write_str(
                "TLS handshake failed: unknown CA: the server's certificate does not chain to \
                 the configured CA",
            ),
            Self::NameMismatch {
                expected,
                presented,
            } => write!(
                f,
                "TLS handshake failed: SAN mismatch: expected {expected}, the server's \
                 certificate presents {presented}"
            ),
            Self::Expired => {
                f.write_str("TLS handshake failed: the server's certificate has expired")
            }
            Self::NotYetValid => {
                f.write_str("TLS handshake failed: the server's certificate is not valid yet")
            }
            Self::ClientCertificateRequired => f.write_str(
                "TLS handshake failed: the server requires a client certificate and none is \
                 configured",
            ),
            Self::ClientCertificateRefused(alert) => write!(
                f,
                "TLS handshake failed: the server refused our client certificate ({alert})"
            ),
            Self::NotTls => f.write_str(
                "TLS handshake failed: the endpoint does not speak TLS (it answered in plaintext \
                 or closed the connection during the handshake)",
            ),
            Self::PlaintextToTls => f.write_str(
                "the endpoint speaks TLS but this connection is plaintext (it answered with a \
                 TLS record)",
            ),
            Self::Other(text) => write!(f, "TLS handshake failed: {text}"),
        }
    }
}

impl std::error::Error for HandshakeFailure {}

impl HandshakeFailure {
    /// The cause of a failed handshake (or of a TLS connection's first
    /// read failing); `has_identity` tells whether we offered a certificate.
    pub fn classify(error: &io::Error, has_identity: bool) -> Self {
        if let Some(tls) = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Self::from_rustls(tls, has_identity);
        }
        match error.kind() {
            io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => Self::NotTls,
            _ => Self::Other(error.to_string()),
        }
    }

    fn from_rustls(error: &rustls::Error, has_identity: bool) -> Self {
        use rustls::Error as E;
        match error {
            E::InvalidCertificate(cert) => match cert {
                CertificateError::UnknownIssuer => Self::UnknownCa,
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    Self::Expired
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    Self::NotYetValid
                }
                CertificateError::NotValidForNameContext {
                    expected,
                    presented,
                } => Self::NameMismatch {
                    expected: format!("{expected:?}"),
                    presented: format!("[{}]", presented.join(", ")),
                },
                CertificateError::Other(OtherError(other)) => {
                    match other.downcast_ref::<SanMismatch>() {
                        Some(mismatch) => Self::NameMismatch {
                            expected: mismatch.expected.clone(),
                            presented: mismatch.presented.clone(),
                        },
                        None => Self::Other(error.to_string()),
                    }
                }
                _ => Self::Other(error.to_string()),
            },
            E::AlertReceived(AlertDescription::CertificateRequired) => {
                Self::ClientCertificateRequired
            }
            E::AlertReceived(AlertDescription::HandshakeFailure) if !has_identity => {
                Self::ClientCertificateRequired
            }
            E::AlertReceived(
                alert @ (AlertDescription::BadCertificate
                | AlertDescription::UnknownCA
                | AlertDescription::CertificateExpired
                | AlertDescription::CertificateUnknown
                | AlertDescription::AccessDenied),
            ) if has_identity => Self::ClientCertificateRefused(format!("{alert:?}")),
            E::InvalidMessage(_) => Self::NotTls,
            other => Self::Other(other.to_string()),
        }
    }
}

/// The SAN check of [`SanVerifier`] failed.
#[derive(Debug)]
struct SanMismatch {
    expected: String,
    presented: String,
}

impl fmt::Display for SanMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "certificate SANs {} match none of {}",
            self.presented, self.expected
        )
    }
}

impl std::error::Error for SanMismatch {}

/// Chain to the roots, then SANs against matchers: gRPC's xDS check.
#[derive(Debug)]
struct SanVerifier {
    roots: Arc<RootCertStore>,
    matchers: Vec<SanMatcher>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for SanVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let parsed = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        let identity = PeerIdentity::from_certificate(end_entity).unwrap_or_default();
        if SanMatcher::any_accepts(&self.matchers, &identity) {
            return Ok(ServerCertVerified::assertion());
        }
        let expected: Vec<String> = self.matchers.iter().map(ToString::to_string).collect();
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(
            OtherError(Arc::new(SanMismatch {
                expected: format!("one of [{}]", expected.join(", ")),
                presented: identity.to_string(),
            })),
        )))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The first failure recognised on a connection, shared between the
/// connection and whoever wants to explain its end.
#[derive(Debug, Clone, Default)]
pub struct Note(Arc<Mutex<Option<HandshakeFailure>>>);

impl Note {
    /// What was recognised, if anything.
    pub fn get(&self) -> Option<HandshakeFailure> {
        self.0.lock().ok().and_then(|note| note.clone())
    }

    fn set(&self, failure: HandshakeFailure) {
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
