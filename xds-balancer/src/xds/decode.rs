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

use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::ConfigSource;
use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::service::discovery::v3::Resource;
use envoy_types::pb::google::protobuf::Any;
use prost::Message;
use xds_type_urls as type_url;

use super::cluster::cluster_info;
use super::endpoints::endpoints;
use super::listener::listener_routes;
pub(crate) use super::routes::RouteTable;
use super::routes::route_table;
use crate::model::{Endpoint, PickPolicy, UpstreamTls};

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

/// Whether a config source is ADS (`ads`, or `self`: the same stream).
pub(super) fn is_ads(source: Option<&ConfigSource>) -> bool {
    matches!(
        source.and_then(|s| s.config_source_specifier.as_ref()),
        Some(ConfigSourceSpecifier::Ads(_) | ConfigSourceSpecifier::Self_(_))
    )
}
