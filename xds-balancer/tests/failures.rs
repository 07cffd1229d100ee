//! Failures: dead and departing backends, calls that never left, control
//! plane outages, services that do not exist, invalid updates.

mod support;

use support::healthy_greeters;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use proto::greet::greeter_client::GreeterClient;
use support::{
    Outcome, backends, builder, collect, counts, hello, load, spread, state_of, wait_ready,
    wait_view,
};
use tests::bounded;
use tests::fake_xds::{FakeXds, Health};
use tokio::sync::oneshot;
use tonic::Code;
use xds_balancer::{ConnectionState, RetryPolicy};

const LIMIT: Duration = Duration::from_secs(60);

/// What happened around a SIGKILL of one of three backends under load.
struct KillReport {
    /// Every call of the load (4 workers) and of the probe, with start time.
    outcomes: Vec<Outcome>,
    killed_at: Instant,
    /// When the channel showed b out of rotation.
    ejected_at: Instant,
}

async fn kill_a_backend_under_load(retry: Option<RetryPolicy>) -> KillReport {
    let (mut servers, fake) = healthy_greeters(&["a", "b", "c"]).await;
    let mut builder = builder(&fake, "greeter");
    if let Some(policy) = retry {
        builder = builder.retry_policy(policy);
    }
    let channel = builder.connect().await.expect("connect");
    wait_ready(&channel, &["a", "b", "c"]).await;
    let client = GreeterClient::new(channel.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let workers = load(&client, 4, &stop);
    let mut probe = client.clone();
    spread(&mut probe, 30).await;

    servers[1].process.kill().await;
    let killed_at = Instant::now();
    // Out of rotation with no word from the control plane: it still says
    // HEALTHY.
    let set = wait_view(&channel, Duration::from_secs(2), "b ejected", |set| {
        matches!(
            state_of(set, "b"),
            Some(ConnectionState::Ejected | ConnectionState::Connecting)
        )
    })
    .await;
    let ejected_at = Instant::now();
    assert!(
        set.endpoints
            .iter()
            .all(|e| e.health == Some(xds_balancer::EndpointHealth::Healthy))
    );

    // 1000 more calls from the probe, alongside the load.
    let mut outcomes = Vec::new();
    for _ in 0..1000 {
        let started = Instant::now();
        outcomes.push((started, hello(&mut probe, 0).await.map(|r| r.served_by)));
    }
    stop.store(true, Ordering::Relaxed);
    outcomes.extend(collect(workers).await);
    KillReport {
        outcomes,
        killed_at,
        ejected_at,
    }
}

#[tokio::test]
async fn a_killed_backend_leaves_the_rotation_at_once() {
    bounded(LIMIT, async {
        let report = kill_a_backend_under_load(None).await;
        let after_ejection: Vec<_> = report
            .outcomes
            .iter()
            .filter(|(t, _)| *t >= report.ejected_at)
            .collect();
        assert!(
            after_ejection.len() >= 1000,
            "{} calls",
            after_ejection.len()
        );
        for (_, result) in &after_ejection {
            let served_by = result
                .as_ref()
                .expect("every call after the ejection succeeds");
            assert_ne!(served_by, "b");
        }
        // Without a retry policy, only calls already on b's connection when
        // it died (sent before the client could know) may fail.
        let failed: Vec<_> = report
            .outcomes
            .iter()
            .filter_map(|(t, r)| r.as_ref().err().map(|e| (t, e)))
            .collect();
        assert!(failed.len() <= 8, "{failed:?}");
        for (started, status) in failed {
            assert!(*started < report.ejected_at);
            assert_eq!(status.code(), Code::Unavailable);
            assert!(status.message().contains("call to b ("), "{status:?}");
        }
    })
    .await;
}

#[tokio::test]
async fn with_a_retry_policy_a_killed_backend_fails_no_call() {
    bounded(LIMIT, async {
        let policy = RetryPolicy::for_methods(["/greet.Greeter/SayHello"]);
        let report = kill_a_backend_under_load(Some(policy)).await;
        let failed: Vec<_> = report.outcomes.iter().filter(|(_, r)| r.is_err()).collect();
        assert!(failed.is_empty(), "failed calls: {failed:?}");
        let after_kill = report
            .outcomes
            .iter()
            .filter(|(t, _)| *t >= report.killed_at)
            .count();
        assert!(after_kill >= 1000, "{after_kill} calls after the kill");
    })
    .await;
}

/// An HTTP/2 server that takes one stream at a time (SETTINGS
/// MAX_CONCURRENT_STREAMS = 1), never answers, and drops the connection
/// when told: requests queued behind the first never leave the client.
async fn stalling_server() -> (SocketAddr, oneshot::Receiver<()>, oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (accepted_tx, accepted_rx) = oneshot::channel();
    let (close_tx, close_rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.expect("accept");
        let mut connection = h2::server::Builder::new()
            .max_concurrent_streams(1)
            .handshake::<_, bytes::Bytes>(socket)
            .await
            .expect("h2 handshake");
        let first = connection.accept().await;
        let _ = accepted_tx.send(());
        let _held = first;
        // Keep the connection going until told to drop it.
        tokio::select! {
            _ = close_rx => {}
            _ = std::future::poll_fn(|cx| connection.poll_closed(cx)) => {}
        }
    });
    (addr, accepted_rx, close_tx)
}

