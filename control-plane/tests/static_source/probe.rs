//! grpc.health.v1 probing of static endpoints against real servers.

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use control_plane::model::Readiness::{NotReady, Ready};
use control_plane::source::static_source::{self, StaticArgs};
use control_plane::store::Store;
use nix::sys::signal::Signal;
use tests::Process;
use tokio::net::TcpListener;
use tonic_health::ServingStatus;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::support::{HealthServer, TEST_LIMIT, TempDir, WAIT, free_port, is, store, wait_for};

const INTERVAL: Duration = Duration::from_millis(100);

fn probed(services: Vec<String>) -> StaticArgs {
    StaticArgs {
        services,
        probe_interval: INTERVAL,
        probe_timeout: Duration::from_secs(1),
        ..StaticArgs::default()
    }
}

async fn wait_state(
    store: &Store,
    service: &str,
    addr: SocketAddr,
    state: control_plane::model::Readiness,
    detail: Option<&str>,
) {
    let what = format!("{service} {addr} {state} {detail:?}");
    wait_for(store, &what, |s| is(s, service, addr, state, detail)).await;
}

/// Waits (at most [`WAIT`]) until `counter` reaches `at_least`.
async fn wait_count(what: &str, counter: &AtomicUsize, at_least: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while HealthServer::count(counter) < at_least {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what} to reach {at_least}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn greeter_server(name: &str, addr: SocketAddr) -> Process {
    let listen = addr.to_string();
    Process::spawn(
        name,
        "greeter-server",
        &["--listen", &listen, "--name", name, "--drain-delay", "30s"],
    )
}

#[tokio::test]
async fn greeter_server_readiness_follows_its_health_and_its_life() {
    tests::bounded(TEST_LIMIT, async {
        let addr = free_port().await;
        let store = store();
        let _source = static_source::start(
            probed(vec![format!("greeter={addr}")]),
            store.source_handle(),
        )
        .await
        .unwrap();
        assert!(
            is(&store.catalog(), "greeter", addr, NotReady, None),
            "not ready before any answer"
        );
        wait_state(
            &store,
            "greeter",
            addr,
            NotReady,
            Some("unreachable: connection refused"),
        )
        .await;

        let mut server = greeter_server("greeter-a", addr);
        server.wait_listening().await;
        wait_state(&store, "greeter", addr, Ready, None).await;

        server.signal(Signal::SIGUSR1);
        wait_state(
            &store,
            "greeter",
            addr,
            NotReady,
            Some("health probe: NOT_SERVING"),
        )
        .await;
        server.signal(Signal::SIGUSR1);
        wait_state(&store, "greeter", addr, Ready, None).await;

        server.kill().await;
        wait_state(
            &store,
            "greeter",
            addr,
            NotReady,
            Some("unreachable: connection lost"),
        )
        .await;
        wait_state(
            &store,
            "greeter",
            addr,
            NotReady,
            Some("unreachable: connection refused"),
        )
        .await;

        // A new server on the same port.
        let mut again = greeter_server("greeter-b", addr);
        again.wait_listening().await;
        wait_state(&store, "greeter", addr, Ready, None).await;

        // A drain: the endpoint leaves at the NOT_SERVING message, while the
        // server still answers (its drain delay is 30 s).
        again.signal(Signal::SIGTERM);
        wait_state(
            &store,
            "greeter",
            addr,
            NotReady,
            Some("health probe: NOT_SERVING"),
        )
        .await;
        let mut client = HealthClient::new(tests::channel(addr).await);
        let answer = client
            .check(HealthCheckRequest::default())
            .await
            .expect("the draining server still answers");
        assert_eq!(answer.into_inner().status, ServingStatus::NotServing as i32);
    })
    .await;
}

#[tokio::test]
async fn servers_without_watch_are_polled_with_check() {
    tests::bounded(TEST_LIMIT, async {
        let server = HealthServer::start(false).await;
        let addr = server.addr;
        let store = store();
        let _source = static_source::start(
            probed(vec![format!("greeter={addr}")]),
            store.source_handle(),
        )
        .await
        .unwrap();
        wait_state(&store, "greeter", addr, Ready, None).await;
        let checks = HealthServer::count(&server.calls.checks);
        wait_count("checks", &server.calls.checks, checks + 3).await;

        server.set(ServingStatus::NotServing);
        wait_state(
            &store,
            "greeter",
            addr,
            NotReady,
            Some("health probe: NOT_SERVING"),
        )
        .await;
        server.set(ServingStatus::Serving);
        wait_state(&store, "greeter", addr, Ready, None).await;
        assert_eq!(
            HealthServer::count(&server.calls.watches),
            1,
            "Watch is asked once per connection, then Check takes over"
        );
    })
    .await;
}

fn file_of(services: &[(&str, &[SocketAddr])]) -> String {
    let mut text = "services:\n".to_owned();
    for (name, addrs) in services {
        let addrs: Vec<String> = addrs.iter().map(|a| format!("\"{a}\"")).collect();
        text += &format!("  - name: {name}\n    endpoints: [{}]\n", addrs.join(", "));
    }
    text
}

#[tokio::test]
async fn reloads_keep_probers_and_probe_results_touch_only_their_services() {
    tests::bounded(TEST_LIMIT, async {
        let e1 = HealthServer::start(true).await;
        let e2 = HealthServer::start(true).await;
        let dir = TempDir::new("static-probers");
        let path = dir.path().join("services.yaml");
        std::fs::write(&path, file_of(&[("a", &[e1.addr]), ("b", &[e2.addr])])).unwrap();
        let store = store();
        let args = StaticArgs {
            static_file: Some(path.clone()),
            file_poll_interval: Duration::from_millis(50),
            ..probed(Vec::new())
        };
        let _source = static_source::start(args, store.source_handle())
            .await
            .unwrap();
        let before = wait_for(&store, "a and b ready", |s| {
            is(s, "a", e1.addr, Ready, None) && is(s, "b", e2.addr, Ready, None)
        })
        .await;
        assert_eq!(HealthServer::count(&e1.calls.watches), 1);

        // A reload that adds a service on e1: e1 keeps its prober and its state.
        std::fs::write(
            &path,
            file_of(&[("a", &[e1.addr]), ("b", &[e2.addr]), ("c", &[e1.addr])]),
        )
        .unwrap();
        let reloaded = wait_for(&store, "c", |s| s.services.contains_key("c")).await;
        assert!(
            is(&reloaded, "c", e1.addr, Ready, None),
            "c's endpoint keeps e1's known state"
        );
        assert_eq!(
            reloaded.services["a"].revision,
            before.services["a"].revision
        );
        assert_eq!(
            HealthServer::count(&e1.calls.watches),
            1,
            "e1's prober was kept"
        );

        // e2 goes NOT_SERVING: only b changes.
        e2.set(ServingStatus::NotServing);
        let after = wait_for(&store, "b not ready", |s| {
            is(s, "b", e2.addr, NotReady, Some("health probe: NOT_SERVING"))
        })
        .await;
        for name in ["a", "c"] {
            assert_eq!(
                after.services[name].revision, reloaded.services[name].revision,
                "{name} does not list e2"
            );
        }

        // e1 leaves the configuration: its prober stops and hangs up.
        std::fs::write(&path, file_of(&[("b", &[e2.addr])])).unwrap();
        wait_for(&store, "a and c gone", |s| {
            !s.services.contains_key("a") && !s.services.contains_key("c")
        })
        .await;
        let deadline = tokio::time::Instant::now() + WAIT;
        while HealthServer::count(&e1.calls.open_watches) > 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "e1's watch is still open after e1 left the configuration"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(is(&store.catalog(), "b", e2.addr, NotReady, None));
    })
    .await;
}

#[tokio::test]
async fn an_endpoint_that_accepts_but_never_answers_is_not_ready() {
    tests::bounded(TEST_LIMIT, async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        let store = store();
        let args = StaticArgs {
            probe_timeout: Duration::from_millis(200),
            ..probed(vec![format!("greeter={addr}")])
        };
        let _source = static_source::start(args, store.source_handle())
            .await
            .unwrap();
        wait_for(&store, "a timeout", |s| {
            crate::support::endpoint(s, "greeter", addr).is_some_and(|e| {
                e.state == NotReady
                    && e.detail
                        .as_deref()
                        .is_some_and(|d| d.starts_with("unreachable:") && d.contains("200ms"))
            })
        })
        .await;
    })
    .await;
}

#[tokio::test]
async fn a_watched_server_that_stops_answering_is_noticed() {
    tests::bounded(TEST_LIMIT, async {
        let server = HealthServer::start(true).await;
        let addr = server.addr;
        let store = store();
        let args = StaticArgs {
            probe_timeout: Duration::from_millis(200),
            ..probed(vec![format!("greeter={addr}")])
        };
        let _source = static_source::start(args, store.source_handle())
            .await
            .unwrap();
        wait_state(&store, "greeter", addr, Ready, None).await;

        // The watch stays open and silent; only the liveness checks can tell.
        server.hang_checks();
        wait_state(
            &store,
            "greeter",
            addr,
            NotReady,
            Some("unreachable: no answer to a health check within 200ms"),
        )
        .await;
    })
    .await;
}
