//! RouteConfigurations, reduced to what picking the target's cluster
//! needs, and virtual host matching the way gRPC does it.

use envoy_types::pb::envoy::config::route::v3::VirtualHost;
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;

/// A validated RouteConfiguration, reduced to what picking a cluster needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RouteTable {
    vhosts: Vec<VirtualHostRoute>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct VirtualHostRoute {
    name: String,
    domains: Vec<String>,
    /// The cluster of the first route matching every method, or why there
    /// is none this client can use.
    cluster: Result<String, String>,
}

pub(crate) fn route_table(vhosts: Vec<VirtualHost>) -> RouteTable {
    RouteTable {
        vhosts: vhosts
            .into_iter()
            .map(|vhost| VirtualHostRoute {
                cluster: default_cluster(&vhost),
                name: vhost.name,
                domains: vhost.domains,
            })
            .collect(),
    }
}

/// The cluster of the first route that matches every method.
fn default_cluster(vhost: &VirtualHost) -> Result<String, String> {
    let catch_all = vhost.routes.iter().find(|route| {
        route.r#match.as_ref().is_some_and(|m| {
            matches!(&m.path_specifier, Some(PathSpecifier::Prefix(p)) if p.is_empty() || p == "/")
                && m.headers.is_empty()
                && m.query_parameters.is_empty()
                && m.runtime_fraction.is_none()
        })
    });
    let Some(route) = catch_all else {
        return Err(format!(
            "virtual host {:?} has no route matching every method (prefix \"\" or \"/\")",
            vhost.name
        ));
    };
    match &route.action {
        Some(Action::Route(action)) => match &action.cluster_specifier {
            Some(ClusterSpecifier::Cluster(cluster)) if !cluster.is_empty() => Ok(cluster.clone()),
            Some(ClusterSpecifier::WeightedClusters(_)) => Err(format!(
                "route {:?} of virtual host {:?} splits over weighted clusters, which this client \
                 does not support",
                route.name, vhost.name
            )),
            _ => Err(format!(
                "route {:?} of virtual host {:?} names no cluster",
                route.name, vhost.name
            )),
        },
        _ => Err(format!(
            "route {:?} of virtual host {:?} does not forward to a cluster",
            route.name, vhost.name
        )),
    }
}

impl RouteTable {
    /// The cluster for calls to `host`, choosing the virtual host like gRPC
    /// (exact match, then the longest `*suffix`, then the longest `prefix*`,
    /// then `*`).
    pub(crate) fn cluster_for(&self, host: &str) -> Result<&str, String> {
        let host = host.to_ascii_lowercase();
        let mut best: Option<(&VirtualHostRoute, MatchType, usize)> = None;
        for vhost in &self.vhosts {
            for domain in &vhost.domains {
                let Some(kind) = domain_match(domain, &host) else {
                    continue;
                };
                let better = match best {
                    None => true,
                    Some((_, best_kind, best_len)) => {
                        kind < best_kind || (kind == best_kind && domain.len() > best_len)
                    }
                };
                if better {
                    best = Some((vhost, kind, domain.len()));
                }
            }
        }
        match best {
            Some((vhost, _, _)) => vhost.cluster.as_deref().map_err(Clone::clone),
            None => Err(format!("no virtual host matches {host:?}")),
        }
    }
}

/// How a virtual host domain matched; lower is more specific.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum MatchType {
    Exact,
    Suffix,
    Prefix,
    Universal,
}

fn domain_match(domain: &str, host: &str) -> Option<MatchType> {
    let domain = domain.to_ascii_lowercase();
    if domain == "*" {
        return Some(MatchType::Universal);
    }
    match domain.matches('*').count() {
        0 => (domain == host).then_some(MatchType::Exact),
        1 => {
            if let Some(suffix) = domain.strip_prefix('*') {
                host.ends_with(suffix).then_some(MatchType::Suffix)
            } else if let Some(prefix) = domain.strip_suffix('*') {
                host.starts_with(prefix).then_some(MatchType::Prefix)
            } else {
                None
            }
        }
        _ => None,
    }
}
