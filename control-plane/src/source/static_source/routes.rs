//! The static file's `routes:` section: the same as a Gateway API
//! `GRPCRoute` attached to Services, in the file's own style.
//!
//! ```yaml
//! routes:
//!   - name: greeter-canary
//!     parents: [greeter]            # "svc" (every port) or "svc:port"
//!     rules:
//!       - matches:                  # optional: none matches every call
//!           - method: {service: greet.Greeter, method: SayHello}
//!             headers:
//!               - {name: x-canary, value: "yes"}          # type: Exact (default)
//!               - {name: x-user, value: "^a.*", type: RegularExpression}
//!         backends:
//!           - {service: greeter-v2, port: 80}             # weight 1 by default
//!       - backends:
//!           - {service: greeter-v1, port: 80, weight: 90}
//!           - {service: greeter-v2, port: 80, weight: 10}
//! ```
//!
//! A method match may give `service`, `method` or both, and `type:
//! RegularExpression` for RE2 patterns. Routes are checked against the
//! services when applied (see [`crate::routes`]): one that cannot be
//! honoured is refused whole and shown by `control-plane status`.

use serde::Deserialize;

use crate::routes::{
    Backend, CallMatch, HeaderMatch, MethodMatch, RouteParent, RouteRule, TrafficRoute,
};

