//! Does-not-exist: what a resource left out of a response means, per
//! type, and when absence may not be inferred.

use tests::fake_xds::{self, Health, any};

use super::addr;
use super::state::{names, resolved, response, state};
use crate::model::Resolution;

#[test]
fn a_listener_left_out_does_not_exist_until_it_appears() {
    let mut s = state("greeter");
    s.on_stream_start();
    let outcome = s.on_response(response(xds_type_urls::LISTENER, "1", "n1", vec![]));
    assert!(outcome.nack.is_none());
    assert_eq!(outcome.requests.len(), 1, "ACK only");
    assert_eq!(
        s.resolution("greeter").flat(),
        Resolution::DoesNotExist("listener \"greeter\"".into())
    );
    s.on_response(response(
        xds_type_urls::LISTENER,
        "2",
        "n2",
        vec![any(fake_xds::listener("greeter", "r"))],
    ));
    assert_eq!(
        s.resolution("greeter").flat(),
        Resolution::Waiting("route configuration \"r\"".into())
    );
}

#[test]
fn deleted_resources_are_noticed() {
    let mut s = resolved(&[(addr(1), Health::Healthy, "a")]);
    s.on_response(response(xds_type_urls::CLUSTER, "2", "n5", vec![]));
    assert_eq!(
        s.resolution("greeter").flat(),
        Resolution::DoesNotExist("cluster \"greeter-cluster\"".into())
    );
    let mut s = resolved(&[(addr(1), Health::Healthy, "a")]);
    s.on_response(response(xds_type_urls::LISTENER, "2", "n5", vec![]));
    assert_eq!(
        s.resolution("greeter").flat(),
        Resolution::DoesNotExist("listener \"greeter\"".into())
    );
    // Leaving out endpoints or routes is not deletion.
    let mut s = resolved(&[(addr(1), Health::Healthy, "a")]);
    s.on_response(response(
        xds_type_urls::CLUSTER_LOAD_ASSIGNMENT,
        "2",
        "n5",
        vec![],
    ));
    assert!(matches!(
        s.resolution("greeter").flat(),
        Resolution::Endpoints { .. }
    ));
}

#[test]
fn a_response_older_than_the_subscription_says_nothing_about_absence() {
    let mut s = resolved(&[(addr(1), Health::Healthy, "a")]);
    // The route moves to another cluster.
    let outcome = s.on_response(response(
        xds_type_urls::ROUTE_CONFIGURATION,
        "2",
        "n5",
        vec![any(fake_xds::route_configuration("greeter-routes", "c2"))],
    ));
    let cds = outcome
        .requests
        .iter()
        .find(|r| r.type_url == xds_type_urls::CLUSTER)
        .expect("CDS update");
    assert_eq!(names(cds), ["c2"]);
    // A CDS response sent before the server saw that still lists the old one.
    s.on_response(response(
        xds_type_urls::CLUSTER,
        "2",
        "n6",
        vec![any(fake_xds::cluster("greeter-cluster"))],
    ));
    assert_eq!(
        s.resolution("greeter").flat(),
        Resolution::Waiting("cluster \"c2\"".into())
    );
    // The answer to the new subscription, without c2: it does not exist.
    s.on_response(response(xds_type_urls::CLUSTER, "3", "n7", vec![]));
    assert_eq!(
        s.resolution("greeter").flat(),
        Resolution::DoesNotExist("cluster \"c2\"".into())
    );
}
