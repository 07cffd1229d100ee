//! Mutual TLS between our client and the control plane: only client
//! certificates whose SAN is on the allow-list may subscribe, each refusal
//! names its cause, and the address's scheme must match the credentials.

use std::time::Duration;

use proto::greet::greeter_client::GreeterClient;
use tests::bounded;
use tests::certs::{Ca, Leaf, TlsDir};
use xds_balancer::{Builder, CertificateProvider};

use crate::{LIMIT, control_plane_tls, hello, mtls_control_plane, mtls_greeters};

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
