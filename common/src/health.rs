//! `grpc.health.v1` for a server that drains.
//!
//! tonic-health keeps every `Watch` stream open for as long as its reporter
//! lives. A graceful shutdown waits for open streams, so a single watching
//! client (a prober, a client-side health checker) would hold the drain until
//! its grace period runs out. [`StoppableHealth`] wraps tonic-health's service
//! and ends every `Watch` stream with UNAVAILABLE once the server stops; the
//! statuses themselves still come from tonic-health's `HealthReporter`.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tonic_health::server::{HealthReporter, HealthService};

/// tonic-health's service, with `Watch` streams that end on stop.
#[derive(Debug)]
pub struct StoppableHealth {
    inner: HealthService,
    stopped: CancellationToken,
}

/// Builds the health service for `reporter`'s statuses. Cancelling `stopped`
/// ends every open and future `Watch` stream.
pub fn service(
    reporter: HealthReporter,
    stopped: CancellationToken,
) -> HealthServer<StoppableHealth> {
    HealthServer::new(StoppableHealth {
        inner: HealthService::from_health_reporter(reporter),
        stopped,
    })
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Health for StoppableHealth {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        self.inner.check(request).await
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let statuses = self.inner.watch(request).await?.into_inner();
        let stopped = self.stopped.clone().cancelled_owned();
        let end =
            futures::stream::once(async { Err(Status::unavailable("server is shutting down")) });
        Ok(Response::new(Box::pin(
            statuses.take_until(stopped).chain(end),
        )))
    }
}

/// Serves `grpc.health.v1` alone, in plaintext, on `listener` until
/// `stopped` is cancelled: the port for kubelet gRPC probes (which cannot
/// speak TLS) next to a TLS serving port. It tells only the statuses of
/// `reporter`; no other service is reachable through it.
pub async fn serve_plaintext(
    listener: tokio::net::TcpListener,
    reporter: HealthReporter,
    stopped: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let counters = std::sync::Arc::new(crate::incoming::ConnCounters::default());
    tonic::transport::Server::builder()
        .add_service(service(reporter, stopped.clone()))
        .serve_with_incoming_shutdown(
            crate::incoming::accept(listener, counters, None),
            stopped.cancelled_owned(),
        )
        .await
}
