//! WATCH: adds, modifies and deletes (label changes included) reach the
//! watcher; a forced 410 makes it re-list; a dropped watch resumes from
//! where it was; bookmarks arrive only when asked and move the resume point.

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, WatchEvent, WatchParams};
use kube::runtime::watcher::{self, Event};
use tests::bounded;
use tests::fake_kube::{
    EndpointSliceFixture, EndpointState, FakeKube, Outage, Resource, SERVICE_NAME_LABEL,
    ServiceFixture, Verb,
};

use crate::{LIMIT, STEP, initial_names, next_event, slice_watcher};

fn conditions(slice: &EndpointSlice, address: &str) -> (bool, bool, bool) {
    let endpoint = slice
        .endpoints
        .iter()
        .find(|e| e.addresses.iter().any(|a| a == address))
        .expect("endpoint present");
    let c = endpoint.conditions.clone().unwrap_or_default();
    (
        c.ready.unwrap_or(false),
        c.serving.unwrap_or(false),
        c.terminating.unwrap_or(false),
    )
}

#[tokio::test]
async fn watcher_sees_adds_modifies_and_deletes() {
    bounded(LIMIT, async {
        let kube = FakeKube::start().await;
        kube.apply(
            EndpointSliceFixture::for_service("greeter")
                .name("greeter-a")
                .port("grpc", 8080)
                .endpoint("10.0.0.1", EndpointState::Ready),
        );
        kube.apply(EndpointSliceFixture::for_service("other").name("other-a"));
        let mut events = slice_watcher(kube.client().await, "default", "greeter");
        assert_eq!(initial_names(&mut events).await, ["greeter-a"]);

        kube.apply(
            EndpointSliceFixture::for_service("greeter")
                .name("greeter-b")
                .endpoint("10.0.0.2", EndpointState::Ready),
        );
        let Event::Apply(added) = next_event(&mut events).await else {
            panic!("expected Apply")
        };
        assert_eq!(added.metadata.name.as_deref(), Some("greeter-b"));

        // Changes to other services' slices are filtered out by the label.
        kube.apply(EndpointSliceFixture::for_service("other").name("other-b"));
        kube.set_endpoint_state(
            "default",
            "greeter-a",
            "10.0.0.1",
            EndpointState::Terminating,
        );
        let Event::Apply(modified) = next_event(&mut events).await else {
            panic!("expected Apply")
        };
        assert_eq!(modified.metadata.name.as_deref(), Some("greeter-a"));
        assert_eq!(conditions(&modified, "10.0.0.1"), (false, true, true));

        assert!(kube.delete_endpoint_slice("default", "greeter-b"));
        let Event::Delete(deleted) = next_event(&mut events).await else {
            panic!("expected Delete")
        };
        assert_eq!(deleted.metadata.name.as_deref(), Some("greeter-b"));
        assert_eq!(
            deleted.metadata.resource_version,
            Some(kube.resource_version().to_string()),
            "a deletion carries its own resourceVersion"
        );

        // A slice whose label stops matching leaves the watch as a deletion.
        kube.modify::<EndpointSlice>("default", "greeter-a", |s| {
            s.metadata
                .labels
                .as_mut()
                .unwrap()
                .insert(SERVICE_NAME_LABEL.into(), "moved".into());
        });
        assert!(matches!(next_event(&mut events).await, Event::Delete(_)));
        assert_eq!(kube.count(Resource::EndpointSlices, Verb::List), 1);
    })
    .await;
}

#[tokio::test]
async fn forced_410_makes_the_watcher_relist() {
    bounded(LIMIT, async {
        let kube = FakeKube::start().await;
        kube.apply(EndpointSliceFixture::for_service("greeter").name("greeter-a"));
        let client = kube.client().await;
        let mut events = slice_watcher(client.clone(), "default", "greeter");
        assert_eq!(initial_names(&mut events).await, ["greeter-a"]);
        kube.wait_until("a watch", STEP, |k| k.open_watches() == 1)
            .await;

        kube.expire_watches();
        match events.next().await {
            Err(watcher::Error::WatchError(status)) => {
                assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
            }
            _ => panic!("expected the 410 watch error"),
        }
        assert_eq!(initial_names(&mut events).await, ["greeter-a"]);
        assert_eq!(
            kube.count(Resource::EndpointSlices, Verb::List),
            2,
            "re-listed once"
        );
        kube.wait_until("a new watch", STEP, |k| k.open_watches() == 1)
            .await;

        // Resuming from a resourceVersion older than the compacted history
        // is answered with an ERROR 410 event, and the watcher re-lists.
        kube.go_down(Outage::Refuse).await;
        kube.apply(EndpointSliceFixture::for_service("greeter").name("greeter-c"));
        kube.compact();
        kube.come_up().await;
        assert_eq!(initial_names(&mut events).await, ["greeter-a", "greeter-c"]);
        let resumed = kube
            .requests()
            .into_iter()
            .filter(|r| r.verb == Verb::Watch)
            .nth(2);
        assert!(resumed.is_some(), "it tried to resume before re-listing");
        assert_eq!(kube.count(Resource::EndpointSlices, Verb::List), 3);
    })
    .await;
}

