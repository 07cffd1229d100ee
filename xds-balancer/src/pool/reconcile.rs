//! The pool's bookkeeping as a pure state machine: no tasks, no sockets, no
//! clock of its own.
//!
//! Inputs: the target's resolution ([`Reconciler::on_resolution`]), what
//! subchannel tasks report ([`Reconciler::on_state`],
//! [`Reconciler::on_closed`]) and the time when a snapshot is taken
//! ([`Reconciler::publish`]). Outputs: [`Command`]s for the manager to carry
//! out (start a subchannel, retire one) and the [`Published`] state: the
//! connections the picker rotates over, the counts that explain an empty
//! picker, and the endpoints the application sees.
//!
//! Priorities (failover between localities, e.g. zones): every HEALTHY
//! endpoint of every priority gets a connection, so failing over needs no
//! connect; calls go to the ready connections of the lowest priority that
//! has one. The view shows the others' connected endpoints `Standby`.
//!
//! It is generic over the connection handle `C`, so its tests use plain
//! values where the pool uses `Arc<ConnHandle>`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::subchannel::Spec;
use crate::model::{Endpoint, EndpointHealth, PickPolicy, Resolution, UpstreamTls};
use crate::view::{ConnectionState, EndpointState, ServiceStatus};
use crate::why::Counts;

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

/// What a snapshot publishes.
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
enum Hold {
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
    hold: Hold,
    /// Whether the last published `ready` was empty.
    published_empty: bool,
    /// TLS to the endpoints, as the current Cluster says.
    tls: Option<Arc<UpstreamTls>>,
    /// The current Cluster's name and policy.
    cluster: String,
    policy: PickPolicy,
}

impl<C: Clone> Reconciler<C> {
    /// Nothing known yet about `target`.
    pub(crate) fn new(target: Arc<str>) -> Self {
        Self {
            service: ServiceStatus::Waiting(format!("listener {target:?}")),
            target,
            next_id: 0,
            entries: Vec::new(),
            closing: Vec::new(),
            last_connect_error: None,
            hold: Hold::Off,
            published_empty: true,
            tls: None,
            cluster: String::new(),
            policy: PickPolicy::default(),
        }
    }

