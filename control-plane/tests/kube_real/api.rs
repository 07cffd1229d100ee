//! deploy/base's RBAC against the real authorizer, and Services and
//! EndpointSlices changed through the API reaching an ADS subscriber.

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::HealthStatus;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use proto::controlplane::v1 as pb;
use serde_json::json;
use tests::ads::AdsStream;
use tests::bounded;
use tests::kube_apiserver::{Identity, Options, skipped};

use crate::harness::{Endpoints, SYNCED, Subscriber, WAIT};
use crate::{
    GREETER, LIMIT, NOT_READY, NS, READY, SERIAL, TERMINATING, cluster, control_plane_sa, ep,
    serve, service, slice, sorted, with_version,
};

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
