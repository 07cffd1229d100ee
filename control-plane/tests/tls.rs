//! The real `control-plane` binary with TLS: mutual TLS on its port, the
//! client-SAN allow-list, the stream limits, and `status` over https with
//! the scheme checked against the credentials and the server.

use std::net::SocketAddr;
use std::process::ExitStatus;
use std::time::Duration;

use common::tls::client::{Connector, Note};
use common::tls::{ClientTls, ClientTlsFiles, ServerVerification};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use serde_json::{Value, json};
use tests::ads::AdsStream;
use tests::certs::{Ca, Leaf, TlsDir};
use tests::static_file::StaticFile;
use tests::{Process, bounded};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

const BIN: &str = env!("CARGO_BIN_EXE_control-plane");
const LIMIT: Duration = Duration::from_secs(90);
const GREETER_CLUSTER: &str = "greeter.default.svc.cluster.local:80";
const TEAM_A: &str = "spiffe://cluster.local/ns/team-a/sa/client";
const TEAM_A_OTHER: &str = "spiffe://cluster.local/ns/team-a/sa/other";
const TEAM_B: &str = "spiffe://cluster.local/ns/team-b/sa/intruder";

/// A CA and the identities the tests use: `server` (127.0.0.1), `team-a`,
/// `team-a-other` and `team-b`.
struct Pki {
    dir: TlsDir,
}

impl Pki {
    fn new() -> Self {
        let dir = TlsDir::new();
        let ca = Ca::new("control plane test CA");
        dir.write("ca.crt", &ca.pem());
        dir.write_identity("server", &ca.issue(&Leaf::new(&["127.0.0.1"], 1)));
        dir.write_identity("team-a", &ca.issue(&Leaf::new(&[TEAM_A], 2)));
        dir.write_identity("team-a-other", &ca.issue(&Leaf::new(&[TEAM_A_OTHER], 3)));
        dir.write_identity("team-b", &ca.issue(&Leaf::new(&[TEAM_B], 4)));
        Self { dir }
    }

    fn serve(&self, name: &str, extra: &[&str]) -> Process {
        let (cert, key, ca) = (
            self.dir.arg("server.crt"),
            self.dir.arg("server.key"),
            self.dir.arg("ca.crt"),
        );
        let mut args = vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--source",
            "static",
            "--no-probe",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--tls-client-ca",
            &ca,
        ];
        args.extend_from_slice(extra);
        Process::spawn(name, BIN, &args)
    }

    /// A channel presenting `who`'s certificate (none with `None`), and the
    /// note where a TLS failure is recorded.
    async fn channel(
        &self,
        addr: SocketAddr,
        who: Option<&str>,
    ) -> (Result<Channel, tonic::transport::Error>, Note) {
        let tls = ClientTls::load(&ClientTlsFiles {
            ca: self.dir.path("ca.crt"),
            cert: who.map(|who| self.dir.path(&format!("{who}.crt"))),
            key: who.map(|who| self.dir.path(&format!("{who}.key"))),
        })
        .expect("client TLS files");
        let connector = Connector::new(Some((
            tls,
            ServerVerification::Hostname("127.0.0.1".to_owned()),
        )));
        let note = connector.note();
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .expect("URI")
            .connect_timeout(Duration::from_secs(5))
            .connect_with_connector(connector)
            .await;
        (channel, note)
    }

    async fn ads(&self, addr: SocketAddr, who: &str) -> Result<AdsStream, tonic::Status> {
        let (channel, _) = self.channel(addr, Some(who)).await;
        AdsStream::try_open(channel.expect("TLS connect"), who).await
    }

    fn status_args(&self, addr: SocketAddr, who: &str) -> Vec<String> {
        vec![
            "--addr".into(),
            format!("https://{addr}"),
            "--ca".into(),
            self.dir.arg("ca.crt"),
            "--cert".into(),
            self.dir.arg(&format!("{who}.crt")),
            "--key".into(),
            self.dir.arg(&format!("{who}.key")),
        ]
    }
}

