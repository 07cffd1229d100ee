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

#[allow(dead_code)]
#[path = "kubernetes_e2e/harness.rs"]
mod harness;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use envoy_types::pb::envoy::config::core::v3::HealthStatus;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use harness::{BIN, ControlPlane, Endpoints, SYNCED, Subscriber, WAIT, unix_ms};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use proto::controlplane::v1 as pb;
use serde_json::{Value, json};
use tests::ads::AdsStream;
use tests::kube_apiserver::{Cluster, Identity, Options, skipped};
use tests::{Process, bounded};

/// Upper bound for a whole test, the cluster's start included (not the
/// one-time build of the binaries, which happens before the clock starts).
const LIMIT: Duration = Duration::from_secs(180);
/// The namespace the tests deploy into.
const NS: &str = "shop";
/// The canonical name of greeter's Cluster in [`NS`].
const GREETER: &str = "greeter.shop.svc.cluster.local:80";
/// What the control plane logs when a watch gets 410 Gone.
const EXPIRED: &str = "resourceVersion expired; listing again";

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

#[tokio::test]
async fn the_deploy_base_role_suffices_and_a_stranger_gets_a_real_403() {
    if skipped() {
        return;
    }
    let _serial = SERIAL.lock().await;
    let cluster = cluster(Options::default()).await;
    bounded(LIMIT, async {
        let admin = cluster.admin_client().await;
        let services: Api<Service> = Api::namespaced(admin.clone(), NS);
        let slices: Api<EndpointSlice> = Api::namespaced(admin.clone(), NS);
        let post = PostParams::default();
        services
            .create(&post, &service("greeter", json!("grpc"), false))
            .await
            .expect("create Service");
        slices
            .create(
                &post,
                &slice("greeter", "greeter-a", "IPv4", 8080, &[("10.1.0.1", READY)]),
            )
            .await
            .expect("create EndpointSlice");

        // As deploy/base's ServiceAccount: it syncs and serves.
        let mut control_plane = serve(&cluster, &control_plane_sa(), &[]).await;
        control_plane.process.wait_for_log(SYNCED, WAIT).await;
        let mut sub = Subscriber::eds(control_plane.addr, "rbac", GREETER).await;
        sub.until("greeter's pod", |e| {
            *e == [ep("10.1.0.1:8080", HealthStatus::Healthy)]
        })
        .await;
        let source = control_plane.wait_source(pb::SourceState::Connected).await;
        assert!(source.last_error.is_empty(), "{source:?}");

        // The same Role does not let it read another namespace (so had it
        // listed cluster-wide, it would have failed above).
        let as_sa = cluster.client(&control_plane_sa()).await;
        let elsewhere: Api<Service> = Api::namespaced(as_sa.clone(), "default");
        let refused = elsewhere.list(&Default::default()).await.unwrap_err();
        assert!(
            matches!(&refused, kube::Error::Api(s) if s.code == 403),
            "{refused:?}"
        );
        let everywhere: Api<Service> = Api::all(as_sa);
        let refused = everywhere.list(&Default::default()).await.unwrap_err();
        assert!(
            matches!(&refused, kube::Error::Api(s) if s.code == 403),
            "{refused:?}"
        );

        // As a ServiceAccount without the Role: a real 403, shown by status.
        let stranger = serve(&cluster, &Identity::service_account(NS, "stranger"), &[]).await;
        let deadline = tokio::time::Instant::now() + WAIT;
        let shown = loop {
            let report = stranger.status_json().await;
            let shown = report["info"]["source"].clone();
            if shown["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("403") || e.contains("forbidden"))
            {
                break shown;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no 403 in status within {WAIT:?}: {shown}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        eprintln!("status of the stranger's control plane: {shown}");
        assert_eq!(shown["kind"], "kubernetes", "{shown}");
        assert_ne!(shown["state"], "connected", "{shown}");
        let error = shown["last_error"].as_str().expect("last_error");
        assert!(
            error.contains("system:serviceaccount:shop:stranger"),
            "the API server's message names the identity: {shown}"
        );
    })
    .await;
}

#[tokio::test]
async fn services_and_slices_created_updated_deleted_reach_the_client() {
    if skipped() {
        return;
    }
    let _serial = SERIAL.lock().await;
    let cluster = cluster(Options::default()).await;
    bounded(LIMIT, async {
        let admin = cluster.admin_client().await;
        let services: Api<Service> = Api::namespaced(admin.clone(), NS);
        let slices: Api<EndpointSlice> = Api::namespaced(admin.clone(), NS);
        let post = PostParams::default();
        let control_plane = serve(&cluster, &control_plane_sa(), &[]).await;
        let mut sub = Subscriber::eds(control_plane.addr, "crud", GREETER).await;

        // A Service with a named targetPort and three slices: two IPv4 (the
        // named port resolves to a different number in each) and one IPv6.
        services
            .create(&post, &service("greeter", json!("grpc"), false))
            .await
            .expect("create Service");
        slices
            .create(
                &post,
                &slice(
                    "greeter",
                    "greeter-a",
                    "IPv4",
                    8080,
                    &[
                        ("10.1.0.1", READY),
                        ("10.1.0.2", NOT_READY),
                        ("10.1.0.3", TERMINATING),
                    ],
                ),
            )
            .await
            .expect("create slice a");
        slices
            .create(
                &post,
                &slice("greeter", "greeter-b", "IPv4", 9090, &[("10.1.1.1", READY)]),
            )
            .await
            .expect("create slice b");
        slices
            .create(
                &post,
                &slice("greeter", "greeter-v6", "IPv6", 8080, &[("fd00::1", READY)]),
            )
            .await
            .expect("create slice v6");
        let all = sorted(vec![
            ep("10.1.0.1:8080", HealthStatus::Healthy),
            ep("10.1.0.2:8080", HealthStatus::Unhealthy),
            ep("10.1.0.3:8080", HealthStatus::Draining),
            ep("10.1.1.1:9090", HealthStatus::Healthy),
            ep("fd00::1:8080", HealthStatus::Healthy),
        ]);
        sub.until("all three slices", |e| *e == all).await;

        // Updates: 10.1.0.2 turns ready, 10.1.0.3 is gone, slice b moves
        // to another pod.
        slices
            .replace(
                "greeter-a",
                &post,
                &with_version(
                    &slices,
                    "greeter-a",
                    slice(
                        "greeter",
                        "greeter-a",
                        "IPv4",
                        8080,
                        &[("10.1.0.1", READY), ("10.1.0.2", READY)],
                    ),
                )
                .await,
            )
            .await
            .expect("replace slice a");
        let updated_a = sorted(vec![
            ep("10.1.0.1:8080", HealthStatus::Healthy),
            ep("10.1.0.2:8080", HealthStatus::Healthy),
            ep("10.1.1.1:9090", HealthStatus::Healthy),
            ep("fd00::1:8080", HealthStatus::Healthy),
        ]);
        sub.until("slice a updated", |e| *e == updated_a).await;
        let patch = json!({ "endpoints": [{ "addresses": ["10.1.1.2"], "conditions": { "ready": true } }] });
        slices
            .patch("greeter-b", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("patch slice b");
        let updated_b = sorted(vec![
            ep("10.1.0.1:8080", HealthStatus::Healthy),
            ep("10.1.0.2:8080", HealthStatus::Healthy),
            ep("10.1.1.2:9090", HealthStatus::Healthy),
            ep("fd00::1:8080", HealthStatus::Healthy),
        ]);
        sub.until("slice b patched", |e| *e == updated_b).await;

        // A slice deleted.
        slices
            .delete("greeter-v6", &DeleteParams::default())
            .await
            .expect("delete slice v6");
        let without_v6: Endpoints = updated_b
            .iter()
            .filter(|(a, _)| a != "fd00::1:8080")
            .cloned()
            .collect();
        sub.until("slice v6 deleted", |e| *e == without_v6).await;

        // A selectorless Service with its own slice (numeric targetPort).
        services
            .create(&post, &service("legacy", json!(7000), true))
            .await
            .expect("create selectorless Service");
        slices
            .create(
                &post,
                &slice("legacy", "legacy-1", "IPv4", 7000, &[("192.0.2.10", READY)]),
            )
            .await
            .expect("create legacy slice");
        let mut legacy =
            Subscriber::eds(control_plane.addr, "legacy", "legacy.shop.svc.cluster.local:80").await;
        legacy
            .until("the selectorless Service's endpoint", |e| {
                *e == [ep("192.0.2.10:7000", HealthStatus::Healthy)]
            })
            .await;

        // The Service deleted (its slices stay: no controller manager runs
        // here to collect them, which must not matter): its Listener and
        // Cluster go.
        services
            .delete("greeter", &DeleteParams::default())
            .await
            .expect("delete Service");
        let deadline = tokio::time::Instant::now() + WAIT;
        while control_plane.services().await.iter().any(|s| s.name == "greeter") {
            assert!(tokio::time::Instant::now() < deadline, "greeter still served");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut ads = AdsStream::open(tests::channel(control_plane.addr).await, "after").await;
        ads.subscribe::<Listener>(&["greeter", "legacy"]).await;
        let (_, listeners) = ads.recv_typed::<Listener>().await;
        let names: Vec<&str> = listeners.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["legacy"]);

        // Every assignment greeter's subscriber saw was one of the states
        // above, never a mix (each was a whole, consistent set).
        let states = [&all, &updated_a, &updated_b, &without_v6];
        for (i, seen) in sub.seen.iter().enumerate() {
            assert!(
                states.contains(&seen) || is_prefix_state(seen, &all),
                "assignment {i} was never a state of the API: {seen:?}\nall: {:?}",
                sub.seen
            );
        }
    })
    .await;
}

/// While the three slices are being created one by one, a subscriber may
/// see the first one or two (each is a real state of the API).
fn is_prefix_state(seen: &Endpoints, all: &Endpoints) -> bool {
    seen.iter().all(|e| all.contains(e))
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

#[tokio::test]
async fn etcd_compaction_makes_the_watch_relist_without_an_empty_or_partial_set() {
    if skipped() {
        return;
    }
    let _serial = SERIAL.lock().await;
    // No watch cache: a watch resumed from a compacted revision goes to
    // etcd, which answers 410 Gone at once.
    let cluster = cluster(Options {
        apiserver_args: vec!["--watch-cache=false".to_owned()],
        ..Options::default()
    })
    .await;
    bounded(LIMIT, async {
        let admin = cluster.admin_client().await;
        let services: Api<Service> = Api::namespaced(admin.clone(), NS);
        let slices: Api<EndpointSlice> = Api::namespaced(admin.clone(), NS);
        let post = PostParams::default();
        services
            .create(&post, &service("greeter", json!("grpc"), false))
            .await
            .expect("create Service");
        let pods: Vec<String> = (1..=40).map(|i| format!("10.2.0.{i}")).collect();
        let first: Vec<(&str, Conditions)> =
            pods[..20].iter().map(|a| (a.as_str(), READY)).collect();
        let second: Vec<(&str, Conditions)> =
            pods[20..].iter().map(|a| (a.as_str(), READY)).collect();
        slices
            .create(&post, &slice("greeter", "greeter-a", "IPv4", 8080, &first))
            .await
            .expect("slice a");
        slices
            .create(&post, &slice("greeter", "greeter-b", "IPv4", 8080, &second))
            .await
            .expect("slice b");
        let full: Endpoints = sorted(
            pods.iter()
                .map(|a| ep(&format!("{a}:8080"), HealthStatus::Healthy))
                .collect(),
        );
        // Watches renewed every second, so one is soon resumed from a
        // revision that compaction removed.
        let control_plane = serve(
            &cluster,
            &control_plane_sa(),
            &["--kube-watch-timeout", "1s"],
        )
        .await;
        let mut sub = Subscriber::eds(control_plane.addr, "expiry", GREETER).await;
        sub.until("all 40", |e| *e == full).await;
        let since = control_plane
            .wait_source(pb::SourceState::Connected)
            .await
            .state_since_unix_ms;

        // Unrelated writes move etcd's revision past the watches' own, then
        // compaction removes the history they would resume from. Each
        // round a change is made that the subscriber must see.
        let other: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(admin.clone(), NS);
        for round in 0..3 {
            for i in 0..5 {
                let object = serde_json::from_value(json!({
                    "metadata": { "name": format!("noise-{round}-{i}") }
                }))
                .expect("a ConfigMap");
                other.create(&post, &object).await.expect("noise");
            }
            let revision = cluster.compact_etcd().await;
            eprintln!("compacted etcd at revision {revision}");
            // Let the watches end (1 s) and resume from compacted revisions.
            tokio::time::sleep(Duration::from_millis(2500)).await;
            // Pods 1 ..= round+1 of slice a are no longer ready.
            let ready: Vec<(&str, Conditions)> = pods[..20]
                .iter()
                .enumerate()
                .map(|(i, a)| (a.as_str(), if i <= round { NOT_READY } else { READY }))
                .collect();
            let replacement = slice("greeter", "greeter-a", "IPv4", 8080, &ready);
            slices
                .replace(
                    "greeter-a",
                    &post,
                    &with_version(&slices, "greeter-a", replacement).await,
                )
                .await
                .expect("replace slice a");
            let expected = sorted(
                pods.iter()
                    .enumerate()
                    .map(|(i, a)| {
                        let health = if i <= round {
                            HealthStatus::Unhealthy
                        } else {
                            HealthStatus::Healthy
                        };
                        ep(&format!("{a}:8080"), health)
                    })
                    .collect(),
            );
            let want = expected.clone();
            sub.until("the change after compaction", |e| *e == want)
                .await;
        }
        let log = control_plane.process.log_text();
        let relists = log.matches(EXPIRED).count();
        eprintln!("re-lists after 410 Gone: {relists}");
        assert!(
            relists > 0,
            "no 410 re-list in the control plane's log:\n{log}"
        );
        // Never an empty or partial set: every assignment has all 40.
        for (i, seen) in sub.seen.iter().enumerate() {
            assert_eq!(seen.len(), 40, "assignment {i} is partial: {seen:?}");
        }
        // A 410 is not an outage.
        let source = control_plane.info().await.source.expect("source");
        assert_eq!(
            source.state,
            pb::SourceState::Connected as i32,
            "{source:?}"
        );
        assert_eq!(source.state_since_unix_ms, since, "{source:?}");
    })
    .await;
}

#[tokio::test]
async fn a_10s_api_server_outage_keeps_the_last_state_and_resyncs_after() {
    if skipped() {
        return;
    }
    let _serial = SERIAL.lock().await;
    let mut cluster = cluster(Options::default()).await;
    bounded(LIMIT, async {
        let admin = cluster.admin_client().await;
        let services: Api<Service> = Api::namespaced(admin.clone(), NS);
        let slices: Api<EndpointSlice> = Api::namespaced(admin.clone(), NS);
        let post = PostParams::default();
        services
            .create(&post, &service("greeter", json!("grpc"), false))
            .await
            .expect("create Service");
        slices
            .create(
                &post,
                &slice(
                    "greeter",
                    "greeter-a",
                    "IPv4",
                    8080,
                    &[("10.3.0.1", READY), ("10.3.0.2", READY)],
                ),
            )
            .await
            .expect("create slice");
        let control_plane = serve(&cluster, &control_plane_sa(), &[]).await;
        let both = sorted(vec![
            ep("10.3.0.1:8080", HealthStatus::Healthy),
            ep("10.3.0.2:8080", HealthStatus::Healthy),
        ]);
        let mut sub = Subscriber::eds(control_plane.addr, "outage", GREETER).await;
        sub.until("both pods", |e| *e == both).await;
        control_plane.wait_source(pb::SourceState::Connected).await;

        let went_down = SystemTime::now();
        cluster.stop_apiserver().await;
        let source = control_plane
            .wait_source(pb::SourceState::Disconnected)
            .await;
        assert!(
            source.state_since_unix_ms >= unix_ms(went_down),
            "{source:?}"
        );

        // The last state keeps being served, to new subscribers too.
        let mut late = Subscriber::eds(control_plane.addr, "late", GREETER).await;
        late.until("the last state", |e| !e.is_empty()).await;
        assert_eq!(late.seen, std::slice::from_ref(&both));
        let report = control_plane.status_json().await;
        let shown = &report["info"]["source"];
        assert_eq!(shown["state"], "disconnected", "{shown}");
        assert!(
            shown["last_error"].as_str().is_some_and(|e| !e.is_empty()),
            "{shown}"
        );

        let outage = Duration::from_secs(10);
        tokio::time::sleep(outage.saturating_sub(went_down.elapsed().unwrap_or_default())).await;
        assert_eq!(
            control_plane.info().await.source.expect("source").state,
            pb::SourceState::Disconnected as i32,
            "still disconnected after {outage:?}"
        );
        cluster.start_apiserver().await;
        cluster.wait_ready().await;

        // Changes made after the restart arrive, and the source reconnects.
        slices
            .patch(
                "greeter-a",
                &PatchParams::default(),
                &Patch::Merge(&json!({ "endpoints": [
                    { "addresses": ["10.3.0.1"], "conditions": { "ready": false } },
                    { "addresses": ["10.3.0.2"], "conditions": { "ready": true } },
                ] })),
            )
            .await
            .expect("patch slice");
        let one = sorted(vec![
            ep("10.3.0.1:8080", HealthStatus::Unhealthy),
            ep("10.3.0.2:8080", HealthStatus::Healthy),
        ]);
        sub.until("the change after the restart", |e| *e == one)
            .await;
        let source = control_plane.wait_source(pb::SourceState::Connected).await;
        assert!(
            source.state_since_unix_ms > unix_ms(went_down) + 9_000,
            "{source:?}"
        );
        assert!(
            sub.seen.iter().all(|e| *e == both || *e == one),
            "{:?}",
            sub.seen
        );
    })
    .await;
}

/// Sets pod `name`'s Ready condition through the status subresource, as
/// a kubelet would.
async fn set_ready(pods: &Api<Pod>, name: &str, ip: &str, ready: bool) {
    let status = if ready { "True" } else { "False" };
    let patch = json!({ "status": {
        "phase": "Running",
        "podIP": ip,
        "podIPs": [{ "ip": ip }],
        "conditions": [
            { "type": "Ready", "status": status },
            { "type": "ContainersReady", "status": status },
        ],
    } });
    pods.patch_status(name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap_or_else(|e| panic!("patch {name}'s status: {e}"));
}

/// Pods' readiness, flipped through the status subresource as a kubelet
/// would, reaches clients through the real EndpointSlice controller.
///
/// EndpointSlices may not hold loopback addresses, and this suite sends
/// traffic to loopback only, so the pods get documentation addresses
/// (198.51.100.0/24) and the client here is a raw ADS subscriber that
/// dials nothing; that calls move away from an unready endpoint with none
/// failing is shown against the protocol-level fake (kubernetes_e2e).
#[tokio::test]
async fn a_pod_turning_unready_is_marked_so_through_the_real_endpointslice_controller() {
    if skipped() {
        return;
    }
    let _serial = SERIAL.lock().await;
    let cluster = cluster(Options {
        endpointslice_controller: true,
        ..Options::default()
    })
    .await;
    bounded(LIMIT, async {
        const PODS: [(&str, &str); 3] = [
            ("greeter-a", "198.51.100.1"),
            ("greeter-b", "198.51.100.2"),
            ("greeter-c", "198.51.100.3"),
        ];
        let admin = cluster.admin_client().await;
        let post = PostParams::default();
        let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(admin.clone());
        nodes
            .create(
                &post,
                &serde_json::from_value(json!({ "metadata": { "name": "node-1" } }))
                    .expect("a Node"),
            )
            .await
            .expect("create Node");
        let services: Api<Service> = Api::namespaced(admin.clone(), NS);
        services
            .create(&post, &service("greeter", json!("grpc"), false))
            .await
            .expect("create Service");
        let pods: Api<Pod> = Api::namespaced(admin.clone(), NS);
        for (name, ip) in PODS {
            let pod = serde_json::from_value(json!({
                "metadata": { "name": name, "labels": { "app": "greeter" } },
                "spec": {
                    "nodeName": "node-1",
                    "containers": [{
                        "name": "greeter",
                        "image": "greeter-server",
                        "ports": [{ "name": "grpc", "containerPort": 8080 }],
                    }],
                },
            }))
            .expect("a Pod");
            pods.create(&post, &pod).await.expect("create Pod");
            set_ready(&pods, name, ip, true).await;
        }

        let control_plane = serve(&cluster, &control_plane_sa(), &[]).await;
        let mut sub = Subscriber::eds(control_plane.addr, "kcm", GREETER).await;
        let state = |unready: Option<&str>| {
            sorted(
                PODS.iter()
                    .map(|(name, ip)| {
                        let health = if Some(*name) == unready {
                            HealthStatus::Unhealthy
                        } else {
                            HealthStatus::Healthy
                        };
                        ep(&format!("{ip}:8080"), health)
                    })
                    .collect(),
            )
        };
        let all_ready = state(None);
        sub.until("every pod ready", |e| *e == all_ready).await;
        // The controller's slice, not ours.
        let slices: Api<EndpointSlice> = Api::namespaced(admin.clone(), NS);
        let made = slices.list(&Default::default()).await.expect("list slices");
        assert!(!made.items.is_empty(), "{made:?}");
        assert!(made.items.iter().all(|s| {
            s.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("endpointslice.kubernetes.io/managed-by"))
                .is_some_and(|m| m == "endpointslice-controller.k8s.io")
        }));

        set_ready(&pods, "greeter-b", "198.51.100.2", false).await;
        let b_unready = state(Some("greeter-b"));
        sub.until("greeter-b not ready", |e| *e == b_unready).await;
        set_ready(&pods, "greeter-b", "198.51.100.2", true).await;
        sub.until("greeter-b ready again", |e| *e == all_ready)
            .await;
        // Before the controller's first slice the Service has no endpoints;
        // from then on every assignment holds all three pods.
        let first = sub.seen.iter().position(|e| !e.is_empty()).unwrap_or(0);
        assert!(
            sub.seen[first..].iter().all(|e| e.len() == 3),
            "never a partial set: {:?}",
            sub.seen
        );
    })
    .await;
}
