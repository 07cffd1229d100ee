//! The interop scenarios, run by every language's test binary: the real
//! control plane (`--source static`) in front of three real greeter-server
//! processes, and gRPC's own xDS client calling `xds:///greeter`.

use std::net::SocketAddr;
use std::time::Duration;

use control_plane::model::Readiness;
use nix::sys::signal::Signal;
use proto::controlplane::v1::control_plane_status_client::ControlPlaneStatusClient;
use proto::controlplane::v1::{EndpointState, ListServicesRequest};
use serde_json::Value;
use tests::{Process, bounded, channel};
use tokio::io::AsyncReadExt;

use super::{Batch, Bootstrap, CertificateFiles, ForeignClient, Language};
use crate::support::{self, TestServer};

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

/// Even spread over three greeters; the client ACKs the whole chain
/// (Listener, RouteConfiguration, Cluster, ClusterLoadAssignment) and NACKs
/// nothing.
pub async fn balances_evenly_over_three_greeters(language: Language) {
    run(language, async {
        let setup = start().await;
        let bootstrap = Bootstrap::write(setup.addr, language, "balance");
        let mut client = ForeignClient::start(language, &bootstrap, "xds:///greeter").await;
        warm_up(&mut client).await;

        let batch = client.batch(300).await;
        eprintln!("{}: 300 calls: {}", language.name(), batch.raw);
        assert_even(&batch, &BACKENDS, 300);
        assert_acked_without_nack(setup.addr, &bootstrap, &["LDS", "RDS", "CDS", "EDS"]).await;
        client.finish().await;
        drop(setup.control_plane);
        drop(setup.greeters);
    })
    .await;
}

/// A greeter turns NOT_SERVING (SIGUSR1); the control plane's probe marks it
/// not ready; the client stops calling it with no failed call, and takes it
/// back once it serves again.
pub async fn follows_a_greeter_out_of_and_back_into_rotation(language: Language) {
    run(language, async {
        let setup = start().await;
        let bootstrap = Bootstrap::write(setup.addr, language, "health");
        let mut client = ForeignClient::start(language, &bootstrap, "xds:///greeter").await;
        warm_up(&mut client).await;

        let (b, b_addr) = &setup.greeters[1];
        b.signal(Signal::SIGUSR1);
        wait_for_state(setup.addr, *b_addr, EndpointState::NotReady).await;
        until(&mut client, |batch| {
            batch.failed == 0 && batch.served_by("greeter-b") == 0
        })
        .await;
        let batch = client.batch(300).await;
        eprintln!("{}: greeter-b not ready: {}", language.name(), batch.raw);
        assert_eq!(batch.served_by("greeter-b"), 0, "{}", batch.raw);
        assert_even(&batch, &["greeter-a", "greeter-c"], 300);

        b.signal(Signal::SIGUSR1);
        wait_for_state(setup.addr, *b_addr, EndpointState::Ready).await;
        until(&mut client, |batch| batch.served_by("greeter-b") > 0).await;
        let batch = client.batch(300).await;
        eprintln!("{}: greeter-b back: {}", language.name(), batch.raw);
        assert_even(&batch, &BACKENDS, 300);
        client.finish().await;
    })
    .await;
}

/// The control plane's half of the previous scenario, without probing: the
/// endpoint states are set through the store (in-process control plane),
/// and the client must skip NOT_READY (UNHEALTHY) and DRAINING endpoints
/// with no failed call, and take a READY one back.
pub async fn skips_not_ready_and_draining_endpoints(language: Language) {
    run(language, async {
        let greeters = start_greeters().await;
        let addrs: Vec<String> = greeters.iter().map(|(_, a)| a.to_string()).collect();
        let with_b = |state| {
            support::greeter(&[
                support::ready(&addrs[0]),
                (addrs[1].as_str(), state),
                support::ready(&addrs[2]),
            ])
        };
        let server = TestServer::start(vec![with_b(Readiness::Ready)]).await;
        let bootstrap = Bootstrap::write(server.addr, language, "states");
        let mut client = ForeignClient::start(language, &bootstrap, "xds:///greeter").await;
        warm_up(&mut client).await;

        for state in [Readiness::NotReady, Readiness::Draining] {
            server
                .source()
                .upsert(with_b(state), "test")
                .expect("valid service");
            until(&mut client, |batch| batch.served_by("greeter-b") == 0).await;
            let batch = client.batch(300).await;
            eprintln!("{}: greeter-b {state:?}: {}", language.name(), batch.raw);
            assert_eq!(batch.served_by("greeter-b"), 0, "{state:?}: {}", batch.raw);
            assert_even(&batch, &["greeter-a", "greeter-c"], 300);
        }

        server
            .source()
            .upsert(with_b(Readiness::Ready), "test")
            .expect("valid service");
        until(&mut client, |batch| batch.served_by("greeter-b") > 0).await;
        assert_even(&client.batch(300).await, &BACKENDS, 300);
        client.finish().await;
    })
    .await;
}

