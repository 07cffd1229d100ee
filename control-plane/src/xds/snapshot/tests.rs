//! The data path from a source's handle to the resources served: the
//! store's catalogs, built into resource snapshots.

use super::*;
use crate::store::SourceState;
use crate::store::tests::{service, store};

const CLUSTER: &str = "greeter.default.svc.cluster.local:80";

#[test]
fn upsert_publishes_and_skips_no_op_updates() {
    let store = store();
    let handle = store.source_handle();
    let resources = SnapshotBuilder::attach(&store);
    let mut rx = resources.subscribe();
    let first = rx.borrow_and_update().revision;

    assert_eq!(
        handle.upsert(service("greeter", &["10.0.0.1:8080"]), "add"),
        Ok(true)
    );
    assert!(rx.has_changed().unwrap());
    let snapshot = rx.borrow_and_update().clone();
    assert!(snapshot.revision > first);
    let cla = snapshot
        .get(ResourceType::ClusterLoadAssignment, CLUSTER)
        .expect("assignment");
    assert_eq!(cla.revision, snapshot.revision);
    let catalog = store.catalog();
    assert_eq!(catalog.revision, snapshot.revision);
    assert_eq!(catalog.source.last_event.as_ref().unwrap().text, "add");

    // Same content (in another order, with a duplicate): nothing published.
    assert_eq!(
        handle.upsert(
            service("greeter", &["10.0.0.1:8080", "10.0.0.1:8080"]),
            "again"
        ),
        Ok(false)
    );
    assert!(!rx.has_changed().unwrap());
}

#[test]
fn replace_all_keeps_unchanged_services_and_removes_missing_ones() {
    let store = store();
    let resources = SnapshotBuilder::attach(&store);
    let handle = store.source_handle();
    handle.replace_all(
        vec![service("a", &["10.0.0.1:1"]), service("b", &["10.0.0.2:1"])],
        "initial",
    );
    let before = resources.snapshot();
    let rejected = handle.replace_all(
        vec![
            service("a", &["10.0.0.1:1"]),
            service("c", &["10.0.0.3:1"]),
            service("Bad.Name", &[]),
        ],
        "reload",
    );
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].name, "Bad.Name");
    let after = resources.snapshot();
    assert!(Arc::ptr_eq(&before.services["a"], &after.services["a"]));
    assert!(!after.services.contains_key("b"));
    assert!(after.services.contains_key("c"));
    assert!(after.get(ResourceType::Listener, "c").is_some());
    assert!(after.get(ResourceType::Listener, "b").is_none());
}

#[test]
fn remove_and_source_state() {
    let store = store();
    let resources = SnapshotBuilder::attach(&store);
    let handle = store.source_handle();
    handle
        .upsert(service("greeter", &["10.0.0.1:8080"]), "add")
        .unwrap();
    assert!(handle.remove("greeter", "deleted"));
    assert!(!handle.remove("greeter", "deleted again"));
    assert!(
        resources
            .snapshot()
            .get(ResourceType::Cluster, CLUSTER)
            .is_none()
    );

    handle.set_state(SourceState::Disconnected, Some("connection refused".into()));
    let source = store.catalog().source.clone();
    assert_eq!(source.state, SourceState::Disconnected);
    assert_eq!(source.last_error.unwrap().text, "connection refused");
    handle.set_state(SourceState::Connected, None);
    assert_eq!(store.catalog().source.state, SourceState::Connected);
}
