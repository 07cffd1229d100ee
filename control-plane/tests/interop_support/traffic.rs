//! Traffic policy scenarios with a foreign xDS client: a weighted split
//! between two Services, a method route, zone priorities and least
//! request. The control plane runs in-process (the test plays the source
//! and reports services and routes through the store), in front of real
//! greeter-server processes.

use std::net::SocketAddr;
use std::time::Duration;

use control_plane::model::{LbPolicy, Readiness, Service};
use control_plane::routes::{
    Backend, CallMatch, MethodMatch, RouteParent, RouteRule, RouteSet, RouteSupport, TrafficRoute,
};
use nix::sys::signal::Signal;
use tests::{Process, bounded};

use super::{Batch, Bootstrap, ForeignClient, Language};
use crate::support::{self, TestServer};

/// Upper bound for one scenario, the client's set-up excluded.
const LIMIT: Duration = Duration::from_secs(240);
/// Upper bound for installing or building a client on first use.
const SETUP_LIMIT: Duration = Duration::from_secs(960);

async fn run<F: Future<Output = ()>>(language: Language, scenario: F) {
    if language.skipped() {
        return;
    }
    bounded(SETUP_LIMIT, language.prepare()).await;
    bounded(LIMIT, scenario).await;
}

/// A greeter-server named `name`.
async fn greeter(name: &str) -> (Process, SocketAddr) {
    let mut process = Process::spawn(
        name,
        "greeter-server",
        &["--listen", "127.0.0.1:0", "--name", name],
    );
    let addr = process.wait_listening().await;
    (process, addr)
}

/// Service `name` (port 80) over `endpoints`, all ready.
fn service(name: &str, endpoints: &[SocketAddr]) -> Service {
    let addrs: Vec<String> = endpoints.iter().map(ToString::to_string).collect();
    let list: Vec<(&str, Readiness)> = addrs
        .iter()
        .map(|a| (a.as_str(), Readiness::Ready))
        .collect();
    support::service(name, &list)
}

fn backend(service: &str, weight: u32) -> Backend {
    Backend {
        service: service.into(),
        port: 80,
        weight,
    }
}

/// A route on `greeter` with `rules`.
fn route(rules: Vec<RouteRule>) -> RouteSet {
    RouteSet {
        support: RouteSupport::enabled("test"),
        routes: vec![TrafficRoute {
            name: "greeter-route".into(),
            order: 0,
            parents: vec![RouteParent {
                service: "greeter".into(),
                port: None,
            }],
            rules,
            problems: vec![],
        }],
    }
}

/// Runs batches of 30 until `done` holds for one (within 20 s).
async fn until(client: &mut ForeignClient, done: impl Fn(&Batch) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let batch = client.batch(30).await;
        if done(&batch) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the client did not get there: {}",
            batch.raw
        );
    }
}

/// `greeter` routed 80/20 to `greeter-v1` / `greeter-v2`: of 1000 calls,
/// 800 ± 40 reach v1 and 200 ± 40 reach v2 (± 40 is over three standard
/// deviations of the binomial). Nothing reaches greeter's own endpoint.
pub async fn splits_calls_by_route_weight(language: Language) {
    run(language, async {
        let (_main, main_addr) = greeter("greeter-main").await;
        let (_v1, v1_addr) = greeter("greeter-v1").await;
        let (_v2, v2_addr) = greeter("greeter-v2").await;
        let server = TestServer::start(vec![
            service("greeter", &[main_addr]),
            service("greeter-v1", &[v1_addr]),
            service("greeter-v2", &[v2_addr]),
        ])
        .await;
        server.source().set_routes(
            route(vec![RouteRule {
                matches: vec![],
                backends: vec![backend("greeter-v1", 80), backend("greeter-v2", 20)],
            }]),
            "test",
        );
        let bootstrap = Bootstrap::write(server.addr, language, "split");
        let mut client = ForeignClient::start(language, &bootstrap, "xds:///greeter").await;
        until(&mut client, |b| {
            b.failed == 0 && b.served_by("greeter-v1") > 0 && b.served_by("greeter-v2") > 0
        })
        .await;

        let batch = client.batch(1000).await;
        eprintln!("{}: 80/20 split: {}", language.name(), batch.raw);
        assert_eq!(batch.ok, 1000, "every call succeeded: {}", batch.raw);
        assert_eq!(batch.served_by("greeter-main"), 0, "{}", batch.raw);
        for (backend, expected) in [("greeter-v1", 800), ("greeter-v2", 200)] {
            let got = batch.served_by(backend);
            assert!(
                got.abs_diff(expected) <= 40,
                "{backend} served {got} of 1000, expected {expected} ± 40: {}",
                batch.raw
            );
        }
        client.finish().await;
    })
    .await;
}

