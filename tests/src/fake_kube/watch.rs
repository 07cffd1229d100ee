//! WATCH requests: a chunked response of newline-delimited JSON events.
//!
//! A watch first catches up (synthetic ADDED events for the current objects
//! when no resourceVersion is given, else the history after it), then streams
//! live changes until `timeoutSeconds` passes, the client leaves, or a test
//! ends it: with an ERROR 410 event ([`Signal::Expire`]), by cutting the
//! connection mid-body ([`Signal::Drop`]), or by taking the server down.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::resource::Resource;
use super::selector::{FieldSelector, LabelSelector};
use super::store::{Change, Expired, Key, Signal, Store};

/// One frame of a response body, or the error that aborts the connection.
pub(crate) type BodyFrame = Result<Frame<Bytes>, io::Error>;

/// Which objects a list or watch is about.
#[derive(Debug, Clone)]
pub(crate) struct Filter {
    pub(crate) resource: Resource,
    pub(crate) namespace: Option<String>,
    pub(crate) labels: LabelSelector,
    pub(crate) fields: FieldSelector,
}

impl Filter {
    pub(crate) fn matches(&self, key: &Key, object: &Value) -> bool {
        key.resource == self.resource
            && self
                .namespace
                .as_ref()
                .is_none_or(|ns| *ns == key.namespace)
            && self.labels.matches(object)
            && self.fields.matches(object)
    }

    /// The watch event a change is for this filter: an object that starts
    /// or stops matching is ADDED or DELETED, as on a real server.
    fn event(&self, change: &Change) -> Option<Value> {
        let was = change.old.as_ref().filter(|o| self.matches(&change.key, o));
        let is = change.new.as_ref().filter(|o| self.matches(&change.key, o));
        match (was, is) {
            (Some(_), Some(new)) => Some(event("MODIFIED", new.clone())),
            (None, Some(new)) => Some(event("ADDED", new.clone())),
            (Some(old), None) => {
                // A deleted object carries the resourceVersion of its deletion.
                let mut gone = change.new.clone().unwrap_or_else(|| old.clone());
                gone["metadata"]["resourceVersion"] = change.resource_version.to_string().into();
                Some(event("DELETED", gone))
            }
            (None, None) => None,
        }
    }
}

/// A parsed WATCH request.
#[derive(Debug, Clone)]
pub(crate) struct WatchRequest {
    pub(crate) filter: Filter,
    /// Resume after this resourceVersion; `None` (absent or "0") starts with
    /// the current objects.
    pub(crate) resource_version: Option<u64>,
    pub(crate) timeout: Duration,
    pub(crate) bookmarks: bool,
    pub(crate) send_initial_events: bool,
}

fn event(kind: &str, object: Value) -> Value {
    json!({"type": kind, "object": object})
}

fn line(value: &Value) -> BodyFrame {
    let mut text = value.to_string();
    text.push('\n');
    Ok(Frame::data(Bytes::from(text)))
}

fn bookmark(resource: Resource, resource_version: u64, initial_end: bool) -> Value {
    let mut metadata = json!({"resourceVersion": resource_version.to_string()});
    if initial_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    event(
        "BOOKMARK",
        json!({"apiVersion": resource.api_version(), "kind": resource.kind(), "metadata": metadata}),
    )
}

/// The Status a real server sends when a resourceVersion is too old.
fn expired_status(message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "Expired",
        "code": 410,
    })
}

fn too_old(expired: Expired) -> Value {
    event(
        "ERROR",
        expired_status(&format!(
            "too old resource version: {} ({})",
            expired.requested, expired.oldest
        )),
    )
}

/// Lets the connection write out what was sent so far, so a cut comes
/// after the events that preceded it, as on a real network.
async fn flush(tx: &mpsc::Sender<BodyFrame>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    while tx.capacity() < tx.max_capacity() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // The connection flushes right after it finds the body pending.
    tokio::time::sleep(Duration::from_millis(20)).await;
}

/// Streams the watch into `tx` until it ends. `cancel` is the connection
/// generation: when it fires the server is going down.
pub(crate) async fn run(
    store: Arc<Mutex<Store>>,
    request: WatchRequest,
    tx: mpsc::Sender<BodyFrame>,
    cancel: CancellationToken,
) {
    let filter = &request.filter;
    // Catch up and subscribe under one lock, so no change falls in between.
    let (mut signals, catch_up, current) = {
        let store = store.lock().expect("store lock");
        let signals = store.subscribe();
        let catch_up = match request.resource_version {
            Some(rv) if !request.send_initial_events => store.changes_since(rv).map(|changes| {
                changes
                    .iter()
                    .filter_map(|c| filter.event(c))
                    .collect::<Vec<_>>()
            }),
            _ => Ok(store
                .snapshot(filter.resource, filter.namespace.as_deref(), None)
                .unwrap_or_default()
                .into_iter()
                .filter(|(key, object)| filter.matches(key, object))
                .map(|(_, object)| event("ADDED", object))
                .collect()),
        };
        (signals, catch_up, store.resource_version())
    };
    let events = match catch_up {
        Ok(events) => events,
        Err(expired) => {
            let _ = tx.send(line(&too_old(expired))).await;
            return;
        }
    };
    for event in &events {
        if tx.send(line(event)).await.is_err() {
            return;
        }
    }
    if request.send_initial_events && request.bookmarks {
        let _ = tx
            .send(line(&bookmark(filter.resource, current, true)))
            .await;
    }

    let deadline = tokio::time::Instant::now() + request.timeout;
    loop {
        let signal = tokio::select! {
            biased;
            () = cancel.cancelled() => {
                let _ = tx.try_send(Err(io::Error::other("API server going down")));
                return;
            }
            () = tx.closed() => return,
            () = tokio::time::sleep_until(deadline) => return,
            signal = signals.recv() => signal,
        };
        let out = match signal {
            Ok(Signal::Change(change)) => match filter.event(&change) {
                Some(event) => line(&event),
                None => continue,
            },
            Ok(Signal::Bookmark(rv)) if request.bookmarks => {
                line(&bookmark(filter.resource, rv, false))
            }
            Ok(Signal::Bookmark(_)) => continue,
            Ok(Signal::Expire) => {
                let oldest = store.lock().expect("store lock").compacted();
                let _ = tx
                    .send(line(&too_old(Expired {
                        requested: current,
                        oldest,
                    })))
                    .await;
                return;
            }
            Ok(Signal::Drop) => {
                flush(&tx).await;
                let _ = tx
                    .send(Err(io::Error::other(
                        "watch connection dropped by the test",
                    )))
                    .await;
                return;
            }
            Err(broadcast::error::RecvError::Lagged(_)) => {
                // A watcher that cannot keep up is ended, as by a real server.
                let oldest = store.lock().expect("store lock").compacted();
                let _ = tx
                    .send(line(&too_old(Expired {
                        requested: current,
                        oldest,
                    })))
                    .await;
                return;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if tx.send(out).await.is_err() {
            return;
        }
    }
}
