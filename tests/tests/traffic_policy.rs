//! Traffic policy end to end with this project's client: the control plane
//! (static source, `routes:` and zones in its file) in front of real
//! greeter-servers, and an `xds_balancer` channel following what it sends.
//! The same scenarios run with grpcio in control-plane's interop tests.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::sys::signal::Signal;
use proto::greet::HelloRequest;
use proto::greet::greeter_client::GreeterClient;
use serde_json::{Value, json};
use tests::greeters::{Backend, backends};
use tests::static_file::StaticFile;
use tests::{Process, bounded};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use xds_balancer::{Builder, Channel};

const LIMIT: Duration = Duration::from_secs(120);

/// Calls per backend, and failures.
#[derive(Debug, Default)]
struct Tally {
    by_backend: BTreeMap<String, u64>,
    failed: u64,
}

impl Tally {
    fn of(&self, backend: &str) -> u64 {
        self.by_backend.get(backend).copied().unwrap_or(0)
    }
}

/// A control plane serving `content` from a static file, probing the
/// backends' health every 100 ms unless `probe` is false.
async fn control_plane(file: &StaticFile, probe: bool) -> (Process, String) {
    let path = file.path().display().to_string();
    let mut args = vec![
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--source",
        "static",
        "--static-file",
        &path,
        "--probe-interval",
        "100ms",
    ];
    if !probe {
        args.push("--no-probe");
    }
    let mut process = Process::spawn("control-plane", "control-plane", &args);
    let uri = format!("http://{}", process.wait_listening().await);
    (process, uri)
}

fn service(name: &str, endpoints: &[&Backend]) -> Value {
    let addrs: Vec<String> = endpoints.iter().map(|b| b.addr.to_string()).collect();
    json!({"name": name, "port": 80, "endpoints": addrs})
}

/// The static file: `greeter` (the target), `greeter-v1`, `greeter-v2`,
/// and `routes`.
fn split_file(servers: &[Backend], routes: Value) -> Value {
    json!({
        "services": [
            service("greeter", &[&servers[0]]),
            service("greeter-v1", &[&servers[1]]),
            service("greeter-v2", &[&servers[2]]),
        ],
        "routes": routes,
    })
}

/// A route on `greeter` sending `v1` / `v2` parts to the two versions.
fn canary(v1: u32, v2: u32) -> Value {
    json!([{
        "name": "greeter-canary",
        "parents": ["greeter"],
        "rules": [{"backends": [
            {"service": "greeter-v1", "port": 80, "weight": v1},
            {"service": "greeter-v2", "port": 80, "weight": v2},
        ]}],
    }])
}

async fn hello(client: &mut GreeterClient<Channel>) -> Result<String, tonic::Status> {
    let mut request = tonic::Request::new(HelloRequest::default());
    request.set_timeout(Duration::from_secs(5));
    Ok(client.say_hello(request).await?.into_inner().served_by)
}

/// `count` SayHello calls, one after another.
async fn calls(channel: &Channel, count: u64) -> Tally {
    let mut client = GreeterClient::new(channel.clone());
    let mut tally = Tally::default();
    for _ in 0..count {
        match hello(&mut client).await {
            Ok(served_by) => *tally.by_backend.entry(served_by).or_default() += 1,
            Err(_) => tally.failed += 1,
        }
    }
    tally
}

/// Calls until `done` holds for a batch of 20 (within 20 s).
async fn until(channel: &Channel, done: impl Fn(&Tally) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let tally = calls(channel, 20).await;
        if done(&tally) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the client did not get there: {tally:?}"
        );
    }
}

/// Calls on 4 workers until stopped; returns what they saw.
fn background(channel: &Channel) -> (Arc<AtomicBool>, tokio::task::JoinHandle<Tally>) {
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let channel = channel.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut tally = Tally::default();
                let mut client = GreeterClient::new(channel);
                while !stop.load(Ordering::Relaxed) {
                    match hello(&mut client).await {
                        Ok(served_by) => *tally.by_backend.entry(served_by).or_default() += 1,
                        Err(status) => {
                            eprintln!("failed: {status:?}");
                            tally.failed += 1;
                        }
                    }
                }
                tally
            })
        })
        .collect();
    let all = tokio::spawn(async move {
        let mut total = Tally::default();
        for worker in workers {
            let tally = worker.await.expect("worker");
            total.failed += tally.failed;
            for (backend, n) in tally.by_backend {
                *total.by_backend.entry(backend).or_default() += n;
            }
        }
        total
    });
    (stop, all)
}

