//! Interop: gRPC's own xDS client (Python grpcio, installed by the test
//! set-up into `target/interop-venv`) calls `xds:///greeter` with a
//! bootstrap pointing at the real control plane, which serves three real
//! greeter-server processes from `--static`.

mod python;
mod support;

use std::net::SocketAddr;
use std::time::Duration;

use control_plane::model::EndpointState as ModelState;
use nix::sys::signal::Signal;
use proto::controlplane::v1::control_plane_status_client::ControlPlaneStatusClient;
use proto::controlplane::v1::{EndpointState, ListClientsRequest, ListServicesRequest};
use python::{Batch, Bootstrap, PythonClient};
use support::TestServer;
use tests::{Process, bounded, channel};

const BIN: &str = env!("CARGO_BIN_EXE_control-plane");
const LIMIT: Duration = Duration::from_secs(240);
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

async fn start() -> Setup {
    let greeters = start_greeters().await;
    let endpoints: Vec<String> = greeters.iter().map(|(_, a)| a.to_string()).collect();
    let flag = format!("greeter={}", endpoints.join(","));
    let mut control_plane = Process::spawn(
        "control-plane",
        BIN,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--source",
            "static",
            "--static",
            &flag,
        ],
    );
    let addr = control_plane.wait_listening().await;
    Setup {
        greeters,
        control_plane,
        addr,
    }
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
async fn until(client: &mut PythonClient, done: impl Fn(&Batch) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let batch = client.batch(30).await;
        if done(&batch) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the Python client did not follow the update: {}",
            batch.raw
        );
    }
}

/// Warms the client up: gRPC's round robin only picks connections that are
/// ready, so the first calls go to whichever backend connected first.
async fn warm_up(client: &mut PythonClient) {
    until(client, |batch| {
        batch.failed == 0 && BACKENDS.iter().all(|b| batch.served_by(b) > 0)
    })
    .await;
}

#[tokio::test]
async fn grpc_python_balances_evenly_over_three_greeters() {
    bounded(LIMIT, async {
        let setup = start().await;
        let bootstrap = Bootstrap::write(setup.addr, "balance");
        let mut client = PythonClient::start(&bootstrap, "xds:///greeter").await;
        warm_up(&mut client).await;

        let batch = client.batch(300).await;
        assert_even(&batch, &BACKENDS, 300);

        // The client shows up in the status API, having ACKed the whole
        // chain and NACKed nothing.
        let clients = ControlPlaneStatusClient::new(channel(setup.addr).await)
            .list_clients(ListClientsRequest {})
            .await
            .expect("ListClients")
            .into_inner()
            .clients;
        let python = clients
            .iter()
            .find(|c| c.node_id == "interop-python-balance")
            .unwrap_or_else(|| panic!("Python client not listed: {clients:?}"));
        assert_eq!(python.types.len(), 4, "{python:?}");
        for state in &python.types {
            assert_eq!(state.nacks, 0, "{state:?}");
            assert!(!state.acked_version.is_empty(), "{state:?}");
        }
        client.finish().await;
        drop(setup.control_plane);
        drop(setup.greeters);
    })
    .await;
}

/// Needs the static source's health probing: the control plane must see a
/// greeter turn NOT_SERVING (SIGUSR1) and back.
#[tokio::test]
async fn grpc_python_follows_a_greeter_out_of_and_back_into_rotation() {
    bounded(LIMIT, async {
        let setup = start().await;
        let bootstrap = Bootstrap::write(setup.addr, "health");
        let mut client = PythonClient::start(&bootstrap, "xds:///greeter").await;
        warm_up(&mut client).await;

        let (b, b_addr) = &setup.greeters[1];
        b.signal(Signal::SIGUSR1);
        wait_for_state(setup.addr, *b_addr, EndpointState::NotReady).await;
        until(&mut client, |batch| batch.served_by("greeter-b") == 0).await;
        let batch = client.batch(300).await;
        assert_eq!(batch.served_by("greeter-b"), 0, "{}", batch.raw);
        assert_even(&batch, &["greeter-a", "greeter-c"], 300);

        b.signal(Signal::SIGUSR1);
        wait_for_state(setup.addr, *b_addr, EndpointState::Ready).await;
        until(&mut client, |batch| batch.served_by("greeter-b") > 0).await;
        assert_even(&client.batch(300).await, &BACKENDS, 300);
        client.finish().await;
    })
    .await;
}

/// The control plane's half of the previous test, without probing: the
/// endpoint states are set through the store (in-process control plane),
/// and gRPC's client must skip NOT_READY (UNHEALTHY) and DRAINING endpoints
/// and take a READY one back.
#[tokio::test]
async fn grpc_python_skips_not_ready_and_draining_endpoints() {
    bounded(LIMIT, async {
        let greeters = start_greeters().await;
        let addrs: Vec<String> = greeters.iter().map(|(_, a)| a.to_string()).collect();
        let with_b = |state| {
            support::greeter(&[
                support::ready(&addrs[0]),
                (addrs[1].as_str(), state),
                support::ready(&addrs[2]),
            ])
        };
        let server = TestServer::start(vec![with_b(ModelState::Ready)]).await;
        let bootstrap = Bootstrap::write(server.addr, "states");
        let mut client = PythonClient::start(&bootstrap, "xds:///greeter").await;
        warm_up(&mut client).await;

        for state in [ModelState::NotReady, ModelState::Draining] {
            server
                .source()
                .upsert(with_b(state), "test")
                .expect("valid service");
            until(&mut client, |batch| batch.served_by("greeter-b") == 0).await;
            let batch = client.batch(300).await;
            assert_eq!(batch.served_by("greeter-b"), 0, "{state:?}: {}", batch.raw);
            assert_even(&batch, &["greeter-a", "greeter-c"], 300);
        }

        server
            .source()
            .upsert(with_b(ModelState::Ready), "test")
            .expect("valid service");
        until(&mut client, |batch| batch.served_by("greeter-b") > 0).await;
        assert_even(&client.batch(300).await, &BACKENDS, 300);
        client.finish().await;
    })
    .await;
}
