//! Why a TLS connection failed, told apart by cause from rustls's errors
//! and the I/O errors around them.

use std::fmt;
use std::io;

use rustls::{AlertDescription, CertificateError, OtherError};

use super::verify::SanMismatch;

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
