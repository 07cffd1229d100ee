//! Hand-built traffic policy for the scripted control plane: route tables
//! with method routes and weighted clusters, assignments with priorities,
//! least-request clusters; and a relay that makes a backend slow.

use std::net::SocketAddr;
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    LbConfig, LbPolicy, LeastRequestLbConfig,
};
use envoy_types::pb::envoy::config::core::v3::Locality;
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, LocalityLbEndpoints};
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::weighted_cluster::ClusterWeight;
use envoy_types::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteConfiguration, RouteMatch, WeightedCluster,
};
use envoy_types::pb::google::protobuf::UInt32Value;
use tests::fake_xds::{self, EndpointSpec, FakeXds, any};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A route for calls whose path starts with `prefix` (`""`: every call).
pub(crate) fn prefix_route(prefix: &str, action: Action) -> Route {
    Route {
        r#match: Some(RouteMatch {
            path_specifier: Some(PathSpecifier::Prefix(prefix.into())),
            ..Default::default()
        }),
        action: Some(action),
        ..Default::default()
    }
}

/// A route for calls to exactly `path` (`/greet.Greeter/SayHello`).
pub(crate) fn method_route(path: &str, action: Action) -> Route {
    Route {
        r#match: Some(RouteMatch {
            path_specifier: Some(PathSpecifier::Path(path.into())),
            ..Default::default()
        }),
        action: Some(action),
        ..Default::default()
    }
}

/// Send to `cluster`.
pub(crate) fn to(cluster: &str) -> Action {
    Action::Route(RouteAction {
        cluster_specifier: Some(ClusterSpecifier::Cluster(cluster.into())),
        ..Default::default()
    })
}

/// Split between clusters by weight.
pub(crate) fn split(weights: &[(&str, u32)]) -> Action {
    Action::Route(RouteAction {
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
    })
}

/// Publishes `service`'s Listener and a RouteConfiguration (same name)
/// with these routes.
pub(crate) fn publish_routes(fake: &FakeXds, service: &str, routes: Vec<Route>) {
    let mut config: RouteConfiguration = fake_xds::route_configuration(service, "unused");
    config.virtual_hosts[0].routes = routes;
    fake.set_resource(
        xds_type_urls::LISTENER,
        service,
        any(fake_xds::listener(service, service)),
    );
    fake.set_resource(xds_type_urls::ROUTE_CONFIGURATION, service, any(config));
}

/// Publishes a round-robin cluster and its endpoints (one locality).
pub(crate) fn publish_cluster(fake: &FakeXds, name: &str, endpoints: &[EndpointSpec<'_>]) {
    publish_cluster_with(
        fake,
        fake_xds::cluster(name),
        fake_xds::load_assignment(name, endpoints),
    );
}

/// Publishes `cluster` and `assignment`.
pub(crate) fn publish_cluster_with(
    fake: &FakeXds,
    cluster: Cluster,
    assignment: ClusterLoadAssignment,
) {
    fake.set_resource(
        xds_type_urls::CLUSTER_LOAD_ASSIGNMENT,
        &assignment.cluster_name,
        any(assignment.clone()),
    );
    fake.set_resource(xds_type_urls::CLUSTER, &cluster.name.clone(), any(cluster));
}

/// A least-request cluster (`lb_policy: LEAST_REQUEST`, two choices).
pub(crate) fn least_request_cluster(name: &str) -> Cluster {
    let mut cluster = fake_xds::cluster(name);
    cluster.lb_policy = LbPolicy::LeastRequest as i32;
    cluster.lb_config = Some(LbConfig::LeastRequestLbConfig(LeastRequestLbConfig {
        choice_count: Some(UInt32Value { value: 2 }),
        ..Default::default()
    }));
    cluster
}

/// An assignment with one locality per zone, the zones' priorities in
/// order (the first zone is priority 0).
pub(crate) fn by_priority(
    name: &str,
    zones: &[(&str, &[EndpointSpec<'_>])],
) -> ClusterLoadAssignment {
    ClusterLoadAssignment {
        cluster_name: name.into(),
        endpoints: zones
            .iter()
            .enumerate()
            .map(|(priority, (zone, endpoints))| LocalityLbEndpoints {
                locality: Some(Locality {
                    zone: (*zone).into(),
                    ..Default::default()
                }),
                load_balancing_weight: Some(UInt32Value { value: 1 }),
                lb_endpoints: endpoints
                    .iter()
                    .map(|e| fake_xds::lb_endpoint(*e))
                    .collect(),
                priority: u32::try_from(priority).expect("few zones"),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// A loopback relay to `upstream` that holds every chunk the server sends
/// for `delay`: the backend behind it answers every call that much later.
/// Stops when dropped.
pub(crate) struct SlowRelay {
    pub(crate) addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for SlowRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a [`SlowRelay`].
pub(crate) async fn slow_relay(upstream: SocketAddr, delay: Duration) -> SlowRelay {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the relay");
    let addr = listener.local_addr().expect("relay address");
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((client, _)) = listener.accept().await {
            connections.spawn(async move {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let up = async {
                    let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                    let _ = server_write.shutdown().await;
                };
                let down = async {
                    let mut buffer = vec![0u8; 64 * 1024];
                    while let Ok(n) = server_read.read(&mut buffer).await {
                        if n == 0 {
                            break;
                        }
                        tokio::time::sleep(delay).await;
                        if client_write.write_all(&buffer[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = client_write.shutdown().await;
                };
                tokio::join!(up, down);
            });
        }
    });
    SlowRelay { addr, task }
}
