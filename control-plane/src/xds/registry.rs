//! The connected xDS clients, for the status API and metrics.
//!
//! Each ADS stream registers a [`ClientSlot`]; its task owns the stream's
//! [`Session`](super::session::Session) and shares nothing with it on the
//! per-update path. What others read is published through the slot: the
//! time of the oldest un-ACKed response as an atomic, written by the task
//! after each request or snapshot, and the [`SessionView`] on demand: the
//! status API asks ([`Registry::views`]) and each task answers between two
//! steps of its own, so nothing is copied while nobody asks. Dropping the
//! [`Registration`] (when the stream task ends, however it ends) removes
//! the client and drops the questions it did not answer.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::futures::Notified;
use tokio::sync::{Notify, oneshot};

use super::session::SessionView;
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
    /// When the oldest un-ACKed response was sent, in nanoseconds since the
    /// Unix epoch; 0: none is outstanding.
    oldest_unacked: AtomicU64,
    /// Wakes the stream task when a view is asked for.
    asked: Notify,
    questions: Mutex<Questions>,
}

/// Views asked for and not answered yet.
#[derive(Debug, Default)]
struct Questions {
    /// The stream ended: nobody answers any more.
    closed: bool,
    waiting: Vec<oneshot::Sender<SessionView>>,
}

impl ClientSlot {
    fn questions(&self) -> MutexGuard<'_, Questions> {
        self.questions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Resolves when the status API asks for the session's view (a question
    /// asked before the first poll still counts).
    pub fn asked(&self) -> Notified<'_> {
        self.asked.notified()
    }

    /// Asks the stream task for its view; `None` once the stream ended.
    fn ask(&self) -> Option<oneshot::Receiver<SessionView>> {
        let mut questions = self.questions();
        if questions.closed {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        questions.waiting.push(tx);
        drop(questions);
        self.asked.notify_one();
        Some(rx)
    }

    fn oldest_unacked(&self) -> Option<SystemTime> {
        match self.oldest_unacked.load(Ordering::Relaxed) {
            0 => None,
            nanos => Some(UNIX_EPOCH + Duration::from_nanos(nanos)),
        }
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
    pub fn register(self: &Arc<Self>, peer: Option<SocketAddr>) -> Registration {
        let stream_id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(ClientSlot {
            stream_id,
            peer,
            connected_at: SystemTime::now(),
            oldest_unacked: AtomicU64::new(0),
            asked: Notify::new(),
            questions: Mutex::default(),
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
        self.clients()
            .values()
            .filter_map(|slot| slot.oldest_unacked())
            .min()
    }

    /// Every connected client, oldest stream first, each as its stream
    /// task reports it. A stream that ends before answering is left out.
    pub async fn views(&self) -> Vec<ClientView> {
        // Ask every task first, so they answer in parallel; the registry
        // lock is not held while waiting.
        let slots: Vec<_> = self.clients().values().cloned().collect();
        let answers: Vec<_> = slots.iter().map(|slot| slot.ask()).collect();
        let mut views = Vec::with_capacity(slots.len());
        for (slot, answer) in slots.iter().zip(answers) {
            let Some(answer) = answer else { continue };
            if let Ok(session) = answer.await {
                views.push(ClientView {
                    stream_id: slot.stream_id,
                    peer: slot.peer,
                    connected_at: slot.connected_at,
                    session,
                });
            }
        }
        views
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

    /// The client's slot, shared: for a stream task that keeps a waiter on
    /// [`ClientSlot::asked`] across its steps.
    pub fn shared_slot(&self) -> Arc<ClientSlot> {
        self.slot.clone()
    }

    /// Resolves when the status API asks for the session's view; answer
    /// with [`Registration::answer`].
    pub async fn asked(&self) {
        self.slot.asked().await;
    }

    /// Answers every question waiting with `view` (built only if one is).
    pub fn answer(&self, view: impl FnOnce() -> SessionView) {
        let waiting = std::mem::take(&mut self.slot.questions().waiting);
        if waiting.is_empty() {
            return;
        }
        let view = view();
        for tx in waiting {
            let _ = tx.send(view.clone());
        }
    }

    /// Publishes when the oldest response not yet ACKed or NACKed was sent.
    pub fn set_oldest_unacked(&self, since: Option<SystemTime>) {
        let nanos = since.map_or(0, |at| {
            let nanos = at.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
            u64::try_from(nanos).unwrap_or(u64::MAX).max(1)
        });
        self.slot.oldest_unacked.store(nanos, Ordering::Relaxed);
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut questions = self.slot.questions();
        questions.closed = true;
        questions.waiting.clear();
        drop(questions);
        self.registry.clients().remove(&self.slot.stream_id);
        self.registry.metrics.client_disconnected();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xds::session::{Limits, Session};

    /// Answers the view questions of `registration` for as long as it lives.
    fn answering(registration: Registration) -> (u64, tokio::task::JoinHandle<()>) {
        let stream_id = registration.slot().stream_id;
        let session = Session::new("run", "cp", Limits::default());
        let task = tokio::spawn(async move {
            loop {
                registration.asked().await;
                registration.answer(|| session.view());
            }
        });
        (stream_id, task)
    }

    #[tokio::test]
    async fn registration_lives_as_long_as_its_handle() {
        let metrics = Arc::new(Metrics::new());
        let registry = Registry::new(metrics.clone());
        let peer: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let (a, a_task) = answering(registry.register(Some(peer)));
        let (b, b_task) = answering(registry.register(None));
        assert_ne!(a, b);
        assert_eq!(registry.len(), 2);
        assert!(
            metrics
                .encode()
                .contains("control_plane_connected_clients 2")
        );
        a_task.abort();
        let _ = a_task.await;
        let views = registry.views().await;
        assert_eq!(views.len(), 1);
        assert_eq!(views[0].stream_id, b);
        assert!(
            metrics
                .encode()
                .contains("control_plane_connected_clients 1")
        );
        b_task.abort();
        let _ = b_task.await;
        assert!(registry.is_empty());
    }

    #[test]
    fn the_oldest_unacked_response_is_published_without_the_session() {
        let registry = Registry::new(Arc::new(Metrics::new()));
        let a = registry.register(None);
        let b = registry.register(None);
        assert_eq!(registry.oldest_unacked(), None);
        let early = UNIX_EPOCH + Duration::from_secs(5);
        let late = UNIX_EPOCH + Duration::from_secs(9);
        a.set_oldest_unacked(Some(late));
        b.set_oldest_unacked(Some(early));
        assert_eq!(registry.oldest_unacked(), Some(early));
        b.set_oldest_unacked(None);
        assert_eq!(registry.oldest_unacked(), Some(late));
    }
}
