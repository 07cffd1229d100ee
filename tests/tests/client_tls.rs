//! Our client over TLS to its endpoints, with the settings coming from the
//! control plane's Cluster (gRPC A29) and the certificates from certificate
//! providers: greeter-servers that require client certificates, the real
//! control plane serving them as a TLS service, and handshake failures
//! that name their cause.

use std::net::SocketAddr;
use std::time::Duration;

use proto::greet::HelloRequest;
use proto::greet::greeter_client::GreeterClient;
use serde_json::json;
use tests::certs::{Ca, Leaf, TlsDir, Validity};
use tests::control_plane::static_source;
use tests::static_file::StaticFile;
use tests::{Process, bounded};
use tonic::Code;
use xds_balancer::{Builder, CertificateProvider, Channel};

const LIMIT: Duration = Duration::from_secs(90);
const BACKENDS: [&str; 3] = ["tls-a", "tls-b", "tls-c"];
/// The servers' SAN, as a cert-manager Certificate for the Service has it.
const SERVER_SAN: &str = "greeter.default.svc.cluster.local";

/// Three greeter-servers requiring client certificates from `ca`, with
/// certificates for `SERVER_SAN`; their addresses.
async fn mtls_greeters(dir: &TlsDir, ca: &Ca) -> Vec<(Process, SocketAddr)> {
    greeters_with(dir, ca, Validity::Valid).await
}

/// [`mtls_greeters`] whose certificates have `validity`.
async fn greeters_with(dir: &TlsDir, ca: &Ca, validity: Validity) -> Vec<(Process, SocketAddr)> {
    dir.write("ca.crt", &ca.pem());
    dir.write_identity(
        "server",
        &ca.issue(&Leaf::new(&[SERVER_SAN], 10).validity(validity)),
    );
    tests::greeters::mutual_tls(&BACKENDS, dir).await
}

/// A control plane (static source, no probing: the endpoints are ready and
/// only the client decides) serving `greeter` on `endpoints` as a TLS
/// service with these SAN matchers; `extra` flags on top. Its address has
/// `scheme`.
async fn serve_greeter(
    endpoints: &[SocketAddr],
    sans: &[&str],
    scheme: &str,
    extra: &[&str],
) -> (Process, StaticFile, String) {
    let endpoints: Vec<String> = endpoints.iter().map(ToString::to_string).collect();
    let file = StaticFile::new(
        "client-tls",
        &json!({"services": [{
            "name": "greeter",
            "endpoints": endpoints,
            "tls": {"subject_alt_names": sans},
        }]}),
    );
    let path = file.path().display().to_string();
    let mut args = vec!["--static-file", &path, "--no-probe"];
    args.extend_from_slice(extra);
    let (process, addr) = static_source(&args).await;
    let uri = format!("{scheme}://{addr}");
    (process, file, uri)
}

/// [`serve_greeter`] in plaintext for `greeters`.
async fn control_plane(
    greeters: &[(Process, SocketAddr)],
    sans: &[&str],
) -> (Process, StaticFile, String) {
    let endpoints: Vec<SocketAddr> = greeters.iter().map(|(_, a)| *a).collect();
    serve_greeter(&endpoints, sans, "http", &[]).await
}

/// A channel whose provider instance `default` has `files` of `dir`.
async fn channel(uri: &str, dir: &TlsDir, identity: Option<&str>) -> Channel {
    let mut provider = CertificateProvider::roots(dir.path("ca.crt"));
    if let Some(stem) = identity {
        provider = provider.with_identity(
            dir.path(&format!("{stem}.crt")),
            dir.path(&format!("{stem}.key")),
        );
    }
    Builder::new("greeter")
        .control_plane(uri)
        .certificate_provider("default", provider)
        .default_wait(Duration::from_secs(3))
        .connect()
        .await
        .expect("channel")
}

async fn hello(client: &mut GreeterClient<Channel>) -> Result<String, tonic::Status> {
    let mut request = tonic::Request::new(HelloRequest::default());
    request.set_timeout(Duration::from_secs(3));
    client
        .say_hello(request)
        .await
        .map(|reply| reply.into_inner().served_by)
}

