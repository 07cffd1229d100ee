//! Interop: gRPC's own xDS client in grpc-go (built by the test set-up from
//! `tests/interop/go` into `target/interop-go`) calls `xds:///greeter` with
//! a bootstrap pointing at the real control plane, which serves three real
//! greeter-server processes from `--static`. The scenarios are shared by
//! every language (`interop_support/scenarios/`). Needs Go;
//! `SKIP_GO_INTEROP=1` skips these tests where it is missing.

mod interop_support;
mod support;

use interop_support::Language;
use interop_support::scenarios;

const LANGUAGE: Language = Language::Go;

#[tokio::test]
async fn grpc_go_balances_evenly_over_three_greeters() {
    scenarios::balances_evenly_over_three_greeters(LANGUAGE).await;
}

/// Needs the static source's health probing: the control plane must see a
/// greeter turn NOT_SERVING (SIGUSR1) and back.
#[tokio::test]
async fn grpc_go_follows_a_greeter_out_of_and_back_into_rotation() {
    scenarios::follows_a_greeter_out_of_and_back_into_rotation(LANGUAGE).await;
}

#[tokio::test]
async fn grpc_go_skips_not_ready_and_draining_endpoints() {
    scenarios::skips_not_ready_and_draining_endpoints(LANGUAGE).await;
}

#[tokio::test]
async fn grpc_go_spreads_over_zones_and_skips_an_empty_one() {
    scenarios::spreads_over_zones_and_skips_an_empty_one(LANGUAGE).await;
}

#[tokio::test]
async fn grpc_go_fails_an_unknown_name_with_does_not_exist() {
    scenarios::an_unknown_name_fails_with_does_not_exist(LANGUAGE).await;
}
