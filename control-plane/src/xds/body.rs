//! The response side of an ADS stream: an HTTP/2 body that writes each
//! queued response as a gRPC message, straight from the shared resource
//! bytes ([`super::wire`]), and ends with gRPC trailers.
//!
//! The stream task ([`super::stream`]) fills a small queue; this body is
//! what hyper polls to send. A response is counted as written (metrics)
//! when the body takes it from the queue. An error status in the queue
//! ends the stream with that status; a closed queue ends it with OK.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame};
use tonic::{Code, Status};

use super::queue::Receiver;
use super::stream::Queued;
use crate::metrics::Metrics;

/// The body of one ADS response stream.
#[derive(Debug)]
pub struct ResponseBody {
    queue: Receiver<Queued>,
    metrics: Arc<Metrics>,
    /// What is left of the message being written.
    pending: VecDeque<Bytes>,
    /// Trailers sent (or the stream otherwise over).
    done: bool,
}

impl ResponseBody {
    /// A body that writes what arrives on `queue`, counting responses in
    /// `metrics`.
    pub fn new(queue: Receiver<Queued>, metrics: Arc<Metrics>) -> Self {
        Self {
            queue,
            metrics,
            pending: VecDeque::new(),
            done: false,
        }
    }
}

/// The gRPC trailers for `status`.
fn trailers(status: &Status) -> HeaderMap {
    let mut map = HeaderMap::new();
    if status.add_header(&mut map).is_err() {
        map.insert(Status::GRPC_STATUS, (Code::Internal as i32).into());
    }
    map
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        if let Some(chunk) = this.pending.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if this.done {
            return Poll::Ready(None);
        }
        match this.queue.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(outgoing))) => {
                this.metrics
                    .response_written(outgoing.kind, outgoing.changed_at);
                this.pending.extend(outgoing.response.frames());
                match this.pending.pop_front() {
                    Some(chunk) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
                    None => Poll::Ready(Some(Ok(Frame::data(Bytes::new())))),
                }
            }
            Poll::Ready(Some(Err(status))) => {
                this.done = true;
                Poll::Ready(Some(Ok(Frame::trailers(trailers(&status)))))
            }
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(Some(Ok(Frame::trailers(trailers(&Status::ok(""))))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use envoy_types::pb::envoy::config::core::v3::ControlPlane;
    use envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse;
    use http_body_util::BodyExt;
    use prost::Message;

    use super::*;
    use crate::kinds::ResourceType;
    use crate::xds::session::Outgoing;
    use crate::xds::wire::EncodedResponse;

    fn outgoing(nonce: &str, size: usize) -> Outgoing {
        Outgoing {
            kind: ResourceType::ClusterLoadAssignment,
            response: EncodedResponse {
                version_info: "run-2".to_owned(),
                type_url: ResourceType::ClusterLoadAssignment.type_url_str(),
                nonce: nonce.to_owned(),
                control_plane: Arc::new(ControlPlane::default()),
                resources: vec![crate::xds::wire::encode_resource(
                    &envoy_types::pb::google::protobuf::Any {
                        type_url: "t".to_owned(),
                        value: vec![7; size],
                    },
                )],
            },
            changed_at: Some(Instant::now()),
        }
    }

    /// Splits a gRPC body into its messages.
    fn messages(mut data: &[u8]) -> Vec<DiscoveryResponse> {
        let mut out = Vec::new();
        while !data.is_empty() {
            assert_eq!(data[0], 0, "uncompressed");
            let len = u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize;
            out.push(DiscoveryResponse::decode(&data[5..5 + len]).unwrap());
            data = &data[5 + len..];
        }
        out
    }

    #[tokio::test]
    async fn writes_messages_then_ok_trailers_and_counts_them() {
        let metrics = Arc::new(Metrics::new());
        let (tx, rx) = crate::xds::queue::channel(4);
        tx.send(Ok(Box::new(outgoing("1", 10)))).await.unwrap();
        tx.send(Ok(Box::new(outgoing("2", 100_000)))).await.unwrap();
        drop(tx);
        let collected = ResponseBody::new(rx, metrics.clone())
            .collect()
            .await
            .unwrap();
        let trailers = collected.trailers().cloned().expect("trailers");
        assert_eq!(trailers.get("grpc-status").unwrap(), "0");
        let messages = messages(&collected.to_bytes());
        let nonces: Vec<_> = messages.iter().map(|m| m.nonce.as_str()).collect();
        assert_eq!(nonces, ["1", "2"]);
        assert_eq!(messages[1].resources[0].value.len(), 100_000);
        assert!(
            metrics
                .encode()
                .contains("control_plane_xds_responses_total{type=\"EDS\"} 2"),
            "{}",
            metrics.encode()
        );
    }

    #[tokio::test]
    async fn an_error_ends_the_stream_with_its_status() {
        let (tx, rx) = crate::xds::queue::channel(4);
        tx.send(Ok(Box::new(outgoing("1", 10)))).await.unwrap();
        tx.send(Err(Box::new(Status::unavailable("shutting down"))))
            .await
            .unwrap();
        let mut body = ResponseBody::new(rx, Arc::new(Metrics::new()));
        let mut data = Vec::new();
        let trailers = loop {
            let frame = body.frame().await.expect("a frame").unwrap();
            match frame.into_data() {
                Ok(chunk) => data.extend_from_slice(&chunk),
                Err(frame) => break frame.into_trailers().expect("trailers"),
            }
        };
        assert_eq!(messages(&data).len(), 1);
        assert_eq!(
            trailers.get("grpc-status").unwrap(),
            &(Code::Unavailable as i32).to_string()
        );
        assert_eq!(trailers.get("grpc-message").unwrap(), "shutting%20down");
        assert!(body.is_end_stream());
        assert!(body.frame().await.is_none(), "nothing after the trailers");
        drop(tx);
    }
}
