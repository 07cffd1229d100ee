//! Which routes are in force, and the route table of each Service port
//! they attach to. Pure: routes and a view of the Services in, tables and
//! statuses out.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::{
    Backend, CallMatch, HeaderMatch, MAX_NAME_LEN, MethodMatch, RouteEntry, RouteState,
    RouteStatus, RouteTable, TrafficRoute,
};
use crate::model::Service;

/// What [`resolve()`] decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    /// The route table of every Service port with a route in force, by
    /// service and port.
    pub tables: BTreeMap<String, Vec<(u16, Arc<RouteTable>)>>,
    /// One status per route, in name order.
    pub statuses: Vec<RouteStatus>,
}

/// Decides which of `routes` are in force against the Services `service`
/// finds, and builds the route table of each Service port they attach to.
pub fn resolve<'s>(
    routes: &[TrafficRoute],
    service: impl Fn(&str) -> Option<&'s Service>,
) -> Resolution {
    let mut ordered: Vec<&TrafficRoute> = routes.iter().collect();
    ordered.sort_by(|a, b| (a.order, &a.name).cmp(&(b.order, &b.name)));

    // (service, port) → entries with their precedence key, in route order.
    type Keyed = (Reverse<(usize, usize, usize)>, RouteEntry);
    let mut entries: BTreeMap<(String, u16), Vec<Keyed>> = BTreeMap::new();
    let mut statuses = Vec::with_capacity(routes.len());
    for route in ordered {
        let mut status = RouteStatus {
            name: route.name.clone(),
            state: RouteState::Accepted,
            attached: Vec::new(),
            missing_parents: Vec::new(),
            rules: route.rules.len(),
        };
        if let Err(reason) = check(route).and_then(|()| check_backends(route, &service)) {
            status.state = RouteState::Refused(reason);
            statuses.push(status);
            continue;
        }
        let mut attached = BTreeSet::new();
        for parent in &route.parents {
            let label = match parent.port {
                Some(port) => format!("{}:{port}", parent.service),
                None => parent.service.clone(),
            };
            let Some(svc) = service(&parent.service) else {
                status
                    .missing_parents
                    .push(format!("{label} (no Service {})", parent.service));
                continue;
            };
            match parent.port {
                Some(port) if svc.ports.iter().any(|p| p.port == port) => {
                    attached.insert((svc.name.clone(), port));
                }
                Some(port) => status
                    .missing_parents
                    .push(format!("{label} (Service {} has no port {port})", svc.name)),
                None => attached.extend(svc.ports.iter().map(|p| (svc.name.clone(), p.port))),
            }
        }
        if attached.is_empty() {
            status.state = RouteState::NotAttached(if route.parents.is_empty() {
                "it names no parent Service".to_owned()
            } else {
                format!("no parent exists: {}", status.missing_parents.join(", "))
            });
            statuses.push(status);
            continue;
        }
        for (i, rule) in route.rules.iter().enumerate() {
            let backends: Vec<Backend> = rule
                .backends
                .iter()
                .filter(|b| b.weight > 0)
                .cloned()
                .collect();
            let matches = if rule.matches.is_empty() {
                vec![CallMatch::default()]
            } else {
                rule.matches.clone()
            };
            for (j, matcher) in matches.into_iter().enumerate() {
                let key = Reverse((
                    matcher.method.service.as_deref().map_or(0, str::len),
                    matcher.method.method.as_deref().map_or(0, str::len),
                    matcher.headers.len(),
                ));
                let entry = RouteEntry {
                    origin: format!("{}/rule-{i}/match-{j}", route.name),
                    matcher,
                    backends: backends.clone(),
                };
                for parent in &attached {
                    entries
                        .entry(parent.clone())
                        .or_default()
                        .push((key, entry.clone()));
                }
            }
        }
        status.attached = attached.into_iter().collect();
        statuses.push(status);
    }
    statuses.sort_by(|a, b| a.name.cmp(&b.name));

    let mut tables: BTreeMap<String, Vec<(u16, Arc<RouteTable>)>> = BTreeMap::new();
    for ((svc, port), mut keyed) in entries {
        // Stable: ties keep route, rule and match order.
        keyed.sort_by_key(|(key, _)| *key);
        let table = RouteTable {
            entries: keyed.into_iter().map(|(_, entry)| entry).collect(),
        };
        tables.entry(svc).or_default().push((port, Arc::new(table)));
    }
    Resolution { tables, statuses }
}

