//! The state gauges of `/metrics`, read at scrape time from the store's
//! current snapshot and the client registry.

use std::sync::Arc;
use std::time::SystemTime;

use crate::metrics::http::Observer;
use crate::metrics::{Observed, ObservedSource};
use crate::store::{Catalog, Store};
use crate::xds::registry::Registry;

/// What `/metrics` calls on every scrape.
pub(super) fn observer(store: Arc<Store>, registry: Arc<Registry>) -> Observer {
    Arc::new(move || observe(&store.catalog(), &registry, SystemTime::now()))
}

/// The gauges' values for `snapshot` and `registry`, at `now`.
fn observe(snapshot: &Catalog, registry: &Registry, now: SystemTime) -> Observed {
    let mut endpoints = (0, 0, 0);
    for entry in snapshot.services.values() {
        let (ready, draining, not_ready) = entry.service.counts();
        endpoints.0 += ready;
        endpoints.1 += draining;
        endpoints.2 += not_ready;
    }
    let source = &snapshot.source;
    Observed {
        source: Some(ObservedSource {
            kind: source.kind,
            state: source.state,
            last_sync: source.in_sync_until,
        }),
        services: snapshot.services.len(),
        endpoints,
        oldest_unacked: registry
            .oldest_unacked()
            .and_then(|since| now.duration_since(since).ok()),
    }
}
