//! Traffic policy in the resources: route tables, least request, zone
//! variants.

use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{LbConfig, LbPolicy};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};

use super::*;
use crate::model::{Endpoint, LbPolicy as Lb, Readiness, Service, ServicePort, TrafficPolicy};
use crate::routes::{Backend, CallMatch, HeaderMatch, MethodMatch, RouteEntry, RouteTable};

const CLUSTER: &str = "greeter.default.svc.cluster.local:80";

fn decode<T: Message + Name + Default>(any: &Any) -> T {
    assert_eq!(any.type_url, T::type_url());
    T::decode(any.value.as_slice()).expect("decodes")
}

fn endpoint(addr: &str, zone: &str) -> Endpoint {
    Endpoint {
        zone: Some(zone.to_owned()),
        ..Endpoint::ready(addr.parse().unwrap())
    }
}

fn greeter(endpoints: Vec<Endpoint>, policy: TrafficPolicy) -> Service {
    Service {
        name: "greeter".into(),
        namespace: "default".into(),
        ports: vec![ServicePort {
            name: Some("grpc".into()),
            port: 80,
            endpoints,
        }],
        tls: None,
        policy,
    }
}

fn backend(service: &str, weight: u32) -> Backend {
    Backend {
        service: service.into(),
        port: 80,
        weight,
    }
}

fn entry(origin: &str, method: MethodMatch, backends: Vec<Backend>) -> RouteEntry {
    RouteEntry {
        origin: origin.into(),
        matcher: CallMatch {
            method,
            headers: vec![],
        },
        backends,
    }
}

fn route_config(resources: &ServiceResources) -> RouteConfiguration {
    decode(
        &resources
            .get(ResourceType::RouteConfiguration, CLUSTER)
            .unwrap()
            .any,
    )
}

#[test]
fn a_route_table_becomes_paths_headers_and_weighted_clusters() {
    let header = CallMatch {
        method: MethodMatch::any(),
        headers: vec![
            HeaderMatch {
                name: "x-canary".into(),
                value: "yes".into(),
                regex: false,
            },
            HeaderMatch {
                name: "x-user".into(),
                value: "a.*".into(),
                regex: true,
            },
        ],
    };
    let table = RouteTable {
        entries: vec![
            entry(
                "r/rule-0/match-0",
                MethodMatch::exact(Some("greet.Greeter"), Some("SayHello")),
                vec![backend("greeter-v2", 1)],
            ),
            entry(
                "r/rule-1/match-0",
                MethodMatch::exact(Some("greet.Greeter"), None),
                vec![backend("greeter-v1", 1)],
            ),
            entry(
                "r/rule-2/match-0",
                MethodMatch::exact(None, Some("SayHello")),
                vec![backend("greeter-v1", 1)],
            ),
            entry(
                "r/rule-3/match-0",
                MethodMatch {
                    service: Some("greet\\..*".into()),
                    method: None,
                    regex: true,
                },
                vec![backend("greeter-v1", 1)],
            ),
            RouteEntry {
                origin: "r/rule-4/match-0".into(),
                matcher: header,
                backends: vec![backend("greeter-v2", 1)],
            },
            entry(
                "r/rule-5/match-0",
                MethodMatch::any(),
                vec![backend("greeter-v1", 80), backend("greeter-v2", 20)],
            ),
        ],
    };
    let naming = Naming::new("default");
    let service = greeter(vec![], TrafficPolicy::default());
    let resources = ServiceResources::build_routed(
        &service,
        &[(80, Arc::new(table.clone()))],
        &naming,
        1,
        None,
    );
    let config = route_config(&resources);
    let routes = &config.virtual_hosts[0].routes;
    assert_eq!(routes.len(), 6);
    let path = |i: usize| routes[i].r#match.as_ref().unwrap().path_specifier.clone();
    assert_eq!(
        path(0),
        Some(PathSpecifier::Path("/greet.Greeter/SayHello".into()))
    );
    assert_eq!(
        path(1),
        Some(PathSpecifier::Prefix("/greet.Greeter/".into()))
    );
    match path(2) {
        Some(PathSpecifier::SafeRegex(regex)) => assert_eq!(regex.regex, "/[^/]+/SayHello"),
        other => panic!("method only: {other:?}"),
    }
    match path(3) {
        Some(PathSpecifier::SafeRegex(regex)) => assert_eq!(regex.regex, "/(?:greet\\..*)/[^/]+"),
        other => panic!("service pattern: {other:?}"),
    }
    assert_eq!(path(4), Some(PathSpecifier::Prefix(String::new())));
    let headers = &routes[4].r#match.as_ref().unwrap().headers;
    assert_eq!(headers[0].name, "x-canary");
    let pattern = |i: usize| match &headers[i].header_match_specifier {
        Some(HeaderMatchSpecifier::StringMatch(m)) => m.match_pattern.clone().unwrap(),
        other => panic!("not a string match: {other:?}"),
    };
    assert_eq!(pattern(0), MatchPattern::Exact("yes".into()));
    assert!(matches!(pattern(1), MatchPattern::SafeRegex(r) if r.regex == "a.*"));

    let cluster = |i: usize| match &routes[i].action {
        Some(Action::Route(action)) => action.cluster_specifier.clone().unwrap(),
        other => panic!("not a route action: {other:?}"),
    };
    assert_eq!(
        cluster(0),
        ClusterSpecifier::Cluster("greeter-v2.default.svc.cluster.local:80".into())
    );
    let ClusterSpecifier::WeightedClusters(split) = cluster(5) else {
        panic!("two backends: weighted clusters");
    };
    let weights: Vec<(String, u32)> = split
        .clusters
        .iter()
        .map(|c| (c.name.clone(), c.weight.unwrap().value))
        .collect();
    assert_eq!(
        weights,
        vec![
            ("greeter-v1.default.svc.cluster.local:80".into(), 80),
            ("greeter-v2.default.svc.cluster.local:80".into(), 20),
        ]
    );
    assert_eq!(routes[5].name, "r/rule-5/match-0");
    assert_eq!(resources.routes(), vec![(80, Arc::new(table))]);
}

