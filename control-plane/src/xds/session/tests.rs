use std::net::SocketAddr;
use std::time::{Duration, UNIX_EPOCH};

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::node::UserAgentVersionType;
use envoy_types::pb::envoy::config::core::v3::{Locality, Node};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse;
use envoy_types::pb::google::rpc::Status;
use prost::{Message, Name};

use super::*;
use crate::model::{Endpoint, Service, ServicePort};
use crate::source::{SourceKind, SourceStatus};
use crate::store::Store;
use crate::xds::names::Naming;

const GREETER: &str = "greeter.default.svc.cluster.local:80";
const OTHER: &str = "other.default.svc.cluster.local:80";
const NOW: SystemTime = UNIX_EPOCH;

fn store() -> Arc<Store> {
    let store = Store::new(
        Naming::new("default"),
        SourceStatus::starting(SourceKind::Static, "test"),
    );
    set(&store, "greeter", &["10.0.0.1:8080"]);
    set(&store, "other", &["10.0.1.1:8080"]);
    store
}

fn set(store: &Arc<Store>, name: &str, addrs: &[&str]) {
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
    store.source_handle().upsert(service, "test").unwrap();
}

fn session(store: &Store) -> Session {
    Session::new(store.instance_id(), "test", Limits::default())
}

fn request(kind: ResourceType, names: &[&str], nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: kind.type_url(),
        resource_names: names.iter().map(|n| (*n).to_owned()).collect(),
        response_nonce: nonce.to_owned(),
        ..Default::default()
    }
}

