//! Starting `serve --source kubernetes`: an API server that cannot be
//! reached is waited for (health NOT_SERVING, status disconnected); a
//! missing kubeconfig or no namespace ends the process with a clear error.

use proto::controlplane::v1 as pb;
use tests::fake_kube::{EndpointSliceFixture, EndpointState, FakeKube, Outage, ServiceFixture};
use tests::{Process, bounded, channel};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::harness::{BIN, ControlPlane, GREETER_CLUSTER, LIMIT, Subscriber, WAIT, healthy};

#[tokio::test]
async fn an_unreachable_api_server_is_waited_for_not_serving_and_shown_disconnected() {
    bounded(LIMIT, async {
        let kube = FakeKube::start().await;
        kube.apply(ServiceFixture::new("greeter").port("grpc", 80, "grpc"));
        kube.apply(
            EndpointSliceFixture::for_service("greeter")
                .port("grpc", 8080)
                .endpoint("10.0.0.1", EndpointState::Ready),
        );
        kube.go_down(Outage::Refuse).await;
        let control_plane = ControlPlane::start(&kube, &["--namespace", "default"], &[]).await;

        let mut health = HealthClient::new(channel(control_plane.addr).await)
            .watch(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .expect("health Watch")
            .into_inner();
        let mut next_health = async || {
            let message = tokio::time::timeout(WAIT, health.message())
                .await
                .expect("a health status in time")
                .expect("health watch healthy")
                .expect("health watch open");
            ServingStatus::try_from(message.status).expect("a known status")
        };
        assert_eq!(next_health().await, ServingStatus::NotServing);

        let source = control_plane
            .wait_source(pb::SourceState::Disconnected)
            .await;
        assert!(source.last_error.contains("watching"), "{source:?}");
        let report = control_plane.status_json().await;
        let shown = &report["info"]["source"];
        assert_eq!(shown["kind"], "kubernetes", "{shown}");
        assert_eq!(shown["state"], "disconnected", "{shown}");
        assert!(
            shown["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with(&kube.url())),
            "the API server's URL: {shown}"
        );
        assert!(
            shown["last_error"].as_str().is_some_and(|e| !e.is_empty()),
            "{shown}"
        );
        assert_eq!(report["services"], serde_json::json!([]), "{report}");

        kube.come_up().await;
        assert_eq!(next_health().await, ServingStatus::Serving);
        control_plane.wait_source(pb::SourceState::Connected).await;
        let mut sub = Subscriber::eds(control_plane.addr, "late-start", GREETER_CLUSTER).await;
        sub.until("greeter", |e| *e == healthy(["10.0.0.1:8080"]))
            .await;
    })
    .await;
}

/// Runs `serve` with `args` and `env` (no namespace from the test's own
/// environment) and expects it to fail at startup, before listening;
/// returns the error it logged.
async fn startup_error(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut all = vec!["serve", "--listen", "127.0.0.1:0", "--source", "kubernetes"];
    all.extend_from_slice(args);
    let mut environment = vec![("POD_NAMESPACE", ""), ("CONTROL_PLANE_NAMESPACE", "")];
    environment.extend_from_slice(env);
    let mut process = Process::spawn_with_env("control-plane", BIN, &all, &environment);
    let line = process.wait_for_log("serve failed", WAIT).await;
    let exit = process.wait_exit(WAIT).await;
    assert_eq!(exit.code(), Some(1), "{}", process.log_text());
    assert!(
        !process.log_text().contains("\"listening\""),
        "it listened first: {}",
        process.log_text()
    );
    line["error"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_missing_or_broken_kubeconfig_fails_the_start() {
    bounded(LIMIT, async {
        let dir = std::env::temp_dir().join(format!("cp-kubeconfig-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let missing = dir.join("missing");
        let missing = missing.to_str().expect("UTF-8 path");
        let error = startup_error(&["--namespace", "default"], &[("KUBECONFIG", missing)]).await;
        assert!(
            error.contains("failed to find Kubernetes API credentials"),
            "{error}"
        );
        assert!(error.contains(missing), "names the file: {error}");

        let broken = dir.join("broken");
        std::fs::write(&broken, "clusters: [").expect("write");
        let broken = broken.to_str().expect("UTF-8 path");
        let error = startup_error(&["--namespace", "default"], &[("KUBECONFIG", broken)]).await;
        assert!(error.contains("failed to parse kubeconfig"), "{error}");
        std::fs::remove_dir_all(&dir).expect("remove temp dir");
    })
    .await;
}

#[tokio::test]
async fn no_namespace_fails_the_start_and_says_where_it_looked() {
    bounded(LIMIT, async {
        let kube = FakeKube::start().await;
        let kubeconfig = kube.kubeconfig_path().to_str().expect("UTF-8 path");
        let error = startup_error(&[], &[("KUBECONFIG", kubeconfig)]).await;
        assert!(error.contains("no namespace to watch"), "{error}");
        for place in ["--namespace", "POD_NAMESPACE", "serviceaccount/namespace"] {
            assert!(error.contains(place), "{place} not in: {error}");
        }
        let error = startup_error(
            &["--namespace", "Not_A_Namespace"],
            &[("KUBECONFIG", kubeconfig)],
        )
        .await;
        assert!(error.contains("Not_A_Namespace"), "{error}");
        // Nothing was asked of the API server.
        assert!(kube.requests().is_empty(), "{:?}", kube.requests());
    })
    .await;
}
