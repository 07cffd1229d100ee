//! An update equal to what the client holds: acknowledged, and nothing
//! downstream hears of it; a changed one hands out a new shared list.

use std::sync::Arc;

use tests::fake_xds::{self, Health, any};

use super::addr;
use super::state::{resolved, response};
use crate::model::Resolution;
use crate::xds::state::AdsState;

fn endpoints_of(s: &AdsState) -> Arc<[crate::model::Endpoint]> {
    match s.resolution("greeter").flat() {
        Resolution::Endpoints { endpoints, .. } => endpoints,
        other => panic!("not resolved: {other:?}"),
    }
}

#[test]
fn the_same_endpoints_again_are_acked_and_change_nothing() {
    let set = [
        (addr(1), Health::Healthy, "a"),
        (addr(2), Health::Unhealthy, "b"),
    ];
    let mut s = resolved(&set);
    let before = endpoints_of(&s);
    let outcome = s.on_response(response(
        xds_type_urls::CLUSTER_LOAD_ASSIGNMENT,
        "2",
        "n5",
        vec![any(fake_xds::load_assignment("greeter-cluster", &set))],
    ));
    assert!(outcome.nack.is_none());
    assert_eq!(outcome.requests.len(), 1, "the ACK");
    assert_eq!(outcome.requests[0].version_info, "2");
    assert!(!outcome.changed, "no resolution to recompute");
    assert!(
        Arc::ptr_eq(&before, &endpoints_of(&s)),
        "the very list the pool already holds"
    );

    let outcome = s.on_response(response(
        xds_type_urls::CLUSTER_LOAD_ASSIGNMENT,
        "3",
        "n6",
        vec![any(fake_xds::load_assignment(
            "greeter-cluster",
            &[
                (addr(1), Health::Healthy, "a"),
                (addr(2), Health::Healthy, "b"),
            ],
        ))],
    ));
    assert!(outcome.changed);
    let after = endpoints_of(&s);
    assert!(!Arc::ptr_eq(&before, &after));
    assert_eq!(after.len(), 2);
}
