//! Strict round robin over the ready connections, on every call's path.
//!
//! The pool's manager publishes a [`Snapshot`] (the ready connections in the
//! control plane's order, and what to say when there are none) through an
//! `ArcSwap`; a call loads it without a lock, takes the next index from one
//! shared atomic counter and clones one `Arc`. Nothing is allocated and no
//! lock is taken. The counter is never reset, so rotation continues across
//! updates, and N sequential calls over k stable connections give each
//! exactly N/k.
//!
//! A connection that went away since the snapshot was published (GOAWAY,
//! reset) reports itself unusable through its signals; the picker skips it,
//! so ejection does not wait for the manager.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arc_swap::ArcSwap;

use super::conn::ConnHandle;
use crate::why::Why;

/// What the picker needs of a connection.
pub(crate) trait Pickable: Clone {
    /// Whether a new call may use it.
    fn usable(&self) -> bool;
    /// The endpoint it goes to.
    fn addr(&self) -> SocketAddr;
}

impl Pickable for Arc<ConnHandle> {
    fn usable(&self) -> bool {
        ConnHandle::usable(self)
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// What the picker works from, replaced as a whole on every change.
#[derive(Debug)]
pub(crate) struct Snapshot<C = Arc<ConnHandle>> {
    /// Connections taking calls, in the control plane's order.
    pub(crate) ready: Vec<C>,
    /// Why there is nothing to call, when there is not.
    pub(crate) why: Why,
}

/// The round-robin picker.
#[derive(Debug)]
pub(crate) struct Picker<C = Arc<ConnHandle>> {
    snapshot: ArcSwap<Snapshot<C>>,
    next: AtomicUsize,
}

impl<C: Pickable> Picker<C> {
    pub(crate) fn new(initial: Snapshot<C>) -> Self {
        Self {
            snapshot: ArcSwap::from_pointee(initial),
            next: AtomicUsize::new(0),
        }
    }

    /// Publishes a new snapshot.
    pub(crate) fn publish(&self, snapshot: Snapshot<C>) {
        self.snapshot.store(Arc::new(snapshot));
    }

    /// The current snapshot (for the slow path: explaining a failure).
    pub(crate) fn snapshot(&self) -> Arc<Snapshot<C>> {
        self.snapshot.load_full()
    }

    /// The next usable connection in rotation.
    pub(crate) fn pick(&self) -> Option<C> {
        let snapshot = self.snapshot.load();
        let ready = &snapshot.ready;
        let len = ready.len();
        if len == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..len)
            .map(|offset| &ready[start.wrapping_add(offset) % len])
            .find(|conn| conn.usable())
            .cloned()
    }

    /// Like [`Picker::pick`], avoiding `avoid` when another connection is
    /// usable (for retries).
    pub(crate) fn pick_other(&self, avoid: &C) -> Option<C> {
        let first = self.pick()?;
        if first.addr() != avoid.addr() {
            return Some(first);
        }
        let snapshot = self.snapshot.load();
        snapshot
            .ready
            .iter()
            .find(|conn| conn.addr() != avoid.addr() && conn.usable())
            .cloned()
            .or(Some(first))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::AtomicBool;

    use tokio::sync::watch;

    use super::*;
    use crate::view::{ControlPlaneStatus, ServiceStatus};
    use crate::why::Counts;

    /// A connection to port `.0`, usable while `.1` says so.
    #[derive(Debug, Clone)]
    struct Conn(u16, Arc<AtomicBool>);

    impl Pickable for Conn {
        fn usable(&self) -> bool {
            self.1.load(Ordering::Relaxed)
        }

        fn addr(&self) -> SocketAddr {
            SocketAddr::from(([10, 0, 0, 1], self.0))
        }
    }

    fn conns(ports: &[u16]) -> Vec<Conn> {
        ports
            .iter()
            .map(|p| Conn(*p, Arc::new(AtomicBool::new(true))))
            .collect()
    }

    fn snapshot(ready: Vec<Conn>) -> Snapshot<Conn> {
        Snapshot {
            ready,
            why: Why {
                target: "greeter".into(),
                service: ServiceStatus::Waiting(String::new()),
                counts: Counts::default(),
                control_plane: watch::channel(ControlPlaneStatus::new("http://cp:18000")).1,
                last_connect_error: None,
            },
        }
    }

    fn spread(picker: &Picker<Conn>, calls: usize) -> BTreeMap<u16, usize> {
        let mut counts = BTreeMap::new();
        for _ in 0..calls {
            *counts
                .entry(picker.pick().expect("a connection").0)
                .or_default() += 1;
        }
        counts
    }

    #[test]
    fn n_calls_over_k_connections_give_each_exactly_n_over_k() {
        let picker = Picker::new(snapshot(conns(&[1, 2, 3])));
        assert_eq!(
            spread(&picker, 3000),
            BTreeMap::from([(1, 1000), (2, 1000), (3, 1000)])
        );
        // Rotation goes on across a new snapshot: 4 connections, 4000 calls.
        picker.publish(snapshot(conns(&[1, 2, 3, 4])));
        assert_eq!(
            spread(&picker, 4000),
            BTreeMap::from([(1, 1000), (2, 1000), (3, 1000), (4, 1000)])
        );
    }

    #[test]
    fn an_unusable_connection_is_skipped_at_once() {
        let ready = conns(&[1, 2, 3]);
        let gone = ready[1].1.clone();
        let picker = Picker::new(snapshot(ready));
        gone.store(false, Ordering::Relaxed);
        let counts = spread(&picker, 100);
        assert_eq!(counts.get(&2), None, "{counts:?}");
        assert_eq!(counts.values().sum::<usize>(), 100);
        gone.store(true, Ordering::Relaxed);
        assert_eq!(spread(&picker, 300).get(&2), Some(&100), "back in rotation");
    }

    #[test]
    fn a_retry_goes_elsewhere_when_it_can() {
        let ready = conns(&[1, 2]);
        let first = ready[0].clone();
        let picker = Picker::new(snapshot(ready));
        for _ in 0..10 {
            assert_eq!(picker.pick_other(&first).expect("one").0, 2);
        }
        let alone = Picker::new(snapshot(conns(&[1])));
        assert_eq!(alone.pick_other(&first).expect("the only one").0, 1);
        let none = Picker::new(snapshot(Vec::new()));
        assert!(none.pick().is_none());
    }
}
