//! What the end-to-end tests share: the control plane as a process against
//! a fake API server, ADS subscribers that record every assignment they
//! receive, the status API and the `status` command, and the fixtures of
//! the 150-endpoint namespace.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use envoy_types::pb::envoy::config::core::v3::HealthStatus;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse;
use prost::Name;
use proto::controlplane::v1 as pb;
use proto::controlplane::v1::control_plane_status_client::ControlPlaneStatusClient;
use serde_json::Value;
use tests::ads::{AdsStream, decode, endpoints};
use tests::fake_kube::{EndpointSliceFixture, EndpointState, FakeKube, ServiceFixture};
use tests::{Process, channel};
use tokio::io::AsyncReadExt;
use tokio::time::Instant;

/// The binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_control-plane");
/// Upper bound for a whole test (the outage test alone holds 10 s).
pub(crate) const LIMIT: Duration = Duration::from_secs(120);
/// Upper bound for any one awaited condition.
pub(crate) const WAIT: Duration = Duration::from_secs(20);
/// The log line of the first sync (health turns SERVING).
pub(crate) const SYNCED: &str = "source synced: health is SERVING";
/// Canonical name of greeter's Cluster and assignment in namespace `default`.
pub(crate) const GREETER_CLUSTER: &str = "greeter.default.svc.cluster.local:80";

/// Endpoints of an assignment as ("ip:port", health), sorted.
pub(crate) type Endpoints = Vec<(String, HealthStatus)>;

/// `addresses`, all HEALTHY, sorted.
pub(crate) fn healthy<S: Into<String>>(addresses: impl IntoIterator<Item = S>) -> Endpoints {
    let mut all: Endpoints = addresses
        .into_iter()
        .map(|a| (a.into(), HealthStatus::Healthy))
        .collect();
    all.sort();
    all
}

/// The addresses in the rotation (HEALTHY), sorted. Pods that are not
/// ready are sent as UNHEALTHY (which every client skips; ours counts them
/// to explain "no ready pods") or not at all; terminating ones as DRAINING.
pub(crate) fn in_rotation(endpoints: &Endpoints) -> Vec<&str> {
    endpoints
        .iter()
        .filter(|(_, health)| *health == HealthStatus::Healthy)
        .map(|(address, _)| address.as_str())
        .collect()
}

/// `endpoints` with `address` marked `health`.
pub(crate) fn with(endpoints: &Endpoints, address: &str, health: HealthStatus) -> Endpoints {
    endpoints
        .iter()
        .map(|(a, h)| (a.clone(), if a == address { health } else { *h }))
        .collect()
}