/// SayHello routed to `greeter-v2`, every other method to `greeter-v1`.
/// greeter-v1 is made NOT_SERVING (SIGUSR1; the in-process control plane
/// does not probe, so it stays in rotation): a health check through the
/// channel answered NOT_SERVING was served by v1, SERVING by v2.
pub async fn routes_by_method(language: Language) {
    run(language, async {
        let (_main, main_addr) = greeter("greeter-main").await;
        let (v1, v1_addr) = greeter("greeter-v1").await;
        let (_v2, v2_addr) = greeter("greeter-v2").await;
        v1.signal(Signal::SIGUSR1);
        let server = TestServer::start(vec![
            service("greeter", &[main_addr]),
            service("greeter-v1", &[v1_addr]),
            service("greeter-v2", &[v2_addr]),
        ])
        .await;
        server.source().set_routes(
            route(vec![
                RouteRule {
                    matches: vec![CallMatch {
                        method: MethodMatch::exact(Some("greet.Greeter"), Some("SayHello")),
                        headers: vec![],
                    }],
                    backends: vec![backend("greeter-v2", 1)],
                },
                RouteRule {
                    matches: vec![],
                    backends: vec![backend("greeter-v1", 1)],
                },
            ]),
            "test",
        );
        let bootstrap = Bootstrap::write(server.addr, language, "method");
        let mut hello = ForeignClient::start(language, &bootstrap, "xds:///greeter").await;
        until(&mut hello, |b| b.failed == 0 && b.ok > 0).await;
        let batch = hello.batch(200).await;
        eprintln!("{}: SayHello: {}", language.name(), batch.raw);
        assert_eq!(batch.ok, 200, "{}", batch.raw);
        assert_eq!(batch.served_by("greeter-v2"), 200, "{}", batch.raw);

        let mut health =
            ForeignClient::start_with(language, &bootstrap, "xds:///greeter", &["--rpc", "health"])
                .await;
        until(&mut health, |b| b.failed == 0 && b.ok > 0).await;
        let batch = health.batch(200).await;
        eprintln!("{}: Health/Check: {}", language.name(), batch.raw);
        assert_eq!(batch.ok, 200, "{}", batch.raw);
        assert_eq!(
            batch.served_by("NOT_SERVING"),
            200,
            "every other method goes to greeter-v1 (NOT_SERVING): {}",
            batch.raw
        );
        hello.finish().await;
        health.finish().await;
    })
    .await;
}