/// A route splitting 80/20 gives 800 ± 40 / 200 ± 40 of 1000 calls; moving
/// the weights to 0/100 while calls run fails none.
#[tokio::test]
async fn a_weighted_route_splits_calls_and_new_weights_fail_no_call() {
    bounded(LIMIT, async {
        let servers = backends(&["greeter-main", "greeter-v1", "greeter-v2"]).await;
        let file = StaticFile::new("split", &split_file(&servers, canary(80, 20)));
        let (_control_plane, uri) = control_plane(&file, false).await;
        let channel = Builder::new("greeter:80")
            .control_plane(uri)
            .connect()
            .await
            .expect("channel");
        until(&channel, |t| {
            t.of("greeter-v1") > 0 && t.of("greeter-v2") > 0
        })
        .await;

        let tally = calls(&channel, 1000).await;
        eprintln!("80/20: {tally:?}");
        assert_eq!(tally.failed, 0, "{tally:?}");
        assert_eq!(tally.of("greeter-main"), 0, "{tally:?}");
        assert!(tally.of("greeter-v1").abs_diff(800) <= 40, "{tally:?}");
        assert!(tally.of("greeter-v2").abs_diff(200) <= 40, "{tally:?}");

        let (stop, running) = background(&channel);
        file.write(&split_file(&servers, canary(0, 100)));
        until(&channel, |t| t.of("greeter-v2") == 20).await;
        stop.store(true, Ordering::Relaxed);
        let during = running.await.expect("callers");
        eprintln!("during the change: {during:?}");
        assert_eq!(during.failed, 0, "{during:?}");
        assert!(during.of("greeter-v2") > 0, "{during:?}");
    })
    .await;
}

/// SayHello goes to v2, every other method (grpc.health.v1 Check here) to
/// v1. v2 reports NOT_SERVING, so a Check that reached it would show.
#[tokio::test]
async fn a_method_route_sends_say_hello_to_v2_and_other_methods_to_v1() {
    bounded(LIMIT, async {
        let servers = backends(&["greeter-main", "greeter-v1", "greeter-v2"]).await;
        let routes = json!([{
            "name": "by-method",
            "parents": ["greeter"],
            "rules": [
                {"matches": [{"method": {"service": "greet.Greeter", "method": "SayHello"}}],
                 "backends": [{"service": "greeter-v2", "port": 80}]},
                {"backends": [{"service": "greeter-v1", "port": 80}]},
            ],
        }]);
        let file = StaticFile::new("method", &split_file(&servers, routes));
        // No probing: v2 stays in discovery while its health says
        // NOT_SERVING.
        let (_control_plane, uri) = control_plane(&file, false).await;
        servers[2].process.signal(Signal::SIGUSR1);
        let channel = Builder::new("greeter:80")
            .control_plane(uri)
            .connect()
            .await
            .expect("channel");
        until(&channel, |t| t.of("greeter-v2") == 20).await;

        let tally = calls(&channel, 100).await;
        assert_eq!(tally.of("greeter-v2"), 100, "{tally:?}");
        let mut health = HealthClient::new(channel.clone());
        for _ in 0..50 {
            let status = health
                .check(HealthCheckRequest::default())
                .await
                .expect("Check is routed")
                .into_inner()
                .status;
            assert_eq!(
                status,
                ServingStatus::Serving as i32,
                "a Check reached v2, which is NOT_SERVING"
            );
        }
    })
    .await;
}

/// A client in zone-a calls zone-a's two endpoints only; when they report
/// NOT_SERVING, calls move to zone-b with none failed, and come back.
#[tokio::test]
async fn a_client_stays_in_its_zone_and_fails_over_with_no_failed_call() {
    bounded(LIMIT, async {
        let servers = backends(&["a1", "a2", "b1", "b2"]).await;
        let endpoints: Vec<Value> = servers
            .iter()
            .map(|s| json!({"address": s.addr.to_string(), "zone": format!("zone-{}", &s.name[..1])}))
            .collect();
        let file = StaticFile::new(
            "zones",
            &json!({"services": [{
                "name": "greeter",
                "port": 80,
                "traffic_distribution": "PreferClose",
                "endpoints": endpoints,
            }]}),
        );
        let (_control_plane, uri) = control_plane(&file, true).await;
        let channel = Builder::new("greeter:80")
            .control_plane(uri)
            .zone("zone-a")
            .connect()
            .await
            .expect("channel");
        until(&channel, |t| t.of("a1") > 0 && t.of("a2") > 0).await;
        let tally = calls(&channel, 200).await;
        assert_eq!(tally.of("a1") + tally.of("a2"), 200, "{tally:?}");

        let (stop, running) = background(&channel);
        servers[0].process.signal(Signal::SIGUSR1);
        servers[1].process.signal(Signal::SIGUSR1);
        until(&channel, |t| t.of("b1") + t.of("b2") == 20).await;
        servers[0].process.signal(Signal::SIGUSR1);
        servers[1].process.signal(Signal::SIGUSR1);
        until(&channel, |t| t.of("a1") + t.of("a2") == 20).await;
        stop.store(true, Ordering::Relaxed);
        let during = running.await.expect("callers");
        eprintln!("zone failover and back: {during:?}");
        assert_eq!(during.failed, 0, "{during:?}");
        assert!(during.of("b1") + during.of("b2") > 0, "{during:?}");
    })
    .await;
}
