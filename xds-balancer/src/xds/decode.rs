//! xDS resources → the client's own types, with gRPC's validation rules.
//!
//! This is the one place that reads Envoy wire types. Each resource is
//! decoded and checked on its own; a resource that fails makes the whole
//! response NACKed (with the reasons below as the error detail) and the last
//! good configuration stays in use. Checks follow gRPC's proxyless clients:
//!
//! - Listener: an `api_listener` holding an HttpConnectionManager, whose
//!   route configuration comes by RDS over ADS (or inline), and whose HTTP
//!   filters end with the router filter.
//! - RouteConfiguration: every virtual host's routes as gRPC A28 reads
//!   them (see [`super::routes`]); virtual hosts are matched against the
//!   target like gRPC (exact, `*suffix`, `prefix*`, `*`).
//! - Cluster: `type: EDS` with `eds_config` over ADS; round robin, or least
//!   request (gRPC A48) by `lb_policy` or `load_balancing_policy`; TLS as
//!   gRPC A29 defines it (see [`super::tls`]).
//! - ClusterLoadAssignment: localities without `locality` or with weight 0
//!   are dropped silently; priorities must not have gaps; an address may
//!   appear only once; endpoint weights, when set, are at least 1;
//!   addresses are IP literals with a port.
//! - A resource may come wrapped in one xDS `Resource`, not in several.

use std::collections::HashSet;
use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, LbConfig, LbPolicy,
};
use envoy_types::pb::envoy::config::cluster::v3::{Cluster, LoadBalancingPolicy};
use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
use envoy_types::pb::envoy::config::core::v3::ConfigSource;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::load_balancing_policies::least_request::v3::LeastRequest;
use envoy_types::pb::envoy::extensions::load_balancing_policies::wrr_locality::v3::WrrLocality;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter,
};
use envoy_types::pb::envoy::service::discovery::v3::Resource;
use envoy_types::pb::google::protobuf::Any;
use prost::Message;
use xds_type_urls as type_url;

use super::endpoints::endpoints;
pub(crate) use super::routes::RouteTable;
use super::routes::route_table;
use crate::model::{Endpoint, PickPolicy, UpstreamTls};

/// gRPC A48: least request's default `choice_count`, and the cap on it.
const DEFAULT_CHOICE_COUNT: u32 = 2;
const MAX_CHOICE_COUNT: u32 = 10;

/// The four resource types of the chain, in the order they are resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Kind {
    Listener,
    Route,
    Cluster,
    Endpoints,
}

impl Kind {
    pub(crate) const ALL: [Kind; 4] = [Kind::Listener, Kind::Route, Kind::Cluster, Kind::Endpoints];

    pub(crate) fn type_url(self) -> &'static str {
        match self {
            Kind::Listener => type_url::LISTENER,
            Kind::Route => type_url::ROUTE_CONFIGURATION,
            Kind::Cluster => type_url::CLUSTER,
            Kind::Endpoints => type_url::CLUSTER_LOAD_ASSIGNMENT,
        }
    }

    pub(crate) fn from_type_url(type_url: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.type_url() == type_url)
    }

    /// How the resource is named in messages.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Kind::Listener => "listener",
            Kind::Route => "route configuration",
            Kind::Cluster => "cluster",
            Kind::Endpoints => "endpoints (ClusterLoadAssignment)",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// Why a resource was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecodeError {
    /// The `Any` holds another type than the response is for.
    #[error("a {expected} response holds a resource of type {found:?}")]
    WrongType {
        expected: &'static str,
        found: String,
    },
    /// The bytes are not a valid message of the type.
    #[error("cannot decode a {kind}: {reason}")]
    Malformed { kind: &'static str, reason: String },
    /// The message decodes but breaks a rule.
    #[error("{kind} {name:?}: {reason}")]
    Invalid {
        kind: &'static str,
        name: String,
        reason: String,
    },
}

/// A validated Listener: where its routes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ListenerRoutes {
    /// By RDS, under this RouteConfiguration name.
    Rds(String),
    /// Inline.
    Inline(RouteTable),
}

/// A validated Cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClusterInfo {
    /// The ClusterLoadAssignment to ask for.
    pub(crate) eds_name: String,
    /// TLS to its endpoints, when its `transport_socket` asks for it.
    pub(crate) tls: Option<Arc<UpstreamTls>>,
    /// How calls are spread over its endpoints.
    pub(crate) policy: PickPolicy,
}

/// One decoded resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decoded {
    Listener(ListenerRoutes),
    Route(RouteTable),
    Cluster(ClusterInfo),
    Endpoints(Vec<Endpoint>),
}

