//! The connection pool: one subchannel (a task owning at most one HTTP/2
//! connection) per endpoint the control plane lists as HEALTHY, and a
//! manager task that reconciles them with each discovery update and
//! publishes what the picker and the application see.
//!
//! Reconciling an update:
//! - a HEALTHY endpoint without a subchannel gets one (it connects at once);
//! - an endpoint that stays gets to keep its connection, untouched;
//! - an endpoint that turns DRAINING or not ready, or disappears, is
//!   retired: out of rotation at once, its in-flight calls finish, then its
//!   connection closes (the view shows it `Closing` until the socket is
//!   closed);
//! - while discovery is waiting for a changed resource, the current
//!   endpoints stay; when the service is deleted, all are retired.
//!
//! While the picker is empty (at start-up, or after every endpoint was
//! lost) the first connections of a batch are published together, once
//! every first attempt has finished or after [`FIRST_BATCH_WAIT`], so the
//! first calls are spread like all later ones.

pub(crate) mod conn;
pub(crate) mod picker;

mod health;
pub(crate) mod subchannel;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::model::{Endpoint, EndpointHealth, Resolution};
use crate::view::{ConnectionState, ControlPlaneStatus, EndpointSet, EndpointState, ServiceStatus};
use crate::why::{Counts, Why};
use conn::ConnHandle;
use picker::{Picker, Snapshot};
use subchannel::{PoolSettings, Spec, SubEvent};

/// How long a first batch of connections may wait for its slowest member.
pub(crate) const FIRST_BATCH_WAIT: Duration = Duration::from_millis(250);

/// What the pool shares with the channel.
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) picker: Picker,
    /// Bumped on every published snapshot; waiting calls watch it.
    pub(crate) changed: watch::Sender<u64>,
    /// The application's view.
    pub(crate) view: watch::Sender<EndpointSet>,
}

impl Core {
    pub(crate) fn new(
        target: Arc<str>,
        control_plane: watch::Receiver<ControlPlaneStatus>,
    ) -> Self {
        let service = ServiceStatus::Waiting(format!("listener {target:?}"));
        let view = EndpointSet {
            target: target.to_string(),
            service: service.clone(),
            endpoints: Vec::new(),
            control_plane: control_plane.borrow().clone(),
        };
        let why = Why {
            target,
            service,
            counts: Counts::default(),
            control_plane,
            last_connect_error: None,
        };
        Self {
            picker: Picker::new(Snapshot {
                ready: Vec::new(),
                why,
            }),
            changed: watch::channel(0).0,
            view: watch::channel(view).0,
        }
    }
}

/// Starts the manager; it stops with `stop`.
pub(crate) fn spawn(
    core: Arc<Core>,
    settings: Arc<PoolSettings>,
    target: Arc<str>,
    resolution: watch::Receiver<Resolution>,
    control_plane: watch::Receiver<ControlPlaneStatus>,
    stop: CancellationToken,
) {
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let manager = Manager {
        core,
        settings,
        target,
        resolution,
        stop,
        events_tx,
        events_rx,
        next_id: 0,
        entries: Vec::new(),
        closing: Vec::new(),
        service: ServiceStatus::Waiting(String::new()),
        control_plane,
        last_connect_error: None,
        hold: Hold::Off,
    };
    tokio::spawn(manager.run());
}

/// One endpoint from the control plane, and its subchannel if it has one.
#[derive(Debug)]
struct Entry {
    endpoint: Endpoint,
    sub: Option<Sub>,
}

/// The manager's record of a subchannel task.
#[derive(Debug)]
struct Sub {
    id: u64,
    addr: SocketAddr,
    hostname: Arc<str>,
    retire: CancellationToken,
    state: ConnectionState,
    conn: Option<Arc<ConnHandle>>,
    error: Option<String>,
    /// Whether its first connection attempt has finished.
    attempted: bool,
}

/// The first-batch hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    Off,
    Until(Instant),
    Expired,
}

struct Manager {
    core: Arc<Core>,
    settings: Arc<PoolSettings>,
    target: Arc<str>,
    resolution: watch::Receiver<Resolution>,
    stop: CancellationToken,
    events_tx: mpsc::UnboundedSender<SubEvent>,
    events_rx: mpsc::UnboundedReceiver<SubEvent>,
    next_id: u64,
    /// In the control plane's order.
    entries: Vec<Entry>,
    /// Retired subchannels whose connections are still closing.
    closing: Vec<Sub>,
    service: ServiceStatus,
    /// The control plane's state; `last_update` changes without waking us.
    control_plane: watch::Receiver<ControlPlaneStatus>,
    last_connect_error: Option<String>,
    hold: Hold,
}

