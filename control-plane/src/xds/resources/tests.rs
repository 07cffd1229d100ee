use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, LbPolicy,
};
use envoy_types::pb::envoy::config::core::v3::HealthStatus;
use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType;
use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};

use super::*;
use crate::model::{Endpoint, Readiness, SanMatcher, Service, ServicePort, ServiceTls};

fn decode<T: Message + Name + Default>(any: &Any) -> T {
    assert_eq!(any.type_url, T::type_url());
    T::decode(any.value.as_slice()).expect("decodes")
}

fn endpoint(addr: &str, state: Readiness, zone: Option<&str>) -> Endpoint {
    Endpoint {
        state,
        zone: zone.map(Into::into),
        instance: Some(format!("pod-{addr}")),
        ..Endpoint::ready(addr.parse().unwrap())
    }
}

fn greeter(endpoints: Vec<Endpoint>) -> Service {
    Service {
        name: "greeter".into(),
        namespace: "default".into(),
        ports: vec![ServicePort {
            name: Some("grpc".into()),
            port: 80,
            endpoints,
        }],
        tls: None,
        policy: Default::default(),
    }
}

const CLUSTER: &str = "greeter.default.svc.cluster.local:80";

#[test]
fn listener_routes_by_rds_over_ads_with_the_router_last() {
    let resources = ServiceResources::build(&greeter(vec![]), &Naming::new("default"), 1, None);
    for name in [
        "greeter",
        "greeter:80",
        "greeter:grpc",
        "greeter.default.svc.cluster.local",
    ] {
        let resource = resources.get(ResourceType::Listener, name).expect(name);
        let listener: Listener = decode(&resource.any);
        assert_eq!(listener.name, name);
        let manager: HttpConnectionManager = decode(
            listener
                .api_listener
                .unwrap()
                .api_listener
                .as_ref()
                .unwrap(),
        );
        let Some(RouteSpecifier::Rds(rds)) = manager.route_specifier else {
            panic!("not RDS");
        };
        assert_eq!(rds.route_config_name, CLUSTER);
        assert!(matches!(
            rds.config_source.unwrap().config_source_specifier,
            Some(ConfigSourceSpecifier::Ads(_))
        ));
        let last = manager.http_filters.last().expect("a filter");
        let Some(ConfigType::TypedConfig(router)) = &last.config_type else {
            panic!("router without typed config");
        };
        let _: Router = decode(router);
    }
    assert!(
        resources
            .get(ResourceType::Listener, "greeter:81")
            .is_none()
    );
    assert!(
        resources
            .get(ResourceType::Listener, "greeter.other")
            .is_none()
    );
}

#[test]
fn route_and_cluster_point_at_the_port() {
    let resources = ServiceResources::build(&greeter(vec![]), &Naming::new("default"), 1, None);
    let route: RouteConfiguration = decode(
        &resources
            .get(ResourceType::RouteConfiguration, CLUSTER)
            .unwrap()
            .any,
    );
    let host = &route.virtual_hosts[0];
    assert_eq!(host.domains, vec!["*"]);
    let first = &host.routes[0];
    assert_eq!(
        first.r#match.as_ref().unwrap().path_specifier,
        Some(PathSpecifier::Prefix(String::new()))
    );
    let Some(Action::Route(action)) = &first.action else {
        panic!("not a route action");
    };
    assert_eq!(
        action.cluster_specifier,
        Some(ClusterSpecifier::Cluster(CLUSTER.into()))
    );

    let cluster: Cluster = decode(&resources.get(ResourceType::Cluster, CLUSTER).unwrap().any);
    assert_eq!(
        cluster.cluster_discovery_type,
        Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32))
    );
    assert_eq!(cluster.lb_policy, LbPolicy::RoundRobin as i32);
    let eds = cluster.eds_cluster_config.unwrap();
    assert!(matches!(
        eds.eds_config.unwrap().config_source_specifier,
        Some(ConfigSourceSpecifier::Ads(_))
    ));
    assert_eq!(eds.service_name, CLUSTER);
}

