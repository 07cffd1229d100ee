//! The Kubernetes source against the fake API server, through the real
//! `kube::Client` built from the kubeconfig it writes. Assertions are on the
//! snapshots the store publishes: what every xDS subscriber would be sent.

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use control_plane::model::Readiness;
use control_plane::names::Naming;
use control_plane::source::kubernetes::{self, WatchConfig};
use control_plane::source::{SourceKind, SourceState, SourceStatus};
use control_plane::store::{Catalog, Store};
use serde_json::json;
use tests::bounded;
use tests::fake_kube::{
    EndpointFixture, EndpointSliceFixture, EndpointState as K8sState, FakeKube, Outage, Resource,
    SERVICE_NAME_LABEL, ServiceFixture, Verb,
};

const LIMIT: Duration = Duration::from_secs(60);
const STEP: Duration = Duration::from_secs(15);

/// The source running against a fake API server, and every snapshot it
/// led the store to publish.
struct Harness {
    kube: FakeKube,
    store: Arc<Store>,
    seen: Arc<Mutex<Vec<Arc<Catalog>>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Harness {
    async fn start(kube: FakeKube) -> Self {
        // Small pages, so every list takes several requests; quick retries.
        let config = WatchConfig::default()
            .page_size(2)
            .backoff(Duration::from_millis(50), Duration::from_millis(500));
        let store = Store::new(
            Naming::new("default"),
            SourceStatus::starting(SourceKind::Kubernetes, kube.url()),
        );
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut rx = store.subscribe();
        let record = seen.clone();
        let recorder = tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let snapshot = rx.borrow_and_update().clone();
                record.lock().unwrap().push(snapshot);
            }
        });
        let client = kube.client().await;
        let source = tokio::spawn(kubernetes::run(client, config, store.source_handle()));
        Self {
            kube,
            store,
            seen,
            tasks: vec![recorder, source],
        }
    }

    /// Waits for a snapshot for which `check` holds.
    async fn wait_for(&self, what: &str, check: impl Fn(&Catalog) -> bool) -> Arc<Catalog> {
        let mut rx = self.store.subscribe();
        let waited = tokio::time::timeout(STEP, async {
            loop {
                let snapshot = rx.borrow_and_update().clone();
                if check(&snapshot) {
                    return snapshot;
                }
                rx.changed().await.expect("store alive");
            }
        });
        match waited.await {
            Ok(snapshot) => snapshot,
            Err(_) => panic!(
                "{what}: not published within {STEP:?}; last: {}",
                describe(&self.store.catalog())
            ),
        }
    }

    fn seen(&self) -> Vec<Arc<Catalog>> {
        self.seen.lock().unwrap().clone()
    }
}

/// Endpoints of `service`'s first port as ("ip:port", state), sorted.
fn endpoints(snapshot: &Catalog, service: &str) -> Option<Vec<(String, Readiness)>> {
    let entry = snapshot.services.get(service)?;
    Some(
        entry.service.ports[0]
            .endpoints
            .iter()
            .map(|e| (e.socket_addr().to_string(), e.state))
            .collect(),
    )
}

fn state_of(snapshot: &Catalog, service: &str, addr: &str) -> Option<Readiness> {
    endpoints(snapshot, service)?
        .into_iter()
        .find(|(a, _)| a == addr)
        .map(|(_, state)| state)
}

fn describe(snapshot: &Catalog) -> String {
    let services: Vec<String> = snapshot
        .services
        .values()
        .map(|e| {
            let (ready, draining, not_ready) = e.service.counts();
            format!("{}({ready}/{draining}/{not_ready})", e.service.name)
        })
        .collect();
    format!("source {} services {services:?}", snapshot.source.state)
}

fn greeter_slice(name: &str) -> EndpointSliceFixture {
    EndpointSliceFixture::for_service("greeter")
        .name(name)
        .port("grpc", 8080)
}

