//! Round robin and endpoint changes, against real greeter-server processes
//! and the scripted control plane.

mod support;

use support::healthy_greeters;

use std::collections::BTreeMap;
use std::time::Duration;

use nix::sys::signal::Signal;
use proto::greet::greeter_client::GreeterClient;
use support::{
    backends, builder, counts, established_to, hello, spread, start_call, state_of, wait_ready,
    wait_until, wait_view,
};
use tests::bounded;
use tests::fake_xds::{FakeXds, Health};
use xds_balancer::{ConnectionState, EndpointHealth};

const LIMIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn three_backends_3000_sequential_calls_exactly_1000_each() {
    bounded(LIMIT, async {
        let (_servers, fake) = healthy_greeters(&["a", "b", "c"]).await;
        let channel = builder(&fake, "xds:///greeter")
            .connect()
            .await
            .expect("connect");
        let mut client = GreeterClient::new(channel.clone());

        let mut by_backend = BTreeMap::new();
        let mut connection_ids: BTreeMap<String, std::collections::BTreeSet<u64>> = BTreeMap::new();
        for i in 0..3000 {
            let reply = hello(&mut client, 0)
                .await
                .unwrap_or_else(|status| panic!("call {i} failed: {status:?}"));
            *by_backend.entry(reply.served_by.clone()).or_insert(0) += 1;
            connection_ids
                .entry(reply.served_by)
                .or_default()
                .insert(reply.connection_id);
        }
        assert_eq!(by_backend, counts(&[("a", 1000), ("b", 1000), ("c", 1000)]));
        for (backend, ids) in connection_ids {
            assert_eq!(
                ids.len(),
                1,
                "{backend}: one connection per endpoint, got {ids:?}"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn the_first_burst_of_calls_is_spread_over_every_endpoint() {
    bounded(LIMIT, async {
        let (_servers, fake) = healthy_greeters(&["a", "b", "c"]).await;
        let channel = builder(&fake, "greeter").connect().await.expect("connect");
        // Thirty calls at once, before any endpoint is connected: they
        // wait, and the first endpoints are published together.
        let client = GreeterClient::new(channel);
        let replies = futures::future::join_all((0..30).map(|_| {
            let mut client = client.clone();
            async move { hello(&mut client, 0).await }
        }))
        .await;
        let mut by_backend = BTreeMap::new();
        for reply in replies {
            *by_backend
                .entry(reply.expect("call").served_by)
                .or_insert(0) += 1;
        }
        assert_eq!(by_backend, counts(&[("a", 10), ("b", 10), ("c", 10)]));
    })
    .await;
}

#[tokio::test]
async fn an_added_endpoint_takes_calls_in_the_next_rotation() {
    bounded(LIMIT, async {
        let servers = backends(&["a", "b", "c"]).await;
        let fake = FakeXds::start().await;
        let spec = |n: usize| (servers[n].addr, Health::Healthy, servers[n].name.as_str());
        fake.set_endpoints("greeter", &[spec(0), spec(1)]);
        let channel = builder(&fake, "greeter").connect().await.expect("connect");
        wait_ready(&channel, &["a", "b"]).await;
        let mut client = GreeterClient::new(channel.clone());
        assert_eq!(spread(&mut client, 10).await, counts(&[("a", 5), ("b", 5)]));

        fake.set_endpoints("greeter", &[spec(0), spec(1), spec(2)]);
        wait_ready(&channel, &["a", "b", "c"]).await;
        assert_eq!(
            spread(&mut client, 3).await,
            counts(&[("a", 1), ("b", 1), ("c", 1)]),
            "the next three calls go one to each"
        );
    })
    .await;
}

#[tokio::test]
async fn a_removed_endpoint_finishes_its_calls_then_closes() {
    bounded(LIMIT, async {
        let servers = backends(&["a", "b"]).await;
        let fake = FakeXds::start().await;
        let spec = |n: usize| (servers[n].addr, Health::Healthy, servers[n].name.as_str());
        fake.set_endpoints("greeter", &[spec(0), spec(1)]);
        let channel = builder(&fake, "greeter").connect().await.expect("connect");
        wait_ready(&channel, &["a", "b"]).await;
        let client = GreeterClient::new(channel.clone());

        // Two slow calls: one lands on each backend.
        let slow = [
            start_call(&client, 1500).await,
            start_call(&client, 1500).await,
        ];
        let b_port = servers[1].addr.port();
        assert_eq!(established_to(b_port), 1, "one connection to b");

        fake.set_endpoints("greeter", &[spec(0)]);
        let set = wait_view(&channel, Duration::from_secs(5), "b closing", |set| {
            state_of(set, "b") == Some(ConnectionState::Closing)
        })
        .await;
        assert_eq!(
            set.endpoints
                .iter()
                .find(|e| e.hostname == "b")
                .and_then(|e| e.health),
            None
        );
        assert_eq!(
            established_to(b_port),
            1,
            "b's connection stays open for its in-flight call"
        );
        let mut quick = client.clone();
        assert_eq!(
            spread(&mut quick, 10).await,
            counts(&[("a", 10)]),
            "b takes no new calls"
        );

        let mut served = Vec::new();
        for call in slow {
            let reply = call.await.expect("in-flight call succeeds");
            served.push(reply.served_by);
        }
        served.sort();
        assert_eq!(served, ["a", "b"]);

        wait_view(&channel, Duration::from_secs(5), "b gone", |set| {
            state_of(set, "b").is_none()
        })
        .await;
        wait_until(Duration::from_secs(5), "b's connection closed", || {
            established_to(b_port) == 0
        })
        .await;
    })
    .await;
}

#[tokio::test]
async fn a_draining_endpoint_takes_no_new_calls() {
    bounded(LIMIT, async {
        let servers = backends(&["a", "b", "c"]).await;
        let fake = FakeXds::start().await;
        let spec = |n: usize, health| (servers[n].addr, health, servers[n].name.as_str());
        fake.set_endpoints(
            "greeter",
            &[
                spec(0, Health::Healthy),
                spec(1, Health::Healthy),
                spec(2, Health::Healthy),
            ],
        );
        let channel = builder(&fake, "greeter").connect().await.expect("connect");
        wait_ready(&channel, &["a", "b", "c"]).await;
        let client = GreeterClient::new(channel.clone());
        let mut slow = Vec::new();
        for _ in 0..3 {
            slow.push(start_call(&client, 1000).await);
        }
        let b_port = servers[1].addr.port();
        assert_eq!(established_to(b_port), 1);

        fake.set_endpoints(
            "greeter",
            &[
                spec(0, Health::Healthy),
                spec(1, Health::Draining),
                spec(2, Health::Healthy),
            ],
        );
        wait_view(&channel, Duration::from_secs(5), "b draining", |set| {
            set.endpoints
                .iter()
                .any(|e| e.hostname == "b" && e.health == Some(EndpointHealth::Draining))
        })
        .await;
        let mut quick = client.clone();
        assert_eq!(
            spread(&mut quick, 30).await,
            counts(&[("a", 15), ("c", 15)])
        );
        for call in slow {
            call.await.expect("in-flight calls finish, on b too");
        }
        wait_until(Duration::from_secs(5), "b's connection closed", || {
            established_to(b_port) == 0
        })
        .await;
    })
    .await;
}

#[tokio::test]
async fn a_not_ready_endpoint_keeps_its_connection_idle_until_it_is_ready_again() {
    bounded(LIMIT, async {
        let servers = backends(&["a", "b"]).await;
        let fake = FakeXds::start().await;
        let spec = |n: usize, health| (servers[n].addr, health, servers[n].name.as_str());
        let ready = [spec(0, Health::Healthy), spec(1, Health::Healthy)];
        let b_not_ready = [spec(0, Health::Healthy), spec(1, Health::Unhealthy)];
        fake.set_endpoints("greeter", &ready);
        let channel = builder(&fake, "greeter").connect().await.expect("connect");
        wait_ready(&channel, &["a", "b"]).await;
        let mut client = GreeterClient::new(channel.clone());
        let connection_of_b = |replies: &[proto::greet::HelloReply]| {
            replies
                .iter()
                .find(|r| r.served_by == "b")
                .map(|r| r.connection_id)
        };
        let mut replies = Vec::new();
        for _ in 0..2 {
            replies.push(hello(&mut client, 0).await.expect("call"));
        }
        let first = connection_of_b(&replies).expect("a call on b");
        let b_port = servers[1].addr.port();

        // Not ready: no calls, the connection kept.
        fake.set_endpoints("greeter", &b_not_ready);
        wait_view(&channel, Duration::from_secs(5), "b standing by", |set| {
            state_of(set, "b") == Some(ConnectionState::Standby)
        })
        .await;
        assert_eq!(spread(&mut client, 10).await, counts(&[("a", 10)]));
        assert_eq!(established_to(b_port), 1, "b's connection stays open");

        // Ready again: calls on the same connection.
        fake.set_endpoints("greeter", &ready);
        wait_ready(&channel, &["a", "b"]).await;
        let mut replies = Vec::new();
        for _ in 0..2 {
            replies.push(hello(&mut client, 0).await.expect("call"));
        }
        assert_eq!(connection_of_b(&replies), Some(first), "no new connection");

        // Not ready and then gone: nothing reconnects to it.
        fake.set_endpoints("greeter", &b_not_ready);
        wait_view(&channel, Duration::from_secs(5), "b standing by", |set| {
            state_of(set, "b") == Some(ConnectionState::Standby)
        })
        .await;
        servers[1].process.signal(Signal::SIGKILL);
        wait_view(&channel, Duration::from_secs(5), "b idle", |set| {
            state_of(set, "b") == Some(ConnectionState::Idle)
        })
        .await;
        assert_eq!(spread(&mut client, 4).await, counts(&[("a", 4)]));
    })
    .await;
}

#[tokio::test]
async fn updates_that_keep_an_endpoint_keep_its_connection() {
    bounded(LIMIT, async {
        let servers = backends(&["a", "b", "c"]).await;
        let fake = FakeXds::start().await;
        let spec = |n: usize| (servers[n].addr, Health::Healthy, servers[n].name.as_str());
        fake.set_endpoints("greeter", &[spec(0), spec(1)]);
        let channel = builder(&fake, "greeter").connect().await.expect("connect");
        wait_ready(&channel, &["a", "b"]).await;
        let mut client = GreeterClient::new(channel.clone());
        let connections = |replies: Vec<proto::greet::HelloReply>| {
            replies
                .into_iter()
                .map(|r| (r.served_by, r.connection_id))
                .collect::<BTreeMap<_, _>>()
        };
        let mut before = Vec::new();
        for _ in 0..4 {
            before.push(hello(&mut client, 0).await.expect("call"));
        }
        let before = connections(before);

        // Add c, then take it away again, then reorder: a and b stay.
        fake.set_endpoints("greeter", &[spec(0), spec(1), spec(2)]);
        wait_ready(&channel, &["a", "b", "c"]).await;
        fake.set_endpoints("greeter", &[spec(1), spec(0)]);
        wait_ready(&channel, &["a", "b"]).await;

        let mut after = Vec::new();
        for _ in 0..4 {
            after.push(hello(&mut client, 0).await.expect("call"));
        }
        assert_eq!(
            connections(after),
            before,
            "same server-side connection ids"
        );
    })
    .await;
}

#[tokio::test]
async fn health_checks_take_a_not_serving_endpoint_out() {
    bounded(LIMIT, async {
        let (servers, fake) = healthy_greeters(&["a", "b"]).await;
        let channel = builder(&fake, "greeter")
            .health_check("greet.Greeter")
            .connect()
            .await
            .expect("connect");
        wait_ready(&channel, &["a", "b"]).await;
        let mut client = GreeterClient::new(channel.clone());

        servers[1].process.signal(Signal::SIGUSR1);
        wait_view(&channel, Duration::from_secs(5), "b not serving", |set| {
            state_of(set, "b") == Some(ConnectionState::NotServing)
        })
        .await;
        assert_eq!(spread(&mut client, 10).await, counts(&[("a", 10)]));

        servers[1].process.signal(Signal::SIGUSR1);
        wait_ready(&channel, &["a", "b"]).await;
        assert_eq!(spread(&mut client, 10).await, counts(&[("a", 5), ("b", 5)]));
    })
    .await;
}
