//! Many names, long names, huge messages: within the limits they are
//! answered; beyond them the one stream ends with a clear status.

use std::time::Duration;

use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use tests::ads::AdsStream;
use tests::{bounded, channel};
use tonic::Code;

use crate::harness::Target;

fn names(count: usize, len: usize) -> Vec<String> {
    (0..count)
        .map(|i| {
            let name = format!("svc-{i}.default.svc.cluster.local:80");
            format!("{name}{}", "x".repeat(len.saturating_sub(name.len())))
        })
        .collect()
}

fn refs(names: &[String]) -> Vec<&str> {
    names.iter().map(String::as_str).collect()
}

#[tokio::test]
async fn ten_thousand_names_are_answered_and_more_end_only_that_stream() {
    bounded(Duration::from_secs(60), async {
        let mut target = Target::start("names").await;
        let many = names(10_000, 0);
        let mut ads = AdsStream::open(channel(target.addr).await, "many").await;
        ads.subscribe::<ClusterLoadAssignment>(&refs(&many)).await;
        let (response, assignments) = ads.recv_typed::<ClusterLoadAssignment>().await;
        assert!(assignments.is_empty(), "none of them exists");
        ads.ack(&response, &refs(&many)).await;
        target.assert_healthy("10 000 names").await;

        let too_many = names(10_001, 0);
        let mut ads = AdsStream::open(channel(target.addr).await, "too-many").await;
        ads.subscribe::<Listener>(&refs(&too_many)).await;
        let status = ads.next().await.expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{status}");
        assert!(status.message().contains("10000"), "{status}");
        target.assert_healthy("10 001 names").await;
    })
    .await;
}

#[tokio::test]
async fn long_names_and_huge_messages_end_only_their_stream() {
    bounded(Duration::from_secs(60), async {
        let mut target = Target::start("long").await;
        // At the limit: answered.
        let longest = names(1, 1024);
        let mut ads = AdsStream::open(channel(target.addr).await, "longest").await;
        ads.subscribe::<Listener>(&refs(&longest)).await;
        let (_, listeners) = ads.recv_typed::<Listener>().await;
        assert!(listeners.is_empty());

        for (what, name) in [
            ("a name of 1025 bytes", names(1, 1025).remove(0)),
            ("a name of 1 MiB", names(1, 1 << 20).remove(0)),
        ] {
            let mut ads = AdsStream::open(channel(target.addr).await, "long").await;
            ads.subscribe::<Listener>(&[&name]).await;
            let status = ads.next().await.expect_err("refused");
            assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status}");
            target.assert_healthy(what).await;
        }

        // A message over the size cap cannot even be decoded.
        let mut ads = AdsStream::open(channel(target.addr).await, "huge").await;
        let huge = names(3, 2 << 20);
        ads.subscribe::<Listener>(&refs(&huge)).await;
        let status = ads.next().await.expect_err("refused");
        assert!(status.message().contains("too large"), "{status}");
        target.assert_healthy("a 6 MiB request").await;
    })
    .await;
}