/// A namespace with `greeter` (named targetPort, 150 pods over two slices
/// with different port numbers, one address in a third slice too),
/// `manual` (no selector, hand-made IPv6 slice) and an ExternalName Service,
/// plus look-alikes in namespace `other`.
async fn populate(kube: &FakeKube) {
    kube.apply(ServiceFixture::new("greeter").port("grpc", 80, "grpc"));
    kube.apply(greeter_slice("greeter-a").endpoints_from(
        Ipv4Addr::new(10, 0, 0, 1),
        75,
        K8sState::Ready,
    ));
    kube.apply(
        EndpointSliceFixture::for_service("greeter")
            .name("greeter-b")
            .port("grpc", 9090)
            .endpoints_from(Ipv4Addr::new(10, 0, 1, 1), 75, K8sState::Ready),
    );
    // A slice overlapping greeter-a, as during the controller's rebalancing.
    kube.apply(greeter_slice("greeter-c").endpoint("10.0.0.1", K8sState::Ready));
    kube.apply(
        ServiceFixture::new("manual")
            .without_selector()
            .port("grpc", 80, 50051),
    );
    kube.apply(
        EndpointSliceFixture::for_service("manual")
            .name("manual-1")
            .label("endpointslice.kubernetes.io/managed-by", "someone")
            .port("grpc", 50051)
            .endpoint_with(EndpointFixture::new("fd00::1").zone("zone-a")),
    );
    let mut external = ServiceFixture::new("external").port("grpc", 80, 80).build();
    external.spec.as_mut().unwrap().type_ = Some("ExternalName".into());
    kube.apply(external);
    kube.apply(
        ServiceFixture::new("greeter")
            .namespace("other")
            .port("grpc", 80, "grpc"),
    );
    kube.apply(
        ServiceFixture::new("intruder")
            .namespace("other")
            .port("grpc", 80, 80),
    );
    kube.apply(
        greeter_slice("greeter-x")
            .namespace("other")
            .endpoint("10.9.9.9", K8sState::Ready),
    );
}

fn complete(snapshot: &Catalog) -> bool {
    endpoints(snapshot, "greeter").is_some_and(|e| e.len() == 150)
        && snapshot.services.contains_key("manual")
}

#[tokio::test]
async fn initial_sync_publishes_the_complete_namespace_once() {
    bounded(LIMIT, async {
        let kube = FakeKube::start().await;
        populate(&kube).await;
        let h = Harness::start(kube).await;
        let snapshot = h
            .wait_for("the initial sync", |s| {
                s.source.state == SourceState::Connected
            })
            .await;

        let names: Vec<_> = snapshot.services.keys().cloned().collect();
        assert_eq!(
            names,
            ["greeter", "manual"],
            "no ExternalName, no other namespace"
        );
        let greeter = endpoints(&snapshot, "greeter").unwrap();
        assert_eq!(greeter.len(), 150, "75 + 75, the shared address once");
        assert_eq!(
            greeter.iter().filter(|(a, _)| a == "10.0.0.1:8080").count(),
            1
        );
        assert!(
            greeter.iter().any(|(a, _)| a == "10.0.1.1:9090"),
            "per-slice targetPort"
        );
        assert!(
            !greeter.iter().any(|(a, _)| a.starts_with("10.9.")),
            "other namespace"
        );
        assert_eq!(
            endpoints(&snapshot, "manual").unwrap(),
            [("[fd00::1]:50051".to_owned(), Readiness::Ready)]
        );
        let manual = &snapshot.services["manual"].service.ports[0].endpoints[0];
        assert_eq!(manual.zone.as_deref(), Some("zone-a"));

        // Every publication either had nothing yet or had everything.
        for seen in h.seen() {
            assert!(
                seen.services.is_empty() || complete(&seen),
                "partial: {}",
                describe(&seen)
            );
        }
        let continued =
            h.kube.requests().into_iter().any(|r| {
                r.resource == Some(Resource::EndpointSlices) && r.param("continue").is_some()
            });
        assert!(continued, "the slices were listed in pages");
    })
    .await;
}

