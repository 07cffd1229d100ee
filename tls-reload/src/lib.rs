//! TLS for the project's servers and clients: rustls with the `ring`
//! provider (the one kube's client already uses), certificates and keys from
//! PEM files that are re-read when they change. The servers reach it as
//! `common::tls`; the client library links it directly (it needs nothing
//! else of `common`).
//!
//! # Design notes
//!
//! cert-manager and the kubelet replace a mounted Secret by swapping a
//! `..data` symlink, so a file watcher on the original path would miss the
//! change or see a half-updated set. Instead [`reload::Reloading`] re-reads
//! the files every second and rebuilds only when their contents differ;
//! reading through the path follows whatever the symlinks point at now.
//! A set that does not parse (a half-written file, a key that does not fit
//! the certificate) is logged and the last good one stays in use.
//! Connections pick the current configuration when they start, so a new
//! certificate applies to new connections and open ones are left alone.
//!
//! # Layout
//!
//! - [`pem`]: certificates, keys and CA bundles from PEM bytes.
//! - [`reload`]: a value rebuilt from files whenever their contents change.
//! - [`server`]: the server side (identity, optional client CA for mTLS).
//! - [`client`]: the client side (roots, optional identity), server
//!   verification by host name or by SAN matchers, and handshake failures
//!   told apart by cause.
//! - [`identity`]: a peer's SANs and the SAN matchers and patterns.

pub mod client;
pub mod identity;
pub mod pem;
pub mod reload;
pub mod server;

use std::path::PathBuf;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;

pub use self::client::{ClientTls, ClientTlsFiles, ServerVerification};
pub use self::identity::{PeerIdentity, SanMatcher};
pub use self::server::{ServerTls, ServerTlsFiles};

/// An error and its sources, as one line (a cause already in the text is
/// not repeated).
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The ALPN protocol every TLS connection here negotiates.
pub const ALPN_H2: &[u8] = b"h2";

/// The crypto provider used everywhere: ring.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Errors loading TLS material.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("failed to read the {what} file {path}: {source}")]
    Read {
        /// What the file should hold.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file is not PEM, or its PEM is damaged.
    #[error("the {what} file {path} is not valid PEM: {message}")]
    Pem {
        /// What the file should hold.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The parser's complaint.
        message: String,
    },
    /// A file holds none of what it should.
    #[error("the {what} file {path} holds no {expected}")]
    Empty {
        /// What the file should hold.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The PEM block expected.
        expected: &'static str,
    },
    /// The certificate and key do not make a usable identity (for example
    /// the key belongs to another certificate).
    #[error("the certificate {cert} and key {key} are not a usable TLS identity: {source}")]
    Identity {
        /// Certificate path.
        cert: PathBuf,
        /// Key path.
        key: PathBuf,
        /// rustls's reason.
        #[source]
        source: rustls::Error,
    },
    /// The CA bundle cannot be used to verify peers.
    #[error("the CA file {path} cannot be used to verify peers: {message}")]
    Roots {
        /// The path.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration refused: {0}")]
    Config(#[source] rustls::Error),
}

/// The result type of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;
