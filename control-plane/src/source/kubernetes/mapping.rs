//! The one conversion from Kubernetes objects to the model.
//!
//! Two steps, both pure:
//!
//! 1. Each object is decoded on its own into a compact form
//!    ([`ServiceInfo`], [`SliceInfo`]) keeping only what serving needs. An
//!    object that cannot be served at all is a [`Skip`] with the reason; a
//!    part that is wrong (one bad address, a port without a number) is left
//!    out and noted in `problems`, for the caller to log.
//! 2. [`build`] merges a Service with all of its EndpointSlices into a
//!    [`model::Service`].
//!
//! Kubernetes semantics followed here:
//! - An EndpointSlice belongs to the Service named by its
//!   `kubernetes.io/service-name` label. The slice's ports carry the Service
//!   port's *name* and the resolved target port *number* for that slice's
//!   pods, so a named `targetPort` is resolved per slice by matching names
//!   (an unnamed Service port matches the unnamed slice port), as kube-proxy
//!   does. Only TCP ports are served.
//! - Conditions: `ready` (nil means ready) → Ready; `serving` and
//!   `terminating` → Draining; anything else → NotReady. `serving` nil means
//!   the same as `ready`; `terminating` nil means false.
//! - Only an endpoint's first address is used (the others are, by the API's
//!   definition, the same endpoint); it must be an IP of the slice's
//!   `addressType` (IPv4 or IPv6). FQDN slices are skipped.
//! - ExternalName Services have no endpoints and are not served.
//! - TLS is marked by annotations on the Service: [`TLS_ANNOTATION`]
//!   (`"true"`) and [`TLS_SANS_ANNOTATION`] (comma-separated SAN patterns:
//!   exact, or a prefix with a trailing `*`; setting it alone also marks
//!   the service TLS). Any value of [`TLS_ANNOTATION`] but `"false"` turns
//!   TLS on (a typo never downgrades a service to plaintext).
//! - [`LB_POLICY_ANNOTATION`] picks the load-balancing policy
//!   (`round_robin`, the default, or `least_request`); an unknown value is
//!   logged and ignored.
//! - `spec.trafficDistribution: PreferClose` (or its newer name
//!   `PreferSameZone`) makes the service zone-aware, and so do endpoint
//!   hints (`hints.forZones`), which are kept per endpoint.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service as KubeService;
use k8s_openapi::api::discovery::v1::{EndpointConditions, EndpointSlice};

use crate::model::{self, LbPolicy, Readiness, SanMatcher, ServiceTls, TrafficPolicy};

/// Service annotation marking a service TLS: `"true"`.
pub const TLS_ANNOTATION: &str = "grpc-lb.io/tls";
/// Service annotation listing the SANs clients accept in the endpoints'
/// certificates: comma-separated, exact or with a trailing `*` for a
/// prefix. Absent or empty: any certificate from the clients' CA.
pub const TLS_SANS_ANNOTATION: &str = "grpc-lb.io/tls-subject-alt-names";

/// Service annotation choosing how clients pick endpoints: `round_robin`
/// (the default) or `least_request`.
pub const LB_POLICY_ANNOTATION: &str = "grpc-lb.io/lb-policy";

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Why an object is not served at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Skip(pub(crate) String);

/// What serving needs of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServiceInfo {
    pub(crate) name: String,
    /// TCP ports: (name, Service port number).
    pub(crate) ports: Vec<(Option<String>, u16)>,
    /// Parts left out, for the log.
    pub(crate) problems: Vec<String>,
    /// TLS as its annotations say.
    pub(crate) tls: Option<ServiceTls>,
    /// Load balancing and zone preference.
    pub(crate) policy: TrafficPolicy,
}

/// What serving needs of an EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SliceInfo {
    pub(crate) name: String,
    /// The Service it belongs to.
    pub(crate) service: String,
    /// TCP ports: (name, "" when unnamed; resolved port number).
    pub(crate) ports: Vec<(String, u16)>,
    pub(crate) endpoints: Vec<EndpointInfo>,
    /// Parts left out, for the log.
    pub(crate) problems: Vec<String>,
}

/// One endpoint of a slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EndpointInfo {
    pub(crate) address: IpAddr,
    pub(crate) state: Readiness,
    pub(crate) zone: Option<String>,
    /// Pod name (from `targetRef`), else the endpoint's hostname.
    pub(crate) instance: Option<String>,
    pub(crate) detail: Option<String>,
    /// `hints.forZones`.
    pub(crate) for_zones: Vec<String>,
}

