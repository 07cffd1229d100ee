use ::tests::fake_kube::{EndpointSliceFixture, EndpointState as K8sState, ServiceFixture};

use super::*;
use crate::model::Readiness;

fn svc(name: &str) -> ServiceInfo {
    mapping::service_info(&ServiceFixture::new(name).port("grpc", 80, "grpc").build()).unwrap()
}

fn slice(name: &str, service: &str, addresses: &[&str]) -> SliceInfo {
    let mut fixture = EndpointSliceFixture::for_service(service)
        .name(name)
        .port("grpc", 8080);
    for address in addresses {
        fixture = fixture.endpoint(address, K8sState::Ready);
    }
    mapping::slice_info(&fixture.build()).unwrap()
}

/// (service, endpoint count) of every service in the actions, in order.
fn summary(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .flat_map(|action| match action {
            Action::ReplaceAll { services, .. } => services
                .iter()
                .map(|s| format!("all:{}={}", s.name, s.ports[0].endpoints.len()))
                .collect(),
            Action::Upsert { service, .. } => {
                vec![format!(
                    "up:{}={}",
                    service.name,
                    service.ports[0].endpoints.len()
                )]
            }
            Action::Remove { name, .. } => vec![format!("rm:{name}")],
        })
        .collect()
}

/// A state after the first full sync of `services` and `slices`.
fn synced(services: Vec<ServiceInfo>, slices: Vec<SliceInfo>) -> (State, Vec<Action>) {
    let mut state = State::new("default");
    assert!(state.on_service(Change::Begin).is_empty());
    for s in services {
        assert!(state.on_service(Change::Listed(s)).is_empty());
    }
    assert!(
        state.on_service(Change::Complete).is_empty(),
        "waits for the slices"
    );
    assert!(!state.is_synced());
    state.on_slice(Change::Begin);
    for s in slices {
        assert!(state.on_slice(Change::Listed(s)).is_empty());
    }
    let actions = state.on_slice(Change::Complete);
    assert!(state.is_synced());
    (state, actions)
}

#[test]
fn nothing_is_published_before_both_lists_complete() {
    let (_, actions) = synced(
        vec![svc("greeter"), svc("empty")],
        vec![
            slice("g-1", "greeter", &["10.0.0.1", "10.0.0.2"]),
            slice("g-2", "greeter", &["10.0.0.3"]),
            slice("orphan-1", "orphan", &["10.0.0.9"]),
        ],
    );
    assert_eq!(summary(&actions), ["all:empty=0", "all:greeter=3"]);
}

#[test]
fn changes_republish_only_the_touched_service() {
    let (mut state, _) = synced(
        vec![svc("greeter"), svc("other")],
        vec![slice("g-1", "greeter", &["10.0.0.1"])],
    );
    let actions = state.on_slice(Change::Applied(slice("g-2", "greeter", &["10.0.0.2"])));
    assert_eq!(summary(&actions), ["up:greeter=2"]);
    match &actions[0] {
        Action::Upsert { reason, .. } => assert_eq!(reason, "EndpointSlice g-2 changed"),
        other => panic!("{other:?}"),
    }

    // A slice moving to another service touches both.
    let actions = state.on_slice(Change::Applied(slice("g-2", "other", &["10.0.0.2"])));
    assert_eq!(summary(&actions), ["up:greeter=1", "up:other=1"]);

    assert_eq!(
        summary(&state.on_slice(Change::Deleted("g-1".into()))),
        ["up:greeter=0"]
    );
    assert!(
        state
            .on_slice(Change::Deleted("never-seen".into()))
            .is_empty()
    );
}

#[test]
fn services_come_and_go_with_their_service_object() {
    let (mut state, _) = synced(vec![], vec![slice("g-1", "greeter", &["10.0.0.1"])]);
    assert!(
        state
            .on_slice(Change::Applied(slice("g-1", "greeter", &["10.0.0.5"])))
            .is_empty()
    );
    assert_eq!(
        summary(&state.on_service(Change::Applied(svc("greeter")))),
        ["up:greeter=1"]
    );
    assert_eq!(
        summary(&state.on_service(Change::Deleted("greeter".into()))),
        ["rm:greeter"]
    );
    // Its slices stay known and count again when the Service returns.
    assert_eq!(
        summary(&state.on_service(Change::Applied(svc("greeter")))),
        ["up:greeter=1"]
    );
}

#[test]
fn a_relist_publishes_once_complete_and_a_failed_one_changes_nothing() {
    let (mut state, _) = synced(
        vec![svc("greeter")],
        vec![slice("g-1", "greeter", &["10.0.0.1", "10.0.0.2"])],
    );
    // The re-list shows nothing until it is complete.
    assert!(state.on_slice(Change::Begin).is_empty());
    assert!(
        state
            .on_slice(Change::Listed(slice("g-1", "greeter", &["10.0.0.1"])))
            .is_empty()
    );
    let actions = state.on_slice(Change::Complete);
    assert_eq!(summary(&actions), ["all:greeter=1"]);

    // A re-list that fails half-way leaves the live state as it was.
    state.on_slice(Change::Begin);
    state.on_slice(Change::Failed);
    assert!(state.on_slice(Change::Complete).is_empty());
    let actions = state.on_slice(Change::Applied(slice("g-2", "greeter", &["10.0.0.7"])));
    assert_eq!(summary(&actions), ["up:greeter=2"]);

    // A Service re-list that lost a Service removes it in the full set.
    state.on_service(Change::Begin);
    let actions = state.on_service(Change::Complete);
    assert_eq!(summary(&actions), Vec::<String>::new());
    assert!(matches!(&actions[..], [Action::ReplaceAll { services, .. }] if services.is_empty()));
}

#[test]
fn endpoint_states_pass_through() {
    let terminating = mapping::slice_info(
        &EndpointSliceFixture::for_service("greeter")
            .name("g-1")
            .port("grpc", 8080)
            .endpoint("10.0.0.1", K8sState::Terminating)
            .endpoint("10.0.0.2", K8sState::NotReady)
            .build(),
    )
    .unwrap();
    let (_, actions) = synced(vec![svc("greeter")], vec![terminating]);
    let Action::ReplaceAll { services, .. } = &actions[0] else {
        panic!("{actions:?}")
    };
    let states: Vec<_> = services[0].ports[0]
        .endpoints
        .iter()
        .map(|e| e.state)
        .collect();
    assert_eq!(states, [Readiness::Draining, Readiness::NotReady]);
}
