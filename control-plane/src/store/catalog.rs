//! What the store publishes: the [`Catalog`] of one revision, its
//! services' entries, and the followers told of each.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::SourceStatus;
use crate::model::Service;
use crate::routes::{RouteStatus, RouteSupport, RouteTable};

/// Route tables of a service's ports, by port (only ports with routes in
/// force are listed).
pub type PortRoutes = Vec<(u16, Arc<RouteTable>)>;

/// One service as currently served.
#[derive(Debug)]
pub struct ServiceEntry {
    /// The service, normalised.
    pub service: Service,
    /// Revision at which it last changed.
    pub revision: u64,
    /// When it last changed (wall clock, for people).
    pub updated_at: SystemTime,
    /// When it last changed (monotonic, for latency measurements).
    pub changed_at: Instant,
    /// The route tables in force for its ports; a port not listed gets
    /// the default route.
    pub routes: PortRoutes,
}

impl ServiceEntry {
    /// `service` as changed at `revision` (now), with `routes`.
    pub fn new(service: Service, routes: PortRoutes, revision: u64) -> Self {
        Self {
            service,
            revision,
            updated_at: SystemTime::now(),
            changed_at: Instant::now(),
            routes,
        }
    }

    /// The route table in force for `port`, if any.
    pub fn routes_of(&self, port: u16) -> Option<&Arc<RouteTable>> {
        self.routes
            .iter()
            .find(|(p, _)| *p == port)
            .map(|(_, table)| table)
    }
}

/// The routes as last resolved, for the status API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutesView {
    /// Whether the source reads routes, and from where or why not.
    pub support: RouteSupport,
    /// What became of each route, by name.
    pub statuses: Vec<RouteStatus>,
}

/// Everything the store holds, as of one revision: the services (in the
/// model's terms), the source's health and the routes. Immutable; cheap to
/// share.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// Counts up with every publication.
    pub revision: u64,
    /// Services by name.
    pub services: Arc<BTreeMap<String, Arc<ServiceEntry>>>,
    /// The source's health.
    pub source: SourceStatus,
    /// Whether the source has completed a first sync (been `Connected` or
    /// `Degraded` at least once). Before that the services are not known,
    /// so nothing may be served as if they were: an empty answer would tell
    /// clients that every service is gone.
    pub synced: bool,
    /// Routes and their status.
    pub routes: Arc<RoutesView>,
}

/// Told of every catalog the store publishes, in the writer's thread after
/// the store's lock is released. Calls may overlap and arrive out of order
/// when sources write concurrently: a follower keeps the newest revision.
pub trait Follower: Send + Sync + std::fmt::Debug {
    /// `catalog` was just published.
    fn follow(&self, catalog: &Arc<Catalog>);
}
