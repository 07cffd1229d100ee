//! The endpoint steps: none ready, and ready endpoints that cannot take
//! gRPC calls (HTTP/1.1 only, Kestrel's HTTP_1_1_REQUIRED, TLS only,
//! NOT_SERVING).

use std::time::Duration;

use nix::sys::signal::Signal;
use tests::Process;
use tests::bounded;
use tests::certs::{Ca, Leaf, TlsDir};
use tests::greeters::backends;

use crate::support::{
    LIMIT, control_plane, diagnose, http1_server, kestrel_http1_and_http2, service,
};

#[tokio::test]
async fn no_ready_endpoints_says_why() {
    bounded(LIMIT, async {
        let mut servers = backends(&["a"]).await;
        servers[0].process.signal(Signal::SIGUSR1);
        servers[0]
            .process
            .wait_for_log(
                "SIGUSR1: health is now NOT_SERVING",
                Duration::from_secs(10),
            )
            .await;
        // Probed: the control plane serves the endpoint not ready.
        let cp = control_plane(vec![service("greeter", &[servers[0].addr])], true).await;
        cp.wait_logged("endpoint not ready", 1).await;
        let json = diagnose(&cp.uri, "greeter:80", &[]).await.assert_cause(
            "no_ready_endpoints",
            &[
                "0 ready, 1 not ready, 0 draining",
                "health probe: NOT_SERVING",
            ],
        );
        assert_eq!(json["counts"]["not_ready"], 1, "{json:#}");
        // The endpoint is still looked at, to explain, without failing twice.
        let endpoint = &json["endpoints"][0];
        assert_eq!(endpoint["state"], "not_ready", "{json:#}");
        assert_eq!(endpoint["health"][""], "NOT_SERVING", "{json:#}");
        assert_eq!(endpoint["result"], "info", "{json:#}");
    })
    .await;
}

#[tokio::test]
async fn http1_only_endpoint() {
    bounded(LIMIT, async {
        let web = http1_server().await;
        let cp = control_plane(vec![service("web", &[web.addr])], false).await;
        let json = diagnose(&cp.uri, "web:80", &[]).await.assert_cause(
            "endpoint_http1_only",
            &[&web.addr.to_string(), "HTTP/1.x response"],
        );
        assert_eq!(json["endpoints"][0]["protocol"], "http1", "{json:#}");
    })
    .await;
}

#[tokio::test]
async fn kestrel_http_1_1_required_endpoint() {
    bounded(LIMIT, async {
        let kestrel = kestrel_http1_and_http2().await;
        let cp = control_plane(vec![service("orders", &[kestrel.addr])], false).await;
        let json = diagnose(&cp.uri, "orders:80", &[]).await.assert_cause(
            "endpoint_http_1_1_required",
            &["HTTP_1_1_REQUIRED", "Kestrel"],
        );
        assert!(
            json["fix"]
                .as_str()
                .unwrap_or_default()
                .contains("Protocols = Http2"),
            "{json:#}"
        );
    })
    .await;
}

#[tokio::test]
async fn tls_only_endpoint_of_a_plaintext_service() {
    bounded(LIMIT, async {
        let dir = TlsDir::new();
        let ca = Ca::new("diagnose-ca");
        dir.write_identity("server", &ca.issue(&Leaf::new(&["127.0.0.1"], 7)));
        let mut server = Process::spawn(
            "tls-greeter",
            "greeter-server",
            &[
                "--listen",
                "127.0.0.1:0",
                "--name",
                "tls",
                "--tls-cert",
                &dir.arg("server.crt"),
                "--tls-key",
                &dir.arg("server.key"),
            ],
        );
        let addr = server.wait_listening().await;
        let cp = control_plane(vec![service("secure", &[addr])], false).await;
        let json = diagnose(&cp.uri, "secure:80", &[])
            .await
            .assert_cause("endpoint_tls_only", &["speaks TLS"]);
        assert_eq!(json["endpoints"][0]["protocol"], "tls", "{json:#}");
    })
    .await;
}

#[tokio::test]
async fn not_serving_endpoint() {
    bounded(LIMIT, async {
        let mut servers = backends(&["a", "b"]).await;
        servers[1].process.signal(Signal::SIGUSR1);
        servers[1]
            .process
            .wait_for_log(
                "SIGUSR1: health is now NOT_SERVING",
                Duration::from_secs(10),
            )
            .await;
        let addrs = [servers[0].addr, servers[1].addr];
        // Not probed: both are ready as far as the control plane knows.
        let cp = control_plane(vec![service("greeter", &addrs)], false).await;
        let json = diagnose(
            &cp.uri,
            "greeter:80",
            &["--health-service", "greet.Greeter"],
        )
        .await
        .assert_cause(
            "endpoint_not_serving",
            &[&addrs[1].to_string(), "health \"\": NOT_SERVING"],
        );
        let endpoints = json["endpoints"].as_array().expect("endpoints");
        let healthy = endpoints
            .iter()
            .find(|e| e["address"] == addrs[0].to_string())
            .expect("a");
        assert_eq!(healthy["health"]["greet.Greeter"], "SERVING", "{json:#}");
        assert_eq!(healthy["result"], "ok", "{json:#}");
    })
    .await;
}
