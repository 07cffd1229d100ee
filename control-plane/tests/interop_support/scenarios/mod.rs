//! The interop scenarios, run by every language's test binary: the real
//! control plane in front of three real greeter-server processes, and
//! gRPC's own xDS client calling `xds:///greeter`. This module holds what
//! the scenarios share: starting the processes, bounding each scenario in
//! time, and the checks on a batch of calls and on `control-plane status`.
//!
//! - `endpoints.rs`: which endpoints the client calls (even spread, health,
//!   readiness, zones, unknown names), over plaintext.
//! - `mtls.rs`: the same client with xDS credentials against greeters that
//!   require client certificates (only clients with an xDS credentials
//!   option run these).

mod endpoints;
pub mod mtls;

pub use endpoints::{
    an_unknown_name_fails_with_does_not_exist, balances_evenly_over_three_greeters,
    follows_a_greeter_out_of_and_back_into_rotation, skips_not_ready_and_draining_endpoints,
    spreads_over_zones_and_skips_an_empty_one,
};

use std::net::SocketAddr;
use std::time::Duration;

use proto::controlplane::v1::control_plane_status_client::ControlPlaneStatusClient;
use proto::controlplane::v1::{EndpointState, ListServicesRequest};
use serde_json::Value;
use tests::{Process, bounded, channel};
use tokio::io::AsyncReadExt;

use super::{Batch, Bootstrap, ForeignClient, Language};

const BIN: &str = env!("CARGO_BIN_EXE_control-plane");
/// Upper bound for one scenario, the client's first build excluded.
const LIMIT: Duration = Duration::from_secs(240);
/// Upper bound for building or installing a client on first use.
const SETUP_LIMIT: Duration = Duration::from_secs(960);
const BACKENDS: [&str; 3] = ["greeter-a", "greeter-b", "greeter-c"];
/// How far from an even split a backend may be.
const SLACK: u64 = 2;

struct Setup {
    greeters: Vec<(Process, SocketAddr)>,
    control_plane: Process,
    addr: SocketAddr,
}

async fn start_greeters() -> Vec<(Process, SocketAddr)> {
    let mut greeters = Vec::new();
    for name in BACKENDS {
        let mut process = Process::spawn(
            name,
            "greeter-server",
            &["--listen", "127.0.0.1:0", "--name", name],
        );
        let addr = process.wait_listening().await;
        greeters.push((process, addr));
    }
    greeters
}

fn start_control_plane(static_flag: &str) -> Process {
    Process::spawn(
        "control-plane",
        BIN,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--source",
            "static",
            "--static",
            static_flag,
        ],
    )
}

async fn start() -> Setup {
    let greeters = start_greeters().await;
    let endpoints: Vec<String> = greeters.iter().map(|(_, a)| a.to_string()).collect();
    let mut control_plane = start_control_plane(&format!("greeter={}", endpoints.join(",")));
    let addr = control_plane.wait_listening().await;
    Setup {
        greeters,
        control_plane,
        addr,
    }
}

/// Runs `scenario` for `language` unless its opt-out is set: first sets the
/// client up (building it if needed, bounded separately), then runs the
/// scenario within [`LIMIT`].
async fn run<F: Future<Output = ()>>(language: Language, scenario: F) {
    if language.skipped() {
        return;
    }
    bounded(SETUP_LIMIT, language.prepare()).await;
    bounded(LIMIT, scenario).await;
}

fn assert_even(batch: &Batch, backends: &[&str], total: u64) {
    assert_eq!(batch.ok, total, "every call succeeded: {}", batch.raw);
    let share = total / backends.len() as u64;
    for backend in backends {
        let got = batch.served_by(backend);
        assert!(
            got.abs_diff(share) <= SLACK,
            "{backend} served {got} of {total}, expected {share} ± {SLACK}: {}",
            batch.raw
        );
    }
}

/// Waits until the control plane reports `endpoint` of greeter in `state`.
async fn wait_for_state(addr: SocketAddr, endpoint: SocketAddr, state: EndpointState) {
    let mut status = ControlPlaneStatusClient::new(channel(addr).await);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let services = status
            .list_services(ListServicesRequest {})
            .await
            .expect("ListServices")
            .into_inner()
            .services;
        let current = services
            .iter()
            .flat_map(|s| &s.ports)
            .flat_map(|p| &p.endpoints)
            .find(|e| {
                e.address == endpoint.ip().to_string() && e.port == u32::from(endpoint.port())
            })
            .map(|e| e.state);
        if current == Some(state as i32) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the control plane never reported {endpoint} as {state:?} (now {current:?}); it must \
             probe each static endpoint's grpc.health.v1"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs small batches until `done` holds for one (the client applies an
/// update a moment after the control plane sends it).
async fn until(client: &mut ForeignClient, done: impl Fn(&Batch) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let batch = client.batch(30).await;
        if done(&batch) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the client did not follow the update: {}",
            batch.raw
        );
    }
}

/// Warms the client up, uncounted: gRPC's round robin only picks
/// connections that are ready, so the first calls go to whichever backend
/// connected first.
async fn warm_up(client: &mut ForeignClient) {
    until(client, |batch| {
        batch.failed == 0 && BACKENDS.iter().all(|b| batch.served_by(b) > 0)
    })
    .await;
}

/// `control-plane status --json`, parsed.
async fn status_report(addr: SocketAddr) -> Value {
    let url = format!("http://{addr}");
    let mut process = Process::spawn("status", BIN, &["status", "--addr", &url, "--json"]);
    let mut stdout = process.take_stdout();
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(20), stdout.read_to_string(&mut text))
        .await
        .expect("status finished writing")
        .expect("stdout readable");
    let exit = process.wait_exit(Duration::from_secs(20)).await;
    assert!(exit.success(), "status exited {exit}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("status --json: {error}: {text}"))
}

/// Asserts that `control-plane status` lists the client of `bootstrap`
/// having ACKed every type in `types` and NACKed nothing (showing the NACK
/// text if it did).
async fn assert_acked_without_nack(addr: SocketAddr, bootstrap: &Bootstrap, types: &[&str]) {
    let report = status_report(addr).await;
    let clients = report["clients"].as_array().expect("clients");
    let client = clients
        .iter()
        .find(|c| c["node_id"] == bootstrap.node_id.as_str())
        .unwrap_or_else(|| panic!("{} not listed by status: {report}", bootstrap.node_id));
    let listed = client["types"].as_array().expect("types");
    for name in types {
        let state = listed
            .iter()
            .find(|t| t["type"] == *name)
            .unwrap_or_else(|| panic!("{name} not subscribed: {client}"));
        assert_eq!(
            state["nack"],
            Value::Null,
            "{} NACKed {name}: {}",
            bootstrap.node_id,
            state["nack"]["error"]
        );
        assert!(
            state["acked_version"]
                .as_str()
                .is_some_and(|v| !v.is_empty()),
            "{name} never ACKed: {client}"
        );
    }
}
