//! Traffic policy over a real ADS stream: routes reported by the source
//! become the RouteConfiguration of the Service they attach to, the
//! backends' Clusters and assignments are there for the client to follow,
//! a route that cannot be honoured leaves the default route and shows in
//! the status API, and a client's zone picks its assignment's variant.

mod support;

use std::time::Duration;

use control_plane::model::{Readiness, Service};
use control_plane::routes::{
    Backend, CallMatch, MethodMatch, RouteParent, RouteRule, RouteSet, RouteSupport, TrafficRoute,
};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use proto::controlplane::v1::control_plane_status_client::ControlPlaneStatusClient;
use proto::controlplane::v1::{ListRoutesRequest, RouteState};
use support::{GREETER_CLUSTER, TestServer, greeter, ready, service};
use tests::ads::{AdsStream, endpoints};
use tests::{bounded, channel};

const LIMIT: Duration = Duration::from_secs(30);
const V1: &str = "greeter-v1.default.svc.cluster.local:80";
const V2: &str = "greeter-v2.default.svc.cluster.local:80";

fn backend(service: &str, weight: u32) -> Backend {
    Backend {
        service: service.into(),
        port: 80,
        weight,
    }
}

/// `greeter` → SayHello to v2, everything else split `v1_weight` /
/// `v2_weight`.
fn canary(v1_weight: u32, v2_weight: u32) -> TrafficRoute {
    TrafficRoute {
        name: "greeter-canary".into(),
        order: 0,
        parents: vec![RouteParent {
            service: "greeter".into(),
            port: None,
        }],
        rules: vec![
            RouteRule {
                matches: vec![CallMatch {
                    method: MethodMatch::exact(Some("greet.Greeter"), Some("SayHello")),
                    headers: vec![],
                }],
                backends: vec![backend("greeter-v2", 1)],
            },
            RouteRule {
                matches: vec![],
                backends: vec![
                    backend("greeter-v1", v1_weight),
                    backend("greeter-v2", v2_weight),
                ],
            },
        ],
        problems: vec![],
    }
}

fn routes(list: Vec<TrafficRoute>) -> RouteSet {
    RouteSet {
        support: RouteSupport::enabled("test"),
        routes: list,
    }
}

fn services() -> Vec<Service> {
    vec![
        greeter(&[ready("10.0.0.1:8080")]),
        service("greeter-v1", &[ready("10.0.1.1:8080")]),
        service("greeter-v2", &[ready("10.0.2.1:8080")]),
    ]
}

/// (path or prefix, clusters with weights) of every route.
fn table(config: &RouteConfiguration) -> Vec<(String, Vec<(String, u32)>)> {
    config.virtual_hosts[0]
        .routes
        .iter()
        .map(|route| {
            let path = match route
                .r#match
                .as_ref()
                .unwrap()
                .path_specifier
                .as_ref()
                .unwrap()
            {
                PathSpecifier::Path(path) => path.clone(),
                PathSpecifier::Prefix(prefix) => format!("{prefix}*"),
                other => format!("{other:?}"),
            };
            let Some(Action::Route(action)) = &route.action else {
                panic!("not a route action");
            };
            let clusters = match action.cluster_specifier.as_ref().unwrap() {
                ClusterSpecifier::Cluster(name) => vec![(name.clone(), 1)],
                ClusterSpecifier::WeightedClusters(split) => split
                    .clusters
                    .iter()
                    .map(|c| (c.name.clone(), c.weight.unwrap().value))
                    .collect(),
                other => panic!("{other:?}"),
            };
            (path, clusters)
        })
        .collect()
}

#[tokio::test]
async fn a_route_leads_the_client_to_every_backend_and_follows_weight_changes() {
    bounded(LIMIT, async {
        let server = TestServer::start(services()).await;
        assert!(
            server
                .source()
                .set_routes(routes(vec![canary(90, 10)]), "test")
        );
        let mut ads = AdsStream::open(channel(server.addr).await, "routes").await;

        ads.subscribe::<RouteConfiguration>(&[GREETER_CLUSTER])
            .await;
        let (rds, configs) = ads.recv_typed::<RouteConfiguration>().await;
        assert_eq!(
            table(&configs[0]),
            vec![
                ("/greet.Greeter/SayHello".into(), vec![(V2.into(), 1)]),
                ("*".into(), vec![(V1.into(), 90), (V2.into(), 10)]),
            ]
        );
        ads.ack(&rds, &[GREETER_CLUSTER]).await;

        // The client asks for the Clusters and assignments the routes name.
        ads.subscribe::<Cluster>(&[V1, V2]).await;
        let (_, clusters) = ads.recv_typed::<Cluster>().await;
        let mut names: Vec<_> = clusters.iter().map(|c| c.name.clone()).collect();
        names.sort();
        assert_eq!(names, vec![V1.to_owned(), V2.to_owned()]);
        ads.subscribe::<ClusterLoadAssignment>(&[V1, V2]).await;
        let (_, assignments) = ads.recv_typed::<ClusterLoadAssignment>().await;
        let v2 = assignments
            .iter()
            .find(|a| a.cluster_name == V2)
            .expect("v2");
        assert_eq!(endpoints(v2)[0].0, "10.0.2.1:8080");

        // 90/10 → 50/50: one RDS update, nothing else.
        server
            .source()
            .set_routes(routes(vec![canary(50, 50)]), "test");
        let (rds, configs) = ads.recv_typed::<RouteConfiguration>().await;
        assert_eq!(
            table(&configs[0])[1].1,
            vec![(V1.into(), 50), (V2.into(), 50)]
        );
        ads.ack(&rds, &[GREETER_CLUSTER]).await;

        // Routes gone: the default route again.
        server.source().set_routes(routes(vec![]), "test");
        let (_, configs) = ads.recv_typed::<RouteConfiguration>().await;
        assert_eq!(
            table(&configs[0]),
            vec![("*".into(), vec![(GREETER_CLUSTER.into(), 1)])]
        );
    })
    .await;
}

