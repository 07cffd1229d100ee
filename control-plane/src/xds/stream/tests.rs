use std::net::SocketAddr;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

use super::*;
use crate::kinds::ResourceType;
use crate::model::{Endpoint, Service, ServicePort};
use crate::names::Naming;
use crate::store::{SourceKind, SourceState, SourceStatus, Store};
use crate::xds::queue;
use crate::xds::registry::Registry;
use crate::xds::session::{Limits, Session};
use crate::xds::snapshot::SnapshotBuilder;

const GREETER: &str = "greeter.default.svc.cluster.local:80";
const LIMIT: Duration = Duration::from_secs(10);

fn set(store: &Arc<Store>, addr: &str) {
    let service = Service {
        name: "greeter".into(),
        namespace: "default".into(),
        ports: vec![ServicePort {
            name: None,
            port: 80,
            endpoints: vec![Endpoint::ready(addr.parse::<SocketAddr>().unwrap())],
        }],
        tls: None,
        policy: Default::default(),
    };
    store.source_handle().upsert(service, "test").unwrap();
}

struct Harness {
    store: Arc<Store>,
    snapshots: Arc<SnapshotBuilder>,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    stopped: CancellationToken,
}

impl Harness {
    /// A store whose source has synced, with one endpoint.
    fn new() -> Self {
        let harness = Self::unsynced();
        harness
            .store
            .source_handle()
            .set_state(SourceState::Connected, None);
        harness
    }

    /// A store with one endpoint whose source has not finished its first
    /// sync.
    fn unsynced() -> Self {
        let store = Store::new(
            Naming::new("default"),
            SourceStatus::starting(SourceKind::Static, "test"),
        );
        set(&store, "10.0.0.1:8080");
        let metrics = Arc::new(Metrics::new());
        Self {
            snapshots: SnapshotBuilder::attach(&store),
            store,
            registry: Registry::new(metrics.clone()),
            metrics,
            stopped: CancellationToken::new(),
        }
    }

    /// Starts a stream task; returns its request sender, its response
    /// queue and the task.
    fn open(
        &self,
    ) -> (
        mpsc::Sender<DiscoveryRequest>,
        queue::Receiver<Queued>,
        tokio::task::JoinHandle<Ended>,
    ) {
        self.open_aged(self.stopped.child_token())
    }

    /// Like [`Harness::open`], on a connection that reaches its maximum age
    /// when `aged` is cancelled.
    fn open_aged(
        &self,
        aged: CancellationToken,
    ) -> (
        mpsc::Sender<DiscoveryRequest>,
        queue::Receiver<Queued>,
        tokio::task::JoinHandle<Ended>,
    ) {
        let (requests, inbound) = mpsc::channel(8);
        let (queue, responses) = queue::channel(QUEUE_DEPTH);
        let task = StreamTask {
            session: Box::new(Session::new(
                self.store.instance_id(),
                "test",
                Limits::default(),
            )),
            registration: self.registry.register(None),
            snapshots: self.snapshots.subscribe(),
            metrics: self.metrics.clone(),
            stopped: self.stopped.clone(),
            aged,
        };
        let inbound = ReceiverStream::new(inbound).map(Ok);
        (requests, responses, tokio::spawn(task.run(inbound, queue)))
    }
}

fn subscribe() -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: ResourceType::ClusterLoadAssignment.type_url(),
        resource_names: vec![GREETER.into()],
        ..Default::default()
    }
}

fn addresses(item: Queued) -> Vec<String> {
    let outgoing = item.expect("a response, not an error");
    let mut addresses = Vec::new();
    for any in &outgoing.response.to_message().resources {
        let cla = ClusterLoadAssignment::decode(any.value.as_slice()).unwrap();
        for lb in cla.endpoints.iter().flat_map(|l| &l.lb_endpoints) {
            let Some(HostIdentifier::Endpoint(endpoint)) = &lb.host_identifier else {
                continue;
            };
            if let Some(AddressKind::SocketAddress(socket)) =
                endpoint.address.as_ref().and_then(|a| a.address.as_ref())
            {
                addresses.push(socket.address.clone());
            }
        }
    }
    addresses
}