#[tokio::test]
async fn readiness_changes_reach_the_published_endpoints() {
    bounded(LIMIT, async {
        let kube = FakeKube::start().await;
        kube.apply(ServiceFixture::new("greeter").port("grpc", 80, "grpc"));
        kube.apply(greeter_slice("greeter-a").endpoint("10.0.0.1", K8sState::Ready));
        let h = Harness::start(kube).await;
        h.wait_for("greeter", |s| {
            state_of(s, "greeter", "10.0.0.1:8080") == Some(Readiness::Ready)
        })
        .await;

        h.kube.add_endpoint(
            "default",
            "greeter-a",
            EndpointFixture::new("10.0.0.2")
                .state(K8sState::NotReady)
                .pod("greeter-1"),
        );
        let s = h
            .wait_for("a new unready pod", |s| {
                state_of(s, "greeter", "10.0.0.2:8080") == Some(Readiness::NotReady)
            })
            .await;
        assert_eq!(
            state_of(&s, "greeter", "10.0.0.1:8080"),
            Some(Readiness::Ready)
        );

        h.kube
            .set_endpoint_state("default", "greeter-a", "10.0.0.2", K8sState::Ready);
        h.wait_for("the pod ready", |s| {
            state_of(s, "greeter", "10.0.0.2:8080") == Some(Readiness::Ready)
        })
        .await;
        h.kube
            .set_endpoint_state("default", "greeter-a", "10.0.0.1", K8sState::Terminating);
        h.wait_for("the other terminating", |s| {
            state_of(s, "greeter", "10.0.0.1:8080") == Some(Readiness::Draining)
        })
        .await;
        h.kube.set_endpoint_state(
            "default",
            "greeter-a",
            "10.0.0.1",
            K8sState::TerminatingNotServing,
        );
        h.wait_for("it stops serving", |s| {
            state_of(s, "greeter", "10.0.0.1:8080") == Some(Readiness::NotReady)
        })
        .await;
        assert!(h.kube.remove_endpoint("default", "greeter-a", "10.0.0.1"));
        let s = h
            .wait_for("it is gone", |s| {
                endpoints(s, "greeter").is_some_and(|e| e.len() == 1)
            })
            .await;
        assert_eq!(
            state_of(&s, "greeter", "10.0.0.2:8080"),
            Some(Readiness::Ready)
        );
        assert_eq!(
            h.kube.count(Resource::EndpointSlices, Verb::List),
            1,
            "no re-list needed"
        );
    })
    .await;
}

#[tokio::test]
async fn a_deleted_service_is_withdrawn_and_can_come_back() {
    bounded(LIMIT, async {
        let kube = FakeKube::start().await;
        kube.apply(ServiceFixture::new("greeter").port("grpc", 80, "grpc"));
        kube.apply(greeter_slice("greeter-a").endpoint("10.0.0.1", K8sState::Ready));
        let h = Harness::start(kube).await;
        h.wait_for("greeter", |s| s.services.contains_key("greeter"))
            .await;

        assert!(h.kube.delete_service("default", "greeter"));
        h.wait_for("greeter withdrawn", |s| !s.services.contains_key("greeter"))
            .await;
        // Its slice alone does not bring it back.
        h.kube
            .set_endpoint_state("default", "greeter-a", "10.0.0.1", K8sState::NotReady);
        h.kube
            .apply(ServiceFixture::new("marker").port("grpc", 80, 80));
        let s = h
            .wait_for("the marker", |s| s.services.contains_key("marker"))
            .await;
        assert!(!s.services.contains_key("greeter"));

        h.kube
            .apply(ServiceFixture::new("greeter").port("grpc", 80, "grpc"));
        h.wait_for("greeter back with its slice", |s| {
            state_of(s, "greeter", "10.0.0.1:8080") == Some(Readiness::NotReady)
        })
        .await;
    })
    .await;
}

