//! `--tls`: mutual TLS on every hop of the demo. A CA and every identity
//! (greeter-servers, control plane, client, the control plane's probes)
//! are generated at start into the cluster's temporary directory, in the
//! layout the kubelet gives a mounted Secret, and can be rotated mid-run
//! the way cert-manager renews them: new certificates from the same CA,
//! swapped in at once.

use std::path::PathBuf;

use tests::certs::{Ca, Leaf, TlsDir};
use tls_reload::SanMatcher;
use tls_reload::client::{ClientTls, ClientTlsFiles, ServerVerification};

/// The SAN of the greeter-servers' certificates, which the control plane's
/// Cluster asks for (as a cert-manager Certificate for the Service would).
pub(crate) const SERVER_SAN: &str = "greeter.default.svc.cluster.local";
/// The client's SPIFFE identity, the only one the control plane admits.
pub(crate) const CLIENT_SAN: &str = "spiffe://cluster.local/ns/default/sa/demo-client";

/// The demo's certificates.
#[derive(Debug)]
pub(crate) struct DemoTls {
    dir: TlsDir,
    ca: Ca,
    /// The serial of the latest set.
    serial: u64,
}

impl DemoTls {
    /// A new CA and a first set of certificates.
    pub(crate) fn new() -> Self {
        let dir = TlsDir::new();
        let ca = Ca::new("demo CA");
        dir.write("ca.crt", &ca.pem());
        let mut tls = Self { dir, ca, serial: 0 };
        tls.rotate();
        tls
    }

    /// Issues every identity anew (same CA, new serials) and swaps them in.
    /// Returns the servers' new serial.
    pub(crate) fn rotate(&mut self) -> u64 {
        self.serial += 10;
        let base = self.serial;
        for (stem, sans, serial) in [
            ("server", vec![SERVER_SAN], base + 1),
            ("cp", vec!["127.0.0.1", "localhost"], base + 2),
            ("client", vec![CLIENT_SAN], base + 3),
            (
                "probe",
                vec!["spiffe://cluster.local/ns/default/sa/control-plane"],
                base + 4,
            ),
        ] {
            let issued = self.ca.issue(&Leaf::new(&sans, serial));
            self.dir.write_identity(stem, &issued);
        }
        base + 1
    }

    /// The path of a file (`ca.crt`, `server.key`, ...).
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path(name)
    }

    /// The same, as a command-line argument.
    pub(crate) fn arg(&self, name: &str) -> String {
        self.dir.arg(name)
    }

    /// greeter-server's TLS flags: its identity, and client certificates
    /// required.
    pub(crate) fn server_args(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.arg("server.crt"),
            "--tls-key".into(),
            self.arg("server.key"),
            "--tls-client-ca".into(),
            self.arg("ca.crt"),
        ]
    }

    /// control-plane serve's TLS flags: its identity, client certificates
    /// required and narrowed to the demo client's SAN, probes over mTLS.
    pub(crate) fn control_plane_args(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.arg("cp.crt"),
            "--tls-key".into(),
            self.arg("cp.key"),
            "--tls-client-ca".into(),
            self.arg("ca.crt"),
            "--allow-client-san".into(),
            CLIENT_SAN.into(),
            "--probe-tls-ca".into(),
            self.arg("ca.crt"),
            "--probe-tls-cert".into(),
            self.arg("probe.crt"),
            "--probe-tls-key".into(),
            self.arg("probe.key"),
        ]
    }

    /// TLS for a plain tonic client of the greeter-servers (phase 1):
    /// the client's identity, servers checked by SAN.
    pub(crate) fn plain_client(&self) -> Result<(ClientTls, ServerVerification), String> {
        let tls = ClientTls::load(&ClientTlsFiles {
            ca: self.path("ca.crt"),
            cert: Some(self.path("client.crt")),
            key: Some(self.path("client.key")),
        })
        .map_err(|error| error.to_string())?;
        Ok((
            tls,
            ServerVerification::SanMatchers(vec![SanMatcher::Exact(SERVER_SAN.into())]),
        ))
    }
}
