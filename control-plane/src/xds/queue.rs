//! The response queue between a stream's task and its HTTP/2 body.
//!
//! One sender (the stream task), one receiver (the response body), a
//! bound of a few items. tokio's `mpsc` allocates its slots 32 at a time,
//! about 0.6 KiB per stream for a queue two deep, which every idle
//! subscriber would carry; this one holds its items in a ring of exactly
//! its bound, behind one uncontended lock taken once per send and per
//! receive.
//!
//! Dropping the sender closes the queue (the receiver gets what is left,
//! then `None`); dropping the receiver makes every send fail, handing the
//! item back.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// A queue of at most `bound` items; its two ends.
pub fn channel<T>(bound: usize) -> (Sender<T>, Receiver<T>) {
    assert!(bound > 0, "a queue holds at least one item");
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::with_capacity(bound),
            bound,
            sender_gone: false,
            receiver_gone: false,
            sender_waiting: None,
            receiver_waiting: None,
        }),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    )
}

#[derive(Debug)]
struct Shared<T> {
    state: Mutex<State<T>>,
}

#[derive(Debug)]
struct State<T> {
    items: VecDeque<T>,
    bound: usize,
    sender_gone: bool,
    receiver_gone: bool,
    /// The sender, waiting for room.
    sender_waiting: Option<Waker>,
    /// The receiver, waiting for an item.
    receiver_waiting: Option<Waker>,
}

impl<T> Shared<T> {
    fn state(&self) -> MutexGuard<'_, State<T>> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<T> State<T> {
    /// Queues `item` if the receiver is there and there is room; then the
    /// receiver to wake, if it waits.
    fn push(&mut self, item: T) -> Result<Option<Waker>, T> {
        if self.receiver_gone || self.items.len() >= self.bound {
            return Err(item);
        }
        self.items.push_back(item);
        Ok(self.receiver_waiting.take())
    }

    /// The oldest item, and the sender to wake, if it waits for room.
    fn pop(&mut self) -> Option<(T, Option<Waker>)> {
        let item = self.items.pop_front()?;
        Some((item, self.sender_waiting.take()))
    }
}

/// Wakes `waker`, if any (after the lock is released).
fn wake(waker: Option<Waker>) {
    if let Some(waker) = waker {
        waker.wake();
    }
}

/// Keeps `cx`'s waker in `slot` (no clone when it is the same task's).
fn register(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(waker) if waker.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

/// Why [`Receiver::try_recv`] returned nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryRecvError {
    /// Nothing is queued now.
    Empty,
    /// Nothing is queued and the sender is gone.
    Closed,
}

/// The sending end.
#[derive(Debug)]
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Sender<T> {
    /// Queues `item`, waiting while the queue is full; the item back when
    /// the receiver is gone. Dropping the future before it completes drops
    /// the item.
    pub async fn send(&self, item: T) -> Result<(), T> {
        let mut item = Some(item);
        poll_fn(|cx| {
            let mut state = self.shared.state();
            let Some(taken) = item.take() else {
                unreachable!("polled after completion")
            };
            match state.push(taken) {
                Ok(receiver) => {
                    drop(state);
                    wake(receiver);
                    Poll::Ready(Ok(()))
                }
                Err(taken) if state.receiver_gone => Poll::Ready(Err(taken)),
                Err(taken) => {
                    item = Some(taken);
                    register(&mut state.sender_waiting, cx);
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// Queues `item` if there is room at once; the item back when there is
    /// none or the receiver is gone.
    pub fn try_send(&self, item: T) -> Result<(), T> {
        let mut state = self.shared.state();
        let receiver = state.push(item)?;
        drop(state);
        wake(receiver);
        Ok(())
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut state = self.shared.state();
        state.sender_gone = true;
        let receiver = state.receiver_waiting.take();
        drop(state);
        wake(receiver);
    }
}

/// The receiving end.
#[derive(Debug)]
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Receiver<T> {
    /// The next item; `None` once the sender is gone and nothing is left.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut state = self.shared.state();
        if let Some((item, sender)) = state.pop() {
            drop(state);
            wake(sender);
            return Poll::Ready(Some(item));
        }
        if state.sender_gone {
            return Poll::Ready(None);
        }
        // Registered under the lock: a send after this wakes this waker.
        register(&mut state.receiver_waiting, cx);
        Poll::Pending
    }

    /// The next item if one is queued now.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let mut state = self.shared.state();
        match state.pop() {
            Some((item, sender)) => {
                drop(state);
                wake(sender);
                Ok(item)
            }
            None if state.sender_gone => Err(TryRecvError::Closed),
            None => Err(TryRecvError::Empty),
        }
    }

    /// The next item; `None` once the sender is gone and nothing is left.
    pub async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Items queued now.
    pub fn len(&self) -> usize {
        self.shared.state().items.len()
    }

    /// Whether nothing is queued now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut state = self.shared.state();
        state.receiver_gone = true;
        let items = std::mem::take(&mut state.items);
        let sender = state.sender_waiting.take();
        drop(state);
        drop(items);
        wake(sender);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const LIMIT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn items_come_out_in_order_and_a_full_queue_waits_for_room() {
        let (tx, mut rx) = channel(2);
        tx.send(1).await.unwrap();
        tx.try_send(2).unwrap();
        assert_eq!(tx.try_send(3), Err(3), "full");
        assert_eq!(rx.len(), 2);

        let sender = tokio::spawn(async move {
            tx.send(3).await.unwrap();
            tx
        });
        tokio::task::yield_now().await;
        assert!(!sender.is_finished(), "waits while the queue is full");
        assert_eq!(rx.recv().await, Some(1));
        let tx = tokio::time::timeout(LIMIT, sender).await.unwrap().unwrap();
        assert_eq!(rx.recv().await, Some(2));
        assert_eq!(rx.recv().await, Some(3));
        assert!(rx.is_empty());
        drop(tx);
        assert_eq!(rx.recv().await, None, "closed once the sender is gone");
    }

    #[tokio::test]
    async fn a_waiting_receiver_is_woken_by_a_send_and_by_the_sender_leaving() {
        let (tx, mut rx) = channel::<u8>(2);
        let receiver = tokio::spawn(async move {
            let first = rx.recv().await;
            let second = rx.recv().await;
            (first, second)
        });
        tokio::task::yield_now().await;
        tx.send(7).await.unwrap();
        tokio::task::yield_now().await;
        drop(tx);
        let (first, second) = tokio::time::timeout(LIMIT, receiver)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((first, second), (Some(7), None));
    }

    #[tokio::test]
    async fn without_a_receiver_sends_fail_and_a_waiting_sender_is_released() {
        let (tx, rx) = channel(1);
        tx.send("queued").await.unwrap();
        let sender = tokio::spawn(async move { tx.send("waiting").await });
        tokio::task::yield_now().await;
        assert!(!sender.is_finished());
        drop(rx);
        let result = tokio::time::timeout(LIMIT, sender).await.unwrap().unwrap();
        assert_eq!(result, Err("waiting"));
    }
}
