//! The `envoy.service.discovery.v3.AggregatedDiscoveryService` gRPC
//! service: state-of-the-world ADS, one [`StreamTask`] per stream.
//!
//! # Design notes
//!
//! The service is routed by hand ([`AdsServer`]) instead of through the
//! generated server, for the response side only: requests are decoded by
//! tonic's `Streaming` as usual (with a small buffer: requests are small),
//! while responses go out through [`ResponseBody`], which writes the
//! resources' shared bytes instead of having a codec copy each response
//! into a per-stream buffer. Delta xDS and unknown methods are answered
//! UNIMPLEMENTED, as the generated server would.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use common::incoming::ConnInfo;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use prost::Message;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use tonic::codec::{BufferSettings, DecodeBuf, Decoder, Streaming};
use tonic::server::NamedService;
use tonic::transport::server::TcpConnectInfo;
use tracing::Instrument;

use super::admission::Admission;
use super::body::ResponseBody;
use super::queue;
use super::registry::Registry;
use super::session::{Limits, Session};
use super::snapshot::SnapshotBuilder;
use super::stream::{Ended, QUEUE_DEPTH, StreamTask, is_disconnect};
use crate::metrics::Metrics;
use crate::store::Store;

/// Default cap on one decoded request, in bytes. A request at the names cap
/// with typical names is far smaller.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;
/// The gRPC service name.
pub const SERVICE_NAME: &str = "envoy.service.discovery.v3.AggregatedDiscoveryService";
const STREAM_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
const DELTA_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";
/// Initial request buffer per stream (tonic's default is 8 KiB; requests
/// are mostly ACKs of a couple of hundred bytes, and the buffer grows as
/// needed).
const REQUEST_BUFFER: usize = 512;

/// In the extensions of a request whose connection has a maximum age:
/// cancelled when the connection reaches it, which ends the ADS stream
/// (UNAVAILABLE) so that the client reconnects. It must be a child of the
/// server's `stopped` token ([`CancellationToken::child_token`]): the stream
/// waits on it alone for both ends.
#[derive(Debug, Clone)]
pub struct ConnectionAge(pub CancellationToken);

/// Settings of the ADS service.
#[derive(Debug, Clone)]
pub struct AdsConfig {
    /// Caps on names per request.
    pub limits: Limits,
    /// Cap on one encoded request, in bytes.
    pub max_request_bytes: usize,
}

impl Default for AdsConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            max_request_bytes: MAX_REQUEST_BYTES,
        }
    }
}

/// The ADS service over a store.
#[derive(Debug, Clone)]
pub struct AdsService {
    store: Arc<Store>,
    snapshots: Arc<SnapshotBuilder>,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    stopped: CancellationToken,
    limits: Limits,
    identifier: String,
    admission: Arc<Admission>,
}

impl AdsService {
    /// Serves `store`'s resources, listing clients in `registry`; every
    /// stream ends (UNAVAILABLE) when `stopped` is cancelled. `admission`
    /// decides which streams may open.
    pub fn new(
        store: Arc<Store>,
        registry: Arc<Registry>,
        metrics: Arc<Metrics>,
        stopped: CancellationToken,
        limits: Limits,
        admission: Arc<Admission>,
    ) -> Self {
        let identifier = format!(
            "control-plane/{} {} {}",
            env!("CARGO_PKG_VERSION"),
            store.replica(),
            store.instance_id()
        );
        Self {
            snapshots: SnapshotBuilder::attach(&store),
            store,
            registry,
            metrics,
            stopped,
            limits,
            identifier,
            admission,
        }
    }

    /// The service to add to a tonic server, with `config`'s request size
    /// cap.
    pub fn into_server(self, config: &AdsConfig) -> AdsServer {
        AdsServer {
            service: Arc::new(self),
            max_request_bytes: config.max_request_bytes,
        }
    }

