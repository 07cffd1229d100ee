//! The ADS session: subscriptions down the chain and their ACKs,
//! reconnects, targets sharing one session; and the helpers the other
//! session tests start from.

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::Any;
use tests::fake_xds::{self, Health, any};

use super::addr;
use crate::model::{EndpointHealth, Resolution};
use crate::target::Target;
use crate::xds::decode::Kind;
use crate::xds::state::AdsState;

/// A session for one target, as a channel makes it.
pub(super) fn state(target: &str) -> AdsState {
    let mut state = AdsState::new(Node {
        id: "test-node".into(),
        ..Default::default()
    });
    state.add_target(Target::parse(target).expect("target").name());
    state
}

pub(super) fn response(
    type_url: &str,
    version: &str,
    nonce: &str,
    resources: Vec<Any>,
) -> DiscoveryResponse {
    DiscoveryResponse {
        version_info: version.into(),
        resources,
        type_url: type_url.into(),
        nonce: nonce.into(),
        ..Default::default()
    }
}

pub(super) fn names(request: &DiscoveryRequest) -> Vec<&str> {
    request.resource_names.iter().map(String::as_str).collect()
}

/// Drives `greeter` through the whole chain; returns the state.
pub(super) fn resolved(endpoints: &[fake_xds::EndpointSpec<'_>]) -> AdsState {
    let mut s = state("xds:///greeter");
    s.on_stream_start();
    s.on_response(response(
        xds_type_urls::LISTENER,
        "1",
        "n1",
        vec![any(fake_xds::listener("greeter", "greeter-routes"))],
    ));
    s.on_response(response(
        xds_type_urls::ROUTE_CONFIGURATION,
        "1",
        "n2",
        vec![any(fake_xds::route_configuration(
            "greeter-routes",
            "greeter-cluster",
        ))],
    ));
    s.on_response(response(
        xds_type_urls::CLUSTER,
        "1",
        "n3",
        vec![any(fake_xds::cluster("greeter-cluster"))],
    ));
    let outcome = s.on_response(response(
        xds_type_urls::CLUSTER_LOAD_ASSIGNMENT,
        "1",
        "n4",
        vec![any(fake_xds::load_assignment("greeter-cluster", endpoints))],
    ));
    assert!(outcome.nack.is_none(), "{:?}", outcome.nack);
    s
}

#[test]
fn type_urls_match_the_envoy_types() {
    use prost::Name;
    assert_eq!(
        Kind::Listener.type_url(),
        envoy_types::pb::envoy::config::listener::v3::Listener::type_url()
    );
    assert_eq!(Kind::Route.type_url(), RouteConfiguration::type_url());
    assert_eq!(
        Kind::Cluster.type_url(),
        envoy_types::pb::envoy::config::cluster::v3::Cluster::type_url()
    );
    assert_eq!(
        Kind::Endpoints.type_url(),
        envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment::type_url()
    );
}

#[test]
fn follows_the_chain_acking_each_step() {
    let mut s = state("xds:///greeter");
    let start = s.on_stream_start();
    assert_eq!(start.len(), 1);
    assert_eq!(start[0].type_url, xds_type_urls::LISTENER);
    assert_eq!(names(&start[0]), ["greeter"]);
    assert_eq!(
        start[0].node.as_ref().map(|n| n.id.as_str()),
        Some("test-node")
    );
    assert_eq!(
        s.resolution("greeter").flat(),
        Resolution::Waiting("listener \"greeter\"".into())
    );

    let outcome = s.on_response(response(
        xds_type_urls::LISTENER,
        "v1",
        "n1",
        vec![any(fake_xds::listener("greeter", "routes"))],
    ));
    assert!(outcome.nack.is_none());
    let [ack, next] = outcome.requests.as_slice() else {
        panic!(
            "expected an ACK and a subscription: {:#?}",
            outcome.requests
        );
    };
    assert_eq!(
        (
            ack.type_url.as_str(),
            ack.version_info.as_str(),
            ack.response_nonce.as_str()
        ),
        (xds_type_urls::LISTENER, "v1", "n1")
    );
    assert!(ack.error_detail.is_none());
    assert!(
        ack.node.is_none(),
        "the node goes in the first request only"
    );
    assert_eq!(
        (next.type_url.as_str(), names(next)),
        (xds_type_urls::ROUTE_CONFIGURATION, vec!["routes"])
    );
    assert_eq!(next.version_info, "");
    assert_eq!(
        s.resolution("greeter").flat(),
        Resolution::Waiting("route configuration \"routes\"".into())
    );

    let outcome = s.on_response(response(
        xds_type_urls::ROUTE_CONFIGURATION,
        "v1",
        "n2",
        vec![any(fake_xds::route_configuration("routes", "c1"))],
    ));
    assert_eq!(outcome.requests.len(), 2);
    assert_eq!(
        (
            outcome.requests[1].type_url.as_str(),
            names(&outcome.requests[1])
        ),
        (xds_type_urls::CLUSTER, vec!["c1"])
    );

    let outcome = s.on_response(response(
        xds_type_urls::CLUSTER,
        "v1",
        "n3",
        vec![any(fake_xds::cluster("c1"))],
    ));
    assert_eq!(
        (
            outcome.requests[1].type_url.as_str(),
            names(&outcome.requests[1])
        ),
        (xds_type_urls::CLUSTER_LOAD_ASSIGNMENT, vec!["c1"])
    );
    assert_eq!(
        s.resolution("greeter").flat(),
        Resolution::Waiting("endpoints of cluster \"c1\"".into())
    );

    let outcome = s.on_response(response(
        xds_type_urls::CLUSTER_LOAD_ASSIGNMENT,
        "v7",
        "n4",
        vec![any(fake_xds::load_assignment(
            "c1",
            &[
                (addr(1), Health::Healthy, "a"),
                (addr(2), Health::Draining, "b"),
                (addr(3), Health::Unhealthy, "c"),
            ],
        ))],
    ));
    assert_eq!(outcome.requests.len(), 1, "only the ACK");
    assert_eq!(outcome.requests[0].version_info, "v7");
    let Resolution::Endpoints {
        cluster, endpoints, ..
    } = s.resolution("greeter").flat()
    else {
        panic!("not resolved: {:?}", s.resolution("greeter").flat());
    };
    assert_eq!(cluster, "c1");
    let summary: Vec<_> = endpoints
        .iter()
        .map(|e| (e.addr, e.hostname.as_str(), e.health, e.zone.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            (addr(1), "a", EndpointHealth::Healthy, "zone-a"),
            (addr(2), "b", EndpointHealth::Draining, "zone-a"),
            (addr(3), "c", EndpointHealth::NotReady, "zone-a"),
        ]
    );
}

#[test]
fn resubscribes_everything_after_a_reconnect() {
    let mut s = resolved(&[(addr(1), Health::Healthy, "a")]);
    let requests = s.on_stream_start();
    let summary: Vec<_> = requests
        .iter()
        .map(|r| {
            (
                r.type_url.as_str(),
                names(r),
                r.version_info.as_str(),
                r.response_nonce.as_str(),
                r.node.is_some(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (xds_type_urls::LISTENER, vec!["greeter"], "1", "", true),
            (
                xds_type_urls::ROUTE_CONFIGURATION,
                vec!["greeter-routes"],
                "1",
                "",
                false
            ),
            (
                xds_type_urls::CLUSTER,
                vec!["greeter-cluster"],
                "1",
                "",
                false
            ),
            (
                xds_type_urls::CLUSTER_LOAD_ASSIGNMENT,
                vec!["greeter-cluster"],
                "1",
                "",
                false
            ),
        ]
    );
    assert!(
        matches!(s.resolution("greeter").flat(), Resolution::Endpoints { .. }),
        "kept across the reconnect"
    );
}

#[test]
fn targets_share_one_session_and_leave_without_disturbing_the_others() {
    let mut s = resolved(&[(addr(1), Health::Healthy, "a")]);
    assert!(s.add_target("greeter").is_empty(), "already subscribed");

    let added = s.add_target("echo");
    assert_eq!(added.len(), 1);
    assert_eq!(added[0].type_url, xds_type_urls::LISTENER);
    assert_eq!(names(&added[0]), ["echo", "greeter"]);
    assert_eq!(
        s.resolution("echo").flat(),
        Resolution::Waiting("listener \"echo\"".into())
    );

    // The control plane answers with both Listeners (state of the world);
    // the new one leads to its own route and cluster, subscribed beside
    // greeter's.
    let outcome = s.on_response(response(
        xds_type_urls::LISTENER,
        "2",
        "n5",
        vec![
            any(fake_xds::listener("greeter", "greeter-routes")),
            any(fake_xds::listener("echo", "echo-routes")),
        ],
    ));
    let routes = outcome
        .requests
        .iter()
        .find(|r| r.type_url == xds_type_urls::ROUTE_CONFIGURATION)
        .expect("a route subscription");
    assert_eq!(names(routes), ["echo-routes", "greeter-routes"]);
    s.on_response(response(
        xds_type_urls::ROUTE_CONFIGURATION,
        "2",
        "n6",
        vec![any(fake_xds::route_configuration(
            "echo-routes",
            "echo-cluster",
        ))],
    ));
    s.on_response(response(
        xds_type_urls::CLUSTER,
        "2",
        "n7",
        vec![
            any(fake_xds::cluster("greeter-cluster")),
            any(fake_xds::cluster("echo-cluster")),
        ],
    ));
    s.on_response(response(
        xds_type_urls::CLUSTER_LOAD_ASSIGNMENT,
        "2",
        "n8",
        vec![any(fake_xds::load_assignment(
            "echo-cluster",
            &[(addr(2), Health::Healthy, "e")],
        ))],
    ));
    assert!(matches!(
        s.resolution("echo").flat(),
        Resolution::Endpoints { .. }
    ));
    assert!(matches!(
        s.resolution("greeter").flat(),
        Resolution::Endpoints { .. }
    ));

    // Dropping greeter unsubscribes everything only it needed, and nothing
    // echo needs.
    let removed = s.remove_target("greeter");
    let by_type: Vec<(&str, Vec<&str>)> = removed
        .iter()
        .map(|r| (r.type_url.as_str(), names(r)))
        .collect();
    assert_eq!(
        by_type,
        [
            (xds_type_urls::LISTENER, vec!["echo"]),
            (xds_type_urls::ROUTE_CONFIGURATION, vec!["echo-routes"]),
            (xds_type_urls::CLUSTER, vec!["echo-cluster"]),
            (xds_type_urls::CLUSTER_LOAD_ASSIGNMENT, vec!["echo-cluster"]),
        ]
    );
    assert!(matches!(
        s.resolution("echo").flat(),
        Resolution::Endpoints { .. }
    ));
    assert_eq!(s.targets().collect::<Vec<_>>(), ["echo"]);
    assert!(s.remove_target("greeter").is_empty(), "already gone");
}