fn is_tcp(protocol: Option<&str>) -> bool {
    protocol.is_none_or(|p| p == "TCP")
}

fn port_number(value: Option<i32>) -> Option<u16> {
    value
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
}

/// Decodes a Service.
pub(crate) fn service_info(service: &KubeService) -> Result<ServiceInfo, Skip> {
    let name = service
        .metadata
        .name
        .clone()
        .ok_or_else(|| Skip("Service without a name".into()))?;
    let spec = service
        .spec
        .as_ref()
        .ok_or_else(|| Skip(format!("Service {name} has no spec")))?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return Err(Skip(format!(
            "Service {name} is of type ExternalName, which has no endpoints"
        )));
    }
    let mut problems = Vec::new();
    let mut ports = Vec::new();
    for port in spec.ports.iter().flatten() {
        let label = port.name.clone().unwrap_or_else(|| port.port.to_string());
        if !is_tcp(port.protocol.as_deref()) {
            problems.push(format!(
                "port {label} is {}, only TCP is served",
                port.protocol.as_deref().unwrap_or_default()
            ));
            continue;
        }
        match port_number(Some(port.port)) {
            Some(number) => ports.push((port.name.clone().filter(|n| !n.is_empty()), number)),
            None => problems.push(format!("port {label} has invalid number {}", port.port)),
        }
    }
    if ports.is_empty() {
        return Err(Skip(format!("Service {name} has no TCP ports")));
    }
    let tls = service_tls(service, &mut problems);
    let policy = TrafficPolicy {
        lb: lb_policy(service, &mut problems),
        prefer_close: matches!(
            spec.traffic_distribution.as_deref(),
            Some("PreferClose" | "PreferSameZone")
        ),
    };
    Ok(ServiceInfo {
        name,
        ports,
        problems,
        tls,
        policy,
    })
}

/// The load-balancing policy in a Service's annotations.
fn lb_policy(service: &KubeService, problems: &mut Vec<String>) -> LbPolicy {
    let Some(value) = service
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(LB_POLICY_ANNOTATION))
    else {
        return LbPolicy::default();
    };
    LbPolicy::from_name(value).unwrap_or_else(|| {
        problems.push(format!(
            "{LB_POLICY_ANNOTATION} is {value:?}, not round_robin or least_request: using round_robin"
        ));
        LbPolicy::default()
    })
}

/// The TLS marking in a Service's annotations.
fn service_tls(service: &KubeService, problems: &mut Vec<String>) -> Option<ServiceTls> {
    let annotations = service.metadata.annotations.as_ref()?;
    let flag = annotations.get(TLS_ANNOTATION).map(|v| v.trim());
    let sans = annotations.get(TLS_SANS_ANNOTATION);
    match flag {
        Some("false") if sans.is_some() => {
            problems.push(format!(
                "{TLS_ANNOTATION} is \"false\" but {TLS_SANS_ANNOTATION} is set: serving it as TLS"
            ));
        }
        Some("false") => return None,
        Some("true") | None => {}
        Some(other) => problems.push(format!(
            "{TLS_ANNOTATION} is {other:?}, not \"true\" or \"false\": serving it as TLS"
        )),
    }
    if flag.is_none() && sans.is_none() {
        return None;
    }
    let subject_alt_names = sans
        .map(|sans| {
            sans.split(',')
                .map(str::trim)
                .filter(|san| !san.is_empty())
                .map(SanMatcher::from_pattern)
                .collect()
        })
        .unwrap_or_default();
    Some(ServiceTls { subject_alt_names })
}

/// The model state for a slice endpoint's conditions.
pub(crate) fn endpoint_state(conditions: Option<&EndpointConditions>) -> Readiness {
    let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
    let serving = conditions.and_then(|c| c.serving).unwrap_or(ready);
    let terminating = conditions.and_then(|c| c.terminating).unwrap_or(false);
    match (terminating, serving, ready) {
        (true, true, _) => Readiness::Draining,
        (true, false, _) => Readiness::NotReady,
        (false, _, true) => Readiness::Ready,
        (false, _, false) => Readiness::NotReady,
    }
}

