//! Phase 6: the control plane restarts. The client keeps balancing over
//! the endpoints it had while it is down, never loses one, reconnects and
//! resubscribes by itself, and no call fails. A restarted control plane's
//! first answer already carries every endpoint's readiness.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::HealthStatus;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use nix::sys::signal::Signal;
use tests::ads::{AdsStream, endpoints};
use tests::{bounded, channel};

use crate::support::{ControlPlane, backend, hello, slow_to_answer, takes_calls, wait_view};

/// Canonical name of greeter's ClusterLoadAssignment.
const GREETER_CLUSTER: &str = "greeter.default.svc.cluster.local:80";

#[tokio::test]
async fn a_control_plane_restart_takes_no_endpoint_away_from_clients() {
    bounded(Duration::from_secs(60), async {
        let a = backend("a", &[]).await;
        let b = backend("b", &[]).await;
        let c = backend("c", &[]).await;
        let mut control_plane = ControlPlane::start(&[&a, &b, &c]).await;
        let channel = control_plane.client(false).await;
        let view = channel.endpoints();

        // Every endpoint set the client publishes from here on: the fewest
        // endpoints it would call.
        let fewest = Arc::new(AtomicUsize::new(usize::MAX));
        let watcher = tokio::spawn({
            let (mut view, fewest) = (view.clone(), fewest.clone());
            async move {
                while view.changed().await.is_ok() {
                    let ready = view.borrow_and_update().ready().count();
                    fewest.fetch_min(ready, Ordering::Relaxed);
                }
            }
        });
        let stop = Arc::new(AtomicBool::new(false));
        let calls = tokio::spawn({
            let (channel, stop) = (channel.clone(), stop.clone());
            async move {
                let (mut made, mut failed) = (0, 0);
                while !stop.load(Ordering::Relaxed) {
                    made += 1;
                    failed += usize::from(hello(&channel, 0).await.is_err());
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                (made, failed)
            }
        });

        control_plane.stop().await;
        wait_view(&view, "the control plane gone", |set| {
            !set.control_plane.connected
        })
        .await;
        // With no control plane, sequential calls still go round robin
        // over the last endpoints.
        let mut served = std::collections::BTreeMap::new();
        for _ in 0..30 {
            let by = hello(&channel, 0)
                .await
                .expect("call with the control plane down");
            *served.entry(by).or_insert(0) += 1;
        }
        assert_eq!(served.len(), 3, "all three still called: {served:?}");

        control_plane.start_again().await;
        wait_view(&view, "the control plane back with every endpoint", |set| {
            set.control_plane.connected && ["a", "b", "c"].iter().all(|n| takes_calls(set, n))
        })
        .await;
        stop.store(true, Ordering::Relaxed);
        let (made, failed) = calls.await.expect("calls");
        watcher.abort();

        assert_eq!(
            fewest.load(Ordering::Relaxed),
            3,
            "the client kept calling all three backends throughout"
        );
        assert!(made > 0, "calls ran during the restart");
        assert_eq!(failed, 0, "no call failed");
    })
    .await;
}

#[tokio::test]
async fn a_restarted_control_plane_answers_with_each_endpoints_readiness() {
    bounded(Duration::from_secs(60), async {
        let a = backend("a", &[]).await;
        let b = backend("b", &[]).await;
        // Slower to answer its health probe than a client is to connect.
        let (slow, _slow) = slow_to_answer(Duration::from_millis(500)).await;
        let mut control_plane =
            ControlPlane::start_with(&[("a", a.addr), ("b", b.addr), ("slow", slow)]).await;
        b.process.signal(Signal::SIGUSR1);
        control_plane.stop().await;
        control_plane.start_again().await;

        // The first answer a client gets, the moment the port is served.
        let mut ads = AdsStream::open(channel(control_plane.addr).await, "first").await;
        ads.subscribe::<ClusterLoadAssignment>(&[GREETER_CLUSTER])
            .await;
        let (_, assignments) = ads.recv_typed::<ClusterLoadAssignment>().await;
        let mut expected = vec![
            (a.addr.to_string(), HealthStatus::Healthy),
            (b.addr.to_string(), HealthStatus::Unhealthy),
            (slow.to_string(), HealthStatus::Healthy),
        ];
        expected.sort();
        assert_eq!(
            endpoints(&assignments[0]),
            expected,
            "each endpoint's own readiness (b is NOT_SERVING), not a blanket \"not ready yet\""
        );
    })
    .await;
}
