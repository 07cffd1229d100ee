//! Where services come from, and the handle sources use to report them.
//!
//! A source (static configuration, Kubernetes) runs as its own task and
//! tells the [`Store`](crate::store::Store) about services through a
//! [`SourceHandle`]: a full replacement after a (re-)sync, single-service
//! upserts and removals as things change, its traffic routes, and its own
//! health. The handle
//! applies each call synchronously: when it returns, the new state is
//! published to every xDS stream and to the status API.
//!
//! Rules for sources:
//! - Report a full set with [`SourceHandle::replace_all`] only once it is
//!   complete (never an empty or partial set during a re-list).
//! - Services are in the model's terms ([`crate::model`]): IP addresses,
//!   resolved target ports, endpoint states. Duplicates are fine; the store
//!   normalises.
//! - Say when the source cannot be reached ([`SourceState::Disconnected`])
//!   or its input was rejected ([`SourceState::Degraded`]); the last state
//!   keeps being served either way.

pub mod kubernetes;
pub mod static_source;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::model::{ModelError, Service};
use crate::routes::RouteSet;
use crate::store::Store;

/// Which kind of source feeds the control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// `--static` flags and/or `--static-file`, with health probing.
    Static,
    /// Services and EndpointSlices from the Kubernetes API.
    Kubernetes,
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Static => "static",
            Self::Kubernetes => "kubernetes",
        })
    }
}

/// How the source is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceState {
    /// The first full sync has not finished.
    Starting,
    /// In sync.
    Connected,
    /// Running, but the latest input was rejected; the last good state
    /// stays in force.
    Degraded,
    /// Cannot reach its origin; the last known state keeps being served.
    Disconnected,
}

impl SourceState {
    /// Every state.
    pub const ALL: [Self; 4] = [
        Self::Starting,
        Self::Connected,
        Self::Degraded,
        Self::Disconnected,
    ];

    /// The state as a metrics label (the same word as shown by `status`).
    pub fn label(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Connected => "connected",
            Self::Degraded => "degraded",
            Self::Disconnected => "disconnected",
        }
    }
}

impl fmt::Display for SourceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Something that happened, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamped {
    /// What happened.
    pub text: String,
    /// When.
    pub at: SystemTime,
}

impl Stamped {
    /// `text`, now.
    pub fn now(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            at: SystemTime::now(),
        }
    }
}

/// The source's health as shown by the status API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceStatus {
    /// Which source.
    pub kind: SourceKind,
    /// Where it reads from (a file path, an API server URL), for people.
    pub detail: String,
    /// Its state.
    pub state: SourceState,
    /// When `state` last changed.
    pub state_since: SystemTime,
    /// The latest error since the last success, if any.
    pub last_error: Option<Stamped>,
    /// The latest change applied.
    pub last_event: Option<Stamped>,
    /// When the source last stopped being `Connected` (it was in sync
    /// until then); `None` while it never was. While it is `Connected` it
    /// is in sync now.
    pub in_sync_until: Option<SystemTime>,
}

impl SourceStatus {
    /// A source that has just started.
    pub fn starting(kind: SourceKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
            state: SourceState::Starting,
            state_since: SystemTime::now(),
            last_error: None,
            last_event: None,
            in_sync_until: None,
        }
    }
}

/// A service a source reported that the store refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The service's name as reported.
    pub name: String,
    /// Why.
    pub error: ModelError,
}

/// What a source uses to report services and its own health. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SourceHandle {
    store: Arc<Store>,
}

impl SourceHandle {
    pub(crate) fn new(store: Arc<Store>) -> Self {
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

/// A duration in humantime syntax (`500ms`, `2s`, `1m`) that is not zero;
/// the value parser of the sources' duration flags.
pub(crate) fn positive_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|error| error.to_string())?;
    if duration.is_zero() {
        return Err("must be longer than zero".to_owned());
    }
    Ok(duration)
}