/// Milliseconds since the Unix epoch, as the status API counts.
pub(crate) fn unix_ms(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A running `control-plane serve --source kubernetes`; killed on drop.
pub(crate) struct ControlPlane {
    pub(crate) process: Process,
    pub(crate) addr: SocketAddr,
}

impl ControlPlane {
    /// Starts `serve --source kubernetes` with `KUBECONFIG` pointing at
    /// `kube`, quick retries, `args` and `env` added (no namespace from the
    /// test's own environment), and waits until it listens.
    pub(crate) async fn start(kube: &FakeKube, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_on(kube, "127.0.0.1:0", args, env).await
    }

    /// Like [`ControlPlane::start`], listening on `listen`.
    pub(crate) async fn start_on(
        kube: &FakeKube,
        listen: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let mut all = vec![
            "serve",
            "--listen",
            listen,
            "--source",
            "kubernetes",
            "--kube-backoff-max",
            "500ms",
        ];
        all.extend_from_slice(args);
        let kubeconfig = kube.kubeconfig_path().to_str().expect("UTF-8 path");
        let mut environment = vec![
            ("KUBECONFIG", kubeconfig),
            ("POD_NAMESPACE", ""),
            ("CONTROL_PLANE_NAMESPACE", ""),
        ];
        environment.extend_from_slice(env);
        let mut process = Process::spawn_with_env("control-plane", BIN, &all, &environment);
        let addr = process.wait_listening().await;
        Self { process, addr }
    }

    /// Starts it for `namespace` and waits for its first sync.
    pub(crate) async fn synced(kube: &FakeKube, namespace: &str) -> Self {
        let mut control_plane = Self::start(kube, &["--namespace", namespace], &[]).await;
        control_plane.process.wait_for_log(SYNCED, WAIT).await;
        control_plane
    }

    /// The status API's `GetInfo`.
    pub(crate) async fn info(&self) -> pb::Info {
        ControlPlaneStatusClient::new(channel(self.addr).await)
            .get_info(pb::GetInfoRequest {})
            .await
            .expect("GetInfo")
            .into_inner()
    }

    /// The status API's `ListServices`.
    pub(crate) async fn services(&self) -> Vec<pb::Service> {
        ControlPlaneStatusClient::new(channel(self.addr).await)
            .list_services(pb::ListServicesRequest {})
            .await
            .expect("ListServices")
            .into_inner()
            .services
    }

    /// Polls the status API until the source is in `state`; returns its status.
    pub(crate) async fn wait_source(&self, state: pb::SourceState) -> pb::SourceStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            let source = self.info().await.source.expect("source status");
            if source.state == state as i32 {
                return source;
            }
            assert!(
                Instant::now() < deadline,
                "the source did not turn {state:?} within {WAIT:?}: {source:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs `control-plane status --json` against it and returns the report.
    pub(crate) async fn status_json(&self) -> Value {
        let url = format!("http://{}", self.addr);
        let mut process = Process::spawn("status", BIN, &["status", "--addr", &url, "--json"]);
        let mut stdout = process.take_stdout();
        let mut text = String::new();
        tokio::time::timeout(WAIT, stdout.read_to_string(&mut text))
            .await
            .expect("status finished writing")
            .expect("stdout readable");
        let exit = process.wait_exit(WAIT).await;
        assert!(exit.success(), "status: exit {exit}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("status --json: {e}: {text}"))
    }
}

/// An ADS client subscribed to one ClusterLoadAssignment, recording every
/// assignment of it that it receives and ACKing every response.
pub(crate) struct Subscriber {
    pub(crate) ads: AdsStream,
    cluster: String,
    /// Every assignment of the cluster received, oldest first.
    pub(crate) seen: Vec<Endpoints>,
}

impl Subscriber {
    /// Opens a stream as node `node` and subscribes to `cluster`'s assignment.
    pub(crate) async fn eds(addr: SocketAddr, node: &str, cluster: &str) -> Self {
        let mut ads = AdsStream::open(channel(addr).await, node).await;
        ads.subscribe::<ClusterLoadAssignment>(&[cluster]).await;
        Self {
            ads,
            cluster: cluster.to_owned(),
            seen: Vec::new(),
        }
    }

    /// The next response of any type. An assignment response is recorded
    /// and ACKed; other types are left to the caller.
    pub(crate) async fn next(&mut self) -> DiscoveryResponse {
        let response = self.ads.recv().await;
        if response.type_url == ClusterLoadAssignment::type_url() {
            let assignments: Vec<ClusterLoadAssignment> = decode(&response);
            if let Some(assignment) = assignments.iter().find(|a| a.cluster_name == self.cluster) {
                self.seen.push(endpoints(assignment));
            }
            let cluster = self.cluster.clone();
            self.ads.ack(&response, &[&cluster]).await;
        }
        response
    }

    /// Receives until an assignment for which `done` holds, and returns it.
    pub(crate) async fn until(
        &mut self,
        what: &str,
        done: impl Fn(&Endpoints) -> bool,
    ) -> Endpoints {
        let deadline = Instant::now() + WAIT;
        loop {
            let before = self.seen.len();
            if tokio::time::timeout_at(deadline, self.next())
                .await
                .is_err()
            {
                panic!(
                    "{what}: no such assignment within {WAIT:?}; the last one: {:?}",
                    self.seen.last()
                );
            }
            if self.seen.len() > before {
                let last = self.seen.last().expect("just recorded");
                if done(last) {
                    return last.clone();
                }
            }
        }
    }

    /// Subscribes (on the same stream) to Listener `name` and receives
    /// until it is served; returns it. The stream delivers in order, so
    /// every assignment published before it has been recorded by then.
    pub(crate) async fn until_listener(&mut self, name: &str) -> Listener {
        self.ads.subscribe::<Listener>(&[name]).await;
        let deadline = Instant::now() + WAIT;
        loop {
            let response = tokio::time::timeout_at(deadline, self.next())
                .await
                .unwrap_or_else(|_| panic!("Listener {name} not served within {WAIT:?}"));
            if response.type_url == Listener::type_url() {
                self.ads.ack(&response, &[name]).await;
                if let Some(listener) = decode::<Listener>(&response).pop() {
                    return listener;
                }
            }
        }
    }
}

/// The addresses of `greeter`'s 150 pods: 75 in slice `greeter-a` (named
/// port `grpc` = 8080) and 75 in `greeter-b` (`grpc` = 9090).
pub(crate) fn greeter_150() -> Endpoints {
    let a = (1..=75).map(|i| format!("{}:8080", Ipv4Addr::from(u32::from(A_FIRST) + i - 1)));
    let b = (1..=75).map(|i| format!("{}:9090", Ipv4Addr::from(u32::from(B_FIRST) + i - 1)));
    healthy(a.chain(b))
}

const A_FIRST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B_FIRST: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 1);

/// Service `greeter` (port 80, targetPort named `grpc`) with the pods of
/// [`greeter_150`], plus a third slice repeating 10.0.0.1 (as while the
/// EndpointSlice controller moves an endpoint between slices).
pub(crate) fn apply_greeter_150(kube: &FakeKube) {
    kube.apply(ServiceFixture::new("greeter").port("grpc", 80, "grpc"));
    kube.apply(
        EndpointSliceFixture::for_service("greeter")
            .name("greeter-a")
            .port("grpc", 8080)
            .endpoints_from(A_FIRST, 75, EndpointState::Ready),
    );
    kube.apply(
        EndpointSliceFixture::for_service("greeter")
            .name("greeter-b")
            .port("grpc", 9090)
            .endpoints_from(B_FIRST, 75, EndpointState::Ready),
    );
    kube.apply(
        EndpointSliceFixture::for_service("greeter")
            .name("greeter-c")
            .port("grpc", 8080)
            .endpoint("10.0.0.1", EndpointState::Ready),
    );
}
