//! Certificate rotation on every hop (greeters, control plane, client)
//! while calls run: no call fails, and new connections present the new
//! certificates.

use std::net::SocketAddr;
use std::time::Duration;

use proto::greet::greeter_client::GreeterClient;
use serde_json::json;
use tests::bounded;
use tests::certs::{Ca, Leaf, TlsDir};
use xds_balancer::{Builder, CertificateProvider};

use crate::{LIMIT, SERVER_SAN, control_plane_tls, hello, mtls_control_plane, mtls_greeters};

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
