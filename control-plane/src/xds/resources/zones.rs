//! Per-zone variants of a zone-aware service's assignment.
//!
//! A client in zone Z gets the assignment with Z's endpoints at priority 0
//! and every other endpoint at priority 1: gRPC's xDS clients call
//! priority 0 while it has a ready endpoint and fail over to priority 1 by
//! themselves. An endpoint with zone hints (`for_zones`) belongs to the
//! zones it is hinted for instead of its own.
//!
//! One variant is built and encoded per zone that has endpoints, whatever
//! the number of clients in it. A zone whose variant would equal the
//! default (it has every endpoint, or none) gets none: its clients, and
//! clients in zones with no endpoints, get the default assignment.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::ZoneVariants;
use super::assignment::assignment;
use crate::model::{Endpoint, ServicePort};

/// Whether `endpoint` serves clients in `zone`.
fn serves(endpoint: &Endpoint, zone: &str) -> bool {
    if endpoint.for_zones.is_empty() {
        endpoint.zone.as_deref() == Some(zone)
    } else {
        endpoint.for_zones.iter().any(|z| z == zone)
    }
}

/// The variants of `port`'s assignment, by zone.
pub(super) fn variants(cluster_name: &str, port: &ServicePort, revision: u64) -> ZoneVariants {
    let zones: BTreeSet<&str> = port
        .endpoints
        .iter()
        .flat_map(|e| {
            e.zone
                .as_deref()
                .into_iter()
                .chain(e.for_zones.iter().map(String::as_str))
        })
        .filter(|zone| !zone.is_empty())
        .collect();
    zones
        .into_iter()
        .filter_map(|zone| {
            let local = port.endpoints.iter().filter(|e| serves(e, zone)).count();
            if local == 0 || local == port.endpoints.len() {
                return None;
            }
            let variant = assignment(cluster_name, port, revision, |e| {
                u32::from(!serves(e, zone))
            });
            Some((zone.to_owned(), Arc::new(variant)))
        })
        .collect()
}