/// Endpoints in two zones (two in `zone-a`, one in `zone-b`): one locality
/// per zone, weighted by its ready endpoints, so every pod gets a share.
/// gRPC picks a locality at random by weight, so the spread is checked
/// loosely. Then `zone-b`'s only endpoint turns NOT_READY: its locality
/// keeps weight 1 with nothing healthy in it, and the client must send
/// every call to `zone-a` with none failed. The target names the Service
/// by namespace and port name, as a Kubernetes client would.
pub async fn spreads_over_zones_and_skips_an_empty_one(language: Language) {
    run(language, async {
        let greeters = start_greeters().await;
        let zoned = |c_state| {
            let mut service = support::greeter(&[
                support::ready(&greeters[0].1.to_string()),
                support::ready(&greeters[1].1.to_string()),
                (greeters[2].1.to_string().as_str(), c_state),
            ]);
            for (endpoint, zone) in service.ports[0]
                .endpoints
                .iter_mut()
                .zip(["zone-a", "zone-a", "zone-b"])
            {
                endpoint.zone = Some(zone.to_owned());
            }
            service
        };
        let server = TestServer::start(vec![zoned(Readiness::Ready)]).await;
        let bootstrap = Bootstrap::write(server.addr, language, "zones");
        let target = "xds:///greeter.default:grpc";
        let mut client = ForeignClient::start(language, &bootstrap, target).await;
        warm_up(&mut client).await;

        let batch = client.batch(300).await;
        eprintln!("{}: two zones: {}", language.name(), batch.raw);
        assert_eq!(batch.ok, 300, "every call succeeded: {}", batch.raw);
        for backend in BACKENDS {
            // 100 expected; 50 is six standard deviations below.
            assert!(batch.served_by(backend) >= 50, "{backend}: {}", batch.raw);
        }

        server
            .source()
            .upsert(zoned(Readiness::NotReady), "test")
            .expect("valid service");
        until(&mut client, |batch| batch.served_by("greeter-c") == 0).await;
        let batch = client.batch(300).await;
        eprintln!("{}: zone-b not ready: {}", language.name(), batch.raw);
        assert_eq!(batch.served_by("greeter-c"), 0, "{}", batch.raw);
        assert_even(&batch, &["greeter-a", "greeter-b"], 300);
        assert_acked_without_nack(server.addr, &bootstrap, &["LDS", "RDS", "CDS", "EDS"]).await;
        client.finish().await;
    })
    .await;
}

/// A name the control plane does not know: the Listener is left out of the
/// answer, and the client's does-not-exist timer (15 s in gRPC) ends the
/// call with UNAVAILABLE "... does not exist" (each client words it its
/// own way: [`Language::not_found_texts`]).
pub async fn an_unknown_name_fails_with_does_not_exist(language: Language) {
    run(language, async {
        let mut control_plane = start_control_plane("greeter=127.0.0.1:9");
        let addr = control_plane.wait_listening().await;
        let bootstrap = Bootstrap::write(addr, language, "unknown");
        let mut client = ForeignClient::start(language, &bootstrap, "xds:///no-such-service").await;

        let started = tokio::time::Instant::now();
        let batch = client.batch(1).await;
        eprintln!(
            "{}: unknown name, after {:.1?}: {}",
            language.name(),
            started.elapsed(),
            batch.raw
        );
        let expected = language.not_found_texts();
        assert_eq!((batch.ok, batch.failed), (0, 1), "{}", batch.raw);
        let errors = batch.errors();
        assert!(
            errors.iter().all(|e| e.starts_with("UNAVAILABLE: ")
                && expected.iter().any(|(text, named)| {
                    e.contains(text) && (!named || e.contains("no-such-service"))
                })),
            "expected UNAVAILABLE with one of {expected:?}: {}",
            batch.raw
        );
        client.finish().await;
        control_plane.kill().await;
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
        let greeters = tests::greeters::mutual_tls(&BACKENDS, &dir).await;
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

    fn bootstrap(&self, control_plane: SocketAddr, language: Language, test: &str) -> Bootstrap {
        Bootstrap::write_with(
            control_plane,
            language,
            test,
            Some(&CertificateFiles {
                ca: self.dir.path("ca.crt"),
                cert: self.dir.path("client.crt"),
                key: self.dir.path("client.key"),
            }),
        )
    }
}

/// The arguments that make `language`'s client use xDS credentials.
fn xds_creds(language: Language) -> &'static [&'static str] {
    match language {
        Language::Python => &["--xds-creds"],
        other => panic!("the {} client has no xDS credentials option", other.name()),
    }
}

pub async fn mtls_balances_over_greeters_that_require_client_certificates(language: Language) {
    run(language, async {
        let mut setup = MutualTls::start().await;
        let (mut control_plane, _file) = setup.control_plane(GREETER_SAN, true);
        let addr = control_plane.wait_listening().await;
        for (_, endpoint) in &setup.greeters {
            wait_for_state(addr, *endpoint, EndpointState::Ready).await;
        }
        let bootstrap = setup.bootstrap(addr, language, "mtls");
        let mut client =
            ForeignClient::start_with(language, &bootstrap, "xds:///greeter", xds_creds(language))
                .await;
        // One uncounted call first: a fresh client spreads its first calls
        // unevenly until every subchannel is ready.
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

pub async fn mtls_refuses_greeters_whose_certificates_lack_the_cluster_san(language: Language) {
    run(language, async {
        let mut setup = MutualTls::start().await;
        // No probing: the endpoints are HEALTHY, so only the client's SAN
        // check can stop the calls.
        let (mut control_plane, _file) = setup.control_plane("nobody.example", false);
        let addr = control_plane.wait_listening().await;
        let bootstrap = setup.bootstrap(addr, language, "mtls-san");
        let mut args = xds_creds(language).to_vec();
        args.extend(["--call-timeout", "3"]);
        let mut client =
            ForeignClient::start_with(language, &bootstrap, "xds:///greeter", &args).await;
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
