//! The session against requests: first answers, ACKs, NACKs, stale
//! nonces; and the fixture the other session tests share, which builds
//! resource snapshots without a store.

use std::net::SocketAddr;
use std::time::{Duration, UNIX_EPOCH};

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse;
use envoy_types::pb::google::rpc::Status;
use prost::{Message, Name};

use std::cell::RefCell;

use super::*;
use crate::model::{Endpoint, Service, ServicePort};
use crate::names::Naming;
use crate::store::ServiceEntry;
use crate::xds::snapshot::ServedService;

pub(super) const GREETER: &str = "greeter.default.svc.cluster.local:80";
pub(super) const OTHER: &str = "other.default.svc.cluster.local:80";
pub(super) const NOW: SystemTime = UNIX_EPOCH;
pub(super) const RUN: &str = "run";

/// The resources served, changed by hand: snapshots without a world.
pub(super) struct World {
    naming: Naming,
    snapshot: RefCell<Arc<ResourceSnapshot>>,
}

impl World {
    pub(super) fn snapshot(&self) -> Arc<ResourceSnapshot> {
        self.snapshot.borrow().clone()
    }

    pub(super) fn version_info(&self, revision: u64) -> String {
        store::version_info(RUN, revision)
    }

    /// Adds or replaces `service`, as the store would: at a new revision,
    /// unless nothing changed.
    pub(super) fn upsert(&self, mut service: Service) {
        service.normalize();
        let current = self.snapshot();
        let previous = current.services.get(&service.name);
        if previous.is_some_and(|p| p.entry.service == service) {
            return;
        }
        let revision = current.revision + 1;
        let entry = Arc::new(ServiceEntry::new(service, Vec::new(), revision));
        let served = ServedService::build(entry, &self.naming, previous.map(|p| &**p));
        let name = served.entry.service.name.clone();
        let services = current
            .services
            .values()
            .filter(|s| s.entry.service.name != name)
            .cloned()
            .chain([Arc::new(served)]);
        *self.snapshot.borrow_mut() = Arc::new(ResourceSnapshot::new(revision, true, services));
    }

    /// Removes the service `name`, at a new revision.
    pub(super) fn remove(&self, name: &str) {
        let current = self.snapshot();
        let services = current
            .services
            .values()
            .filter(|s| s.entry.service.name != name)
            .cloned();
        let next = ResourceSnapshot::new(current.revision + 1, true, services);
        *self.snapshot.borrow_mut() = Arc::new(next);
    }
}

pub(super) fn world() -> World {
    let world = World {
        naming: Naming::new("default"),
        snapshot: RefCell::default(),
    };
    set(&world, "greeter", &["10.0.0.1:8080"]);
    set(&world, "other", &["10.0.1.1:8080"]);
    world
}

pub(super) fn set(world: &World, name: &str, addrs: &[&str]) {
    let service = Service {
        name: name.into(),
        namespace: "default".into(),
        ports: vec![ServicePort {
            name: Some("grpc".into()),
            port: 80,
            endpoints: addrs
                .iter()
                .map(|a| Endpoint::ready(a.parse::<SocketAddr>().unwrap()))
                .collect(),
        }],
        tls: None,
        policy: Default::default(),
    };
    world.upsert(service);
}

pub(super) fn session(_world: &World) -> Session {
    Session::new(RUN, "test", Limits::default())
}

pub(super) fn request(kind: ResourceType, names: &[&str], nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: kind.type_url(),
        resource_names: names.iter().map(|n| (*n).to_owned()).collect(),
        response_nonce: nonce.to_owned(),
        ..Default::default()
    }
}

pub(super) fn nack(
    kind: ResourceType,
    names: &[&str],
    nonce: &str,
    error: &str,
) -> DiscoveryRequest {
    DiscoveryRequest {
        error_detail: Some(Status {
            code: 3,
            message: error.into(),
            details: vec![],
        }),
        ..request(kind, names, nonce)
    }
}

/// Feeds `request` and returns the one response it must produce.
pub(super) fn one(
    session: &mut Session,
    world: &World,
    request: DiscoveryRequest,
) -> DiscoveryResponse {
    let reply = session
        .on_request(&request, &world.snapshot(), NOW)
        .expect("accepted");
    assert_eq!(reply.responses.len(), 1, "{reply:?}");
    reply
        .responses
        .into_iter()
        .next()
        .unwrap()
        .response
        .to_message()
}

pub(super) fn none(session: &mut Session, world: &World, request: DiscoveryRequest) -> Received {
    let reply = session
        .on_request(&request, &world.snapshot(), NOW)
        .expect("accepted");
    assert!(reply.responses.is_empty(), "{reply:?}");
    reply.received
}

