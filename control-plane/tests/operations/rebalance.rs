//! Rebalancing across replicas with `--max-connection-age`: two replicas
//! (static source, the same services) behind one address, as a Kubernetes
//! Service puts them (a per-connection TCP balancer on loopback, which is
//! what kube-proxy does). One replica restarts, so every subscriber moves
//! to the other; within one maximum age (plus its grace) the split is back
//! near 50/50, while a client of this project's library calls the greeters
//! throughout without a failed call.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use demo::balancer::{Backend, TcpBalancer};
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use prost::Name;
use proto::greet::HelloRequest;
use proto::greet::greeter_client::GreeterClient;
use tests::bounded;
use tests::greeters::backends;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;

use crate::{ControlPlane, LIMIT, WAIT, eventually};

const SUBSCRIBERS: usize = 100;
const CLUSTER: &str = "greeter.default.svc.cluster.local:80";
/// `--max-connection-age` of both replicas (short, to keep the test fast).
const MAX_AGE: Duration = Duration::from_secs(4);
/// `--max-connection-age-grace`.
const GRACE: Duration = Duration::from_secs(1);

/// A first request, or the ACK of `response`.
fn request(node: &str, response: Option<&DiscoveryResponse>) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: ClusterLoadAssignment::type_url(),
        resource_names: vec![CLUSTER.to_owned()],
        version_info: response.map(|r| r.version_info.clone()).unwrap_or_default(),
        response_nonce: response.map(|r| r.nonce.clone()).unwrap_or_default(),
        node: response.is_none().then(|| Node {
            id: node.to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A raw ADS subscriber with a connection of its own: subscribes, ACKs
/// every response, and when the stream ends connects again at once (as
/// gRPC's xDS clients do after a stream that had responses), through
/// `addr`, forever.
async fn subscriber(addr: SocketAddr, node: String) {
    let uri = format!("http://{addr}");
    loop {
        let endpoint = tonic::transport::Endpoint::from_shared(uri.clone())
            .expect("URI")
            .connect_timeout(Duration::from_secs(2));
        let Ok(channel) = endpoint.connect().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let (requests, outbound) = mpsc::channel(4);
        let _ = requests.send(request(&node, None)).await;
        let opened = AggregatedDiscoveryServiceClient::new(channel)
            .stream_aggregated_resources(ReceiverStream::new(outbound))
            .await;
        let Ok(opened) = opened else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let mut responses = opened.into_inner();
        while let Ok(Some(response)) = responses.message().await {
            let _ = requests.send(request(&node, Some(&response))).await;
        }
    }
}

/// ADS streams open on each replica, by name.
async fn split(replicas: &[(&str, &ControlPlane)]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for (name, replica) in replicas {
        let clients = replica
            .sample("control_plane_connected_clients", &[])
            .await
            .expect("connected clients");
        counts.insert((*name).to_owned(), clients as usize);
    }
    counts
}

/// One SayHello through the library's channel.
async fn call(client: &mut GreeterClient<xds_balancer::Channel>) -> Result<String, tonic::Status> {
    let mut request = tonic::Request::new(HelloRequest {
        name: "rebalance".into(),
        delay_ms: 0,
    });
    request.set_timeout(Duration::from_secs(5));
    Ok(client.say_hello(request).await?.into_inner().served_by)
}

#[tokio::test]
async fn after_a_restart_subscribers_spread_over_both_replicas_again_within_one_max_age() {
    bounded(LIMIT, async {
        let greeters = backends(&["greeter-1", "greeter-2"]).await;
        let addresses: Vec<String> = greeters.iter().map(|g| g.addr.to_string()).collect();
        let addresses = addresses.join(",");
        let age = format!("{}s", MAX_AGE.as_secs());
        let grace = format!("{}s", GRACE.as_secs());
        let flags = [
            "--max-connection-age",
            age.as_str(),
            "--max-connection-age-grace",
            grace.as_str(),
        ];
        let replica_a = ControlPlane::fixed("replica-a", &addresses, &flags).await;
        let mut replica_b = ControlPlane::fixed("replica-b", &addresses, &flags).await;
        let service = |name: &str, replica: &ControlPlane| Backend {
            name: name.to_owned(),
            addr: replica.addr,
        };
        let balancer = TcpBalancer::start(vec![
            service("replica-a", &replica_a),
            service("replica-b", &replica_b),
        ])
        .await
        .expect("balancer");

        let mut subscribers = JoinSet::new();
        for i in 0..SUBSCRIBERS {
            subscribers.spawn(subscriber(balancer.addr(), format!("subscriber-{i}")));
        }
        // A client of the library, calling throughout.
        let channel = xds_balancer::Builder::new("greeter")
            .control_plane(format!("http://{}", balancer.addr()))
            .connect()
            .await
            .expect("the library's channel");
        let client = GreeterClient::new(channel);
        eventually("calls reach both greeters", || {
            let mut client = client.clone();
            async move {
                let mut seen = std::collections::BTreeSet::new();
                for _ in 0..10 {
                    seen.insert(call(&mut client).await.ok()?);
                }
                (seen.len() == 2).then_some(())
            }
        })
        .await;
        let stop = Arc::new(AtomicBool::new(false));
        let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let load = {
            let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
            let mut client = client.clone();
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match call(&mut client).await {
                        Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                        Err(status) => {
                            eprintln!("failed call: {status}");
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        };
        let everyone = SUBSCRIBERS + 1;

        // Replica B restarts: out of the Service while it is down (as a
        // pod that is not ready), so everyone ends up on A.
        balancer.set_backends(vec![service("replica-a", &replica_a)]);
        replica_b.process.kill().await;
        eventually("every client on replica A", || async {
            let on_a = split(&[("a", &replica_a)]).await["a"];
            (on_a >= everyone).then_some(())
        })
        .await;
        let replica_b = ControlPlane::fixed("replica-b", &addresses, &flags).await;
        let replicas = [("a", &replica_a), ("b", &replica_b)];
        let before = split(&replicas).await;
        assert_eq!(before["b"], 0, "B starts empty: {before:?}");
        // Ready again: back in the Service.
        balancer.set_backends(vec![
            service("replica-a", &replica_a),
            service("replica-b", &replica_b),
        ]);
        let back = Instant::now();

        // Within one maximum age (at most +10 %) and its grace, every
        // connection A had has ended; those that moved are spread by the
        // Service. A little more for reconnecting on a busy machine.
        let limit = MAX_AGE.mul_f64(1.1) + GRACE + Duration::from_secs(3);
        let mut history = Vec::new();
        let balanced = loop {
            let counts = split(&replicas).await;
            history.push((back.elapsed(), counts.clone()));
            let (a, b) = (counts["a"], counts["b"]);
            if a + b >= everyone - 5 && a.abs_diff(b) <= 20 {
                break Some((back.elapsed(), counts));
            }
            if back.elapsed() > limit {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let (took, counts) =
            balanced.unwrap_or_else(|| panic!("not back near 50/50 within {limit:?}: {history:?}"));
        eprintln!(
            "rebalanced after {took:?} (max age {MAX_AGE:?} ±10 %, grace {GRACE:?}): {counts:?}"
        );
        let rotated = replica_a
            .sample(
                "control_plane_xds_streams_ended_total",
                &[("reason", "max_connection_age")],
            )
            .await
            .expect("the counter");
        assert!(rotated >= 50.0, "A ended its streams by age: {rotated}");

        stop.store(true, Ordering::Relaxed);
        tokio::time::timeout(WAIT, load)
            .await
            .expect("the load stops")
            .expect("the load task");
        let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
        eprintln!("calls during the test: {ok} ok, {failed} failed");
        assert!(ok > 100, "calls were made: {ok}");
        assert_eq!(failed, 0, "no call failed on the data path");
        subscribers.abort_all();
        drop(greeters);
    })
    .await;
}
