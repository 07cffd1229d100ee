//! The store's routes: replacing them, and settling which are in force
//! whenever routes or services change.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{Inner, RoutesView, ServiceEntry, Stamped, Store};
use crate::routes::{self, RouteSet};

impl Store {
    pub(crate) fn set_routes(&self, mut set: RouteSet, event: String) -> bool {
        set.routes.sort_by(|a, b| a.name.cmp(&b.name));
        let mut inner = self.lock();
        if inner.route_set == set {
            return false;
        }
        if inner.route_set.support != set.support {
            tracing::info!(
                enabled = set.support.enabled,
                detail = set.support.detail,
                "route support changed"
            );
        }
        let revision = inner.revision + 1;
        inner.route_set = set;
        if !self.reroute(&mut inner, revision) {
            // Nothing resolved differently; the support state may still
            // have changed.
            let view = RoutesView {
                support: inner.route_set.support.clone(),
                statuses: inner.routes.statuses.clone(),
            };
            inner.routes = Arc::new(view);
        }
        inner.source.last_event = Some(Stamped::now(event));
        let catalog = self.publish(&mut inner);
        drop(inner);
        self.tell(&catalog);
        true
    }

    /// Resolves the routes against the services in `inner` and gives
    /// every service whose tables changed a new entry at `revision`. Skipped (`false`) when there are no routes and no
    /// service carries any.
    pub(super) fn reroute(&self, inner: &mut Inner, revision: u64) -> bool {
        if inner.route_set.routes.is_empty() && inner.routed.is_empty() {
            return false;
        }
        let services = inner.services.clone();
        let resolution = routes::resolve(&inner.route_set.routes, |name| {
            services.get(name).map(|entry| &entry.service)
        });
        let candidates: BTreeSet<&String> = resolution
            .tables
            .keys()
            .chain(inner.routed.iter())
            .collect();
        let mut rebuilt = Vec::new();
        for name in candidates {
            let Some(entry) = services.get(name) else {
                continue;
            };
            let tables = resolution.tables.get(name).cloned().unwrap_or_default();
            if entry.routes == tables {
                continue;
            }
            tracing::info!(
                service = name,
                revision,
                routed_ports = tables.len(),
                "service routes changed"
            );
            rebuilt.push(Arc::new(ServiceEntry::new(
                entry.service.clone(),
                tables,
                revision,
            )));
        }
        if !rebuilt.is_empty() {
            let map = Arc::make_mut(&mut inner.services);
            for entry in rebuilt {
                map.insert(entry.service.name.clone(), entry);
            }
        }
        inner.routed = resolution.tables.keys().cloned().collect();
        let view = RoutesView {
            support: inner.route_set.support.clone(),
            statuses: resolution.statuses,
        };
        if *inner.routes != view {
            for status in &view.statuses {
                if let routes::RouteState::Refused(reason) = &status.state {
                    tracing::warn!(route = status.name, reason, "route refused");
                }
            }
            inner.routes = Arc::new(view);
        }
        true
    }
}
