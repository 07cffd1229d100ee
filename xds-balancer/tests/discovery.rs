//! Discovery: control plane outages, services that do not exist or have
//! nothing ready, invalid updates, bad settings.

mod support;

use support::healthy_greeters;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use proto::greet::greeter_client::GreeterClient;
use support::{backends, builder, collect, counts, hello, load, spread, wait_ready, wait_view};
use tests::bounded;
use tests::fake_xds::{self, FakeXds, Health};
use tonic::Code;
use xds_balancer::{Builder, Error};

const LIMIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn control_plane_outage_keeps_balancing_and_resubscribes() {
    bounded(LIMIT, async {
        let servers = backends(&["a", "b", "c"]).await;
        let mut fake = FakeXds::start().await;
        let spec = |n: usize| (servers[n].addr, Health::Healthy, servers[n].name.as_str());
        fake.set_endpoints("greeter", &[spec(0), spec(1), spec(2)]);
        let channel = builder(&fake, "greeter").connect().await.expect("connect");
        wait_ready(&channel, &["a", "b", "c"]).await;
        let client = GreeterClient::new(channel.clone());
        let stop = Arc::new(AtomicBool::new(false));
        let workers = load(&client, 2, &stop);

        fake.stop().await;
        wait_view(
            &channel,
            Duration::from_secs(5),
            "control plane lost",
            |set| !set.control_plane.connected && set.control_plane.unreachable_since.is_some(),
        )
        .await;
        let lost_at = Instant::now();
        // Every call (the load's and these) during the outage, in turn.
        let mut probe = client.clone();
        let mut during = Vec::new();
        for _ in 0..300 {
            let started = Instant::now();
            during.push((started, hello(&mut probe, 0).await.map(|r| r.served_by)));
        }
        let outage = (lost_at, Instant::now());

        let streams_before = fake.requests().iter().map(|r| r.stream).max().unwrap_or(0);
        fake.restart().await;
        let resubscribed = fake
            .wait_for_request(Duration::from_secs(10), |r| {
                r.stream > streams_before
                    && r.request.type_url == xds_type_urls::CLUSTER_LOAD_ASSIGNMENT
            })
            .await;
        assert!(
            !resubscribed.request.version_info.is_empty(),
            "resubscribes with the version it had"
        );
        wait_view(&channel, Duration::from_secs(5), "reconnected", |set| {
            set.control_plane.connected
        })
        .await;

        // A later update applies.
        fake.set_endpoints("greeter", &[spec(0), spec(2)]);
        wait_ready(&channel, &["a", "c"]).await;
        let later = spread(&mut probe, 20).await;
        assert_eq!(
            later.keys().collect::<Vec<_>>(),
            ["a", "c"],
            "b is gone: {later:?}"
        );

        stop.store(true, Ordering::Relaxed);
        let mut outcomes = collect(workers).await;
        outcomes.extend(during);
        let failures: Vec<_> = outcomes.iter().filter(|(_, r)| r.is_err()).collect();
        assert!(failures.is_empty(), "failed calls: {failures:?}");

        // Balancing went on over the last endpoints: the calls started
        // during the outage took turns (three callers share the rotation,
        // so its ends may be off by a few).
        let mut by_backend = BTreeMap::new();
        let mut total = 0;
        for (started, result) in &outcomes {
            if (outage.0..outage.1).contains(started)
                && let Ok(name) = result
            {
                *by_backend.entry(name.clone()).or_insert(0usize) += 1;
                total += 1;
            }
        }
        assert!(total >= 300, "{total} calls during the outage");
        for name in ["a", "b", "c"] {
            let n = by_backend.get(name).copied().unwrap_or(0);
            assert!(
                n.abs_diff(total / 3) <= 4,
                "uneven during the outage: {by_backend:?}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn an_unknown_service_fails_fast_and_says_so() {
    bounded(LIMIT, async {
        let fake = FakeXds::start().await;
        fake.set_endpoints(
            "greeter",
            &[("127.0.0.1:9".parse().expect("addr"), Health::Healthy, "a")],
        );
        let channel = builder(&fake, "xds:///nosuch")
            .connect()
            .await
            .expect("connect");
        let mut client = GreeterClient::new(channel);
        let started = Instant::now();
        let status = hello(&mut client, 0).await.expect_err("no such service");
        let took = started.elapsed();
        assert!(took < Duration::from_secs(1), "took {took:?}");
        assert_eq!(status.code(), Code::Unavailable);
        assert!(status.message().contains("\"nosuch\""), "{status:?}");
        assert!(status.message().contains("does not exist"), "{status:?}");
    })
    .await;
}

#[tokio::test]
async fn no_ready_endpoints_fails_with_the_counts() {
    bounded(LIMIT, async {
        let fake = FakeXds::start().await;
        let addr = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        fake.set_endpoints(
            "greeter",
            &[
                (addr(9), Health::Unhealthy, "a"),
                (addr(10), Health::Unhealthy, "b"),
                (addr(11), Health::Draining, "c"),
            ],
        );
        let channel = builder(&fake, "greeter").connect().await.expect("connect");
        let mut client = GreeterClient::new(channel.clone());
        let mut request = tonic::Request::new(proto::greet::HelloRequest::default());
        request.set_timeout(Duration::from_millis(300));
        let started = Instant::now();
        let status = client.say_hello(request).await.expect_err("nothing ready");
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "waited for the deadline"
        );
        assert_eq!(status.code(), Code::Unavailable);
        assert!(
            status
                .message()
                .contains("no ready endpoints for \"greeter\": 0 ready, 2 not ready, 1 draining"),
            "{status:?}"
        );

        // Without wait-for-ready it fails at once.
        let impatient = builder(&fake, "greeter")
            .wait_for_ready(false)
            .connect()
            .await
            .expect("connect");
        wait_view(&impatient, Duration::from_secs(5), "resolved", |set| {
            matches!(set.service, xds_balancer::ServiceStatus::Resolved { .. })
        })
        .await;
        let mut client = GreeterClient::new(impatient);
        let started = Instant::now();
        let status = hello(&mut client, 0).await.expect_err("nothing ready");
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(
            status.message().contains("0 ready, 2 not ready"),
            "{status:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn an_invalid_update_is_nacked_and_the_last_endpoints_stay() {
    bounded(LIMIT, async {
        let (servers, fake) = healthy_greeters(&["a", "b"]).await;
        let channel = builder(&fake, "greeter").connect().await.expect("connect");
        wait_ready(&channel, &["a", "b"]).await;

        let duplicate = fake_xds::load_assignment(
            "greeter",
            &[
                (servers[0].addr, Health::Healthy, "a"),
                (servers[0].addr, Health::Healthy, "a-again"),
            ],
        );
        fake.send_raw(
            xds_type_urls::CLUSTER_LOAD_ASSIGNMENT,
            vec![fake_xds::any(duplicate)],
        );
        let nack = fake
            .wait_for_request(Duration::from_secs(5), |r| r.request.error_detail.is_some())
            .await
            .request;
        let detail = nack.error_detail.expect("detail");
        assert!(
            detail
                .message
                .contains(&format!("address {} appears twice", servers[0].addr)),
            "{detail:?}"
        );
        assert_eq!(nack.type_url, xds_type_urls::CLUSTER_LOAD_ASSIGNMENT);
        assert!(!nack.response_nonce.is_empty());
        let accepted = fake
            .requests()
            .into_iter()
            .rfind(|r| {
                r.request.type_url == xds_type_urls::CLUSTER_LOAD_ASSIGNMENT
                    && r.request.error_detail.is_none()
            })
            .expect("an earlier ACK");
        assert_eq!(
            nack.version_info, accepted.request.version_info,
            "NACK carries the last good version"
        );

        let set = wait_view(&channel, Duration::from_secs(5), "NACK recorded", |set| {
            set.control_plane.last_nack.is_some()
        })
        .await;
        assert_eq!(set.ready().count(), 2);
        let mut client = GreeterClient::new(channel);
        assert_eq!(
            spread(&mut client, 20).await,
            counts(&[("a", 10), ("b", 10)])
        );
    })
    .await;
}

#[tokio::test]
async fn bad_settings_fail_at_connect() {
    bounded(LIMIT, async {
        let error = Builder::new("dns:///greeter")
            .control_plane("http://127.0.0.1:1")
            .connect()
            .await
            .expect_err("bad target");
        assert!(matches!(error, Error::Target(_)), "{error}");

        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = closed.local_addr().expect("addr").port();
        drop(closed);
        let started = Instant::now();
        let error = Builder::new("greeter")
            .control_plane(format!("http://127.0.0.1:{port}"))
            .connect()
            .await
            .expect_err("nothing listens there");
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(
            matches!(error, Error::ControlPlaneUnreachable { .. }),
            "{error}"
        );
        assert!(error.to_string().contains(&port.to_string()), "{error}");
    })
    .await;
}

#[tokio::test]
async fn dropping_the_last_clone_stops_everything() {
    bounded(LIMIT, async {
        let (servers, fake) = healthy_greeters(&["a", "b"]).await;
        let channel = builder(&fake, "greeter").connect().await.expect("connect");
        wait_ready(&channel, &["a", "b"]).await;
        let clone = channel.clone();
        let mut view = channel.endpoints();
        drop(channel);
        // A clone keeps it all alive.
        let mut client = GreeterClient::new(clone);
        assert_eq!(spread(&mut client, 4).await, counts(&[("a", 2), ("b", 2)]));
        assert_eq!(fake.open_streams(), 1);
        drop(client);

        support::wait_until(Duration::from_secs(5), "discovery stream closed", || {
            fake.open_streams() == 0
        })
        .await;
        for server in &servers {
            let port = server.addr.port();
            support::wait_until(Duration::from_secs(5), "backend connection closed", || {
                support::established_to(port) == 0
            })
            .await;
        }
        // Watchers see the end.
        let ended = tokio::time::timeout(Duration::from_secs(5), async {
            while view.changed().await.is_ok() {}
        })
        .await;
        assert!(ended.is_ok(), "the endpoint watch ends with the channel");
    })
    .await;
}

/// On tokio's paused clock: the call waits out its whole 30 s deadline
/// (while the client keeps retrying the control plane with its default
/// backoff), in no real time.
#[tokio::test(start_paused = true)]
async fn a_call_explains_an_unreachable_control_plane() {
    bounded(Duration::from_secs(300), async {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let uri = format!("http://{}", closed.local_addr().expect("addr"));
        drop(closed);
        let channel = Builder::new("greeter")
            .control_plane(uri.clone())
            .connect_lazy()
            .expect("valid settings");
        wait_view(&channel, Duration::from_secs(5), "unreachable", |set| {
            set.control_plane.unreachable_since.is_some()
        })
        .await;
        let mut client = GreeterClient::new(channel);
        let mut request = tonic::Request::new(proto::greet::HelloRequest::default());
        request.set_timeout(Duration::from_secs(30));
        let started = tokio::time::Instant::now();
        let status = client.say_hello(request).await.expect_err("nothing to call");
        assert_eq!(status.code(), Code::Unavailable);
        let message = status.message();
        assert!(
            message.starts_with(
                "no endpoints for \"greeter\" yet: waiting for listener \"greeter\" from the control plane"
            ),
            "{message}"
        );
        assert!(
            message.contains(&format!("; control plane {uri} unreachable: ")),
            "{message}"
        );
        // The times come last, apart, so equal causes read alike.
        let (cause, times) = message.rsplit_once(" [").expect("a suffix with the times");
        assert!(cause.ends_with("; no update received yet"), "{message}");
        assert!(
            times.starts_with("waited 30s; control plane unreachable since "),
            "{message}"
        );
        assert!(started.elapsed() >= Duration::from_secs(30), "waited out the deadline");
    })
    .await;
}

#[tokio::test]
async fn a_deleted_service_fails_fast_and_its_connections_close() {
    bounded(LIMIT, async {
        let servers = backends(&["a"]).await;
        let fake = FakeXds::start().await;
        fake.set_endpoints("greeter", &[(servers[0].addr, Health::Healthy, "a")]);
        let channel = builder(&fake, "greeter").connect().await.expect("connect");
        wait_ready(&channel, &["a"]).await;
        let mut client = GreeterClient::new(channel.clone());
        hello(&mut client, 0)
            .await
            .expect("call before the deletion");

        fake.remove_service("greeter");
        wait_view(&channel, Duration::from_secs(5), "deleted", |set| {
            matches!(set.service, xds_balancer::ServiceStatus::DoesNotExist(_))
        })
        .await;
        let started = Instant::now();
        let status = hello(&mut client, 0).await.expect_err("deleted");
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(status.message().contains("does not exist"), "{status:?}");
        let port = servers[0].addr.port();
        support::wait_until(Duration::from_secs(5), "connection closed", || {
            support::established_to(port) == 0
        })
        .await;

        // Created again: calls flow again.
        fake.set_endpoints("greeter", &[(servers[0].addr, Health::Healthy, "a")]);
        wait_ready(&channel, &["a"]).await;
        hello(&mut client, 0).await.expect("call after re-creation");
    })
    .await;
}