#[tokio::test]
async fn balances_over_greeters_that_require_client_certificates() {
    bounded(LIMIT, async {
        let dir = TlsDir::new();
        let ca = Ca::new("client-tls CA");
        let mut greeters = mtls_greeters(&dir, &ca).await;
        dir.write_identity(
            "client",
            &ca.issue(&Leaf::new(
                &["spiffe://cluster.local/ns/default/sa/client"],
                20,
            )),
        );
        let (_cp, _file, uri) = control_plane(&greeters, &[SERVER_SAN]).await;
        let channel = channel(&uri, &dir, Some("client")).await;
        channel
            .settled(Duration::from_secs(10))
            .await
            .expect("every endpoint connected");
        let mut client = GreeterClient::new(channel);
        let mut counts = std::collections::BTreeMap::<String, u32>::new();
        for i in 0..300 {
            let served_by = hello(&mut client)
                .await
                .unwrap_or_else(|status| panic!("call {i}: {status:?}"));
            *counts.entry(served_by).or_default() += 1;
        }
        let expected: std::collections::BTreeMap<String, u32> =
            BACKENDS.iter().map(|b| ((*b).to_owned(), 100)).collect();
        assert_eq!(counts, expected);
        for (greeter, _) in &mut greeters {
            greeter
                .wait_for_log("SayHello", Duration::from_secs(5))
                .await;
        }
    })
    .await;
}

#[tokio::test]
async fn handshake_failures_name_their_cause() {
    bounded(LIMIT, async {
        let dir = TlsDir::new();
        let ca = Ca::new("client-tls CA");
        let greeters = mtls_greeters(&dir, &ca).await;
        dir.write_identity("client", &ca.issue(&Leaf::new(&["client.example"], 21)));

        // The Cluster's SAN matcher, which the servers' certificates lack.
        let (_cp, _file, uri) = control_plane(&greeters, &["nobody.example"]).await;
        let mut client = GreeterClient::new(channel(&uri, &dir, Some("client")).await);
        let status = hello(&mut client)
            .await
            .expect_err("no server is acceptable");
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert!(
            status.message().contains(&format!(
                "SAN mismatch: expected one of [nobody.example], the server's certificate \
                 presents [{SERVER_SAN}]"
            )),
            "{}",
            status.message()
        );

        // Roots from another CA: the servers' certificates are unknown.
        let other = TlsDir::new();
        other.write("ca.crt", &Ca::new("another CA").pem());
        other.write_identity("client", &ca.issue(&Leaf::new(&["client.example"], 22)));
        let (_cp2, _file2, uri2) = control_plane(&greeters, &[SERVER_SAN]).await;
        let mut client = GreeterClient::new(channel(&uri2, &other, Some("client")).await);
        let status = hello(&mut client).await.expect_err("unknown CA");
        assert!(
            status.message().contains("unknown CA"),
            "{}",
            status.message()
        );

        // A Cluster that names an identity the provider does not have.
        let mut client = GreeterClient::new(channel(&uri2, &dir, None).await);
        let status = hello(&mut client).await.expect_err("no identity");
        assert!(
            status
                .message()
                .contains("has no certificate_file and private_key_file"),
            "{}",
            status.message()
        );
        for (greeter, _) in &greeters {
            assert!(
                !greeter.log_text().contains("\"SayHello\""),
                "a server saw a call: {}",
                greeter.log_text()
            );
        }
    })
    .await;
}

#[tokio::test]
async fn a_tls_cluster_is_never_dialled_in_plaintext() {
    bounded(LIMIT, async {
        let dir = TlsDir::new();
        let ca = Ca::new("client-tls CA");
        let greeters = mtls_greeters(&dir, &ca).await;
        let (_cp, _file, uri) = control_plane(&greeters, &[SERVER_SAN]).await;
        // No certificate providers at all: the Cluster is refused (NACK),
        // and the calls say why.
        let channel = Builder::new("greeter")
            .control_plane(uri)
            .default_wait(Duration::from_secs(2))
            .connect()
            .await
            .expect("channel");
        let mut client = GreeterClient::new(channel);
        let status = hello(&mut client).await.expect_err("refused");
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert!(
            status
                .message()
                .contains("unrecognized certificate provider instance name: default"),
            "{}",
            status.message()
        );
    })
    .await;
}

/// A control plane on TLS requiring client certificates from `ca`, of which
/// only SANs under `spiffe://cluster.local/ns/default/` may subscribe.
async fn mtls_control_plane(
    dir: &TlsDir,
    ca: &Ca,
    greeters: &[(Process, SocketAddr)],
) -> (Process, StaticFile, String) {
    dir.write_identity("cp", &ca.issue(&Leaf::new(&["127.0.0.1"], 30)));
    let endpoints: Vec<SocketAddr> = greeters.iter().map(|(_, a)| *a).collect();
    let (cert, key, client_ca) = (dir.arg("cp.crt"), dir.arg("cp.key"), dir.arg("ca.crt"));
    serve_greeter(
        &endpoints,
        &[SERVER_SAN],
        "https",
        &[
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--tls-client-ca",
            &client_ca,
            "--allow-client-san",
            "spiffe://cluster.local/ns/default/*",
        ],
    )
    .await
}