/// Decodes and validates one resource of a `kind` response; returns its
/// name too.
pub(crate) fn decode(kind: Kind, any: &Any) -> Result<(String, Decoded), DecodeError> {
    if any.type_url == type_url::RESOURCE {
        let wrapper =
            Resource::decode(any.value.as_slice()).map_err(|e| malformed("Resource", e))?;
        let inner = wrapper.resource.ok_or_else(|| DecodeError::Invalid {
            kind: kind.label(),
            name: wrapper.name.clone(),
            reason: "the Resource wrapper holds no resource".into(),
        })?;
        // xDS wraps a resource once. Following wrappers inside wrappers
        // would let a response nest them deep enough to overflow the stack.
        if inner.type_url == type_url::RESOURCE {
            return Err(DecodeError::Invalid {
                kind: kind.label(),
                name: wrapper.name,
                reason: "the Resource wrapper holds another Resource wrapper".into(),
            });
        }
        return decode(kind, &inner);
    }
    if any.type_url != kind.type_url() {
        return Err(DecodeError::WrongType {
            expected: kind.label(),
            found: any.type_url.clone(),
        });
    }
    let bytes = any.value.as_slice();
    let invalid = |name: &str, reason: String| DecodeError::Invalid {
        kind: kind.label(),
        name: name.to_owned(),
        reason,
    };
    match kind {
        Kind::Listener => {
            let listener = Listener::decode(bytes).map_err(|e| malformed("Listener", e))?;
            let name = listener.name.clone();
            let routes = listener_routes(listener).map_err(|reason| invalid(&name, reason))?;
            Ok((name, Decoded::Listener(routes)))
        }
        Kind::Route => {
            let config = RouteConfiguration::decode(bytes)
                .map_err(|e| malformed("RouteConfiguration", e))?;
            let name = config.name.clone();
            let table =
                route_table(config.virtual_hosts).map_err(|reason| invalid(&name, reason))?;
            Ok((name, Decoded::Route(table)))
        }
        Kind::Cluster => {
            let cluster = Cluster::decode(bytes).map_err(|e| malformed("Cluster", e))?;
            let name = cluster.name.clone();
            let info = cluster_info(cluster).map_err(|reason| invalid(&name, reason))?;
            Ok((name, Decoded::Cluster(info)))
        }
        Kind::Endpoints => {
            let assignment = ClusterLoadAssignment::decode(bytes)
                .map_err(|e| malformed("ClusterLoadAssignment", e))?;
            let name = assignment.cluster_name.clone();
            let endpoints = endpoints(assignment).map_err(|reason| invalid(&name, reason))?;
            Ok((name, Decoded::Endpoints(endpoints)))
        }
    }
}

fn malformed(kind: &'static str, error: prost::DecodeError) -> DecodeError {
    DecodeError::Malformed {
        kind,
        reason: error.to_string(),
    }
}

fn listener_routes(listener: Listener) -> Result<ListenerRoutes, String> {
    let api = listener
        .api_listener
        .and_then(|api| api.api_listener)
        .ok_or("has no api_listener; gRPC clients need an API listener")?;
    if api.type_url != type_url::HTTP_CONNECTION_MANAGER {
        return Err(format!(
            "api_listener holds {:?}, expected an HttpConnectionManager",
            api.type_url
        ));
    }
    let hcm = HttpConnectionManager::decode(api.value.as_slice())
        .map_err(|e| format!("cannot decode its HttpConnectionManager: {e}"))?;
    check_filters(&hcm.http_filters)?;
    match hcm.route_specifier {
        Some(RouteSpecifier::Rds(rds)) => {
            if !is_ads(rds.config_source.as_ref()) {
                return Err("rds.config_source must be `ads` (or `self`)".into());
            }
            if rds.route_config_name.is_empty() {
                return Err("rds.route_config_name is empty".into());
            }
            Ok(ListenerRoutes::Rds(rds.route_config_name))
        }
        Some(RouteSpecifier::RouteConfig(config)) => route_table(config.virtual_hosts)
            .map(ListenerRoutes::Inline)
            .map_err(|reason| format!("its inline route configuration: {reason}")),
        Some(RouteSpecifier::ScopedRoutes(_)) => {
            Err("scoped routes are not supported; use rds or route_config".into())
        }
        None => Err("its HttpConnectionManager has neither rds nor route_config".into()),
    }
}

fn is_ads(source: Option<&ConfigSource>) -> bool {
    matches!(
        source.and_then(|s| s.config_source_specifier.as_ref()),
        Some(ConfigSourceSpecifier::Ads(_) | ConfigSourceSpecifier::Self_(_))
    )
}

fn check_filters(filters: &[HttpFilter]) -> Result<(), String> {
    let Some((last, rest)) = filters.split_last() else {
        return Err("has no HTTP filters; the router filter must be last".into());
    };
    let mut names = HashSet::new();
    for filter in filters {
        if !names.insert(filter.name.as_str()) {
            return Err(format!("HTTP filter name {:?} is used twice", filter.name));
        }
    }
    if filter_type(last) != Some(type_url::ROUTER) {
        return Err(format!(
            "the last HTTP filter ({:?}) is not the router filter",
            last.name
        ));
    }
    for filter in rest {
        if filter_type(filter) == Some(type_url::ROUTER) {
            return Err(format!("the router filter {:?} is not last", filter.name));
        }
        if !filter.is_optional {
            return Err(format!(
                "HTTP filter {:?} ({}) is not supported by this client (mark it is_optional to \
                 let it be skipped)",
                filter.name,
                filter_type(filter).unwrap_or("no typed_config")
            ));
        }
    }
    Ok(())
}

