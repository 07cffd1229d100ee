//! The fake Kubernetes API server, driven through the real `kube::Client`
//! (built from the kubeconfig it writes) and `kube::runtime::watcher`.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::json;
use tests::bounded;
use tests::fake_kube::{
    EndpointSliceFixture, EndpointState, FakeKube, Outage, Resource, SERVICE_NAME_LABEL,
    ServiceFixture, Verb,
};
use tokio::sync::mpsc;

const LIMIT: Duration = Duration::from_secs(30);
const STEP: Duration = Duration::from_secs(10);

/// A watcher driven by its own task (as a program would run it), with
/// kube-runtime's default backoff; its events and errors arrive here.
struct Events<K> {
    rx: mpsc::UnboundedReceiver<Result<Event<K>, watcher::Error>>,
    task: tokio::task::JoinHandle<()>,
}

impl<K> Drop for Events<K> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<K> Events<K> {
    /// The next event or error.
    async fn next(&mut self) -> Result<Event<K>, watcher::Error> {
        match tokio::time::timeout(STEP, self.rx.recv()).await {
            Ok(Some(item)) => item,
            Ok(None) => panic!("watch stream ended"),
            Err(_) => panic!("nothing from the watcher within {STEP:?}"),
        }
    }
}

fn slice_watcher(client: kube::Client, namespace: &str, service: &str) -> Events<EndpointSlice> {
    let api = Api::<EndpointSlice>::namespaced(client, namespace);
    let config = watcher::Config::default().labels(&format!("{SERVICE_NAME_LABEL}={service}"));
    let (tx, rx) = mpsc::unbounded_channel();
    let mut stream = watcher::watcher(api, config).default_backoff().boxed();
    let task = tokio::spawn(async move {
        while let Some(item) = stream.next().await {
            if tx.send(item).is_err() {
                return;
            }
        }
    });
    Events { rx, task }
}

/// The next event, skipping errors (which the watcher recovers from).
async fn next_event<K>(events: &mut Events<K>) -> Event<K> {
    loop {
        if let Ok(event) = events.next().await {
            return event;
        }
    }
}

/// Reads Init, every InitApply and InitDone; returns the listed object names.
async fn initial_names<K: kube::Resource>(events: &mut Events<K>) -> Vec<String> {
    assert!(
        matches!(next_event(events).await, Event::Init),
        "expected Init"
    );
    let mut names = Vec::new();
    loop {
        match next_event(events).await {
            Event::InitApply(object) => names.push(object.meta().name.clone().unwrap_or_default()),
            Event::InitDone => return names,
            _ => panic!("expected InitApply or InitDone"),
        }
    }
}

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
async fn lists_paginate_filter_by_label_and_stay_in_their_namespace() {
    bounded(LIMIT, async {
        let kube = FakeKube::start().await;
        for name in ["a", "b", "c", "d", "e"] {
            kube.apply(ServiceFixture::new(name).port("grpc", 80, 8080));
        }
        kube.apply(ServiceFixture::new("elsewhere").namespace("other"));
        kube.apply(
            EndpointSliceFixture::for_service("a").endpoint("10.0.0.1", EndpointState::Ready),
        );
        kube.apply(
            EndpointSliceFixture::for_service("b").endpoint("10.0.0.2", EndpointState::Ready),
        );
        kube.apply(
            EndpointSliceFixture::for_service("a")
                .namespace("other")
                .endpoint("10.9.0.1", EndpointState::Ready),
        );
        let client = kube.client().await;

        let services = Api::<Service>::namespaced(client.clone(), "default");
        let mut names = Vec::new();
        let mut params = ListParams::default().limit(2);
        let mut pages = 0;
        let mut list_version = None;
        loop {
            let page = services.list(&params).await.expect("list services");
            pages += 1;
            let version = page
                .metadata
                .resource_version
                .clone()
                .expect("list resourceVersion");
            assert_eq!(
                *list_version.get_or_insert(version.clone()),
                version,
                "pages share one version"
            );
            names.extend(page.items.iter().map(|s| s.metadata.name.clone().unwrap()));
            match page.metadata.continue_ {
                Some(token) if !token.is_empty() => params = params.continue_token(&token),
                _ => break,
            }
        }
        assert_eq!(names, ["a", "b", "c", "d", "e"]);
        assert_eq!(pages, 3);

        let slices = Api::<EndpointSlice>::namespaced(client.clone(), "default");
        let of_a = slices
            .list(&ListParams::default().labels(&format!("{SERVICE_NAME_LABEL}=a")))
            .await
            .expect("list slices");
        assert_eq!(of_a.items.len(), 1);
        assert_eq!(of_a.items[0].endpoints[0].addresses, ["10.0.0.1"]);
        let labelled = slices
            .list(&ListParams::default().labels(SERVICE_NAME_LABEL))
            .await
            .expect("list by existence");
        assert_eq!(labelled.items.len(), 2);
        let all = Api::<EndpointSlice>::all(client.clone())
            .list(&ListParams::default())
            .await
            .unwrap();
        assert_eq!(
            all.items.len(),
            3,
            "the cluster-wide list sees the other namespace"
        );

        let got = services.get("c").await.expect("get c");
        assert_eq!(got.metadata.namespace.as_deref(), Some("default"));
        assert!(services.get_opt("nope").await.expect("get_opt").is_none());
        assert_eq!(kube.count(Resource::Services, Verb::List), 3);
        assert_eq!(kube.count(Resource::Services, Verb::Get), 2);
    })
    .await;
}

#[tokio::test]
async fn kubeconfig_can_carry_a_namespace() {
    bounded(LIMIT, async {
        let kube = FakeKube::start().await;
        let path = kube.kubeconfig_path().with_file_name("with-namespace");
        kube.write_kubeconfig(&path, Some("team-a"));
        let kubeconfig = kube::config::Kubeconfig::read_from(&path).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        assert_eq!(config.default_namespace, "team-a");
        assert_eq!(config.cluster_url.to_string(), format!("{}/", kube.url()));
    })
    .await;
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
