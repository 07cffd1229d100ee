//! Our client to greeters that require client certificates: calls spread
//! evenly over mTLS, and every refused handshake says why (SAN mismatch,
//! unknown CA, no identity, no certificate provider, certificates expired
//! or not yet valid, endpoints that speak plaintext).

use std::time::Duration;

use proto::greet::greeter_client::GreeterClient;
use tests::bounded;
use tests::certs::{Ca, Leaf, TlsDir, Validity};
use tonic::Code;
use xds_balancer::Builder;

use crate::{
    BACKENDS, LIMIT, SERVER_SAN, channel, control_plane, greeters_with, hello, mtls_greeters,
    serve_greeter,
};

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
