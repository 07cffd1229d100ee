//! The certificates of the mTLS runs: one CA, and from it the
//! greeter-servers' identity, the client's, and the one the control
//! plane's health probes present (the servers require a client certificate
//! from every peer). Generated at start into a temporary folder, removed
//! when dropped; ECDSA P-256 keys (rcgen's default), chains of one leaf
//! under the CA, as cert-manager issues them from a CA issuer.

use tests::certs::{Ca, Leaf, TlsDir};
use tls_reload::SanMatcher;
use tls_reload::client::{ClientTls, ClientTlsFiles, ServerVerification};

/// The SAN of the greeter-servers' certificates, which the Cluster of the
/// mTLS service asks for.
pub(crate) const SERVER_SAN: &str = "greeter.default.svc.cluster.local";
/// The client's identity.
const CLIENT_SAN: &str = "spiffe://cluster.local/ns/default/sa/bench-client";
/// The control plane's identity, presented by its probes.
const PROBE_SAN: &str = "spiffe://cluster.local/ns/default/sa/control-plane";

/// The files, in a folder removed on drop.
#[derive(Debug)]
pub(crate) struct BenchTls {
    dir: TlsDir,
}

impl BenchTls {
    /// A new CA and every identity.
    pub(crate) fn new() -> Self {
        let dir = TlsDir::new();
        let ca = Ca::new("bench CA");
        dir.write("ca.crt", &ca.pem());
        for (stem, san, serial) in [
            ("server", SERVER_SAN, 1),
            ("client", CLIENT_SAN, 2),
            ("probe", PROBE_SAN, 3),
        ] {
            dir.write_identity(stem, &ca.issue(&Leaf::new(&[san], serial)));
        }
        Self { dir }
    }

    /// The path of a file (`ca.crt`, `client.key`, ...).
    pub(crate) fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path(name)
    }

    /// greeter-server's flags: its identity, client certificates required.
    pub(crate) fn server_args(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.dir.arg("server.crt"),
            "--tls-key".into(),
            self.dir.arg("server.key"),
            "--tls-client-ca".into(),
            self.dir.arg("ca.crt"),
        ]
    }

    /// control-plane serve's flags for probing the mTLS backends.
    pub(crate) fn probe_args(&self) -> Vec<String> {
        vec![
            "--probe-tls-ca".into(),
            self.dir.arg("ca.crt"),
            "--probe-tls-cert".into(),
            self.dir.arg("probe.crt"),
            "--probe-tls-key".into(),
            self.dir.arg("probe.key"),
        ]
    }

    /// The certificate provider our channel is built with (roots and the
    /// client's identity); which SANs to accept comes from the Cluster.
    pub(crate) fn provider(&self) -> xds_balancer::CertificateProvider {
        xds_balancer::CertificateProvider::roots(self.path("ca.crt"))
            .with_identity(self.path("client.crt"), self.path("client.key"))
    }

    /// TLS for a plain tonic client of the servers: the client's identity,
    /// servers checked by SAN as the Cluster asks. Needs a Tokio runtime.
    pub(crate) fn client(&self) -> Result<(ClientTls, ServerVerification), tls_reload::Error> {
        let tls = ClientTls::load(&ClientTlsFiles {
            ca: self.path("ca.crt"),
            cert: Some(self.path("client.crt")),
            key: Some(self.path("client.key")),
        })?;
        Ok((
            tls,
            ServerVerification::SanMatchers(vec![SanMatcher::Exact(SERVER_SAN.into())]),
        ))
    }
}
