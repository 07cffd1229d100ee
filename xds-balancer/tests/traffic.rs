//! Traffic policy from the control plane, against real greeter-server
//! processes: weighted clusters and method routes (gRPC A28), priorities
//! (zone failover), least request (A48).

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::sys::signal::Signal;
use proto::greet::greeter_client::GreeterClient;
use support::traffic::{
    by_priority, least_request_cluster, method_route, prefix_route, publish_cluster,
    publish_cluster_with, publish_routes, slow_relay, split, to,
};
use support::{backends, builder, collect, hello, load, spread, wait_ready, wait_view};
use tests::bounded;
use tests::fake_xds::{self, FakeXds, Health};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use xds_balancer::{Channel, ConnectionState};

const LIMIT: Duration = Duration::from_secs(90);

/// Publishes `greeter` split between clusters `stable` (backend `v1`) and
/// `canary` (backend `v2`) with these weights.
fn canary(fake: &FakeXds, stable: u32, canary: u32) {
    publish_routes(
        fake,
        "greeter",
        vec![prefix_route(
            "",
            split(&[("stable", stable), ("canary", canary)]),
        )],
    );
}

/// Counts of `n` sequential calls' backends, with 0 for backends not hit.
async fn tally(
    client: &mut GreeterClient<Channel>,
    n: usize,
    names: &[&str],
) -> BTreeMap<String, usize> {
    let mut counts = spread(client, n).await;
    for name in names {
        counts.entry((*name).to_owned()).or_default();
    }
    counts
}

#[tokio::test]
async fn an_80_20_split_gives_800_and_200_of_1000_calls() {
    bounded(LIMIT, async {
        let servers = backends(&["v1", "v2"]).await;
        let fake = FakeXds::start().await;
        publish_cluster(&fake, "stable", &[(servers[0].addr, Health::Healthy, "v1")]);
        publish_cluster(&fake, "canary", &[(servers[1].addr, Health::Healthy, "v2")]);
        canary(&fake, 80, 20);
        let channel = builder(&fake, "greeter").connect().await.expect("connect");
        wait_ready(&channel, &["v1", "v2"]).await;
        let view = channel.endpoints().borrow().clone();
        assert_eq!(
            view.endpoints
                .iter()
                .map(|e| (e.hostname.as_str(), e.cluster.as_str()))
                .collect::<Vec<_>>(),
            [("v1", "stable"), ("v2", "canary")]
        );

        let mut client = GreeterClient::new(channel);
        let counts = tally(&mut client, 1000, &["v1", "v2"]).await;
        println!("80/20 split of 1000 calls: {counts:?}");
        assert!((760..=840).contains(&counts["v1"]), "{counts:?}");
        assert!((160..=240).contains(&counts["v2"]), "{counts:?}");
    })
    .await;
}

/// Calls until the first served by `name` (at most `limit`): the moment a
/// new route table is in use.
async fn until_served_by(client: &mut GreeterClient<Channel>, name: &str, limit: usize) {
    for _ in 0..limit {
        if hello(client, 0).await.expect("call").served_by == name {
            return;
        }
    }
    panic!("no call reached {name} in {limit} calls");
}

#[tokio::test]
async fn new_weights_take_effect_with_no_failed_call() {
    bounded(LIMIT, async {
        let servers = backends(&["v1", "v2"]).await;
        let fake = FakeXds::start().await;
        publish_cluster(&fake, "stable", &[(servers[0].addr, Health::Healthy, "v1")]);
        publish_cluster(&fake, "canary", &[(servers[1].addr, Health::Healthy, "v2")]);
        // Weight 0 leaves the canary out altogether: not even subscribed.
        canary(&fake, 100, 0);
        let channel = builder(&fake, "greeter").connect().await.expect("connect");
        wait_ready(&channel, &["v1"]).await;
        let mut client = GreeterClient::new(channel.clone());
        assert_eq!(
            tally(&mut client, 50, &[]).await,
            support::counts(&[("v1", 50)])
        );

        let stop = Arc::new(AtomicBool::new(false));
        let workers = load(&client, 4, &stop);

        // 50/50: the canary's cluster is subscribed and connected while
        // calls keep flowing.
        canary(&fake, 50, 50);
        until_served_by(&mut client, "v2", 200).await;
        let halves = tally(&mut client, 400, &["v1", "v2"]).await;
        println!("after 100/0 -> 50/50, 400 calls: {halves:?}");
        assert!((160..=240).contains(&halves["v2"]), "{halves:?}");

        // 0/100: the stable cluster is no longer named; its pool retires.
        canary(&fake, 0, 100);
        wait_view(&channel, Duration::from_secs(10), "only v2 left", |set| {
            set.endpoints.iter().all(|e| e.hostname == "v2")
        })
        .await;
        assert_eq!(
            tally(&mut client, 100, &[]).await,
            support::counts(&[("v2", 100)])
        );

        stop.store(true, Ordering::Relaxed);
        let outcomes = collect(workers).await;
        let failed: Vec<_> = outcomes
            .iter()
            .filter_map(|(_, r)| r.as_ref().err())
            .collect();
        println!("{} calls under load across both changes", outcomes.len());
        assert!(outcomes.len() > 100, "load ran: {}", outcomes.len());
        assert!(failed.is_empty(), "failed calls: {failed:?}");
    })
    .await;
}