#[tokio::test]
async fn a_route_that_cannot_be_honoured_keeps_the_default_and_is_reported() {
    bounded(LIMIT, async {
        let server = TestServer::start(services()).await;
        let mut broken = canary(80, 20);
        broken.rules[1].backends.push(backend("greeter-v9", 1));
        server.source().set_routes(routes(vec![broken]), "test");
        let mut ads = AdsStream::open(channel(server.addr).await, "refused").await;
        ads.subscribe::<RouteConfiguration>(&[GREETER_CLUSTER])
            .await;
        let (rds, configs) = ads.recv_typed::<RouteConfiguration>().await;
        assert_eq!(
            table(&configs[0]),
            vec![("*".into(), vec![(GREETER_CLUSTER.into(), 1)])],
            "not half applied"
        );
        ads.ack(&rds, &[GREETER_CLUSTER]).await;

        let mut status = ControlPlaneStatusClient::new(channel(server.addr).await);
        let listed = status
            .list_routes(ListRoutesRequest {})
            .await
            .expect("ListRoutes")
            .into_inner();
        assert!(listed.support.as_ref().unwrap().enabled);
        let route = &listed.routes[0];
        assert_eq!(route.name, "greeter-canary");
        assert_eq!(route.state, RouteState::Refused as i32);
        assert!(
            route
                .reason
                .contains("backend Service greeter-v9 does not exist"),
            "{}",
            route.reason
        );

        // The missing backend appears: the route applies.
        server
            .source()
            .upsert(service("greeter-v9", &[ready("10.0.9.1:8080")]), "test")
            .expect("valid service");
        let (_, configs) = ads.recv_typed::<RouteConfiguration>().await;
        assert_eq!(table(&configs[0]).len(), 2);
        let listed = status
            .list_routes(ListRoutesRequest {})
            .await
            .expect("ListRoutes")
            .into_inner();
        assert_eq!(listed.routes[0].state, RouteState::Accepted as i32);
        assert_eq!(listed.routes[0].attached, vec!["greeter:80"]);

        // ... and goes again: refused again, default route again.
        server.source().remove("greeter-v9", "test");
        let (_, configs) = ads.recv_typed::<RouteConfiguration>().await;
        assert_eq!(table(&configs[0]).len(), 1);
    })
    .await;
}

#[tokio::test]
async fn a_client_in_a_zone_gets_its_zone_first() {
    bounded(LIMIT, async {
        let mut zoned = greeter(&[
            ready("10.0.0.1:8080"),
            ready("10.0.0.2:8080"),
            ready("10.0.0.3:8080"),
            ("10.0.0.4:8080", Readiness::Ready),
        ]);
        for (endpoint, zone) in zoned.ports[0]
            .endpoints
            .iter_mut()
            .zip(["zone-a", "zone-a", "zone-b", "zone-b"])
        {
            endpoint.zone = Some(zone.into());
        }
        zoned.policy.prefer_close = true;
        let server = TestServer::start(vec![zoned]).await;
        let priorities = |assignment: &ClusterLoadAssignment| -> Vec<(String, u32)> {
            assignment
                .endpoints
                .iter()
                .map(|l| (l.locality.as_ref().unwrap().zone.clone(), l.priority))
                .collect()
        };
        for (zone, expected) in [
            ("zone-a", vec![("zone-a".into(), 0), ("zone-b".into(), 1)]),
            ("zone-b", vec![("zone-b".into(), 0), ("zone-a".into(), 1)]),
            ("zone-c", vec![("zone-a".into(), 0), ("zone-b".into(), 0)]),
        ] {
            let mut ads = AdsStream::open_in_zone(channel(server.addr).await, "zoned", zone).await;
            ads.subscribe::<ClusterLoadAssignment>(&[GREETER_CLUSTER])
                .await;
            let (_, assignments) = ads.recv_typed::<ClusterLoadAssignment>().await;
            assert_eq!(priorities(&assignments[0]), expected, "client in {zone}");
        }
    })
    .await;
}
