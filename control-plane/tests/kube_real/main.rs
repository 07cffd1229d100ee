//! Issue 14, points 1 and 2: `control-plane serve --source kubernetes`
//! against a real kube-apiserver (with etcd, and kube-controller-manager
//! running only the EndpointSlice controller), built from pinned Go modules
//! by `tests::kube_apiserver` and cached under `$HOME/.cache`.
//!
//! The control plane runs as deploy/base's ServiceAccount, bound by
//! deploy/base's own Role and RoleBinding (read from the files), with
//! `--authorization-mode=RBAC`: that it syncs at all proves every request it
//! makes is namespaced, since the Role grants nothing cluster-wide.
//!
//! Each test starts its own cluster; a lock runs them one at a time, since
//! each API server needs a core for some seconds to start.
//! `SKIP_KUBE_APISERVER=1` skips them (CI never sets it).
//!
//! # Layout
//!
//! - this file: the cluster every test starts, the control plane as
//!   deploy/base's ServiceAccount, Service and EndpointSlice fixtures.
//! - `api.rs`: deploy/base's RBAC and a stranger's real 403; Services and
//!   EndpointSlices created, updated and deleted through the API.
//! - `resilience.rs`: a 410 re-list after etcd compaction; a 10 s API
//!   server outage.
//! - `pods.rs`: real greeter-servers as the pods of a Service, in a network
//!   namespace (`tests::netns`, needs root), their readiness flipped through
//!   the status subresource, followed by the real EndpointSlice controller
//!   and the client library's calls.

#[allow(dead_code)]
#[path = "../kubernetes_e2e/harness.rs"]
mod harness;

mod api;
mod pods;
mod resilience;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::HealthStatus;
use harness::{BIN, ControlPlane, Endpoints};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use serde_json::{Value, json};
use tests::Process;
use tests::kube_apiserver::{Cluster, Identity, Options};

/// Upper bound for a whole test, the cluster's start included (not the
/// one-time build of the binaries, which happens before the clock starts).
const LIMIT: Duration = Duration::from_secs(180);
/// The namespace the tests deploy into.
const NS: &str = "shop";
/// The canonical name of greeter's Cluster in [`NS`].
const GREETER: &str = "greeter.shop.svc.cluster.local:80";

/// One cluster at a time in this test binary.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn deploy_base(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/base")
        .join(file)
}

/// A cluster with namespace [`NS`], deploy/base's ServiceAccount, Role and
/// RoleBinding in it, and the token of that ServiceAccount (and of
/// `stranger`, which has no Role) in the token file.
async fn cluster(options: Options) -> Cluster {
    let mut options = options;
    options.service_accounts = vec![
        (NS.to_owned(), "control-plane".to_owned()),
        (NS.to_owned(), "stranger".to_owned()),
    ];
    let cluster = Cluster::start(options).await;
    cluster.create_namespace(NS).await;
    let created = cluster
        .apply_file(NS, &deploy_base("control-plane-rbac.yaml"))
        .await;
    assert_eq!(
        created,
        [
            "ServiceAccount/control-plane",
            "Role/control-plane",
            "RoleBinding/control-plane"
        ]
    );
    cluster
}

/// `control-plane serve --source kubernetes --namespace shop`, with
/// `KUBECONFIG` the kubeconfig of `identity`.
async fn serve(cluster: &Cluster, identity: &Identity, args: &[&str]) -> ControlPlane {
    let kubeconfig = cluster.kubeconfig(identity);
    let mut all = vec![
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--source",
        "kubernetes",
        "--namespace",
        NS,
        "--kube-backoff-max",
        "500ms",
    ];
    all.extend_from_slice(args);
    let env = [
        ("KUBECONFIG", kubeconfig.to_str().expect("UTF-8 path")),
        ("POD_NAMESPACE", ""),
        ("CONTROL_PLANE_NAMESPACE", ""),
    ];
    let mut process = Process::spawn_with_env("control-plane", BIN, &all, &env);
    let addr: SocketAddr = process.wait_listening().await;
    ControlPlane { process, addr }
}

fn control_plane_sa() -> Identity {
    Identity::service_account(NS, "control-plane")
}

/// Service `name` in [`NS`]: port 80 named `grpc`, targetPort `target`
/// (a name or a number), with a selector unless `selectorless`.
fn service(name: &str, target: Value, selectorless: bool) -> Service {
    let mut spec = json!({ "ports": [{ "name": "grpc", "port": 80, "targetPort": target }] });
    if !selectorless {
        spec["selector"] = json!({ "app": name });
    }
    serde_json::from_value(json!({ "metadata": { "name": name }, "spec": spec }))
        .expect("a Service")
}

/// Conditions of an endpoint: (ready, serving, terminating).
type Conditions = (bool, bool, bool);
const READY: Conditions = (true, true, false);
const NOT_READY: Conditions = (false, false, false);
const TERMINATING: Conditions = (false, true, true);

/// EndpointSlice `name` of Service `service`: port `grpc` = `port`.
fn slice(
    service: &str,
    name: &str,
    family: &str,
    port: u16,
    endpoints: &[(&str, Conditions)],
) -> EndpointSlice {
    let endpoints: Vec<Value> = endpoints
        .iter()
        .map(|(address, (ready, serving, terminating))| {
            json!({
                "addresses": [address],
                "conditions": { "ready": ready, "serving": serving, "terminating": terminating },
            })
        })
        .collect();
    serde_json::from_value(json!({
        "metadata": { "name": name, "labels": { "kubernetes.io/service-name": service } },
        "addressType": family,
        "ports": [{ "name": "grpc", "port": port, "protocol": "TCP" }],
        "endpoints": endpoints,
    }))
    .expect("an EndpointSlice")
}

fn sorted(mut endpoints: Endpoints) -> Endpoints {
    endpoints.sort();
    endpoints
}

fn ep(address: &str, health: HealthStatus) -> (String, HealthStatus) {
    (address.to_owned(), health)
}

/// `object` with the resourceVersion `name` has now, for a replace.
async fn with_version(
    api: &Api<EndpointSlice>,
    name: &str,
    mut object: EndpointSlice,
) -> EndpointSlice {
    let current = api.get(name).await.expect("get");
    object.metadata.resource_version = current.metadata.resource_version;
    object
}
