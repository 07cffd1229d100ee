//! The resource chain a gRPC client follows from `xds:///greeter`: the
//! Listener names its RouteConfiguration (by ADS), the route its Cluster,
//! the Cluster its assignment, whose endpoints carry their health.

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
use prost::{Message, Name};
use tests::ads::{AdsStream, endpoints};
use tests::{bounded, channel};

use crate::LIMIT;
use crate::support::{GREETER_CLUSTER, TestServer, greeter, ready};

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
