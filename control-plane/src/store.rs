//! The current state of every service, published to all readers.
//!
//! Sources write through a [`SourceHandle`]; each write is applied under a
//! short lock and publishes a new immutable [`Catalog`] (the services in
//! the model's terms, their revisions, the source's health and the routes)
//! on a `tokio::sync::watch` channel. The store knows nothing of Envoy:
//! after each publication, outside its lock, it hands the catalog to its
//! [`Follower`]s, such as the xDS snapshot builder
//! ([`crate::xds::snapshot`]), which turns changed services into
//! resources. Readers only ever see whole catalogs, and a slow reader
//! simply skips to the newest one: nothing queues up per reader.
//!
//! Routes: the source also reports its traffic routes ([`RouteSet`]).
//! Whenever routes or services change, and any route exists (or existed),
//! [`routes::resolve`](crate::routes::resolve) decides again which are in
//! force, and every service whose route tables changed gets a new entry
//! (and revision). With no routes, none of this runs.
//!
//! Versions: every published catalog has a revision, counting up from 1;
//! every service records the revision at which it last changed. The xDS
//! `version_info` is `<instance id>-<revision>`, where the instance id is new
//! on every start, so a version never repeats across restarts.
//!
//! - `catalog.rs`: what is published: [`Catalog`], one [`ServiceEntry`]
//!   per service, and the [`Follower`]s told of each.
//! - `source_status.rs`: the source's health, and what it had refused.
//! - `handle.rs`: [`SourceHandle`], what sources write through.
//! - `routing.rs`: replacing the routes, and settling which are in force.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use crate::model::{ModelError, Service};
use crate::names::Naming;
use crate::routes::RouteSet;

mod catalog;
mod handle;
mod routing;
mod source_status;

pub use catalog::{Catalog, Follower, PortRoutes, RoutesView, ServiceEntry};
pub use handle::SourceHandle;
pub use source_status::{Rejected, SourceKind, SourceState, SourceStatus, Stamped};

#[derive(Debug)]
struct Inner {
    revision: u64,
    services: Arc<BTreeMap<String, Arc<ServiceEntry>>>,
    source: SourceStatus,
    synced: bool,
    route_set: RouteSet,
    /// Services whose resources carry route tables.
    routed: std::collections::BTreeSet<String>,
    routes: Arc<RoutesView>,
}

/// The control plane's state. Shared as `Arc<Store>`.
#[derive(Debug)]
pub struct Store {
    naming: Naming,
    replica: String,
    instance_id: String,
    started_at: SystemTime,
    inner: Mutex<Inner>,
    tx: watch::Sender<Arc<Catalog>>,
    followers: RwLock<Vec<Arc<dyn Follower>>>,
}

impl Store {
    /// An empty store serving `naming.namespace`, fed by a source whose
    /// initial status is `source`, in a replica named after the host.
    pub fn new(naming: Naming, source: SourceStatus) -> Arc<Self> {
        Self::with_replica(naming, source, common::hostname())
    }

    /// Like [`Store::new`], for the replica named `replica` (the pod name
    /// in Kubernetes).
    pub fn with_replica(
        naming: Naming,
        source: SourceStatus,
        replica: impl Into<String>,
    ) -> Arc<Self> {
        let started_at = SystemTime::now();
        let synced = is_synced(source.state);
        let route_set = RouteSet::default();
        let routes = Arc::new(RoutesView {
            support: route_set.support.clone(),
            statuses: Vec::new(),
        });
        let inner = Inner {
            revision: 1,
            services: Arc::default(),
            source,
            synced,
            route_set,
            routed: Default::default(),
            routes,
        };
        let (tx, _) = watch::channel(Arc::new(Catalog {
            revision: inner.revision,
            services: inner.services.clone(),
            source: inner.source.clone(),
            synced,
            routes: inner.routes.clone(),
        }));
        Arc::new(Self {
            naming,
            replica: replica.into(),
            instance_id: new_instance_id(started_at),
            started_at,
            inner: Mutex::new(inner),
            tx,
            followers: RwLock::default(),
        })
    }

    /// The handle a source writes through.
    pub fn source_handle(self: &Arc<Self>) -> SourceHandle {
        SourceHandle::new(self.clone())
    }

    /// Follows every published catalog (latest value wins).
    pub fn subscribe(&self) -> watch::Receiver<Arc<Catalog>> {
        self.tx.subscribe()
    }

