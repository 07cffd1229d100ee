//! Clients that misbehave over time: one NACKing everything it gets, and
//! thousands of clients connecting and going away.

use std::time::Duration;

use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use futures::StreamExt;
use tests::ads::{AdsStream, decode, type_url};
use tests::{bounded, channel};

use crate::harness::{GREETER_CLUSTER, Target, version_of};

/// Updates the NACKing client rejects.
const NACKED_UPDATES: u16 = 200;
/// Clients that connect, subscribe, read one answer and go away.
const CYCLES: usize = 2_000;
/// Of which at once.
const AT_ONCE: usize = 20;

#[tokio::test]
async fn a_client_nacking_everything_gets_no_resends_and_harms_no_one() {
    bounded(Duration::from_secs(60), async {
        let mut target = Target::start("nack").await;
        let mut nacker = AdsStream::open(channel(target.addr).await, "nacker").await;
        nacker
            .subscribe::<ClusterLoadAssignment>(&[GREETER_CLUSTER])
            .await;
        let (mut last, _) = nacker.recv_typed::<ClusterLoadAssignment>().await;
        for round in 0..=NACKED_UPDATES {
            nacker
                .nack(
                    &last,
                    &[GREETER_CLUSTER],
                    "rejected by a test that rejects everything",
                )
                .await;
            // A first request is always answered; its answer comes next
            // only if the NACK caused nothing (a stream handles its
            // requests in order).
            nacker.subscribe::<Listener>(&["greeter"]).await;
            let next = nacker.recv().await;
            assert_eq!(
                next.type_url,
                type_url::<Listener>(),
                "round {round}: a NACK was answered with a resend"
            );
            if round == NACKED_UPDATES {
                break;
            }
            // The next endpoints response carries the new version.
            let version = target.update();
            last = loop {
                let response = nacker.recv().await;
                if response.type_url == type_url::<ClusterLoadAssignment>() {
                    let assignments = decode::<ClusterLoadAssignment>(&response);
                    assert_eq!(assignments.first().and_then(version_of), Some(version));
                    break response;
                }
            };
        }

        let clients = target.clients().await;
        let eds = clients
            .iter()
            .find(|c| c.node_id == "nacker")
            .and_then(|c| {
                c.types
                    .iter()
                    .find(|t| t.type_url.ends_with("ClusterLoadAssignment"))
            })
            .expect("the nacker's EDS state in the status API");
        assert_eq!(eds.nacks, u64::from(NACKED_UPDATES) + 1);
        assert!(eds.nack_error.contains("rejects everything"), "{eds:?}");
        target.assert_healthy("a NACK loop").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_clients_coming_and_going_leak_nothing() {
    bounded(Duration::from_secs(90), async {
        let mut target = Target::start("churn").await;
        let fds_before = target.open_fds();
        let addr = target.addr;
        futures::stream::iter(0..CYCLES)
            .for_each_concurrent(AT_ONCE, |i| async move {
                if i % 2 == 0 {
                    // A bare TCP connection, closed at once.
                    drop(tokio::net::TcpStream::connect(addr).await.expect("connect"));
                    return;
                }
                let mut ads = AdsStream::open(channel(addr).await, &format!("churn-{i}")).await;
                ads.subscribe::<ClusterLoadAssignment>(&[GREETER_CLUSTER])
                    .await;
                ads.recv_typed::<ClusterLoadAssignment>().await;
            })
            .await;
        target.assert_healthy("connect/disconnect cycles").await;

        // Every client that left is gone from the registry, and its
        // connection's file descriptor is closed.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let clients = target.clients().await.len();
            let fds = target.open_fds();
            // The bystander stays; the status call's own connection may
            // still be closing.
            if clients == 1 && fds <= fds_before + 2 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "after {CYCLES} cycles: {clients} clients registered, {fds} file descriptors \
                 open (was {fds_before})"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}
