//! The whole path: real greeter-servers on loopback registered as pods in
//! the fake API server, the control plane following them, and a channel of
//! the greeter-client library calling `xds:///greeter` through it. Marking
//! a pod unready in the API moves every call away from it, without a
//! failed call; ready again brings it back.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use proto::greet::HelloRequest;
use proto::greet::greeter_client::GreeterClient;
use tests::fake_kube::{
    EndpointFixture, EndpointSliceFixture, EndpointState, FakeKube, Outage, ServiceFixture,
};
use tests::{Process, bounded};
use xds_balancer::{Builder, Channel};

use crate::harness::{ControlPlane, LIMIT, SYNCED, WAIT};

const PODS: [&str; 3] = ["greeter-a", "greeter-b", "greeter-c"];

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

/// One SayHello; returns the instance that served it.
async fn call(channel: &Channel) -> Result<String, tonic::Status> {
    let mut request = tonic::Request::new(HelloRequest {
        name: "kubernetes".into(),
        delay_ms: 0,
    });
    request.set_timeout(Duration::from_secs(5));
    let reply = GreeterClient::new(channel.clone())
        .say_hello(request)
        .await?;
    Ok(reply.into_inner().served_by)
}

/// `count` sequential calls, which must all succeed; calls per instance.
async fn spread(channel: &Channel, count: usize) -> BTreeMap<String, usize> {
    let mut by_backend = BTreeMap::new();
    for _ in 0..count {
        let served_by = call(channel).await.expect("every call succeeds");
        *by_backend.entry(served_by).or_default() += 1;
    }
    by_backend
}

/// Waits until the channel takes calls on exactly the endpoints `pods`.
async fn wait_ready(channel: &Channel, pods: &[&str]) {
    let mut view = channel.endpoints();
    let ready = |set: &xds_balancer::EndpointSet| {
        let mut names: Vec<&str> = set.ready().map(|e| e.hostname.as_str()).collect();
        names.sort_unstable();
        names == pods
    };
    if tokio::time::timeout(WAIT, view.wait_for(ready))
        .await
        .is_err()
    {
        panic!(
            "the channel never took calls on exactly {pods:?}: {:?}",
            *view.borrow()
        );
    }
}

fn even(pods: &[&str], each: usize) -> BTreeMap<String, usize> {
    pods.iter().map(|pod| ((*pod).to_owned(), each)).collect()
}

#[tokio::test]
async fn marking_a_pod_unready_in_the_api_moves_every_call_away_from_it() {
    bounded(LIMIT, async {
        let greeters = start_greeters().await;
        let kube = FakeKube::start().await;
        register(&kube, &greeters);
        let control_plane = ControlPlane::synced(&kube, "default").await;
        let channel = Builder::new("xds:///greeter")
            .control_plane(format!("http://{}", control_plane.addr))
            .node_id("kubernetes-e2e")
            .connect()
            .await
            .expect("channel");
        wait_ready(&channel, &PODS).await;
        assert_eq!(spread(&channel, 300).await, even(&PODS, 100));

        // Calls keep going while the pod leaves: none may fail.
        let stop = Arc::new(AtomicBool::new(false));
        let background = tokio::spawn({
            let (channel, stop) = (channel.clone(), stop.clone());
            async move {
                let mut results = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    results.push(call(&channel).await);
                }
                results
            }
        });
        let b = greeters[1].1.ip().to_string();
        kube.set_endpoint_state("default", "greeter-b", &b, EndpointState::NotReady);
        wait_ready(&channel, &["greeter-a", "greeter-c"]).await;
        stop.store(true, Ordering::Relaxed);
        let during = background.await.expect("background calls");
        assert!(!during.is_empty());
        let failed: Vec<_> = during.iter().filter_map(|r| r.as_ref().err()).collect();
        assert!(
            failed.is_empty(),
            "calls failed while the pod left: {failed:?}"
        );
        // Strict round robin over the two left (nothing else calling now).
        assert_eq!(
            spread(&channel, 300).await,
            even(&["greeter-a", "greeter-c"], 150),
            "no call to the unready pod"
        );

        kube.set_endpoint_state("default", "greeter-b", &b, EndpointState::Ready);
        wait_ready(&channel, &PODS).await;
        assert_eq!(spread(&channel, 300).await, even(&PODS, 100));
    })
    .await;
}

/// A control plane that restarts while the API server is down knows no
/// services. It must not tell clients so: it holds their requests until its
/// first sync, and they keep calling the endpoints they had.
#[tokio::test]
async fn a_control_plane_restarted_during_an_api_outage_keeps_clients_calling() {
    bounded(LIMIT, async {
        let greeters = start_greeters().await;
        let kube = FakeKube::start().await;
        register(&kube, &greeters);
        let mut control_plane = ControlPlane::synced(&kube, "default").await;
        let addr = control_plane.addr;
        let channel = Builder::new("xds:///greeter")
            .control_plane(format!("http://{addr}"))
            .node_id("restart-during-outage")
            .connect()
            .await
            .expect("channel");
        wait_ready(&channel, &PODS).await;
        assert_eq!(spread(&channel, 300).await, even(&PODS, 100));

        kube.go_down(Outage::Refuse).await;
        control_plane.process.kill().await;
        let mut restarted =
            ControlPlane::start_on(&kube, &addr.to_string(), &["--namespace", "default"], &[])
                .await;
        // The client has reconnected and subscribed to the new instance,
        // which cannot list anything yet.
        restarted
            .process
            .wait_for_log(
                "holding the stream's requests until the source's first sync",
                WAIT,
            )
            .await;
        assert_eq!(
            spread(&channel, 300).await,
            even(&PODS, 100),
            "the client kept its endpoints"
        );

        kube.come_up().await;
        restarted.process.wait_for_log(SYNCED, WAIT).await;
        let b = greeters[1].1.ip().to_string();
        kube.set_endpoint_state("default", "greeter-b", &b, EndpointState::NotReady);
        wait_ready(&channel, &["greeter-a", "greeter-c"]).await;
        assert_eq!(
            spread(&channel, 300).await,
            even(&["greeter-a", "greeter-c"], 150),
            "updates from the restarted instance apply"
        );
    })
    .await;
}
