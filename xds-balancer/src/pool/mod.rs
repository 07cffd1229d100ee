//! The connection pool: one subchannel (a task owning at most one HTTP/2
//! connection) per endpoint the control plane lists as HEALTHY, and a
//! manager task that reconciles them with each discovery update and
//! publishes what the picker and the application see.
//!
//! Reconciling an update:
//! - a HEALTHY endpoint without a subchannel gets one (it connects at once);
//! - an endpoint that stays gets to keep its connection, untouched;
//! - an endpoint that turns DRAINING, or disappears, is retired: out of
//!   rotation at once, its in-flight calls finish, then its connection
//!   closes (the view shows it `Closing` until the socket is closed);
//! - an endpoint that turns not ready is out of rotation at once, but its
//!   connection is kept, idle (`Standby` in the view), while it stays up,
//!   so that a readiness flap costs no reconnect; a kept connection that
//!   is lost is not replaced while the endpoint is not ready;
//! - while discovery is waiting for a changed resource, the current
//!   endpoints stay; when the service is deleted, all are retired.
//!
//! An update costs what it changed: the same endpoints again wake nothing,
//! a readiness change touches that endpoint's record and its row of the
//! view, and the picker gets a new snapshot only when what calls see
//! changed (its connections, or what an empty picker says).
//!
//! While the picker is empty (at start-up, or after every endpoint was
//! lost) the first connections of a batch are published together, once
//! every first attempt has finished or after
//! [`FIRST_BATCH_WAIT`](reconcile::FIRST_BATCH_WAIT), so the first calls
//! are spread like all later ones.
//!
//! # Layout
//!
//! - `reconcile`: all of the above as a pure state machine, unit-tested.
//! - this module: the manager task, the thin I/O around it (it carries out
//!   the machine's commands and publishes its snapshots).
//! - `subchannel`: one endpoint's connection over time, in its own task;
//!   `conn`: the HTTP/2 connection on h2; `stream`: one call's stream on
//!   it; `health`: client-side health checks.
//! - `picker`: the lock-free pick (round robin, or least request) over the
//!   published snapshot.
//! - `tls`: the certificate providers TLS Clusters name.

pub(crate) mod conn;
mod health;
pub(crate) mod picker;
pub(crate) mod reconcile;
pub(crate) mod stream;
pub(crate) mod subchannel;
pub(crate) mod tls;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::model::{PickPolicy, Resolution};
use crate::unavailable::{Counts, Unavailable};
use crate::view::{ControlPlaneStatus, EndpointSet, ServiceStatus};
use conn::ConnHandle;
use picker::{Picker, Rotation};
use reconcile::{Command, PickState, Reconciler};
use subchannel::{PoolSettings, SubEvent};

/// What the pool shares with the channel.
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) picker: Picker,
    /// Bumped on every published snapshot; waiting calls watch it.
    pub(crate) changed: watch::Sender<u64>,
    /// This pool's part of the application's view.
    pub(crate) view: watch::Sender<EndpointSet>,
    /// Set when the routes no longer lead here: calls waiting for an
    /// endpoint of this pool choose their cluster again.
    retired: AtomicBool,
    /// The cluster, as messages name it (when routes lead to several).
    label: Option<Arc<str>>,
}

impl Core {
    /// A pool for `target`; `cluster` names it in messages.
    pub(crate) fn new(
        target: Arc<str>,
        cluster: Option<Arc<str>>,
        control_plane: watch::Receiver<ControlPlaneStatus>,
    ) -> Self {
        let service = ServiceStatus::Waiting(format!("listener {target:?}"));
        let view = EndpointSet {
            target: target.to_string(),
            service: service.clone(),
            endpoints: Vec::new(),
            control_plane: control_plane.borrow().clone(),
        };
        let why = Unavailable {
            target,
            cluster: cluster.clone(),
            service,
            counts: Counts::default(),
            control_plane,
            last_connect_error: None,
        };
        Self {
            picker: Picker::new(Rotation {
                ready: Vec::new(),
                policy: PickPolicy::default(),
                why,
            }),
            changed: watch::channel(0).0,
            view: watch::channel(view).0,
            retired: AtomicBool::new(false),
            label: cluster,
        }
    }