/// Runs `control-plane status`: its exit status, standard output, and the
/// `error` of its failure log line (empty on success).
async fn status(args: &[String]) -> (ExitStatus, String, String) {
    let mut all = vec!["status"];
    all.extend(args.iter().map(String::as_str));
    let mut process = Process::spawn("status", BIN, &all);
    let mut stdout = process.take_stdout();
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(20), stdout.read_to_string(&mut text))
        .await
        .expect("status finished writing")
        .expect("stdout readable");
    let exit = process.wait_exit(Duration::from_secs(20)).await;
    let error = if exit.success() {
        String::new()
    } else {
        let line = process
            .wait_for_log("status failed", Duration::from_secs(5))
            .await;
        line["error"].as_str().unwrap_or_default().to_owned()
    };
    (exit, text, error)
}

async fn metrics(addr: SocketAddr) -> String {
    let mut http = TcpStream::connect(addr).await.expect("connect");
    http.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .expect("request");
    let mut response = String::new();
    http.read_to_string(&mut response).await.expect("response");
    response
}

#[tokio::test]
async fn mutual_tls_admits_only_allowed_client_sans_and_status_counts_the_refusals() {
    bounded(LIMIT, async {
        let pki = Pki::new();
        let mut server = pki.serve(
            "mtls",
            &[
                "--static",
                "greeter=127.0.0.1:9",
                "--allow-client-san",
                "spiffe://cluster.local/ns/team-a/*",
                "--metrics-listen",
                "127.0.0.1:0",
            ],
        );
        let line = server
            .wait_for_log("metrics listening", Duration::from_secs(30))
            .await;
        let metrics_addr: SocketAddr = line["addr"].as_str().expect("addr").parse().expect("addr");
        let addr = server.wait_listening().await;

        // Allowed: the stream works.
        let mut allowed = pki.ads(addr, "team-a").await.expect("team-a may subscribe");
        allowed.subscribe::<Listener>(&["greeter"]).await;
        let (_, listeners) = allowed.recv_typed::<Listener>().await;
        assert_eq!(listeners.len(), 1);

        // A certificate from the CA, but outside the allow-list.
        let Err(refused) = pki.ads(addr, "team-b").await else {
            panic!("team-b was admitted");
        };
        assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
        assert!(refused.message().contains(TEAM_B), "{refused:?}");

        // No certificate at all: the handshake is refused, and said so.
        let (channel, note) = pki.channel(addr, None).await;
        if let Ok(channel) = channel {
            assert!(
                AdsStream::try_open(channel, "anonymous").await.is_err(),
                "a client without a certificate was admitted"
            );
        }
        let failure = note.get().expect("the refusal was recognised").to_string();
        assert!(
            failure.contains("requires a client certificate"),
            "{failure}"
        );

        // status over https with an allowed certificate shows the refusal.
        let (exit, json, _) =
            status(&[pki.status_args(addr, "team-a"), vec!["--json".into()]].concat()).await;
        assert!(exit.success(), "{json}");
        let report: Value = serde_json::from_str(&json).expect("JSON");
        assert_eq!(report["info"]["transport"], "mtls", "{report}");
        assert_eq!(
            report["info"]["refusals"]["client_san_not_allowed"], 1,
            "{report}"
        );
        assert!(
            report["info"]["refusals"]["last"]
                .as_str()
                .unwrap_or_default()
                .contains(TEAM_B),
            "{report}"
        );
        let (exit, text, _) = status(&pki.status_args(addr, "team-a")).await;
        assert!(exit.success());
        assert!(text.contains("transport mtls"), "{text}");
        assert!(text.contains("client SAN not allowed 1"), "{text}");

        // The status API is refused to team-b as well.
        let (exit, _, error) = status(&pki.status_args(addr, "team-b")).await;
        assert_eq!(exit.code(), Some(1));
        assert!(error.contains(TEAM_B), "{error}");

        let text = metrics(metrics_addr).await;
        assert!(
            text.contains(r#"control_plane_refused_total{reason="client_san_not_allowed"} 2"#),
            "{text}"
        );
        server.kill().await;
    })
    .await;
}

#[tokio::test]
async fn status_refuses_schemes_that_do_not_fit_the_credentials_or_the_server() {
    bounded(LIMIT, async {
        let pki = Pki::new();
        let mut tls_server = pki.serve("tls-port", &["--static", "greeter=127.0.0.1:9"]);
        let tls_addr = tls_server.wait_listening().await;
        let mut plain_server = Process::spawn(
            "plain-port",
            BIN,
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--source",
                "static",
                "--no-probe",
                "--static",
                "greeter=127.0.0.1:9",
            ],
        );
        let plain_addr = plain_server.wait_listening().await;

        // http:// to a TLS port.
        let (exit, _, error) = status(&["--addr".into(), format!("http://{tls_addr}")]).await;
        assert_eq!(exit.code(), Some(1));
        assert!(error.contains("speaks TLS"), "{error}");
        assert!(error.contains("use https://"), "{error}");

        // https:// without --ca.
        let (exit, _, error) = status(&["--addr".into(), format!("https://{tls_addr}")]).await;
        assert_eq!(exit.code(), Some(1));
        assert!(error.contains("no --ca was given"), "{error}");

        // TLS flags with http://.
        let mut args = pki.status_args(tls_addr, "team-a");
        args[1] = format!("http://{tls_addr}");
        let (exit, _, error) = status(&args).await;
        assert_eq!(exit.code(), Some(1));
        assert!(error.contains("is not https://"), "{error}");

        // https:// to a plaintext port.
        let (exit, _, error) = status(&pki.status_args(plain_addr, "team-a")).await;
        assert_eq!(exit.code(), Some(1));
        assert!(error.contains("does not speak TLS"), "{error}");

        // And the right combination works.
        let (exit, text, _) = status(&pki.status_args(tls_addr, "team-a")).await;
        assert!(exit.success(), "{text}");
        assert!(text.contains("greeter"), "{text}");
        tls_server.kill().await;
        plain_server.kill().await;
    })
    .await;
}

