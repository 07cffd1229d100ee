//! The `envoy.service.discovery.v3.AggregatedDiscoveryService` gRPC
//! service: state-of-the-world ADS, one [`StreamTask`] per stream.

use std::pin::Pin;
use std::sync::Arc;

use common::incoming::ConnInfo;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use super::registry::Registry;
use super::session::{Limits, Session};
use super::stream::{Ended, QUEUE_DEPTH, StreamTask};
use crate::metrics::Metrics;
use crate::store::Store;

/// Default cap on one decoded request, in bytes. A request at the names cap
/// with typical names is far smaller.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

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
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    stopped: CancellationToken,
    limits: Limits,
    identifier: String,
}

impl AdsService {
    /// Serves `store`'s resources, listing clients in `registry`; every
    /// stream ends (UNAVAILABLE) when `stopped` is cancelled.
    pub fn new(
        store: Arc<Store>,
        registry: Arc<Registry>,
        metrics: Arc<Metrics>,
        stopped: CancellationToken,
        limits: Limits,
    ) -> Self {
        let identifier = format!(
            "control-plane/{} {} {}",
            env!("CARGO_PKG_VERSION"),
            store.replica(),
            store.instance_id()
        );
        Self {
            store,
            registry,
            metrics,
            stopped,
            limits,
            identifier,
        }
    }

    /// The tonic service, with `config`'s request size cap.
    pub fn into_server(self, config: &AdsConfig) -> AggregatedDiscoveryServiceServer<Self> {
        AggregatedDiscoveryServiceServer::new(self)
            .max_decoding_message_size(config.max_request_bytes)
    }
}

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsService {
    type StreamAggregatedResourcesStream = ResponseStream<DiscoveryResponse>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let peer = request
            .extensions()
            .get::<ConnInfo>()
            .and_then(|info| info.remote_addr)
            .or_else(|| request.remote_addr());
        let inbound = request.into_inner();
        let session = Session::new(self.store.instance_id(), &self.identifier, self.limits);
        let registration = self.registry.register(peer, session);
        let stream_id = registration.slot().stream_id;
        let task = StreamTask {
            registration,
            snapshots: self.store.subscribe(),
            metrics: self.metrics.clone(),
            stopped: self.stopped.clone(),
        };
        let (queue, responses) = mpsc::channel(QUEUE_DEPTH);
        let span = tracing::info_span!("ads", stream = stream_id, peer = ?peer);
        tokio::spawn(
            async move {
                tracing::debug!("ADS stream opened");
                match task.run(inbound, queue).await {
                    Ended::ClientClosed => tracing::info!("ADS stream closed by the client"),
                    Ended::ClientGone => tracing::info!("ADS stream ended: the client went away"),
                    Ended::Stopping => tracing::debug!("ADS stream ended: shutting down"),
                    Ended::ClientFailed(status) => {
                        tracing::info!(code = ?status.code(), message = status.message(), "ADS stream ended by a client error");
                    }
                    Ended::Refused(error) => {
                        tracing::warn!(%error, "ADS stream ended: request refused");
                    }
                }
            }
            .instrument(span),
        );
        let metrics = self.metrics.clone();
        let written = ReceiverStream::new(responses).map(move |item| {
            item.map(|outgoing| {
                metrics.response_written(outgoing.kind, outgoing.changed_at);
                outgoing.response
            })
        });
        Ok(Response::new(Box::pin(written)))
    }

    type DeltaAggregatedResourcesStream = ResponseStream<DeltaDiscoveryResponse>;

    async fn delta_aggregated_resources(
        &self,
        _request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        Err(Status::unimplemented(
            "incremental (delta) xDS is not supported by this control plane; use \
             state-of-the-world ADS (StreamAggregatedResources)",
        ))
    }
}
