//! GRPCRoutes against a real kube-apiserver (see kube_real.rs for the
//! cluster): the control plane, running as deploy/base's ServiceAccount,
//! starts in a cluster without the Gateway API, says routes are off, and
//! picks up the GRPCRoute CRD (from the pinned `sigs.k8s.io/gateway-api`
//! module) installed later without a restart; a GRPCRoute as the real API
//! server stores it (its defaults filled in) becomes greeter's routes, and
//! a weight change through the API reaches an xDS subscriber.
//! `SKIP_KUBE_APISERVER=1` skips it (CI never sets it).

#[allow(dead_code)]
#[path = "kubernetes_e2e/harness.rs"]
mod harness;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use harness::{BIN, ControlPlane, SYNCED, WAIT};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tests::ads::{AdsStream, decode};
use tests::kube_apiserver::gateway_api::grpcroute_crd;
use tests::kube_apiserver::{Cluster, Identity, Options, skipped};
use tests::{Process, bounded};

const LIMIT: Duration = Duration::from_secs(180);
const NS: &str = "shop";
const GREETER: &str = "greeter.shop.svc.cluster.local:80";

async fn cluster() -> Cluster {
    let options = Options {
        service_accounts: vec![(NS.to_owned(), "control-plane".to_owned())],
        ..Options::default()
    };
    let cluster = Cluster::start(options).await;
    cluster.create_namespace(NS).await;
    let rbac = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/base/control-plane-rbac.yaml");
    cluster.apply_file(NS, &rbac).await;
    cluster
}

async fn serve(cluster: &Cluster) -> ControlPlane {
    let kubeconfig = cluster.kubeconfig(&Identity::service_account(NS, "control-plane"));
    let args = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--source",
        "kubernetes",
        "--namespace",
        NS,
        "--kube-backoff-max",
        "500ms",
        "--kube-route-recheck",
        "1s",
    ];
    let env = [
        ("KUBECONFIG", kubeconfig.to_str().expect("UTF-8 path")),
        ("POD_NAMESPACE", ""),
        ("CONTROL_PLANE_NAMESPACE", ""),
    ];
    let mut process = Process::spawn_with_env("control-plane", BIN, &args, &env);
    let addr: SocketAddr = process.wait_listening().await;
    ControlPlane { process, addr }
}

