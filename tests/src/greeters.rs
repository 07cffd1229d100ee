//! Greeter-server processes for end-to-end tests: started on loopback
//! ports, and served by a scripted control plane.

use std::net::SocketAddr;

use crate::Process;
use crate::fake_xds::{FakeXds, Health};

/// A running greeter-server.
pub struct Backend {
    /// Its `--name`, which every reply's `served_by` carries.
    pub name: String,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The running process.
    pub process: Process,
}

/// Starts one greeter-server per name, each on its own loopback port.
pub async fn backends(names: &[&str]) -> Vec<Backend> {
    let mut started = Vec::new();
    for name in names {
        let mut process = Process::spawn(
            name,
            "greeter-server",
            &[
                "--listen",
                "127.0.0.1:0",
                "--name",
                name,
                "--drain-delay",
                "0s",
                "--grace",
                "10s",
            ],
        );
        let addr = process.wait_listening().await;
        started.push(Backend {
            name: (*name).to_owned(),
            addr,
            process,
        });
    }
    started
}

/// Starts one greeter-server per name and a scripted control plane that
/// serves them all as HEALTHY endpoints of `greeter`.
pub async fn healthy_greeters(names: &[&str]) -> (Vec<Backend>, FakeXds) {
    let servers = backends(names).await;
    let fake = FakeXds::start().await;
    let specs: Vec<_> = servers
        .iter()
        .map(|s| (s.addr, Health::Healthy, s.name.as_str()))
        .collect();
    fake.set_endpoints("greeter", &specs);
    (servers, fake)
}

/// Starts one greeter-server per name on loopback, serving TLS with
/// `dir`'s `server.crt` / `server.key` and requiring client certificates
/// from its `ca.crt`; SayHello is logged (debug) so a test can see who got
/// a call, and each TLS connection's client identity and serial.
pub async fn mutual_tls(names: &[&str], dir: &crate::certs::TlsDir) -> Vec<(Process, SocketAddr)> {
    let (cert, key, client_ca) = (
        dir.arg("server.crt"),
        dir.arg("server.key"),
        dir.arg("ca.crt"),
    );
    let mut greeters = Vec::new();
    for name in names {
        let mut process = Process::spawn_with_env(
            name,
            "greeter-server",
            &[
                "--listen",
                "127.0.0.1:0",
                "--name",
                name,
                "--tls-cert",
                &cert,
                "--tls-key",
                &key,
                "--tls-client-ca",
                &client_ca,
            ],
            &[("RUST_LOG", "info,common=debug,greeter_server=debug")],
        );
        let addr = process.wait_listening().await;
        greeters.push((process, addr));
    }
    greeters
}
