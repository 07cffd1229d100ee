//! RouteConfigurations → the client's route tables ([`Routes`]), with
//! gRPC's rules (A28), and virtual host matching the way gRPC does it.
//!
//! What is refused (the whole RouteConfiguration is NACKed with the
//! reason): a route without a match or a path specifier, an invalid regular
//! expression, a header matcher without a condition or with a custom one, a
//! fraction with an unknown denominator, a route without an action, a route
//! action without a cluster, weighted clusters whose weights add up to 0 or
//! beyond 2^32 - 1, cluster specifier plugins.
//!
//! What is skipped, as gRPC skips it: routes with query parameter matchers
//! (a gRPC call has none), routes whose cluster comes from a header
//! (`cluster_header`), routes with a path specifier other than `prefix`,
//! `path` and `safe_regex`; weighted clusters of weight 0. What is ignored:
//! the `grpc` and `tls_context` matchers, a fraction's runtime key, the
//! deprecated `total_weight`, and the rest of the route action (timeouts,
//! retry and hash policies).
//!
//! A route that does not forward (a redirect, a direct response, a filter
//! action, a non-forwarding action) is kept: calls it matches fail, as in
//! gRPC.

use std::collections::HashMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::{
    HeaderMatcher as XdsHeaderMatcher, Route as XdsRoute, VirtualHost,
};
use envoy_types::pb::envoy::r#type::matcher::v3::StringMatcher;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::envoy::r#type::v3::fractional_percent::DenominatorType;

use crate::routing::{
    HeaderMatch, HeaderMatcher, PathMatcher, Pattern, Route, RouteAction, RouteMatcher, Routes,
    StringMatch, Weighted,
};

/// A validated RouteConfiguration: its virtual hosts with their routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RouteTable {
    vhosts: Vec<VirtualHostRoutes>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct VirtualHostRoutes {
    domains: Vec<String>,
    routes: Arc<Routes>,
}

