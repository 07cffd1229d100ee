//! Watch events reaching the published endpoints: a pod's readiness
//! through all its states, and a Service deleted and created again.

use control_plane::model::Readiness;
use tests::bounded;
use tests::fake_kube::{
    EndpointFixture, EndpointState as K8sState, FakeKube, Resource, ServiceFixture, Verb,
};

use crate::harness::{Harness, LIMIT, endpoints, greeter_slice, state_of};

#[tokio::test]
async fn readiness_changes_reach_the_published_endpoints() {
    bounded(LIMIT, async {
        let kube = FakeKube::start().await;
        kube.apply(ServiceFixture::new("greeter").port("grpc", 80, "grpc"));
        kube.apply(greeter_slice("greeter-a").endpoint("10.0.0.1", K8sState::Ready));
        let h = Harness::start(kube).await;
        h.wait_for("greeter", |s| {
            state_of(s, "greeter", "10.0.0.1:8080") == Some(Readiness::Ready)
        })
        .await;

        h.kube.add_endpoint(
            "default",
            "greeter-a",
            EndpointFixture::new("10.0.0.2")
                .state(K8sState::NotReady)
                .pod("greeter-1"),
        );
        let s = h
            .wait_for("a new unready pod", |s| {
                state_of(s, "greeter", "10.0.0.2:8080") == Some(Readiness::NotReady)
            })
            .await;
        assert_eq!(
            state_of(&s, "greeter", "10.0.0.1:8080"),
            Some(Readiness::Ready)
        );

        h.kube
            .set_endpoint_state("default", "greeter-a", "10.0.0.2", K8sState::Ready);
        h.wait_for("the pod ready", |s| {
            state_of(s, "greeter", "10.0.0.2:8080") == Some(Readiness::Ready)
        })
        .await;
        h.kube
            .set_endpoint_state("default", "greeter-a", "10.0.0.1", K8sState::Terminating);
        h.wait_for("the other terminating", |s| {
            state_of(s, "greeter", "10.0.0.1:8080") == Some(Readiness::Draining)
        })
        .await;
        h.kube.set_endpoint_state(
            "default",
            "greeter-a",
            "10.0.0.1",
            K8sState::TerminatingNotServing,
        );
        h.wait_for("it stops serving", |s| {
            state_of(s, "greeter", "10.0.0.1:8080") == Some(Readiness::NotReady)
        })
        .await;
        assert!(h.kube.remove_endpoint("default", "greeter-a", "10.0.0.1"));
        let s = h
            .wait_for("it is gone", |s| {
                endpoints(s, "greeter").is_some_and(|e| e.len() == 1)
            })
            .await;
        assert_eq!(
            state_of(&s, "greeter", "10.0.0.2:8080"),
            Some(Readiness::Ready)
        );
        assert_eq!(
            h.kube.count(Resource::EndpointSlices, Verb::List),
            1,
            "no re-list needed"
        );
    })
    .await;
}

#[tokio::test]
async fn a_deleted_service_is_withdrawn_and_can_come_back() {
    bounded(LIMIT, async {
        let kube = FakeKube::start().await;
        kube.apply(ServiceFixture::new("greeter").port("grpc", 80, "grpc"));
        kube.apply(greeter_slice("greeter-a").endpoint("10.0.0.1", K8sState::Ready));
        let h = Harness::start(kube).await;
        h.wait_for("greeter", |s| s.services.contains_key("greeter"))
            .await;

        assert!(h.kube.delete_service("default", "greeter"));
        h.wait_for("greeter withdrawn", |s| !s.services.contains_key("greeter"))
            .await;
        // Its slice alone does not bring it back.
        h.kube
            .set_endpoint_state("default", "greeter-a", "10.0.0.1", K8sState::NotReady);
        h.kube
            .apply(ServiceFixture::new("marker").port("grpc", 80, 80));
        let s = h
            .wait_for("the marker", |s| s.services.contains_key("marker"))
            .await;
        assert!(!s.services.contains_key("greeter"));

        h.kube
            .apply(ServiceFixture::new("greeter").port("grpc", 80, "grpc"));
        h.wait_for("greeter back with its slice", |s| {
            state_of(s, "greeter", "10.0.0.1:8080") == Some(Readiness::NotReady)
        })
        .await;
    })
    .await;
}
