//! A real control plane under test, with a well-behaved subscriber that
//! must keep getting updates whatever else happens on the port.

use std::net::SocketAddr;
use std::time::Duration;

use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use proto::controlplane::v1 as pb;
use proto::controlplane::v1::control_plane_status_client::ControlPlaneStatusClient;
use serde_json::json;
use tests::ads::{AdsStream, endpoints};
use tests::control_plane::static_source;
use tests::static_file::StaticFile;
use tests::{Process, channel};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// greeter's ClusterLoadAssignment.
pub(crate) const GREETER_CLUSTER: &str = "greeter.default.svc.cluster.local:80";
/// The longest the bystander may wait for an update.
const PROMPTLY: Duration = Duration::from_secs(5);

/// A control-plane process serving `greeter` from a static file (no
/// probing), and a bystander subscribed to greeter's endpoints.
pub(crate) struct Target {
    pub(crate) addr: SocketAddr,
    pub(crate) process: Process,
    bystander: AdsStream,
    file: StaticFile,
    version: u16,
}

impl Target {
    pub(crate) async fn start(name: &str) -> Self {
        let file = StaticFile::new(&format!("bad-input-{name}"), &services(1));
        let path = file.path().display().to_string();
        let (process, addr) = static_source(&[
            "--static-file",
            &path,
            "--no-probe",
            "--file-poll-interval",
            "5ms",
        ])
        .await;
        let mut bystander = AdsStream::open(channel(addr).await, "bystander").await;
        bystander
            .subscribe::<ClusterLoadAssignment>(&[GREETER_CLUSTER])
            .await;
        let mut target = Self {
            addr,
            process,
            bystander,
            file,
            version: 1,
        };
        target.bystander_sees_current().await;
        target
    }

    /// The control plane is healthy: health SERVING on a new connection,
    /// and the bystander gets a new update promptly.
    pub(crate) async fn assert_healthy(&mut self, after: &str) {
        let health = HealthClient::new(channel(self.addr).await)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap_or_else(|status| panic!("health check after {after}: {status}"))
            .into_inner();
        assert_eq!(
            health.status,
            ServingStatus::Serving as i32,
            "health after {after}"
        );
        self.update();
        tokio::time::timeout(PROMPTLY, self.bystander_sees_current())
            .await
            .unwrap_or_else(|_| {
                panic!("the bystander got no update within {PROMPTLY:?} after {after}")
            });
    }

    /// Makes an update; returns the version it carries.
    pub(crate) fn update(&mut self) -> u16 {
        self.version += 1;
        self.file.write(&services(self.version));
        self.version
    }

    async fn bystander_sees_current(&mut self) {
        loop {
            let (response, assignments) =
                self.bystander.recv_typed::<ClusterLoadAssignment>().await;
            self.bystander.ack(&response, &[GREETER_CLUSTER]).await;
            if assignments.first().and_then(version_of) == Some(self.version) {
                return;
            }
        }
    }

    /// The status API's clients.
    pub(crate) async fn clients(&self) -> Vec<pb::Client> {
        ControlPlaneStatusClient::new(channel(self.addr).await)
            .list_clients(pb::ListClientsRequest {})
            .await
            .expect("ListClients")
            .into_inner()
            .clients
    }

    /// Open file descriptors of the control plane process.
    pub(crate) fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.process.pid()))
            .map(Iterator::count)
            .unwrap_or(0)
    }
}

/// The version an assignment carries: the port of its one endpoint.
pub(crate) fn version_of(assignment: &ClusterLoadAssignment) -> Option<u16> {
    endpoints(assignment)
        .first()
        .and_then(|(addr, _)| addr.rsplit_once(':')?.1.parse::<u16>().ok())
        .map(|port| port - 10_000)
}

/// Service `greeter` with one endpoint whose port carries `version`.
fn services(version: u16) -> serde_json::Value {
    json!({"services": [{
        "name": "greeter",
        "port": 80,
        "endpoints": [format!("10.0.0.1:{}", 10_000 + version)],
    }]})
}
