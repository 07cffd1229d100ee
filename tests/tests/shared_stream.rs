//! One xDS client per process: channels to several services share one ADS
//! stream, as the control plane's status shows, and a dropped channel takes
//! its names off that stream while the others keep calling.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use proto::controlplane::v1::ListClientsRequest;
use proto::controlplane::v1::control_plane_status_client::ControlPlaneStatusClient;
use proto::greet::HelloRequest;
use proto::greet::greeter_client::GreeterClient;
use serde_json::Value;
use tests::greeters::{Backend, backends};
use tests::{Process, bin_path, bounded, channel};
use xds_balancer::{Builder, Channel};

const LIMIT: Duration = Duration::from_secs(90);
const SERVICES: [&str; 3] = ["alpha", "beta", "gamma"];

/// Three greeter-servers, each the one endpoint of its own service, and a
/// control plane serving them.
async fn start() -> (Vec<Backend>, Process, SocketAddr) {
    let servers = backends(&SERVICES).await;
    let mut args = vec![
        "serve".to_owned(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--source".into(),
        "static".into(),
    ];
    for server in &servers {
        args.push("--static".into());
        args.push(format!("{}={}", server.name, server.addr));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut control_plane = Process::spawn("control-plane", "control-plane", &args);
    let addr = control_plane.wait_listening().await;
    (servers, control_plane, addr)
}

/// The Listener names of every client of the control plane.
async fn listener_names(addr: SocketAddr) -> Vec<Vec<String>> {
    let mut status = ControlPlaneStatusClient::new(channel(addr).await);
    let clients = status
        .list_clients(ListClientsRequest::default())
        .await
        .expect("list clients")
        .into_inner()
        .clients;
    clients
        .iter()
        .map(|client| {
            client
                .types
                .iter()
                .filter(|t| t.type_url == xds_type_urls::LISTENER)
                .flat_map(|t| t.names.clone())
                .collect()
        })
        .collect()
}

/// Waits until the control plane's clients have exactly `want` Listener
/// subscriptions; fails after `limit`.
async fn wait_names(addr: SocketAddr, want: &[Vec<&str>], limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let names = listener_names(addr).await;
        if names == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "clients' Listener names: {names:?}, expected {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `control-plane status --json`, parsed.
async fn status_json(addr: SocketAddr) -> Value {
    let output = tokio::process::Command::new(bin_path("control-plane"))
        .args(["status", "--addr", &format!("http://{addr}"), "--json"])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("run control-plane status");
    assert!(output.status.success(), "status failed: {output:?}");
    serde_json::from_slice(&output.stdout).expect("one JSON object")
}

async fn say_hello(channel: &Channel) -> Result<String, tonic::Status> {
    let mut request = tonic::Request::new(HelloRequest {
        name: "shared".into(),
        delay_ms: 0,
    });
    request.set_timeout(Duration::from_secs(5));
    GreeterClient::new(channel.clone())
        .say_hello(request)
        .await
        .map(|reply| reply.into_inner().served_by)
}

#[tokio::test]
async fn channels_in_one_process_share_one_stream() {
    bounded(LIMIT, async {
        let (_servers, _control_plane, addr) = start().await;
        let uri = format!("http://{addr}");
        let mut channels = Vec::new();
        for service in SERVICES {
            let channel = Builder::new(service)
                .control_plane(uri.clone())
                .connect()
                .await
                .expect("channel");
            channels.push(channel);
        }
        for (channel, service) in channels.iter().zip(SERVICES) {
            assert_eq!(say_hello(channel).await.expect("call"), service);
        }
        wait_names(
            addr,
            &[vec!["alpha", "beta", "gamma"]],
            Duration::from_secs(5),
        )
        .await;
        let report = status_json(addr).await;
        let clients = report["clients"].as_array().expect("clients");
        assert_eq!(clients.len(), 1, "one stream: {report}");
        let lds = clients[0]["types"]
            .as_array()
            .expect("types")
            .iter()
            .find(|t| t["type"] == "LDS")
            .expect("an LDS subscription");
        assert_eq!(lds["names"], serde_json::json!(["alpha", "beta", "gamma"]));
        assert!(
            clients[0]["user_agent"]
                .as_str()
                .is_some_and(|agent| agent.starts_with(xds_balancer::USER_AGENT_NAME)),
            "{report}"
        );

        // Calls go on to alpha and beta while gamma's channel goes away.
        let gamma = channels.pop().expect("gamma");
        let load = tokio::spawn(async move {
            let mut failures = Vec::new();
            for _ in 0..200 {
                for channel in &channels {
                    if let Err(status) = say_hello(channel).await {
                        failures.push(status);
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            failures
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(gamma);
        wait_names(addr, &[vec!["alpha", "beta"]], Duration::from_secs(1)).await;
        let failures = load.await.expect("load");
        assert!(failures.is_empty(), "failed calls: {failures:?}");
    })
    .await;
}

#[tokio::test]
async fn the_cli_spreads_its_calls_over_several_targets_on_one_stream() {
    bounded(LIMIT, async {
        let (_servers, _control_plane, addr) = start().await;
        let mut cli = tokio::process::Command::new(bin_path("greeter-client"))
            .args(["--control-plane", &format!("http://{addr}")])
            .args(["--target", "alpha", "--target", "beta", "--target", "gamma"])
            .args(["-n", "300", "--rate", "100", "--json"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start greeter-client");
        // While it runs: one client, with the three Listeners.
        wait_names(
            addr,
            &[vec!["alpha", "beta", "gamma"]],
            Duration::from_secs(10),
        )
        .await;
        let output = tokio::time::timeout(Duration::from_secs(30), async {
            cli.wait().await.expect("wait");
            let mut stdout = String::new();
            tokio::io::AsyncReadExt::read_to_string(
                cli.stdout.as_mut().expect("stdout"),
                &mut stdout,
            )
            .await
            .expect("read stdout");
            stdout
        })
        .await
        .expect("greeter-client finished");
        let summary: Value = serde_json::from_str(output.trim())
            .unwrap_or_else(|error| panic!("not one JSON object ({error}): {output}"));
        assert_eq!(summary["failed"], 0, "{summary}");
        let by_backend: BTreeMap<String, u64> =
            serde_json::from_value(summary["by_backend"].clone()).expect("by_backend");
        let expected: BTreeMap<String, u64> =
            SERVICES.iter().map(|s| ((*s).to_owned(), 100)).collect();
        assert_eq!(by_backend, expected, "{summary}");
    })
    .await;
}