#[test]
fn assignment_follows_the_eds_rules() {
    let mut service = greeter(vec![
        endpoint("10.0.0.1:8080", Readiness::Ready, Some("zone-a")),
        endpoint("10.0.0.2:8080", Readiness::Ready, Some("zone-a")),
        endpoint("10.0.0.3:8080", Readiness::Draining, Some("zone-b")),
        endpoint("10.0.0.4:8080", Readiness::NotReady, None),
        endpoint("10.0.0.1:8080", Readiness::NotReady, Some("zone-a")),
    ]);
    service.normalize();
    let resources = ServiceResources::build(&service, &Naming::new("default"), 7, None);
    let resource = resources
        .get(ResourceType::ClusterLoadAssignment, CLUSTER)
        .unwrap();
    assert_eq!(resource.revision, 7);
    let cla: ClusterLoadAssignment = decode(&resource.any);
    assert_eq!(cla.cluster_name, CLUSTER);

    let mut seen = Vec::new();
    for locality in &cla.endpoints {
        let zone = &locality
            .locality
            .as_ref()
            .expect("locality always set")
            .zone;
        let weight = locality
            .load_balancing_weight
            .as_ref()
            .expect("weight")
            .value;
        assert!(weight >= 1);
        let healthy = locality
            .lb_endpoints
            .iter()
            .filter(|e| e.health_status == HealthStatus::Healthy as i32)
            .count();
        assert_eq!(weight as usize, healthy.max(1), "zone {zone}");
        for lb in &locality.lb_endpoints {
            let Some(HostIdentifier::Endpoint(e)) = &lb.host_identifier else {
                panic!("no endpoint");
            };
            let Some(AddressKind::SocketAddress(socket)) = &e.address.as_ref().unwrap().address
            else {
                panic!("no socket address");
            };
            let Some(PortSpecifier::PortValue(port)) = socket.port_specifier else {
                panic!("no port");
            };
            assert_eq!(e.hostname, format!("pod-{}:{port}", socket.address));
            seen.push((
                zone.clone(),
                format!("{}:{port}", socket.address),
                HealthStatus::try_from(lb.health_status).unwrap(),
            ));
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("".into(), "10.0.0.4:8080".into(), HealthStatus::Unhealthy),
            (
                "zone-a".into(),
                "10.0.0.1:8080".into(),
                HealthStatus::Healthy
            ),
            (
                "zone-a".into(),
                "10.0.0.2:8080".into(),
                HealthStatus::Healthy
            ),
            (
                "zone-b".into(),
                "10.0.0.3:8080".into(),
                HealthStatus::Draining
            ),
        ]
    );
}

#[test]
fn endpoint_change_rebuilds_only_the_assignment() {
    let naming = Naming::new("default");
    let before = greeter(vec![endpoint("10.0.0.1:8080", Readiness::Ready, None)]);
    let old = ServiceResources::build(&before, &naming, 1, None);
    let after = greeter(vec![endpoint("10.0.0.2:8080", Readiness::Ready, None)]);
    let new = ServiceResources::build(&after, &naming, 2, Some((&before, &old)));

    assert!(Arc::ptr_eq(&old.listeners, &new.listeners));
    assert!(Arc::ptr_eq(&old.ports[0].cluster, &new.ports[0].cluster));
    assert!(Arc::ptr_eq(&old.ports[0].route, &new.ports[0].route));
    assert_eq!(new.ports[0].assignment.revision, 2);
    assert_eq!(new.ports[0].cluster.revision, 1);

    // Same endpoints again: nothing rebuilt.
    let same = ServiceResources::build(&after, &naming, 3, Some((&after, &new)));
    assert!(Arc::ptr_eq(
        &same.ports[0].assignment,
        &new.ports[0].assignment
    ));

    // A port change rebuilds everything.
    let mut renamed = after.clone();
    renamed.ports[0].name = Some("h2c".into());
    let rebuilt = ServiceResources::build(&renamed, &naming, 4, Some((&after, &same)));
    assert!(rebuilt.get(ResourceType::Listener, "greeter:h2c").is_some());
    assert!(
        rebuilt
            .get(ResourceType::Listener, "greeter:grpc")
            .is_none()
    );
    assert_eq!(rebuilt.ports[0].cluster.revision, 4);
}

