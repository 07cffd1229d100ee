//! The real `control-plane` binary: `serve` (versions across runs,
//! health, metrics, shutdown, bad flags) and `status` (tables and JSON).

mod support;

use std::net::SocketAddr;
use std::process::ExitStatus;
use std::time::Duration;

use control_plane::model::Readiness;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use nix::sys::signal::Signal;
use serde_json::Value;
use support::{GREETER_CLUSTER, TestServer, greeter, ready};
use tests::ads::AdsStream;
use tests::{Process, bounded, channel};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const BIN: &str = env!("CARGO_BIN_EXE_control-plane");
const LIMIT: Duration = Duration::from_secs(60);

fn serve(name: &str, extra: &[&str]) -> Process {
    // The source named: inside a pod (a CI runner) the default is kubernetes.
    let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--source", "static"];
    args.extend_from_slice(extra);
    Process::spawn(name, BIN, &args)
}

/// Runs `control-plane status` with `args`; returns its exit status and
/// standard output.
async fn status(args: &[&str]) -> (ExitStatus, String) {
    let mut all = vec!["status"];
    all.extend_from_slice(args);
    let mut process = Process::spawn("status", BIN, &all);
    let mut stdout = process.take_stdout();
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(20), stdout.read_to_string(&mut text))
        .await
        .expect("status finished writing")
        .expect("stdout readable");
    let exit = process.wait_exit(Duration::from_secs(20)).await;
    (exit, text)
}

/// The version_info a fresh client gets for Listener `greeter`.
async fn greeter_version(addr: SocketAddr) -> (AdsStream, String) {
    let mut ads = AdsStream::open(channel(addr).await, "versions").await;
    ads.subscribe::<Listener>(&["greeter"]).await;
    let (response, listeners) = ads.recv_typed::<Listener>().await;
    assert_eq!(listeners.len(), 1);
    (ads, response.version_info)
}

#[tokio::test]
async fn versions_never_repeat_across_runs_and_sigterm_stops_cleanly() {
    bounded(LIMIT, async {
        let static_flag = ["--static", "greeter=127.0.0.1:9"];
        let mut first = serve("first", &static_flag);
        let addr = first.wait_listening().await;
        let health = HealthClient::new(channel(addr).await)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .expect("health")
            .into_inner();
        assert_eq!(health.status, ServingStatus::Serving as i32);
        let (mut stream, first_version) = greeter_version(addr).await;

        first.signal(Signal::SIGTERM);
        let ended = stream.next().await.expect_err("stream ends with a status");
        assert_eq!(ended.code(), Code::Unavailable);
        let exit = first.wait_exit(Duration::from_secs(15)).await;
        assert!(exit.success(), "exit {exit}");

        // Same configuration, new run: a version the first run never used.
        let mut second = serve("second", &static_flag);
        let addr = second.wait_listening().await;
        let (_stream, second_version) = greeter_version(addr).await;
        assert_ne!(first_version, second_version);
        let prefix = |v: &str| v.rsplit_once('-').map(|(p, _)| p.to_owned());
        assert_ne!(prefix(&first_version), prefix(&second_version));
    })
    .await;
}