/// Four greeters, two in zone-a and two in zone-b, behind a PreferClose
/// Service; the client's bootstrap puts it in zone-a: every call goes to
/// zone-a. When zone-a's endpoints turn not ready, calls move to zone-b
/// with none failed.
pub async fn prefers_its_own_zone_and_fails_over(language: Language) {
    run(language, async {
        let names = ["zone-a-1", "zone-a-2", "zone-b-1", "zone-b-2"];
        let mut greeters = Vec::new();
        for name in names {
            greeters.push(greeter(name).await);
        }
        let addrs: Vec<SocketAddr> = greeters.iter().map(|(_, a)| *a).collect();
        let zoned = |a_state: Readiness| {
            let mut svc = service("greeter", &addrs);
            svc.policy.prefer_close = true;
            for (i, endpoint) in svc.ports[0].endpoints.iter_mut().enumerate() {
                let addr = endpoint.socket_addr();
                let name = names[addrs.iter().position(|a| *a == addr).expect("known")];
                endpoint.zone = Some(name[..6].to_owned());
                endpoint.instance = Some(name.to_owned());
                if name.starts_with("zone-a") {
                    endpoint.state = a_state;
                }
                let _ = i;
            }
            svc
        };
        let server = TestServer::start(vec![zoned(Readiness::Ready)]).await;
        let bootstrap = Bootstrap::write_in_zone(server.addr, language, "zones", None, "zone-a");
        let mut client = ForeignClient::start(language, &bootstrap, "xds:///greeter").await;
        until(&mut client, |b| {
            b.failed == 0 && b.served_by("zone-a-1") > 0 && b.served_by("zone-a-2") > 0
        })
        .await;
        let batch = client.batch(300).await;
        eprintln!("{}: in zone-a: {}", language.name(), batch.raw);
        assert_eq!(batch.ok, 300, "{}", batch.raw);
        assert_eq!(
            batch.served_by("zone-a-1") + batch.served_by("zone-a-2"),
            300,
            "all in zone-a: {}",
            batch.raw
        );

        server
            .source()
            .upsert(zoned(Readiness::NotReady), "test")
            .expect("valid service");
        // Every batch from the change on: none failed.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let batch = client.batch(30).await;
            assert_eq!(batch.failed, 0, "failover without failures: {}", batch.raw);
            if batch.served_by("zone-b-1") + batch.served_by("zone-b-2") == 30 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "calls never moved to zone-b: {}",
                batch.raw
            );
        }
        let batch = client.batch(300).await;
        eprintln!("{}: zone-a not ready: {}", language.name(), batch.raw);
        assert_eq!(batch.ok, 300, "{}", batch.raw);
        assert_eq!(
            batch.served_by("zone-b-1") + batch.served_by("zone-b-2"),
            300,
            "{}",
            batch.raw
        );
        client.finish().await;
    })
    .await;
}

/// A least_request Service: the client either balances over it (it
/// supports least request) or rejects the Cluster. Returns the batch and
/// the CDS NACK, if any, for the test to judge.
pub async fn least_request_outcome(language: Language) -> (Batch, Option<String>) {
    let mut outcome = None;
    run(language, async {
        let (_a, a) = greeter("lr-a").await;
        let (_b, b) = greeter("lr-b").await;
        let mut svc = service("greeter", &[a, b]);
        svc.policy.lb = LbPolicy::LeastRequest;
        let server = TestServer::start(vec![svc]).await;
        let bootstrap = Bootstrap::write(server.addr, language, "least-request");
        let mut client = ForeignClient::start_with(
            language,
            &bootstrap,
            "xds:///greeter",
            &["--call-timeout", "5"],
        )
        .await;
        let batch = client.batch(100).await;
        eprintln!("{}: least_request: {}", language.name(), batch.raw);
        let nack = cds_nack(server.addr, &bootstrap).await;
        client.finish().await;
        outcome = Some((batch, nack));
    })
    .await;
    outcome.expect("the scenario ran")
}

/// The CDS NACK the client with `bootstrap`'s node id sent, if any.
async fn cds_nack(addr: SocketAddr, bootstrap: &Bootstrap) -> Option<String> {
    use proto::controlplane::v1::ListClientsRequest;
    use proto::controlplane::v1::control_plane_status_client::ControlPlaneStatusClient;
    let mut status = ControlPlaneStatusClient::new(tests::channel(addr).await);
    let clients = status
        .list_clients(ListClientsRequest {})
        .await
        .expect("ListClients")
        .into_inner()
        .clients;
    clients
        .iter()
        .filter(|c| c.node_id == bootstrap.node_id)
        .flat_map(|c| &c.types)
        .find(|t| t.type_url.ends_with("Cluster") && t.nacks > 0)
        .map(|t| t.nack_error.clone())
}

