//! The ADS protocol over a real loopback connection, spoken by a raw
//! envoy-types client: the resource chain a gRPC client follows, ACK and
//! NACK, subscription changes, unknown names and types, oversized requests.

mod support;

use std::time::Duration;

use control_plane::model::Readiness;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, LbPolicy,
};
use envoy_types::pb::envoy::config::core::v3::HealthStatus;
use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType;
use envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryRequest;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use prost::{Message, Name};
use proto::controlplane::v1::ListClientsRequest;
use proto::controlplane::v1::control_plane_status_client::ControlPlaneStatusClient;
use support::{GREETER_CLUSTER, TestServer, greeter, ready, service};
use tests::ads::{AdsStream, endpoints, type_url};
use tests::{bounded, channel};
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::ServerReflectionRequest;

const LIMIT: Duration = Duration::from_secs(30);
const OTHER_CLUSTER: &str = "other.default.svc.cluster.local:80";

fn unpack<T: Message + Name + Default>(any: &envoy_types::pb::google::protobuf::Any) -> T {
    assert_eq!(any.type_url, T::type_url());
    T::decode(any.value.as_slice()).expect("decodes")
}

#[tokio::test]
async fn listener_greeter_leads_through_the_whole_chain() {
    bounded(LIMIT, async {
        let server = TestServer::start(vec![greeter(&[
            ready("10.0.0.1:8080"),
            ("10.0.0.2:8080", Readiness::Draining),
            ("10.0.0.3:8080", Readiness::NotReady),
        ])])
        .await;
        let mut ads = AdsStream::open(channel(server.addr).await, "chain").await;

        ads.subscribe::<Listener>(&["greeter"]).await;
        let (lds, listeners) = ads.recv_typed::<Listener>().await;
        assert!(
            lds.version_info
                .starts_with(&format!("{}-", server.store.instance_id()))
        );
        assert_eq!(listeners.len(), 1);
        assert_eq!(listeners[0].name, "greeter");
        let manager: HttpConnectionManager = unpack(
            listeners[0]
                .api_listener
                .as_ref()
                .and_then(|a| a.api_listener.as_ref())
                .expect("api_listener"),
        );
        let Some(RouteSpecifier::Rds(rds)) = &manager.route_specifier else {
            panic!("routes not by RDS: {manager:?}");
        };
        assert!(matches!(
            rds.config_source.as_ref().unwrap().config_source_specifier,
            Some(ConfigSourceSpecifier::Ads(_))
        ));
        let router = manager.http_filters.last().expect("filters");
        let Some(ConfigType::TypedConfig(router)) = &router.config_type else {
            panic!("router filter without typed config");
        };
        assert_eq!(router.type_url, Router::type_url());
        ads.ack(&lds, &["greeter"]).await;

        let route_name = rds.route_config_name.clone();
        ads.subscribe::<RouteConfiguration>(&[&route_name]).await;
        let (rds_response, routes) = ads.recv_typed::<RouteConfiguration>().await;
        assert_eq!(routes.len(), 1);
        let host = &routes[0].virtual_hosts[0];
        assert_eq!(host.domains, vec!["*"]);
        let route = &host.routes[0];
        assert_eq!(
            route.r#match.as_ref().unwrap().path_specifier,
            Some(PathSpecifier::Prefix(String::new()))
        );
        let Some(Action::Route(action)) = &route.action else {
            panic!("not a route action");
        };
        let Some(ClusterSpecifier::Cluster(cluster_name)) = &action.cluster_specifier else {
            panic!("no cluster");
        };
        assert_eq!(cluster_name, GREETER_CLUSTER);
        ads.ack(&rds_response, &[&route_name]).await;

        ads.subscribe::<Cluster>(&[cluster_name]).await;
        let (cds, clusters) = ads.recv_typed::<Cluster>().await;
        assert_eq!(clusters.len(), 1);
        let cluster = &clusters[0];
        assert_eq!(
            cluster.cluster_discovery_type,
            Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32))
        );
        assert_eq!(cluster.lb_policy, LbPolicy::RoundRobin as i32);
        let eds_config = cluster.eds_cluster_config.as_ref().expect("eds config");
        assert!(matches!(
            eds_config
                .eds_config
                .as_ref()
                .unwrap()
                .config_source_specifier,
            Some(ConfigSourceSpecifier::Ads(_))
        ));
        ads.ack(&cds, &[cluster_name]).await;

        let eds_name = eds_config.service_name.clone();
        ads.subscribe::<ClusterLoadAssignment>(&[&eds_name]).await;
        let (_, assignments) = ads.recv_typed::<ClusterLoadAssignment>().await;
        assert_eq!(assignments.len(), 1);
        for locality in &assignments[0].endpoints {
            assert!(locality.locality.is_some(), "locality set");
            assert!(locality.load_balancing_weight.as_ref().unwrap().value >= 1);
        }
        assert_eq!(
            endpoints(&assignments[0]),
            vec![
                ("10.0.0.1:8080".to_owned(), HealthStatus::Healthy),
                ("10.0.0.2:8080".to_owned(), HealthStatus::Draining),
                ("10.0.0.3:8080".to_owned(), HealthStatus::Unhealthy),
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn ack_causes_no_resend_and_nack_is_kept_for_the_status_api() {
    bounded(LIMIT, async {
        let server = TestServer::start(vec![greeter(&[ready("10.0.0.1:8080")])]).await;
        let channel = channel(server.addr).await;
        let mut ads = AdsStream::open(channel.clone(), "nack-test").await;

        ads.subscribe::<Listener>(&["greeter"]).await;
        let (lds, _) = ads.recv_typed::<Listener>().await;
        ads.ack(&lds, &["greeter"]).await;
        // Always answered; had the ACK caused a resend, it would come first.
        ads.subscribe::<Cluster>(&["barrier"]).await;
        let (barrier, clusters) = ads.recv_typed::<Cluster>().await;
        assert!(clusters.is_empty());
        ads.ack(&barrier, &["barrier"]).await;

        ads.subscribe::<ClusterLoadAssignment>(&[GREETER_CLUSTER])
            .await;
        let (eds, _) = ads.recv_typed::<ClusterLoadAssignment>().await;
        ads.nack(&eds, &[GREETER_CLUSTER], "duplicate address 10.0.0.1:8080")
            .await;
        ads.subscribe::<RouteConfiguration>(&["barrier"]).await;
        let (_, routes) = ads.recv_typed::<RouteConfiguration>().await;
        assert!(routes.is_empty(), "the NACKed version is not resent");

        let clients = ControlPlaneStatusClient::new(channel.clone())
            .list_clients(ListClientsRequest {})
            .await
            .expect("ListClients")
            .into_inner()
            .clients;
        assert_eq!(clients.len(), 1);
        let client = &clients[0];
        assert_eq!(client.node_id, "nack-test");
        assert_eq!(client.user_agent, "ads-test-client");
        assert!(client.peer.starts_with("127.0.0.1:"), "{}", client.peer);
        let of = |url: String| {
            client
                .types
                .iter()
                .find(|t| t.type_url == url)
                .unwrap_or_else(|| panic!("no state for {url}"))
        };
        let eds_state = of(type_url::<ClusterLoadAssignment>());
        assert_eq!(eds_state.nack_error, "duplicate address 10.0.0.1:8080");
        assert_eq!(eds_state.nack_version, eds.version_info);
        assert_eq!(eds_state.nacks, 1);
        assert!(eds_state.nack_at_unix_ms > 0);
        assert_eq!(eds_state.acked_version, "");
        let lds_state = of(type_url::<Listener>());
        assert_eq!(lds_state.acked_version, lds.version_info);
        assert_eq!(lds_state.names, vec!["greeter"]);
        assert_eq!((lds_state.nacks, lds_state.responses_sent), (0, 1));
        assert!(
            server
                .metrics
                .encode()
                .contains(r#"control_plane_xds_nacks_total{type="EDS"} 1"#)
        );

        // A real change is sent again, with a new version.
        server
            .source()
            .upsert(greeter(&[ready("10.0.0.2:8080")]), "test")
            .unwrap();
        let (update, assignments) = ads.recv_typed::<ClusterLoadAssignment>().await;
        assert_ne!(update.version_info, eds.version_info);
        assert_eq!(
            endpoints(&assignments[0]),
            vec![("10.0.0.2:8080".to_owned(), HealthStatus::Healthy)]
        );
    })
    .await;
}

#[tokio::test]
async fn subscribed_names_can_be_added_and_dropped() {
    bounded(LIMIT, async {
        let server = TestServer::start(vec![
            greeter(&[ready("10.0.0.1:8080")]),
            service("other", &[ready("10.0.1.1:8080")]),
        ])
        .await;
        let mut ads = AdsStream::open(channel(server.addr).await, "names").await;
        let names = |listeners: Vec<Listener>| -> Vec<String> {
            listeners.into_iter().map(|l| l.name).collect()
        };

        ads.subscribe::<Listener>(&["greeter"]).await;
        let (first, listeners) = ads.recv_typed::<Listener>().await;
        assert_eq!(names(listeners), vec!["greeter"]);
        ads.ack(&first, &["greeter", "other.default"]).await;
        let (added, listeners) = ads.recv_typed::<Listener>().await;
        assert_eq!(names(listeners), vec!["greeter", "other.default"]);
        ads.ack(&added, &["other.default"]).await;
        let (dropped, listeners) = ads.recv_typed::<Listener>().await;
        assert_eq!(
            names(listeners),
            vec!["other.default"],
            "full set, greeter gone"
        );
        ads.ack(&dropped, &["other.default"]).await;

        // Assignments: a new name brings just that one; a dropped one's
        // changes are no longer sent.
        ads.subscribe::<ClusterLoadAssignment>(&[GREETER_CLUSTER])
            .await;
        let (eds, _) = ads.recv_typed::<ClusterLoadAssignment>().await;
        ads.ack(&eds, &[GREETER_CLUSTER, OTHER_CLUSTER]).await;
        let (eds, assignments) = ads.recv_typed::<ClusterLoadAssignment>().await;
        let carried: Vec<_> = assignments
            .iter()
            .map(|a| a.cluster_name.as_str())
            .collect();
        assert_eq!(carried, vec![OTHER_CLUSTER]);
        ads.ack(&eds, &[OTHER_CLUSTER]).await;
        let (eds, assignments) = ads.recv_typed::<ClusterLoadAssignment>().await;
        assert!(assignments.is_empty(), "a drop is answered at once");
        ads.ack(&eds, &[OTHER_CLUSTER]).await;

        server
            .source()
            .upsert(greeter(&[ready("10.0.0.9:8080")]), "test")
            .unwrap();
        ads.subscribe::<RouteConfiguration>(&["barrier"]).await;
        let (barrier, _) = ads.recv_typed::<RouteConfiguration>().await;
        assert!(barrier.resources.is_empty(), "nothing for the dropped name");
    })
    .await;
}

#[tokio::test]
async fn an_unknown_listener_is_answered_within_a_second_without_it() {
    bounded(LIMIT, async {
        let server = TestServer::start(vec![greeter(&[ready("10.0.0.1:8080")])]).await;
        let mut ads = AdsStream::open(channel(server.addr).await, "unknown").await;
        ads.subscribe::<Listener>(&["nope"]).await;
        let response = tokio::time::timeout(Duration::from_secs(1), ads.next())
            .await
            .expect("answered within 1 s")
            .expect("stream healthy")
            .expect("a response");
        assert_eq!(response.type_url, type_url::<Listener>());
        assert!(response.resources.is_empty());

        // Once it exists, the subscription delivers it.
        server
            .source()
            .upsert(service("nope", &[ready("10.0.2.1:8080")]), "test")
            .unwrap();
        let (_, listeners) = ads.recv_typed::<Listener>().await;
        assert_eq!(listeners.len(), 1);
        assert_eq!(listeners[0].name, "nope");
    })
    .await;
}

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