#[test]
fn a_route_change_rebuilds_only_the_route_configuration() {
    let naming = Naming::new("default");
    let service = greeter(
        vec![endpoint("10.0.0.1:8080", "a")],
        TrafficPolicy::default(),
    );
    let plain = ServiceResources::build(&service, &naming, 1, None);
    let table = Arc::new(RouteTable {
        entries: vec![entry("r", MethodMatch::any(), vec![backend("other", 1)])],
    });
    let routed = ServiceResources::build_routed(
        &service,
        &[(80, table.clone())],
        &naming,
        2,
        Some((&service, &plain)),
    );
    let port = &routed.ports[0];
    assert_eq!(port.route.revision, 2);
    assert!(Arc::ptr_eq(&port.cluster, &plain.ports[0].cluster));
    assert!(Arc::ptr_eq(&port.assignment, &plain.ports[0].assignment));
    assert!(Arc::ptr_eq(&routed.listeners, &plain.listeners));

    let same = ServiceResources::build_routed(
        &service,
        &[(80, table)],
        &naming,
        3,
        Some((&service, &routed)),
    );
    assert!(
        Arc::ptr_eq(&same.ports[0].route, &port.route),
        "same table kept"
    );
    let back = ServiceResources::build(&service, &naming, 4, Some((&service, &same)));
    assert_eq!(back.ports[0].route.revision, 4);
    assert_eq!(
        route_config(&back),
        route_config(&plain),
        "default route again"
    );
}

#[test]
fn least_request_asks_for_two_choices() {
    let naming = Naming::new("default");
    let policy = TrafficPolicy {
        lb: Lb::LeastRequest,
        prefer_close: false,
    };
    let resources = ServiceResources::build(&greeter(vec![], policy), &naming, 1, None);
    let cluster: Cluster = decode(&resources.get(ResourceType::Cluster, CLUSTER).unwrap().any);
    assert_eq!(cluster.lb_policy, LbPolicy::LeastRequest as i32);
    let Some(LbConfig::LeastRequestLbConfig(config)) = cluster.lb_config else {
        panic!("no least_request_lb_config");
    };
    assert_eq!(config.choice_count.unwrap().value, 2);
    let names: Vec<String> = cluster
        .load_balancing_policy
        .expect("a policy list for A52 clients")
        .policies
        .iter()
        .map(|p| {
            let config = p.typed_extension_config.as_ref().unwrap();
            config.typed_config.as_ref().unwrap().type_url.clone()
        })
        .collect();
    assert_eq!(
        names,
        vec![
            "type.googleapis.com/envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest",
            "type.googleapis.com/envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin",
        ]
    );

    let default =
        ServiceResources::build(&greeter(vec![], TrafficPolicy::default()), &naming, 1, None);
    let cluster: Cluster = decode(&default.get(ResourceType::Cluster, CLUSTER).unwrap().any);
    assert_eq!(cluster.lb_policy, LbPolicy::RoundRobin as i32);
    assert!(cluster.lb_config.is_none());
    assert!(cluster.load_balancing_policy.is_none());
}

