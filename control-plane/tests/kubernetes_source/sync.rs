//! Listing: the initial sync publishes the whole namespace at once, and a
//! forced 410 Gone re-lists without publishing a partial set.

use control_plane::model::Readiness;
use control_plane::source::SourceState;
use tests::bounded;
use tests::fake_kube::{EndpointState as K8sState, FakeKube, Resource, Verb};

use crate::harness::{Harness, LIMIT, STEP, complete, describe, endpoints, populate, state_of};

#[tokio::test]
async fn initial_sync_publishes_the_complete_namespace_once() {
    bounded(LIMIT, async {
        let kube = FakeKube::start().await;
        populate(&kube).await;
        let h = Harness::start(kube).await;
        let snapshot = h
            .wait_for("the initial sync", |s| {
                s.source.state == SourceState::Connected
            })
            .await;

        let names: Vec<_> = snapshot.services.keys().cloned().collect();
        assert_eq!(
            names,
            ["greeter", "manual"],
            "no ExternalName, no other namespace"
        );
        let greeter = endpoints(&snapshot, "greeter").unwrap();
        assert_eq!(greeter.len(), 150, "75 + 75, the shared address once");
        assert_eq!(
            greeter.iter().filter(|(a, _)| a == "10.0.0.1:8080").count(),
            1
        );
        assert!(
            greeter.iter().any(|(a, _)| a == "10.0.1.1:9090"),
            "per-slice targetPort"
        );
        assert!(
            !greeter.iter().any(|(a, _)| a.starts_with("10.9.")),
            "other namespace"
        );
        assert_eq!(
            endpoints(&snapshot, "manual").unwrap(),
            [("[fd00::1]:50051".to_owned(), Readiness::Ready)]
        );
        let manual = &snapshot.services["manual"].service.ports[0].endpoints[0];
        assert_eq!(manual.zone.as_deref(), Some("zone-a"));

        // Every publication either had nothing yet or had everything.
        for seen in h.seen() {
            assert!(
                seen.services.is_empty() || complete(&seen),
                "partial: {}",
                describe(&seen)
            );
        }
        let continued =
            h.kube.requests().into_iter().any(|r| {
                r.resource == Some(Resource::EndpointSlices) && r.param("continue").is_some()
            });
        assert!(continued, "the slices were listed in pages");
    })
    .await;
}

#[tokio::test]
async fn a_forced_410_relists_without_publishing_a_partial_set() {
    bounded(LIMIT, async {
        let kube = FakeKube::start().await;
        populate(&kube).await;
        let h = Harness::start(kube).await;
        h.wait_for("the initial sync", |s| {
            s.source.state == SourceState::Connected
        })
        .await;
        h.kube
            .wait_until("both watches", STEP, |k| k.open_watches() == 2)
            .await;
        let lists = h.kube.count(Resource::EndpointSlices, Verb::List);

        h.kube.expire_watches();
        h.kube
            .wait_until("re-listed and watching again", STEP, |k| {
                k.count(Resource::EndpointSlices, Verb::List) >= lists + 2 && k.open_watches() == 2
            })
            .await;
        // A change after the re-list still arrives.
        h.kube
            .set_endpoint_state("default", "greeter-a", "10.0.0.2", K8sState::NotReady);
        h.wait_for("the change after the re-list", |s| {
            state_of(s, "greeter", "10.0.0.2:8080") == Some(Readiness::NotReady)
        })
        .await;

        let seen = h.seen();
        let first_complete = seen
            .iter()
            .position(|s| complete(s))
            .expect("a complete snapshot");
        for snapshot in &seen[first_complete..] {
            assert!(
                complete(snapshot),
                "partial after the sync: {}",
                describe(snapshot)
            );
            assert_eq!(
                snapshot.source.state,
                SourceState::Connected,
                "a 410 is not an outage"
            );
        }
    })
    .await;
}
