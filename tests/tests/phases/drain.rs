//! Phase 4's promise, one backend at a time: a backend told to stop
//! (SIGTERM) leaves the rotation at once, and every call it has in flight
//! still succeeds; meanwhile no new call fails.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures::future::join_all;
use nix::sys::signal::Signal;
use tests::bounded;

use crate::support::{ControlPlane, backend, hello, takes_calls, wait_view};

/// How long each slow call makes its server wait: longer than the drain
/// delay, so the calls are still in flight when new connections stop.
const SLOW_MS: u32 = 2_500;

#[tokio::test]
async fn in_flight_calls_of_a_draining_backend_all_succeed() {
    bounded(Duration::from_secs(60), async {
        let mut a = backend("a", &["--drain-delay", "1s", "--grace", "10s"]).await;
        let b = backend("b", &[]).await;
        let control_plane = ControlPlane::start(&[&a, &b]).await;
        let channel = control_plane.client(false).await;
        let view = channel.endpoints();

        // Ten slow calls: five on each backend (strict round robin).
        let slow: Vec<_> = (0..10)
            .map(|_| {
                let channel = channel.clone();
                tokio::spawn(async move { hello(&channel, SLOW_MS).await })
            })
            .collect();
        // A quick call to each backend after them: each connection has
        // delivered the slow calls' requests before this answer arrives.
        for _ in 0..2 {
            hello(&channel, 0).await.expect("quick call");
        }

        // Steady new calls all through the drain.
        let stop = Arc::new(AtomicBool::new(false));
        let failed = Arc::new(AtomicUsize::new(0));
        let steady = tokio::spawn({
            let (channel, stop, failed) = (channel.clone(), stop.clone(), failed.clone());
            async move {
                let mut made = 0;
                while !stop.load(Ordering::Relaxed) {
                    if hello(&channel, 0).await.is_err() {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    made += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                made
            }
        });

        a.process.signal(Signal::SIGTERM);
        let stopping = a
            .process
            .wait_for_log(
                "stop requested: health is NOT_SERVING; still answering during the drain delay",
                Duration::from_secs(5),
            )
            .await;
        assert!(
            stopping["in_flight"].as_u64() >= Some(1),
            "a had calls in flight when told to stop: {stopping}"
        );
        wait_view(&view, "a out of rotation", |set| !takes_calls(set, "a")).await;

        let results = join_all(slow).await;
        let mut on_a = 0;
        for result in results {
            match result.expect("call task") {
                Ok(served_by) => on_a += usize::from(served_by == "a"),
                Err(status) => panic!("a slow call failed during the drain: {status}"),
            }
        }
        assert_eq!(on_a, 5, "a finished the five calls it had");
        let status = a.process.wait_exit(Duration::from_secs(20)).await;
        assert_eq!(status.code(), Some(0), "a drained cleanly");
        let drained = a
            .process
            .recent_logs(20)
            .into_iter()
            .any(|line| line["message"] == "drained: every in-flight call finished");
        assert!(drained, "{}", a.process.log_text());

        stop.store(true, Ordering::Relaxed);
        let made = steady.await.expect("steady calls");
        assert!(made > 10, "steady calls ran during the drain ({made})");
        assert_eq!(failed.load(Ordering::Relaxed), 0, "no new call failed");
    })
    .await;
}