/// Validates `vhosts`; the error says which route breaks which rule.
pub(crate) fn route_table(vhosts: Vec<VirtualHost>) -> Result<RouteTable, String> {
    let vhosts = vhosts
        .into_iter()
        .map(|vhost| {
            let routes = routes(&vhost)
                .map_err(|reason| format!("virtual host {:?}: {reason}", vhost.name))?;
            Ok(VirtualHostRoutes {
                domains: vhost.domains,
                routes: Arc::new(routes),
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(RouteTable { vhosts })
}

fn routes(vhost: &VirtualHost) -> Result<Routes, String> {
    let mut clusters = ClusterNames::default();
    let mut routes = Vec::with_capacity(vhost.routes.len());
    for route in &vhost.routes {
        let converted = convert(route, &mut clusters).map_err(|reason| {
            if route.name.is_empty() {
                format!("a route: {reason}")
            } else {
                format!("route {:?}: {reason}", route.name)
            }
        })?;
        if let Some(converted) = converted {
            routes.push(converted);
        }
    }
    Ok(Routes::new(clusters.names, routes))
}

/// Cluster names numbered in the order routes first name them.
#[derive(Default)]
struct ClusterNames {
    names: Vec<String>,
    index: HashMap<String, usize>,
}

impl ClusterNames {
    fn index(&mut self, name: &str) -> usize {
        if let Some(index) = self.index.get(name) {
            return *index;
        }
        self.names.push(name.to_owned());
        self.index.insert(name.to_owned(), self.names.len() - 1);
        self.names.len() - 1
    }
}

/// One route; `None` when gRPC skips it.
fn convert(route: &XdsRoute, clusters: &mut ClusterNames) -> Result<Option<Route>, String> {
    let Some(matcher) = &route.r#match else {
        return Err("has no match".into());
    };
    if !matcher.query_parameters.is_empty() {
        return Ok(None);
    }
    let ignore_case = matcher.case_sensitive.is_some_and(|c| !c.value);
    let path = match &matcher.path_specifier {
        Some(PathSpecifier::Prefix(prefix)) => PathMatcher::Prefix(prefix.clone()),
        Some(PathSpecifier::Path(path)) => PathMatcher::Exact(path.clone()),
        Some(PathSpecifier::SafeRegex(regex)) => {
            PathMatcher::Regex(Pattern::new(&regex.regex, ignore_case)?)
        }
        Some(_) => return Ok(None),
        None => return Err("its match has no path specifier".into()),
    };
    let headers = matcher
        .headers
        .iter()
        .map(header_matcher)
        .collect::<Result<Vec<_>, String>>()?;
    let per_million = match &matcher.runtime_fraction {
        None => None,
        Some(fraction) => {
            let percent = fraction.default_value.unwrap_or_default();
            let scale = match DenominatorType::try_from(percent.denominator) {
                Ok(DenominatorType::Hundred) => 10_000,
                Ok(DenominatorType::TenThousand) => 100,
                Ok(DenominatorType::Million) => 1,
                Err(_) => {
                    return Err(format!(
                        "runtime_fraction has an unknown denominator {}",
                        percent.denominator
                    ));
                }
            };
            Some(percent.numerator.saturating_mul(scale))
        }
    };
    let action = match &route.action {
        Some(Action::Route(action)) => match &action.cluster_specifier {
            Some(ClusterSpecifier::Cluster(name)) if !name.is_empty() => {
                RouteAction::Cluster(clusters.index(name))
            }
            Some(ClusterSpecifier::Cluster(_)) => return Err("names an empty cluster".into()),
            Some(ClusterSpecifier::WeightedClusters(weighted)) => {
                let mut total = 0u64;
                let mut choices = Vec::with_capacity(weighted.clusters.len());
                for cluster in &weighted.clusters {
                    let weight = cluster.weight.map_or(0, |w| w.value);
                    if weight == 0 {
                        continue;
                    }
                    if cluster.name.is_empty() {
                        return Err("a weighted cluster has no name".into());
                    }
                    total += u64::from(weight);
                    choices.push((clusters.index(&cluster.name), weight));
                }
                if total == 0 {
                    return Err("its weighted clusters add up to weight 0".into());
                }
                if total > u64::from(u32::MAX) {
                    return Err(format!(
                        "its weighted clusters add up to {total}, more than 2^32 - 1"
                    ));
                }
                RouteAction::Weighted(Weighted::new(choices))
            }
            Some(ClusterSpecifier::ClusterHeader(_)) => return Ok(None),
            Some(
                ClusterSpecifier::ClusterSpecifierPlugin(_)
                | ClusterSpecifier::InlineClusterSpecifierPlugin(_),
            ) => return Err("cluster specifier plugins are not supported".into()),
            None => return Err("its route action names no cluster".into()),
        },
        Some(other) => {
            let kind = match other {
                Action::Redirect(_) => "a redirect",
                Action::DirectResponse(_) => "a direct response",
                Action::FilterAction(_) => "a filter action",
                Action::NonForwardingAction(_) => "a non-forwarding action",
                Action::Route(_) => unreachable!("handled above"),
            };
            RouteAction::Unsupported(format!("its action is {kind}, not a route to a cluster"))
        }
        None => return Err("has no action".into()),
    };
    Ok(Some(Route {
        name: route.name.clone(),
        matcher: RouteMatcher {
            path,
            ignore_case,
            headers,
            per_million,
        },
        action,
    }))
}

#[allow(deprecated)] // exact_match and its siblings: still sent, still honoured.
fn header_matcher(header: &XdsHeaderMatcher) -> Result<HeaderMatcher, String> {
    let plain = |value: &String| StringMatch::Exact {
        value: value.clone(),
        ignore_case: false,
    };
    let kind = match &header.header_match_specifier {
        Some(HeaderMatchSpecifier::ExactMatch(value)) => HeaderMatch::Str(plain(value)),
        Some(HeaderMatchSpecifier::PrefixMatch(value)) => HeaderMatch::Str(StringMatch::Prefix {
            value: value.clone(),
            ignore_case: false,
        }),
        Some(HeaderMatchSpecifier::SuffixMatch(value)) => HeaderMatch::Str(StringMatch::Suffix {
            value: value.clone(),
            ignore_case: false,
        }),
        Some(HeaderMatchSpecifier::ContainsMatch(value)) => {
            HeaderMatch::Str(StringMatch::Contains {
                value: value.clone(),
                ignore_case: false,
            })
        }
        Some(HeaderMatchSpecifier::SafeRegexMatch(regex)) => {
            HeaderMatch::Str(StringMatch::Regex(Pattern::new(&regex.regex, false)?))
        }
        Some(HeaderMatchSpecifier::RangeMatch(range)) => HeaderMatch::Range {
            start: range.start,
            end: range.end,
        },
        Some(HeaderMatchSpecifier::PresentMatch(present)) => HeaderMatch::Present(*present),
        Some(HeaderMatchSpecifier::StringMatch(matcher)) => {
            HeaderMatch::Str(string_match(matcher)?)
        }
        None => {
            return Err(format!("header matcher {:?} has no condition", header.name));
        }
    };
    Ok(HeaderMatcher {
        name: header.name.to_ascii_lowercase(),
        kind,
        invert: header.invert_match,
    })
}

/// An Envoy `StringMatcher` (`ignore_case` does not apply to regular
/// expressions, as in Envoy).
pub(crate) fn string_match(matcher: &StringMatcher) -> Result<StringMatch, String> {
    let ignore_case = matcher.ignore_case;
    Ok(match &matcher.match_pattern {
        Some(MatchPattern::Exact(value)) => StringMatch::Exact {
            value: value.clone(),
            ignore_case,
        },
        Some(MatchPattern::Prefix(value)) => StringMatch::Prefix {
            value: value.clone(),
            ignore_case,
        },
        Some(MatchPattern::Suffix(value)) => StringMatch::Suffix {
            value: value.clone(),
            ignore_case,
        },
        Some(MatchPattern::Contains(value)) => StringMatch::Contains {
            value: value.clone(),
            ignore_case,
        },
        Some(MatchPattern::SafeRegex(regex)) => {
            StringMatch::Regex(Pattern::new(&regex.regex, false)?)
        }
        Some(MatchPattern::Custom(custom)) => {
            return Err(format!(
                "custom string matcher {:?} is not supported",
                custom.name
            ));
        }
        None => return Err("a string matcher has no pattern".into()),
    })
}

impl RouteTable {
    /// The routes for calls to `host`, choosing the virtual host like gRPC
    /// (exact match, then the longest `*suffix`, then the longest `prefix*`,
    /// then `*`).
    pub(crate) fn routes_for(&self, host: &str) -> Result<&Arc<Routes>, String> {
        let host = host.to_ascii_lowercase();
        let mut best: Option<(&VirtualHostRoutes, MatchType, usize)> = None;
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
            Some((vhost, _, _)) => Ok(&vhost.routes),
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