impl Manager {
    async fn run(mut self) {
        self.apply_xds();
        self.publish();
        loop {
            let hold_until = match self.hold {
                Hold::Until(at) => Some(at),
                _ => None,
            };
            tokio::select! {
                () = self.stop.cancelled() => break,
                changed = self.resolution.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    self.apply_xds();
                }
                changed = self.control_plane.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    self.control_plane.mark_unchanged();
                }
                Some(event) = self.events_rx.recv() => self.on_event(event),
                () = sleep_until(hold_until) => self.hold = Hold::Expired,
            }
            self.publish();
        }
        for entry in std::mem::take(&mut self.entries) {
            if let Some(sub) = entry.sub {
                sub.retire.cancel();
            }
        }
    }

    fn apply_xds(&mut self) {
        let resolution = self.resolution.borrow_and_update().clone();
        match resolution {
            Resolution::Endpoints { cluster, endpoints } => {
                self.service = ServiceStatus::Resolved { cluster };
                self.reconcile(&endpoints);
            }
            Resolution::Waiting(what) => self.service = ServiceStatus::Waiting(what),
            Resolution::DoesNotExist(what) => {
                self.service = ServiceStatus::DoesNotExist(what);
                self.reconcile(&[]);
            }
            Resolution::Unusable(why) => {
                self.service = ServiceStatus::Unusable(why);
                self.reconcile(&[]);
            }
        }
    }

    fn reconcile(&mut self, endpoints: &[Endpoint]) {
        let mut old: HashMap<SocketAddr, Entry> = std::mem::take(&mut self.entries)
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
                    self.retire(sub);
                }
            }
            if entry.endpoint.health != endpoint.health {
                tracing::info!(target = %self.target, endpoint = %endpoint.label(), health = ?endpoint.health, "endpoint health changed");
            }
            entry.endpoint = endpoint.clone();
            match (endpoint.health, entry.sub.is_some()) {
                (EndpointHealth::Healthy, false) => entry.sub = Some(self.start(endpoint)),
                (EndpointHealth::Draining | EndpointHealth::NotReady, true) => {
                    if let Some(sub) = entry.sub.take() {
                        self.retire(sub);
                    }
                }
                _ => {}
            }
            entries.push(entry);
        }
        for (_, entry) in old {
            tracing::info!(target = %self.target, endpoint = %entry.endpoint.label(), "endpoint removed");
            if let Some(sub) = entry.sub {
                self.retire(sub);
            }
        }
        self.entries = entries;
    }

    fn start(&mut self, endpoint: &Endpoint) -> Sub {
        self.next_id += 1;
        let hostname: Arc<str> = endpoint.hostname.as_str().into();
        let retire = self.stop.child_token();
        subchannel::spawn(
            Spec {
                id: self.next_id,
                addr: endpoint.addr,
                hostname: hostname.clone(),
            },
            self.settings.clone(),
            self.events_tx.clone(),
            retire.clone(),
        );
        Sub {
            id: self.next_id,
            addr: endpoint.addr,
            hostname,
            retire,
            state: ConnectionState::Connecting,
            conn: None,
            error: None,
            attempted: false,
        }
    }

    fn retire(&mut self, mut sub: Sub) {
        sub.retire.cancel();
        if let Some(conn) = sub.conn.take() {
            // Out of rotation now, not when the task gets to it.
            conn.signals.withdraw();
        }
        sub.state = ConnectionState::Closing;
        self.closing.push(sub);
    }

    fn on_event(&mut self, event: SubEvent) {
        match event {
            SubEvent::State {
                id,
                state,
                conn,
                error,
            } => {
                if let Some(error) = &error {
                    self.last_connect_error = Some(error.clone());
                }
                if let Some(sub) = self
                    .entries
                    .iter_mut()
                    .filter_map(|e| e.sub.as_mut())
                    .find(|s| s.id == id)
                {
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
                // Retired subchannels stay `Closing` whatever they report.
            }
            SubEvent::Closed { id } => {
                self.closing.retain(|sub| sub.id != id);
                for entry in &mut self.entries {
                    if entry.sub.as_ref().is_some_and(|s| s.id == id) {
                        entry.sub = None;
                    }
                }
            }
        }
    }

    fn publish(&mut self) {
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
        let picker_empty = self.core.picker.snapshot().ready.is_empty();
        if ready.is_empty() || !picker_empty {
            self.hold = Hold::Off;
        } else if first_attempts_pending {
            let now = Instant::now();
            match self.hold {
                Hold::Off => {
                    self.hold = Hold::Until(now + FIRST_BATCH_WAIT);
                    ready.clear();
                }
                Hold::Until(at) if now < at => ready.clear(),
                _ => {}
            }
        }
        let why = Why {
            target: self.target.clone(),
            service: self.service.clone(),
            counts,
            control_plane: self.control_plane.clone(),
            last_connect_error: self.last_connect_error.clone(),
        };
        self.core.picker.publish(Snapshot { ready, why });
        self.core.changed.send_modify(|generation| *generation += 1);
        let view = self.view();
        self.core.view.send_if_modified(|current| {
            let changed = *current != view;
            if changed {
                *current = view;
            }
            changed
        });
    }

    fn view(&self) -> EndpointSet {
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
        EndpointSet {
            target: self.target.to_string(),
            service: self.service.clone(),
            endpoints,
            control_plane: self.control_plane.borrow().clone(),
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
