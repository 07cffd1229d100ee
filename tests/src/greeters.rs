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