    /// Marks the pool retired and wakes the calls waiting on it.
    pub(crate) fn retire(&self) {
        self.retired.store(true, Ordering::Release);
        self.changed.send_modify(|generation| *generation += 1);
    }

    /// Whether the routes no longer lead here.
    pub(crate) fn retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }
}

/// Starts the manager; it stops with `stop`. Every change of its view
/// bumps `views`.
pub(crate) fn spawn(
    core: Arc<Core>,
    settings: Arc<PoolSettings>,
    target: Arc<str>,
    resolution: watch::Receiver<Resolution>,
    control_plane: watch::Receiver<ControlPlaneStatus>,
    views: watch::Sender<u64>,
    stop: CancellationToken,
) {
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let manager = Manager {
        core,
        settings,
        reconciler: Reconciler::new(target.clone()),
        target,
        resolution,
        control_plane,
        views,
        stop,
        events_tx,
        events_rx,
        retire: HashMap::new(),
    };
    tokio::spawn(manager.run());
}

/// The manager task: feeds the reconciler, carries out its commands and
/// publishes what it computes.
struct Manager {
    core: Arc<Core>,
    settings: Arc<PoolSettings>,
    reconciler: Reconciler<Arc<ConnHandle>>,
    target: Arc<str>,
    resolution: watch::Receiver<Resolution>,
    /// The control plane's state; `last_update` changes without waking us.
    control_plane: watch::Receiver<ControlPlaneStatus>,
    /// Bumped when the view changes.
    views: watch::Sender<u64>,
    stop: CancellationToken,
    events_tx: mpsc::UnboundedSender<SubEvent>,
    events_rx: mpsc::UnboundedReceiver<SubEvent>,
    /// Each running subchannel's retirement switch.
    retire: HashMap<u64, CancellationToken>,
}

impl Manager {
    async fn run(mut self) {
        self.apply_resolution();
        self.publish();
        loop {
            let hold_until = self.reconciler.hold_until();
            // Whether to publish even if the reconciler saw no change.
            let mut due = false;
            tokio::select! {
                () = self.stop.cancelled() => break,
                changed = self.resolution.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    self.apply_resolution();
                }
                changed = self.control_plane.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    self.control_plane.mark_unchanged();
                    due = true;
                }
                Some(event) = self.events_rx.recv() => match event {
                    SubEvent::State { id, state, conn, error } => {
                        let command = self.reconciler.on_state(id, state, conn, error);
                        self.carry_out(command);
                    }
                    SubEvent::Closed { id } => {
                        self.retire.remove(&id);
                        self.reconciler.on_closed(id);
                    }
                },
                () = sleep_until(hold_until) => due = true,
            }
            if self.reconciler.take_dirty() || due {
                self.publish();
            }
        }
        for (_, retire) in self.retire.drain() {
            retire.cancel();
        }
    }

    fn apply_resolution(&mut self) {
        let resolution = self.resolution.borrow_and_update().clone();
        let commands = self.reconciler.on_resolution(&resolution);
        self.carry_out(commands);
    }

    /// Carries out the reconciler's commands.
    fn carry_out(&mut self, commands: impl IntoIterator<Item = Command<Arc<ConnHandle>>>) {
        for command in commands {
            match command {
                Command::Start(spec) => {
                    let retire = self.stop.child_token();
                    self.retire.insert(spec.id, retire.clone());
                    subchannel::spawn(spec, self.settings.clone(), self.events_tx.clone(), retire);
                }
                Command::Retire { id, conn } => {
                    if let Some(retire) = self.retire.get(&id) {
                        retire.cancel();
                    }
                    if let Some(conn) = conn {
                        // Out of rotation now, not when the task gets to it.
                        conn.signals.withdraw();
                    }
                }
            }
        }
    }

    /// Publishes what changed: a new picker snapshot when what calls see
    /// changed, the view's rows in place.
    fn publish(&mut self) {
        let current = self.core.picker.snapshot();
        let pick = self.reconciler.pick_state(Instant::now(), &current.ready);
        let active = pick.active;
        if !same_pick(&current, &pick) {
            let why = Unavailable {
                target: self.target.clone(),
                cluster: self.core.label.clone(),
                service: pick.service.clone(),
                counts: pick.counts,
                control_plane: self.control_plane.clone(),
                last_connect_error: pick.last_connect_error,
            };
            let ready = pick.ready.unwrap_or_else(|| current.ready.clone());
            self.core.picker.publish(Rotation {
                ready,
                policy: pick.policy,
                why,
            });
            self.core.changed.send_modify(|generation| *generation += 1);
        }
        drop(current);
        let reconciler = &self.reconciler;
        let control_plane = self.control_plane.borrow();
        let changed = self.core.view.send_if_modified(|view| {
            let mut changed = reconciler.write_view(active, &mut view.endpoints);
            if view.service != pick.service {
                view.service = pick.service;
                changed = true;
            }
            if view.control_plane != *control_plane {
                view.control_plane.clone_from(&control_plane);
                changed = true;
            }
            changed
        });
        drop(control_plane);
        if changed {
            self.views.send_modify(|generation| *generation += 1);
        }
    }
}

