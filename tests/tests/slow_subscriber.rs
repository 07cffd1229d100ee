//! A subscriber that never reads its stream: other subscribers still get
//! every update promptly, the control plane's memory stays bounded, and the
//! stuck subscriber, once it reads, gets the newest state after a bounded
//! number of older responses (no history queued for it).
//!
//! A real `control-plane serve --source kubernetes` process watches the
//! fake Kubernetes API server; each update moves one pod of a 30-pod
//! EndpointSlice to a new address, so each update is a new
//! ClusterLoadAssignment of a few KB.
//!
//! # The memory bound
//!
//! VmRSS is read after a warm-up (the stuck streams' buffers are full by
//! then) and after all updates. If the control plane kept a response per
//! update for each stuck subscriber, it would grow with `UPDATES × STUCK`
//! responses: a build with an unbounded per-stream queue grew by about
//! 70 MB in this test. What it may legitimately hold per stuck stream is
//! bounded: its task's queue (`control_plane::xds::stream::QUEUE_DEPTH`
//! responses), the one it is writing, and HTTP/2's send buffer (hyper's
//! default, 400 KB): well under 1 MB each. `MAX_GROWTH_KB` (24 MiB) leaves
//! room for allocator noise and the Kubernetes client's caches while
//! staying far below what queued history costs.

use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use tests::ads::{AdsStream, endpoints};
use tests::fake_kube::{
    EndpointFixture, EndpointSliceFixture, EndpointState, FakeKube, ServiceFixture,
};
use tests::{Process, bounded, channel};

const GREETER_CLUSTER: &str = "greeter.default.svc.cluster.local:80";
/// Updates made while the stuck subscribers do not read.
const UPDATES: u32 = 2_000;
/// Updates made before memory is first measured.
const WARM_UP: u32 = 100;
/// Subscribers that never read.
const STUCK: usize = 16;
/// Pods in the service (the size of each update).
const PODS: u32 = 30;
/// The longest a well-behaved subscriber may wait for an update.
const PROMPTLY: Duration = Duration::from_secs(5);
/// See the module docs.
const MAX_GROWTH_KB: u64 = 24 * 1024;

/// The address of the pod that moves, at `version`.
fn moving_pod(version: u32) -> String {
    format!("10.2.{}.{}", version / 250, version % 250 + 1)
}

/// The version an assignment carries (where its moving pod is).
fn version_of(assignment: &ClusterLoadAssignment) -> Option<u32> {
    endpoints(assignment).iter().find_map(|(addr, _)| {
        let (ip, _) = addr.split_once(':')?;
        let mut octets = ip.strip_prefix("10.2.")?.split('.');
        let high: u32 = octets.next()?.parse().ok()?;
        let low: u32 = octets.next()?.parse().ok()?;
        Some(high * 250 + low - 1)
    })
}

fn rss_kb(process: &Process) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", process.pid()))
        .expect("read /proc/<pid>/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line")
}

/// Reads `ads` until it gets `version`; returns how many responses that took.
async fn until_version(ads: &mut AdsStream, version: u32) -> usize {
    let mut responses = 0;
    loop {
        let (response, assignments) = ads.recv_typed::<ClusterLoadAssignment>().await;
        responses += 1;
        ads.ack(&response, &[GREETER_CLUSTER]).await;
        if assignments.first().and_then(version_of) == Some(version) {
            return responses;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_subscriber_neither_delays_others_nor_grows_memory() {
    bounded(Duration::from_secs(120), async {
        let kube = FakeKube::start().await;
        kube.apply(ServiceFixture::new("greeter").port("grpc", 80, "grpc"));
        let mut slice = EndpointSliceFixture::for_service("greeter")
            .name("greeter-a")
            .port("grpc", 8080);
        for i in 0..PODS - 1 {
            slice = slice.endpoint_with(
                EndpointFixture::new(&format!("10.1.{}.{}", i / 200, i % 200 + 1))
                    .zone("zone-a")
                    .pod(&format!("greeter-deployment-5d9c7b8f4-{i:05}")),
            );
        }
        kube.apply(slice.endpoint(&moving_pod(0), EndpointState::Ready));
        let kubeconfig = kube.kubeconfig_path().to_str().expect("UTF-8 path");
        let mut control_plane = Process::spawn_with_env(
            "control-plane",
            "control-plane",
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--source",
                "kubernetes",
                "--namespace",
                "default",
            ],
            &[("KUBECONFIG", kubeconfig)],
        );
        let addr = control_plane.wait_listening().await;

        // The stuck subscribers: each on its own connection with small
        // HTTP/2 windows, so the server has to hold what it cannot send.
        let mut stuck = Vec::new();
        for i in 0..STUCK {
            let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                .expect("uri")
                .initial_stream_window_size(65_535)
                .initial_connection_window_size(65_535)
                .connect()
                .await
                .expect("connect");
            let mut ads = AdsStream::open(channel, &format!("stuck-{i}")).await;
            ads.subscribe::<ClusterLoadAssignment>(&[GREETER_CLUSTER])
                .await;
            stuck.push(ads);
        }
        let mut good = AdsStream::open(channel(addr).await, "good").await;
        good.subscribe::<ClusterLoadAssignment>(&[GREETER_CLUSTER])
            .await;
        until_version(&mut good, 0).await;

        let mut slowest = Duration::ZERO;
        let mut baseline = None;
        for version in 1..=UPDATES {
            kube.modify::<EndpointSlice>("default", "greeter-a", |slice| {
                if let Some(pod) = slice.endpoints.last_mut() {
                    pod.addresses = vec![moving_pod(version)];
                }
            });
            if version % 500 == 0 {
                // The fake API server's own history is not what is measured.
                kube.compact();
            }
            let started = Instant::now();
            tokio::time::timeout(PROMPTLY, until_version(&mut good, version))
                .await
                .unwrap_or_else(|_| {
                    panic!("update {version} did not reach the good subscriber within {PROMPTLY:?}")
                });
            slowest = slowest.max(started.elapsed());
            if version == WARM_UP {
                baseline = Some(rss_kb(&control_plane));
            }
        }
        let baseline = baseline.expect("measured after the warm-up");
        let after = rss_kb(&control_plane);
        let growth = after.saturating_sub(baseline);
        eprintln!(
            "VmRSS {baseline} kB after {WARM_UP} updates, {after} kB after {UPDATES} \
             (growth {growth} kB); slowest update {slowest:?}"
        );
        assert!(
            growth < MAX_GROWTH_KB,
            "the control plane grew by {growth} kB over {} updates with {STUCK} stuck \
             subscribers (bound {MAX_GROWTH_KB} kB)",
            UPDATES - WARM_UP
        );

        // A stuck subscriber that reads again gets a few old responses,
        // then the newest state: no backlog of history.
        let responses = until_version(&mut stuck[0], UPDATES).await;
        assert!(
            responses <= 50,
            "{responses} responses before the newest state (of {UPDATES} updates)"
        );
        drop(stuck);
        drop(good);
    })
    .await;
}
