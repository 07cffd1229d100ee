//! Route tables ([`crate::routes::RouteTable`]) as Envoy routes, in the
//! forms gRPC's xDS clients match (gRPC A28):
//!
//! - service and method → `path: "/<service>/<method>"`;
//! - service only → `prefix: "/<service>/"`;
//! - method only, or regular expressions → `safe_regex` on the whole path
//!   (`/[^/]+/<method>`; a missing part is `[^/]+`);
//! - neither → `prefix: ""` (every call);
//! - header matchers → `string_match` (`exact` or `safe_regex`);
//! - one backend → `cluster`; several → `weighted_clusters`. Every cluster
//!   is the canonical Cluster of the backend's Service port, the same
//!   resource a client targeting that Service directly uses.

use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::weighted_cluster::ClusterWeight;
use envoy_types::pb::envoy::config::route::v3::{
    HeaderMatcher, Route, RouteAction, RouteMatch, WeightedCluster,
};
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::envoy::r#type::matcher::v3::{RegexMatcher, StringMatcher};
use envoy_types::pb::google::protobuf::UInt32Value;

use crate::names::Naming;
use crate::routes::{Backend, CallMatch, MethodMatch, RouteEntry, RouteTable};

/// Any single path segment.
const SEGMENT: &str = "[^/]+";

/// The routes of `table`, in order.
pub(super) fn routes(table: &RouteTable, naming: &Naming) -> Vec<Route> {
    table
        .entries
        .iter()
        .map(|entry| route(entry, naming))
        .collect()
}

/// The default route: every call to `cluster_name`.
pub(super) fn default_route(cluster_name: &str) -> Route {
    Route {
        r#match: Some(RouteMatch {
            path_specifier: Some(PathSpecifier::Prefix(String::new())),
            ..Default::default()
        }),
        action: Some(Action::Route(RouteAction {
            cluster_specifier: Some(ClusterSpecifier::Cluster(cluster_name.to_owned())),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn route(entry: &RouteEntry, naming: &Naming) -> Route {
    Route {
        name: entry.origin.clone(),
        r#match: Some(route_match(&entry.matcher)),
        action: Some(Action::Route(RouteAction {
            cluster_specifier: Some(clusters(&entry.backends, naming)),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn route_match(matcher: &CallMatch) -> RouteMatch {
    RouteMatch {
        path_specifier: Some(path(&matcher.method)),
        headers: matcher
            .headers
            .iter()
            .map(|header| HeaderMatcher {
                name: header.name.clone(),
                header_match_specifier: Some(HeaderMatchSpecifier::StringMatch(StringMatcher {
                    match_pattern: Some(if header.regex {
                        MatchPattern::SafeRegex(regex(&header.value))
                    } else {
                        MatchPattern::Exact(header.value.clone())
                    }),
                    ignore_case: false,
                })),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

fn path(method: &MethodMatch) -> PathSpecifier {
    let service = method.service.as_deref();
    let name = method.method.as_deref();
    if method.regex {
        if service.is_none() && name.is_none() {
            return PathSpecifier::Prefix(String::new());
        }
        let part = |p: Option<&str>| p.map_or_else(|| SEGMENT.to_owned(), |p| format!("(?:{p})"));
        return PathSpecifier::SafeRegex(regex(&format!("/{}/{}", part(service), part(name))));
    }
    match (service, name) {
        (Some(service), Some(name)) => PathSpecifier::Path(format!("/{service}/{name}")),
        (Some(service), None) => PathSpecifier::Prefix(format!("/{service}/")),
        // Exact names are identifiers (checked when resolved): nothing to
        // escape.
        (None, Some(name)) => PathSpecifier::SafeRegex(regex(&format!("/{SEGMENT}/{name}"))),
        (None, None) => PathSpecifier::Prefix(String::new()),
    }
}

fn regex(pattern: &str) -> RegexMatcher {
    RegexMatcher {
        regex: pattern.to_owned(),
        ..Default::default()
    }
}

fn clusters(backends: &[Backend], naming: &Naming) -> ClusterSpecifier {
    if let [only] = backends {
        return ClusterSpecifier::Cluster(naming.cluster_name(&only.service, only.port));
    }
    ClusterSpecifier::WeightedClusters(WeightedCluster {
        clusters: backends
            .iter()
            .map(|backend| ClusterWeight {
                name: naming.cluster_name(&backend.service, backend.port),
                weight: Some(UInt32Value {
                    value: backend.weight,
                }),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    })
}
