//! The server side: an identity (certificate chain and key) and, for mutual
//! TLS, the CA that client certificates must chain to; all re-read on
//! change.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use tokio_rustls::TlsAcceptor;

use super::reload::{self, Reloading, WatchedFile};
use super::{ALPN_H2, Error, Result, pem, provider};

/// Where a server's TLS files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTlsFiles {
    /// The certificate chain, leaf first (PEM).
    pub cert: PathBuf,
    /// The private key of the leaf (PEM).
    pub key: PathBuf,
    /// With it, clients must present a certificate that chains to one of
    /// these CAs (mutual TLS).
    pub client_ca: Option<PathBuf>,
}

/// A server's TLS configuration, kept current with its files. Cheap to
/// clone.
#[derive(Debug, Clone)]
pub struct ServerTls {
    config: Reloading<ServerConfig>,
    mutual: bool,
}

impl ServerTls {
    /// Loads `files` (an error names the file at fault) and re-reads them
    /// every second. Must be called within a Tokio runtime.
    pub fn load(files: &ServerTlsFiles) -> Result<Self> {
        Self::load_every(files, reload::DEFAULT_INTERVAL)
    }

    /// [`ServerTls::load`], re-reading every `interval`.
    pub fn load_every(files: &ServerTlsFiles, interval: Duration) -> Result<Self> {
        let mut watched = vec![
            WatchedFile::new("certificate", &files.cert),
            WatchedFile::new("private key", &files.key),
        ];
        if let Some(ca) = &files.client_ca {
            watched.push(WatchedFile::new("client CA", ca));
        }
        let paths = files.clone();
        let config = Reloading::start(watched, interval, move |contents| build(&paths, contents))?;
        Ok(Self {
            config,
            mutual: files.client_ca.is_some(),
        })
    }

    /// An acceptor with the current configuration: a connection accepted
    /// with it keeps that configuration to its end.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config.current())
    }

    /// Whether clients must present a certificate.
    pub fn is_mutual(&self) -> bool {
        self.mutual
    }

    /// Counts reloads; for tests that wait for one.
    pub fn generation(&self) -> tokio::sync::watch::Receiver<u64> {
        self.config.generation()
    }
}

fn build(files: &ServerTlsFiles, contents: &[Vec<u8>]) -> Result<ServerConfig> {
    let certs = pem::certificates("certificate", &files.cert, &contents[0])?;
    let key = pem::private_key(&files.key, &contents[1])?;
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(Error::Config)?;
    let builder = match (&files.client_ca, contents.get(2)) {
        (Some(path), Some(ca)) => {
            let roots = pem::roots(path, ca)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|error| Error::Roots {
                    path: path.clone(),
                    message: error.to_string(),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|source| Error::Identity {
            cert: files.cert.clone(),
            key: files.key.clone(),
            source,
        })?;
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(config)
}
