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

/// The servers' SAN, as in a cert-manager Certificate for the Service.
const GREETER_SAN: &str = "greeter.default.svc.cluster.local";

/// Three greeter-servers that require client certificates from one CA, and
/// the PEM files (`ca.crt`, `server.*`, `client.*`, `probe.*`).
struct MutualTls {
    dir: tests::certs::TlsDir,
    greeters: Vec<(Process, SocketAddr)>,
}

impl MutualTls {
    async fn start() -> Self {
        use tests::certs::{Ca, Leaf, TlsDir};
        let dir = TlsDir::new();
        let ca = Ca::new("interop CA");
        dir.write("ca.crt", &ca.pem());
        dir.write_identity(
            "server",
            &ca.issue(&Leaf::new(&[GREETER_SAN, "127.0.0.1"], 1)),
        );
        dir.write_identity(
            "client",
            &ca.issue(&Leaf::new(
                &["spiffe://cluster.local/ns/default/sa/python"],
                2,
            )),
        );
        dir.write_identity(
            "probe",
            &ca.issue(&Leaf::new(
                &["spiffe://cluster.local/ns/default/sa/control-plane"],
                3,
            )),
        );
        let (cert, key, client_ca) = (
            dir.arg("server.crt"),
            dir.arg("server.key"),
            dir.arg("ca.crt"),
        );
        let mut greeters = Vec::new();
        for name in BACKENDS {
            let mut process = Process::spawn_with_env(
                name,
                "greeter-server",
                &[
                    "--listen",
                    "127.0.0.1:0",
                    "--name",
                    name,
                    "--tls-cert",
                    &cert,
                    "--tls-key",
                    &key,
                    "--tls-client-ca",
                    &client_ca,
                ],
                // SayHello is logged at debug: the test counts what each saw.
                &[("RUST_LOG", "info,greeter_server=debug")],
            );
            let addr = process.wait_listening().await;
            greeters.push((process, addr));
        }
        Self { dir, greeters }
    }

    /// A control plane serving greeter as TLS with `sans` as its SAN
    /// matchers; probing over mTLS, or not at all.
    fn control_plane(&self, sans: &str, probe: bool) -> (Process, tests::static_file::StaticFile) {
        let endpoints: Vec<String> = self.greeters.iter().map(|(_, a)| a.to_string()).collect();
        let file = tests::static_file::StaticFile::new(
            "interop-tls",
            &serde_json::json!({"services": [{
                "name": "greeter",
                "endpoints": endpoints,
                "tls": {"subject_alt_names": [sans]},
            }]}),
        );
        let path = file.path().display().to_string();
        let (ca, cert, key) = (
            self.dir.arg("ca.crt"),
            self.dir.arg("probe.crt"),
            self.dir.arg("probe.key"),
        );
        let mut args = vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--source",
            "static",
            "--static-file",
            &path,
        ];
        if probe {
            args.extend([
                "--probe-tls-ca",
                &ca,
                "--probe-tls-cert",
                &cert,
                "--probe-tls-key",
                &key,
            ]);
        } else {
            args.push("--no-probe");
        }
        (Process::spawn("control-plane", BIN, &args), file)
    }

    fn bootstrap(&self, control_plane: SocketAddr, test: &str) -> Bootstrap {
        Bootstrap::write_with(
            control_plane,
            test,
            Some(&python::CertificateFiles {
                ca: self.dir.path("ca.crt"),
                cert: self.dir.path("client.crt"),
                key: self.dir.path("client.key"),
            }),
        )
    }
}

#[tokio::test]
async fn grpc_python_balances_over_greeters_that_require_client_certificates() {
    bounded(LIMIT, async {
        let mut setup = MutualTls::start().await;
        let (mut control_plane, _file) = setup.control_plane(GREETER_SAN, true);
        let addr = control_plane.wait_listening().await;
        for (_, endpoint) in &setup.greeters {
            wait_for_state(addr, *endpoint, EndpointState::Ready).await;
        }
        let bootstrap = setup.bootstrap(addr, "mtls");
        let mut client =
            PythonClient::start_with(&bootstrap, "xds:///greeter", &["--xds-creds"]).await;
        // One uncounted call first: a fresh client spreads its first calls
        // unevenly until every subchannel is ready (FACTS-TLS.md).
        warm_up(&mut client).await;

        let batch = client.batch(300).await;
        assert_eq!(batch.failed, 0, "{}", batch.raw);
        assert_even(&batch, &BACKENDS, 300);
        for (greeter, _) in &mut setup.greeters {
            let line = greeter
                .wait_for_log("SayHello", Duration::from_secs(5))
                .await;
            assert!(line["conn"].as_u64().is_some(), "{line}");
        }
        client.finish().await;
        control_plane.kill().await;
    })
    .await;
}

#[tokio::test]
async fn grpc_python_refuses_greeters_whose_certificates_lack_the_cluster_san() {
    bounded(LIMIT, async {
        let mut setup = MutualTls::start().await;
        // No probing: the endpoints are HEALTHY, so only the client's SAN
        // check can stop the calls.
        let (mut control_plane, _file) = setup.control_plane("nobody.example", false);
        let addr = control_plane.wait_listening().await;
        let bootstrap = setup.bootstrap(addr, "mtls-san");
        let mut client = PythonClient::start_with(
            &bootstrap,
            "xds:///greeter",
            &["--xds-creds", "--call-timeout", "3"],
        )
        .await;
        let batch = client.batch(5).await;
        assert_eq!(batch.ok, 0, "{}", batch.raw);
        assert_eq!(batch.failed, 5, "{}", batch.raw);
        let errors = batch.raw["errors"].to_string();
        assert!(
            errors.contains("UNAVAILABLE") || errors.contains("DEADLINE_EXCEEDED"),
            "{errors}"
        );
        client.finish().await;
        for (greeter, _) in &mut setup.greeters {
            let log = greeter.log_text();
            assert!(!log.contains("\"SayHello\""), "a server saw a call: {log}");
        }
        control_plane.kill().await;
    })
    .await;
}
