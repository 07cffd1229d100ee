//! The task behind one ADS stream: the I/O around a [`Session`].
//!
//! # Design notes
//!
//! One task per stream owns its [`Session`] and selects, in this order, on:
//! the server stopping, the status API asking for the session's view, a
//! new resource snapshot, the next request. Snapshots come first so that a
//! change published before a request arrived is handled before it (tests
//! rely on that order to prove that something was *not* sent). Nothing on
//! this path is shared with other tasks but the snapshot itself; after
//! each step the task publishes when its oldest un-ACKed response was sent
//! ([`Registration::set_oldest_unacked`]).
//!
//! Responses go into a small bounded queue that the stream's HTTP/2 body
//! drains. When a client stops reading, the queue fills and the task waits
//! on it, reading neither requests nor snapshots; the store's `watch`
//! channel keeps only the newest snapshot, so nothing piles up however many
//! updates the client misses, and other streams (their own tasks) are not
//! held up. When the client reads again it gets what was queued, then one
//! response computed from the newest snapshot.
//!
//! Nothing is answered before the source's first sync
//! ([`ResourceSnapshot::synced`]): a control plane that has just (re)started knows
//! no services yet, and an answer from its empty store would tell every
//! client that all its services are gone. Until then the task keeps
//! reading requests (so a client that leaves is noticed), holding the latest
//! one per type, and answers them once the source has synced; clients keep
//! using what they had meanwhile.
//!
//! A request the session refuses (over the limits) ends this stream with
//! INVALID_ARGUMENT; a stopping server, or a connection that reached its
//! maximum age, ends it with UNAVAILABLE, telling the client to reconnect.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use futures::{Stream, StreamExt};
use tokio::sync::futures::Notified;
use tokio::sync::watch;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::Status;

use super::queue::Sender;
use super::registry::{ClientSlot, Registration};
use super::session::{self, Ack, Outgoing, Received, Session};
use super::snapshot::ResourceSnapshot;
use crate::kinds::EndReason;
use crate::metrics::Metrics;

/// Responses queued per stream before the task waits for the client.
pub const QUEUE_DEPTH: usize = 2;

/// Distinct type URLs whose requests are held before the first sync (a
/// client uses four; more are dropped).
const MAX_HELD_TYPES: usize = 8;

/// Sent to clients when the server stops.
const STOPPING: &str = "the control plane is shutting down; reconnect to another instance or retry";
/// Sent to clients when their connection reached its maximum age.
const MAX_AGE: &str = "the connection reached its maximum age (--max-connection-age); reconnect \
                       (to any control plane replica)";

/// What the task puts in the queue ([`super::queue`]): boxed, so the
/// queue's ring stays two pointers wide per slot in every stream.
pub type Queued = Result<Box<Outgoing>, Box<Status>>;

/// Why a stream ended.
#[derive(Debug)]
pub enum Ended {
    /// The client closed its side.
    ClientClosed,
    /// The client's side failed (reset, malformed or oversized message).
    ClientFailed(Status),
    /// A request was refused.
    Refused(session::Error),
    /// The server is stopping.
    Stopping,
    /// The response side is gone (the client went away).
    ClientGone,
    /// The stream's connection reached its maximum age.
    MaxAge,
}

impl Ended {
    /// How the metrics count it.
    pub fn reason(&self) -> EndReason {
        match self {
            Self::ClientClosed | Self::ClientGone => EndReason::ClientClosed,
            Self::ClientFailed(status) if is_disconnect(status) => EndReason::ClientClosed,
            Self::ClientFailed(_) => EndReason::ClientError,
            Self::Refused(_) => EndReason::InvalidRequest,
            Self::Stopping => EndReason::Shutdown,
            Self::MaxAge => EndReason::MaxConnectionAge,
        }
    }
}

/// Whether a failed request stream means no more than that the client went
/// away: it cancelled the call or its connection closed (what the server's
/// request body reports as CANCELLED or UNAVAILABLE), as opposed to a
/// malformed or oversized message or an HTTP/2 protocol error.
pub fn is_disconnect(status: &Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Cancelled | tonic::Code::Unavailable
    )
}