async fn next(responses: &mut queue::Receiver<Queued>) -> Queued {
    tokio::time::timeout(LIMIT, responses.recv())
        .await
        .expect("a response in time")
        .expect("queue open")
}

#[tokio::test]
async fn a_stalled_stream_queues_little_and_then_gets_the_newest_state() {
    let harness = Harness::new();
    let (stalled_requests, mut stalled, _stalled_task) = harness.open();
    let (reader_requests, mut reader, _reader_task) = harness.open();
    stalled_requests.send(subscribe()).await.unwrap();
    reader_requests.send(subscribe()).await.unwrap();
    assert_eq!(addresses(next(&mut reader).await), vec!["10.0.0.1"]);

    // The reader drains its queue as updates come; the stalled one never reads.
    let reading = tokio::spawn(async move {
        let mut seen = 0;
        loop {
            seen += 1;
            if addresses(next(&mut reader).await) == ["10.0.9.9"] {
                return seen;
            }
        }
    });
    for i in 0..300u32 {
        set(
            &harness.store,
            &format!("10.0.{}.{}:8080", i / 200, i % 200 + 1),
        );
        tokio::task::yield_now().await;
    }
    set(&harness.store, "10.0.9.9:8080");
    let reader_saw = tokio::time::timeout(LIMIT, reading).await.unwrap().unwrap();
    assert!(reader_saw > 1, "the reader followed the updates");

    // The stalled stream's task is parked on a full queue ...
    assert_eq!(stalled.len(), QUEUE_DEPTH);
    // ... and once read, it delivers what was queued (and the one it was
    // holding), then the newest state: not one response per update.
    let mut delivered = 0;
    loop {
        delivered += 1;
        if addresses(next(&mut stalled).await) == ["10.0.9.9"] {
            break;
        }
    }
    assert!(
        delivered <= QUEUE_DEPTH + 2,
        "{delivered} responses for 301 updates"
    );
}

