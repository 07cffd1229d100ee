//! The Kubernetes source's GRPCRoutes against the fake API server, through
//! the real `kube::Client`: a cluster without the CRD works as before and
//! says routes are off; the CRD installed later is found without a restart;
//! routes follow their objects; what cannot be honoured is refused whole.
//! Also the Service-level policy: the lb-policy annotation,
//! `trafficDistribution` and zone hints.

use std::sync::Arc;
use std::time::Duration;

use control_plane::model::LbPolicy;
use control_plane::names::Naming;
use control_plane::routes::RouteState;
use control_plane::source::kubernetes::{self, LB_POLICY_ANNOTATION, WatchConfig};
use control_plane::source::{SourceKind, SourceState, SourceStatus};
use control_plane::store::{Catalog, Store};
use k8s_openapi::api::core::v1::Service as KubeService;
use k8s_openapi::api::discovery::v1::{EndpointHints, EndpointSlice, ForZone};
use serde_json::{Value, json};
use tests::bounded;
use tests::fake_kube::{
    EndpointFixture, EndpointSliceFixture, EndpointState as K8sState, FakeKube, Resource,
    ServiceFixture, Verb,
};

const LIMIT: Duration = Duration::from_secs(60);
const STEP: Duration = Duration::from_secs(15);

struct Harness {
    kube: FakeKube,
    store: Arc<Store>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Harness {
    async fn start(kube: FakeKube) -> Self {
        let config = WatchConfig::default()
            .backoff(Duration::from_millis(50), Duration::from_millis(500))
            .route_recheck(Duration::from_millis(200));
        let store = Store::new(
            Naming::new("default"),
            SourceStatus::starting(SourceKind::Kubernetes, kube.url()),
        );
        let client = kube.client().await;
        let task = tokio::spawn(kubernetes::run(client, config, store.source_handle()));
        Self { kube, store, task }
    }

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
                "{what}: not published within {STEP:?}; routes: {:?}",
                self.store.catalog().routes
            ),
        }
    }
}

fn populate(kube: &FakeKube) {
    for (name, address) in [
        ("greeter", "10.0.0.1"),
        ("greeter-v1", "10.0.1.1"),
        ("greeter-v2", "10.0.2.1"),
    ] {
        kube.apply(ServiceFixture::new(name).port("grpc", 80, 8080));
        kube.apply(
            EndpointSliceFixture::for_service(name)
                .name(&format!("{name}-a"))
                .port("grpc", 8080)
                .endpoint(address, K8sState::Ready),
        );
    }
}

fn canary(v1: i32, v2: i32) -> Value {
    json!({
        "metadata": {"name": "greeter-canary"},
        "spec": {
            "parentRefs": [{"group": "", "kind": "Service", "name": "greeter", "port": 80}],
            "hostnames": ["ignored.example"],
            "rules": [
                {
                    "matches": [{"method": {"service": "greet.Greeter", "method": "SayHello"}}],
                    "backendRefs": [{"name": "greeter-v2", "port": 80}]
                },
                {
                    "backendRefs": [
                        {"name": "greeter-v1", "port": 80, "weight": v1},
                        {"name": "greeter-v2", "port": 80, "weight": v2}
                    ]
                }
            ]
        }
    })
}

/// The weights of `greeter` port 80's last route entry.
fn split(snapshot: &Catalog) -> Option<Vec<(String, u32)>> {
    let entry = snapshot.services.get("greeter")?;
    let table = entry.routes_of(entry.service.ports[0].port)?;
    let last = table.entries.last()?;
    Some(
        last.backends
            .iter()
            .map(|b| (b.service.clone(), b.weight))
            .collect(),
    )
}

fn state_of(snapshot: &Catalog, route: &str) -> Option<RouteState> {
    snapshot
        .routes
        .statuses
        .iter()
        .find(|s| s.name == route)
        .map(|s| s.state.clone())
}

#[tokio::test]
async fn without_the_crd_routes_are_off_and_a_later_install_is_picked_up() {
    bounded(LIMIT, async {
        let kube = FakeKube::start().await;
        populate(&kube);
        // Stored already, but the API is "not installed": invisible.
        kube.apply_grpc_route(canary(90, 10));
        let harness = Harness::start(kube).await;
        let snapshot = harness
            .wait_for("connected with routes off", |s| {
                s.source.state == SourceState::Connected && !s.routes.support.enabled
            })
            .await;
        assert!(
            snapshot.routes.support.detail.contains("not installed"),
            "{:?}",
            snapshot.routes.support
        );
        assert_eq!(snapshot.services.len(), 3, "Services served as before");
        assert!(split(&snapshot).is_none(), "default route");
        assert!(harness.kube.count(Resource::GrpcRoutes, Verb::List) >= 1);

        harness.kube.set_grpc_routes_installed(true);
        let snapshot = harness
            .wait_for("routes on after the install", |s| split(s).is_some())
            .await;
        assert!(snapshot.routes.support.enabled);
        assert_eq!(
            split(&snapshot).unwrap(),
            vec![("greeter-v1".into(), 90), ("greeter-v2".into(), 10)]
        );
        assert_eq!(snapshot.source.state, SourceState::Connected);
    })
    .await;
}

