//! The pool's bookkeeping as a pure state machine: no tasks, no sockets, no
//! clock of its own.
//!
//! Inputs: the target's resolution ([`Reconciler::on_resolution`]), what
//! subchannel tasks report ([`Reconciler::on_state`],
//! [`Reconciler::on_closed`]) and the time when a snapshot is taken
//! ([`Reconciler::pick_state`]). Outputs: [`Command`]s for the manager to
//! carry out (start a subchannel, retire one), the [`PickState`] (the
//! connections the picker rotates over, the counts that explain an empty
//! picker) and the endpoints the application sees
//! ([`Reconciler::write_view`]).
//!
//! Priorities (failover between localities, e.g. zones): every HEALTHY
//! endpoint of every priority gets a connection, so failing over needs no
//! connect; calls go to the ready connections of the lowest priority that
//! has one. The view shows the others' connected endpoints `Standby`.
//!
//! Cost follows what changed: an update whose endpoints are the very ones
//! applied last (the same `Arc`) is not looked at; one that lists the same
//! addresses in the same order (a readiness change) is walked once and
//! touches only the endpoints that differ; the view is rewritten in place
//! ([`Reconciler::write_view`]), so an unchanged endpoint allocates
//! nothing. [`Reconciler::take_dirty`] tells the manager whether anything
//! changed since it last published.
//!
//! It is generic over the connection handle `C`, so its tests use plain
//! values where the pool uses `Arc<ConnHandle>`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::Same;
use super::subchannel::Spec;
use crate::model::{Endpoint, EndpointHealth, PickPolicy, Resolution, UpstreamTls};
use crate::unavailable::Counts;
use crate::view::{ConnectionState, EndpointState, ServiceStatus};

/// How long a first batch of connections may wait for its slowest member.
pub(crate) const FIRST_BATCH_WAIT: Duration = Duration::from_millis(250);

/// What the manager must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command<C> {
    /// Start a subchannel task.
    Start(Spec),
    /// Retire the subchannel `id`: no new calls on `conn` (at once), close
    /// it once its calls are done.
    Retire {
        /// The subchannel.
        id: u64,
        /// Its connection, if it had one.
        conn: Option<C>,
    },
}

/// What the picker is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PickState<C> {
    /// Connections taking calls (of the lowest priority that has any), in
    /// the control plane's order; `None` when they are the very ones the
    /// caller holds (nothing cloned).
    pub(crate) ready: Option<Vec<C>>,
    /// How calls are spread over `ready`.
    pub(crate) policy: PickPolicy,
    /// Endpoints by state, to explain an empty `ready`.
    pub(crate) counts: Counts,
    /// How far discovery got.
    pub(crate) service: ServiceStatus,
    /// The last connection failure of any endpoint.
    pub(crate) last_connect_error: Option<String>,
    /// The lowest priority with a ready connection (for the view).
    pub(crate) active: Option<u32>,
}

/// What a snapshot publishes, the view included, in one value (for tests;
/// the manager takes [`Reconciler::pick_state`] and
/// [`Reconciler::write_view`] apart).
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Published<C> {
    /// Connections taking calls (of the lowest priority that has any), in
    /// the control plane's order.
    pub(crate) ready: Vec<C>,
    /// How calls are spread over `ready`.
    pub(crate) policy: PickPolicy,
    /// Endpoints by state, to explain an empty `ready`.
    pub(crate) counts: Counts,
    /// How far discovery got.
    pub(crate) service: ServiceStatus,
    /// The last connection failure of any endpoint.
    pub(crate) last_connect_error: Option<String>,
    /// Every endpoint for the application's view.
    pub(crate) endpoints: Vec<EndpointState>,
}

/// One endpoint from the control plane, and its subchannel if it has one.
#[derive(Debug)]
struct Entry<C> {
    endpoint: Endpoint,
    sub: Option<Sub<C>>,
}

/// The record of a subchannel task.
#[derive(Debug)]
struct Sub<C> {
    id: u64,
    addr: SocketAddr,
    hostname: Arc<str>,
    state: ConnectionState,
    conn: Option<C>,
    error: Option<String>,
    /// Whether its first connection attempt has finished.
    attempted: bool,
}

/// The first-batch hold: while the picker is empty, the first connections
/// are published together, once every first attempt has finished or after
/// [`FIRST_BATCH_WAIT`], so the first calls are spread like all later ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FirstBatchHold {
    Off,
    Until(Instant),
}

/// The pool's state for one target.
#[derive(Debug)]
pub(crate) struct Reconciler<C> {
    target: Arc<str>,
    next_id: u64,
    /// In the control plane's order.
    entries: Vec<Entry<C>>,
    /// Retired subchannels whose connections are still closing.
    closing: Vec<Sub<C>>,
    service: ServiceStatus,
    last_connect_error: Option<String>,
    hold: FirstBatchHold,
    /// Whether the last published `ready` was empty.
    published_empty: bool,
    /// TLS to the endpoints, as the current Cluster says.
    tls: Option<Arc<UpstreamTls>>,
    /// The current Cluster's name and policy.
    cluster: String,
    policy: PickPolicy,
    /// The endpoint list reconciled last: the same list again is no news.
    applied: Option<Arc<[Endpoint]>>,
    /// Whether anything changed since [`Reconciler::take_dirty`].
    dirty: bool,
}

