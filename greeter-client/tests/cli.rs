//! The `greeter-client` binary against greeter-server processes and the
//! scripted control plane.

use std::time::Duration;

use serde_json::{Value, json};
use tests::fake_xds::{FakeXds, Health};
use tests::greeters::{backends, healthy_greeters};
use tests::{Process, bounded};
use tokio::io::AsyncReadExt;

const LIMIT: Duration = Duration::from_secs(60);
const BIN: &str = "greeter-client";

/// Runs the CLI to the end; returns its exit code and its standard output.
async fn run(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, Process) {
    let mut process = Process::spawn_with_env(BIN, BIN, args, env);
    let mut stdout = process.take_stdout();
    let mut output = String::new();
    stdout
        .read_to_string(&mut output)
        .await
        .expect("read stdout");
    let status = process.wait_exit(Duration::from_secs(30)).await;
    (status.code(), output, process)
}

fn parse(output: &str) -> Value {
    let last = output.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("not one JSON object ({e}): {output:?}"))
}

#[tokio::test]
async fn json_summary_shows_an_even_spread() {
    bounded(LIMIT, async {
        let (_servers, fake) = healthy_greeters(&["a", "b", "c"]).await;
        let uri = fake.uri();
        for concurrency in ["1", "4"] {
            let (code, output, process) = run(
                &[
                    "--control-plane",
                    &uri,
                    "--target",
                    "xds:///greeter",
                    "-n",
                    "300",
                    "--concurrency",
                    concurrency,
                    "--json",
                ],
                &[],
            )
            .await;
            assert_eq!(code, Some(0), "{output}\n{}", process.log_text());
            assert_eq!(
                output.lines().count(),
                1,
                "exactly one line on stdout: {output:?}"
            );
            let summary = parse(&output);
            assert_eq!(summary["ok"], 300, "{summary}");
            assert_eq!(summary["failed"], 0, "{summary}");
            assert_eq!(
                summary["by_backend"],
                json!({"a": 100, "b": 100, "c": 100}),
                "{summary}"
            );
            assert_eq!(summary["failed_by_code"], json!({}));
            for figure in ["p50", "p99", "max"] {
                assert!(
                    summary["latency_ms"][figure]
                        .as_f64()
                        .is_some_and(|v| v > 0.0),
                    "{summary}"
                );
            }
        }
    })
    .await;
}

#[tokio::test]
async fn text_summary_and_environment_settings() {
    bounded(LIMIT, async {
        let (_servers, fake) = healthy_greeters(&["a", "b"]).await;
        // The control plane and node from a gRPC bootstrap, the rest from
        // the environment.
        let bootstrap = json!({
            "xds_servers": [{
                "server_uri": fake.addr().to_string(),
                "channel_creds": [{"type": "insecure"}],
                "server_features": ["xds_v3"],
            }],
            "node": {"id": "node-from-bootstrap"},
        })
        .to_string();
        let (code, output, _) = run(
            &[],
            &[
                ("GRPC_XDS_BOOTSTRAP_CONFIG", &bootstrap),
                ("TARGET", "greeter"),
                ("GREETER_CALLS", "10"),
            ],
        )
        .await;
        let first = fake
            .wait_for_request(Duration::from_secs(1), |r| r.request.node.is_some())
            .await;
        assert_eq!(
            first.request.node.map(|n| n.id).as_deref(),
            Some("node-from-bootstrap")
        );
        assert_eq!(code, Some(0), "{output}");
        assert!(output.starts_with("10 calls to greeter in "), "{output}");
        assert!(output.contains(": 10 ok, 0 failed"), "{output}");
        assert!(output.contains("by backend:\n  a         5"), "{output}");
        assert!(output.contains("latency: p50 "), "{output}");
    })
    .await;
}

#[tokio::test]
async fn failures_are_counted_by_code_and_make_the_exit_code() {
    bounded(LIMIT, async {
        let fake = FakeXds::start().await;
        let uri = fake.uri();
        let (code, output, _) = run(
            &[
                "--control-plane",
                &uri,
                "--target",
                "nosuch",
                "-n",
                "5",
                "--json",
            ],
            &[],
        )
        .await;
        assert_eq!(code, Some(1), "{output}");
        let summary = parse(&output);
        assert_eq!(summary["ok"], 0);
        assert_eq!(summary["failed"], 5);
        assert_eq!(summary["failed_by_code"], json!({"UNAVAILABLE": 5}));
        let errors = summary["errors"].as_object().expect("errors");
        assert_eq!(errors.len(), 1, "{summary}");
        let (message, count) = errors.iter().next().expect("one message");
        assert!(message.contains("\"nosuch\" does not exist"), "{message}");
        assert_eq!(count, 5);
    })
    .await;
}

