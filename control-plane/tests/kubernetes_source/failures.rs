//! What the API server gets wrong: an outage keeps the last state and
//! shows in the source status; malformed objects are skipped and the rest
//! is served.

use std::time::SystemTime;

use control_plane::model::Readiness;
use control_plane::source::SourceState;
use serde_json::json;
use tests::bounded;
use tests::fake_kube::{
    EndpointState as K8sState, FakeKube, Outage, Resource, SERVICE_NAME_LABEL, ServiceFixture,
};

use crate::harness::{Harness, LIMIT, STEP, describe, endpoints, greeter_slice, state_of};

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
