//! ClusterLoadAssignments: one locality per zone, weighted by its ready
//! endpoints, and each endpoint's readiness as an Envoy health status.

use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::socket_address::{PortSpecifier, Protocol};
use envoy_types::pb::envoy::config::core::v3::{Address, HealthStatus, Locality, SocketAddress};
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint as EnvoyEndpoint, LbEndpoint, LocalityLbEndpoints,
};
use envoy_types::pb::google::protobuf::UInt32Value;
use envoy_types::util::pack_any;

use super::{Resource, ZoneVariants, resource, zones};
use crate::model::{Endpoint, Readiness, Service, ServicePort};

fn health(state: Readiness) -> HealthStatus {
    match state {
        Readiness::Ready => HealthStatus::Healthy,
        Readiness::Draining => HealthStatus::Draining,
        Readiness::NotReady => HealthStatus::Unhealthy,
    }
}

/// The assignment of `port`, and its per-zone variants when `service` is
/// zone-aware.
pub(super) fn assignments(
    service: &Service,
    cluster_name: &str,
    port: &ServicePort,
    revision: u64,
) -> (Arc<Resource>, Option<Arc<ZoneVariants>>) {
    let assignment = Arc::new(assignment(cluster_name, port, revision, |_| 0));
    let zoned = service
        .is_zone_aware()
        .then(|| Arc::new(zones::variants(cluster_name, port, revision)));
    (assignment, zoned)
}

/// The assignment of `port`: one locality per (priority, zone), the
/// priority of each endpoint from `priority` (0 for all but zone
/// variants).
pub(super) fn assignment(
    cluster_name: &str,
    port: &ServicePort,
    revision: u64,
    priority: impl Fn(&Endpoint) -> u32,
) -> Resource {
    let mut zones: BTreeMap<(u32, &str), LocalityLbEndpoints> = BTreeMap::new();
    for endpoint in &port.endpoints {
        let zone = endpoint.zone.as_deref().unwrap_or_default();
        let priority = priority(endpoint);
        let locality = zones
            .entry((priority, zone))
            .or_insert_with(|| LocalityLbEndpoints {
                locality: Some(Locality {
                    zone: zone.to_owned(),
                    ..Default::default()
                }),
                priority,
                ..Default::default()
            });
        locality.lb_endpoints.push(LbEndpoint {
            host_identifier: Some(HostIdentifier::Endpoint(EnvoyEndpoint {
                address: Some(Address {
                    address: Some(AddressKind::SocketAddress(SocketAddress {
                        protocol: Protocol::Tcp as i32,
                        address: endpoint.address.to_string(),
                        port_specifier: Some(PortSpecifier::PortValue(endpoint.port.into())),
                        ..Default::default()
                    })),
                }),
                hostname: endpoint.instance.clone().unwrap_or_default(),
                ..Default::default()
            })),
            health_status: health(endpoint.state) as i32,
            ..Default::default()
        });
    }
    let endpoints = zones
        .into_values()
        .map(|mut locality| {
            let ready = locality
                .lb_endpoints
                .iter()
                .filter(|e| e.health_status == HealthStatus::Healthy as i32)
                .count();
            let weight = u32::try_from(ready).unwrap_or(u32::MAX).max(1);
            locality.load_balancing_weight = Some(UInt32Value { value: weight });
            locality
        })
        .collect();
    let assignment = ClusterLoadAssignment {
        cluster_name: cluster_name.to_owned(),
        endpoints,
        ..Default::default()
    };
    resource(cluster_name, revision, pack_any(assignment))
}