async fn health_check(channel: &Channel) -> Result<ServingStatus, tonic::Status> {
    let mut health = HealthClient::new(channel.clone());
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: String::new(),
    });
    request.set_timeout(Duration::from_secs(5));
    let status = health.check(request).await?.into_inner().status;
    Ok(ServingStatus::try_from(status).expect("a known status"))
}

#[tokio::test]
async fn say_hello_goes_to_v2_and_every_other_method_to_v1() {
    bounded(LIMIT, async {
        let servers = backends(&["v1", "v2"]).await;
        // v2 reports NOT_SERVING (it still answers SayHello): a health check
        // that reaches it says so, one that reaches v1 says SERVING.
        servers[1].process.signal(Signal::SIGUSR1);
        let fake = FakeXds::start().await;
        publish_cluster(&fake, "v1", &[(servers[0].addr, Health::Healthy, "v1")]);
        publish_cluster(&fake, "v2", &[(servers[1].addr, Health::Healthy, "v2")]);
        publish_routes(
            &fake,
            "greeter",
            vec![
                method_route("/greet.Greeter/SayHello", to("v2")),
                prefix_route("", to("v1")),
            ],
        );
        let channel = builder(&fake, "greeter").connect().await.expect("connect");
        wait_ready(&channel, &["v1", "v2"]).await;
        let mut client = GreeterClient::new(channel.clone());
        let mut v2_serving = true;
        for _ in 0..50 {
            v2_serving = health_check(&channel).await.expect("check") != ServingStatus::Serving;
            if !v2_serving {
                break;
            }
        }
        assert!(!v2_serving, "v2 never reported NOT_SERVING");

        assert_eq!(
            spread(&mut client, 20).await,
            support::counts(&[("v2", 20)])
        );
        for _ in 0..20 {
            assert_eq!(
                health_check(&channel).await.expect("check"),
                ServingStatus::Serving
            );
        }

        // A table where only SayHello has a route: other methods fail, and
        // say why.
        publish_routes(
            &fake,
            "greeter",
            vec![method_route("/greet.Greeter/SayHello", to("v2"))],
        );
        wait_view(&channel, Duration::from_secs(10), "v1 retired", |set| {
            set.endpoints.iter().all(|e| e.hostname == "v2")
        })
        .await;
        let refused = health_check(&channel).await.expect_err("no route");
        assert_eq!(refused.code(), tonic::Code::Unavailable);
        assert_eq!(
            refused.message(),
            "no route of \"greeter\" matches the call to \"/grpc.health.v1.Health/Check\""
        );
        assert_eq!(spread(&mut client, 5).await, support::counts(&[("v2", 5)]));
    })
    .await;
}

#[tokio::test]
async fn calls_stay_in_the_clients_zone_and_fail_over_with_no_failed_call() {
    bounded(LIMIT, async {
        let servers = backends(&["a1", "a2", "b1", "b2"]).await;
        let spec = |n: usize, health| (servers[n].addr, health, servers[n].name.as_str());
        let assignment = |zone_a: Health| {
            by_priority(
                "greeter",
                &[
                    ("zone-a", &[spec(0, zone_a), spec(1, zone_a)]),
                    (
                        "zone-b",
                        &[spec(2, Health::Healthy), spec(3, Health::Healthy)],
                    ),
                ],
            )
        };
        let fake = FakeXds::start().await;
        publish_routes(&fake, "greeter", vec![prefix_route("", to("greeter"))]);
        publish_cluster_with(
            &fake,
            fake_xds::cluster("greeter"),
            assignment(Health::Healthy),
        );
        let channel = builder(&fake, "greeter")
            .zone("zone-a")
            .connect()
            .await
            .expect("connect");
        let first = fake
            .wait_for_request(Duration::from_secs(5), |r| r.request.node.is_some())
            .await;
        let zone = first.request.node.and_then(|n| n.locality).map(|l| l.zone);
        assert_eq!(
            zone.as_deref(),
            Some("zone-a"),
            "the zone goes to the control plane"
        );

        // Priority 1 is connected, on standby.
        wait_ready(&channel, &["a1", "a2"]).await;
        wait_view(
            &channel,
            Duration::from_secs(10),
            "zone-b on standby",
            |set| {
                set.endpoints
                    .iter()
                    .filter(|e| e.zone == "zone-b")
                    .all(|e| e.connection == ConnectionState::Standby && e.priority == 1)
            },
        )
        .await;
        let mut client = GreeterClient::new(channel.clone());
        assert_eq!(
            spread(&mut client, 200).await,
            support::counts(&[("a1", 100), ("a2", 100)])
        );

        let stop = Arc::new(AtomicBool::new(false));
        let workers = load(&client, 4, &stop);
        // Zone a's pods go not ready: calls move to zone b.
        publish_cluster_with(
            &fake,
            fake_xds::cluster("greeter"),
            assignment(Health::Unhealthy),
        );
        wait_ready(&channel, &["b1", "b2"]).await;
        // The workers share the rotation: each backend's share varies.
        let moved = spread(&mut client, 100).await;
        assert_eq!(moved.keys().collect::<Vec<_>>(), ["b1", "b2"], "{moved:?}");
        // They come back: calls return to zone a.
        publish_cluster_with(
            &fake,
            fake_xds::cluster("greeter"),
            assignment(Health::Healthy),
        );
        wait_ready(&channel, &["a1", "a2"]).await;
        let back = spread(&mut client, 100).await;
        assert_eq!(back.keys().collect::<Vec<_>>(), ["a1", "a2"], "{back:?}");

        stop.store(true, Ordering::Relaxed);
        let outcomes = collect(workers).await;
        let failed: Vec<_> = outcomes
            .iter()
            .filter_map(|(_, r)| r.as_ref().err())
            .collect();
        assert!(outcomes.len() > 100, "load ran: {}", outcomes.len());
        assert!(failed.is_empty(), "failed calls: {failed:?}");
    })
    .await;
}