impl<C: Clone + Same> Reconciler<C> {
    /// Nothing known yet about `target`.
    pub(crate) fn new(target: Arc<str>) -> Self {
        Self {
            service: ServiceStatus::Waiting(format!("listener {target:?}")),
            target,
            next_id: 0,
            entries: Vec::new(),
            closing: Vec::new(),
            last_connect_error: None,
            hold: FirstBatchHold::Off,
            published_empty: true,
            tls: None,
            cluster: String::new(),
            policy: PickPolicy::default(),
            applied: None,
            dirty: true,
        }
    }

    /// Whether anything changed since the last call (at first: yes).
    pub(crate) fn take_dirty(&mut self) -> bool {
        std::mem::replace(&mut self.dirty, false)
    }

    /// A new resolution of the target:
    /// - a HEALTHY endpoint without a subchannel gets one;
    /// - an endpoint that stays keeps its subchannel, untouched;
    /// - an endpoint that turns DRAINING, or disappears, is retired (the
    ///   view shows it `Closing` until its socket closes);
    /// - an endpoint that turns not ready leaves the rotation at once but
    ///   keeps its connection, idle, while that stays up (the view shows it
    ///   `Standby`): a readiness probe that fails for a while and recovers
    ///   then costs no new connection (nor TLS handshake). A kept connection
    ///   that is lost is not replaced until the endpoint is HEALTHY again;
    ///   a terminating pod is DRAINING or gone, and closes as above;
    /// - while discovery waits for a changed resource, the endpoints stay;
    ///   when the service is deleted or unusable, all are retired.
    pub(crate) fn on_resolution(&mut self, resolution: &Resolution) -> Vec<Command<C>> {
        match resolution {
            Resolution::Endpoints {
                cluster,
                endpoints,
                tls,
                policy,
            } => {
                let same_list = self
                    .applied
                    .as_ref()
                    .is_some_and(|applied| Arc::ptr_eq(applied, endpoints));
                let service = ServiceStatus::Resolved {
                    cluster: cluster.clone(),
                    tls: tls.is_some(),
                };
                let settings_changed =
                    self.service != service || self.policy != *policy || *tls != self.tls;
                if same_list && !settings_changed {
                    return Vec::new();
                }
                self.dirty |= settings_changed;
                self.service = service;
                self.cluster.clone_from(cluster);
                self.policy = *policy;
                let mut commands = Vec::new();
                if *tls != self.tls {
                    // Other TLS settings: every connection is made anew.
                    self.tls = tls.clone();
                    for entry in &mut self.entries {
                        if let Some(sub) = entry.sub.take() {
                            let command = Command::Retire {
                                id: sub.id,
                                conn: sub.conn.clone(),
                            };
                            let mut sub = sub;
                            sub.conn = None;
                            sub.state = ConnectionState::Closing;
                            self.closing.push(sub);
                            commands.push(command);
                        }
                    }
                }
                commands.extend(self.reconcile(endpoints));
                self.applied = Some(endpoints.clone());
                commands
            }
            Resolution::Waiting(what) => {
                self.dirty = true;
                self.service = ServiceStatus::Waiting(what.clone());
                Vec::new()
            }
            Resolution::DoesNotExist(what) => {
                self.dirty = true;
                self.applied = None;
                self.service = ServiceStatus::DoesNotExist(what.clone());
                self.reconcile(&[])
            }
            Resolution::Unusable(why) => {
                self.dirty = true;
                self.applied = None;
                self.service = ServiceStatus::Unusable(why.clone());
                self.reconcile(&[])
            }
        }
    }

    /// Subchannel `id` reports a state, with its connection while it has
    /// one and the error that ended the last attempt. Retired subchannels
    /// stay `Closing` whatever they report. Returns the retirement of a
    /// not-ready endpoint's kept subchannel whose connection is gone.
    pub(crate) fn on_state(
        &mut self,
        id: u64,
        state: ConnectionState,
        conn: Option<C>,
        error: Option<String>,
    ) -> Option<Command<C>> {
        if let Some(error) = &error {
            self.last_connect_error = Some(error.clone());
            self.dirty = true;
        }
        let at = self
            .entries
            .iter()
            .position(|e| e.sub.as_ref().is_some_and(|s| s.id == id))?;
        let sub = self.entries[at].sub.as_mut()?;
        self.dirty = true;
        sub.state = state;
        sub.conn = conn;
        if state != ConnectionState::Connecting {
            sub.attempted = true;
        }
        if state == ConnectionState::Ready {
            sub.error = None;
        } else if error.is_some() {
            sub.error = error;
        }
        self.retire_if_unwanted(at)
    }

    /// Subchannel `id` ended: retired and its connection closed.
    pub(crate) fn on_closed(&mut self, id: u64) {
        self.dirty = true;
        self.closing.retain(|sub| sub.id != id);
        for entry in &mut self.entries {
            if entry.sub.as_ref().is_some_and(|s| s.id == id) {
                entry.sub = None;
            }
        }
    }
}

mod endpoints;
mod publish;

#[cfg(test)]
mod tests;
