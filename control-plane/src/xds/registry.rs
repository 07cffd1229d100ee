//! The connected xDS clients, for the status API and metrics.
//!
//! Each ADS stream registers a [`ClientSlot`] holding its [`Session`]
//! behind a plain mutex: the stream task locks it for the moment it takes
//! to handle one request or snapshot (never across an `.await`), and the
//! status API locks each slot just long enough to copy a [`SessionView`].
//! Nothing is copied while nobody asks. Dropping the [`Registration`]
//! (when the stream task ends, however it ends) removes the client.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use super::session::{Session, SessionView};
use crate::metrics::Metrics;

/// One connected ADS stream.
#[derive(Debug)]
pub struct ClientSlot {
    /// Unique within this run, from 1.
    pub stream_id: u64,
    /// The peer's address, when known.
    pub peer: Option<SocketAddr>,
    /// When the stream opened.
    pub connected_at: SystemTime,
    session: Mutex<Session>,
}

impl ClientSlot {
    /// Locks the session. Hold the guard only for synchronous work.
    pub fn session(&self) -> MutexGuard<'_, Session> {
        // Session methods leave it consistent even if one panicked midway.
        self.session
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A connected client as the status API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientView {
    /// Unique within this run.
    pub stream_id: u64,
    /// The peer's address, when known.
    pub peer: Option<SocketAddr>,
    /// When the stream opened.
    pub connected_at: SystemTime,
    /// Its protocol state.
    pub session: SessionView,
}

/// Every connected client.
#[derive(Debug)]
pub struct Registry {
    next_id: AtomicU64,
    clients: Mutex<BTreeMap<u64, Arc<ClientSlot>>>,
    metrics: Arc<Metrics>,
}

impl Registry {
    /// An empty registry that keeps `metrics`' connected-clients gauge.
    pub fn new(metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            next_id: AtomicU64::new(1),
            clients: Mutex::default(),
            metrics,
        })
    }

    fn clients(&self) -> MutexGuard<'_, BTreeMap<u64, Arc<ClientSlot>>> {
        self.clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a client; it stays listed until the registration drops.
    pub fn register(self: &Arc<Self>, peer: Option<SocketAddr>, session: Session) -> Registration {
        let stream_id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(ClientSlot {
            stream_id,
            peer,
            connected_at: SystemTime::now(),
            session: Mutex::new(session),
        });
        self.clients().insert(stream_id, slot.clone());
        self.metrics.client_connected();
        Registration {
            registry: self.clone(),
            slot,
        }
    }

    /// How many clients are connected.
    pub fn len(&self) -> usize {
        self.clients().len()
    }

    /// Whether no client is connected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// When the oldest response still awaiting its client's ACK or NACK
    /// was sent, over every client.
    pub fn oldest_unacked(&self) -> Option<SystemTime> {
        let slots: Vec<_> = self.clients().values().cloned().collect();
        slots
            .iter()
            .filter_map(|slot| slot.session().oldest_unacked())
            .min()
    }

    /// Every connected client, oldest stream first.
    pub fn views(&self) -> Vec<ClientView> {
        // Copy the slot list first so the registry lock is not held while
        // each session is locked.
        let slots: Vec<_> = self.clients().values().cloned().collect();
        slots
            .into_iter()
            .map(|slot| ClientView {
                stream_id: slot.stream_id,
                peer: slot.peer,
                connected_at: slot.connected_at,
                session: slot.session().view(),
            })
            .collect()
    }
}

/// A registered client; unregisters on drop.
#[derive(Debug)]
pub struct Registration {
    registry: Arc<Registry>,
    slot: Arc<ClientSlot>,
}

impl Registration {
    /// The client's slot.
    pub fn slot(&self) -> &ClientSlot {
        &self.slot
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.clients().remove(&self.slot.stream_id);
        self.registry.metrics.client_disconnected();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xds::session::Limits;

    #[test]
    fn registration_lives_as_long_as_its_handle() {
        let metrics = Arc::new(Metrics::new());
        let registry = Registry::new(metrics.clone());
        let peer: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let a = registry.register(Some(peer), Session::new("run", "cp", Limits::default()));
        let b = registry.register(None, Session::new("run", "cp", Limits::default()));
        assert_ne!(a.slot().stream_id, b.slot().stream_id);
        assert_eq!(registry.len(), 2);
        assert!(
            metrics
                .encode()
                .contains("control_plane_connected_clients 2")
        );
        drop(a);
        let views = registry.views();
        assert_eq!(views.len(), 1);
        assert_eq!(views[0].stream_id, b.slot().stream_id);
        assert!(
            metrics
                .encode()
                .contains("control_plane_connected_clients 1")
        );
        drop(b);
        assert!(registry.is_empty());
    }
}
