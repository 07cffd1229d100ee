//! Fan-out: 1000 concurrent ADS subscribers, spread over 10 HTTP/2
//! connections (100 streams each), all receive an endpoint change.

mod support;

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::HealthStatus;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use futures::future::join_all;
use proto::controlplane::v1::GetInfoRequest;
use proto::controlplane::v1::control_plane_status_client::ControlPlaneStatusClient;
use support::{GREETER_CLUSTER, TestServer, greeter, ready};
use tests::ads::{AdsStream, endpoints};
use tests::{bounded, channel};

const CONNECTIONS: usize = 10;
const STREAMS_PER_CONNECTION: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_subscribers_all_receive_an_endpoint_change() {
    bounded(Duration::from_secs(60), async {
        let server = TestServer::start(vec![greeter(&[ready("10.0.0.1:8080")])]).await;
        let mut channels = Vec::new();
        for _ in 0..CONNECTIONS {
            // One eagerly connected channel is one HTTP/2 connection.
            channels.push(channel(server.addr).await);
        }

        let subscribed = join_all((0..CONNECTIONS * STREAMS_PER_CONNECTION).map(|i| {
            let channel = channels[i % CONNECTIONS].clone();
            async move {
                let mut ads = AdsStream::open(channel, &format!("subscriber-{i}")).await;
                ads.subscribe::<ClusterLoadAssignment>(&[GREETER_CLUSTER])
                    .await;
                let (first, assignments) = ads.recv_typed::<ClusterLoadAssignment>().await;
                assert_eq!(
                    endpoints(&assignments[0]),
                    vec![("10.0.0.1:8080".to_owned(), HealthStatus::Healthy)]
                );
                ads.ack(&first, &[GREETER_CLUSTER]).await;
                ads
            }
        }))
        .await;

        let info = ControlPlaneStatusClient::new(channels[0].clone())
            .get_info(GetInfoRequest {})
            .await
            .expect("GetInfo")
            .into_inner();
        assert_eq!(info.connected_clients, 1000);

        server
            .source()
            .upsert(
                greeter(&[ready("10.0.0.1:8080"), ready("10.0.0.2:8080")]),
                "scale up",
            )
            .unwrap();
        let updated = join_all(subscribed.into_iter().map(|mut ads| async move {
            let (_, assignments) = ads.recv_typed::<ClusterLoadAssignment>().await;
            endpoints(&assignments[0])
        }))
        .await;
        let expected = vec![
            ("10.0.0.1:8080".to_owned(), HealthStatus::Healthy),
            ("10.0.0.2:8080".to_owned(), HealthStatus::Healthy),
        ];
        let got_it = updated.iter().filter(|e| **e == expected).count();
        assert_eq!(got_it, 1000, "every subscriber got the new endpoint");
        assert!(
            server
                .metrics
                .encode()
                .contains("control_plane_update_latency_seconds_count 1000"),
            "one latency observation per update written"
        );
    })
    .await;
}
