//! Interop over mutual TLS: greeter-servers that require client
//! certificates, a control plane that probes them over mTLS and sends the
//! cluster's SAN matchers, and a client using xDS credentials that accepts
//! only servers whose certificate carries that SAN.

use std::net::SocketAddr;
use std::time::Duration;

use proto::controlplane::v1::EndpointState;
use tests::Process;

use super::{BACKENDS, BIN, assert_even, run, wait_for_state, warm_up};
use crate::interop_support::{Bootstrap, CertificateFiles, ForeignClient, Language};

/// The servers' SAN, as in a cert-manager Certificate for the Service.
const GREETER_SAN: &str = "greeter.default.svc.cluster.local";

/// Three greeter-servers that require client certificates from one CA, and
/// the PEM files (`ca.crt`, `server.*`, `client.*`, `probe.*`).
struct MutualTls {
    dir: tests::certs::TlsDir,
    greeters: Vec<(Process, SocketAddr)>,
}

impl MutualTls {
    async fn start() -> Self {
        use tests::certs::{Ca, Leaf, TlsDir};
        let dir = TlsDir::new();
        let ca = Ca::new("interop CA");
        dir.write("ca.crt", &ca.pem());
        dir.write_identity(
            "server",
            &ca.issue(&Leaf::new(&[GREETER_SAN, "127.0.0.1"], 1)),
        );
        dir.write_identity(
            "client",
            &ca.issue(&Leaf::new(
                &["spiffe://cluster.local/ns/default/sa/python"],
                2,
            )),
        );
        dir.write_identity(
            "probe",
            &ca.issue(&Leaf::new(
                &["spiffe://cluster.local/ns/default/sa/control-plane"],
                3,
            )),
        );
        let greeters = tests::greeters::mutual_tls(&BACKENDS, &dir).await;
        Self { dir, greeters }
    }

    /// A control plane serving greeter as TLS with `sans` as its SAN
    /// matchers; probing over mTLS, or not at all.
    fn control_plane(&self, sans: &str, probe: bool) -> (Process, tests::static_file::StaticFile) {
        let endpoints: Vec<String> = self.greeters.iter().map(|(_, a)| a.to_string()).collect();
        let file = tests::static_file::StaticFile::new(
            "interop-tls",
            &serde_json::json!({"services": [{
                "name": "greeter",
                "endpoints": endpoints,
                "tls": {"subject_alt_names": [sans]},
            }]}),
        );
        let path = file.path().display().to_string();
        let (ca, cert, key) = (
            self.dir.arg("ca.crt"),
            self.dir.arg("probe.crt"),
            self.dir.arg("probe.key"),
        );
        let mut args = vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--source",
            "static",
            "--static-file",
            &path,
        ];
        if probe {
            args.extend([
                "--probe-tls-ca",
                &ca,
                "--probe-tls-cert",
                &cert,
                "--probe-tls-key",
                &key,
            ]);
        } else {
            args.push("--no-probe");
        }
        (Process::spawn("control-plane", BIN, &args), file)
    }

    fn bootstrap(&self, control_plane: SocketAddr, language: Language, test: &str) -> Bootstrap {
        Bootstrap::write_with(
            control_plane,
            language,
            test,
            Some(&CertificateFiles {
                ca: self.dir.path("ca.crt"),
                cert: self.dir.path("client.crt"),
                key: self.dir.path("client.key"),
            }),
        )
    }
}

/// The arguments that make `language`'s client use xDS credentials.
fn xds_creds(language: Language) -> &'static [&'static str] {
    match language {
        Language::Python => &["--xds-creds"],
        other => panic!("the {} client has no xDS credentials option", other.name()),
    }
}

pub async fn mtls_balances_over_greeters_that_require_client_certificates(language: Language) {
    run(language, async {
        let mut setup = MutualTls::start().await;
        let (mut control_plane, _file) = setup.control_plane(GREETER_SAN, true);
        let addr = control_plane.wait_listening().await;
        for (_, endpoint) in &setup.greeters {
            wait_for_state(addr, *endpoint, EndpointState::Ready).await;
        }
        let bootstrap = setup.bootstrap(addr, language, "mtls");
        let mut client =
            ForeignClient::start_with(language, &bootstrap, "xds:///greeter", xds_creds(language))
                .await;
        // One uncounted call first: a fresh client spreads its first calls
        // unevenly until every subchannel is ready.
        warm_up(&mut client).await;

        let batch = client.batch(300).await;
        assert_eq!(batch.failed, 0, "{}", batch.raw);
        assert_even(&batch, &BACKENDS, 300);
        for (greeter, _) in &mut setup.greeters {
            let line = greeter
                .wait_for_log("SayHello", Duration::from_secs(5))
                .await;
            assert!(line["conn"].as_u64().is_some(), "{line}");
        }
        client.finish().await;
        control_plane.kill().await;
    })
    .await;
}

pub async fn mtls_refuses_greeters_whose_certificates_lack_the_cluster_san(language: Language) {
    run(language, async {
        let mut setup = MutualTls::start().await;
        // No probing: the endpoints are HEALTHY, so only the client's SAN
        // check can stop the calls.
        let (mut control_plane, _file) = setup.control_plane("nobody.example", false);
        let addr = control_plane.wait_listening().await;
        let bootstrap = setup.bootstrap(addr, language, "mtls-san");
        let mut args = xds_creds(language).to_vec();
        args.extend(["--call-timeout", "3"]);
        let mut client =
            ForeignClient::start_with(language, &bootstrap, "xds:///greeter", &args).await;
        let batch = client.batch(5).await;
        assert_eq!(batch.ok, 0, "{}", batch.raw);
        assert_eq!(batch.failed, 5, "{}", batch.raw);
        let errors = batch.raw["errors"].to_string();
        assert!(
            errors.contains("UNAVAILABLE") || errors.contains("DEADLINE_EXCEEDED"),
            "{errors}"
        );
        client.finish().await;
        for (greeter, _) in &mut setup.greeters {
            let log = greeter.log_text();
            assert!(!log.contains("\"SayHello\""), "a server saw a call: {log}");
        }
        control_plane.kill().await;
    })
    .await;
}