/// (zone, priority, addresses) of every locality.
fn localities(resource: &Resource) -> Vec<(String, u32, Vec<String>)> {
    let assignment: ClusterLoadAssignment = decode(&resource.any);
    assignment
        .endpoints
        .iter()
        .map(|l| {
            let addresses = l
                .lb_endpoints
                .iter()
                .map(|e| match &e.host_identifier {
                    Some(envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier::Endpoint(ep)) => {
                        match ep.address.as_ref().unwrap().address.as_ref().unwrap() {
                            envoy_types::pb::envoy::config::core::v3::address::Address::SocketAddress(s) => s.address.clone(),
                            other => panic!("{other:?}"),
                        }
                    }
                    other => panic!("{other:?}"),
                })
                .collect();
            (l.locality.as_ref().unwrap().zone.clone(), l.priority, addresses)
        })
        .collect()
}

#[test]
fn prefer_close_gives_each_zone_its_own_endpoints_first() {
    let naming = Naming::new("default");
    let endpoints = vec![
        endpoint("10.0.0.1:8080", "zone-a"),
        endpoint("10.0.0.2:8080", "zone-a"),
        endpoint("10.0.0.3:8080", "zone-b"),
        Endpoint {
            state: Readiness::NotReady,
            ..endpoint("10.0.0.4:8080", "zone-b")
        },
    ];
    let policy = TrafficPolicy {
        lb: Lb::RoundRobin,
        prefer_close: true,
    };
    let resources = ServiceResources::build(&greeter(endpoints.clone(), policy), &naming, 5, None);
    let eds = ResourceType::ClusterLoadAssignment;
    let a = resources.get_in_zone(eds, CLUSTER, "zone-a").unwrap();
    assert_eq!(
        localities(a),
        vec![
            (
                "zone-a".into(),
                0,
                vec!["10.0.0.1".into(), "10.0.0.2".into()]
            ),
            (
                "zone-b".into(),
                1,
                vec!["10.0.0.3".into(), "10.0.0.4".into()]
            ),
        ]
    );
    assert_eq!(a.revision, 5);
    let b = resources.get_in_zone(eds, CLUSTER, "zone-b").unwrap();
    assert_eq!(
        localities(b)[0],
        (
            "zone-b".into(),
            0,
            vec!["10.0.0.3".into(), "10.0.0.4".into()]
        )
    );
    // A client in no zone, or in a zone without endpoints, gets the
    // default: one priority.
    let default = resources.get(eds, CLUSTER).unwrap();
    for zone in ["", "zone-c"] {
        assert!(Arc::ptr_eq(
            resources.get_in_zone(eds, CLUSTER, zone).unwrap(),
            default
        ));
    }
    assert!(
        localities(default)
            .iter()
            .all(|(_, priority, _)| *priority == 0)
    );
    // Encoded once per zone, shared by every client there.
    assert!(Arc::ptr_eq(
        resources.get_in_zone(eds, CLUSTER, "zone-a").unwrap(),
        a
    ));

    // Without PreferClose (and without hints): no variants at all.
    let plain = ServiceResources::build(
        &greeter(endpoints, TrafficPolicy::default()),
        &naming,
        5,
        None,
    );
    assert!(plain.ports[0].zoned.is_none());
    assert!(Arc::ptr_eq(
        plain.get_in_zone(eds, CLUSTER, "zone-a").unwrap(),
        plain.get(eds, CLUSTER).unwrap()
    ));
}

#[test]
fn zone_hints_decide_which_zone_an_endpoint_serves() {
    let naming = Naming::new("default");
    let endpoints = vec![
        endpoint("10.0.0.1:8080", "zone-a"),
        // In zone-a, but the hints give it to zone-b's clients.
        Endpoint {
            for_zones: vec!["zone-b".into()],
            ..endpoint("10.0.0.2:8080", "zone-a")
        },
        endpoint("10.0.0.3:8080", "zone-b"),
    ];
    let service = greeter(endpoints, TrafficPolicy::default());
    assert!(service.is_zone_aware(), "hints alone make it zone-aware");
    let resources = ServiceResources::build(&service, &naming, 1, None);
    let b = resources
        .get_in_zone(ResourceType::ClusterLoadAssignment, CLUSTER, "zone-b")
        .unwrap();
    assert_eq!(
        localities(b),
        vec![
            ("zone-a".into(), 0, vec!["10.0.0.2".into()]),
            ("zone-b".into(), 0, vec!["10.0.0.3".into()]),
            ("zone-a".into(), 1, vec!["10.0.0.1".into()]),
        ]
    );
}