#[tokio::test]
async fn setup_errors_exit_with_3() {
    bounded(LIMIT, async {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let uri = format!("http://{}", closed.local_addr().expect("addr"));
        drop(closed);
        let (code, output, process) =
            run(&["--control-plane", &uri, "--target", "greeter"], &[]).await;
        assert_eq!(code, Some(3), "{output}");
        assert!(output.is_empty());
        assert!(
            process
                .log_text()
                .contains("cannot reach the control plane"),
            "{}",
            process.log_text()
        );

        let (code, _, process) =
            run(&["--control-plane", &uri, "--target", "ftp://greeter"], &[]).await;
        assert_eq!(code, Some(3));
        assert!(
            process.log_text().contains("scheme"),
            "{}",
            process.log_text()
        );

        // A backend's port given as the control plane: named, at once, as
        // one record in JSON logs...
        let servers = backends(&["a"]).await;
        let backend = format!("http://{}", servers[0].addr);
        let (code, output, process) =
            run(&["--control-plane", &backend, "--target", "greeter"], &[]).await;
        assert_eq!(code, Some(3), "{output}");
        let records = process.recent_logs(100);
        assert!(
            records
                .iter()
                .any(|line| line["message"] == "cannot set up the channel"
                    && line["level"] == "ERROR"
                    && line["error"]
                        .as_str()
                        .is_some_and(|e| e.starts_with("the server at ")
                            && e.contains("does not implement xDS ADS"))),
            "{}",
            process.log_text()
        );

        // ... and as one `error:` line in text logs.
        let output = tokio::process::Command::new(tests::bin_path(BIN))
            .args(["--control-plane", &backend, "--target", "greeter"])
            .env_remove("RUST_LOG")
            .env_remove("LOG_FORMAT")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(30), output)
            .await
            .expect("finished")
            .expect("ran");
        assert_eq!(output.status.code(), Some(3));
        let stderr = String::from_utf8_lossy(&output.stderr);
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "{stderr}");
        assert!(!stderr.contains(" ERROR "), "no tracing record: {stderr}");
        assert!(
            errors[0].starts_with("error: the server at ")
                && errors[0].contains("does not implement xDS ADS"),
            "{stderr}"
        );
    })
    .await;
}

#[tokio::test]
async fn duration_and_rate_bound_the_calls() {
    bounded(LIMIT, async {
        let servers = backends(&["a"]).await;
        let fake = FakeXds::start().await;
        fake.set_endpoints("greeter", &[(servers[0].addr, Health::Healthy, "a")]);
        let uri = fake.uri();
        let (code, output, process) = run(
            &[
                "--control-plane",
                &uri,
                "--target",
                "greeter",
                "--duration",
                "1s",
                "--rate",
                "20",
                "--concurrency",
                "2",
                "--progress",
                "400ms",
                "--json",
            ],
            &[],
        )
        .await;
        assert_eq!(code, Some(0), "{output}");
        let summary = parse(&output);
        let calls = summary["calls"].as_u64().expect("calls");
        // Call k starts at k/20 s, and none starts after 1 s.
        assert!((1..=20).contains(&calls), "{summary}");
        assert_eq!(summary["by_backend"]["a"], calls);
        // --progress: a line per 400 ms interval, each counting its calls.
        let progress: Vec<Value> = process
            .recent_logs(1000)
            .into_iter()
            .filter(|line| line["message"] == "progress")
            .collect();
        assert!(progress.len() >= 2, "{}", process.log_text());
        let counted: u64 = progress.iter().map(|l| l["calls"].as_u64().unwrap()).sum();
        assert!(counted > 0 && counted <= calls, "{progress:?}");
        assert!(progress.iter().all(|l| l["failed"] == 0), "{progress:?}");
    })
    .await;
}