#[tokio::test]
async fn metrics_are_served_over_http() {
    bounded(LIMIT, async {
        let mut server = serve(
            "metrics",
            &[
                "--static",
                "greeter=127.0.0.1:9",
                "--metrics-listen",
                "127.0.0.1:0",
            ],
        );
        let line = server
            .wait_for_log("metrics listening", Duration::from_secs(30))
            .await;
        let metrics_addr: SocketAddr = line["addr"].as_str().unwrap().parse().unwrap();
        let addr = server.wait_listening().await;
        let (_stream, _) = greeter_version(addr).await;

        let mut http = TcpStream::connect(metrics_addr).await.expect("connect");
        http.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = String::new();
        http.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        // Prometheus text when the scraper asks for no format.
        assert!(
            response.contains("content-type: text/plain; version=0.0.4"),
            "{response}"
        );
        assert!(
            response.contains("control_plane_connected_clients 1"),
            "{response}"
        );
        assert!(
            response.contains(r#"control_plane_xds_responses_total{type="LDS"} 1"#),
            "{response}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_bad_static_flag_fails_with_a_clear_error() {
    bounded(LIMIT, async {
        let mut server = serve("bad", &["--static", "greeter=nowhere"]);
        let line = server
            .wait_for_log("serve failed", Duration::from_secs(20))
            .await;
        let error = line["error"].as_str().unwrap_or_default();
        assert!(error.contains("invalid --static"), "{line}");
        assert!(error.contains("nowhere"), "{line}");
        let exit = server.wait_exit(Duration::from_secs(20)).await;
        assert_eq!(exit.code(), Some(1));
    })
    .await;
}

#[tokio::test]
async fn status_shows_services_endpoint_states_and_clients() {
    bounded(LIMIT, async {
        let server = TestServer::start(vec![greeter(&[
            ready("10.0.0.1:8080"),
            ("10.0.0.2:8080", Readiness::Draining),
            ("10.0.0.3:8080", Readiness::NotReady),
        ])])
        .await;
        let mut ads = AdsStream::open(channel(server.addr).await, "status-client").await;
        ads.subscribe::<Listener>(&["greeter"]).await;
        let (lds, _) = ads.recv_typed::<Listener>().await;
        ads.ack(&lds, &["greeter"]).await;
        ads.subscribe::<ClusterLoadAssignment>(&[GREETER_CLUSTER])
            .await;
        let (eds, _) = ads.recv_typed::<ClusterLoadAssignment>().await;
        ads.nack(&eds, &[GREETER_CLUSTER], "weights do not add up")
            .await;
        // Once this is answered, the ACK and NACK above have been handled.
        ads.subscribe::<Listener>(&["greeter"]).await;
        ads.recv_typed::<Listener>().await;

        let url = format!("http://{}", server.addr);
        let (exit, text) = status(&["--addr", &url]).await;
        assert!(exit.success(), "exit {exit}: {text}");
        for expected in [
            server.store.instance_id(),
            "source static (test): connected",
            "greeter",
            "80 (grpc)",
            "10.0.0.1:8080  ready",
            "10.0.0.2:8080  draining",
            "10.0.0.3:8080  not_ready",
            "status-client",
            "LDS",
            &lds.version_info,
            "EDS",
            &format!("{}: weights do not add up", eds.version_info),
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }

        let (exit, json) = status(&["--addr", &url, "--json"]).await;
        assert!(exit.success(), "exit {exit}: {json}");
        let report: Value = serde_json::from_str(&json).expect("one JSON object");
        assert_eq!(report["info"]["instance_id"], server.store.instance_id());
        assert_eq!(report["info"]["replica"], server.store.replica());
        assert_eq!(report["info"]["source"]["state"], "connected");
        let states: Vec<&str> = report["services"][0]["ports"][0]["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["state"].as_str().unwrap())
            .collect();
        assert_eq!(states, vec!["ready", "draining", "not_ready"]);
        let client = &report["clients"][0];
        assert_eq!(client["node_id"], "status-client");
        let types = client["types"].as_array().unwrap();
        let lds_state = types.iter().find(|t| t["type"] == "LDS").unwrap();
        assert_eq!(lds_state["acked_version"], lds.version_info.as_str());
        assert_eq!(lds_state["nack"], Value::Null);
        let eds_state = types.iter().find(|t| t["type"] == "EDS").unwrap();
        assert_eq!(eds_state["nack"]["error"], "weights do not add up");
        assert_eq!(eds_state["nack"]["version"], eds.version_info.as_str());
    })
    .await;
}

#[tokio::test]
async fn status_says_what_failed_when_nothing_listens() {
    bounded(LIMIT, async {
        // A port that was just free: nothing listens there.
        let free = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mut process = Process::spawn(
            "status",
            BIN,
            &[
                "status",
                "--addr",
                &format!("http://{free}"),
                "--timeout",
                "2s",
            ],
        );
        let line = process
            .wait_for_log("status failed", Duration::from_secs(20))
            .await;
        let error = line["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("failed to connect to the control plane"),
            "{line}"
        );
        let exit = process.wait_exit(Duration::from_secs(20)).await;
        assert_eq!(exit.code(), Some(1));

        // In text logs: one `error:` line, no log record. The address
        // written as for the client (`--control-plane`, `host:port`).
        let output = tokio::process::Command::new(BIN)
            .args([
                "status",
                "--control-plane",
                &free.to_string(),
                "--timeout",
                "2s",
            ])
            .env_remove("RUST_LOG")
            .env_remove("LOG_FORMAT")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(20), output)
            .await
            .expect("status finished")
            .expect("status ran");
        assert_eq!(output.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with(&format!(
                "error: failed to connect to the control plane at {free}: "
            )),
            "{stderr}"
        );
    })
    .await;
}

#[tokio::test]
async fn the_replica_is_named_after_pod_name() {
    bounded(LIMIT, async {
        let mut server = Process::spawn_with_env(
            "named",
            BIN,
            &["serve", "--listen", "127.0.0.1:0", "--source", "static"],
            &[("POD_NAME", "control-plane-7f9c-x2")],
        );
        let addr = server.wait_listening().await;
        let url = format!("http://{addr}");
        let (exit, json) = status(&["--addr", &url, "--json"]).await;
        assert!(exit.success(), "exit {exit}: {json}");
        let report: Value = serde_json::from_str(&json).expect("one JSON object");
        assert_eq!(report["info"]["replica"], "control-plane-7f9c-x2");
        let (_, text) = status(&["--addr", &url]).await;
        assert!(text.contains("replica control-plane-7f9c-x2"), "{text}");
    })
    .await;
}

#[tokio::test]
async fn a_broken_static_file_fails_the_start_with_its_cause_said_once() {
    bounded(LIMIT, async {
        let dir = std::env::temp_dir().join(format!("cp-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("services.yaml");
        std::fs::write(&file, "services:\n  - name: greeter\n    port: eighty\n").expect("write");
        let mut server = serve("broken-file", &["--static-file", file.to_str().unwrap()]);
        let line = server
            .wait_for_log("serve failed", Duration::from_secs(20))
            .await;
        let error = line["error"].as_str().unwrap_or_default();
        assert!(error.starts_with("invalid static file"), "{line}");
        assert!(error.contains("line 3"), "{line}");
        assert_eq!(
            error.matches("invalid type").count(),
            1,
            "cause repeated: {error}"
        );
        assert_eq!(
            server.wait_exit(Duration::from_secs(20)).await.code(),
            Some(1)
        );
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await;
}
