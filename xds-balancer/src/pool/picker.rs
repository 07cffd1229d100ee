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

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arc_swap::ArcSwap;

use super::conn::ConnHandle;
use crate::why::Why;

/// What the picker works from, replaced as a whole on every change.
#[derive(Debug)]
pub(crate) struct Snapshot {
    /// Connections taking calls, in the control plane's order.
    pub(crate) ready: Vec<Arc<ConnHandle>>,
    /// Why there is nothing to call, when there is not.
    pub(crate) why: Why,
}

/// The round-robin picker.
#[derive(Debug)]
pub(crate) struct Picker {
    snapshot: ArcSwap<Snapshot>,
    next: AtomicUsize,
}

impl Picker {
    pub(crate) fn new(initial: Snapshot) -> Self {
        Self {
            snapshot: ArcSwap::from_pointee(initial),
            next: AtomicUsize::new(0),
        }
    }

    /// Publishes a new snapshot.
    pub(crate) fn publish(&self, snapshot: Snapshot) {
        self.snapshot.store(Arc::new(snapshot));
    }

    /// The current snapshot (for the slow path: explaining a failure).
    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// The next usable connection in rotation.
    pub(crate) fn pick(&self) -> Option<Arc<ConnHandle>> {
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
    pub(crate) fn pick_other(&self, avoid: &Arc<ConnHandle>) -> Option<Arc<ConnHandle>> {
        let first = self.pick()?;
        if first.addr != avoid.addr {
            return Some(first);
        }
        let snapshot = self.snapshot.load();
        snapshot
            .ready
            .iter()
            .find(|conn| conn.addr != avoid.addr && conn.usable())
            .cloned()
            .or(Some(first))
    }
}
