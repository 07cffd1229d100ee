//! Clients leaving are routine: an ADS stream that the client closes,
//! cancels, or whose connection goes away is logged at debug level, not as
//! an error; a client sending a broken request stream is logged at warn
//! level with what was wrong. Both are counted by reason in `/metrics`.

use bytes::Bytes;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use prost::{Message, Name};
use serde_json::Value;
use tests::ads::AdsStream;
use tests::{bounded, channel};

use crate::{ControlPlane, LIMIT, WAIT, eventually};

const CLUSTER: &str = "greeter.default.svc.cluster.local:80";
const STREAM_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";

/// Opens a stream on `channel`, subscribes, and waits for the answer.
async fn subscribed(channel: tonic::transport::Channel, node: &str) -> AdsStream {
    let mut ads = AdsStream::open(channel, node).await;
    ads.subscribe::<ClusterLoadAssignment>(&[CLUSTER]).await;
    ads.recv().await;
    ads
}

/// Log lines about ADS streams ending, as (level, message).
fn stream_ends(control_plane: &ControlPlane) -> Vec<(String, String)> {
    control_plane
        .process
        .log_text()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|line| {
            let message = line.get("message")?.as_str()?.to_owned();
            let level = line.get("level")?.as_str()?.to_owned();
            message
                .starts_with("ADS stream ")
                .then_some((level, message))
        })
        .filter(|(_, message)| message != "ADS stream opened")
        .collect()
}

/// An ADS stream on a raw HTTP/2 connection of its own, with `message`
/// (one gRPC message's bytes) sent: the connection's task, and the
/// response's headers.
async fn raw_stream(
    addr: std::net::SocketAddr,
    message: &[u8],
) -> (
    tokio::task::JoinHandle<()>,
    h2::SendStream<Bytes>,
    http::Response<h2::RecvStream>,
) {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (client, connection) = h2::client::handshake(tcp).await.expect("HTTP/2");
    let connection = tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut client = client.ready().await.expect("ready");
    let request = http::Request::post(format!("http://{addr}{STREAM_PATH}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .expect("request");
    let (response, mut body) = client.send_request(request, false).expect("send");
    let mut framed = vec![0];
    framed.extend_from_slice(&u32::try_from(message.len()).expect("small").to_be_bytes());
    framed.extend_from_slice(message);
    body.send_data(Bytes::from(framed), false).expect("data");
    let response = tokio::time::timeout(WAIT, response)
        .await
        .expect("response headers in time")
        .expect("response headers");
    (connection, body, response)
}

/// Sends one gRPC message that is not a DiscoveryRequest, and returns the
/// `grpc-status` the server ended the stream with.
async fn send_garbage(addr: std::net::SocketAddr) -> String {
    let (_connection, _body, response) = raw_stream(addr, &[0xff, 0xff, 0xff]).await;
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        chunk.expect("data");
    }
    let trailers = body.trailers().await.expect("trailers").expect("trailers");
    trailers
        .get("grpc-status")
        .expect("grpc-status")
        .to_str()
        .expect("ASCII")
        .to_owned()
}

/// Subscribes on a raw connection, reads the first response, then drops
/// the connection (TCP closed with the stream open, as when a client
/// process is killed).
async fn subscribe_and_vanish(addr: std::net::SocketAddr) {
    let request = DiscoveryRequest {
        type_url: ClusterLoadAssignment::type_url(),
        resource_names: vec![CLUSTER.to_owned()],
        node: Some(Node {
            id: "vanishing".to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let (connection, body, response) = raw_stream(addr, &request.encode_to_vec()).await;
    let mut responses = response.into_body();
    tokio::time::timeout(WAIT, responses.data())
        .await
        .expect("a response in time")
        .expect("a response")
        .expect("readable");
    connection.abort();
    let _ = connection.await;
    drop((body, responses));
}

#[tokio::test]
async fn clients_leaving_are_logged_at_debug_and_broken_streams_at_warn() {
    bounded(LIMIT, async {
        // Debug for the control plane's own lines only.
        let mut control_plane = ControlPlane::start(
            "control-plane",
            &[
                "--source",
                "static",
                "--namespace",
                "default",
                "--static",
                "greeter=127.0.0.1:1",
                "--no-probe",
            ],
            &[
                ("RUST_LOG", "info,control_plane=debug"),
                ("POD_NAMESPACE", ""),
            ],
        )
        .await;
        control_plane
            .process
            .wait_for_log(crate::SYNCED, WAIT)
            .await;
        let addr = control_plane.addr;

        // Closes its side (END_STREAM).
        let mut closing = subscribed(channel(addr).await, "closing").await;
        closing.close_requests();
        assert!(
            closing.next().await.expect("ends cleanly").is_none(),
            "the server ends the stream too"
        );
        // Cancels the call, keeping its connection.
        let kept = channel(addr).await;
        drop(subscribed(kept.clone(), "cancelling").await);
        // Goes away with its connection.
        subscribe_and_vanish(addr).await;

        eventually("three stream ends logged", || async {
            (stream_ends(&control_plane).len() >= 3).then_some(())
        })
        .await;
        let ends = stream_ends(&control_plane);
        assert_eq!(ends.len(), 3, "{ends:?}");
        assert!(
            ends.iter().all(|(level, _)| level == "DEBUG"),
            "clients leaving are routine: {ends:?}"
        );
        let noisy: Vec<String> = control_plane
            .process
            .log_text()
            .lines()
            .filter(|line| line.contains("\"WARN\"") || line.contains("\"ERROR\""))
            .map(str::to_owned)
            .collect();
        assert!(noisy.is_empty(), "nothing above info: {noisy:?}");
        let closed = [("reason", "client_closed")];
        let counted = control_plane
            .sample("control_plane_xds_streams_ended_total", &closed)
            .await;
        assert_eq!(counted, Some(3.0));

        // A broken request stream is worth a warning.
        assert_eq!(send_garbage(addr).await, "13", "INTERNAL");
        let line = control_plane
            .process
            .wait_for_log(
                "ADS stream ended: the client sent a broken request stream",
                WAIT,
            )
            .await;
        assert_eq!(line["level"], "WARN", "{line}");
        let error = line["error"].as_str().unwrap_or_default();
        assert!(error.contains("DiscoveryRequest"), "{line}");
        let broken = [("reason", "client_error")];
        let counted = control_plane
            .sample("control_plane_xds_streams_ended_total", &broken)
            .await;
        assert_eq!(counted, Some(1.0));
        drop(kept);
    })
    .await;
}
