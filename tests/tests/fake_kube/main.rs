//! The fake Kubernetes API server, driven through the real `kube::Client`
//! (built from the kubeconfig it writes) and `kube::runtime::watcher`. This
//! file runs an EndpointSlice watcher as a program would and reads its
//! events.
//!
//! - `requests.rs`: LIST (pages, label selectors, namespaces), GET, and a
//!   kubeconfig with a namespace.
//! - `watches.rs`: WATCH events, a forced 410, dropped watches resuming,
//!   bookmarks.
//! - `failures.rs`: outages (refused, reset) and malformed objects.

mod failures;
mod requests;
mod watches;

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tests::fake_kube::SERVICE_NAME_LABEL;
use tokio::sync::mpsc;

const LIMIT: Duration = Duration::from_secs(30);
const STEP: Duration = Duration::from_secs(10);

/// A watcher driven by its own task (as a program would run it), with
/// kube-runtime's default backoff; its events and errors arrive here.
struct Events<K> {
    rx: mpsc::UnboundedReceiver<Result<Event<K>, watcher::Error>>,
    task: tokio::task::JoinHandle<()>,
}

impl<K> Drop for Events<K> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<K> Events<K> {
    /// The next event or error.
    async fn next(&mut self) -> Result<Event<K>, watcher::Error> {
        match tokio::time::timeout(STEP, self.rx.recv()).await {
            Ok(Some(item)) => item,
            Ok(None) => panic!("watch stream ended"),
            Err(_) => panic!("nothing from the watcher within {STEP:?}"),
        }
    }
}

fn slice_watcher(client: kube::Client, namespace: &str, service: &str) -> Events<EndpointSlice> {
    let api = Api::<EndpointSlice>::namespaced(client, namespace);
    let config = watcher::Config::default().labels(&format!("{SERVICE_NAME_LABEL}={service}"));
    let (tx, rx) = mpsc::unbounded_channel();
    let mut stream = watcher::watcher(api, config).default_backoff().boxed();
    let task = tokio::spawn(async move {
        while let Some(item) = stream.next().await {
            if tx.send(item).is_err() {
                return;
            }
        }
    });
    Events { rx, task }
}

/// The next event, skipping errors (which the watcher recovers from).
async fn next_event<K>(events: &mut Events<K>) -> Event<K> {
    loop {
        if let Ok(event) = events.next().await {
            return event;
        }
    }
}

/// Reads Init, every InitApply and InitDone; returns the listed object names.
async fn initial_names<K: kube::Resource>(events: &mut Events<K>) -> Vec<String> {
    assert!(
        matches!(next_event(events).await, Event::Init),
        "expected Init"
    );
    let mut names = Vec::new();
    loop {
        match next_event(events).await {
            Event::InitApply(object) => names.push(object.meta().name.clone().unwrap_or_default()),
            Event::InitDone => return names,
            _ => panic!("expected InitApply or InitDone"),
        }
    }
}
