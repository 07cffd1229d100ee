//! The one conversion from the model to Envoy xDS resources.
//!
//! Resources are built when a service changes, once, however many clients
//! subscribe to it, and kept encoded (`Any`, and the `Any` as an entry of a
//! response, see [`super::wire`]) so streams share the bytes.
//! What changed decides what is rebuilt: an endpoint change rebuilds only
//! the ClusterLoadAssignment of the affected port; Listeners, routes and
//! Clusters are rebuilt only when the service's ports change. A resource
//! that was not rebuilt keeps its revision, which is how streams tell that
//! it needs no resend.
//!
//! The shapes follow what gRPC's xDS clients accept (docs/protocol.md,
//! checked by the interop tests against grpcio, grpc-go and grpc-java):
//! - Listener: `api_listener` holding an HttpConnectionManager that takes
//!   its route configuration by RDS over ADS, with the router filter last.
//! - RouteConfiguration: one virtual host for any domain, prefix `""` to the
//!   port's Cluster; where routes attach to the port, their route table
//!   instead (`routes.rs`).
//! - Cluster: `EDS` over ADS, `ROUND_ROBIN` (or, where the service asks,
//!   `LEAST_REQUEST` with `choice_count` 2, gRPC A48, plus a
//!   `load_balancing_policy` of least request then round robin, gRPC A52,
//!   for clients without least request; `cluster.rs`); for a TLS service, a
//!   `transport_socket` with an `UpstreamTlsContext` as gRPC A29 reads it:
//!   `tls_certificate_provider_instance` for the identity, and a
//!   `validation_context` with `ca_certificate_provider_instance` and
//!   `match_subject_alt_names`. Never `match_typed_subject_alt_names` nor
//!   `transport_socket_matches`: grpcio 1.85 ACKs both and then skips the
//!   SAN check or TLS itself (docs/security.md).
//! - ClusterLoadAssignment (`assignment.rs`): one locality per zone,
//!   `locality` always set,
//!   weight = ready endpoints in it (at least 1) so a zone with more pods
//!   gets a larger share; ready → HEALTHY, draining → DRAINING, not ready →
//!   UNHEALTHY (skipped by every client, but counted by ours to explain
//!   "no ready endpoints"); addresses are unique (the model guarantees it).
//!   A zone-aware service also gets one variant per zone (`zones.rs`),
//!   built with the default and served to clients in that zone.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
use envoy_types::pb::envoy::config::core::v3::{AggregatedConfigSource, ApiVersion, ConfigSource};
use envoy_types::pb::envoy::config::listener::v3::{ApiListener, Listener};
use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, VirtualHost};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds,
};
use envoy_types::pb::google::protobuf::Any;
use envoy_types::util::pack_any;

use crate::kinds::ResourceType;
use crate::model::Service;
use crate::names::Naming;
use crate::routes::RouteTable;

mod assignment;
mod cluster;
mod routes;
mod zones;

use assignment::assignments;
use cluster::cluster;

/// Route tables of a service's ports, by port (only ports with routes in
/// force are listed).
pub type PortRoutes = [(u16, Arc<RouteTable>)];

/// Per-zone variants of an assignment, by zone.
pub type ZoneVariants = BTreeMap<String, Arc<Resource>>;

/// Name of the router filter in the HttpConnectionManager.
const ROUTER_FILTER: &str = "envoy.filters.http.router";

/// One encoded resource.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    /// Resource name.
    pub name: String,
    /// Store revision at which this resource last changed. Streams compare
    /// it with what they sent to decide whether to send it again.
    pub revision: u64,
    /// The encoded resource.
    pub any: Any,
    /// `any` as an entry of `DiscoveryResponse.resources`, shared by every
    /// response that carries it.
    pub encoded: Bytes,
}

