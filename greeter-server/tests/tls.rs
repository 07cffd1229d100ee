//! The greeter-server over TLS and mutual TLS: a client without a
//! certificate is refused, certificates rotate without dropping open
//! connections, and garbage or plaintext on the TLS port closes only that
//! connection.

use std::net::SocketAddr;
use std::time::Duration;

use common::tls::client::Connector;
use common::tls::{ClientTls, ClientTlsFiles, PeerIdentity, SanMatcher, ServerVerification};
use proto::greet::HelloRequest;
use proto::greet::greeter_client::GreeterClient;
use tests::certs::{Ca, Leaf, TlsDir};
use tests::{Process, bounded};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint};

const BIN: &str = env!("CARGO_BIN_EXE_greeter-server");
const SERVER_SAN: &str = "greeter.test";

struct Setup {
    dir: TlsDir,
    ca: Ca,
}

impl Setup {
    /// A CA, a server identity (`server.crt`/`.key`, serial 1) and a client
    /// identity (`client.crt`/`.key`).
    fn new() -> Self {
        let dir = TlsDir::new();
        let ca = Ca::new("test CA");
        dir.write("ca.crt", &ca.pem());
        dir.write_identity(
            "server",
            &ca.issue(&Leaf::new(&[SERVER_SAN, "127.0.0.1"], 1)),
        );
        dir.write_identity(
            "client",
            &ca.issue(&Leaf::new(&["spiffe://cluster.local/ns/test/sa/client"], 2)),
        );
        Self { dir, ca }
    }

    fn spawn(&self, name: &str, mutual: bool) -> Process {
        let cert = self.dir.arg("server.crt");
        let key = self.dir.arg("server.key");
        let ca = self.dir.arg("ca.crt");
        let mut args = vec![
            "--listen",
            "127.0.0.1:0",
            "--name",
            name,
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ];
        if mutual {
            args.extend(["--tls-client-ca", &ca]);
        }
        Process::spawn(name, BIN, &args)
    }

    fn client_tls(&self, with_identity: bool) -> ClientTls {
        ClientTls::load(&ClientTlsFiles {
            ca: self.dir.path("ca.crt"),
            cert: with_identity.then(|| self.dir.path("client.crt")),
            key: with_identity.then(|| self.dir.path("client.key")),
        })
        .expect("client TLS files")
    }
}

fn verification() -> ServerVerification {
    ServerVerification::SanMatchers(vec![SanMatcher::Exact(SERVER_SAN.to_owned())])
}

async fn tls_channel(
    addr: SocketAddr,
    tls: &ClientTls,
) -> Result<Channel, tonic::transport::Error> {
    Endpoint::from_shared(format!("http://{addr}"))
        .expect("URI")
        .connect_timeout(Duration::from_secs(5))
        .connect_with_connector(Connector::new(Some((tls.clone(), verification()))))
        .await
}

async fn hello(channel: Channel) -> Result<String, tonic::Status> {
    let reply = GreeterClient::new(channel)
        .say_hello(HelloRequest {
            name: "tls".into(),
            delay_ms: 0,
        })
        .await?;
    Ok(reply.into_inner().served_by)
}

/// The serial of the certificate the server presents to a new connection.
async fn presented_serial(addr: SocketAddr, tls: &ClientTls) -> String {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let stream = tls
        .handshake(tcp, &verification())
        .await
        .expect("handshake");
    let cert = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .expect("server certificate")
        .clone();
    PeerIdentity::from_certificate(&cert)
        .expect("parsable certificate")
        .serial
}

#[tokio::test]
async fn serves_tls_and_with_mutual_tls_refuses_a_client_without_a_certificate() {
    bounded(Duration::from_secs(60), async {
        let setup = Setup::new();
        let mut plain_tls = setup.spawn("tls-only", false);
        let addr = plain_tls.wait_listening().await;
        let channel = tls_channel(addr, &setup.client_tls(false))
            .await
            .expect("TLS connect");
        assert_eq!(hello(channel).await.expect("SayHello over TLS"), "tls-only");

        let mut mutual = setup.spawn("mtls", true);
        let addr = mutual.wait_listening().await;
        let channel = tls_channel(addr, &setup.client_tls(true))
            .await
            .expect("mTLS connect");
        assert_eq!(hello(channel).await.expect("SayHello over mTLS"), "mtls");

        // Without a certificate: refused, whether the failure shows in the
        // handshake or on the first call (TLS 1.3 sends the alert after the
        // client has finished its part).
        let connector = Connector::new(Some((setup.client_tls(false), verification())));
        let note = connector.note();
        let refused = match Endpoint::from_shared(format!("http://{addr}"))
            .expect("URI")
            .connect_timeout(Duration::from_secs(5))
            .connect_with_connector(connector)
            .await
        {
            Err(error) => format!("{error:?}"),
            Ok(channel) => format!(
                "{:?}",
                hello(channel)
                    .await
                    .expect_err("a client without a certificate got an answer")
            ),
        };
        let failure = note
            .get()
            .unwrap_or_else(|| panic!("the refusal was not recognised: {refused}"))
            .to_string();
        assert!(
            failure.contains("requires a client certificate"),
            "{failure}"
        );
        let log = mutual
            .wait_for_log(
                "TLS handshake failed; connection closed",
                Duration::from_secs(10),
            )
            .await;
        assert!(log.to_string().contains("certificate"), "{log}");
        plain_tls.kill().await;
        mutual.kill().await;
    })
    .await;
}