fn nack(kind: ResourceType, names: &[&str], nonce: &str, error: &str) -> DiscoveryRequest {
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
fn one(session: &mut Session, store: &Store, request: DiscoveryRequest) -> DiscoveryResponse {
    let reply = session
        .on_request(&request, &store.snapshot(), NOW)
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

fn none(session: &mut Session, store: &Store, request: DiscoveryRequest) -> Received {
    let reply = session
        .on_request(&request, &store.snapshot(), NOW)
        .expect("accepted");
    assert!(reply.responses.is_empty(), "{reply:?}");
    reply.received
}

fn names<T: Message + Name + Default>(
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

fn listeners(response: &DiscoveryResponse) -> Vec<String> {
    names::<Listener>(response, |l| &l.name)
}

fn assignments(response: &DiscoveryResponse) -> Vec<String> {
    names::<ClusterLoadAssignment>(response, |c| &c.cluster_name)
}

fn type_view(session: &Session, kind: ResourceType) -> TypeView {
    session
        .view()
        .types
        .into_iter()
        .find(|t| t.kind == kind)
        .expect("type requested")
}

#[test]
fn first_request_is_answered_with_fresh_nonce_and_run_version() {
    let store = store();
    let mut session = session(&store);
    let first = one(
        &mut session,
        &store,
        request(ResourceType::Listener, &["greeter"], ""),
    );
    assert_eq!(listeners(&first), vec!["greeter"]);
    assert_eq!(first.type_url, ResourceType::Listener.type_url());
    assert_eq!(
        first.version_info,
        store.version_info(store.snapshot().revision)
    );
    assert!(!first.nonce.is_empty());
    assert_eq!(first.control_plane.unwrap().identifier, "test");

    let cds = one(
        &mut session,
        &store,
        request(ResourceType::Cluster, &[GREETER], ""),
    );
    assert_ne!(cds.nonce, first.nonce, "a fresh nonce on every response");
    assert_eq!(names::<Cluster>(&cds, |c| &c.name), vec![GREETER]);
}

#[test]
fn ack_sends_nothing_and_is_recorded() {
    let store = store();
    let mut session = session(&store);
    let sent = one(
        &mut session,
        &store,
        request(ResourceType::Listener, &["greeter"], ""),
    );
    assert!(type_view(&session, ResourceType::Listener).pending);
    let received = none(
        &mut session,
        &store,
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
    let store = store();
    let mut session = session(&store);
    let sent = one(
        &mut session,
        &store,
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
            &store.snapshot(),
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
    set(&store, "other", &["10.0.1.2:8080"]);
    assert!(session.on_snapshot(&store.snapshot(), NOW).is_empty());
    // ... a change to it does.
    set(&store, "greeter", &["10.0.0.2:8080"]);
    let update = session.on_snapshot(&store.snapshot(), NOW);
    assert_eq!(update.len(), 1);
    assert_eq!(assignments(&update[0].response.to_message()), vec![GREETER]);
    assert_ne!(update[0].response.version_info, sent.version_info);
}

#[test]
fn stale_nonce_changes_nothing() {
    let store = store();
    let mut session = session(&store);
    let first = one(
        &mut session,
        &store,
        request(ResourceType::Listener, &["greeter"], ""),
    );
    let second = one(
        &mut session,
        &store,
        request(ResourceType::Listener, &["greeter", "other"], &first.nonce),
    );
    let received = none(
        &mut session,
        &store,
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

#[test]
fn listener_subscription_changes_send_the_full_set() {
    let store = store();
    let mut session = session(&store);
    let first = one(
        &mut session,
        &store,
        request(ResourceType::Listener, &["greeter"], ""),
    );
    let added = one(
        &mut session,
        &store,
        request(
            ResourceType::Listener,
            &["greeter", "other:grpc"],
            &first.nonce,
        ),
    );
    assert_eq!(listeners(&added), vec!["greeter", "other:grpc"]);
    let dropped = one(
        &mut session,
        &store,
        request(ResourceType::Listener, &["other:grpc"], &added.nonce),
    );
    assert_eq!(listeners(&dropped), vec!["other:grpc"]);
    // Dropped: a change to it sends nothing.
    set(&store, "greeter", &["10.0.0.9:8080"]);
    assert!(session.on_snapshot(&store.snapshot(), NOW).is_empty());
}

#[test]
fn assignments_send_new_and_changed_ones_only() {
    let store = store();
    let mut session = session(&store);
    let first = one(
        &mut session,
        &store,
        request(ResourceType::ClusterLoadAssignment, &[GREETER], ""),
    );
    assert_eq!(assignments(&first), vec![GREETER]);
    let added = one(
        &mut session,
        &store,
        request(
            ResourceType::ClusterLoadAssignment,
            &[GREETER, OTHER],
            &first.nonce,
        ),
    );
    assert_eq!(assignments(&added), vec![OTHER], "only the new one");
    // Dropping one is answered too, with nothing to carry.
    let dropped = one(
        &mut session,
        &store,
        request(ResourceType::ClusterLoadAssignment, &[OTHER], &added.nonce),
    );
    assert!(dropped.resources.is_empty());
    // Re-adding sends it again.
    let again = one(
        &mut session,
        &store,
        request(
            ResourceType::ClusterLoadAssignment,
            &[GREETER, OTHER],
            &dropped.nonce,
        ),
    );
    assert_eq!(assignments(&again), vec![GREETER]);
    // An endpoint change sends just that assignment.
    set(&store, "other", &["10.0.1.5:8080"]);
    let update = session.on_snapshot(&store.snapshot(), NOW);
    assert_eq!(update.len(), 1);
    assert_eq!(assignments(&update[0].response.to_message()), vec![OTHER]);
}

#[test]
fn unknown_names_are_answered_at_once_without_them() {
    let store = store();
    let mut session = session(&store);
    let lds = one(
        &mut session,
        &store,
        request(ResourceType::Listener, &["nope", "greeter"], ""),
    );
    assert_eq!(listeners(&lds), vec!["greeter"]);
    let cds = one(
        &mut session,
        &store,
        request(
            ResourceType::Cluster,
            &["nope.default.svc.cluster.local:80"],
            "",
        ),
    );
    assert!(cds.resources.is_empty());
    let eds = one(
        &mut session,
        &store,
        request(ResourceType::ClusterLoadAssignment, &["x"], ""),
    );
    assert!(eds.resources.is_empty());

    // When it appears later, it is sent.
    set(&store, "nope", &["10.0.2.1:8080"]);
    let update = session.on_snapshot(&store.snapshot(), NOW);
    let kinds: Vec<_> = update.iter().map(|o| o.kind).collect();
    assert_eq!(kinds, vec![ResourceType::Listener, ResourceType::Cluster]);
    assert_eq!(
        listeners(&update[0].response.to_message()),
        vec!["greeter", "nope"]
    );
}

#[test]
fn snapshots_send_only_what_subscribed_resources_need() {
    let store = store();
    let mut session = session(&store);
    one(
        &mut session,
        &store,
        request(ResourceType::Listener, &["greeter"], ""),
    );
    one(
        &mut session,
        &store,
        request(ResourceType::ClusterLoadAssignment, &[GREETER], ""),
    );
    // Nothing new: nothing sent.
    assert!(session.on_snapshot(&store.snapshot(), NOW).is_empty());
    // Unrelated service: nothing sent.
    set(&store, "other", &["10.0.1.3:8080"]);
    assert!(session.on_snapshot(&store.snapshot(), NOW).is_empty());
    // An endpoint change: only the assignment, stamped with the change time.
    set(&store, "greeter", &["10.0.0.3:8080"]);
    let snapshot = store.snapshot();
    let update = session.on_snapshot(&snapshot, NOW);
    assert_eq!(update.len(), 1);
    assert_eq!(update[0].kind, ResourceType::ClusterLoadAssignment);
    assert_eq!(
        update[0].changed_at,
        Some(snapshot.services["greeter"].changed_at)
    );
    // The service goes away: the Listener response no longer lists it.
    store.source_handle().remove("greeter", "test");
    let update = session.on_snapshot(&store.snapshot(), NOW);
    assert_eq!(update.len(), 1);
    assert_eq!(update[0].kind, ResourceType::Listener);
    assert!(update[0].response.resources.is_empty());
}

#[test]
fn wildcard_rules() {
    let store = store();
    let mut session = session(&store);
    // Listener with no names before any explicit one: every canonical Listener.
    let all = one(
        &mut session,
        &store,
        request(ResourceType::Listener, &[], ""),
    );
    assert_eq!(listeners(&all), vec![GREETER, OTHER]);
    assert!(type_view(&session, ResourceType::Listener).wildcard);
    // Explicit names end it; an empty list afterwards unsubscribes.
    let named = one(
        &mut session,
        &store,
        request(ResourceType::Listener, &["greeter"], &all.nonce),
    );
    assert_eq!(listeners(&named), vec!["greeter"]);
    let empty = one(
        &mut session,
        &store,
        request(ResourceType::Listener, &[], &named.nonce),
    );
    assert!(empty.resources.is_empty());
    assert!(!type_view(&session, ResourceType::Listener).wildcard);

    // Assignments with no names: nothing, not everything.
    let eds = one(
        &mut session,
        &store,
        request(ResourceType::ClusterLoadAssignment, &[], ""),
    );
    assert!(eds.resources.is_empty());
    // `*` subscribes to everything for any type.
    let star = one(
        &mut session,
        &store,
        request(ResourceType::ClusterLoadAssignment, &["*"], &eds.nonce),
    );
    assert_eq!(assignments(&star), vec![GREETER, OTHER]);
}

#[test]
fn unknown_type_urls_are_recorded_and_ignored() {
    let store = store();
    let mut session = session(&store);
    let url = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";
    let mut unknown = request(ResourceType::Listener, &["x"], "");
    unknown.type_url = url.into();
    for _ in 0..2 {
        assert_eq!(
            none(&mut session, &store, unknown.clone()),
            Received::UnknownType {
                type_url: url.into()
            }
        );
    }
    assert_eq!(session.view().unknown_types, vec![(url.to_owned(), 2)]);
    assert!(session.view().types.is_empty());
    // The stream's other types are unaffected.
    one(
        &mut session,
        &store,
        request(ResourceType::Listener, &["greeter"], ""),
    );
}

#[test]
fn oversize_requests_are_refused_and_change_nothing() {
    let store = store();
    let mut session = Session::new(
        store.instance_id(),
        "test",
        Limits {
            max_names: 3,
            max_name_bytes: 20,
        },
    );
    let sent = one(
        &mut session,
        &store,
        request(ResourceType::Listener, &["greeter"], ""),
    );
    let error = session
        .on_request(
            &request(ResourceType::Listener, &["a", "b", "c", "d"], &sent.nonce),
            &store.snapshot(),
            NOW,
        )
        .unwrap_err();
    assert_eq!(
        error,
        Error::TooManyNames {
            type_url: ResourceType::Listener.type_url(),
            count: 4,
            max: 3
        }
    );
    assert!(error.to_string().contains("at most 3"), "{error}");
    let long = "x".repeat(21);
    let error = session
        .on_request(
            &request(ResourceType::Listener, &[&long], &sent.nonce),
            &store.snapshot(),
            NOW,
        )
        .unwrap_err();
    assert!(matches!(
        error,
        Error::NameTooLong {
            bytes: 21,
            max: 20,
            ..
        }
    ));
    let view = type_view(&session, ResourceType::Listener);
    assert_eq!(view.names, vec!["greeter"]);
    assert!(view.pending, "the refused requests did not ACK anything");
}

#[test]
fn node_comes_from_the_first_request() {
    let store = store();
    let mut session = session(&store);
    let mut first = request(ResourceType::Listener, &["greeter"], "");
    first.node = Some(Node {
        id: "client-1".into(),
        user_agent_name: "gRPC Python".into(),
        user_agent_version_type: Some(UserAgentVersionType::UserAgentVersion("1.85.1".into())),
        locality: Some(Locality {
            zone: "zone-a".into(),
            ..Default::default()
        }),
        ..Default::default()
    });
    let sent = one(&mut session, &store, first);
    let mut later = request(ResourceType::Listener, &["greeter"], &sent.nonce);
    later.node = Some(Node {
        id: "someone-else".into(),
        ..Default::default()
    });
    none(&mut session, &store, later);
    let node = session.node().unwrap();
    assert_eq!(node.id, "client-1");
    assert_eq!(node.user_agent, "gRPC Python 1.85.1");
    assert_eq!(node.zone, "zone-a");
}

#[test]
fn a_carried_over_nonce_counts_as_a_first_request() {
    let store = store();
    let mut session = session(&store);
    let response = one(
        &mut session,
        &store,
        request(ResourceType::Listener, &["greeter"], "41"),
    );
    assert_eq!(listeners(&response), vec!["greeter"]);
}

#[test]
fn subscribed_names_are_sorted_deduplicated_and_compared() {
    let owned = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
    let a = Names::listed(&owned(&["b", "a", "*", "a"]));
    assert_eq!(a.0, ["a", "b"]);
    let b = Names::listed(&owned(&["c", "b"]));
    assert_eq!(a.count_missing_from(&b), 1);
    assert_eq!(b.count_missing_from(&a), 1);
    assert_eq!(a.count_missing_from(&a), 0);
    assert_eq!(Names::listed(&[]).count_missing_from(&a), 0);
}

#[test]
fn the_oldest_unacked_response_counts_until_it_is_answered() {
    let store = store();
    let mut session = session(&store);
    assert_eq!(session.oldest_unacked(), None);
    let first = one(
        &mut session,
        &store,
        request(ResourceType::ClusterLoadAssignment, &[GREETER], ""),
    );
    assert_eq!(session.oldest_unacked(), Some(NOW));
    // A newer response before the client answered: the older one still
    // counts.
    set(&store, "greeter", &["10.0.0.2:8080"]);
    let later = NOW + std::time::Duration::from_secs(5);
    let update = session.on_snapshot(&store.snapshot(), later);
    assert_eq!(update.len(), 1);
    assert_eq!(session.oldest_unacked(), Some(NOW));
    // An answer to the older one is stale and changes nothing.
    none(
        &mut session,
        &store,
        request(
            ResourceType::ClusterLoadAssignment,
            &[GREETER],
            &first.nonce,
        ),
    );
    assert_eq!(session.oldest_unacked(), Some(NOW));
    // The ACK of the latest clears it.
    let latest = update[0].response.to_message();
    none(
        &mut session,
        &store,
        request(
            ResourceType::ClusterLoadAssignment,
            &[GREETER],
            &latest.nonce,
        ),
    );
    assert_eq!(session.oldest_unacked(), None);
}