/// Decodes an EndpointSlice.
pub(crate) fn slice_info(slice: &EndpointSlice) -> Result<SliceInfo, Skip> {
    let name = slice
        .metadata
        .name
        .clone()
        .ok_or_else(|| Skip("EndpointSlice without a name".into()))?;
    let service = slice
        .metadata
        .labels
        .as_ref()
        .and_then(|labels| labels.get(SERVICE_NAME_LABEL))
        .filter(|s| !s.is_empty())
        .cloned()
        .ok_or_else(|| {
            Skip(format!(
                "EndpointSlice {name} has no {SERVICE_NAME_LABEL} label"
            ))
        })?;
    let ipv6 = match slice.address_type.as_str() {
        "IPv4" => false,
        "IPv6" => true,
        other => {
            return Err(Skip(format!(
                "EndpointSlice {name} has addressType {other:?}; only IPv4 and IPv6 are served"
            )));
        }
    };
    let mut problems = Vec::new();
    let mut ports = Vec::new();
    for port in slice.ports.iter().flatten() {
        let port_name = port.name.clone().unwrap_or_default();
        if !is_tcp(port.protocol.as_deref()) {
            continue;
        }
        match port_number(port.port) {
            Some(number) => ports.push((port_name, number)),
            None => problems.push(format!("port {port_name:?} has no valid number")),
        }
    }
    let mut endpoints = Vec::new();
    for endpoint in &slice.endpoints {
        let Some(text) = endpoint.addresses.first() else {
            problems.push("an endpoint has no address".into());
            continue;
        };
        let address = match text.parse::<IpAddr>() {
            Ok(address) if address.is_ipv6() == ipv6 => address,
            Ok(_) => {
                problems.push(format!(
                    "address {text} is not of type {}",
                    slice.address_type
                ));
                continue;
            }
            Err(_) => {
                problems.push(format!("address {text:?} is not an IP address"));
                continue;
            }
        };
        let state = endpoint_state(endpoint.conditions.as_ref());
        let detail = match state {
            Readiness::Ready => None,
            Readiness::Draining => Some("terminating".to_owned()),
            Readiness::NotReady => Some(
                if endpoint.conditions.as_ref().and_then(|c| c.terminating) == Some(true) {
                    "terminating, not serving"
                } else {
                    "not ready"
                }
                .to_owned(),
            ),
        };
        let instance = endpoint
            .target_ref
            .as_ref()
            .and_then(|r| r.name.clone())
            .or_else(|| endpoint.hostname.clone());
        endpoints.push(EndpointInfo {
            address,
            state,
            zone: endpoint.zone.clone().filter(|z| !z.is_empty()),
            instance,
            detail,
            for_zones: endpoint
                .hints
                .iter()
                .flat_map(|h| h.for_zones.iter().flatten())
                .map(|z| z.name.clone())
                .filter(|z| !z.is_empty())
                .collect(),
        });
    }
    Ok(SliceInfo {
        name,
        service,
        ports,
        endpoints,
        problems,
    })
}

/// Merges a Service and its slices into the model. Every slice given must
/// belong to the Service. An address in several slices is listed once per
/// slice; the store keeps one (the best state).
pub(crate) fn build<'a>(
    namespace: &str,
    service: &ServiceInfo,
    slices: impl IntoIterator<Item = &'a SliceInfo>,
) -> model::Service {
    let slices: Vec<&SliceInfo> = slices.into_iter().collect();
    let ports = service
        .ports
        .iter()
        .map(|(name, number)| {
            let wanted = name.as_deref().unwrap_or("");
            let endpoints = slices
                .iter()
                .filter_map(|slice| {
                    let (_, target) = slice.ports.iter().find(|(n, _)| n == wanted)?;
                    Some(slice.endpoints.iter().map(|e| model::Endpoint {
                        address: e.address,
                        port: *target,
                        state: e.state,
                        zone: e.zone.clone(),
                        instance: e.instance.clone(),
                        detail: e.detail.clone(),
                        for_zones: e.for_zones.clone(),
                    }))
                })
                .flatten()
                .collect();
            model::ServicePort {
                name: name.clone(),
                port: *number,
                endpoints,
            }
        })
        .collect();
    model::Service {
        name: service.name.clone(),
        namespace: namespace.to_owned(),
        ports,
        tls: service.tls.clone(),
        policy: service.policy,
    }
}

#[cfg(test)]
#[path = "mapping_tests.rs"]
mod tests;