#[tokio::test]
async fn new_connections_present_a_rotated_certificate_while_open_ones_keep_working() {
    bounded(Duration::from_secs(60), async {
        let setup = Setup::new();
        let mut server = setup.spawn("rotating", true);
        let addr = server.wait_listening().await;
        let client = setup.client_tls(true);
        let open = tls_channel(addr, &client).await.expect("connect");
        assert_eq!(hello(open.clone()).await.expect("first call"), "rotating");
        let first = presented_serial(addr, &client).await;

        // A broken file is refused and the last good certificate kept.
        let broken = tests::certs::Issued {
            cert_pem: "not a certificate".into(),
            ..setup.ca.issue(&Leaf::new(&[SERVER_SAN], 3))
        };
        setup.dir.write_identity("server", &broken);
        server
            .wait_for_log(
                "TLS files changed but cannot be used; keeping the last good ones",
                Duration::from_secs(10),
            )
            .await;
        assert_eq!(presented_serial(addr, &client).await, first);

        let rotated = setup.ca.issue(&Leaf::new(&[SERVER_SAN, "127.0.0.1"], 42));
        setup.dir.write_identity("server", &rotated);
        server
            .wait_for_log(
                "TLS files changed: new connections use them",
                Duration::from_secs(10),
            )
            .await;
        assert_ne!(first, rotated.serial_hex);
        assert_eq!(presented_serial(addr, &client).await, rotated.serial_hex);
        // The connection opened before the swap still works.
        assert_eq!(
            hello(open).await.expect("call on the old connection"),
            "rotating"
        );
        server.kill().await;
    })
    .await;
}

/// Sends `bytes` on a new TCP connection and waits for the server to close
/// it; returns what the server sent first.
async fn closed_after(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(bytes).await.expect("write");
    let mut received = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tcp.read(&mut buf).await {
            Ok(0) | Err(_) => return received,
            Ok(n) => received.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn garbage_and_a_plaintext_preface_close_only_their_own_connection() {
    bounded(Duration::from_secs(60), async {
        let setup = Setup::new();
        let mut server = setup.spawn("sturdy", true);
        let addr = server.wait_listening().await;
        let client = setup.client_tls(true);
        let open = tls_channel(addr, &client).await.expect("connect");
        assert_eq!(hello(open.clone()).await.expect("call"), "sturdy");

        // A connection that sends nothing does not hold up the others.
        let _idle = TcpStream::connect(addr).await.expect("idle connection");
        closed_after(addr, b"\x00\x01garbage that is not TLS\r\n\r\n").await;
        let answer = closed_after(addr, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
        // rustls answers a non-TLS record with an alert record, then closes.
        assert!(answer.is_empty() || answer[0] == 21, "{answer:?}");

        assert_eq!(
            hello(open).await.expect("the open connection works"),
            "sturdy"
        );
        let fresh = tls_channel(addr, &client).await.expect("a new connection");
        assert_eq!(hello(fresh).await.expect("new connection call"), "sturdy");
        server.kill().await;
    })
    .await;
}

#[tokio::test]
async fn the_plaintext_health_port_serves_only_health_next_to_a_tls_port() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;

    bounded(Duration::from_secs(60), async {
        let setup = Setup::new();
        let (cert, key) = (setup.dir.arg("server.crt"), setup.dir.arg("server.key"));
        let mut server = Process::spawn(
            "health-port",
            BIN,
            &[
                "--listen",
                "127.0.0.1:0",
                "--name",
                "health-port",
                "--tls-cert",
                &cert,
                "--tls-key",
                &key,
                "--health-listen",
                "127.0.0.1:0",
            ],
        );
        let line = server
            .wait_for_log(
                "health listening (plaintext, grpc.health.v1 only)",
                Duration::from_secs(30),
            )
            .await;
        let health_addr: SocketAddr = line["addr"].as_str().expect("addr").parse().expect("addr");
        server.wait_listening().await;
        let channel = tests::channel(health_addr).await;
        let status = HealthClient::new(channel.clone())
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .expect("plaintext health check")
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32);
        let greeting = hello(channel).await.expect_err("only health on this port");
        assert_eq!(greeting.code(), tonic::Code::Unimplemented, "{greeting:?}");
        server.kill().await;
    })
    .await;
}