pub(super) fn names<T: Message + Name + Default>(
    response: &DiscoveryResponse,
    name: fn(&T) -> &str,
) -> Vec<String> {
    response
        .resources
        .iter()
        .map(|any| {
            assert_eq!(any.type_url, T::type_url());
            name(&T::decode(any.value.as_slice()).unwrap()).to_owned()
        })
        .collect()
}

pub(super) fn listeners(response: &DiscoveryResponse) -> Vec<String> {
    names::<Listener>(response, |l| &l.name)
}

pub(super) fn assignments(response: &DiscoveryResponse) -> Vec<String> {
    names::<ClusterLoadAssignment>(response, |c| &c.cluster_name)
}

pub(super) fn type_view(session: &Session, kind: ResourceType) -> TypeView {
    session
        .view()
        .types
        .into_iter()
        .find(|t| t.kind == kind)
        .expect("type requested")
}

#[test]
fn first_request_is_answered_with_fresh_nonce_and_run_version() {
    let world = world();
    let mut session = session(&world);
    let first = one(
        &mut session,
        &world,
        request(ResourceType::Listener, &["greeter"], ""),
    );
    assert_eq!(listeners(&first), vec!["greeter"]);
    assert_eq!(first.type_url, ResourceType::Listener.type_url());
    assert_eq!(
        first.version_info,
        world.version_info(world.snapshot().revision)
    );
    assert!(!first.nonce.is_empty());
    assert_eq!(first.control_plane.unwrap().identifier, "test");

    let cds = one(
        &mut session,
        &world,
        request(ResourceType::Cluster, &[GREETER], ""),
    );
    assert_ne!(cds.nonce, first.nonce, "a fresh nonce on every response");
    assert_eq!(names::<Cluster>(&cds, |c| &c.name), vec![GREETER]);
}

#[test]
fn ack_sends_nothing_and_is_recorded() {
    let world = world();
    let mut session = session(&world);
    let sent = one(
        &mut session,
        &world,
        request(ResourceType::Listener, &["greeter"], ""),
    );
    assert!(type_view(&session, ResourceType::Listener).pending);
    let received = none(
        &mut session,
        &world,
        request(ResourceType::Listener, &["greeter"], &sent.nonce),
    );
    assert_eq!(
        received,
        Received::Request {
            kind: ResourceType::Listener,
            ack: Ack::Acked {
                version: sent.version_info.clone()
            },
            added: 0,
            removed: 0,
        }
    );
    let view = type_view(&session, ResourceType::Listener);
    assert_eq!(view.acked_version, sent.version_info);
    assert!(!view.pending);
    assert_eq!((view.responses, view.acks, view.nacks), (1, 1, 0));
}

#[test]
fn nack_is_recorded_and_the_same_version_not_resent() {
    let world = world();
    let mut session = session(&world);
    let sent = one(
        &mut session,
        &world,
        request(ResourceType::ClusterLoadAssignment, &[GREETER], ""),
    );
    let at = NOW + Duration::from_secs(7);
    let reply = session
        .on_request(
            &nack(
                ResourceType::ClusterLoadAssignment,
                &[GREETER],
                &sent.nonce,
                "duplicate address",
            ),
            &world.snapshot(),
            at,
        )
        .unwrap();
    assert!(reply.responses.is_empty());
    let view = type_view(&session, ResourceType::ClusterLoadAssignment);
    assert_eq!(
        view.nack,
        Some(Nack {
            error: "duplicate address".into(),
            version: sent.version_info.clone(),
            at,
        })
    );
    assert_eq!(view.acked_version, "");

    // A change elsewhere does not resend the rejected assignment ...
    set(&world, "other", &["10.0.1.2:8080"]);
    assert!(session.on_snapshot(&world.snapshot(), NOW).is_empty());
    // ... a change to it does.
    set(&world, "greeter", &["10.0.0.2:8080"]);
    let update = session.on_snapshot(&world.snapshot(), NOW);
    assert_eq!(update.len(), 1);
    assert_eq!(assignments(&update[0].response.to_message()), vec![GREETER]);
    assert_ne!(update[0].response.version_info, sent.version_info);
}

#[test]
fn stale_nonce_changes_nothing() {
    let world = world();
    let mut session = session(&world);
    let first = one(
        &mut session,
        &world,
        request(ResourceType::Listener, &["greeter"], ""),
    );
    let second = one(
        &mut session,
        &world,
        request(ResourceType::Listener, &["greeter", "other"], &first.nonce),
    );
    let received = none(
        &mut session,
        &world,
        nack(ResourceType::Listener, &["nothing"], &first.nonce, "late"),
    );
    assert_eq!(
        received,
        Received::Stale {
            kind: ResourceType::Listener,
            nonce: first.nonce.clone()
        }
    );
    let view = type_view(&session, ResourceType::Listener);
    assert_eq!(view.names, vec!["greeter", "other"]);
    assert_eq!(view.nack, None);
    assert_eq!(view.sent_nonce, second.nonce);
    assert!(view.pending);
}