/// The checks that need no Services: the route as written can be honoured.
fn check(route: &TrafficRoute) -> Result<(), String> {
    if !route.problems.is_empty() {
        return Err(route.problems.join("; "));
    }
    if route.rules.is_empty() {
        return Err("it has no rules".to_owned());
    }
    for (i, rule) in route.rules.iter().enumerate() {
        let mut total: u32 = 0;
        for backend in &rule.backends {
            total = total.checked_add(backend.weight).ok_or_else(|| {
                format!(
                    "rule {i}: the backends' weights add up to more than {}",
                    u32::MAX
                )
            })?;
        }
        if total == 0 {
            return Err(format!(
                "rule {i} has no backend with a weight above 0 (calls matching it would fail; \
                 this control plane does not express that)"
            ));
        }
        for matcher in &rule.matches {
            check_method(&matcher.method).map_err(|e| format!("rule {i}: {e}"))?;
            for header in &matcher.headers {
                check_header(header).map_err(|e| format!("rule {i}: {e}"))?;
            }
        }
    }
    Ok(())
}

fn check_backends<'s>(
    route: &TrafficRoute,
    service: &impl Fn(&str) -> Option<&'s Service>,
) -> Result<(), String> {
    for (i, rule) in route.rules.iter().enumerate() {
        for backend in &rule.backends {
            let Some(svc) = service(&backend.service) else {
                return Err(format!(
                    "rule {i}: backend Service {} does not exist",
                    backend.service
                ));
            };
            if !svc.ports.iter().any(|p| p.port == backend.port) {
                return Err(format!(
                    "rule {i}: backend Service {} has no port {}",
                    backend.service, backend.port
                ));
            }
        }
    }
    Ok(())
}

fn check_method(method: &MethodMatch) -> Result<(), String> {
    for (what, value) in [("service", &method.service), ("method", &method.method)] {
        let Some(value) = value else { continue };
        if value.is_empty() || value.len() > MAX_NAME_LEN {
            return Err(format!(
                "the {what} to match must have 1 to {MAX_NAME_LEN} characters"
            ));
        }
        if method.regex {
            check_regex(value).map_err(|e| format!("{what} pattern {value:?}: {e}"))?;
        } else {
            let valid = match what {
                "service" => value.split('.').all(is_identifier),
                _ => is_identifier(value),
            };
            if !valid {
                return Err(format!(
                    "{what} {value:?} is not a gRPC {what} name (letters, digits and '_'{})",
                    if what == "service" {
                        ", dot-separated"
                    } else {
                        ""
                    }
                ));
            }
        }
    }
    Ok(())
}

fn check_header(header: &HeaderMatch) -> Result<(), String> {
    let name = &header.name;
    let token =
        |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.!#$%&'*+^`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        return Err(format!(
            "header name {name:?} is not a lowercase HTTP header name"
        ));
    }
    if name.ends_with("-bin") || name.starts_with("grpc-") {
        return Err(format!(
            "header {name:?} cannot be matched: gRPC clients never match binary (-bin) or grpc- \
             headers"
        ));
    }
    if header.regex {
        check_regex(&header.value).map_err(|e| format!("header {name} pattern: {e}"))?;
    }
    Ok(())
}

/// A gRPC name part: `[A-Za-z_][A-Za-z0-9_]*`.
fn is_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `pattern` parses as a regular expression of the RE2 family
/// (what gRPC's `safe_regex` takes): no look-around, no back-references.
fn check_regex(pattern: &str) -> Result<(), String> {
    regex_syntax::Parser::new()
        .parse(pattern)
        .map(drop)
        .map_err(|error| {
            error
                .to_string()
                .lines()
                .last()
                .unwrap_or_default()
                .trim()
                .to_owned()
        })
}
