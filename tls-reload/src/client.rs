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
//!
//! This file holds the configuration ([`ClientTls`]); the rest is split by
//! role:
//!
//! - `failure`: [`HandshakeFailure`], the cause of a failed connection.
//! - `verify`: the SAN-matcher server verifier.
//! - `observed`: [`Observed`], the connection that notes late failures,
//!   and [`establish`].
//! - `connector`: tonic's [`Connector`], and the probes
//!   [`plaintext_to_tls`] and [`speaks_tls`].

mod connector;
mod failure;
mod observed;
mod verify;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

pub use self::connector::{Connector, plaintext_to_tls, speaks_tls};
pub use self::failure::HandshakeFailure;
pub use self::observed::{ClientStream, Note, Observed, establish};
use self::verify::SanVerifier;
use super::identity::SanMatcher;
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