/// The same connection (not merely one to the same endpoint).
pub(crate) trait Same {
    /// Whether `self` and `other` are one connection.
    fn same(&self, other: &Self) -> bool;
}

impl<T> Same for Arc<T> {
    fn same(&self, other: &Self) -> bool {
        Arc::ptr_eq(self, other)
    }
}

/// Whether `pick` would give calls what `current` gives them: the same
/// connections in the same order (`pick.ready` is `None` then), policy,
/// and reasons when there are none.
pub(crate) fn same_pick<C>(current: &Rotation<C>, pick: &PickState<C>) -> bool {
    current.policy == pick.policy
        && pick.ready.is_none()
        && current.why.service == pick.service
        && current.why.counts == pick.counts
        && current.why.last_connect_error == pick.last_connect_error
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Same for u16 {
        fn same(&self, other: &Self) -> bool {
            self == other
        }
    }

    fn snapshot(ready: Vec<u16>, counts: Counts) -> Rotation<u16> {
        Rotation {
            ready,
            policy: PickPolicy::RoundRobin,
            why: Unavailable {
                target: "greeter".into(),
                cluster: None,
                service: ServiceStatus::Waiting(String::new()),
                counts,
                control_plane: watch::channel(ControlPlaneStatus::new("cp")).1,
                last_connect_error: None,
            },
        }
    }

    fn pick(ready: Option<Vec<u16>>, counts: Counts) -> PickState<u16> {
        PickState {
            ready,
            policy: PickPolicy::RoundRobin,
            counts,
            service: ServiceStatus::Waiting(String::new()),
            last_connect_error: None,
            active: Some(0),
        }
    }

    #[test]
    fn the_picker_is_republished_only_when_calls_would_see_a_change() {
        let counts = Counts {
            ready: 2,
            not_ready: 1,
            ..Counts::default()
        };
        let current = snapshot(vec![1, 2], counts);
        assert!(same_pick(&current, &pick(None, counts)));
        assert!(!same_pick(&current, &pick(Some(vec![2, 1]), counts)));
        let fewer = Counts {
            not_ready: 0,
            ..counts
        };
        assert!(
            !same_pick(&current, &pick(None, fewer)),
            "what an empty picker would say"
        );
        let mut least = pick(None, counts);
        least.policy = PickPolicy::LeastRequest { choice_count: 2 };
        assert!(!same_pick(&current, &least));
    }
}