    /// Opens one ADS stream: starts its task and returns the response.
    fn open(
        &self,
        request: http::Request<tonic::body::Body>,
        max_request_bytes: usize,
    ) -> http::Response<tonic::body::Body> {
        if let Some(encoding) = request.headers().get("grpc-encoding")
            && encoding != "identity"
        {
            let encoding = encoding.to_str().unwrap_or("?");
            return Status::unimplemented(format!(
                "Content is compressed with `{encoding}` which isn't supported"
            ))
            .into_http();
        }
        let conn = request.extensions().get::<ConnInfo>();
        let ticket = match self.admission.admit_stream(conn) {
            Ok(ticket) => ticket,
            Err(status) => return status.into_http(),
        };
        let aged = request
            .extensions()
            .get::<ConnectionAge>()
            .map_or_else(|| self.stopped.child_token(), |age| age.0.clone());
        let peer = conn.and_then(|info| info.remote_addr).or_else(|| {
            request
                .extensions()
                .get::<TcpConnectInfo>()
                .and_then(TcpConnectInfo::remote_addr)
        });
        let inbound = Streaming::new_request(
            RequestDecoder,
            request.into_body(),
            None,
            Some(max_request_bytes),
        );
        let registration = self.registry.register(peer);
        let stream_id = registration.slot().stream_id;
        let task = StreamTask {
            session: Box::new(Session::new(
                self.store.instance_id(),
                &self.identifier,
                self.limits,
            )),
            registration,
            snapshots: self.snapshots.subscribe(),
            metrics: self.metrics.clone(),
            stopped: self.stopped.clone(),
            aged,
        };
        let (queue, responses) = queue::channel(QUEUE_DEPTH);
        let span = tracing::info_span!("ads", stream = stream_id, peer = ?peer);
        let metrics = self.metrics.clone();
        tokio::spawn(
            async move {
                // The stream holds its place until it ends.
                let _ticket = ticket;
                tracing::debug!("ADS stream opened");
                let ended = task.run(inbound, queue).await;
                metrics.stream_ended(ended.reason());
                log_end(ended);
            }
            .instrument(span),
        );
        let body = ResponseBody::new(responses, self.metrics.clone());
        let mut response = http::Response::new(tonic::body::Body::new(body));
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            tonic::metadata::GRPC_CONTENT_TYPE,
        );
        response
    }
}

/// Logs how a stream ended: a client leaving (closing, cancelling, its
/// connection closing) and the server's own endings at debug level, as
/// they are routine; a client breaking the protocol and refused requests
/// at warn level.
fn log_end(ended: Ended) {
    match ended {
        Ended::ClientClosed => tracing::debug!("ADS stream closed by the client"),
        Ended::ClientGone => tracing::debug!("ADS stream ended: the client went away"),
        Ended::ClientFailed(status) if is_disconnect(&status) => {
            tracing::debug!(
                reason = status.message(),
                "ADS stream ended: the client left"
            );
        }
        Ended::ClientFailed(status) => {
            tracing::warn!(
                code = common::error::code_name(status.code()),
                error = status.message(),
                "ADS stream ended: the client sent a broken request stream"
            );
        }
        Ended::Refused(error) => {
            tracing::warn!(%error, "ADS stream ended: request refused");
        }
        Ended::Stopping => tracing::debug!("ADS stream ended: shutting down"),
        Ended::MaxAge => {
            tracing::debug!("ADS stream ended: its connection reached its maximum age");
        }
    }
}

/// Decodes requests, starting from a small buffer.
#[derive(Debug, Clone, Copy)]
struct RequestDecoder;

impl Decoder for RequestDecoder {
    type Item = DiscoveryRequest;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<DiscoveryRequest>, Status> {
        DiscoveryRequest::decode(buf)
            .map(Some)
            .map_err(|error| Status::internal(format!("undecodable DiscoveryRequest: {error}")))
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::new(REQUEST_BUFFER, 32 * 1024)
    }
}

/// The ADS gRPC service as tonic's router takes it.
#[derive(Debug, Clone)]
pub struct AdsServer {
    service: Arc<AdsService>,
    max_request_bytes: usize,
}

impl NamedService for AdsServer {
    const NAME: &'static str = SERVICE_NAME;
}

impl tonic::codegen::Service<http::Request<tonic::body::Body>> for AdsServer {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let response = match request.uri().path() {
            STREAM_PATH => self.service.open(request, self.max_request_bytes),
            DELTA_PATH => Status::unimplemented(
                "incremental (delta) xDS is not supported by this control plane; use \
                 state-of-the-world ADS (StreamAggregatedResources)",
            )
            .into_http(),
            _ => Status::unimplemented("").into_http(),
        };
        ready(Ok(response))
    }
}