    /// The current catalog.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.tx.borrow().clone()
    }

    /// Adds `follower`, told of every catalog from now on; it is first
    /// told of the current one.
    pub fn follow(&self, follower: Arc<dyn Follower>) {
        // Listed first, then told of the current catalog: a publication in
        // between reaches it either way (a follower keeps the newest).
        self.followers
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(follower.clone());
        follower.follow(&self.catalog());
    }

    /// Namespace and cluster domain.
    pub fn naming(&self) -> &Naming {
        &self.naming
    }

    /// The namespace served.
    pub fn namespace(&self) -> &str {
        &self.naming.namespace
    }

    /// This replica's name.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// This run's id, the prefix of every `version_info`.
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// When this store was created.
    pub fn started_at(&self) -> SystemTime {
        self.started_at
    }

    /// The xDS `version_info` for `revision`.
    pub fn version_info(&self, revision: u64) -> String {
        version_info(&self.instance_id, revision)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data behind (every
        // write builds the new state before swapping it in), so keep going.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Publishes `inner` as the next revision; returns the catalog for
    /// [`Store::tell`].
    fn publish(&self, inner: &mut Inner) -> Arc<Catalog> {
        inner.revision += 1;
        let catalog = Arc::new(Catalog {
            revision: inner.revision,
            services: inner.services.clone(),
            source: inner.source.clone(),
            synced: inner.synced,
            routes: inner.routes.clone(),
        });
        self.tx.send_replace(catalog.clone());
        catalog
    }

    /// Tells every follower of `catalog`; called without the lock.
    fn tell(&self, catalog: &Arc<Catalog>) {
        let followers = self
            .followers
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for follower in followers.iter() {
            follower.follow(catalog);
        }
    }

    /// The entry of `service` at `revision`, keeping the route tables
    /// `previous` had ([`Store::reroute`] settles them).
    fn entry(service: Service, revision: u64, previous: Option<&ServiceEntry>) -> ServiceEntry {
        let routes = previous.map(|p| p.routes.clone()).unwrap_or_default();
        ServiceEntry::new(service, routes, revision)
    }

    pub(crate) fn replace_all(&self, services: Vec<Service>, event: String) -> Vec<Rejected> {
        let mut rejected = Vec::new();
        let mut inner = self.lock();
        let revision = inner.revision + 1;
        let mut next = BTreeMap::new();
        let mut changed = false;
        for mut service in services {
            if let Err(error) = service.validate(&self.naming.namespace) {
                tracing::warn!(service = service.name, %error, "service rejected");
                rejected.push(Rejected {
                    name: service.name,
                    error,
                });
                continue;
            }
            service.normalize();
            let previous = inner.services.get(&service.name);
            let entry = match previous {
                Some(old) if old.service == service => old.clone(),
                _ => {
                    changed = true;
                    log_change(&service, revision, previous.is_some());
                    Arc::new(Self::entry(service, revision, previous.map(|p| &**p)))
                }
            };
            next.insert(entry.service.name.clone(), entry);
        }
        for gone in inner
            .services
            .keys()
            .filter(|name| !next.contains_key(*name))
        {
            changed = true;
            tracing::info!(service = gone, revision, "service removed");
        }
        if changed {
            inner.services = Arc::new(next);
        }
        self.reroute(&mut inner, revision);
        inner.source.last_event = Some(Stamped::now(event));
        let catalog = self.publish(&mut inner);
        drop(inner);
        self.tell(&catalog);
        rejected
    }

    pub(crate) fn upsert(&self, mut service: Service, event: String) -> Result<bool, ModelError> {
        service.validate(&self.naming.namespace)?;
        service.normalize();
        let mut inner = self.lock();
        let previous = inner.services.get(&service.name).cloned();
        if previous.as_ref().is_some_and(|old| old.service == service) {
            return Ok(false);
        }
        let revision = inner.revision + 1;
        log_change(&service, revision, previous.is_some());
        let entry = Arc::new(Self::entry(service, revision, previous.as_deref()));
        Arc::make_mut(&mut inner.services).insert(entry.service.name.clone(), entry);
        self.reroute(&mut inner, revision);
        inner.source.last_event = Some(Stamped::now(event));
        let catalog = self.publish(&mut inner);
        drop(inner);
        self.tell(&catalog);
        Ok(true)
    }

    pub(crate) fn remove(&self, name: &str, event: String) -> bool {
        let mut inner = self.lock();
        if !inner.services.contains_key(name) {
            return false;
        }
        Arc::make_mut(&mut inner.services).remove(name);
        let revision = inner.revision + 1;
        tracing::info!(service = name, revision, "service removed");
        self.reroute(&mut inner, revision);
        inner.source.last_event = Some(Stamped::now(event));
        let catalog = self.publish(&mut inner);
        drop(inner);
        self.tell(&catalog);
        true
    }

    pub(crate) fn set_source_state(&self, state: SourceState, error: Option<String>) {
        let mut inner = self.lock();
        let source = &mut inner.source;
        let error = error.map(Stamped::now);
        if source.state == state
            && (error.is_none()
                || source.last_error.as_ref().map(|e| &e.text) == error.as_ref().map(|e| &e.text))
        {
            return;
        }
        if source.state != state {
            tracing::info!(source = %source.kind, from = %source.state, to = %state, "source state changed");
            let now = SystemTime::now();
            if source.state == SourceState::Connected {
                source.in_sync_until = Some(now);
            }
            source.state = state;
            source.state_since = now;
        }
        if error.is_some() {
            source.last_error = error;
        }
        inner.synced |= is_synced(state);
        let catalog = self.publish(&mut inner);
        drop(inner);
        self.tell(&catalog);
    }
}

/// Whether a source in `state` has completed a sync.
fn is_synced(state: SourceState) -> bool {
    matches!(state, SourceState::Connected | SourceState::Degraded)
}

fn log_change(service: &Service, revision: u64, existed: bool) {
    let (ready, draining, not_ready) = service.counts();
    tracing::info!(
        service = service.name,
        revision,
        ready,
        draining,
        not_ready,
        "{}",
        if existed {
            "service updated"
        } else {
            "service added"
        }
    );
}

/// The xDS `version_info` of `revision` in the run `instance_id`.
pub fn version_info(instance_id: &str, revision: u64) -> String {
    format!("{instance_id}-{revision}")
}

/// A run id that differs between runs: start time in milliseconds plus a
/// random suffix (two starts in the same millisecond still differ).
fn new_instance_id(started_at: SystemTime) -> String {
    let millis = started_at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("{millis:x}{:04x}", rand::random::<u16>())
}

#[cfg(test)]
pub(crate) mod tests;
