//! The last step, `--call`, a healthy service, the table, and errors that
//! stop the diagnosis before it starts.

use tests::bounded;
use tests::greeters::backends;

use crate::support::{LIMIT, control_plane, diagnose, run, service};

#[tokio::test]
async fn unimplemented_method() {
    bounded(LIMIT, async {
        let servers = backends(&["a"]).await;
        let cp = control_plane(vec![service("greeter", &[servers[0].addr])], false).await;
        diagnose(
            &cp.uri,
            "greeter:80",
            &["--call", "/greet.Greeter/SayGoodbye"],
        )
        .await
        .assert_cause("method_unimplemented", &["UNIMPLEMENTED"]);
    })
    .await;
}

#[tokio::test]
async fn healthy_service() {
    bounded(LIMIT, async {
        let servers = backends(&["a", "b"]).await;
        let addrs = [servers[0].addr, servers[1].addr];
        // Probed, as a Kubernetes gRPC readiness probe would.
        let cp = control_plane(vec![service("greeter", &addrs)], true).await;
        cp.wait_logged("endpoint ready", addrs.len()).await;
        let args = [
            "--health-service",
            "greet.Greeter",
            "--call",
            "/greet.Greeter/SayHello",
        ];
        let run_json = diagnose(&cp.uri, "greeter:grpc", &args).await;
        let json = run_json.json();
        assert_eq!(json["verdict"], "healthy", "{json:#}");
        assert_eq!(json["healthy"], true, "{json:#}");
        assert_eq!(run_json.code, Some(0), "{json:#}");
        assert_eq!(json["counts"]["ready"], 2, "{json:#}");
        let results: Vec<&str> = json["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .map(|c| c["result"].as_str().unwrap_or_default())
            .collect();
        assert!(results.iter().all(|r| *r == "ok"), "{json:#}");
        let steps: Vec<&str> = json["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .map(|c| c["step"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(
            steps,
            [
                "control plane",
                "service",
                "port",
                "endpoints",
                "endpoint",
                "endpoint",
                "call"
            ]
        );

        // The table says the same.
        let text = run(&[
            "diagnose",
            "greeter:grpc",
            "--control-plane",
            &cp.uri,
            "--call",
            "/greet.Greeter/SayHello",
        ])
        .await;
        assert_eq!(text.code, Some(0), "{}\n{}", text.stdout, text.log);
        assert!(
            text.stdout
                .contains("verdict: healthy: greeter:grpc takes calls"),
            "{}",
            text.stdout
        );
        assert!(text.stdout.contains("STEP"), "{}", text.stdout);
    })
    .await;
}

#[tokio::test]
async fn errors_before_the_walk_are_one_line_and_exit_3() {
    bounded(LIMIT, async {
        // No control plane given anywhere.
        let none = run(&["diagnose", "greeter:80"]).await;
        assert_eq!(none.code, Some(3), "{}", none.log);
        assert!(
            none.log.starts_with("error: no control plane"),
            "{}",
            none.log
        );
        assert_eq!(none.log.lines().count(), 1, "{}", none.log);
        assert!(none.stdout.is_empty());
        // A malformed target.
        let bad = run(&["diagnose", "ftp://greeter", "--control-plane", "cp:18000"]).await;
        assert_eq!(bad.code, Some(3), "{}", bad.log);
        assert!(bad.log.starts_with("error: "), "{}", bad.log);
        // A bad command line is clap's (exit 2).
        let usage = run(&["diagnose"]).await;
        assert_eq!(usage.code, Some(2), "{}", usage.log);
    })
    .await;
}
