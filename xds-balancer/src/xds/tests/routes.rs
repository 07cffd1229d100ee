//! Route tables (gRPC A28) and cluster policies (A48) as decoded, and the
//! subscriptions a route table with several clusters makes.

use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    LbConfig, LbPolicy, LeastRequestLbConfig,
};
use envoy_types::pb::envoy::config::cluster::v3::{LoadBalancingPolicy, load_balancing_policy};
use envoy_types::pb::envoy::config::core::v3::{RuntimeFractionalPercent, TypedExtensionConfig};
use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::weighted_cluster::ClusterWeight;
use envoy_types::pb::envoy::config::route::v3::{
    HeaderMatcher, QueryParameterMatcher, RedirectAction, Route, RouteAction, RouteConfiguration,
    RouteMatch, WeightedCluster,
};
use envoy_types::pb::envoy::extensions::load_balancing_policies::least_request::v3::LeastRequest;
use envoy_types::pb::envoy::extensions::load_balancing_policies::round_robin::v3::RoundRobin;
use envoy_types::pb::envoy::extensions::load_balancing_policies::wrr_locality::v3::WrrLocality;
use envoy_types::pb::envoy::r#type::matcher::v3::RegexMatcher;
use envoy_types::pb::envoy::r#type::v3::FractionalPercent;
use envoy_types::pb::google::protobuf::{Any, BoolValue, UInt32Value};
use http::HeaderMap;
use rand::SeedableRng;
use rand::rngs::StdRng;
use tests::fake_xds::{self, any};

use super::state::{response, state};
use crate::model::{PickPolicy, Resolution, TargetResolution};
use crate::routing::{NoCluster, PathMatcher, RouteAction as OwnAction, Routes};
use crate::xds::decode::{self, ClusterInfo, DecodeError, Decoded, Kind};

fn to(cluster: &str) -> Option<Action> {
    Some(Action::Route(RouteAction {
        cluster_specifier: Some(ClusterSpecifier::Cluster(cluster.into())),
        ..Default::default()
    }))
}

