//! The xDS resources served, as of one store revision, and the builder
//! that keeps them in step with the store.
//!
//! The data path runs one way: a source writes into the
//! [`Store`](crate::store::Store), which publishes a [`Catalog`] (the
//! model); the [`SnapshotBuilder`], one of the store's followers, turns
//! each changed service into Envoy resources ([`ServiceResources`], with
//! their encoded bytes), outside the store's lock, and publishes a
//! [`ResourceSnapshot`] on a `tokio::sync::watch` channel; every stream
//! task follows that channel. A service whose catalog entry did not change
//! keeps its resources (the same `Arc`), so a publication costs one
//! service's conversion however many services there are.
//!
//! The builder runs in the writer's thread as the store tells it, so when
//! a source's call returns, its change is in the published snapshot.
//! Concurrent writers take turns on the builder's lock; one that finds a
//! newer revision already built has nothing to do.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::watch;

use super::resources::{Resource, ServiceResources};
use crate::kinds::ResourceType;
use crate::names::{self, Naming};
use crate::store::{Catalog, Follower, ServiceEntry, Store};

/// One service's resources, and the catalog entry they were built from.
#[derive(Debug)]
pub struct ServedService {
    /// The service as the store holds it.
    pub entry: Arc<ServiceEntry>,
    /// Its xDS resources.
    pub resources: ServiceResources,
}

impl ServedService {
    /// Builds the resources of `entry`; with `previous` (the same service
    /// as last built), only what changed is rebuilt and the rest shared.
    pub fn build(
        entry: Arc<ServiceEntry>,
        naming: &Naming,
        previous: Option<&ServedService>,
    ) -> Self {
        let resources = ServiceResources::build_routed(
            &entry.service,
            &entry.routes,
            naming,
            entry.revision,
            previous.map(|p| (&p.entry.service, &p.resources)),
        );
        Self { entry, resources }
    }

    /// The revision at which the service last changed.
    pub fn revision(&self) -> u64 {
        self.entry.revision
    }

    /// When the service last changed (monotonic, for latency measurements).
    pub fn changed_at(&self) -> Instant {
        self.entry.changed_at
    }
}

/// Every resource served, as of one store revision. Immutable; cheap to
/// share.
#[derive(Debug, Clone, Default)]
pub struct ResourceSnapshot {
    /// The store revision it was built from.
    pub revision: u64,
    /// Whether the source has completed its first sync
    /// ([`Catalog::synced`]); nothing is served before.
    pub synced: bool,
    /// Services by name.
    pub services: Arc<BTreeMap<String, Arc<ServedService>>>,
}

impl ResourceSnapshot {
    /// The snapshot of `services` at `revision`.
    pub fn new(
        revision: u64,
        synced: bool,
        services: impl IntoIterator<Item = Arc<ServedService>>,
    ) -> Self {
        Self {
            revision,
            synced,
            services: Arc::new(
                services
                    .into_iter()
                    .map(|served| (served.entry.service.name.clone(), served))
                    .collect(),
            ),
        }
    }

    /// The snapshot of `catalog`, reusing the services of `previous` whose
    /// catalog entries did not change.
    pub fn build(catalog: &Catalog, naming: &Naming, previous: &ResourceSnapshot) -> Self {
        let unchanged = previous.services.len() == catalog.services.len()
            && previous
                .services
                .values()
                .zip(catalog.services.values())
                .all(|(served, entry)| Arc::ptr_eq(&served.entry, entry));
        let services = if unchanged {
            previous.services.clone()
        } else {
            Arc::new(
                catalog
                    .services
                    .iter()
                    .map(|(name, entry)| {
                        let before = previous.services.get(name);
                        let served = match before {
                            Some(served) if Arc::ptr_eq(&served.entry, entry) => served.clone(),
                            _ => Arc::new(ServedService::build(
                                entry.clone(),
                                naming,
                                before.map(|b| &**b),
                            )),
                        };
                        (name.clone(), served)
                    })
                    .collect(),
            )
        };
        Self {
            revision: catalog.revision,
            synced: catalog.synced,
            services,
        }
    }

    /// The resource of type `kind` named `name`, if it exists.
    pub fn get(&self, kind: ResourceType, name: &str) -> Option<&Arc<Resource>> {
        let service = names::service_of(name)?;
        self.services.get(service)?.resources.get(kind, name)
    }

    /// Like [`ResourceSnapshot::get`], as a client in `zone` gets it (the
    /// zone's variant of a zone-aware service's assignment).
    pub fn get_in_zone(
        &self,
        kind: ResourceType,
        name: &str,
        zone: &str,
    ) -> Option<&Arc<Resource>> {
        let service = names::service_of(name)?;
        self.services
            .get(service)?
            .resources
            .get_in_zone(kind, name, zone)
    }

    /// Every resource of type `kind` a wildcard subscription gets.
    pub fn wildcard(&self, kind: ResourceType) -> impl Iterator<Item = &Arc<Resource>> + '_ {
        self.services
            .values()
            .flat_map(move |served| served.resources.wildcard(kind))
    }

    /// When the source change that produced `resource` happened, if its
    /// service has not changed again since.
    pub fn change_time(&self, resource: &Resource) -> Option<Instant> {
        let served = self.services.get(names::service_of(&resource.name)?)?;
        (served.revision() == resource.revision).then(|| served.changed_at())
    }
}

/// Builds a [`ResourceSnapshot`] from every catalog the store publishes,
/// and publishes it to the streams.
#[derive(Debug)]
pub struct SnapshotBuilder {
    naming: Naming,
    /// Held while building, so builds happen one at a time, newest last.
    building: Mutex<()>,
    tx: watch::Sender<Arc<ResourceSnapshot>>,
}

impl SnapshotBuilder {
    /// A builder following `store`, with a snapshot of its current catalog
    /// already published.
    pub fn attach(store: &Store) -> Arc<Self> {
        let (tx, _) = watch::channel(Arc::new(ResourceSnapshot::default()));
        let builder = Arc::new(Self {
            naming: store.naming().clone(),
            building: Mutex::new(()),
            tx,
        });
        store.follow(builder.clone());
        builder
    }

    /// Follows every published snapshot (latest value wins).
    pub fn subscribe(&self) -> watch::Receiver<Arc<ResourceSnapshot>> {
        self.tx.subscribe()
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<ResourceSnapshot> {
        self.tx.borrow().clone()
    }
}

impl Follower for SnapshotBuilder {
    fn follow(&self, catalog: &Arc<Catalog>) {
        // A build that panicked published nothing; the last snapshot stands.
        let _turn = self
            .building
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let previous = self.tx.borrow().clone();
        if previous.revision >= catalog.revision {
            return;
        }
        let next = ResourceSnapshot::build(catalog, &self.naming, &previous);
        self.tx.send_replace(Arc::new(next));
    }
}

#[cfg(test)]
mod tests;