/// A canary through the Kubernetes API: the real control plane process
/// (`--source kubernetes`) against the fake API server, greeter-servers as
/// the pods of `greeter-v1` and `greeter-v2`, and a GRPCRoute on `greeter`
/// moved 90/10 → 50/50 → 0/100 with `kubectl apply`'s equivalent. The
/// client keeps calling throughout: no call fails, and each split shows
/// in its calls. How long each change takes to reach an xDS subscriber
/// (a raw ADS stream watching greeter's RouteConfiguration) is printed.
pub async fn canary_through_the_kubernetes_api(language: Language) {
    use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
    use serde_json::json;
    use tests::ads::AdsStream;
    use tests::fake_kube::{EndpointFixture, EndpointSliceFixture, FakeKube, ServiceFixture};

    run(language, async {
        let kube = FakeKube::start().await;
        kube.set_grpc_routes_installed(true);
        let (_main, main_addr) = greeter("greeter-main").await;
        let (_v1, v1_addr) = greeter("greeter-v1").await;
        let (_v2, v2_addr) = greeter("greeter-v2").await;
        for (name, addr) in [
            ("greeter", main_addr),
            ("greeter-v1", v1_addr),
            ("greeter-v2", v2_addr),
        ] {
            kube.apply(ServiceFixture::new(name).port("grpc", 80, "grpc"));
            kube.apply(
                EndpointSliceFixture::for_service(name)
                    .name(name)
                    .port("grpc", i32::from(addr.port()))
                    .endpoint_with(EndpointFixture::new(&addr.ip().to_string()).pod(name)),
            );
        }
        let canary = |v1: u32, v2: u32| {
            json!({
                "metadata": {"name": "greeter-canary"},
                "spec": {
                    "parentRefs": [{"group": "", "kind": "Service", "name": "greeter"}],
                    "rules": [{"backendRefs": [
                        {"name": "greeter-v1", "port": 80, "weight": v1},
                        {"name": "greeter-v2", "port": 80, "weight": v2}
                    ]}]
                }
            })
        };
        kube.apply_grpc_route(canary(90, 10));
        let kubeconfig = kube
            .kubeconfig_path()
            .to_str()
            .expect("UTF-8 path")
            .to_owned();
        let mut control_plane = Process::spawn_with_env(
            "control-plane",
            env!("CARGO_BIN_EXE_control-plane"),
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--source",
                "kubernetes",
                "--namespace",
                "default",
            ],
            &[("KUBECONFIG", &kubeconfig)],
        );
        let addr = control_plane.wait_listening().await;
        let bootstrap = Bootstrap::write(addr, language, "kube-canary");
        let mut client = ForeignClient::start(language, &bootstrap, "xds:///greeter").await;
        until(&mut client, |b| {
            b.failed == 0 && b.served_by("greeter-v1") > 0 && b.served_by("greeter-v2") > 0
        })
        .await;
        let mut rds = AdsStream::open(tests::channel(addr).await, "rds-watcher").await;
        rds.subscribe::<RouteConfiguration>(&["greeter.default.svc.cluster.local:80"])
            .await;
        let first = rds.recv().await;
        rds.ack(&first, &["greeter.default.svc.cluster.local:80"])
            .await;

        for (v1, v2) in [(90, 10), (50, 50), (0, 100)] {
            if (v1, v2) != (90, 10) {
                // The change lands while the client is calling.
                let change = async {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let applied = tokio::time::Instant::now();
                    kube.apply_grpc_route(canary(v1, v2));
                    let update = rds.recv().await;
                    let took = applied.elapsed();
                    rds.ack(&update, &["greeter.default.svc.cluster.local:80"])
                        .await;
                    took
                };
                let (took, during) = tokio::join!(change, client.batch(1000));
                eprintln!(
                    "{}: GRPCRoute {v1}/{v2} reached an ADS subscriber {took:?} after the API \
                     change; calls meanwhile: {}",
                    language.name(),
                    during.raw
                );
                assert_eq!(
                    during.failed, 0,
                    "no call fails during the change: {}",
                    during.raw
                );
            }
            // Every call from the change on succeeds; the client follows
            // the new weights within a few batches.
            let expected_v2 = u64::from(v2) * 10;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            loop {
                let batch = client.batch(1000).await;
                assert_eq!(batch.failed, 0, "no call fails at {v1}/{v2}: {}", batch.raw);
                assert_eq!(batch.served_by("greeter-main"), 0, "{}", batch.raw);
                let got = batch.served_by("greeter-v2");
                if got.abs_diff(expected_v2) <= 50 {
                    eprintln!("{}: {v1}/{v2}: {}", language.name(), batch.raw);
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the client never followed {v1}/{v2}: {}",
                    batch.raw
                );
            }
        }
        client.finish().await;
    })
    .await;
}
