//! Strict round robin over the ready connections, on every call's path;
//! or least request (gRPC A48) where the Cluster asks for it.
//!
//! The pool's manager publishes a [`Rotation`] (the ready connections in the
//! control plane's order, and what to say when there are none) through an
//! `ArcSwap`; a call loads it without a lock, takes the next index from one
//! shared atomic counter and clones one `Arc`. Nothing is allocated and no
//! lock is taken. The counter is never reset, so rotation continues across
//! updates, and N sequential calls over k stable connections give each
//! exactly N/k.
//!
//! Least request draws `choice_count` ready connections at random (with
//! replacement, from a thread-local generator) and takes the one with the
//! fewest calls in flight; still no lock and no allocation.
//!
//! A connection that went away since the snapshot was published (GOAWAY,
//! reset) reports itself unusable through its signals; the picker skips it,
//! so ejection does not wait for the manager.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arc_swap::ArcSwap;
use rand::Rng;

use super::conn::ConnHandle;
use crate::model::PickPolicy;
use crate::unavailable::Unavailable;

/// What the picker needs of a connection.
pub(crate) trait Pickable: Clone {
    /// Whether a new call may use it.
    fn usable(&self) -> bool;
    /// The endpoint it goes to.
    fn addr(&self) -> SocketAddr;
    /// Calls in flight on it.
    fn in_flight(&self) -> usize;
}

impl Pickable for Arc<ConnHandle> {
    fn usable(&self) -> bool {
        ConnHandle::usable(self)
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn in_flight(&self) -> usize {
        ConnHandle::in_flight(self)
    }
}

/// What the picker works from, replaced as a whole on every change.
#[derive(Debug)]
pub(crate) struct Rotation<C = Arc<ConnHandle>> {
    /// Connections taking calls, in the control plane's order.
    pub(crate) ready: Vec<C>,
    /// How calls are spread over them.
    pub(crate) policy: PickPolicy,
    /// Why there is nothing to call, when there is not.
    pub(crate) why: Unavailable,
}

/// The round-robin picker.
#[derive(Debug)]
pub(crate) struct Picker<C = Arc<ConnHandle>> {
    snapshot: ArcSwap<Rotation<C>>,
    next: AtomicUsize,
}

impl<C: Pickable> Picker<C> {
    pub(crate) fn new(initial: Rotation<C>) -> Self {
        Self {
            snapshot: ArcSwap::from_pointee(initial),
            next: AtomicUsize::new(0),
        }
    }

    /// Publishes a new snapshot.
    pub(crate) fn publish(&self, snapshot: Rotation<C>) {
        self.snapshot.store(Arc::new(snapshot));
    }

    /// The current snapshot (for the slow path: explaining a failure).
    pub(crate) fn snapshot(&self) -> Arc<Rotation<C>> {
        self.snapshot.load_full()
    }

    /// The next usable connection: in rotation, or the least loaded of a
    /// few drawn at random.
    pub(crate) fn pick(&self) -> Option<C> {
        let snapshot = self.snapshot.load();
        let ready = &snapshot.ready;
        let len = ready.len();
        if len == 0 {
            return None;
        }
        if let PickPolicy::LeastRequest { choice_count } = snapshot.policy
            && let Some(conn) = least_request(ready, choice_count, &mut rand::rng())
        {
            return Some(conn.clone());
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

/// Of `choice_count` usable connections drawn from `ready` with
/// replacement, the one with the fewest calls in flight (the first drawn
/// among equals); `None` when every draw was unusable.
pub(crate) fn least_request<'a, C: Pickable>(
    ready: &'a [C],
    choice_count: u32,
    rng: &mut impl Rng,
) -> Option<&'a C> {
    let mut best: Option<(&C, usize)> = None;
    for _ in 0..choice_count {
        let conn = &ready[rng.random_range(0..ready.len())];
        if !conn.usable() {
            continue;
        }
        let load = conn.in_flight();
        if best.is_none_or(|(_, fewest)| load < fewest) {
            best = Some((conn, load));
        }
    }
    best.map(|(conn, _)| conn)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::AtomicBool;

    use tokio::sync::watch;

    use super::*;
    use crate::unavailable::Counts;
    use crate::view::{ControlPlaneStatus, ServiceStatus};

    /// A connection to port `.0`, usable while `.1` says so, with `.2`
    /// calls in flight.
    #[derive(Debug, Clone)]
    struct Conn(u16, Arc<AtomicBool>, Arc<AtomicUsize>);

    impl Pickable for Conn {
        fn usable(&self) -> bool {
            self.1.load(Ordering::Relaxed)
        }

        fn addr(&self) -> SocketAddr {
            SocketAddr::from(([10, 0, 0, 1], self.0))
        }

        fn in_flight(&self) -> usize {
            self.2.load(Ordering::Relaxed)
        }
    }

    fn conns(ports: &[u16]) -> Vec<Conn> {
        ports
            .iter()
            .map(|p| Conn(*p, Arc::new(AtomicBool::new(true)), Arc::default()))
            .collect()
    }

    fn snapshot(ready: Vec<Conn>) -> Rotation<Conn> {
        Rotation {
            ready,
            policy: PickPolicy::RoundRobin,
            why: Unavailable {
                target: "greeter".into(),
                cluster: None,
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

    #[test]
    fn least_request_takes_the_least_loaded_of_its_draws() {
        use rand::SeedableRng;
        use rand::rngs::StdRng;

        let ready = conns(&[1, 2, 3, 4]);
        for (conn, load) in ready.iter().zip([5, 0, 9, 1]) {
            conn.2.store(load, Ordering::Relaxed);
        }
        let mut rng = StdRng::seed_from_u64(7);
        let mut chosen = BTreeMap::new();
        for _ in 0..10_000 {
            let conn = least_request(&ready, 2, &mut rng).expect("one");
            *chosen.entry(conn.0).or_insert(0) += 1;
        }
        // Two draws with replacement out of four: the idle one wins every
        // pair it is in (7/16 of them), the busiest only when drawn twice
        // (1/16).
        let share = |port| f64::from(chosen.get(&port).copied().unwrap_or(0)) / 10_000.0;
        assert!((share(2) - 7.0 / 16.0).abs() < 0.03, "{chosen:?}");
        assert!((share(3) - 1.0 / 16.0).abs() < 0.02, "{chosen:?}");
        assert!(share(4) > share(1) && share(1) > share(3), "{chosen:?}");

        // Ten draws miss the idle one only (3/4)^10 of the time (6 %).
        let mut all = StdRng::seed_from_u64(1);
        let idle_wins = (0..1000)
            .filter(|_| least_request(&ready, 10, &mut all).expect("one").0 == 2)
            .count();
        assert!((910..980).contains(&idle_wins), "{idle_wins}");
        // Unusable connections are never taken.
        ready[1].1.store(false, Ordering::Relaxed);
        for _ in 0..100 {
            assert_ne!(least_request(&ready, 10, &mut all).expect("one").0, 2);
        }
    }

    #[test]
    fn a_least_request_picker_avoids_the_busy_connection() {
        let ready = conns(&[1, 2]);
        ready[0].2.store(3, Ordering::Relaxed);
        let mut snap = snapshot(ready);
        snap.policy = PickPolicy::LeastRequest { choice_count: 2 };
        let picker = Picker::new(snap);
        let counts = spread(&picker, 1000);
        // Port 1 is taken only when both draws land on it: about 1/4.
        assert!(counts[&1] < 330 && counts[&2] > 670, "{counts:?}");
    }
}
