//! What a real API server also does: go away (refusing or resetting
//! connections) and come back on the same port, with a watcher riding it
//! out; and serve objects that do not match their schema.

use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ListParams};
use kube::runtime::watcher::{self, Event};
use serde_json::json;
use tests::bounded;
use tests::fake_kube::{
    EndpointSliceFixture, EndpointState, FakeKube, Outage, Resource, SERVICE_NAME_LABEL,
    ServiceFixture,
};

use crate::{LIMIT, STEP, initial_names, next_event, slice_watcher};

#[tokio::test]
async fn outages_refuse_or_reset_and_the_server_returns_on_the_same_port() {
    bounded(LIMIT, async {
        let kube = FakeKube::start().await;
        let client = kube.client().await;
        let api = Api::<Service>::namespaced(client.clone(), "default");
        let addr = kube.addr();

        kube.go_down(Outage::Refuse).await;
        let refused = tokio::net::TcpStream::connect(addr).await.unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
        assert!(api.list(&ListParams::default()).await.is_err());
        kube.apply(ServiceFixture::new("made-while-down"));
        kube.come_up().await;
        let listed = api
            .list(&ListParams::default())
            .await
            .expect("list after the outage");
        assert_eq!(listed.items.len(), 1);
        assert_eq!(kube.addr(), addr);

        kube.go_down(Outage::Reset).await;
        assert!(
            api.list(&ListParams::default()).await.is_err(),
            "reset connections fail"
        );
        kube.come_up().await;
        assert!(api.list(&ListParams::default()).await.is_ok());
    })
    .await;
}

#[tokio::test]
async fn watcher_rides_out_an_outage_and_sees_changes_made_during_it() {
    bounded(LIMIT, async {
        let kube = FakeKube::start().await;
        kube.apply(
            EndpointSliceFixture::for_service("greeter")
                .name("greeter-a")
                .endpoint("10.0.0.9", EndpointState::NotReady),
        );
        let mut events = slice_watcher(kube.client().await, "default", "greeter");
        initial_names(&mut events).await;
        kube.wait_until("a watch", STEP, |k| k.open_watches() == 1)
            .await;

        kube.go_down(Outage::Refuse).await;
        kube.set_endpoint_state("default", "greeter-a", "10.0.0.9", EndpointState::Ready);
        kube.come_up().await;
        let Event::Apply(changed) = next_event(&mut events).await else {
            panic!("expected the change made during the outage")
        };
        assert_eq!(changed.metadata.name.as_deref(), Some("greeter-a"));
    })
    .await;
}

#[tokio::test]
async fn malformed_objects_reach_the_client_as_they_are() {
    bounded(LIMIT, async {
        let kube = FakeKube::start().await;
        let mut events = slice_watcher(kube.client().await, "default", "greeter");
        initial_names(&mut events).await;
        kube.wait_until("a watch", STEP, |k| k.open_watches() == 1)
            .await;
        kube.apply_raw(
            Resource::EndpointSlices,
            json!({
                "metadata": {"name": "broken", "labels": {SERVICE_NAME_LABEL: "greeter"}},
                "addressType": "IPv4",
                "endpoints": "not a list",
            }),
        );
        match events.next().await {
            // kube-client reports a line it cannot decode as an event as a
            // (blank) API error, or as a decoding error.
            Err(watcher::Error::WatchFailed(kube::Error::SerdeError(_) | kube::Error::Api(_))) => {}
            other => panic!(
                "expected a decoding error, got {:?}",
                other.map(|_| "an event")
            ),
        }
        kube.apply(EndpointSliceFixture::for_service("greeter").name("fine"));
        let Event::Apply(fine) = next_event(&mut events).await else {
            panic!("expected Apply")
        };
        assert_eq!(fine.metadata.name.as_deref(), Some("fine"));
    })
    .await;
}