    /// A new resolution of the target:
    /// - a HEALTHY endpoint without a subchannel gets one;
    /// - an endpoint that stays keeps its subchannel, untouched;
    /// - an endpoint that turns DRAINING or not ready, or disappears, is
    ///   retired (the view shows it `Closing` until its socket closes);
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
                self.service = ServiceStatus::Resolved {
                    cluster: cluster.clone(),
                    tls: tls.is_some(),
                };
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
                commands
            }
            Resolution::Waiting(what) => {
                self.service = ServiceStatus::Waiting(what.clone());
                Vec::new()
            }
            Resolution::DoesNotExist(what) => {
                self.service = ServiceStatus::DoesNotExist(what.clone());
                self.reconcile(&[])
            }
            Resolution::Unusable(why) => {
                self.service = ServiceStatus::Unusable(why.clone());
                self.reconcile(&[])
            }
        }
    }

    fn reconcile(&mut self, endpoints: &[Endpoint]) -> Vec<Command<C>> {
        let mut commands = Vec::new();
        let mut old: HashMap<SocketAddr, Entry<C>> = std::mem::take(&mut self.entries)
            .into_iter()
            .map(|entry| (entry.endpoint.addr, entry))
            .collect();
        let mut entries = Vec::with_capacity(endpoints.len());
        for endpoint in endpoints {
            let mut entry = old.remove(&endpoint.addr).unwrap_or_else(|| {
                tracing::info!(target = %self.target, endpoint = %endpoint.label(), health = ?endpoint.health, "endpoint added");
                Entry {
                    endpoint: endpoint.clone(),
                    sub: None,
                }
            });
            if entry.endpoint.hostname != endpoint.hostname {
                // Another instance behind the same address: a new connection.
                if let Some(sub) = entry.sub.take() {
                    commands.push(self.retire(sub));
                }
            }
            if entry.endpoint.health != endpoint.health {
                tracing::info!(target = %self.target, endpoint = %endpoint.label(), health = ?endpoint.health, "endpoint health changed");
            }
            entry.endpoint = endpoint.clone();
            match (endpoint.health, entry.sub.is_some()) {
                (EndpointHealth::Healthy, false) => {
                    let (sub, command) = self.start(endpoint);
                    entry.sub = Some(sub);
                    commands.push(command);
                }
                (EndpointHealth::Draining | EndpointHealth::NotReady, true) => {
                    if let Some(sub) = entry.sub.take() {
                        commands.push(self.retire(sub));
                    }
                }
                _ => {}
            }
            entries.push(entry);
        }
        for (_, entry) in old {
            tracing::info!(target = %self.target, endpoint = %entry.endpoint.label(), "endpoint removed");
            if let Some(sub) = entry.sub {
                commands.push(self.retire(sub));
            }
        }
        self.entries = entries;
        commands
    }

    fn start(&mut self, endpoint: &Endpoint) -> (Sub<C>, Command<C>) {
        self.next_id += 1;
        let hostname: Arc<str> = endpoint.hostname.as_str().into();
        let spec = Spec {
            id: self.next_id,
            addr: endpoint.addr,
            hostname: hostname.clone(),
            tls: self.tls.clone(),
        };
        let sub = Sub {
            id: self.next_id,
            addr: endpoint.addr,
            hostname,
            state: ConnectionState::Connecting,
            conn: None,
            error: None,
            attempted: false,
        };
        (sub, Command::Start(spec))
    }

    fn retire(&mut self, mut sub: Sub<C>) -> Command<C> {
        let command = Command::Retire {
            id: sub.id,
            conn: sub.conn.take(),
        };
        sub.state = ConnectionState::Closing;
        self.closing.push(sub);
        command
    }

    /// Subchannel `id` reports a state, with its connection while it has
    /// one and the error that ended the last attempt. Retired subchannels
    /// stay `Closing` whatever they report.
    pub(crate) fn on_state(
        &mut self,
        id: u64,
        state: ConnectionState,
        conn: Option<C>,
        error: Option<String>,
    ) {
        if let Some(error) = &error {
            self.last_connect_error = Some(error.clone());
        }
        let Some(sub) = self
            .entries
            .iter_mut()
            .filter_map(|e| e.sub.as_mut())
            .find(|s| s.id == id)
        else {
            return;
        };
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
    }

    /// Subchannel `id` ended: retired and its connection closed.
    pub(crate) fn on_closed(&mut self, id: u64) {
        self.closing.retain(|sub| sub.id != id);
        for entry in &mut self.entries {
            if entry.sub.as_ref().is_some_and(|s| s.id == id) {
                entry.sub = None;
            }
        }
    }

    /// When the first-batch hold ends, while one is on: publish again then.
    pub(crate) fn hold_until(&self) -> Option<Instant> {
        match self.hold {
            Hold::Until(at) => Some(at),
            Hold::Off => None,
        }
    }

    /// What to publish at `now`.
    pub(crate) fn publish(&mut self, now: Instant) -> Published<C> {
        let mut counts = Counts::default();
        let mut ready = Vec::new();
        let mut first_attempts_pending = false;
        let active = self.active_priority();
        for entry in &self.entries {
            match entry.endpoint.health {
                EndpointHealth::Draining => counts.draining += 1,
                EndpointHealth::NotReady => counts.not_ready += 1,
                EndpointHealth::Healthy => match entry.sub.as_ref() {
                    Some(sub) => match (sub.state, &sub.conn) {
                        (ConnectionState::Ready, Some(conn)) => {
                            counts.ready += 1;
                            if Some(entry.endpoint.priority) == active {
                                ready.push(conn.clone());
                            }
                        }
                        (ConnectionState::NotServing, _) => counts.not_serving += 1,
                        (ConnectionState::Ejected, _) => counts.ejected += 1,
                        _ => {
                            counts.connecting += 1;
                            first_attempts_pending |= !sub.attempted;
                        }
                    },
                    None => counts.connecting += 1,
                },
            }
        }
        // Hold back a first batch while some of it is still connecting.
        if ready.is_empty() || !self.published_empty || !first_attempts_pending {
            self.hold = Hold::Off;
        } else {
            match self.hold {
                Hold::Off => {
                    self.hold = Hold::Until(now + FIRST_BATCH_WAIT);
                    ready.clear();
                }
                Hold::Until(at) if now < at => ready.clear(),
                Hold::Until(_) => {}
            }
        }
        self.published_empty = ready.is_empty();
        Published {
            ready,
            policy: self.policy,
            counts,
            service: self.service.clone(),
            last_connect_error: self.last_connect_error.clone(),
            endpoints: self.view(active),
        }
    }

    /// The lowest priority with a ready connection, if any.
    fn active_priority(&self) -> Option<u32> {
        self.entries
            .iter()
            .filter(|entry| {
                entry.endpoint.health == EndpointHealth::Healthy
                    && entry.sub.as_ref().is_some_and(|sub| {
                        sub.state == ConnectionState::Ready && sub.conn.is_some()
                    })
            })
            .map(|entry| entry.endpoint.priority)
            .min()
    }

    fn view(&self, active: Option<u32>) -> Vec<EndpointState> {
        let mut endpoints: Vec<EndpointState> = self
            .entries
            .iter()
            .map(|entry| {
                let (connection, last_error) = match &entry.sub {
                    Some(sub)
                        if sub.state == ConnectionState::Ready
                            && Some(entry.endpoint.priority) != active =>
                    {
                        (ConnectionState::Standby, None)
                    }
                    Some(sub) => (sub.state, sub.error.clone()),
                    None if self.closing.iter().any(|s| s.addr == entry.endpoint.addr) => {
                        (ConnectionState::Closing, None)
                    }
                    None => (ConnectionState::Idle, None),
                };
                EndpointState {
                    addr: entry.endpoint.addr,
                    hostname: entry.endpoint.hostname.clone(),
                    zone: entry.endpoint.zone.clone(),
                    priority: entry.endpoint.priority,
                    cluster: self.cluster.clone(),
                    health: Some(entry.endpoint.health),
                    connection,
                    last_error,
                }
            })
            .collect();
        for sub in &self.closing {
            let listed = self
                .entries
                .iter()
                .any(|e| e.endpoint.addr == sub.addr && e.sub.is_none());
            if !listed {
                endpoints.push(EndpointState {
                    addr: sub.addr,
                    hostname: sub.hostname.to_string(),
                    zone: String::new(),
                    priority: 0,
                    cluster: self.cluster.clone(),
                    health: None,
                    connection: ConnectionState::Closing,
                    last_error: None,
                });
            }
        }
        endpoints
    }
}

#[cfg(test)]
mod tests;
