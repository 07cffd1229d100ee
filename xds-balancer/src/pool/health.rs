//! Client-side health checking: a `grpc.health.v1.Health/Watch` stream on
//! each endpoint's own connection, as gRPC's clients do it.
//!
//! SERVING puts the connection in rotation, anything else takes it out
//! (the connection stays open). A server without the health service
//! (UNIMPLEMENTED) counts as serving, so turning checks on never breaks
//! calls to servers that lack it. When the stream fails otherwise, the
//! endpoint is out of rotation until a new stream reports SERVING; streams
//! are re-opened with backoff.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use http::uri::{Authority, Scheme};
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::conn::{ConnHandle, RequestBody, SendError};
use super::stream::RecvBody;
use crate::backoff::{Backoff, BackoffState};

/// What a health stream reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Health {
    Serving,
    NotServing,
}

/// A tower service sending every request on one connection, for the health
/// client.
#[derive(Debug, Clone)]
struct Direct {
    conn: Arc<ConnHandle>,
    authority: Authority,
}

impl tower::Service<http::Request<RequestBody>> for Direct {
    type Response = http::Response<RecvBody>;
    type Error = tonic::Status;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: http::Request<RequestBody>) -> Self::Future {
        super::conn::set_origin(&mut request, Scheme::HTTP, &self.authority);
        let send = self.conn.send(request);
        let conn = self.conn.clone();
        Box::pin(async move {
            send.await
                .map_err(|error: SendError| error.status(&conn.label()))
        })
    }
}

type WatchStream = tonic::Streaming<tonic_health::pb::HealthCheckResponse>;

/// The health stream of one connection, re-opened as needed.
pub(crate) struct HealthWatch {
    client: HealthClient<Direct>,
    service: String,
    stream: Option<WatchStream>,
    backoff: BackoffState,
    /// Whether the last stream failed (so the next open waits first).
    failed: bool,
    /// The server has no health service: serving for as long as the
    /// connection lives.
    unimplemented: bool,
}

impl std::fmt::Debug for HealthWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthWatch")
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl HealthWatch {
    pub(crate) fn new(
        conn: Arc<ConnHandle>,
        authority: Authority,
        service: String,
        backoff: Backoff,
    ) -> Self {
        Self {
            client: HealthClient::new(Direct { conn, authority }),
            service,
            stream: None,
            backoff: BackoffState::new(backoff),
            failed: false,
            unimplemented: false,
        }
    }

    /// The next health report. Cancel-safe between reports.
    pub(crate) async fn next(&mut self) -> Health {
        loop {
            if self.unimplemented {
                return std::future::pending().await;
            }
            let Some(stream) = self.stream.as_mut() else {
                if self.failed {
                    tokio::time::sleep(self.backoff.next_delay()).await;
                }
                let request = HealthCheckRequest {
                    service: self.service.clone(),
                };
                match self.client.watch(request).await {
                    Ok(response) => {
                        self.stream = Some(response.into_inner());
                        continue;
                    }
                    Err(status) if status.code() == Code::Unimplemented => {
                        tracing::debug!(
                            "the endpoint has no health service; counting it as serving"
                        );
                        self.unimplemented = true;
                        return Health::Serving;
                    }
                    Err(status) => {
                        self.failed = true;
                        tracing::debug!(%status, "health watch failed");
                        return Health::NotServing;
                    }
                }
            };
            match stream.message().await {
                Ok(Some(message)) => {
                    self.backoff.reset();
                    self.failed = false;
                    return if message.status == ServingStatus::Serving as i32 {
                        Health::Serving
                    } else {
                        Health::NotServing
                    };
                }
                Ok(None) | Err(_) => {
                    self.stream = None;
                    self.failed = true;
                    return Health::NotServing;
                }
            }
        }
    }
}