/// One route in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RouteDoc {
    name: String,
    parents: Vec<String>,
    rules: Vec<RuleDoc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDoc {
    #[serde(default)]
    matches: Vec<MatchDoc>,
    backends: Vec<BackendDoc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MatchDoc {
    #[serde(default)]
    method: Option<MethodDoc>,
    #[serde(default)]
    headers: Vec<HeaderDoc>,
}

/// `Exact` (the default) or `RegularExpression`, as in GRPCRoute.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
enum MatchType {
    #[default]
    Exact,
    RegularExpression,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MethodDoc {
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default, rename = "type")]
    kind: MatchType,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderDoc {
    name: String,
    value: String,
    #[serde(default, rename = "type")]
    kind: MatchType,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BackendDoc {
    service: String,
    port: u16,
    #[serde(default = "default_weight")]
    weight: u32,
}

fn default_weight() -> u32 {
    1
}

/// Errors in the `routes:` section that parsing alone finds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteDocError {
    /// Two routes share a name.
    #[error("route {0:?} is defined twice")]
    Duplicate(String),
    /// A parent is neither `svc` nor `svc:port`.
    #[error("route {route:?}: parent {parent:?} is neither <service> nor <service>:<port>")]
    Parent {
        /// The route.
        route: String,
        /// The parent as written.
        parent: String,
    },
}

/// The file's routes in the model; `order` follows the file.
pub(super) fn convert(docs: Vec<RouteDoc>) -> Result<Vec<TrafficRoute>, RouteDocError> {
    let mut routes: Vec<TrafficRoute> = Vec::with_capacity(docs.len());
    for (order, doc) in docs.into_iter().enumerate() {
        if routes.iter().any(|r| r.name == doc.name) {
            return Err(RouteDocError::Duplicate(doc.name));
        }
        let parents = doc
            .parents
            .iter()
            .map(|text| {
                parent(text).ok_or_else(|| RouteDocError::Parent {
                    route: doc.name.clone(),
                    parent: text.clone(),
                })
            })
            .collect::<Result<_, _>>()?;
        routes.push(TrafficRoute {
            name: doc.name,
            order: order as u64,
            parents,
            rules: doc.rules.into_iter().map(rule).collect(),
            problems: Vec::new(),
        });
    }
    Ok(routes)
}

fn parent(text: &str) -> Option<RouteParent> {
    let (service, port) = match text.split_once(':') {
        Some((service, port)) => (service, Some(port.parse::<u16>().ok().filter(|p| *p != 0)?)),
        None => (text, None),
    };
    (!service.is_empty()).then(|| RouteParent {
        service: service.to_owned(),
        port,
    })
}

fn rule(doc: RuleDoc) -> RouteRule {
    RouteRule {
        matches: doc
            .matches
            .into_iter()
            .map(|m| CallMatch {
                method: m
                    .method
                    .map_or_else(MethodMatch::any, |method| MethodMatch {
                        service: method.service.filter(|s| !s.is_empty()),
                        method: method.method.filter(|s| !s.is_empty()),
                        regex: method.kind == MatchType::RegularExpression,
                    }),
                headers: m
                    .headers
                    .into_iter()
                    .map(|h| HeaderMatch {
                        name: h.name.to_ascii_lowercase(),
                        value: h.value,
                        regex: h.kind == MatchType::RegularExpression,
                    })
                    .collect(),
            })
            .collect(),
        backends: doc
            .backends
            .into_iter()
            .map(|b| Backend {
                service: b.service,
                port: b.port,
                weight: b.weight,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::config::{ConfigError, parse_file};
    use crate::model::LbPolicy;
    use crate::routes::{Backend, MethodMatch, RouteParent};

    /// The first ```yaml block of `text` after the line containing
    /// `marker`, with `prefix` stripped from each line.
    fn yaml_block(text: &str, marker: &str, prefix: &str) -> String {
        text.lines()
            .skip_while(|line| !line.contains(marker))
            .skip_while(|line| !line.contains("```yaml"))
            .skip(1)
            .take_while(|line| !line.contains("```"))
            .map(|line| {
                let line = line.trim_start_matches(prefix);
                format!("{}\n", line.strip_prefix(' ').unwrap_or(line))
            })
            .collect()
    }

    #[test]
    fn the_module_example_parses() {
        let yaml = yaml_block(include_str!("routes.rs"), "routes:` section", "//!");
        let content = parse_file(&format!("services: []\n{yaml}")).unwrap();
        let route = &content.routes[0];
        assert_eq!(route.name, "greeter-canary");
        assert_eq!(
            route.parents,
            vec![RouteParent {
                service: "greeter".into(),
                port: None
            }]
        );
        let first = &route.rules[0];
        assert_eq!(
            first.matches[0].method,
            MethodMatch::exact(Some("greet.Greeter"), Some("SayHello"))
        );
        assert!(first.matches[0].headers[1].regex);
        assert_eq!(first.backends[0].weight, 1, "weight defaults to 1");
        assert!(route.rules[1].matches.is_empty());
    }

    #[test]
    fn the_traffic_guide_example_parses() {
        let guide = include_str!("../../../../docs/traffic.md");
        let yaml = yaml_block(guide, "## The static file's `routes:`", "");
        let content = parse_file(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        assert_eq!(content.services.len(), 3);
        assert_eq!(content.services[1].policy.lb, LbPolicy::LeastRequest);
        assert!(content.services[2].policy.prefer_close);
        let split = &content.routes[0].rules[1].backends;
        assert_eq!(
            split,
            &vec![
                Backend {
                    service: "greeter-v1".into(),
                    port: 80,
                    weight: 90
                },
                Backend {
                    service: "greeter-v2".into(),
                    port: 80,
                    weight: 10
                },
            ]
        );
    }

    #[test]
    fn mistakes_are_named() {
        for (text, expected) in [
            (
                "services: []\nroutes: [{name: r, parents: [a], rules: []}, {name: r, parents: [a], rules: []}]",
                "route \"r\" is defined twice",
            ),
            (
                "services: []\nroutes: [{name: r, parents: [\"a:x\"], rules: []}]",
                "parent \"a:x\"",
            ),
            (
                "services: []\nroutes: [{name: r, parents: [a], rules: [{backends: [{service: b}]}]}]",
                "missing field `port`",
            ),
            (
                "services: []\nroutes: [{name: r, parents: [a], rules: [{backends: [], filters: []}]}]",
                "unknown field `filters`",
            ),
            (
                "services: [{name: a, lb_policy: fastest}]",
                "lb_policy \"fastest\"",
            ),
            (
                "services: [{name: a, traffic_distribution: Anywhere}]",
                "traffic_distribution \"Anywhere\"",
            ),
        ] {
            let error = parse_file(text).expect_err(text);
            assert!(
                error.to_string().contains(expected),
                "{text}: {error} should say {expected}"
            );
            if expected.contains("defined twice") {
                assert!(matches!(error, ConfigError::Route(_)));
            }
        }
    }
}
