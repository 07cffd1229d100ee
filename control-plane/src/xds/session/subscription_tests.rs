//! The session against subscriptions and snapshots: what each change
//! sends, wildcards, unknown types, limits.

use envoy_types::pb::envoy::config::core::v3::node::UserAgentVersionType;
use envoy_types::pb::envoy::config::core::v3::{Locality, Node};

use super::tests::*;
use super::*;

#[test]
fn listener_subscription_changes_send_the_full_set() {
    let world = world();
    let mut session = session(&world);
    let first = one(
        &mut session,
        &world,
        request(ResourceType::Listener, &["greeter"], ""),
    );
    let added = one(
        &mut session,
        &world,
        request(
            ResourceType::Listener,
            &["greeter", "other:grpc"],
            &first.nonce,
        ),
    );
    assert_eq!(listeners(&added), vec!["greeter", "other:grpc"]);
    let dropped = one(
        &mut session,
        &world,
        request(ResourceType::Listener, &["other:grpc"], &added.nonce),
    );
    assert_eq!(listeners(&dropped), vec!["other:grpc"]);
    // Dropped: a change to it sends nothing.
    set(&world, "greeter", &["10.0.0.9:8080"]);
    assert!(session.on_snapshot(&world.snapshot(), NOW).is_empty());
}

#[test]
fn assignments_send_new_and_changed_ones_only() {
    let world = world();
    let mut session = session(&world);
    let first = one(
        &mut session,
        &world,
        request(ResourceType::ClusterLoadAssignment, &[GREETER], ""),
    );
    assert_eq!(assignments(&first), vec![GREETER]);
    let added = one(
        &mut session,
        &world,
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
        &world,
        request(ResourceType::ClusterLoadAssignment, &[OTHER], &added.nonce),
    );
    assert!(dropped.resources.is_empty());
    // Re-adding sends it again.
    let again = one(
        &mut session,
        &world,
        request(
            ResourceType::ClusterLoadAssignment,
            &[GREETER, OTHER],
            &dropped.nonce,
        ),
    );
    assert_eq!(assignments(&again), vec![GREETER]);
    // An endpoint change sends just that assignment.
    set(&world, "other", &["10.0.1.5:8080"]);
    let update = session.on_snapshot(&world.snapshot(), NOW);
    assert_eq!(update.len(), 1);
    assert_eq!(assignments(&update[0].response.to_message()), vec![OTHER]);
}

#[test]
fn unknown_names_are_answered_at_once_without_them() {
    let world = world();
    let mut session = session(&world);
    let lds = one(
        &mut session,
        &world,
        request(ResourceType::Listener, &["nope", "greeter"], ""),
    );
    assert_eq!(listeners(&lds), vec!["greeter"]);
    let cds = one(
        &mut session,
        &world,
        request(
            ResourceType::Cluster,
            &["nope.default.svc.cluster.local:80"],
            "",
        ),
    );
    assert!(cds.resources.is_empty());
    let eds = one(
        &mut session,
        &world,
        request(ResourceType::ClusterLoadAssignment, &["x"], ""),
    );
    assert!(eds.resources.is_empty());

    // When it appears later, it is sent.
    set(&world, "nope", &["10.0.2.1:8080"]);
    let update = session.on_snapshot(&world.snapshot(), NOW);
    let kinds: Vec<_> = update.iter().map(|o| o.kind).collect();
    assert_eq!(kinds, vec![ResourceType::Listener, ResourceType::Cluster]);
    assert_eq!(
        listeners(&update[0].response.to_message()),
        vec!["greeter", "nope"]
    );
}

#[test]
fn snapshots_send_only_what_subscribed_resources_need() {
    let world = world();
    let mut session = session(&world);
    one(
        &mut session,
        &world,
        request(ResourceType::Listener, &["greeter"], ""),
    );
    one(
        &mut session,
        &world,
        request(ResourceType::ClusterLoadAssignment, &[GREETER], ""),
    );
    // Nothing new: nothing sent.
    assert!(session.on_snapshot(&world.snapshot(), NOW).is_empty());
    // Unrelated service: nothing sent.
    set(&world, "other", &["10.0.1.3:8080"]);
    assert!(session.on_snapshot(&world.snapshot(), NOW).is_empty());
    // An endpoint change: only the assignment, stamped with the change time.
    set(&world, "greeter", &["10.0.0.3:8080"]);
    let snapshot = world.snapshot();
    let update = session.on_snapshot(&snapshot, NOW);
    assert_eq!(update.len(), 1);
    assert_eq!(update[0].kind, ResourceType::ClusterLoadAssignment);
    assert_eq!(
        update[0].changed_at,
        Some(snapshot.services["greeter"].changed_at())
    );
    // The service goes away: the Listener response no longer lists it.
    world.remove("greeter");
    let update = session.on_snapshot(&world.snapshot(), NOW);
    assert_eq!(update.len(), 1);
    assert_eq!(update[0].kind, ResourceType::Listener);
    assert!(update[0].response.resources.is_empty());
}

