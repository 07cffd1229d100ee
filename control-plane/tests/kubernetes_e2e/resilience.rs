//! The API server's failures as subscribers live through them: a forced
//! 410 Gone (the watch history expired: list again) and a 10 s outage.

use std::time::{Duration, SystemTime};

use envoy_types::pb::envoy::config::core::v3::HealthStatus;
use proto::controlplane::v1 as pb;
use tests::bounded;
use tests::fake_kube::{
    EndpointSliceFixture, EndpointState, FakeKube, Outage, Resource, ServiceFixture, Verb,
};

use crate::harness::{
    ControlPlane, Endpoints, GREETER_CLUSTER, LIMIT, Subscriber, WAIT, apply_greeter_150,
    greeter_150, healthy, unix_ms, with,
};

/// How long the API server stays away in the outage test.
const OUTAGE: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_forced_410_relists_and_no_subscriber_sees_a_partial_assignment() {
    bounded(LIMIT, async {
        let kube = FakeKube::start().await;
        apply_greeter_150(&kube);
        let control_plane = ControlPlane::synced(&kube, "default").await;
        let mut subs = Vec::new();
        for node in ["relist-1", "relist-2", "relist-3"] {
            let mut sub = Subscriber::eds(control_plane.addr, node, GREETER_CLUSTER).await;
            sub.until("the full assignment", |e| *e == greeter_150())
                .await;
            subs.push(sub);
        }
        kube.wait_until("both watches open", WAIT, |k| k.open_watches() == 2)
            .await;
        let slice_lists = kube.count(Resource::EndpointSlices, Verb::List);
        let service_lists = kube.count(Resource::Services, Verb::List);
        let since = control_plane
            .info()
            .await
            .source
            .expect("source")
            .state_since_unix_ms;

        // History gone: every watch ends with 410 Expired. Changes made now
        // arrive only through the re-list.
        kube.expire_watches();
        kube.set_endpoint_state("default", "greeter-a", "10.0.0.2", EndpointState::NotReady);
        kube.apply(ServiceFixture::new("marker").port("grpc", 80, 80));
        kube.wait_until("both types listed again", WAIT, |k| {
            k.count(Resource::EndpointSlices, Verb::List) > slice_lists
                && k.count(Resource::Services, Verb::List) > service_lists
        })
        .await;

        let after = with(&greeter_150(), "10.0.0.2:8080", HealthStatus::Unhealthy);
        for sub in &mut subs {
            sub.until("the change listed again", |e| *e == after).await;
            // The Services re-list has been applied once `marker` is
            // served; the stream delivers in order, so every assignment
            // published before has been recorded by then.
            sub.until_listener("marker").await;
            for (i, seen) in sub.seen.iter().enumerate() {
                assert!(
                    *seen == greeter_150() || *seen == after,
                    "assignment {i} is partial: {} endpoints: {seen:?}",
                    seen.len()
                );
            }
        }
        // A 410 is not an outage: the source stayed connected throughout.
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
async fn an_api_server_outage_keeps_the_last_state_and_the_changes_arrive_after() {
    bounded(LIMIT, async {
        let kube = FakeKube::start().await;
        kube.apply(ServiceFixture::new("greeter").port("grpc", 80, "grpc"));
        kube.apply(
            EndpointSliceFixture::for_service("greeter")
                .name("greeter-a")
                .port("grpc", 8080)
                .endpoint("10.0.0.1", EndpointState::Ready)
                .endpoint("10.0.0.2", EndpointState::Ready),
        );
        let control_plane = ControlPlane::synced(&kube, "default").await;
        let both = healthy(["10.0.0.1:8080", "10.0.0.2:8080"]);
        let mut sub = Subscriber::eds(control_plane.addr, "outage", GREETER_CLUSTER).await;
        sub.until("both pods", |e| *e == both).await;
        kube.wait_until("both watches open", WAIT, |k| k.open_watches() == 2)
            .await;

        let went_down = SystemTime::now();
        kube.go_down(Outage::Refuse).await;
        let source = control_plane
            .wait_source(pb::SourceState::Disconnected)
            .await;
        assert!(
            source.state_since_unix_ms >= unix_ms(went_down),
            "{source:?}"
        );

        // Changes while the API server is away.
        kube.set_endpoint_state("default", "greeter-a", "10.0.0.1", EndpointState::NotReady);
        kube.apply(ServiceFixture::new("newcomer").port("grpc", 80, 80));

        // The last state keeps being served, to new subscribers too.
        let mut late = Subscriber::eds(control_plane.addr, "late", GREETER_CLUSTER).await;
        late.until("the last state", |e| !e.is_empty()).await;
        assert_eq!(late.seen.len(), 1, "{:?}", late.seen);
        assert_eq!(late.seen[0], both);
        let report = control_plane.status_json().await;
        let shown = &report["info"]["source"];
        assert_eq!(shown["kind"], "kubernetes", "{shown}");
        assert_eq!(shown["state"], "disconnected", "{shown}");
        assert_eq!(
            shown["state_since_unix_ms"], source.state_since_unix_ms,
            "{shown}"
        );
        assert!(
            shown["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("watching")),
            "{shown}"
        );
        let endpoints = report["services"][0]["ports"][0]["endpoints"]
            .as_array()
            .expect("greeter's endpoints");
        assert!(endpoints.iter().all(|e| e["state"] == "ready"), "{report}");
        assert_eq!(endpoints.len(), 2, "{report}");

        let outage_left = OUTAGE.saturating_sub(went_down.elapsed().unwrap_or_default());
        tokio::time::sleep(outage_left).await;
        assert_eq!(
            control_plane.info().await.source.expect("source").state,
            pb::SourceState::Disconnected as i32,
            "still disconnected after {OUTAGE:?}"
        );
        kube.come_up().await;

        let only_b = with(&both, "10.0.0.1:8080", HealthStatus::Unhealthy);
        sub.until("the change made during the outage", |e| *e == only_b)
            .await;
        // The Service created during the outage.
        let listener = sub.until_listener("newcomer").await;
        assert_eq!(listener.name, "newcomer");
        let source = control_plane.wait_source(pb::SourceState::Connected).await;
        assert!(
            source.state_since_unix_ms > unix_ms(went_down) + 9_000,
            "{source:?}"
        );
        let no_gap = |e: &Endpoints| *e == both || *e == only_b;
        assert!(sub.seen.iter().all(no_gap), "{:?}", sub.seen);
    })
    .await;
}