#[tokio::test]
async fn routes_follow_their_objects_and_bad_ones_are_refused_whole() {
    bounded(LIMIT, async {
        let kube = FakeKube::start().await;
        kube.set_grpc_routes_installed(true);
        populate(&kube);
        kube.apply_grpc_route(canary(90, 10));
        // Attached only to a Gateway: not this control plane's business.
        kube.apply_grpc_route(json!({
            "metadata": {"name": "north-south"},
            "spec": {
                "parentRefs": [{"name": "my-gateway"}],
                "rules": [{"backendRefs": [{"name": "greeter", "port": 80}]}]
            }
        }));
        let harness = Harness::start(kube).await;
        let snapshot = harness
            .wait_for("the canary at 90/10", |s| {
                s.source.state == SourceState::Connected && split(s).is_some()
            })
            .await;
        assert_eq!(snapshot.routes.statuses.len(), 1, "{:?}", snapshot.routes);

        // Weights change through the API.
        harness.kube.apply_grpc_route(canary(50, 50));
        harness
            .wait_for("50/50", |s| {
                split(s) == Some(vec![("greeter-v1".into(), 50), ("greeter-v2".into(), 50)])
            })
            .await;

        // A filter cannot be honoured: the whole route is refused, the
        // Service goes back to its default route.
        let mut filtered = canary(50, 50);
        filtered["spec"]["rules"][1]["filters"] =
            json!([{"type": "RequestHeaderModifier", "requestHeaderModifier": {}}]);
        harness.kube.apply_grpc_route(filtered);
        let snapshot = harness
            .wait_for("refused for its filter", |s| {
                matches!(state_of(s, "greeter-canary"), Some(RouteState::Refused(_)))
            })
            .await;
        assert!(split(&snapshot).is_none());
        let Some(RouteState::Refused(reason)) = state_of(&snapshot, "greeter-canary") else {
            unreachable!()
        };
        assert!(reason.contains("RequestHeaderModifier"), "{reason}");

        // A backend in another namespace (no ReferenceGrant support).
        let mut elsewhere = canary(50, 50);
        elsewhere["spec"]["rules"][1]["backendRefs"][1]["namespace"] = json!("other");
        harness.kube.apply_grpc_route(elsewhere);
        harness
            .wait_for("refused for the other namespace", |s| {
                matches!(state_of(s, "greeter-canary"),
                    Some(RouteState::Refused(reason)) if reason.contains("namespace other"))
            })
            .await;

        harness.kube.apply_grpc_route(canary(100, 0));
        harness
            .wait_for("100/0", |s| {
                split(s) == Some(vec![("greeter-v1".into(), 100)])
            })
            .await;
        assert!(harness.kube.delete_grpc_route("default", "greeter-canary"));
        let snapshot = harness
            .wait_for("deleted", |s| state_of(s, "greeter-canary").is_none())
            .await;
        assert!(split(&snapshot).is_none());
    })
    .await;
}

#[tokio::test]
async fn service_policy_comes_from_annotations_traffic_distribution_and_hints() {
    bounded(LIMIT, async {
        let kube = FakeKube::start().await;
        let mut service = ServiceFixture::new("greeter")
            .port("grpc", 80, 8080)
            .annotation(LB_POLICY_ANNOTATION, "least_request")
            .build();
        service.spec.as_mut().unwrap().traffic_distribution = Some("PreferClose".into());
        kube.apply::<KubeService>(service);
        let mut hinted = EndpointFixture::new("10.0.0.2").zone("zone-a").build();
        hinted.hints = Some(EndpointHints {
            for_zones: Some(vec![ForZone {
                name: "zone-b".into(),
            }]),
            ..Default::default()
        });
        let slice = EndpointSliceFixture::for_service("greeter")
            .name("greeter-a")
            .port("grpc", 8080)
            .endpoint_with(EndpointFixture::new("10.0.0.1").zone("zone-a"))
            .build();
        let mut slice: EndpointSlice = slice;
        slice.endpoints.push(hinted);
        kube.apply(slice);
        let harness = Harness::start(kube).await;
        let snapshot = harness
            .wait_for("greeter", |s| s.services.contains_key("greeter"))
            .await;
        let greeter = &snapshot.services["greeter"].service;
        assert_eq!(greeter.policy.lb, LbPolicy::LeastRequest);
        assert!(greeter.policy.prefer_close);
        let hints: Vec<_> = greeter.ports[0]
            .endpoints
            .iter()
            .map(|e| (e.address.to_string(), e.for_zones.clone()))
            .collect();
        assert_eq!(
            hints,
            vec![
                ("10.0.0.1".into(), vec![]),
                ("10.0.0.2".into(), vec!["zone-b".to_owned()]),
            ]
        );
    })
    .await;
}
