//! The commonest set-up mistakes get messages that name them: a control
//! plane address that is a gRPC server without ADS (a backend's port), an
//! HTTP/1.1 server, a server refusing cleartext HTTP/2 the way Kestrel does,
//! and a TLS port.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::backends;
use tests::bounded;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use xds_balancer::{Builder, Error};

const LIMIT: Duration = Duration::from_secs(30);
/// The promise: a wrong address is named within a second.
const PROMPT: Duration = Duration::from_secs(1);

/// Builds a channel for `greeter` against `uri`; returns the error.
async fn connect_error(uri: &str) -> Error {
    let build = Builder::new("greeter").control_plane(uri).connect();
    tokio::time::timeout(PROMPT, build)
        .await
        .unwrap_or_else(|_| panic!("{uri}: no verdict within {PROMPT:?}"))
        .expect_err("not a control plane")
}

/// A server that reads the HTTP/2 preface of every connection and answers
/// with `answer`, then closes.
async fn responder(answer: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut preface = [0u8; 24];
                let _ = socket.read_exact(&mut preface).await;
                let _ = socket.write_all(answer).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_backend_port_is_not_the_control_plane() {
    bounded(LIMIT, async {
        let servers = backends(&["a"]).await;
        let uri = format!("http://{}", servers[0].addr);
        let error = connect_error(&uri).await;
        assert!(matches!(error, Error::NotAds { .. }), "{error}");
        assert_eq!(
            error.to_string(),
            format!(
                "the server at {uri} does not implement xDS ADS (it answered the discovery \
                 stream with UNIMPLEMENTED); is this the control plane's port (18000)?"
            )
        );
    })
    .await;
}

#[tokio::test]
async fn an_http1_server_is_named() {
    bounded(LIMIT, async {
        let addr = responder(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n").await;
        let error = connect_error(&format!("http://{addr}")).await;
        let text = error.to_string();
        assert!(
            matches!(error, Error::ControlPlaneUnreachable { .. }),
            "{text}"
        );
        assert!(text.contains(": not an HTTP/2 server: "), "{text}");
    })
    .await;
}

#[tokio::test]
async fn a_kestrel_style_http_1_1_required_is_named() {
    // What Kestrel sends on a cleartext Http1AndHttp2 endpoint: its
    // SETTINGS, then GOAWAY(last stream 0, HTTP_1_1_REQUIRED).
    const SETTINGS_THEN_GOAWAY: &[u8] = &[
        0, 0, 0, 0x4, 0, 0, 0, 0, 0, // SETTINGS, empty
        0, 0, 8, 0x7, 0, 0, 0, 0, 0, // GOAWAY, 8 bytes
        0, 0, 0, 0, 0, 0, 0, 0xd, // last stream 0, HTTP_1_1_REQUIRED
    ];
    bounded(LIMIT, async {
        let addr = responder(SETTINGS_THEN_GOAWAY).await;
        let text = connect_error(&format!("http://{addr}")).await.to_string();
        assert!(text.contains("GOAWAY HTTP_1_1_REQUIRED"), "{text}");
        assert!(text.contains("Kestrel"), "{text}");
        assert!(text.contains("Http2"), "the setting to change: {text}");
    })
    .await;
}

#[tokio::test]
async fn a_tls_port_is_named() {
    // A TLS server's answer to bytes that are not a ClientHello: a fatal
    // alert record (decode_error).
    const ALERT: &[u8] = &[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32];
    bounded(LIMIT, async {
        let addr = responder(ALERT).await;
        let text = connect_error(&format!("http://{addr}")).await.to_string();
        assert!(text.contains("the port speaks TLS"), "{text}");
        assert!(text.contains("https://"), "{text}");
    })
    .await;
}
