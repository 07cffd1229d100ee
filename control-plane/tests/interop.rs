//! Interop: gRPC's own xDS client in Python's grpcio (installed by the test
//! set-up into `target/interop-venv`) calls `xds:///greeter` with a
//! bootstrap pointing at the real control plane, which serves three real
//! greeter-server processes from `--static`. The scenarios are shared by
//! every language (`interop_support/scenarios/`).

mod interop_support;
mod support;

use interop_support::Language;
use interop_support::{scenarios, traffic};

const LANGUAGE: Language = Language::Python;

#[tokio::test]
async fn grpc_python_balances_evenly_over_three_greeters() {
    scenarios::balances_evenly_over_three_greeters(LANGUAGE).await;
}

/// Needs the static source's health probing: the control plane must see a
/// greeter turn NOT_SERVING (SIGUSR1) and back.
#[tokio::test]
async fn grpc_python_follows_a_greeter_out_of_and_back_into_rotation() {
    scenarios::follows_a_greeter_out_of_and_back_into_rotation(LANGUAGE).await;
}

#[tokio::test]
async fn grpc_python_skips_not_ready_and_draining_endpoints() {
    scenarios::skips_not_ready_and_draining_endpoints(LANGUAGE).await;
}

#[tokio::test]
async fn grpc_python_spreads_over_zones_and_skips_an_empty_one() {
    scenarios::spreads_over_zones_and_skips_an_empty_one(LANGUAGE).await;
}

#[tokio::test]
async fn grpc_python_fails_an_unknown_name_with_does_not_exist() {
    scenarios::an_unknown_name_fails_with_does_not_exist(LANGUAGE).await;
}

#[tokio::test]
async fn grpc_python_balances_over_greeters_that_require_client_certificates() {
    scenarios::mtls::mtls_balances_over_greeters_that_require_client_certificates(LANGUAGE).await;
}

#[tokio::test]
async fn grpc_python_refuses_greeters_whose_certificates_lack_the_cluster_san() {
    scenarios::mtls::mtls_refuses_greeters_whose_certificates_lack_the_cluster_san(LANGUAGE).await;
}

#[tokio::test]
async fn grpc_python_splits_calls_by_route_weight() {
    traffic::splits_calls_by_route_weight(LANGUAGE).await;
}

#[tokio::test]
async fn grpc_python_routes_by_method() {
    traffic::routes_by_method(LANGUAGE).await;
}

#[tokio::test]
async fn grpc_python_prefers_its_own_zone_and_fails_over() {
    traffic::prefers_its_own_zone_and_fails_over(LANGUAGE).await;
}

/// grpcio has no least request: it must take the round robin fallback
/// the Cluster offers (gRPC A52) rather than NACK it, and balance.
#[tokio::test]
async fn grpc_python_falls_back_to_round_robin_for_least_request() {
    let (batch, nack) = traffic::least_request_outcome(LANGUAGE).await;
    assert_eq!(nack, None, "the Cluster is accepted");
    assert_eq!(batch.ok, 100, "{}", batch.raw);
    // Round robin, give or take the first calls (sent to whichever
    // connection was ready first).
    for backend in ["lr-a", "lr-b"] {
        let got = batch.served_by(backend);
        assert!(got.abs_diff(50) <= 2, "round robin: {}", batch.raw);
    }
}

#[tokio::test]
async fn grpc_python_follows_a_canary_through_the_kubernetes_api() {
    traffic::canary_through_the_kubernetes_api(LANGUAGE).await;
}