fn filter_type(filter: &HttpFilter) -> Option<&str> {
    match &filter.config_type {
        Some(ConfigType::TypedConfig(any)) => Some(any.type_url.as_str()),
        _ => None,
    }
}

fn cluster_info(cluster: Cluster) -> Result<ClusterInfo, String> {
    match cluster.cluster_discovery_type {
        Some(ClusterDiscoveryType::Type(t)) if t == DiscoveryType::Eds as i32 => {}
        Some(ClusterDiscoveryType::Type(t)) => {
            let name = DiscoveryType::try_from(t).map_or("unknown", |t| t.as_str_name());
            return Err(format!("type is {name}; only EDS clusters are supported"));
        }
        Some(ClusterDiscoveryType::ClusterType(custom)) => {
            return Err(format!(
                "custom cluster type {:?} is not supported; only EDS clusters are",
                custom.name
            ));
        }
        None => return Err("type is STATIC; only EDS clusters are supported".into()),
    }
    let eds = cluster
        .eds_cluster_config
        .ok_or("an EDS cluster needs eds_cluster_config")?;
    if !is_ads(eds.eds_config.as_ref()) {
        return Err("eds_cluster_config.eds_config must be `ads` (or `self`)".into());
    }
    let policy = match &cluster.load_balancing_policy {
        Some(policy) => policy_from_list(policy, 0)?,
        None if cluster.lb_policy == LbPolicy::RoundRobin as i32 => PickPolicy::RoundRobin,
        None if cluster.lb_policy == LbPolicy::LeastRequest as i32 => {
            let count = match &cluster.lb_config {
                Some(LbConfig::LeastRequestLbConfig(config)) => {
                    config.choice_count.map(|c| c.value)
                }
                _ => None,
            };
            least_request(count)?
        }
        None => {
            let name = LbPolicy::try_from(cluster.lb_policy).map_or("unknown", |p| p.as_str_name());
            return Err(format!(
                "lb_policy is {name}; only ROUND_ROBIN and LEAST_REQUEST are supported"
            ));
        }
    };
    if !cluster.transport_socket_matches.is_empty() {
        return Err(
            "transport_socket_matches is not supported: put TLS in transport_socket".into(),
        );
    }
    let tls = cluster
        .transport_socket
        .as_ref()
        .map(super::tls::upstream_tls)
        .transpose()?
        .map(Arc::new);
    let eds_name = if eds.service_name.is_empty() {
        cluster.name
    } else {
        eds.service_name
    };
    Ok(ClusterInfo {
        eds_name,
        tls,
        policy,
    })
}

/// The first policy of `load_balancing_policy` this client implements, as
/// gRPC A52 reads the list (an unknown one is skipped; a known one with a
/// bad configuration is refused).
fn policy_from_list(list: &LoadBalancingPolicy, depth: usize) -> Result<PickPolicy, String> {
    for policy in &list.policies {
        let Some(any) = policy
            .typed_extension_config
            .as_ref()
            .and_then(|c| c.typed_config.as_ref())
        else {
            continue;
        };
        match any.type_url.as_str() {
            type_url::ROUND_ROBIN => return Ok(PickPolicy::RoundRobin),
            type_url::LEAST_REQUEST => {
                let config = LeastRequest::decode(any.value.as_slice())
                    .map_err(|e| format!("cannot decode its LeastRequest policy: {e}"))?;
                return least_request(config.choice_count.map(|c| c.value));
            }
            // What gRPC turns `lb_policy` into: its endpoint picking
            // policy within weighted localities. One level of nesting is
            // what gRPC sends; more is refused rather than followed
            // without bound.
            type_url::WRR_LOCALITY if depth == 0 => {
                let wrapper = WrrLocality::decode(any.value.as_slice())
                    .map_err(|e| format!("cannot decode its WrrLocality policy: {e}"))?;
                let inner = wrapper
                    .endpoint_picking_policy
                    .ok_or("its WrrLocality policy has no endpoint_picking_policy")?;
                return policy_from_list(&inner, depth + 1);
            }
            _ => {}
        }
    }
    Err(
        "load_balancing_policy lists no policy this client supports (round robin, least \
         request)"
            .into(),
    )
}

/// Least request with `choice_count` (gRPC A48: default 2, below 2 refused,
/// above 10 capped).
fn least_request(choice_count: Option<u32>) -> Result<PickPolicy, String> {
    let choice_count = choice_count.unwrap_or(DEFAULT_CHOICE_COUNT);
    if choice_count < 2 {
        return Err(format!(
            "least request choice_count is {choice_count}; it must be at least 2"
        ));
    }
    Ok(PickPolicy::LeastRequest {
        choice_count: choice_count.min(MAX_CHOICE_COUNT),
    })
}