#[test]
fn wildcard_rules() {
    let world = world();
    let mut session = session(&world);
    // Listener with no names before any explicit one: every canonical Listener.
    let all = one(
        &mut session,
        &world,
        request(ResourceType::Listener, &[], ""),
    );
    assert_eq!(listeners(&all), vec![GREETER, OTHER]);
    assert!(type_view(&session, ResourceType::Listener).wildcard);
    // Explicit names end it; an empty list afterwards unsubscribes.
    let named = one(
        &mut session,
        &world,
        request(ResourceType::Listener, &["greeter"], &all.nonce),
    );
    assert_eq!(listeners(&named), vec!["greeter"]);
    let empty = one(
        &mut session,
        &world,
        request(ResourceType::Listener, &[], &named.nonce),
    );
    assert!(empty.resources.is_empty());
    assert!(!type_view(&session, ResourceType::Listener).wildcard);

    // Assignments with no names: nothing, not everything.
    let eds = one(
        &mut session,
        &world,
        request(ResourceType::ClusterLoadAssignment, &[], ""),
    );
    assert!(eds.resources.is_empty());
    // `*` subscribes to everything for any type.
    let star = one(
        &mut session,
        &world,
        request(ResourceType::ClusterLoadAssignment, &["*"], &eds.nonce),
    );
    assert_eq!(assignments(&star), vec![GREETER, OTHER]);
}

#[test]
fn unknown_type_urls_are_recorded_and_ignored() {
    let world = world();
    let mut session = session(&world);
    let url = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";
    let mut unknown = request(ResourceType::Listener, &["x"], "");
    unknown.type_url = url.into();
    for _ in 0..2 {
        assert_eq!(
            none(&mut session, &world, unknown.clone()),
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
        &world,
        request(ResourceType::Listener, &["greeter"], ""),
    );
}

#[test]
fn oversize_requests_are_refused_and_change_nothing() {
    let world = world();
    let mut session = Session::new(
        RUN,
        "test",
        Limits {
            max_names: 3,
            max_name_bytes: 20,
        },
    );
    let sent = one(
        &mut session,
        &world,
        request(ResourceType::Listener, &["greeter"], ""),
    );
    let error = session
        .on_request(
            &request(ResourceType::Listener, &["a", "b", "c", "d"], &sent.nonce),
            &world.snapshot(),
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
            &world.snapshot(),
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
    let world = world();
    let mut session = session(&world);
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
    let sent = one(&mut session, &world, first);
    let mut later = request(ResourceType::Listener, &["greeter"], &sent.nonce);
    later.node = Some(Node {
        id: "someone-else".into(),
        ..Default::default()
    });
    none(&mut session, &world, later);
    let node = session.node().unwrap();
    assert_eq!(node.id, "client-1");
    assert_eq!(node.user_agent, "gRPC Python 1.85.1");
    assert_eq!(node.zone, "zone-a");
}

#[test]
fn a_carried_over_nonce_counts_as_a_first_request() {
    let world = world();
    let mut session = session(&world);
    let response = one(
        &mut session,
        &world,
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
    let world = world();
    let mut session = session(&world);
    assert_eq!(session.oldest_unacked(), None);
    let first = one(
        &mut session,
        &world,
        request(ResourceType::ClusterLoadAssignment, &[GREETER], ""),
    );
    assert_eq!(session.oldest_unacked(), Some(NOW));
    // A newer response before the client answered: the older one still
    // counts.
    set(&world, "greeter", &["10.0.0.2:8080"]);
    let later = NOW + std::time::Duration::from_secs(5);
    let update = session.on_snapshot(&world.snapshot(), later);
    assert_eq!(update.len(), 1);
    assert_eq!(session.oldest_unacked(), Some(NOW));
    // An answer to the older one is stale and changes nothing.
    none(
        &mut session,
        &world,
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
        &world,
        request(
            ResourceType::ClusterLoadAssignment,
            &[GREETER],
            &latest.nonce,
        ),
    );
    assert_eq!(session.oldest_unacked(), None);
}
