use std::net::SocketAddr;

use super::*;
use crate::model::{Endpoint, EndpointState, ServicePort};
use crate::source::SourceKind;

const CLUSTER: &str = "greeter.default.svc.cluster.local:80";

fn store() -> Arc<Store> {
    Store::new(
        Naming::new("default"),
        SourceStatus::starting(SourceKind::Static, "test"),
    )
}

fn service(name: &str, addrs: &[&str]) -> Service {
    Service {
        name: name.into(),
        namespace: "default".into(),
        ports: vec![ServicePort {
            name: None,
            port: 80,
            endpoints: addrs
                .iter()
                .map(|a| Endpoint::ready(a.parse::<SocketAddr>().unwrap()))
                .collect(),
        }],
        tls: None,
        policy: Default::default(),
    }
}

#[test]
fn upsert_publishes_and_skips_no_op_updates() {
    let store = store();
    let handle = store.source_handle();
    let mut rx = store.subscribe();
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
    assert_eq!(snapshot.source.last_event.as_ref().unwrap().text, "add");

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
    let handle = store.source_handle();
    handle.replace_all(
        vec![service("a", &["10.0.0.1:1"]), service("b", &["10.0.0.2:1"])],
        "initial",
    );
    let before = store.snapshot();
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
    let after = store.snapshot();
    assert!(Arc::ptr_eq(&before.services["a"], &after.services["a"]));
    assert!(!after.services.contains_key("b"));
    assert!(after.services.contains_key("c"));
    assert!(after.get(ResourceType::Listener, "c").is_some());
    assert!(after.get(ResourceType::Listener, "b").is_none());
}

#[test]
fn services_of_other_namespaces_are_refused() {
    let store = store();
    let mut other = service("greeter", &[]);
    other.namespace = "kube-system".into();
    assert!(matches!(
        store.source_handle().upsert(other, "x"),
        Err(ModelError::WrongNamespace { .. })
    ));
    assert!(store.snapshot().services.is_empty());
}

#[test]
fn remove_and_source_state() {
    let store = store();
    let handle = store.source_handle();
    handle
        .upsert(service("greeter", &["10.0.0.1:8080"]), "add")
        .unwrap();
    assert!(handle.remove("greeter", "deleted"));
    assert!(!handle.remove("greeter", "deleted again"));
    assert!(
        store
            .snapshot()
            .get(ResourceType::Cluster, CLUSTER)
            .is_none()
    );

    handle.set_state(SourceState::Disconnected, Some("connection refused".into()));
    let source = store.snapshot().source.clone();
    assert_eq!(source.state, SourceState::Disconnected);
    assert_eq!(source.last_error.unwrap().text, "connection refused");
    handle.set_state(SourceState::Connected, None);
    assert_eq!(store.snapshot().source.state, SourceState::Connected);
}

#[test]
fn versions_differ_between_runs() {
    let a = store();
    let b = store();
    assert_ne!(a.instance_id(), b.instance_id());
    assert_ne!(a.version_info(5), b.version_info(5));
    assert!(a.version_info(5).ends_with("-5"));
}

#[test]
fn endpoint_states_reach_the_snapshot() {
    let store = store();
    let mut svc = service("greeter", &["10.0.0.1:8080", "10.0.0.2:8080"]);
    svc.ports[0].endpoints[1].state = EndpointState::Draining;
    store.source_handle().upsert(svc, "add").unwrap();
    let snapshot = store.snapshot();
    assert_eq!(snapshot.services["greeter"].service.counts(), (1, 1, 0));
}