/// `calls` calls dispatched in one go to a real backend and a stalling
/// one: half to each. On the stalling one the first is sent and the second
/// waits for a stream slot inside h2; the rest wait in the client's queues
/// and, once its connection drops, are handed back unsent and sent to the
/// real backend. No retry policy: only transparent retries of unsent calls.
async fn unsent_calls_go_elsewhere(calls: usize) {
    let servers = backends(&["a"]).await;
    let (stall_addr, accepted, close) = stalling_server().await;
    let fake = FakeXds::start().await;
    fake.set_endpoints(
        "greeter",
        &[
            (stall_addr, Health::Healthy, "stall"),
            (servers[0].addr, Health::Healthy, "a"),
        ],
    );
    let channel = builder(&fake, "greeter").connect().await.expect("connect");
    wait_ready(&channel, &["a", "stall"]).await;
    let client = GreeterClient::new(channel.clone());

    let calls = tokio::spawn(futures::future::join_all((0..calls).map(|_| {
        let mut client = client.clone();
        async move { hello(&mut client, 0).await }
    })));
    accepted
        .await
        .expect("the stalling server got its first stream");
    let _ = close.send(());
    let results = calls.await.expect("join");

    let ok: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(ok.iter().all(|r| r.served_by == "a"));
    assert_eq!(
        ok.len(),
        results.len() - 2,
        "all but the 2 that reached the stalling connection's HTTP/2 streams; failed: {failed:?}"
    );
    for status in failed {
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert!(status.message().contains("stall"), "{status:?}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn calls_that_never_left_are_sent_elsewhere() {
    // Few calls in flight: each call hands its request to hyper itself.
    bounded(LIMIT, unsent_calls_go_elsewhere(10)).await;
}

#[tokio::test(flavor = "current_thread")]
async fn calls_queued_for_a_busy_connection_are_sent_elsewhere_too() {
    // 100 calls: past 32 in flight on a connection, requests go through its
    // dispatch task in batches, on both endpoints.
    bounded(LIMIT, unsent_calls_go_elsewhere(100)).await;
}

#[tokio::test]
async fn goaway_takes_an_endpoint_out_at_once() {
    bounded(LIMIT, async {
        let (servers, fake) = healthy_greeters(&["a", "b"]).await;
        let channel = builder(&fake, "greeter").connect().await.expect("connect");
        wait_ready(&channel, &["a", "b"]).await;
        let mut client = GreeterClient::new(channel.clone());

        // The next call goes to the other backend: make it a slow one.
        let first = hello(&mut client, 0).await.expect("call").served_by;
        let (leaving, staying) = if first == "a" { (1, "a") } else { (0, "b") };
        let slow = support::start_call(&client, 3000).await;
        let leaving_name = servers[leaving].name.clone();

        // SIGTERM with no drain delay: GOAWAY at once; the control plane
        // still says HEALTHY. The connection itself stays open until the
        // slow call ends (3 s): ejection must not wait for that.
        servers[leaving].process.signal(Signal::SIGTERM);
        wait_view(
            &channel,
            Duration::from_secs(2),
            "ejected on GOAWAY",
            |set| state_of(set, &leaving_name) != Some(ConnectionState::Ready),
        )
        .await;
        assert_eq!(spread(&mut client, 50).await, counts(&[(staying, 50)]));
        let reply = slow.await.expect("the in-flight call finishes");
        assert_eq!(reply.served_by, leaving_name);
    })
    .await;
}
