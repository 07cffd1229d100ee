//! Garbage on the socket, and malformed gRPC frames and protobuf messages
//! sent with a raw HTTP/2 client.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use tests::bounded;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::Target;

const ADS_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
/// The HTTP/2 connection preface.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Sends `bytes` on a new connection and waits (bounded) for the server to
/// close it.
async fn send_and_expect_close(addr: SocketAddr, bytes: &[u8]) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    // The server may close before it read everything: a failed write is
    // fine too.
    let _ = stream.write_all(bytes).await;
    let mut sink = vec![0; 64 * 1024];
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server kept a garbage connection open");
}

/// A pseudo-random byte string (a fixed xorshift sequence).
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

#[tokio::test]
async fn garbage_bytes_close_only_their_own_connection() {
    bounded(Duration::from_secs(60), async {
        let mut target = Target::start("garbage").await;
        // Connections that stall half-way through the preface stay open
        // while everything else goes on.
        let mut stalled = Vec::new();
        for _ in 0..50 {
            let mut stream = TcpStream::connect(target.addr).await.expect("connect");
            stream.write_all(&PREFACE[..10]).await.expect("write");
            stalled.push(stream);
        }
        for seed in 1..=20 {
            send_and_expect_close(target.addr, &noise(64 * 1024, seed)).await;
        }
        send_and_expect_close(target.addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let mut frames = PREFACE.to_vec();
        frames.extend(noise(16 * 1024, 99));
        send_and_expect_close(target.addr, &frames).await;
        target.assert_healthy("garbage bytes").await;
        drop(stalled);
        target.assert_healthy("stalled connections closing").await;
    })
    .await;
}

/// One gRPC call to ADS with `body` as its request bytes (gRPC frames as
/// given), on a raw HTTP/2 connection. Returns the call's grpc-status and
/// message.
async fn raw_ads_call(addr: SocketAddr, body: Vec<u8>) -> (String, String) {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (client, connection) = h2::client::handshake(tcp).await.expect("HTTP/2 handshake");
    tokio::spawn(connection);
    let mut client = client.ready().await.expect("ready");
    let request = http::Request::post(format!("http://{addr}{ADS_PATH}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .expect("request");
    let (response, mut send) = client.send_request(request, false).expect("send headers");
    send.send_data(Bytes::from(body), true).expect("send body");
    let response = response.await.expect("response headers");
    let status = |headers: &http::HeaderMap| {
        let get = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        get("grpc-status").map(|code| (code, get("grpc-message").unwrap_or_default()))
    };
    if let Some(status) = status(response.headers()) {
        return status;
    }
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.expect("response body");
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    let trailers = body
        .trailers()
        .await
        .expect("trailers")
        .expect("trailers present");
    status(&trailers).expect("grpc-status in the trailers")
}

/// A gRPC frame: flag, big-endian length, then `message` (the length may
/// be given falsely).
fn frame(compressed: bool, length: u32, message: &[u8]) -> Vec<u8> {
    let mut bytes = vec![u8::from(compressed)];
    bytes.extend(length.to_be_bytes());
    bytes.extend_from_slice(message);
    bytes
}

#[tokio::test]
async fn malformed_frames_and_protobuf_fail_their_own_call_with_a_status() {
    bounded(Duration::from_secs(60), async {
        let mut target = Target::start("frames").await;
        let invalid_varint = [0xff; 5];
        // Field 1 (version_info, a string) sent as a varint.
        let wrong_wire_type = [0x08, 0x01];
        // What is sent, and what the status message must say.
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            (
                "invalid protobuf",
                frame(false, 5, &invalid_varint),
                "invalid varint",
            ),
            (
                "wrong wire type",
                frame(false, 2, &wrong_wire_type),
                "invalid wire type",
            ),
            (
                "compressed with no encoding",
                frame(true, 1, &[0]),
                "compressed-flag",
            ),
            (
                "length beyond the body",
                frame(false, 100, &[1, 2, 3]),
                "Unexpected EOF",
            ),
            (
                "a 4 GiB length",
                frame(false, u32::MAX, &[1, 2, 3]),
                "too large",
            ),
            ("half a frame header", vec![0, 0], "Unexpected EOF"),
        ];
        for (what, body, says) in cases {
            let (code, message) =
                tokio::time::timeout(Duration::from_secs(10), raw_ads_call(target.addr, body))
                    .await
                    .unwrap_or_else(|_| panic!("{what}: no answer"));
            // grpc-message is percent-encoded.
            let message = message.replace("%20", " ");
            assert_ne!(code, "0", "{what}: accepted ({message})");
            assert!(message.contains(says), "{what}: {code} {message}");
            target.assert_healthy(what).await;
        }
    })
    .await;
}
