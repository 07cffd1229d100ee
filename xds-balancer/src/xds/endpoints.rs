//! ClusterLoadAssignments → endpoints, with gRPC's rules: localities
//! without `locality` or with weight 0 are dropped silently; priorities must
//! not have gaps; an address may appear once; endpoint weights, when set,
//! are at least 1; addresses are IP literals with a port number.
//!
//! Every priority's endpoints are kept, each with its priority: the pool
//! sends calls to the lowest priority that has a ready endpoint, judged by
//! its own connections, not only by the control plane's health.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, SocketAddr};

use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{HealthStatus, address};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;

use crate::model::{Endpoint, EndpointHealth};

pub(crate) fn endpoints(assignment: ClusterLoadAssignment) -> Result<Vec<Endpoint>, String> {
    let mut by_priority: BTreeMap<u32, Vec<Endpoint>> = BTreeMap::new();
    let mut localities = HashSet::new();
    let mut addresses = HashSet::new();
    for group in assignment.endpoints {
        let weight = group.load_balancing_weight.map_or(0, |w| w.value);
        // gRPC drops such localities without a word; so do we.
        let Some(locality) = group.locality.filter(|_| weight >= 1) else {
            continue;
        };
        let key = (
            group.priority,
            locality.region.clone(),
            locality.zone.clone(),
            locality.sub_zone.clone(),
        );
        if !localities.insert(key) {
            return Err(format!(
                "locality {:?} appears twice in priority {}",
                locality.zone, group.priority
            ));
        }
        let list = by_priority.entry(group.priority).or_default();
        for lb_endpoint in group.lb_endpoints {
            if lb_endpoint
                .load_balancing_weight
                .is_some_and(|w| w.value == 0)
            {
                return Err("an endpoint has load_balancing_weight 0".into());
            }
            let endpoint = match lb_endpoint.host_identifier {
                Some(HostIdentifier::Endpoint(endpoint)) => endpoint,
                _ => return Err("an lb_endpoint has no endpoint".into()),
            };
            let addr = socket_addr(endpoint.address.and_then(|a| a.address))?;
            if !addresses.insert(addr) {
                return Err(format!("address {addr} appears twice"));
            }
            let health = match HealthStatus::try_from(lb_endpoint.health_status) {
                Ok(HealthStatus::Healthy | HealthStatus::Unknown) => EndpointHealth::Healthy,
                Ok(HealthStatus::Draining) => EndpointHealth::Draining,
                _ => EndpointHealth::NotReady,
            };
            list.push(Endpoint {
                addr,
                hostname: endpoint.hostname,
                zone: locality.zone.clone(),
                priority: group.priority,
                health,
            });
        }
    }
    for (expected, priority) in by_priority.keys().enumerate() {
        if *priority as usize != expected {
            return Err(format!(
                "priorities must be contiguous from 0, but priority {expected} is missing"
            ));
        }
    }
    Ok(by_priority.into_values().flatten().collect())
}

fn socket_addr(address: Option<address::Address>) -> Result<SocketAddr, String> {
    let Some(address::Address::SocketAddress(socket)) = address else {
        return Err("an endpoint has no socket_address".into());
    };
    let ip: IpAddr = socket
        .address
        .parse()
        .map_err(|_| format!("endpoint address {:?} is not an IP address", socket.address))?;
    let port = match socket.port_specifier {
        Some(PortSpecifier::PortValue(port)) => port,
        Some(PortSpecifier::NamedPort(name)) => {
            return Err(format!(
                "endpoint {ip} uses the named port {name:?}; a port number is needed"
            ));
        }
        None => 0,
    };
    match u16::try_from(port) {
        Ok(port) if port != 0 => Ok(SocketAddr::new(ip, port)),
        _ => Err(format!("endpoint {ip} has port {port}, not in 1..=65535")),
    }
}
