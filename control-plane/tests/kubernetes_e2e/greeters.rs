//! The whole path: real greeter-servers on loopback registered as pods in
//! the fake API server, the control plane following them, and gRPC's own
//! xDS client (Python grpcio; see `../python/mod.rs`) calling
//! `xds:///greeter` through it. Marking a pod unready in the API moves
//! every call away from it; ready again brings it back.

use std::net::SocketAddr;
use std::time::Duration;

use tests::fake_kube::{
    EndpointFixture, EndpointSliceFixture, EndpointState, FakeKube, ServiceFixture,
};
use tests::{Process, bounded};

use crate::harness::ControlPlane;
use crate::python::{Batch, Bootstrap, PythonClient};

/// The Python set-up may install grpcio first.
const LIMIT: Duration = Duration::from_secs(300);
const PODS: [&str; 3] = ["greeter-a", "greeter-b", "greeter-c"];
/// How far from an even split a backend may be.
const SLACK: u64 = 2;

/// Starts one greeter-server per pod name on loopback.
async fn start_greeters() -> Vec<(Process, SocketAddr)> {
    let mut greeters = Vec::new();
    for name in PODS {
        let mut process = Process::spawn(
            name,
            "greeter-server",
            &["--listen", "127.0.0.1:0", "--name", name],
        );
        let addr = process.wait_listening().await;
        greeters.push((process, addr));
    }
    greeters
}

/// Registers the greeters as the pods of Service `greeter` (port 80,
/// targetPort named `grpc`). Each listens on its own port, so each gets its
/// own slice, as the EndpointSlice controller does for pods whose named
/// port has different numbers.
fn register(kube: &FakeKube, greeters: &[(Process, SocketAddr)]) {
    kube.apply(ServiceFixture::new("greeter").port("grpc", 80, "grpc"));
    for ((_, addr), pod) in greeters.iter().zip(PODS) {
        kube.apply(
            EndpointSliceFixture::for_service("greeter")
                .name(pod)
                .port("grpc", i32::from(addr.port()))
                .endpoint_with(EndpointFixture::new(&addr.ip().to_string()).pod(pod)),
        );
    }
}

fn assert_even(batch: &Batch, backends: &[&str], total: u64) {
    assert_eq!(batch.ok, total, "every call succeeded: {}", batch.raw);
    let share = total / backends.len() as u64;
    for backend in backends {
        let got = batch.served_by(backend);
        assert!(
            got.abs_diff(share) <= SLACK,
            "{backend} served {got} of {total}, expected {share} ± {SLACK}: {}",
            batch.raw
        );
    }
}

/// Runs small batches until `done` holds for one (the client applies an
/// update a moment after the control plane sends it).
async fn until(client: &mut PythonClient, what: &str, done: impl Fn(&Batch) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let batch = client.batch(30).await;
        if done(&batch) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: the Python client did not follow: {}",
            batch.raw
        );
    }
}

#[tokio::test]
async fn marking_a_pod_unready_in_the_api_moves_every_call_away_from_it() {
    bounded(LIMIT, async {
        let greeters = start_greeters().await;
        let kube = FakeKube::start().await;
        register(&kube, &greeters);
        let control_plane = ControlPlane::synced(&kube, "default").await;
        let bootstrap = Bootstrap::write(control_plane.addr, "kubernetes");
        let mut client = PythonClient::start(&bootstrap, "xds:///greeter").await;
        // gRPC's round robin picks only connected backends: warm up first.
        until(&mut client, "all three connected", |batch| {
            batch.failed == 0 && PODS.iter().all(|pod| batch.served_by(pod) > 0)
        })
        .await;
        assert_even(&client.batch(300).await, &PODS, 300);

        let b = greeters[1].1.ip().to_string();
        kube.set_endpoint_state("default", "greeter-b", &b, EndpointState::NotReady);
        until(&mut client, "greeter-b unready", |batch| {
            batch.served_by("greeter-b") == 0
        })
        .await;
        let batch = client.batch(300).await;
        assert_eq!(batch.served_by("greeter-b"), 0, "{}", batch.raw);
        assert_even(&batch, &["greeter-a", "greeter-c"], 300);

        kube.set_endpoint_state("default", "greeter-b", &b, EndpointState::Ready);
        until(&mut client, "greeter-b ready again", |batch| {
            batch.served_by("greeter-b") > 0
        })
        .await;
        assert_even(&client.batch(300).await, &PODS, 300);
        client.finish().await;
    })
    .await;
}