/// The resources of one Service port.
#[derive(Debug, Clone)]
pub struct PortResources {
    /// The Service port.
    pub port: u16,
    /// Canonical name shared by the Cluster, route and assignment.
    pub cluster_name: String,
    /// RouteConfiguration.
    pub route: Arc<Resource>,
    /// Cluster.
    pub cluster: Arc<Resource>,
    /// ClusterLoadAssignment.
    pub assignment: Arc<Resource>,
    /// The route table the RouteConfiguration was built from; `None`: the
    /// default route.
    pub routes: Option<Arc<RouteTable>>,
    /// For a zone-aware service: the assignment as clients in each zone get
    /// it (zone's endpoints first). `None`: every client gets `assignment`.
    pub zoned: Option<Arc<ZoneVariants>>,
}

/// Every resource of one service.
#[derive(Debug, Clone)]
pub struct ServiceResources {
    /// Listeners by every name that refers to the service.
    pub listeners: Arc<HashMap<String, Arc<Resource>>>,
    /// One entry per Service port, in port order.
    pub ports: Vec<PortResources>,
}

impl ServiceResources {
    /// Builds the resources of `service` at `revision`, with the default
    /// route on every port. With `previous` (the service as last built, and
    /// its resources), only what changed is rebuilt; the rest is shared.
    pub fn build(
        service: &Service,
        naming: &Naming,
        revision: u64,
        previous: Option<(&Service, &ServiceResources)>,
    ) -> Self {
        Self::build_routed(service, &[], naming, revision, previous)
    }

    /// Like [`ServiceResources::build`], with the route tables in force
    /// for the service's ports: a port listed in `routes` gets its table as
    /// its RouteConfiguration.
    pub fn build_routed(
        service: &Service,
        routes: &PortRoutes,
        naming: &Naming,
        revision: u64,
        previous: Option<(&Service, &ServiceResources)>,
    ) -> Self {
        let same_ports = previous.is_some_and(|(old, _)| {
            port_keys(old).eq(port_keys(service))
                && old.tls == service.tls
                && old.policy == service.policy
        });
        let previous = previous.filter(|_| same_ports);
        let table_of = |port: u16| {
            routes
                .iter()
                .find(|(p, _)| *p == port)
                .map(|(_, table)| table.clone())
        };

        let ports = service
            .ports
            .iter()
            .enumerate()
            .map(|(i, port)| {
                let cluster_name = naming.cluster_name(&service.name, port.port);
                let table = table_of(port.port);
                let route_for = |table: &Option<Arc<RouteTable>>| {
                    Arc::new(route(&cluster_name, table.as_deref(), naming, revision))
                };
                match previous {
                    Some((old_service, old)) => {
                        let old_port = &old.ports[i];
                        let (assignment, zoned) =
                            if old_service.ports[i].endpoints == port.endpoints {
                                (old_port.assignment.clone(), old_port.zoned.clone())
                            } else {
                                assignments(service, &cluster_name, port, revision)
                            };
                        let route = if old_port.routes == table {
                            old_port.route.clone()
                        } else {
                            route_for(&table)
                        };
                        PortResources {
                            assignment,
                            zoned,
                            route,
                            routes: table,
                            ..old_port.clone()
                        }
                    }
                    None => {
                        let (assignment, zoned) =
                            assignments(service, &cluster_name, port, revision);
                        PortResources {
                            port: port.port,
                            route: route_for(&table),
                            routes: table,
                            cluster: Arc::new(cluster(
                                &cluster_name,
                                service,
                                &naming.tls_provider_instance,
                                revision,
                            )),
                            assignment,
                            zoned,
                            cluster_name,
                        }
                    }
                }
            })
            .collect();

        let listeners = match previous {
            Some((_, old)) => old.listeners.clone(),
            None => Arc::new(
                naming
                    .listener_names(service)
                    .into_iter()
                    .map(|(name, port)| {
                        let route_name = naming.cluster_name(&service.name, port);
                        let resource = Arc::new(listener(&name, &route_name, revision));
                        (name, resource)
                    })
                    .collect(),
            ),
        };
        Self { listeners, ports }
    }

    /// The route tables the resources were built with, by port.
    pub fn routes(&self) -> Vec<(u16, Arc<RouteTable>)> {
        self.ports
            .iter()
            .filter_map(|p| Some((p.port, p.routes.clone()?)))
            .collect()
    }

