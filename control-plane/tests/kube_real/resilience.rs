//! The watch under a real API server's failures: 410 Gone after etcd
//! compaction, and the API server stopped for 10 s.

use std::time::{Duration, SystemTime};

use envoy_types::pb::envoy::config::core::v3::HealthStatus;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use proto::controlplane::v1 as pb;
use serde_json::json;
use tests::bounded;
use tests::kube_apiserver::{Options, skipped};

use crate::harness::{Endpoints, Subscriber, unix_ms};
use crate::{
    Conditions, GREETER, LIMIT, NOT_READY, NS, READY, SERIAL, cluster, control_plane_sa, ep, serve,
    service, slice, sorted, with_version,
};

/// What the control plane logs when a watch gets 410 Gone.
const EXPIRED: &str = "resourceVersion expired; listing again";

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
