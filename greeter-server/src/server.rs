//! Serving and the graceful drain.
//!
//! A rollout loses no call only if each step happens in order:
//!
//! 1. On a stop request, health turns NOT_SERVING at once, so the control
//!    plane (or the kubelet's readiness probe) takes the instance out of
//!    rotation.
//! 2. The server keeps answering for the drain delay, because clients
//!    learn of step 1 a little later and calls already on their way must
//!    still succeed.
//! 3. It stops accepting connections and sends GOAWAY on every open one;
//!    health `Watch` streams end; in-flight calls may finish within the grace
//!    period.
//!
//! A second stop request skips whatever is left.

use std::future;
use std::sync::Arc;
use std::time::Duration;

use common::incoming::{self, ConnCounters};
use common::tls::ServerTls;
use futures::{Stream, StreamExt};
use proto::greet::greeter_server::GreeterServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;

use crate::health::HealthControl;
use crate::service::GreeterService;

/// Default `--drain-delay`.
pub const DEFAULT_DRAIN_DELAY: Duration = Duration::from_secs(5);
/// Default `--grace`.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(20);

/// What [`run`] needs besides the listener.
#[derive(Debug, Clone)]
pub struct Config {
    /// Instance name put in every reply's `served_by`.
    pub name: String,
    /// How long to keep answering after a stop request, with health
    /// NOT_SERVING, before refusing new connections.
    pub drain_delay: Duration,
    /// How long in-flight calls may take to finish once new connections are
    /// refused.
    pub grace: Duration,
    /// Serve TLS (mutual TLS when it has a client CA); plaintext when `None`.
    pub tls: Option<ServerTls>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            name: common::hostname(),
            drain_delay: DEFAULT_DRAIN_DELAY,
            grace: DEFAULT_GRACE,
            tls: None,
        }
    }
}

/// Errors that end [`run`] early.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Server reflection could not be set up from the descriptors.
    #[error("failed to build the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The HTTP/2 server failed.
    #[error("the gRPC server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// How the drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainOutcome {
    /// Every in-flight call finished within the grace period.
    Clean,
    /// The grace period ran out with calls still in flight; they were cut.
    GraceExpired {
        /// Calls cut off.
        in_flight: usize,
    },
    /// A second stop request ended the drain early.
    Forced,
}

/// Serves on `listener` until the first item of `stop`, then drains.
///
/// Each item of `stop` is a stop request (its value names the cause, for
/// the logs): the first starts the drain, the second cuts it short.
pub async fn run<S>(
    listener: TcpListener,
    config: Config,
    health: HealthControl,
    mut stop: S,
) -> Result<DrainOutcome, Error>
where
    S: Stream<Item = &'static str> + Unpin,
{
    let stopped = CancellationToken::new();
    let greeter = GreeterService::new(&config.name);
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let counters = Arc::new(ConnCounters::default());

    let serve = Server::builder()
        .add_service(common::health::service(health.reporter(), stopped.clone()))
        .add_service(GreeterServer::new(greeter.clone()))
        .add_service(reflection)
        .add_service(reflection_alpha)
        .serve_with_incoming_shutdown(
            incoming::accept(listener, counters.clone(), config.tls.clone()),
            stopped.clone().cancelled_owned(),
        );
    let mut serve = std::pin::pin!(serve);

    let cause = tokio::select! {
        result = &mut serve => {
            result?;
            return Ok(DrainOutcome::Clean);
        }
        cause = next_stop(&mut stop) => cause,
    };
    health.begin_drain().await;
    tracing::info!(
        cause,
        drain_delay = ?config.drain_delay,
        in_flight = greeter.in_flight(),
        "stop requested: health is NOT_SERVING; still answering during the drain delay"
    );

    let forced = tokio::select! {
        result = &mut serve => {
            result?;
            return Ok(DrainOutcome::Clean);
        }
        () = tokio::time::sleep(config.drain_delay) => false,
        cause = next_stop(&mut stop) => {
            tracing::warn!(cause, "second stop request: skipping the rest of the drain");
            true
        }
    };

    stopped.cancel();
    if forced {
        return Ok(DrainOutcome::Forced);
    }
    tracing::info!(
        grace = ?config.grace,
        in_flight = greeter.in_flight(),
        connections_accepted = counters.accepted(),
        "drain delay over: refusing new connections, GOAWAY sent, waiting for in-flight calls"
    );
    tokio::select! {
        result = tokio::time::timeout(config.grace, &mut serve) => match result {
            Ok(result) => {
                result?;
                tracing::info!("drained: every in-flight call finished");
                Ok(DrainOutcome::Clean)
            }
            Err(_) => {
                let in_flight = greeter.in_flight();
                tracing::warn!(in_flight, grace = ?config.grace, "grace period over: cutting calls still in flight");
                Ok(DrainOutcome::GraceExpired { in_flight })
            }
        },
        cause = next_stop(&mut stop) => {
            tracing::warn!(cause, in_flight = greeter.in_flight(), "second stop request: not waiting for in-flight calls");
            Ok(DrainOutcome::Forced)
        }
    }
}

/// The next stop request; never resolves once the stream has ended.
async fn next_stop<S>(stop: &mut S) -> &'static str
where
    S: Stream<Item = &'static str> + Unpin,
{
    match stop.next().await {
        Some(cause) => cause,
        None => future::pending().await,
    }
}
