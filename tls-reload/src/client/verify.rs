//! Server verification by SAN matchers, as gRPC's xDS clients check: the
//! certificate must chain to the CA, then one of its SANs must satisfy a
//! matcher.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};

use crate::identity::{PeerIdentity, SanMatcher};

/// The SAN check of [`SanVerifier`] failed.
#[derive(Debug)]
pub(super) struct SanMismatch {
    pub(super) expected: String,
    pub(super) presented: String,
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
pub(super) struct SanVerifier {
    pub(super) roots: Arc<RootCertStore>,
    pub(super) matchers: Vec<SanMatcher>,
    pub(super) provider: Arc<CryptoProvider>,
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
