//! The type URLs of the Envoy xDS v3 messages the project uses, as
//! `&'static str` constants: what an `Any` or a `DiscoveryRequest` carries
//! in `type_url`.
//!
//! The control plane (which serves the four resource types), the client
//! library (which reads them and the messages packed inside them) and the
//! test kit (a scripted control plane and a raw ADS client) compare and
//! build type URLs on every message, so they share these constants instead
//! of each spelling the strings. The crate has no dependencies, so linking
//! it costs a service that links the client library nothing; its tests
//! check every constant against `prost::Name::type_url()` of the message
//! in `envoy-types`.
//!
//! # Layout
//!
//! One table, in this file: the four resource types of the chain a gRPC
//! client resolves ([`LISTENER`] → [`ROUTE_CONFIGURATION`] → [`CLUSTER`] →
//! [`CLUSTER_LOAD_ASSIGNMENT`]), the xDS [`RESOURCE`] wrapper, and the
//! messages packed inside resources (filters, the TLS transport socket,
//! load-balancing policies).

/// `envoy.config.listener.v3.Listener` (LDS).
pub const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";

/// `envoy.config.route.v3.RouteConfiguration` (RDS).
pub const ROUTE_CONFIGURATION: &str =
    "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";

/// `envoy.config.cluster.v3.Cluster` (CDS).
pub const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";

/// `envoy.config.endpoint.v3.ClusterLoadAssignment` (EDS).
pub const CLUSTER_LOAD_ASSIGNMENT: &str =
    "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";

/// `envoy.service.discovery.v3.Resource`: the wrapper a response may put
/// around a resource (with its name and version).
pub const RESOURCE: &str = "type.googleapis.com/envoy.service.discovery.v3.Resource";

/// `envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager`:
/// a Listener's `api_listener`.
pub const HTTP_CONNECTION_MANAGER: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";

/// `envoy.extensions.filters.http.router.v3.Router`: the HTTP filter that
/// must end a connection manager's filter chain.
pub const ROUTER: &str = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";

/// `envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext`: a
/// Cluster's TLS transport socket.
pub const UPSTREAM_TLS_CONTEXT: &str =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext";

/// `envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin`.
pub const ROUND_ROBIN: &str =
    "type.googleapis.com/envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin";

/// `envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest`.
pub const LEAST_REQUEST: &str =
    "type.googleapis.com/envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest";

/// `envoy.extensions.load_balancing_policies.wrr_locality.v3.WrrLocality`:
/// what gRPC turns a Cluster's `lb_policy` into (its endpoint picking
/// policy within weighted localities).
pub const WRR_LOCALITY: &str =
    "type.googleapis.com/envoy.extensions.load_balancing_policies.wrr_locality.v3.WrrLocality";

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
    use envoy_types::pb::envoy::config::listener::v3::Listener;
    use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
    use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
    use envoy_types::pb::envoy::extensions::load_balancing_policies::least_request::v3::LeastRequest;
    use envoy_types::pb::envoy::extensions::load_balancing_policies::round_robin::v3::RoundRobin;
    use envoy_types::pb::envoy::extensions::load_balancing_policies::wrr_locality::v3::WrrLocality;
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext;
    use envoy_types::pb::envoy::service::discovery::v3::Resource;
    use prost::Name;

    #[test]
    fn every_url_is_its_messages_own() {
        let table = [
            (super::LISTENER, Listener::type_url()),
            (super::ROUTE_CONFIGURATION, RouteConfiguration::type_url()),
            (super::CLUSTER, Cluster::type_url()),
            (
                super::CLUSTER_LOAD_ASSIGNMENT,
                ClusterLoadAssignment::type_url(),
            ),
            (super::RESOURCE, Resource::type_url()),
            (
                super::HTTP_CONNECTION_MANAGER,
                HttpConnectionManager::type_url(),
            ),
            (super::ROUTER, Router::type_url()),
            (super::UPSTREAM_TLS_CONTEXT, UpstreamTlsContext::type_url()),
            (super::ROUND_ROBIN, RoundRobin::type_url()),
            (super::LEAST_REQUEST, LeastRequest::type_url()),
            (super::WRR_LOCALITY, WrrLocality::type_url()),
        ];
        for (constant, message) in table {
            assert_eq!(constant, message);
        }
    }
}
