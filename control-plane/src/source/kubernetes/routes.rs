//! Gateway API `GRPCRoute`s (`gateway.networking.k8s.io/v1`) as
//! [`TrafficRoute`]s. Pure.
//!
//! The route is read with a typed struct of our own that keeps every field
//! it does not know: anything this control plane cannot honour (a filter,
//! a backend of another kind or in another namespace, session persistence,
//! a field from a newer API version) becomes a problem, and a route with a
//! problem is refused whole rather than applied in part.
//!
//! Only parents of kind `Service` (group `""`) in the control plane's
//! namespace are this control plane's (GAMMA); a route with none (one
//! attached only to Gateways, say) is left alone. `hostnames` is ignored, as
//! GAMMA asks of meshes.

use std::collections::BTreeMap;

use kube::api::DynamicObject;
use serde::Deserialize;
use serde_json::Value;

use crate::routes::{
    Backend, CallMatch, HeaderMatch, MethodMatch, RouteParent, RouteRule, TrafficRoute,
};

/// The API group of GRPCRoute.
pub const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";
/// The served version.
pub const GATEWAY_VERSION: &str = "v1";
/// The kind.
pub const GRPC_ROUTE_KIND: &str = "GRPCRoute";
/// The plural in URLs (and in RBAC rules).
pub const GRPC_ROUTE_PLURAL: &str = "grpcroutes";

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Spec {
    #[serde(default)]
    parent_refs: Vec<ParentRef>,
    #[serde(default)]
    rules: Vec<Rule>,
    #[serde(flatten)]
    other: BTreeMap<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ParentRef {
    group: Option<String>,
    kind: Option<String>,
    namespace: Option<String>,
    name: String,
    section_name: Option<String>,
    port: Option<i32>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    /// `None`: the API's default, one match of every call.
    matches: Option<Vec<Match>>,
    #[serde(default)]
    filters: Vec<Value>,
    #[serde(default)]
    backend_refs: Vec<BackendRef>,
    #[serde(flatten)]
    other: BTreeMap<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Match {
    method: Option<Method>,
    #[serde(default)]
    headers: Vec<Header>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Method {
    #[serde(rename = "type")]
    kind: Option<String>,
    service: Option<String>,
    method: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    #[serde(rename = "type")]
    kind: Option<String>,
    name: String,
    value: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BackendRef {
    group: Option<String>,
    kind: Option<String>,
    namespace: Option<String>,
    name: String,
    port: Option<i32>,
    weight: Option<i32>,
    #[serde(default)]
    filters: Vec<Value>,
}

/// Fields of a spec that are fine to ignore.
const IGNORED_SPEC_FIELDS: [&str; 2] = ["hostnames", "useDefaultGateways"];
/// Fields of a rule that are fine to ignore (`name` only names the rule).
const IGNORED_RULE_FIELDS: [&str; 1] = ["name"];

/// The route `object` (a GRPCRoute in `namespace`) as this control plane
/// sees it: `Ok(None)` when none of its parents is a Service of the
/// namespace; `Err` with the reason when it cannot be read at all.
pub(crate) fn route_info(
    object: &DynamicObject,
    namespace: &str,
) -> Result<Option<TrafficRoute>, String> {
    let name = object.metadata.name.clone().unwrap_or_default();
    let spec: Spec = match object.data.get("spec") {
        Some(spec) => serde_json::from_value(spec.clone())
            .map_err(|error| format!("GRPCRoute {name} does not fit the schema: {error}"))?,
        None => Spec::default(),
    };
    let mut problems = Vec::new();
    let mut parents = Vec::new();
    for parent in &spec.parent_refs {
        let group = parent.group.as_deref().unwrap_or(GATEWAY_GROUP);
        let kind = parent.kind.as_deref().unwrap_or("Gateway");
        let ours = group.is_empty()
            && kind == "Service"
            && parent.namespace.as_deref().is_none_or(|ns| ns == namespace);
        if !ours {
            continue;
        }
        if let Some(section) = &parent.section_name {
            problems.push(format!(
                "parentRef {} names sectionName {section:?}; name the Service port with `port`",
                parent.name
            ));
        }
        let port = match parent.port {
            None => None,
            Some(port) => match u16::try_from(port).ok().filter(|p| *p != 0) {
                Some(port) => Some(port),
                None => {
                    problems.push(format!("parentRef {} has port {port}", parent.name));
                    None
                }
            },
        };
        parents.push(RouteParent {
            service: parent.name.clone(),
            port,
        });
    }
    if parents.is_empty() {
        return Ok(None);
    }
    for field in spec.other.keys() {
        if !IGNORED_SPEC_FIELDS.contains(&field.as_str()) {
            problems.push(format!("spec.{field} is not supported"));
        }
    }
    let rules = spec
        .rules
        .into_iter()
        .enumerate()
        .map(|(i, rule)| convert_rule(i, rule, namespace, &mut problems))
        .collect();
    let order = object
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(0, |time| u64::try_from(time.0.as_second()).unwrap_or(0));
    Ok(Some(TrafficRoute {
        name,
        order,
        parents,
        rules,
        problems,
    }))
}

fn convert_rule(i: usize, rule: Rule, namespace: &str, problems: &mut Vec<String>) -> RouteRule {
    for field in rule.other.keys() {
        if !IGNORED_RULE_FIELDS.contains(&field.as_str()) {
            problems.push(format!("rule {i}: {field} is not supported"));
        }
    }
    if !rule.filters.is_empty() {
        problems.push(format!(
            "rule {i}: filters are not supported ({})",
            filter_types(&rule.filters)
        ));
    }
    let matches = match rule.matches {
        None => Vec::new(),
        Some(matches) => matches
            .into_iter()
            .map(|m| convert_match(i, m, problems))
            .collect(),
    };
    let backends = rule
        .backend_refs
        .into_iter()
        .filter_map(|backend| convert_backend(i, backend, namespace, problems))
        .collect();
    RouteRule { matches, backends }
}

fn match_type(i: usize, kind: Option<&str>, what: &str, problems: &mut Vec<String>) -> bool {
    match kind.unwrap_or("Exact") {
        "Exact" => false,
        "RegularExpression" => true,
        other => {
            problems.push(format!(
                "rule {i}: {what} match type {other:?} is not supported"
            ));
            false
        }
    }
}

fn convert_match(i: usize, doc: Match, problems: &mut Vec<String>) -> CallMatch {
    let method = match doc.method {
        None => MethodMatch::any(),
        Some(method) => MethodMatch {
            regex: match_type(i, method.kind.as_deref(), "method", problems),
            service: method.service.filter(|s| !s.is_empty()),
            method: method.method.filter(|s| !s.is_empty()),
        },
    };
    let headers = doc
        .headers
        .into_iter()
        .map(|header| HeaderMatch {
            regex: match_type(i, header.kind.as_deref(), "header", problems),
            name: header.name.to_ascii_lowercase(),
            value: header.value,
        })
        .collect();
    CallMatch { method, headers }
}

fn convert_backend(
    i: usize,
    backend: BackendRef,
    namespace: &str,
    problems: &mut Vec<String>,
) -> Option<Backend> {
    let name = &backend.name;
    let group = backend.group.as_deref().unwrap_or("");
    let kind = backend.kind.as_deref().unwrap_or("Service");
    if !group.is_empty() || kind != "Service" {
        problems.push(format!(
            "rule {i}: backend {name} is a {kind} of group {group:?}; only Services are supported"
        ));
        return None;
    }
    if let Some(other) = backend.namespace.as_deref().filter(|ns| *ns != namespace) {
        problems.push(format!(
            "rule {i}: backend {name} is in namespace {other}; backends in other namespaces \
             (ReferenceGrant) are not supported"
        ));
        return None;
    }
    if !backend.filters.is_empty() {
        problems.push(format!(
            "rule {i}: backend {name} has filters, which are not supported ({})",
            filter_types(&backend.filters)
        ));
    }
    let Some(port) = backend
        .port
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
    else {
        problems.push(format!("rule {i}: backend {name} needs a port"));
        return None;
    };
    let weight = match backend.weight {
        None => 1,
        Some(weight) => match u32::try_from(weight) {
            Ok(weight) => weight,
            Err(_) => {
                problems.push(format!("rule {i}: backend {name} has weight {weight}"));
                return None;
            }
        },
    };
    Some(Backend {
        service: name.clone(),
        port,
        weight,
    })
}

fn filter_types(filters: &[Value]) -> String {
    filters
        .iter()
        .map(|f| f.get("type").and_then(Value::as_str).unwrap_or("?"))
        .collect::<Vec<_>>()
        .join(", ")
}