#[tokio::test]
async fn dropped_watches_resume_without_relisting() {
    bounded(LIMIT, async {
        let kube = FakeKube::start().await;
        kube.apply(EndpointSliceFixture::for_service("greeter").name("greeter-a"));
        let mut events = slice_watcher(kube.client().await, "default", "greeter");
        initial_names(&mut events).await;
        kube.wait_until("a watch", STEP, |k| k.open_watches() == 1)
            .await;
        let listed_at = kube.resource_version();

        kube.drop_watches();
        kube.apply(EndpointSliceFixture::for_service("greeter").name("greeter-b"));
        let Event::Apply(added) = next_event(&mut events).await else {
            panic!("expected Apply, not a re-list")
        };
        assert_eq!(added.metadata.name.as_deref(), Some("greeter-b"));
        let watches: Vec<_> = kube
            .requests()
            .into_iter()
            .filter(|r| r.verb == Verb::Watch)
            .collect();
        assert_eq!(watches.len(), 2);
        assert_eq!(
            watches[1].param("resourceVersion"),
            Some(listed_at.to_string().as_str())
        );
        assert_eq!(kube.count(Resource::EndpointSlices, Verb::List), 1);
    })
    .await;
}

#[tokio::test]
async fn bookmarks_arrive_when_asked_and_move_the_resume_point() {
    bounded(LIMIT, async {
        let kube = FakeKube::start().await;
        let client = kube.client().await;
        let api = Api::<Service>::namespaced(client.clone(), "default");
        let version = kube.resource_version().to_string();

        let mut with = api
            .watch(&WatchParams::default(), &version)
            .await
            .unwrap()
            .boxed();
        let mut without = api
            .watch(&WatchParams::default().disable_bookmarks(), &version)
            .await
            .unwrap()
            .boxed();
        kube.wait_until("two watches", STEP, |k| k.open_watches() == 2)
            .await;
        kube.send_bookmark();
        kube.apply(ServiceFixture::new("greeter"));
        match tokio::time::timeout(STEP, with.next()).await {
            Ok(Some(Ok(WatchEvent::Bookmark(bookmark)))) => {
                assert_eq!(bookmark.metadata.resource_version, version);
                assert_eq!(bookmark.types.kind, "Service");
            }
            other => panic!("expected a bookmark, got {other:?}"),
        }
        assert!(matches!(with.next().await, Some(Ok(WatchEvent::Added(_)))));
        assert!(
            matches!(without.next().await, Some(Ok(WatchEvent::Added(_)))),
            "no bookmark for a watch that did not ask"
        );
        drop((with, without));

        // The watcher keeps a bookmark's resourceVersion and resumes from it.
        let mut events = slice_watcher(client, "default", "greeter");
        initial_names(&mut events).await;
        kube.wait_until("one watch", STEP, |k| k.open_watches() == 1)
            .await;
        kube.apply(ServiceFixture::new("unrelated"));
        kube.send_bookmark();
        let bookmarked = kube.resource_version().to_string();
        // The watcher consumes the bookmark silently; an event after it
        // shows that it was read before the connection is cut.
        kube.apply(EndpointSliceFixture::for_service("greeter").name("greeter-a"));
        assert!(matches!(next_event(&mut events).await, Event::Apply(_)));
        kube.apply(ServiceFixture::new("unrelated-2"));
        kube.drop_watches();
        kube.wait_until("a resumed watch", STEP, |k| {
            k.count(Resource::EndpointSlices, Verb::Watch) == 2
        })
        .await;
        let resumed = kube
            .requests()
            .into_iter()
            .rfind(|r| r.verb == Verb::Watch)
            .unwrap();
        assert_eq!(resumed.param("allowWatchBookmarks"), Some("true"));
        let applied = (bookmarked.parse::<u64>().unwrap() + 1).to_string();
        assert_eq!(resumed.param("resourceVersion"), Some(applied.as_str()));
    })
    .await;
}