fn control_plane_tls(dir: &TlsDir, identity: Option<&str>) -> xds_balancer::ControlPlaneTls {
    let tls = xds_balancer::ControlPlaneTls::new(dir.path("ca.crt"));
    match identity {
        Some(stem) => tls.with_identity(
            dir.path(&format!("{stem}.crt")),
            dir.path(&format!("{stem}.key")),
        ),
        None => tls,
    }
}

#[tokio::test]
async fn mutual_tls_to_the_control_plane_admits_only_allowed_identities() {
    bounded(LIMIT, async {
        let dir = TlsDir::new();
        let ca = Ca::new("client-tls CA");
        let greeters = mtls_greeters(&dir, &ca).await;
        let (_cp, _file, uri) = mtls_control_plane(&dir, &ca, &greeters).await;
        dir.write_identity(
            "client",
            &ca.issue(&Leaf::new(
                &["spiffe://cluster.local/ns/default/sa/client"],
                31,
            )),
        );
        dir.write_identity(
            "outsider",
            &ca.issue(&Leaf::new(
                &["spiffe://cluster.local/ns/other/sa/client"],
                32,
            )),
        );
        let backends = CertificateProvider::roots(dir.path("ca.crt"))
            .with_identity(dir.path("client.crt"), dir.path("client.key"));
        let builder = |identity| {
            Builder::new("greeter")
                .control_plane(uri.clone())
                .control_plane_tls(control_plane_tls(&dir, identity))
                .certificate_provider("default", backends.clone())
                .default_wait(Duration::from_secs(3))
        };

        // Every hop over mTLS: calls spread over the three greeters.
        let channel = builder(Some("client")).connect().await.expect("admitted");
        channel
            .settled(Duration::from_secs(10))
            .await
            .expect("ready");
        let mut client = GreeterClient::new(channel);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..30 {
            seen.insert(hello(&mut client).await.expect("call"));
        }
        assert_eq!(seen.len(), 3, "{seen:?}");

        // No client certificate: the handshake names why.
        let error = builder(None)
            .connect()
            .await
            .expect_err("refused")
            .to_string();
        assert!(error.contains("requires a client certificate"), "{error}");
        // A certificate outside the allow-list: refused, naming its SAN.
        let error = builder(Some("outsider"))
            .connect()
            .await
            .expect_err("refused")
            .to_string();
        assert!(error.contains("PermissionDenied"), "{error}");
        assert!(
            error.contains("spiffe://cluster.local/ns/other/sa/client"),
            "{error}"
        );

        // The scheme must match the credentials: never plaintext by mistake.
        let plain = uri.replacen("https://", "http://", 1);
        let error = Builder::new("greeter")
            .control_plane(plain)
            .control_plane_tls(control_plane_tls(&dir, Some("client")))
            .connect()
            .await
            .expect_err("http:// with TLS settings")
            .to_string();
        assert!(error.contains("use https://"), "{error}");
        let error = Builder::new("greeter")
            .control_plane(uri.clone())
            .connect()
            .await
            .expect_err("https:// without TLS settings")
            .to_string();
        assert!(error.contains("https:// needs TLS settings"), "{error}");
        // Plaintext to the TLS port: named.
        let error = Builder::new("greeter")
            .control_plane(uri.replacen("https://", "http://", 1))
            .connect()
            .await
            .expect_err("plaintext to TLS")
            .to_string();
        assert!(error.contains("the port speaks TLS"), "{error}");
    })
    .await;
}

#[tokio::test]
async fn expired_certificates_and_plaintext_endpoints_are_named() {
    bounded(LIMIT, async {
        let dir = TlsDir::new();
        let ca = Ca::new("client-tls CA");
        dir.write_identity("client", &ca.issue(&Leaf::new(&["client.example"], 40)));
        for (validity, expected) in [
            (Validity::Expired, "the server's certificate has expired"),
            (
                Validity::NotYetValid,
                "the server's certificate is not valid yet",
            ),
        ] {
            let greeters = greeters_with(&dir, &ca, validity).await;
            let (_cp, _file, uri) = control_plane(&greeters, &[SERVER_SAN]).await;
            let mut client = GreeterClient::new(channel(&uri, &dir, Some("client")).await);
            let status = hello(&mut client).await.expect_err("refused");
            assert!(status.message().contains(expected), "{}", status.message());
        }

        // A TLS Cluster whose endpoints speak plaintext h2c.
        let plain = tests::greeters::backends(&["plain"]).await;
        let (_cp, _file, uri) = serve_greeter(&[plain[0].addr], &[SERVER_SAN], "http", &[]).await;
        let mut client = GreeterClient::new(channel(&uri, &dir, Some("client")).await);
        let status = hello(&mut client).await.expect_err("plaintext endpoint");
        assert!(
            status.message().contains("does not speak TLS"),
            "{}",
            status.message()
        );
    })
    .await;
}

