//! The Kubernetes source running against a fake API server, the snapshots
//! it leads the store to publish, and a populated namespace to start from.

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use control_plane::model::Readiness;
use control_plane::names::Naming;
use control_plane::source::kubernetes::{self, WatchConfig};
use control_plane::source::{SourceKind, SourceStatus};
use control_plane::store::{Catalog, Store};
use tests::fake_kube::{
    EndpointFixture, EndpointSliceFixture, EndpointState as K8sState, FakeKube, ServiceFixture,
};

pub(crate) const LIMIT: Duration = Duration::from_secs(60);
pub(crate) const STEP: Duration = Duration::from_secs(15);

/// The source running against a fake API server, and every snapshot it
/// led the store to publish.
pub(crate) struct Harness {
    pub(crate) kube: FakeKube,
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
    pub(crate) async fn start(kube: FakeKube) -> Self {
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
    pub(crate) async fn wait_for(
        &self,
        what: &str,
        check: impl Fn(&Catalog) -> bool,
    ) -> Arc<Catalog> {
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

    pub(crate) fn seen(&self) -> Vec<Arc<Catalog>> {
        self.seen.lock().unwrap().clone()
    }
}

/// Endpoints of `service`'s first port as ("ip:port", state), sorted.
pub(crate) fn endpoints(snapshot: &Catalog, service: &str) -> Option<Vec<(String, Readiness)>> {
    let entry = snapshot.services.get(service)?;
    Some(
        entry.service.ports[0]
            .endpoints
            .iter()
            .map(|e| (e.socket_addr().to_string(), e.state))
            .collect(),
    )
}

pub(crate) fn state_of(snapshot: &Catalog, service: &str, addr: &str) -> Option<Readiness> {
    endpoints(snapshot, service)?
        .into_iter()
        .find(|(a, _)| a == addr)
        .map(|(_, state)| state)
}

pub(crate) fn describe(snapshot: &Catalog) -> String {
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

pub(crate) fn greeter_slice(name: &str) -> EndpointSliceFixture {
    EndpointSliceFixture::for_service("greeter")
        .name(name)
        .port("grpc", 8080)
}

/// A namespace with `greeter` (named targetPort, 150 pods over two slices
/// with different port numbers, one address in a third slice too),
/// `manual` (no selector, hand-made IPv6 slice) and an ExternalName Service,
/// plus look-alikes in namespace `other`.
pub(crate) async fn populate(kube: &FakeKube) {
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

pub(crate) fn complete(snapshot: &Catalog) -> bool {
    endpoints(snapshot, "greeter").is_some_and(|e| e.len() == 150)
        && snapshot.services.contains_key("manual")
}