/// The parts a stream task works with.
#[derive(Debug)]
pub struct StreamTask {
    /// The stream's protocol state. Boxed: the task's future holds the
    /// `StreamTask` both where it is built and inside `run`, and an inline
    /// session would take its size twice in every stream's allocation.
    pub session: Box<Session>,
    /// The client's registration, through which the task publishes what
    /// others read of the session.
    pub registration: Registration,
    /// The resources served, as the store changes.
    pub snapshots: watch::Receiver<Arc<ResourceSnapshot>>,
    /// Where NACKs are counted.
    pub metrics: Arc<Metrics>,
    /// Cancelled when the server stops.
    pub stopped: CancellationToken,
    /// Cancelled when the stream's connection reached its maximum age, and
    /// when the server stops: a child of `stopped`
    /// ([`CancellationToken::child_token`]), so the task waits on this one
    /// token only, which no other connection shares.
    pub aged: CancellationToken,
}

/// What ends or interrupts a stream task besides its own I/O: the stream's
/// end (server stopping or connection aged, one token) and the status API
/// asking for the view. Both futures are registered once and re-armed only
/// after they fire, so the task's wake-ups for snapshots and requests do
/// not register and unregister waiters each time.
struct Interrupts<'p, 's> {
    ended: Pin<&'p mut WaitForCancellationFutureOwned>,
    asked: Pin<&'p mut Notified<'s>>,
    slot: &'s ClientSlot,
}

/// What [`Interrupts::next`] reports.
enum Interrupt {
    /// The stream must end: the server stops or the connection aged.
    End,
    /// The status API asked for the session's view.
    Asked,
}

impl Interrupts<'_, '_> {
    async fn next(&mut self) -> Interrupt {
        tokio::select! {
            biased;
            () = self.ended.as_mut() => Interrupt::End,
            () = self.asked.as_mut() => {
                self.asked.set(self.slot.asked());
                Interrupt::Asked
            }
        }
    }
}

impl StreamTask {
    /// Serves `inbound` until it ends, writing into `queue`.
    pub async fn run<S>(mut self, mut inbound: S, queue: Sender<Queued>) -> Ended
    where
        S: Stream<Item = Result<DiscoveryRequest, Status>> + Unpin,
    {
        let slot = self.registration.shared_slot();
        let ended = self.aged.clone().cancelled_owned();
        let asked = slot.asked();
        tokio::pin!(ended, asked);
        let mut interrupts = Interrupts {
            ended,
            asked,
            slot: &slot,
        };
        let mut held = match self
            .wait_for_sync(&mut inbound, &queue, &mut interrupts)
            .await
        {
            Ok(held) => held,
            Err(ended) => return ended,
        };
        // Requests are answered from the current snapshot; only newer ones
        // wake the task.
        self.snapshots.borrow_and_update();
        loop {
            let outgoing = tokio::select! {
                biased;
                interrupt = interrupts.next() => match interrupt {
                    Interrupt::End => return self.end(&queue),
                    Interrupt::Asked => {
                        self.answer();
                        continue;
                    }
                },
                changed = self.snapshots.changed() => {
                    if changed.is_err() {
                        return stopping(&queue);
                    }
                    let snapshot = self.snapshots.borrow_and_update().clone();
                    let outgoing = self.session.on_snapshot(&snapshot, SystemTime::now());
                    if !outgoing.is_empty() {
                        self.publish_unacked();
                    }
                    outgoing
                }
                request = next_request(&mut held, &mut inbound) => match request {
                    None => return Ended::ClientClosed,
                    Some(Err(status)) => return client_failed(&queue, status),
                    Some(Ok(request)) => match self.handle(&request) {
                        Ok(outgoing) => outgoing,
                        Err(error) => {
                            let status = Status::invalid_argument(error.to_string());
                            let refusal = Err(Box::new(status));
                            if let Some(ended) = self.send(&queue, refusal, &mut interrupts).await {
                                return ended;
                            }
                            return Ended::Refused(error);
                        }
                    },
                },
            };
            for item in outgoing {
                let item = Ok(Box::new(item));
                if let Some(ended) = self.send(&queue, item, &mut interrupts).await {
                    return ended;
                }
            }
        }
    }

    /// Waits for the source's first sync, holding the latest request of
    /// each type meanwhile; returns them in order of first arrival.
    async fn wait_for_sync<S>(
        &mut self,
        inbound: &mut S,
        queue: &Sender<Queued>,
        interrupts: &mut Interrupts<'_, '_>,
    ) -> Result<VecDeque<DiscoveryRequest>, Ended>
    where
        S: Stream<Item = Result<DiscoveryRequest, Status>> + Unpin,
    {
        let mut held: VecDeque<DiscoveryRequest> = VecDeque::new();
        if !self.snapshots.borrow().synced {
            tracing::info!("holding the stream's requests until the source's first sync");
        }
        while !self.snapshots.borrow_and_update().synced {
            tokio::select! {
                biased;
                interrupt = interrupts.next() => match interrupt {
                    Interrupt::End => return Err(self.end(queue)),
                    Interrupt::Asked => self.answer(),
                },
                changed = self.snapshots.changed() => {
                    if changed.is_err() {
                        return Err(stopping(queue));
                    }
                }
                request = inbound.next() => match request {
                    None => return Err(Ended::ClientClosed),
                    Some(Err(status)) => return Err(client_failed(queue, status)),
                    Some(Ok(request)) => {
                        let same_type = held.iter().position(|r| r.type_url == request.type_url);
                        match same_type {
                            Some(i) => held[i] = request,
                            None if held.len() < MAX_HELD_TYPES => held.push_back(request),
                            None => {}
                        }
                    }
                },
            }
        }
        Ok(held)
    }

