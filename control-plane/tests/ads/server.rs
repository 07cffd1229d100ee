//! The server around the ADS service: grpc.health.v1 answers NOT_SERVING
//! until the source's first sync, reflection lists exactly the served
//! APIs, and stopping ends open streams with UNAVAILABLE.

use std::time::Duration;

use envoy_types::pb::envoy::config::listener::v3::Listener;
use tests::ads::AdsStream;
use tests::{bounded, channel};
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

use crate::LIMIT;
use crate::support::{TestServer, greeter, ready};

#[tokio::test]
async fn stopping_ends_streams_with_unavailable() {
    bounded(LIMIT, async {
        let server = TestServer::start(vec![greeter(&[ready("10.0.0.1:8080")])]).await;
        let mut ads = AdsStream::open(channel(server.addr).await, "stopping").await;
        ads.subscribe::<Listener>(&["greeter"]).await;
        ads.recv_typed::<Listener>().await;
        let outcome = tokio::spawn(server.stop());
        let status = ads.next().await.expect_err("ended with a status");
        assert_eq!(status.code(), Code::Unavailable);
        assert!(status.message().contains("shutting down"), "{status}");
        assert_eq!(
            outcome.await.unwrap(),
            control_plane::server::Outcome::Clean
        );
    })
    .await;
}

#[tokio::test]
async fn health_waits_for_the_first_sync_and_reflection_lists_the_apis() {
    bounded(LIMIT, async {
        let server = TestServer::start_unsynced(Default::default()).await;
        let channel = channel(server.addr).await;
        let mut watch = HealthClient::new(channel.clone())
            .watch(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .expect("Watch")
            .into_inner();
        let mut next = async || {
            let message = tokio::time::timeout(Duration::from_secs(10), watch.message())
                .await
                .expect("a status in time")
                .expect("watch healthy")
                .expect("watch open");
            ServingStatus::try_from(message.status).unwrap()
        };
        assert_eq!(next().await, ServingStatus::NotServing, "not synced yet");
        server
            .source()
            .replace_all(vec![greeter(&[ready("10.0.0.1:8080")])], "first sync");
        server
            .source()
            .set_state(control_plane::source::SourceState::Connected, None);
        assert_eq!(next().await, ServingStatus::Serving);

        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut responses = ServerReflectionClient::new(channel)
            .server_reflection_info(tokio_stream::iter(vec![request]))
            .await
            .expect("reflection")
            .into_inner();
        let Some(MessageResponse::ListServicesResponse(list)) = responses
            .message()
            .await
            .expect("reflection answer")
            .and_then(|r| r.message_response)
        else {
            panic!("no service list");
        };
        let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
        for expected in [
            "controlplane.v1.ControlPlaneStatus",
            "grpc.health.v1.Health",
            "envoy.service.discovery.v3.AggregatedDiscoveryService",
        ] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} not in {names:?}"
            );
        }
        assert!(
            !names.iter().any(|n| n == "greet.Greeter"),
            "only what is served: {names:?}"
        );
    })
    .await;
}
