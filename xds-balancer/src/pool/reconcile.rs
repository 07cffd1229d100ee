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
//! It is generic over the connection handle `C`, so its tests use plain
//! values where the pool uses `Arc<ConnHandle>`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::subchannel::Spec;
use crate::model::{Endpoint, EndpointHealth, Resolution, UpstreamTls};
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
    /// Connections taking calls, in the control plane's order.
    pub(crate) ready: Vec<C>,
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
            } => {
                self.service = ServiceStatus::Resolved {
                    cluster: cluster.clone(),
                    tls: tls.is_some(),
                };
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
        for entry in &self.entries {
            match entry.endpoint.health {
                EndpointHealth::Draining => counts.draining += 1,
                EndpointHealth::NotReady => counts.not_ready += 1,
                EndpointHealth::Healthy => match entry.sub.as_ref() {
                    Some(sub) => match (sub.state, &sub.conn) {
                        (ConnectionState::Ready, Some(conn)) => {
                            counts.ready += 1;
                            ready.push(conn.clone());
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
            counts,
            service: self.service.clone(),
            last_connect_error: self.last_connect_error.clone(),
            endpoints: self.view(),
        }
    }

    fn view(&self) -> Vec<EndpointState> {
        let mut endpoints: Vec<EndpointState> = self
            .entries
            .iter()
            .map(|entry| {
                let (connection, last_error) = match &entry.sub {
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
mod tests {
    use super::*;

    /// A connection, as the tests see it: its endpoint's port.
    type Conn = u16;

    fn endpoint(port: u16, health: EndpointHealth) -> Endpoint {
        Endpoint {
            addr: SocketAddr::from(([10, 0, 0, 1], port)),
            hostname: format!("pod-{port}"),
            zone: String::new(),
            health,
        }
    }

    fn resolved(endpoints: &[(u16, EndpointHealth)]) -> Resolution {
        Resolution::Endpoints {
            cluster: "greeter".into(),
            endpoints: endpoints
                .iter()
                .map(|(port, health)| endpoint(*port, *health))
                .collect::<Vec<_>>()
                .into(),
            tls: None,
        }
    }

    fn started(commands: &[Command<Conn>]) -> Vec<(u64, u16)> {
        commands
            .iter()
            .filter_map(|c| match c {
                Command::Start(spec) => Some((spec.id, spec.addr.port())),
                Command::Retire { .. } => None,
            })
            .collect()
    }

    /// Retirements, by subchannel id (their order does not matter).
    fn retired(commands: &[Command<Conn>]) -> Vec<(u64, Option<Conn>)> {
        let mut retired: Vec<_> = commands
            .iter()
            .filter_map(|c| match c {
                Command::Retire { id, conn } => Some((*id, *conn)),
                Command::Start(_) => None,
            })
            .collect();
        retired.sort_unstable();
        retired
    }

    /// A reconciler with `ports` all HEALTHY and connected (ids 1..).
    fn connected(ports: &[u16]) -> Reconciler<Conn> {
        let mut r = Reconciler::new("greeter".into());
        let endpoints: Vec<_> = ports
            .iter()
            .map(|p| (*p, EndpointHealth::Healthy))
            .collect();
        let commands = r.on_resolution(&resolved(&endpoints));
        for (id, port) in started(&commands) {
            r.on_state(id, ConnectionState::Ready, Some(port), None);
        }
        r
    }

    use EndpointHealth::{Draining, Healthy, NotReady};

    #[test]
    fn starts_one_subchannel_per_healthy_endpoint() {
        let mut r: Reconciler<Conn> = Reconciler::new("greeter".into());
        let commands = r.on_resolution(&resolved(&[(1, Healthy), (2, NotReady), (3, Healthy)]));
        assert_eq!(started(&commands), [(1, 1), (2, 3)]);
        assert!(retired(&commands).is_empty());
        let published = r.publish(Instant::now());
        assert!(published.ready.is_empty());
        assert_eq!(
            published.counts,
            Counts {
                connecting: 2,
                not_ready: 1,
                ..Counts::default()
            }
        );
    }

    #[test]
    fn an_update_that_keeps_an_endpoint_keeps_its_subchannel() {
        let mut r = connected(&[1, 2]);
        let commands = r.on_resolution(&resolved(&[(1, Healthy), (2, Healthy), (3, Healthy)]));
        assert_eq!(started(&commands), [(3, 3)], "only the new endpoint");
        assert!(retired(&commands).is_empty());
        let commands = r.on_resolution(&resolved(&[(2, Healthy), (1, Healthy), (3, Healthy)]));
        assert!(
            commands.is_empty(),
            "reordered, nothing to do: {commands:?}"
        );
    }

    #[test]
    fn draining_not_ready_and_removed_endpoints_are_retired_with_their_connections() {
        let mut r = connected(&[1, 2, 3, 4]);
        let commands = r.on_resolution(&resolved(&[(1, Healthy), (2, Draining), (3, NotReady)]));
        assert_eq!(
            retired(&commands),
            [(2, Some(2)), (3, Some(3)), (4, Some(4))]
        );
        assert!(started(&commands).is_empty());
        let published = r.publish(Instant::now());
        assert_eq!(published.ready, [1]);
        let closing: Vec<u16> = published
            .endpoints
            .iter()
            .filter(|e| e.connection == ConnectionState::Closing)
            .map(|e| e.addr.port())
            .collect();
        assert_eq!(closing, [2, 3, 4], "closing until their sockets close");
        // A retired subchannel's late report changes nothing.
        r.on_state(4, ConnectionState::Ready, Some(4), None);
        assert_eq!(r.publish(Instant::now()).ready, [1]);
        for id in [2, 3, 4] {
            r.on_closed(id);
        }
        let published = r.publish(Instant::now());
        let states: Vec<(u16, ConnectionState)> = published
            .endpoints
            .iter()
            .map(|e| (e.addr.port(), e.connection))
            .collect();
        assert_eq!(
            states,
            [
                (1, ConnectionState::Ready),
                (2, ConnectionState::Idle),
                (3, ConnectionState::Idle)
            ]
        );
    }

    #[test]
    fn another_instance_at_the_same_address_gets_a_new_connection() {
        let mut r = connected(&[1]);
        let mut moved = endpoint(1, Healthy);
        moved.hostname = "pod-1-replacement".into();
        let commands = r.on_resolution(&Resolution::Endpoints {
            cluster: "greeter".into(),
            endpoints: vec![moved].into(),
            tls: None,
        });
        assert_eq!(retired(&commands), [(1, Some(1))]);
        assert_eq!(started(&commands), [(2, 1)]);
    }

    #[test]
    fn waiting_keeps_the_endpoints_and_deletion_retires_them() {
        let mut r = connected(&[1, 2]);
        assert!(
            r.on_resolution(&Resolution::Waiting("cluster \"c2\"".into()))
                .is_empty()
        );
        let published = r.publish(Instant::now());
        assert_eq!(published.ready, [1, 2], "static stability");
        assert_eq!(
            published.service,
            ServiceStatus::Waiting("cluster \"c2\"".into())
        );
        let commands = r.on_resolution(&Resolution::DoesNotExist("listener \"greeter\"".into()));
        assert_eq!(retired(&commands), [(1, Some(1)), (2, Some(2))]);
        assert!(r.publish(Instant::now()).ready.is_empty());
    }

    #[test]
    fn a_first_batch_is_published_together() {
        let mut r: Reconciler<Conn> = Reconciler::new("greeter".into());
        let start = Instant::now();
        r.on_resolution(&resolved(&[(1, Healthy), (2, Healthy), (3, Healthy)]));
        r.on_state(1, ConnectionState::Ready, Some(1), None);
        assert!(
            r.publish(start).ready.is_empty(),
            "held: 2 and 3 still connecting"
        );
        assert_eq!(r.hold_until(), Some(start + FIRST_BATCH_WAIT));
        r.on_state(2, ConnectionState::Ready, Some(2), None);
        assert!(
            r.publish(start + Duration::from_millis(10))
                .ready
                .is_empty()
        );
        r.on_state(3, ConnectionState::Ready, Some(3), None);
        assert_eq!(
            r.publish(start + Duration::from_millis(20)).ready,
            [1, 2, 3],
            "every first attempt done"
        );
        assert_eq!(r.hold_until(), None);
    }

    #[test]
    fn a_slow_member_holds_a_first_batch_only_so_long() {
        let mut r: Reconciler<Conn> = Reconciler::new("greeter".into());
        let start = Instant::now();
        r.on_resolution(&resolved(&[(1, Healthy), (2, Healthy)]));
        r.on_state(1, ConnectionState::Ready, Some(1), None);
        assert!(r.publish(start).ready.is_empty());
        assert_eq!(r.publish(start + FIRST_BATCH_WAIT).ready, [1], "hold over");
        // Once calls flow, a newcomer joins as soon as it is connected.
        r.on_resolution(&resolved(&[(1, Healthy), (2, Healthy), (3, Healthy)]));
        r.on_state(3, ConnectionState::Ready, Some(3), None);
        assert_eq!(r.publish(start + FIRST_BATCH_WAIT).ready, [1, 3]);
    }

    #[test]
    fn failures_are_counted_and_the_last_error_kept() {
        let mut r = connected(&[1, 2, 3]);
        r.on_state(
            1,
            ConnectionState::Ejected,
            None,
            Some("connect to pod-1 failed: refused".into()),
        );
        r.on_state(2, ConnectionState::NotServing, Some(2), None);
        let published = r.publish(Instant::now());
        assert_eq!(published.ready, [3]);
        assert_eq!(
            published.counts,
            Counts {
                ready: 1,
                ejected: 1,
                not_serving: 1,
                ..Counts::default()
            }
        );
        assert_eq!(
            published.last_connect_error.as_deref(),
            Some("connect to pod-1 failed: refused")
        );
        assert_eq!(
            published.endpoints[0].last_error.as_deref(),
            Some("connect to pod-1 failed: refused")
        );
        r.on_state(1, ConnectionState::Ready, Some(1), None);
        let published = r.publish(Instant::now());
        assert_eq!(published.ready, [1, 3]);
        assert_eq!(
            published.endpoints[0].last_error, None,
            "cleared once connected"
        );
    }

    #[test]
    fn other_tls_settings_make_every_connection_anew() {
        let mut r = connected(&[1, 2]);
        let with_tls = |tls| match resolved(&[(1, Healthy), (2, Healthy)]) {
            Resolution::Endpoints {
                cluster, endpoints, ..
            } => Resolution::Endpoints {
                cluster,
                endpoints,
                tls,
            },
            other => other,
        };
        let tls = Arc::new(UpstreamTls {
            identity: Some("default".into()),
            roots: "default".into(),
            san_matchers: Vec::new(),
            sni: None,
        });
        let commands = r.on_resolution(&with_tls(Some(tls.clone())));
        assert_eq!(retired(&commands), [(1, Some(1)), (2, Some(2))]);
        let specs: Vec<_> = commands
            .iter()
            .filter_map(|c| match c {
                Command::Start(spec) => Some((spec.addr.port(), spec.tls.clone())),
                Command::Retire { .. } => None,
            })
            .collect();
        assert_eq!(specs, [(1, Some(tls.clone())), (2, Some(tls.clone()))]);
        assert!(
            r.on_resolution(&with_tls(Some(tls))).is_empty(),
            "the same settings keep the connections"
        );
    }
}
