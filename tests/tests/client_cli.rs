//! The greeter-client CLI against the real control plane and three real
//! greeter-servers: calls spread evenly, and the JSON summary says so.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tests::control_plane::static_source;
use tests::{Process, bin_path, bounded};

const LIMIT: Duration = Duration::from_secs(90);

#[tokio::test]
async fn greeter_client_json_reports_an_even_spread_through_the_control_plane() {
    bounded(LIMIT, async {
        let mut backends = Vec::new();
        let mut addrs = Vec::new();
        for name in ["alpha", "beta", "gamma"] {
            let mut server = Process::spawn(
                name,
                "greeter-server",
                &["--listen", "127.0.0.1:0", "--name", name],
            );
            addrs.push(server.wait_listening().await.to_string());
            backends.push(server);
        }
        let spec = format!("greeter={}", addrs.join(","));
        let (_control_plane, cp_addr) = static_source(&["--static", &spec]).await;

        let output = tokio::process::Command::new(bin_path("greeter-client"))
            .args([
                "--control-plane",
                &format!("http://{cp_addr}"),
                "--target",
                "greeter",
                "-n",
                "300",
                "--json",
            ])
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .expect("run greeter-client");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "greeter-client failed ({}):\n{stdout}\n{stderr}",
            output.status
        );
        let summary: Value = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|error| panic!("stdout is not one JSON object ({error}):\n{stdout}"));
        assert_eq!(summary["ok"], 300, "{summary}");
        assert_eq!(summary["failed"], 0, "{summary}");
        let by_backend: BTreeMap<String, u64> =
            serde_json::from_value(summary["by_backend"].clone()).expect("by_backend map");
        let expected: BTreeMap<String, u64> = ["alpha", "beta", "gamma"]
            .into_iter()
            .map(|name| (name.to_owned(), 100))
            .collect();
        assert_eq!(by_backend, expected, "{summary}");
    })
    .await;
}
