//! Phase 5: a backend killed with SIGKILL. Only calls in flight on it can
//! fail; under a retry policy for the (idempotent) method none does; calls
//! made after the kill all succeed elsewhere.

use std::time::Duration;

use futures::future::join_all;
use tests::bounded;
use tonic::Code;

use crate::support::{ControlPlane, backend, hello};

/// Server-side wait of each slow call: the kill lands while they run.
const SLOW_MS: u32 = 3_000;
/// Slow calls per client: ten per backend.
const SLOW_CALLS: usize = 30;

/// Starts `SLOW_CALLS` slow calls on `channel`, then one quick call per
/// backend, so every slow call has reached its server before this returns.
async fn slow_calls(
    channel: &xds_balancer::Channel,
) -> Vec<tokio::task::JoinHandle<Result<String, tonic::Status>>> {
    let calls = (0..SLOW_CALLS)
        .map(|_| {
            let channel = channel.clone();
            tokio::spawn(async move { hello(&channel, SLOW_MS).await })
        })
        .collect();
    for _ in 0..3 {
        hello(channel, 0).await.expect("quick call");
    }
    calls
}

#[tokio::test]
async fn sigkill_fails_only_the_calls_in_flight_on_the_dead_backend() {
    bounded(Duration::from_secs(60), async {
        let a = backend("a", &[]).await;
        let b = backend("b", &[]).await;
        let mut c = backend("c", &[]).await;
        let control_plane = ControlPlane::start(&[&a, &b, &c]).await;
        let plain = control_plane.client(false).await;
        let retrying = control_plane.client(true).await;

        let plain_calls = slow_calls(&plain).await;
        let retried_calls = slow_calls(&retrying).await;
        c.process.kill().await;

        // Right after the kill, whether or not the control plane has
        // reported it yet, new calls succeed on the live backends (a call
        // never sent is retried on another endpoint).
        for _ in 0..30 {
            let served_by = hello(&plain, 0).await.expect("a call after the kill");
            assert_ne!(served_by, "c");
        }

        let mut failed = 0;
        for result in join_all(plain_calls).await {
            match result.expect("call task") {
                Ok(served_by) => assert_ne!(served_by, "c", "c was killed mid-call"),
                Err(status) => {
                    assert_eq!(status.code(), Code::Unavailable, "{status}");
                    failed += 1;
                }
            }
        }
        assert!(
            (1..=SLOW_CALLS / 3).contains(&failed),
            "without a retry policy, exactly the calls in flight on c fail (at most {}): {failed}",
            SLOW_CALLS / 3
        );
        for result in join_all(retried_calls).await {
            let served_by = result
                .expect("call task")
                .expect("under the retry policy no call fails");
            assert_ne!(served_by, "c");
        }
    })
    .await;
}
