//! The store's tests; `store` and `service` also serve the tests of what
//! follows the store.

use std::net::SocketAddr;

use super::*;
use crate::model::{Endpoint, Readiness, ServicePort};

pub(crate) fn store() -> Arc<Store> {
    Store::new(
        Naming::new("default"),
        SourceStatus::starting(SourceKind::Static, "test"),
    )
}

pub(crate) fn service(name: &str, addrs: &[&str]) -> Service {
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
fn services_of_other_namespaces_are_refused() {
    let store = store();
    let mut other = service("greeter", &[]);
    other.namespace = "kube-system".into();
    assert!(matches!(
        store.source_handle().upsert(other, "x"),
        Err(ModelError::WrongNamespace { .. })
    ));
    assert!(store.catalog().services.is_empty());
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
    svc.ports[0].endpoints[1].state = Readiness::Draining;
    store.source_handle().upsert(svc, "add").unwrap();
    let catalog = store.catalog();
    assert_eq!(catalog.services["greeter"].service.counts(), (1, 1, 0));
}
