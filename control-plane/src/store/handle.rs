//! The handle a source writes through.

use std::sync::Arc;

use super::{Rejected, SourceState, Store};
use crate::model::{ModelError, Service};
use crate::routes::RouteSet;

/// What a source uses to report services and its own health. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SourceHandle {
    store: Arc<Store>,
}

impl SourceHandle {
    pub(super) fn new(store: Arc<Store>) -> Self {
        Self { store }
    }

    /// Replaces every service with `services` (a complete, consistent set)
    /// and records `event`. Invalid services are left out and returned; the
    /// rest is applied. Services whose content did not change keep their
    /// version, so subscribers see no update for them.
    pub fn replace_all(&self, services: Vec<Service>, event: impl Into<String>) -> Vec<Rejected> {
        self.store.replace_all(services, event.into())
    }

    /// Adds or replaces one service and records `event`. Returns whether
    /// anything changed.
    pub fn upsert(&self, service: Service, event: impl Into<String>) -> Result<bool, ModelError> {
        self.store.upsert(service, event.into())
    }

    /// Removes the service `name`, if present, and records `event`. Returns
    /// whether it was present.
    pub fn remove(&self, name: &str, event: impl Into<String>) -> bool {
        self.store.remove(name, event.into())
    }

    /// Replaces the source's traffic routes (and says whether it reads
    /// any) and records `event`. Routes are checked against the services
    /// served whenever either changes; those that cannot be honoured are
    /// refused whole and shown by the status API. Returns whether anything
    /// changed.
    pub fn set_routes(&self, routes: RouteSet, event: impl Into<String>) -> bool {
        self.store.set_routes(routes, event.into())
    }

    /// Sets the source's state. `error` (for `Degraded` / `Disconnected`)
    /// becomes the status API's last error; moving to `Connected` keeps the
    /// last error on record but it no longer describes the present.
    pub fn set_state(&self, state: SourceState, error: Option<String>) {
        self.store.set_source_state(state, error);
    }

    /// The namespace the control plane serves; every service must be in it.
    pub fn namespace(&self) -> &str {
        self.store.namespace()
    }
}
