//! The TLS settings a bootstrap (or the builder) gives: certificate
//! provider instances that TLS Clusters name, and TLS to the control plane.

use std::path::PathBuf;
use std::time::Duration;

/// A certificate provider instance of the bootstrap (gRPC A29, plugin
/// `file_watcher`): PEM files, re-read as they change.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateProvider {
    /// The identity's certificate chain (with `private_key_file`).
    pub certificate_file: Option<PathBuf>,
    /// The identity's key.
    pub private_key_file: Option<PathBuf>,
    /// Root CAs that server certificates must chain to.
    pub ca_certificate_file: Option<PathBuf>,
    /// How often the files are re-read (default 10 minutes in gRPC; this
    /// client also notices changes within a second).
    pub refresh_interval: Option<Duration>,
}

impl CertificateProvider {
    /// A provider of roots only.
    pub fn roots(ca_certificate_file: impl Into<PathBuf>) -> Self {
        Self {
            certificate_file: None,
            private_key_file: None,
            ca_certificate_file: Some(ca_certificate_file.into()),
            refresh_interval: None,
        }
    }

    /// Sets how often the files are re-read.
    #[must_use]
    pub fn refreshed_every(mut self, interval: Duration) -> Self {
        self.refresh_interval = Some(interval);
        self
    }

    /// Adds an identity (certificate chain and key).
    #[must_use]
    pub fn with_identity(
        mut self,
        certificate_file: impl Into<PathBuf>,
        private_key_file: impl Into<PathBuf>,
    ) -> Self {
        self.certificate_file = Some(certificate_file.into());
        self.private_key_file = Some(private_key_file.into());
        self
    }
}

/// TLS to the control plane: the CA its certificate must chain to, and
/// the client's certificate when it requires one (mTLS). The files are
/// re-read as they change.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ControlPlaneTls {
    /// Root CAs for the control plane's certificate (PEM).
    pub ca_certificate_file: PathBuf,
    /// The client's certificate chain, for a control plane that requires one.
    pub certificate_file: Option<PathBuf>,
    /// Its key.
    pub private_key_file: Option<PathBuf>,
}

impl ControlPlaneTls {
    /// TLS verifying the control plane against `ca_certificate_file`.
    pub fn new(ca_certificate_file: impl Into<PathBuf>) -> Self {
        Self {
            ca_certificate_file: ca_certificate_file.into(),
            certificate_file: None,
            private_key_file: None,
        }
    }

    /// Presents this certificate chain and key to the control plane.
    #[must_use]
    pub fn with_identity(
        mut self,
        certificate_file: impl Into<PathBuf>,
        private_key_file: impl Into<PathBuf>,
    ) -> Self {
        self.certificate_file = Some(certificate_file.into());
        self.private_key_file = Some(private_key_file.into());
        self
    }
}