#[test]
fn wildcard_lists_canonical_resources() {
    let resources = ServiceResources::build(&greeter(vec![]), &Naming::new("default"), 1, None);
    for kind in ResourceType::ALL {
        let names: Vec<_> = resources.wildcard(kind).map(|r| r.name.clone()).collect();
        assert_eq!(names, vec![CLUSTER.to_owned()], "{kind:?}");
    }
}

#[test]
#[allow(deprecated)]
fn a_tls_service_gets_an_upstream_tls_context_in_the_form_grpc_honours() {
    use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType as SocketConfig;
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext;
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::ValidationContextType;
    use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;

    let naming = Naming {
        tls_provider_instance: "mesh".into(),
        ..Naming::new("default")
    };
    let plain = ServiceResources::build(&greeter(vec![]), &naming, 1, None);
    let cluster: Cluster = decode(&plain.get(ResourceType::Cluster, CLUSTER).unwrap().any);
    assert!(
        cluster.transport_socket.is_none(),
        "plaintext has no transport socket"
    );

    let mut secure = greeter(vec![]);
    secure.tls = Some(ServiceTls {
        subject_alt_names: vec![
            SanMatcher::Exact("greeter.default.svc.cluster.local".into()),
            SanMatcher::Prefix("spiffe://cluster.local/ns/default/".into()),
        ],
    });
    // Turning TLS on rebuilds the Cluster even though the ports are the same.
    let resources = ServiceResources::build(&secure, &naming, 2, Some((&greeter(vec![]), &plain)));
    let resource = resources.get(ResourceType::Cluster, CLUSTER).unwrap();
    assert_eq!(resource.revision, 2);
    let cluster: Cluster = decode(&resource.any);
    assert!(cluster.transport_socket_matches.is_empty());
    let socket = cluster.transport_socket.expect("a transport socket");
    assert_eq!(socket.name, "envoy.transport_sockets.tls");
    let Some(SocketConfig::TypedConfig(any)) = socket.config_type else {
        panic!("no typed_config");
    };
    let context: UpstreamTlsContext = decode(&any);
    let common = context.common_tls_context.expect("common_tls_context");
    assert_eq!(
        common
            .tls_certificate_provider_instance
            .expect("identity instance (field 14)")
            .instance_name,
        "mesh"
    );
    assert!(common.tls_certificates.is_empty() && common.tls_params.is_none());
    let Some(ValidationContextType::ValidationContext(validation)) = common.validation_context_type
    else {
        panic!("no validation_context (field 3)");
    };
    assert_eq!(
        validation
            .ca_certificate_provider_instance
            .expect("CA instance (field 13)")
            .instance_name,
        "mesh"
    );
    assert!(
        validation.match_typed_subject_alt_names.is_empty(),
        "grpcio ignores typed matchers: never emitted"
    );
    let patterns: Vec<_> = validation
        .match_subject_alt_names
        .iter()
        .map(|m| (m.match_pattern.clone(), m.ignore_case))
        .collect();
    assert_eq!(
        patterns,
        vec![
            (
                Some(MatchPattern::Exact(
                    "greeter.default.svc.cluster.local".into()
                )),
                false
            ),
            (
                Some(MatchPattern::Prefix(
                    "spiffe://cluster.local/ns/default/".into()
                )),
                false
            ),
        ]
    );

    // An empty list: TLS with no SAN matcher (any certificate from the CA).
    let mut any_san = greeter(vec![]);
    any_san.tls = Some(ServiceTls::default());
    let resources = ServiceResources::build(&any_san, &naming, 3, None);
    let cluster: Cluster = decode(&resources.get(ResourceType::Cluster, CLUSTER).unwrap().any);
    let Some(SocketConfig::TypedConfig(any)) = cluster.transport_socket.unwrap().config_type else {
        panic!("no typed_config");
    };
    let context: UpstreamTlsContext = decode(&any);
    let Some(ValidationContextType::ValidationContext(validation)) =
        context.common_tls_context.unwrap().validation_context_type
    else {
        panic!("no validation_context");
    };
    assert!(validation.match_subject_alt_names.is_empty());
    assert!(validation.ca_certificate_provider_instance.is_some());
}
