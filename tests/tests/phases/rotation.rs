//! Phases 2 and 3: strict round robin through the control plane, and a
//! backend whose health turns NOT_SERVING leaving the rotation and coming
//! back, with no call failing.

use std::collections::BTreeMap;
use std::time::Duration;

use nix::sys::signal::Signal;
use tests::bounded;

use crate::support::{ControlPlane, backend, hello, takes_calls, wait_view};

/// Makes `n` sequential calls and counts them by backend.
async fn spread(channel: &xds_balancer::Channel, n: usize) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        let served_by = hello(channel, 0).await.expect("call succeeds");
        *counts.entry(served_by).or_default() += 1;
    }
    counts
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(b, n)| ((*b).to_owned(), *n)).collect()
}

#[tokio::test]
async fn a_not_serving_backend_leaves_the_rotation_and_rejoins_it() {
    bounded(Duration::from_secs(60), async {
        let a = backend("a", &[]).await;
        let b = backend("b", &[]).await;
        let c = backend("c", &[]).await;
        let control_plane = ControlPlane::start(&[&a, &b, &c]).await;
        let channel = control_plane.client(false).await;
        let view = channel.endpoints();

        assert_eq!(
            spread(&channel, 99).await,
            counts(&[("a", 33), ("b", 33), ("c", 33)]),
            "strict round robin"
        );

        b.process.signal(Signal::SIGUSR1);
        wait_view(&view, "b out of rotation", |set| !takes_calls(set, "b")).await;
        assert_eq!(
            spread(&channel, 100).await,
            counts(&[("a", 50), ("c", 50)]),
            "no call to a NOT_SERVING backend"
        );

        b.process.signal(Signal::SIGUSR1);
        wait_view(&view, "b back in rotation", |set| takes_calls(set, "b")).await;
        assert_eq!(
            spread(&channel, 99).await,
            counts(&[("a", 33), ("b", 33), ("c", 33)]),
            "b takes its share again"
        );
    })
    .await;
}
