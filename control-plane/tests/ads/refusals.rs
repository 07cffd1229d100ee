//! Requests the control plane refuses: an unknown type URL (ignored, the
//! stream goes on), too many or too long names and oversized messages (the
//! stream ends with a status saying why), and delta xDS (unimplemented).
//! Other streams and the server stay healthy.

use envoy_types::pb::envoy::config::core::v3::HealthStatus;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryRequest;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use tests::ads::{AdsStream, endpoints};
use tests::{bounded, channel};
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::LIMIT;
use crate::support::{GREETER_CLUSTER, TestServer, greeter, ready};

#[tokio::test]
async fn unknown_types_and_oversize_requests_leave_the_server_healthy() {
    bounded(LIMIT, async {
        let server = TestServer::start(vec![greeter(&[ready("10.0.0.1:8080")])]).await;
        let channel = channel(server.addr).await;
        let mut bystander = AdsStream::open(channel.clone(), "bystander").await;
        bystander
            .subscribe::<ClusterLoadAssignment>(&[GREETER_CLUSTER])
            .await;
        let (eds, _) = bystander.recv_typed::<ClusterLoadAssignment>().await;
        bystander.ack(&eds, &[GREETER_CLUSTER]).await;

        // An unknown type URL gets nothing; the same stream keeps working.
        let mut odd = AdsStream::open(channel.clone(), "odd").await;
        odd.request(
            "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
            &["cert"],
            "",
            "",
        )
        .await;
        odd.subscribe::<Listener>(&["greeter"]).await;
        let (_, listeners) = odd.recv_typed::<Listener>().await;
        assert_eq!(
            listeners.len(),
            1,
            "the next response answers the Listener request"
        );

        // Too many names: this stream ends with a clear error.
        let mut greedy = AdsStream::open(channel.clone(), "greedy").await;
        let many: Vec<String> = (0..10_001).map(|i| format!("svc-{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        greedy.subscribe::<Listener>(&many).await;
        let status = greedy.next().await.expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("at most 10000"), "{status}");

        // A name over the length cap, likewise.
        let mut long = AdsStream::open(channel.clone(), "long").await;
        long.subscribe::<Listener>(&[&"x".repeat(2000)]).await;
        let status = long.next().await.expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument);

        // A message over the size cap fails to decode: the stream ends with
        // an error saying so.
        let mut huge = AdsStream::open(channel.clone(), "huge").await;
        huge.subscribe::<Listener>(&[&"x".repeat(5 * 1024 * 1024)])
            .await;
        let status = huge.next().await.expect_err("refused");
        assert!(status.message().contains("too large"), "{status}");

        // The server is healthy, serves new streams, and still updates the
        // stream that was there all along.
        let health = HealthClient::new(channel.clone())
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .expect("health check")
            .into_inner();
        assert_eq!(health.status, ServingStatus::Serving as i32);
        let mut fresh = AdsStream::open(channel.clone(), "fresh").await;
        fresh.subscribe::<Listener>(&["greeter"]).await;
        fresh.recv_typed::<Listener>().await;
        server
            .source()
            .upsert(greeter(&[ready("10.0.0.7:8080")]), "test")
            .unwrap();
        let (_, assignments) = bystander.recv_typed::<ClusterLoadAssignment>().await;
        assert_eq!(
            endpoints(&assignments[0]),
            vec![("10.0.0.7:8080".to_owned(), HealthStatus::Healthy)]
        );
    })
    .await;
}

#[tokio::test]
async fn delta_xds_is_refused_as_unimplemented() {
    bounded(LIMIT, async {
        let server = TestServer::start(vec![]).await;
        let mut client = AggregatedDiscoveryServiceClient::new(channel(server.addr).await);
        let requests = tokio_stream::iter(vec![DeltaDiscoveryRequest::default()]);
        let status = client
            .delta_aggregated_resources(requests)
            .await
            .expect_err("delta is not served");
        assert_eq!(status.code(), Code::Unimplemented);
        assert!(status.message().contains("state-of-the-world"), "{status}");
    })
    .await;
}