#[tokio::test]
async fn the_status_api_is_answered_every_time_also_by_a_stalled_stream() {
    let harness = Harness::new();
    let (stalled_requests, stalled, _stalled_task) = harness.open();
    let (idle_requests, mut idle, _idle_task) = harness.open();
    stalled_requests.send(subscribe()).await.unwrap();
    idle_requests.send(subscribe()).await.unwrap();
    next(&mut idle).await.expect("first response");
    // Fill the stalled stream's queue, so its task waits on it.
    for i in 0..=QUEUE_DEPTH {
        set(&harness.store, &format!("10.0.1.{}:8080", i + 1));
        tokio::task::yield_now().await;
    }
    tokio::time::timeout(LIMIT, async {
        while stalled.len() < QUEUE_DEPTH {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the stalled stream filled its queue");

    // Asked again and again: each question gets both streams' views.
    for round in 0..3 {
        let views = tokio::time::timeout(LIMIT, harness.registry.views())
            .await
            .unwrap_or_else(|_| panic!("round {round}: every stream answered"));
        assert_eq!(views.len(), 2, "round {round}");
        for view in &views {
            let types: Vec<_> = view.session.types.iter().map(|t| t.kind).collect();
            assert_eq!(
                types,
                [ResourceType::ClusterLoadAssignment],
                "round {round}"
            );
        }
    }
    drop(stalled);
}

#[tokio::test]
async fn stopping_ends_the_stream_with_unavailable() {
    let harness = Harness::new();
    let (requests, mut responses, task) = harness.open();
    requests.send(subscribe()).await.unwrap();
    next(&mut responses).await.expect("first response");
    assert_eq!(harness.registry.len(), 1);
    harness.stopped.cancel();
    let status = next(&mut responses).await.expect_err("an error status");
    assert_eq!(status.code(), Code::Unavailable);
    assert!(status.message().contains("shutting down"), "{status}");
    let ended = tokio::time::timeout(LIMIT, task).await.unwrap().unwrap();
    assert!(matches!(ended, Ended::Stopping), "{ended:?}");
    assert!(
        harness.registry.is_empty(),
        "unregistered when the task ends"
    );
}

#[tokio::test]
async fn a_connection_reaching_its_age_ends_the_stream_with_unavailable() {
    let harness = Harness::new();
    let aged = harness.stopped.child_token();
    let (requests, mut responses, task) = harness.open_aged(aged.clone());
    requests.send(subscribe()).await.unwrap();
    next(&mut responses).await.expect("first response");
    aged.cancel();
    let status = next(&mut responses).await.expect_err("an error status");
    assert_eq!(status.code(), Code::Unavailable);
    assert!(status.message().contains("maximum age"), "{status}");
    let ended = tokio::time::timeout(LIMIT, task).await.unwrap().unwrap();
    assert!(matches!(ended, Ended::MaxAge), "{ended:?}");
    assert_eq!(ended.reason(), EndReason::MaxConnectionAge);
    assert!(harness.registry.is_empty());
}

#[test]
fn clients_leaving_are_told_apart_from_broken_clients() {
    for (status, reason) in [
        (Status::cancelled("cancelled"), EndReason::ClientClosed),
        (
            Status::unavailable("connection closed"),
            EndReason::ClientClosed,
        ),
        (Status::internal("undecodable"), EndReason::ClientError),
        (Status::out_of_range("too large"), EndReason::ClientError),
    ] {
        assert_eq!(Ended::ClientFailed(status).reason(), reason);
    }
}

#[tokio::test]
async fn an_oversize_request_ends_only_its_stream() {
    let harness = Harness::new();
    let (bad_requests, mut bad, bad_task) = harness.open();
    let (good_requests, mut good, _good_task) = harness.open();
    let mut huge = subscribe();
    huge.resource_names = (0..=session::MAX_NAMES_PER_REQUEST)
        .map(|i| format!("n{i}"))
        .collect();
    bad_requests.send(huge).await.unwrap();
    let status = next(&mut bad).await.expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("at most 10000"), "{status}");
    let ended = tokio::time::timeout(LIMIT, bad_task)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(ended, Ended::Refused(_)), "{ended:?}");

    good_requests.send(subscribe()).await.unwrap();
    assert_eq!(addresses(next(&mut good).await), vec!["10.0.0.1"]);
}

#[tokio::test]
async fn nothing_is_answered_before_the_first_sync() {
    let harness = Harness::unsynced();
    let (requests, mut responses, task) = harness.open();
    let mut other = subscribe();
    other.resource_names = vec!["other.default.svc.cluster.local:80".into()];
    requests.send(other).await.unwrap();
    // The later request of the same type replaces the earlier one.
    requests.send(subscribe()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        responses.try_recv().is_err(),
        "answered from a store whose source has not synced"
    );

    set(&harness.store, "10.0.0.2:8080");
    harness
        .store
        .source_handle()
        .set_state(SourceState::Connected, None);
    let first = next(&mut responses).await;
    assert_eq!(addresses(first), vec!["10.0.0.2"]);
    assert!(!task.is_finished());
}

#[tokio::test]
async fn a_client_leaving_before_the_first_sync_ends_its_stream() {
    let harness = Harness::unsynced();
    let (requests, _responses, task) = harness.open();
    requests.send(subscribe()).await.unwrap();
    drop(requests);
    let ended = tokio::time::timeout(LIMIT, task)
        .await
        .expect("ended in time")
        .expect("task");
    assert!(matches!(ended, Ended::ClientClosed), "{ended:?}");
    assert_eq!(harness.registry.len(), 0);
}