fn greeter_file(endpoints: &[&str]) -> Value {
    json!({"services": [{"name": "greeter", "port": 80, "endpoints": endpoints}]})
}

/// Subscribes to the greeter's assignment and returns its endpoint count.
async fn subscribe_assignment(stream: &mut AdsStream) -> usize {
    stream
        .subscribe::<ClusterLoadAssignment>(&[GREETER_CLUSTER])
        .await;
    next_assignment(stream).await
}

async fn next_assignment(stream: &mut AdsStream) -> usize {
    let (response, assignments) = stream.recv_typed::<ClusterLoadAssignment>().await;
    stream.ack(&response, &[GREETER_CLUSTER]).await;
    assignments[0]
        .endpoints
        .iter()
        .map(|locality| locality.lb_endpoints.len())
        .sum()
}

#[tokio::test]
async fn streams_past_the_per_peer_limit_are_refused_while_the_others_keep_updating() {
    bounded(LIMIT, async {
        let pki = Pki::new();
        let file = StaticFile::new("limits", &greeter_file(&["127.0.0.1:9"]));
        let path = file.path().display().to_string();
        let mut server = pki.serve(
            "limits",
            &["--static-file", &path, "--max-streams-per-peer", "2"],
        );
        let addr = server.wait_listening().await;

        let mut first = pki.ads(addr, "team-a").await.expect("first stream");
        let mut second = pki.ads(addr, "team-a").await.expect("second stream");
        assert_eq!(subscribe_assignment(&mut first).await, 1);
        assert_eq!(subscribe_assignment(&mut second).await, 1);
        let Err(refused) = pki.ads(addr, "team-a").await else {
            panic!("a third stream of team-a was admitted");
        };
        assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
        assert!(
            refused.message().contains("--max-streams-per-peer"),
            "{refused:?}"
        );
        assert!(refused.message().contains(TEAM_A), "{refused:?}");

        let mut other = pki.ads(addr, "team-a-other").await.expect("another client");
        assert_eq!(subscribe_assignment(&mut other).await, 1);

        file.write(&greeter_file(&["127.0.0.1:9", "127.0.0.1:10"]));
        for stream in [&mut first, &mut second, &mut other] {
            assert_eq!(
                next_assignment(stream).await,
                2,
                "every admitted stream is updated"
            );
        }

        let (exit, json, _) =
            status(&[pki.status_args(addr, "team-a"), vec!["--json".into()]].concat()).await;
        assert!(exit.success(), "{json}");
        let report: Value = serde_json::from_str(&json).expect("JSON");
        assert_eq!(
            report["info"]["refusals"]["max_streams_per_peer"], 1,
            "{report}"
        );
        server.kill().await;
    })
    .await;
}