/// The serial of the certificate the server at `addr` presents to a new
/// connection (roots from `dir`).
async fn presented_serial(addr: SocketAddr, dir: &TlsDir) -> String {
    use tls_reload::client::{ClientTls, ClientTlsFiles, ServerVerification};
    let tls = ClientTls::load(&ClientTlsFiles {
        ca: dir.path("ca.crt"),
        cert: Some(dir.path("probe.crt")),
        key: Some(dir.path("probe.key")),
    })
    .expect("probe TLS");
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let stream = tls
        .handshake(tcp, &ServerVerification::SanMatchers(Vec::new()))
        .await
        .expect("handshake");
    let cert = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .expect("a server certificate")
        .clone();
    tls_reload::PeerIdentity::from_certificate(&cert)
        .expect("parsable")
        .serial
}

/// Every certificate rotated (servers, client, control plane; same CA)
/// while calls run at 200/s for 20 s: no call fails, and connections opened
/// after the swap present the new certificates.
#[tokio::test]
async fn rotating_every_certificate_fails_no_call() {
    bounded(LIMIT, async {
        let dir = TlsDir::new();
        let ca = Ca::new("rotation CA");
        let client_san = "spiffe://cluster.local/ns/default/sa/client";
        dir.write_identity("client", &ca.issue(&Leaf::new(&[client_san], 31)));
        dir.write_identity("probe", &ca.issue(&Leaf::new(&[client_san], 50)));
        let greeters = mtls_greeters(&dir, &ca).await;
        let (mut cp, file, uri) = mtls_control_plane(&dir, &ca, &greeters).await;
        let cp_addr: SocketAddr = uri.trim_start_matches("https://").parse().expect("addr");
        let provider = CertificateProvider::roots(dir.path("ca.crt"))
            .with_identity(dir.path("client.crt"), dir.path("client.key"));
        let channel = Builder::new("greeter")
            .control_plane(uri.clone())
            .control_plane_tls(control_plane_tls(&dir, Some("client")))
            .certificate_provider("default", provider)
            .connect()
            .await
            .expect("channel");
        channel
            .settled(Duration::from_secs(10))
            .await
            .expect("ready");

        // 200 calls a second for 20 s.
        let load = {
            let mut client = GreeterClient::new(channel.clone());
            tokio::spawn(async move {
                let mut ticker = tokio::time::interval(Duration::from_millis(5));
                let mut failures = Vec::new();
                let mut ok = 0u32;
                for _ in 0..4000 {
                    ticker.tick().await;
                    match hello(&mut client).await {
                        Ok(_) => ok += 1,
                        Err(status) => failures.push(status.message().to_owned()),
                    }
                }
                (ok, failures)
            })
        };
        tokio::time::sleep(Duration::from_secs(5)).await;
        let old_server = presented_serial(greeters[0].1, &dir).await;
        let old_cp = presented_serial(cp_addr, &dir).await;
        let server = ca.issue(&Leaf::new(&[SERVER_SAN], 11));
        let control = ca.issue(&Leaf::new(&["127.0.0.1"], 33));
        let client = ca.issue(&Leaf::new(&[client_san], 32));
        dir.write_identity("server", &server);
        dir.write_identity("cp", &control);
        dir.write_identity("client", &client);
        // Files are re-read every second.
        tokio::time::sleep(Duration::from_secs(3)).await;
        for (_, addr) in &greeters {
            let serial = presented_serial(*addr, &dir).await;
            assert_eq!(serial, server.serial_hex, "was {old_server}");
        }
        assert_eq!(
            presented_serial(cp_addr, &dir).await,
            control.serial_hex,
            "was {old_cp}"
        );

        // A greeter that joins now gets a new connection from our client,
        // which presents the client's new certificate.
        let mut joined = tests::greeters::mutual_tls(&["tls-d"], &dir)
            .await
            .pop()
            .expect("one greeter");
        let joined_addr = joined.1;
        let joined = &mut joined.0;
        let mut endpoints: Vec<String> = greeters.iter().map(|(_, a)| a.to_string()).collect();
        endpoints.push(joined_addr.to_string());
        file.write(&json!({"services": [{
            "name": "greeter",
            "endpoints": endpoints,
            "tls": {"subject_alt_names": [SERVER_SAN]},
        }]}));
        let line = joined
            .wait_for_log(
                "TLS connection with a client certificate",
                Duration::from_secs(15),
            )
            .await;
        assert_eq!(line["serial"], client.serial_hex.as_str(), "{line}");

        let (ok, failures) = load.await.expect("load");
        assert!(
            failures.is_empty(),
            "{} failed: {failures:?}",
            failures.len()
        );
        assert_eq!(ok, 4000);
        joined
            .wait_for_log("SayHello", Duration::from_secs(5))
            .await;
        cp.kill().await;
    })
    .await;
}