#[tokio::test]
async fn calls_fail_over_when_the_zones_servers_stop_before_the_control_plane_notices() {
    bounded(LIMIT, async {
        let servers = backends(&["a1", "a2", "b1"]).await;
        let spec = |n: usize| (servers[n].addr, Health::Healthy, servers[n].name.as_str());
        let fake = FakeXds::start().await;
        publish_routes(&fake, "greeter", vec![prefix_route("", to("greeter"))]);
        publish_cluster_with(
            &fake,
            fake_xds::cluster("greeter"),
            by_priority(
                "greeter",
                &[("zone-a", &[spec(0), spec(1)]), ("zone-b", &[spec(2)])],
            ),
        );
        let channel = builder(&fake, "greeter")
            .zone("zone-a")
            .connect()
            .await
            .expect("connect");
        wait_ready(&channel, &["a1", "a2"]).await;
        let mut client = GreeterClient::new(channel.clone());
        assert_eq!(
            spread(&mut client, 10).await,
            support::counts(&[("a1", 5), ("a2", 5)])
        );

        // Both of zone a's servers stop (GOAWAY); the control plane still
        // lists them HEALTHY. The client's own connections tell.
        servers[0].process.signal(Signal::SIGTERM);
        servers[1].process.signal(Signal::SIGTERM);
        wait_ready(&channel, &["b1"]).await;
        assert_eq!(
            spread(&mut client, 20).await,
            support::counts(&[("b1", 20)])
        );
    })
    .await;
}

/// Calls from `concurrency` workers, `per_worker` each; replies by backend.
async fn concurrent(
    client: &GreeterClient<Channel>,
    concurrency: usize,
    per_worker: usize,
) -> BTreeMap<String, usize> {
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move {
                let mut served = Vec::new();
                for _ in 0..per_worker {
                    served.push(hello(&mut client, 0).await.expect("call").served_by);
                }
                served
            })
        })
        .collect();
    let mut counts = BTreeMap::new();
    for worker in workers {
        for name in worker.await.expect("worker") {
            *counts.entry(name).or_insert(0) += 1;
        }
    }
    counts
}

#[tokio::test]
async fn least_request_sends_a_slow_backend_fewer_calls_than_round_robin() {
    bounded(LIMIT, async {
        let servers = backends(&["fast1", "fast2", "slow"]).await;
        let relay = slow_relay(servers[2].addr, Duration::from_millis(20)).await;
        let endpoints = [
            (servers[0].addr, Health::Healthy, "fast1"),
            (servers[1].addr, Health::Healthy, "fast2"),
            (relay.addr, Health::Healthy, "slow"),
        ];
        let fake = FakeXds::start().await;
        for (target, cluster) in [
            ("round-robin", fake_xds::cluster("round-robin")),
            ("least-request", least_request_cluster("least-request")),
        ] {
            publish_routes(&fake, target, vec![prefix_route("", to(target))]);
            publish_cluster_with(
                &fake,
                cluster,
                fake_xds::load_assignment(target, &endpoints),
            );
        }

        let mut shares = BTreeMap::new();
        for target in ["round-robin", "least-request"] {
            let channel = builder(&fake, target).connect().await.expect("connect");
            wait_ready(&channel, &["fast1", "fast2", "slow"]).await;
            let client = GreeterClient::new(channel);
            let counts = concurrent(&client, 6, 60).await;
            println!("{target}: 360 calls from 6 concurrent workers: {counts:?}");
            shares.insert(target, counts.get("slow").copied().unwrap_or(0));
        }
        assert!(
            shares["least-request"] < shares["round-robin"],
            "the slow backend's calls: {shares:?}"
        );
    })
    .await;
}
