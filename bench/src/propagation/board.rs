//! Where subscribers report what they hold, and the harness waits for them.
//!
//! Before each change the harness names the endpoint set it expects next
//! ([`Board::expect`], by [`fingerprint`]); every subscriber reports each
//! set it receives ([`Board::observe`]), and the first report of the
//! expected set is stamped with the clock. The harness waits until every
//! subscriber has reported it ([`Board::wait_all`]). Nothing here allocates
//! or locks on the subscribers' path.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// An order-independent fingerprint of the endpoints that are *not* ready,
/// never 0. Sets that differ get different fingerprints (barring a 64-bit
/// hash collision).
pub(crate) fn fingerprint(not_ready: impl IntoIterator<Item = SocketAddr>) -> u64 {
    let mut sum: u64 = 0x9e37_79b9_7f4a_7c15;
    for addr in not_ready {
        let ip = match addr.ip() {
            std::net::IpAddr::V4(ip) => u64::from(u32::from(ip)),
            std::net::IpAddr::V6(ip) => {
                let bits = u128::from(ip);
                (bits as u64) ^ ((bits >> 64) as u64)
            }
        };
        sum = sum.wrapping_add(mix((ip << 16) ^ u64::from(addr.port())));
    }
    sum | (1 << 63)
}

/// splitmix64's finaliser: spreads every input bit over the output.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The subscribers' reports.
#[derive(Debug)]
pub(crate) struct Board {
    target: AtomicU64,
    arrivals: Vec<AtomicU64>,
    updates: Vec<AtomicU64>,
    arrived: AtomicUsize,
    all_arrived: Notify,
    failures: Mutex<Vec<String>>,
}

impl Board {
    /// A board for `subscribers` subscribers.
    pub(crate) fn new(subscribers: usize) -> Self {
        Self {
            target: AtomicU64::new(0),
            arrivals: (0..subscribers).map(|_| AtomicU64::new(0)).collect(),
            updates: (0..subscribers).map(|_| AtomicU64::new(0)).collect(),
            arrived: AtomicUsize::new(0),
            all_arrived: Notify::new(),
            failures: Mutex::new(Vec::new()),
        }
    }

    /// Forgets earlier arrivals and waits for the set `fingerprint` next.
    pub(crate) fn expect(&self, fingerprint: u64) {
        self.target.store(0, Ordering::SeqCst);
        for arrival in &self.arrivals {
            arrival.store(0, Ordering::SeqCst);
        }
        self.arrived.store(0, Ordering::SeqCst);
        self.target.store(fingerprint, Ordering::SeqCst);
    }

    /// Subscriber `index` now holds the set `fingerprint`, as of `at_ns`.
    pub(crate) fn observe(&self, index: usize, fingerprint: u64, at_ns: u64) {
        let Some(arrival) = self.arrivals.get(index) else {
            return;
        };
        self.updates[index].fetch_add(1, Ordering::Relaxed);
        if fingerprint != self.target.load(Ordering::SeqCst) {
            return;
        }
        if arrival
            .compare_exchange(0, at_ns.max(1), Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
            && self.arrived.fetch_add(1, Ordering::SeqCst) + 1 == self.arrivals.len()
        {
            self.all_arrived.notify_waiters();
        }
    }

    /// Records that a subscriber failed (its stream broke).
    pub(crate) fn fail(&self, what: String) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(what);
    }

    /// Failures recorded so far.
    pub(crate) fn failures(&self) -> Vec<String> {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Waits up to `timeout` for every subscriber to report the expected
    /// set; returns whether all did.
    pub(crate) async fn wait_all(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.all_arrived.notified();
            if self.arrived.load(Ordering::SeqCst) >= self.arrivals.len() {
                return true;
            }
            // Wake now and then in case a notification raced the check.
            let nap = tokio::time::Instant::now() + Duration::from_millis(100);
            if tokio::time::timeout_at(nap.min(deadline), notified)
                .await
                .is_err()
                && tokio::time::Instant::now() >= deadline
            {
                return self.arrived.load(Ordering::SeqCst) >= self.arrivals.len();
            }
        }
    }

    /// Each subscriber's arrival time at the expected set, if it arrived.
    pub(crate) fn arrivals(&self) -> Vec<Option<u64>> {
        self.arrivals
            .iter()
            .map(|a| Some(a.load(Ordering::SeqCst)).filter(|&at| at != 0))
            .collect()
    }

    /// Updates received by all subscribers together, so far.
    pub(crate) fn updates(&self) -> u64 {
        self.updates.iter().map(|u| u.load(Ordering::Relaxed)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn fingerprints_ignore_order_and_tell_sets_apart() {
        let a = addr("127.0.1.1:80");
        let b = addr("127.0.1.2:80");
        let c = addr("127.0.1.1:81");
        assert_eq!(fingerprint([a, b]), fingerprint([b, a]));
        assert_ne!(fingerprint([a]), fingerprint([b]));
        assert_ne!(fingerprint([a]), fingerprint([c]));
        assert_ne!(fingerprint([a]), fingerprint([]));
        assert_ne!(fingerprint([]), 0);
    }

    #[tokio::test]
    async fn waits_for_every_subscriber_once() {
        let board = Board::new(2);
        board.expect(7);
        board.observe(0, 5, 100);
        assert_eq!(board.arrivals(), [None, None]);
        board.observe(0, 7, 200);
        board.observe(0, 7, 300);
        assert!(!board.wait_all(Duration::from_millis(10)).await);
        board.observe(1, 7, 400);
        assert!(board.wait_all(Duration::from_secs(5)).await);
        assert_eq!(board.arrivals(), [Some(200), Some(400)]);
        assert_eq!(board.updates(), 4);
        board.expect(9);
        assert_eq!(board.arrivals(), [None, None]);
    }
}