fn split(weights: &[(&str, u32)]) -> Option<Action> {
    Some(Action::Route(RouteAction {
        cluster_specifier: Some(ClusterSpecifier::WeightedClusters(WeightedCluster {
            clusters: weights
                .iter()
                .map(|(name, weight)| ClusterWeight {
                    name: (*name).into(),
                    weight: Some(UInt32Value { value: *weight }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })),
        ..Default::default()
    }))
}

fn matching(path: PathSpecifier) -> Option<RouteMatch> {
    Some(RouteMatch {
        path_specifier: Some(path),
        ..Default::default()
    })
}

fn prefix(p: &str) -> Option<RouteMatch> {
    matching(PathSpecifier::Prefix(p.into()))
}

/// A RouteConfiguration `r` with one virtual host (`*`) of these routes.
pub(super) fn config(routes: Vec<Route>) -> RouteConfiguration {
    let mut config = fake_xds::route_configuration("r", "unused");
    config.virtual_hosts[0].routes = routes;
    config
}

fn decoded(routes: Vec<Route>) -> Result<std::sync::Arc<Routes>, String> {
    match decode::decode(Kind::Route, &any(config(routes))) {
        Ok((_, Decoded::Route(table))) => Ok(table.routes_for("greeter").expect("vhost").clone()),
        Err(DecodeError::Invalid { reason, .. }) => Err(reason),
        other => panic!("{other:?}"),
    }
}

fn route(r#match: Option<RouteMatch>, action: Option<Action>) -> Route {
    Route {
        r#match,
        action,
        ..Default::default()
    }
}

#[test]
fn method_routes_and_weighted_clusters_are_read_as_a28_says() {
    let routes = decoded(vec![
        route(
            matching(PathSpecifier::Path("/greet.Greeter/SayHello".into())),
            to("v2"),
        ),
        route(prefix(""), split(&[("v1", 80), ("v2", 20), ("never", 0)])),
    ])
    .expect("valid");
    assert_eq!(
        routes.clusters,
        ["v2", "v1"],
        "in order of first naming, weight 0 left out"
    );
    assert_eq!(routes.single(), None);
    let none = HeaderMap::new();
    let mut rng = StdRng::seed_from_u64(3);
    assert_eq!(
        routes.choose("/greet.Greeter/SayHello", &none, &mut rng),
        Ok(0)
    );
    let v1 = (0..1000)
        .filter(|_| routes.choose("/grpc.health.v1.Health/Check", &none, &mut rng) == Ok(1))
        .count();
    assert!((740..860).contains(&v1), "{v1} of 1000 to v1");

    // Today's control plane: one catch-all route, one cluster.
    let plain = decoded(vec![route(prefix(""), to("greeter"))]).expect("valid");
    assert_eq!(plain.single(), Some(0));
}

#[test]
fn what_a28_skips_is_skipped_and_what_it_refuses_is_nacked() {
    let mut with_query = route(prefix(""), to("q"));
    if let Some(m) = with_query.r#match.as_mut() {
        m.query_parameters = vec![QueryParameterMatcher::default()];
    }
    let by_header_name = route(
        prefix(""),
        Some(Action::Route(RouteAction {
            cluster_specifier: Some(ClusterSpecifier::ClusterHeader("x-cluster".into())),
            ..Default::default()
        })),
    );
    let connect = route(
        matching(PathSpecifier::PathSeparatedPrefix("/a".into())),
        to("p"),
    );
    let routes = decoded(vec![
        with_query,
        by_header_name,
        connect,
        route(prefix(""), to("kept")),
    ])
    .expect("valid");
    assert_eq!(routes.clusters, ["kept"]);
    assert_eq!(routes.routes().len(), 1);

    let refused = |routes: Vec<Route>| decoded(routes).expect_err("refused");
    assert!(refused(vec![route(None, to("c"))]).contains("has no match"));
    assert!(
        refused(vec![route(Some(RouteMatch::default()), to("c"))]).contains("no path specifier")
    );
    let bad_regex = matching(PathSpecifier::SafeRegex(RegexMatcher {
        regex: "(".into(),
        ..Default::default()
    }));
    assert!(refused(vec![route(bad_regex, to("c"))]).contains("regular expression"));
    assert!(refused(vec![route(prefix(""), split(&[("a", 0)]))]).contains("weight 0"));
    assert!(refused(vec![route(prefix(""), split(&[("a", u32::MAX), ("b", 1)]))]).contains("2^32"));
    assert!(refused(vec![route(prefix(""), None)]).contains("has no action"));
    assert!(refused(vec![route(prefix(""), to(""))]).contains("empty cluster"));
    let mut empty_header = route(prefix(""), to("c"));
    if let Some(m) = empty_header.r#match.as_mut() {
        m.headers = vec![HeaderMatcher {
            name: "x".into(),
            ..Default::default()
        }];
    }
    let reason = refused(vec![empty_header]);
    assert!(
        reason.contains("header matcher \"x\" has no condition"),
        "{reason}"
    );
    let plugin = route(
        prefix(""),
        Some(Action::Route(RouteAction {
            cluster_specifier: Some(ClusterSpecifier::ClusterSpecifierPlugin("rls".into())),
            ..Default::default()
        })),
    );
    assert!(refused(vec![plugin]).contains("plugins are not supported"));
}

#[test]
fn matchers_keep_case_headers_and_fractions() {
    let mut m = prefix("/GREET.").expect("match");
    m.case_sensitive = Some(BoolValue { value: false });
    #[allow(deprecated)]
    let header = HeaderMatcher {
        name: "X-Canary".into(),
        header_match_specifier: Some(HeaderMatchSpecifier::ExactMatch("yes".into())),
        ..Default::default()
    };
    m.headers = vec![header];
    m.runtime_fraction = Some(RuntimeFractionalPercent {
        default_value: Some(FractionalPercent {
            numerator: 25,
            denominator: 0, // HUNDRED
        }),
        runtime_key: "ignored".into(),
    });
    let routes = decoded(vec![route(Some(m), to("canary"))]).expect("valid");
    let only = &routes.routes()[0];
    assert!(only.matcher.ignore_case);
    assert_eq!(only.matcher.path, PathMatcher::Prefix("/GREET.".into()));
    assert_eq!(
        only.matcher.headers[0].name, "x-canary",
        "names are lower-cased"
    );
    assert_eq!(only.matcher.per_million, Some(250_000));
}

#[test]
fn a_route_that_does_not_forward_fails_the_calls_it_matches() {
    let routes = decoded(vec![
        Route {
            name: "moved".into(),
            ..route(
                prefix("/old."),
                Some(Action::Redirect(RedirectAction::default())),
            )
        },
        route(prefix(""), to("c")),
    ])
    .expect("kept, as gRPC keeps it");
    assert!(matches!(
        routes.routes()[0].action,
        OwnAction::Unsupported(_)
    ));
    let none = HeaderMap::new();
    let mut rng = StdRng::seed_from_u64(1);
    assert!(matches!(
        routes.choose("/old.Service/M", &none, &mut rng),
        Err(NoCluster::Unsupported(name, why)) if name == "moved" && why.contains("redirect")
    ));
    assert_eq!(routes.choose("/new.Service/M", &none, &mut rng), Ok(0));
}

fn policy_of(
    cluster: envoy_types::pb::envoy::config::cluster::v3::Cluster,
) -> Result<PickPolicy, String> {
    match decode::decode(Kind::Cluster, &any(cluster)) {
        Ok((_, Decoded::Cluster(ClusterInfo { policy, .. }))) => Ok(policy),
        Err(DecodeError::Invalid { reason, .. }) => Err(reason),
        other => panic!("{other:?}"),
    }
}

fn typed(any: Any) -> load_balancing_policy::Policy {
    load_balancing_policy::Policy {
        typed_extension_config: Some(TypedExtensionConfig {
            name: "policy".into(),
            typed_config: Some(any),
        }),
    }
}

fn least_request(choice_count: Option<u32>) -> load_balancing_policy::Policy {
    typed(any(LeastRequest {
        choice_count: choice_count.map(|value| UInt32Value { value }),
        ..Default::default()
    }))
}

#[test]
fn least_request_clusters_are_read_as_a48_says() {
    let legacy = |count: Option<u32>| {
        let mut cluster = fake_xds::cluster("c");
        cluster.lb_policy = LbPolicy::LeastRequest as i32;
        cluster.lb_config = count.map(|value| {
            LbConfig::LeastRequestLbConfig(LeastRequestLbConfig {
                choice_count: Some(UInt32Value { value }),
                ..Default::default()
            })
        });
        policy_of(cluster)
    };
    assert_eq!(
        legacy(None),
        Ok(PickPolicy::LeastRequest { choice_count: 2 })
    );
    assert_eq!(
        legacy(Some(3)),
        Ok(PickPolicy::LeastRequest { choice_count: 3 })
    );
    assert_eq!(
        legacy(Some(50)),
        Ok(PickPolicy::LeastRequest { choice_count: 10 }),
        "capped"
    );
    assert!(legacy(Some(1)).expect_err("refused").contains("at least 2"));

    let listed = |policies: Vec<load_balancing_policy::Policy>| {
        let mut cluster = fake_xds::cluster("c");
        cluster.load_balancing_policy = Some(LoadBalancingPolicy { policies });
        policy_of(cluster)
    };
    assert_eq!(
        listed(vec![least_request(Some(4))]),
        Ok(PickPolicy::LeastRequest { choice_count: 4 })
    );
    // Unknown policies are skipped; the first known one counts.
    let unknown = typed(Any {
        type_url: "type.googleapis.com/example.Unknown".into(),
        value: Vec::new(),
    });
    assert_eq!(
        listed(vec![
            unknown.clone(),
            typed(any(RoundRobin::default())),
            least_request(None)
        ]),
        Ok(PickPolicy::RoundRobin)
    );
    // What gRPC makes of lb_policy: the picking policy inside wrr_locality.
    let wrapped = typed(any(WrrLocality {
        endpoint_picking_policy: Some(LoadBalancingPolicy {
            policies: vec![least_request(None)],
        }),
    }));
    assert_eq!(
        listed(vec![wrapped]),
        Ok(PickPolicy::LeastRequest { choice_count: 2 })
    );
    assert!(
        listed(vec![unknown])
            .expect_err("refused")
            .contains("no policy")
    );
}

#[test]
fn every_cluster_the_routes_name_is_subscribed_and_dropped_when_unnamed() {
    let mut s = state("greeter");
    s.on_stream_start();
    s.on_response(response(
        xds_type_urls::LISTENER,
        "1",
        "n1",
        vec![any(fake_xds::listener("greeter", "r"))],
    ));
    let outcome = s.on_response(response(
        xds_type_urls::ROUTE_CONFIGURATION,
        "1",
        "n2",
        vec![any(config(vec![
            route(
                matching(PathSpecifier::Path("/greet.Greeter/SayHello".into())),
                to("v2"),
            ),
            route(prefix(""), split(&[("v1", 90), ("v2", 10)])),
        ]))],
    ));
    let clusters = outcome
        .requests
        .iter()
        .find(|r| r.type_url == xds_type_urls::CLUSTER)
        .expect("a cluster request");
    assert_eq!(clusters.resource_names, ["v1", "v2"]);
    let outcome = s.on_response(response(
        xds_type_urls::CLUSTER,
        "1",
        "n3",
        vec![any(fake_xds::cluster("v1")), any(fake_xds::cluster("v2"))],
    ));
    let endpoints = outcome
        .requests
        .iter()
        .find(|r| r.type_url == xds_type_urls::CLUSTER_LOAD_ASSIGNMENT)
        .expect("an endpoints request");
    assert_eq!(endpoints.resource_names, ["v1", "v2"]);
    s.on_response(response(
        xds_type_urls::CLUSTER_LOAD_ASSIGNMENT,
        "1",
        "n4",
        vec![any(fake_xds::load_assignment(
            "v1",
            &[(super::addr(1), fake_xds::Health::Healthy, "a")],
        ))],
    ));
    match s.resolution("greeter") {
        TargetResolution::Routed { routes, clusters } => {
            assert_eq!(routes.clusters, ["v2", "v1"]);
            assert_eq!(
                clusters[0],
                Resolution::Waiting("endpoints of cluster \"v2\"".into())
            );
            assert!(
                matches!(&clusters[1], Resolution::Endpoints { cluster, .. } if cluster == "v1")
            );
        }
        other => panic!("{other:?}"),
    }

    // The canary is over: v2 is no longer named, so it is dropped.
    let outcome = s.on_response(response(
        xds_type_urls::ROUTE_CONFIGURATION,
        "2",
        "n5",
        vec![any(config(vec![route(prefix(""), to("v1"))]))],
    ));
    let names = |type_url: &str| {
        outcome
            .requests
            .iter()
            .find(|r| r.type_url == type_url)
            .map(|r| r.resource_names.clone())
    };
    assert_eq!(names(xds_type_urls::CLUSTER), Some(vec!["v1".to_owned()]));
    assert_eq!(
        names(xds_type_urls::CLUSTER_LOAD_ASSIGNMENT),
        Some(vec!["v1".to_owned()])
    );
}