    /// Answers the status API's questions with the session's view.
    fn answer(&self) {
        self.registration.answer(|| self.session.view());
    }

    fn publish_unacked(&self) {
        self.registration
            .set_oldest_unacked(self.session.oldest_unacked());
    }

    fn handle(&mut self, request: &DiscoveryRequest) -> Result<Vec<Outgoing>, session::Error> {
        let snapshot = self.snapshots.borrow().clone();
        let had_node = self.session.node().is_some();
        let reply = self
            .session
            .on_request(request, &snapshot, SystemTime::now())?;
        self.publish_unacked();
        if !had_node && let Some(node) = self.session.node() {
            tracing::info!(
                node = node.id,
                user_agent = node.user_agent,
                "xDS client identified"
            );
        }
        match &reply.received {
            Received::Request {
                kind,
                ack,
                added,
                removed,
            } => {
                if let Ack::Nacked { version, error } = ack {
                    self.metrics.nack(*kind);
                    tracing::warn!(kind = kind.short_name(), version, error, "NACK");
                }
                if added + removed > 0 {
                    tracing::debug!(
                        kind = kind.short_name(),
                        added,
                        removed,
                        "subscription changed"
                    );
                }
            }
            Received::Stale { kind, nonce } => {
                tracing::debug!(kind = kind.short_name(), nonce, "stale request ignored");
            }
            Received::UnknownType { type_url } => {
                tracing::warn!(
                    type_url,
                    "request for a resource type this control plane does not serve; ignored"
                );
            }
        }
        Ok(reply.responses)
    }

    /// Queues `item`, waiting while the queue is full; `Some` when the
    /// stream must end instead.
    async fn send(
        &self,
        queue: &Sender<Queued>,
        item: Queued,
        interrupts: &mut Interrupts<'_, '_>,
    ) -> Option<Ended> {
        let send = queue.send(item);
        tokio::pin!(send);
        loop {
            return tokio::select! {
                biased;
                interrupt = interrupts.next() => match interrupt {
                    Interrupt::End => Some(self.end(queue)),
                    // A client that stops reading is still shown by the
                    // status API.
                    Interrupt::Asked => {
                        self.answer();
                        continue;
                    }
                },
                sent = &mut send => sent.is_err().then_some(Ended::ClientGone),
            };
        }
    }

    /// Ends the stream because the server stops or the connection aged
    /// (`aged` fired: it is cancelled by both).
    fn end(&self, queue: &Sender<Queued>) -> Ended {
        if self.stopped.is_cancelled() {
            stopping(queue)
        } else {
            aged(queue)
        }
    }
}

/// The next request: a held one first, then the client's next.
async fn next_request<S>(
    held: &mut VecDeque<DiscoveryRequest>,
    inbound: &mut S,
) -> Option<Result<DiscoveryRequest, Status>>
where
    S: Stream<Item = Result<DiscoveryRequest, Status>> + Unpin,
{
    match held.pop_front() {
        Some(request) => Some(Ok(request)),
        None => inbound.next().await,
    }
}

/// The client's side failed (a malformed or oversized message): tell it
/// why, if it is still listening.
fn client_failed(queue: &Sender<Queued>, status: Status) -> Ended {
    let reason = format!("the request stream failed: {}", status.message());
    let _ = queue.try_send(Err(Box::new(Status::new(status.code(), reason))));
    Ended::ClientFailed(status)
}

fn stopping(queue: &Sender<Queued>) -> Ended {
    // Best effort: a full queue means the client is not reading anyway.
    let _ = queue.try_send(Err(Box::new(Status::unavailable(STOPPING))));
    Ended::Stopping
}

fn aged(queue: &Sender<Queued>) -> Ended {
    let _ = queue.try_send(Err(Box::new(Status::unavailable(MAX_AGE))));
    Ended::MaxAge
}

#[cfg(test)]
mod tests;