    /// The resource of type `kind` named `name`, if this service has it.
    pub fn get(&self, kind: ResourceType, name: &str) -> Option<&Arc<Resource>> {
        match kind {
            ResourceType::Listener => self.listeners.get(name),
            ResourceType::RouteConfiguration => self.port(name).map(|p| &p.route),
            ResourceType::Cluster => self.port(name).map(|p| &p.cluster),
            ResourceType::ClusterLoadAssignment => self.port(name).map(|p| &p.assignment),
        }
    }

    /// Like [`ServiceResources::get`], for a client in `zone`: an
    /// assignment of a zone-aware service comes in that zone's variant.
    pub fn get_in_zone(
        &self,
        kind: ResourceType,
        name: &str,
        zone: &str,
    ) -> Option<&Arc<Resource>> {
        if kind != ResourceType::ClusterLoadAssignment || zone.is_empty() {
            return self.get(kind, name);
        }
        let port = self.port(name)?;
        match &port.zoned {
            Some(variants) => variants.get(zone).or(Some(&port.assignment)),
            None => Some(&port.assignment),
        }
    }

    /// Resources of type `kind` a wildcard subscription (no names) gets:
    /// every route, Cluster and assignment, and the Listener of each port
    /// under its canonical name.
    pub fn wildcard(&self, kind: ResourceType) -> impl Iterator<Item = &Arc<Resource>> + '_ {
        self.ports.iter().filter_map(move |port| match kind {
            ResourceType::Listener => self.listeners.get(&port.cluster_name),
            ResourceType::RouteConfiguration => Some(&port.route),
            ResourceType::Cluster => Some(&port.cluster),
            ResourceType::ClusterLoadAssignment => Some(&port.assignment),
        })
    }

    fn port(&self, cluster_name: &str) -> Option<&PortResources> {
        self.ports.iter().find(|p| p.cluster_name == cluster_name)
    }
}

fn port_keys(service: &Service) -> impl Iterator<Item = (u16, Option<&str>)> {
    service.ports.iter().map(|p| (p.port, p.name.as_deref()))
}

fn ads() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(ConfigSourceSpecifier::Ads(AggregatedConfigSource {})),
        ..Default::default()
    }
}

fn resource(name: &str, revision: u64, any: Any) -> Resource {
    Resource {
        name: name.to_owned(),
        revision,
        encoded: super::wire::encode_resource(&any),
        any,
    }
}

/// Listener `name` whose routes come from RDS resource `route_name`.
fn listener(name: &str, route_name: &str, revision: u64) -> Resource {
    let manager = HttpConnectionManager {
        stat_prefix: name.to_owned(),
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            config_source: Some(ads()),
            route_config_name: route_name.to_owned(),
        })),
        http_filters: vec![HttpFilter {
            name: ROUTER_FILTER.to_owned(),
            config_type: Some(ConfigType::TypedConfig(pack_any(Router::default()))),
            ..Default::default()
        }],
        ..Default::default()
    };
    let listener = Listener {
        name: name.to_owned(),
        api_listener: Some(ApiListener {
            api_listener: Some(pack_any(manager)),
        }),
        ..Default::default()
    };
    resource(name, revision, pack_any(listener))
}

/// The RouteConfiguration of one Service port: its route table, or the
/// default route to its own Cluster.
fn route(
    cluster_name: &str,
    table: Option<&RouteTable>,
    naming: &Naming,
    revision: u64,
) -> Resource {
    let routes = match table {
        Some(table) => routes::routes(table, naming),
        None => vec![routes::default_route(cluster_name)],
    };
    let config = RouteConfiguration {
        name: cluster_name.to_owned(),
        virtual_hosts: vec![VirtualHost {
            name: cluster_name.to_owned(),
            domains: vec!["*".to_owned()],
            routes,
            ..Default::default()
        }],
        ..Default::default()
    };
    resource(cluster_name, revision, pack_any(config))
}

#[cfg(test)]
mod policy_tests;
#[cfg(test)]
mod tests;