#[tokio::test]
async fn a_forced_410_relists_without_publishing_a_partial_set() {
    bounded(LIMIT, async {
        let kube = FakeKube::start().await;
        populate(&kube).await;
        let h = Harness::start(kube).await;
        h.wait_for("the initial sync", |s| {
            s.source.state == SourceState::Connected
        })
        .await;
        h.kube
            .wait_until("both watches", STEP, |k| k.open_watches() == 2)
            .await;
        let lists = h.kube.count(Resource::EndpointSlices, Verb::List);

        h.kube.expire_watches();
        h.kube
            .wait_until("re-listed and watching again", STEP, |k| {
                k.count(Resource::EndpointSlices, Verb::List) >= lists + 2 && k.open_watches() == 2
            })
            .await;
        // A change after the re-list still arrives.
        h.kube
            .set_endpoint_state("default", "greeter-a", "10.0.0.2", K8sState::NotReady);
        h.wait_for("the change after the re-list", |s| {
            state_of(s, "greeter", "10.0.0.2:8080") == Some(Readiness::NotReady)
        })
        .await;

        let seen = h.seen();
        let first_complete = seen
            .iter()
            .position(|s| complete(s))
            .expect("a complete snapshot");
        for snapshot in &seen[first_complete..] {
            assert!(
                complete(snapshot),
                "partial after the sync: {}",
                describe(snapshot)
            );
            assert_eq!(
                snapshot.source.state,
                SourceState::Connected,
                "a 410 is not an outage"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn an_api_server_outage_keeps_the_last_state_and_shows_in_the_status() {
    bounded(LIMIT, async {
        let kube = FakeKube::start().await;
        kube.apply(ServiceFixture::new("greeter").port("grpc", 80, "grpc"));
        kube.apply(
            greeter_slice("greeter-a")
                .endpoint("10.0.0.1", K8sState::Ready)
                .endpoint("10.0.0.2", K8sState::Ready),
        );
        let h = Harness::start(kube).await;
        h.wait_for("the initial sync", |s| {
            s.source.state == SourceState::Connected
        })
        .await;
        h.kube
            .wait_until("both watches", STEP, |k| k.open_watches() == 2)
            .await;

        let went_down = SystemTime::now();
        h.kube.go_down(Outage::Refuse).await;
        let down = h
            .wait_for("disconnected", |s| {
                s.source.state == SourceState::Disconnected
            })
            .await;
        assert!(down.source.state_since >= went_down);
        let error = down.source.last_error.as_ref().expect("an error on record");
        assert!(error.text.contains("watching"), "{}", error.text);
        assert_eq!(
            endpoints(&down, "greeter").unwrap().len(),
            2,
            "last state kept"
        );

        // Changes made while the API server is away.
        h.kube
            .set_endpoint_state("default", "greeter-a", "10.0.0.1", K8sState::NotReady);
        h.kube
            .apply(ServiceFixture::new("newcomer").port("grpc", 80, 80));
        h.kube.come_up().await;
        let back = h
            .wait_for("reconnected with the changes", |s| {
                s.source.state == SourceState::Connected && s.services.contains_key("newcomer")
            })
            .await;
        assert_eq!(
            state_of(&back, "greeter", "10.0.0.1:8080"),
            Some(Readiness::NotReady)
        );
        for snapshot in h.seen() {
            if !snapshot.services.is_empty() {
                assert_eq!(
                    endpoints(&snapshot, "greeter").unwrap().len(),
                    2,
                    "{}",
                    describe(&snapshot)
                );
            }
        }
    })
    .await;
}

#[tokio::test]
async fn malformed_objects_are_skipped_and_the_rest_is_served() {
    bounded(LIMIT, async {
        let kube = FakeKube::start().await;
        kube.apply(ServiceFixture::new("greeter").port("grpc", 80, "grpc"));
        kube.apply(greeter_slice("greeter-a").endpoint("10.0.0.1", K8sState::Ready));
        let broken = json!({
            "metadata": {"name": "greeter-broken", "labels": {SERVICE_NAME_LABEL: "greeter"}},
            "addressType": "IPv4",
            "endpoints": "not a list",
        });
        kube.apply_raw(Resource::EndpointSlices, broken.clone());
        kube.apply(
            greeter_slice("greeter-odd")
                .endpoint("10.0.0.300", K8sState::Ready)
                .endpoint("10.0.0.3", K8sState::Ready),
        );
        let h = Harness::start(kube).await;
        let s = h
            .wait_for("the initial sync", |s| {
                s.source.state == SourceState::Connected
            })
            .await;
        let served: Vec<_> = endpoints(&s, "greeter")
            .unwrap()
            .into_iter()
            .map(|(a, _)| a)
            .collect();
        assert_eq!(served, ["10.0.0.1:8080", "10.0.0.3:8080"]);

        // A slice that turns malformed counts as gone; the service stays.
        let mut bad = broken;
        bad["metadata"]["name"] = "greeter-odd".into();
        h.kube.apply_raw(Resource::EndpointSlices, bad);
        h.wait_for("the slice gone", |s| {
            endpoints(s, "greeter").is_some_and(|e| e.len() == 1)
        })
        .await;
        // A re-list with malformed objects in it still completes.
        h.kube.expire_watches();
        h.kube
            .apply(greeter_slice("greeter-new").endpoint("10.0.0.4", K8sState::Ready));
        h.wait_for("listed again", |s| {
            endpoints(s, "greeter").is_some_and(|e| e.len() == 2)
        })
        .await;
    })
    .await;
}