/// `control-plane status --json`'s routes, once `check` holds for them.
async fn routes_until(
    control_plane: &ControlPlane,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let routes = control_plane.status_json().await["routes"].clone();
        if check(&routes) {
            return routes;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: {routes}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The weights of the last route of greeter's RouteConfiguration.
fn last_split(config: &RouteConfiguration) -> Vec<(String, u32)> {
    let route = config.virtual_hosts[0].routes.last().expect("a route");
    let Some(Action::Route(action)) = &route.action else {
        panic!("not a route action");
    };
    match action.cluster_specifier.as_ref().expect("clusters") {
        ClusterSpecifier::Cluster(name) => vec![(name.clone(), 1)],
        ClusterSpecifier::WeightedClusters(split) => split
            .clusters
            .iter()
            .map(|c| (c.name.clone(), c.weight.map_or(0, |w| w.value)))
            .collect(),
        other => panic!("{other:?}"),
    }
}

fn weights(v1: u32, v2: u32) -> Vec<(String, u32)> {
    vec![
        ("greeter-v1.shop.svc.cluster.local:80".into(), v1),
        ("greeter-v2.shop.svc.cluster.local:80".into(), v2),
    ]
}

#[tokio::test]
async fn a_grpcroute_crd_installed_later_is_picked_up_and_its_routes_apply() {
    if skipped() {
        return;
    }
    let crd = grpcroute_crd().await;
    let cluster = cluster().await;
    bounded(LIMIT, async {
        let admin = cluster.admin_client().await;
        let services: Api<Service> = Api::namespaced(admin.clone(), NS);
        let slices: Api<EndpointSlice> = Api::namespaced(admin.clone(), NS);
        let post = PostParams::default();
        for (name, address) in [
            ("greeter", "10.1.0.1"),
            ("greeter-v1", "10.1.1.1"),
            ("greeter-v2", "10.1.2.1"),
        ] {
            let service: Service = serde_json::from_value(json!({
                "metadata": {"name": name},
                "spec": {"ports": [{"name": "grpc", "port": 80, "targetPort": 8080}]}
            }))
            .unwrap();
            services.create(&post, &service).await.expect("create Service");
            let slice: EndpointSlice = serde_json::from_value(json!({
                "metadata": {"name": name, "labels": {"kubernetes.io/service-name": name}},
                "addressType": "IPv4",
                "ports": [{"name": "grpc", "port": 8080, "protocol": "TCP"}],
                "endpoints": [{"addresses": [address]}],
            }))
            .unwrap();
            slices.create(&post, &slice).await.expect("create EndpointSlice");
        }

        let mut control_plane = serve(&cluster).await;
        control_plane.process.wait_for_log(SYNCED, WAIT).await;
        let routes = routes_until(&control_plane, "routes off", |r| r["enabled"] == false).await;
        let detail = routes["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("not installed"), "{routes}");

        cluster.install_crd(&crd).await;
        routes_until(&control_plane, "routes on after the CRD", |r| r["enabled"] == true).await;

        let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "GRPCRoute");
        let resource = ApiResource::from_gvk_with_plural(&gvk, "grpcroutes");
        let grpc_routes: Api<DynamicObject> = Api::namespaced_with(admin.clone(), NS, &resource);
        let route: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GRPCRoute",
            "metadata": {"name": "greeter-canary"},
            "spec": {
                "parentRefs": [{"group": "", "kind": "Service", "name": "greeter", "port": 80}],
                "rules": [
                    {
                        "matches": [{"method": {"service": "greet.Greeter", "method": "SayHello"}}],
                        "backendRefs": [{"name": "greeter-v2", "port": 80}]
                    },
                    // No matches: the API server fills in its default.
                    {"backendRefs": [
                        {"name": "greeter-v1", "port": 80, "weight": 90},
                        {"name": "greeter-v2", "port": 80, "weight": 10}
                    ]}
                ]
            }
        }))
        .unwrap();
        let stored = grpc_routes.create(&post, &route).await.expect("create GRPCRoute");
        eprintln!("GRPCRoute as stored: {}", serde_json::to_string(&stored.data).unwrap());

        let mut ads = AdsStream::open(tests::channel(control_plane.addr).await, "routes").await;
        ads.subscribe::<RouteConfiguration>(&[GREETER]).await;
        let mut wanted = weights(90, 10);
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let response = ads.recv().await;
            ads.ack(&response, &[GREETER]).await;
            if let Some(config) = decode::<RouteConfiguration>(&response).first() {
                let split = last_split(config);
                if split == wanted {
                    if wanted == weights(50, 50) {
                        break;
                    }
                    assert_eq!(config.virtual_hosts[0].routes.len(), 2);
                    let patch = json!({"spec": {"rules": [
                        {
                            "matches": [{"method": {"service": "greet.Greeter", "method": "SayHello"}}],
                            "backendRefs": [{"name": "greeter-v2", "port": 80}]
                        },
                        {"backendRefs": [
                            {"name": "greeter-v1", "port": 80, "weight": 50},
                            {"name": "greeter-v2", "port": 80, "weight": 50}
                        ]}
                    ]}});
                    grpc_routes
                        .patch("greeter-canary", &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                        .expect("patch the weights");
                    wanted = weights(50, 50);
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "greeter's routes never became {wanted:?}"
            );
        }
        let routes = routes_until(&control_plane, "accepted", |r| {
            r["routes"][0]["state"] == "accepted"
        })
        .await;
        assert_eq!(routes["routes"][0]["attached"][0], "greeter:80", "{routes}");
    })
    .await;
}
