//! Serving the control plane: ADS, the status API, `grpc.health.v1` and
//! server reflection on one port, Prometheus metrics on another, and the
//! shutdown.
//!
//! Health (service `""` and each API's name) is NOT_SERVING until the
//! source's first full sync, so a readiness probe keeps clients away from a
//! control plane that would hand them an empty world. On a stop request
//! health turns NOT_SERVING, every ADS stream ends with UNAVAILABLE (clients
//! keep their last endpoints and reconnect), health watches end, and
//! in-flight unary calls get the grace period to finish.
//!
//! - `connection.rs`: serving each connection (HTTP/2), its maximum age.
//! - `observe.rs`: the state gauges of `/metrics`, read at scrape time.

mod connection;
mod observe;

use std::future;
use std::sync::Arc;
use std::time::Duration;

use common::incoming::{self, ConnCounters};
use common::tls::ServerTls;
use futures::{Stream, StreamExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::service::Routes;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

pub use self::connection::AGE_JITTER;

use crate::metrics::{self, Metrics};
use crate::status::StatusService;
use crate::store::Store;
use crate::xds::admission::{Admission, AdmissionConfig};
use crate::xds::registry::Registry;
use crate::xds::server::{AdsConfig, AdsService};

/// Default time in-flight calls get to finish after a stop request.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);
/// HTTP/2 PING interval on idle connections, so clients that vanished
/// without closing (a deleted pod) are noticed and their streams freed.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// How long a PING may go unanswered before the connection is dropped.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default maximum connection age: clients move to another replica about
/// every half hour (as Istio's istiod does), so a rollout's imbalance is
/// gone within that; each reconnect costs one full resubscription.
pub const DEFAULT_MAX_CONNECTION_AGE: Duration = Duration::from_secs(30 * 60);
/// Default time calls in flight get after a connection's maximum age.
pub const DEFAULT_MAX_CONNECTION_AGE_GRACE: Duration = Duration::from_secs(10);

const ADS_SERVICE: &str = "envoy.service.discovery.v3.AggregatedDiscoveryService";
const STATUS_SERVICE: &str = proto::controlplane::v1::control_plane_status_server::SERVICE_NAME;
/// Names whose health is reported.
const HEALTH_SERVICES: [&str; 3] = ["", ADS_SERVICE, STATUS_SERVICE];

/// What [`run`] needs besides the listener and the store.
#[derive(Debug, Default)]
pub struct Config {
    /// ADS limits.
    pub ads: AdsConfig,
    /// Time in-flight calls get after a stop request; [`DEFAULT_GRACE`]
    /// when zero.
    pub grace: Duration,
    /// Where to serve `/metrics`, if anywhere.
    pub metrics_listener: Option<TcpListener>,
    /// Where to serve grpc.health.v1 alone in plaintext (for kubelet gRPC
    /// probes next to a TLS port), if anywhere.
    pub health_listener: Option<TcpListener>,
    /// Serve TLS (mutual TLS when it has a client CA); plaintext when `None`.
    pub tls: Option<ServerTls>,
    /// Who may subscribe, and how many streams at most.
    pub admission: AdmissionConfig,
    /// Connections older than this (±[`AGE_JITTER`]) are closed after
    /// GOAWAY, ending their ADS streams so that clients reconnect (to any
    /// replica); `None`: never.
    pub max_connection_age: Option<Duration>,
    /// After a connection's maximum age, how long its other calls get to
    /// finish.
    pub max_connection_age_grace: Duration,
}

/// Errors that end [`run`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Server reflection could not be set up.
    #[error("failed to build the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// How the server stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every connection finished within the grace period.
    Clean,
    /// The grace period ran out; remaining connections were cut.
    GraceExpired,
    /// A second stop request cut the shutdown short.
    Forced,
}

/// Serves `store` on `listener` until the first item of `stop` (its value
/// names the cause, for the logs), then shuts down; a second item cuts the
/// shutdown short.
pub async fn run<S>(
    listener: TcpListener,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    config: Config,
    mut stop: S,
) -> Result<Outcome, Error>
where
    S: Stream<Item = &'static str> + Unpin,
{
    let stopped = CancellationToken::new();
    let registry = Registry::new(metrics.clone());
    let health = HealthReporter::new();
    set_health(&health, ServingStatus::NotServing).await;
    let readiness = tokio::spawn(serve_when_synced(store.clone(), health.clone()));
    if let Some(listener) = config.health_listener {
        let (health, stopped) = (health.clone(), stopped.clone());
        tokio::spawn(async move {
            if let Err(error) = common::health::serve_plaintext(listener, health, stopped).await {
                tracing::error!(%error, "the health port failed");
            }
        });
    }
    if let Some(listener) = config.metrics_listener {
        let observer = observe::observer(store.clone(), registry.clone());
        tokio::spawn(metrics::http::serve(
            listener,
            metrics.clone(),
            observer,
            stopped.clone(),
        ));
    }

    let admission = Arc::new(Admission::new(config.admission.clone(), metrics.clone()));
    let transport = match &config.tls {
        None => "plaintext",
        Some(tls) if tls.is_mutual() => "mtls",
        Some(_) => "tls",
    };
    let ads = AdsService::new(
        store.clone(),
        registry.clone(),
        metrics,
        stopped.clone(),
        config.ads.limits,
        admission.clone(),
    );
    let reflection = reflection_names(tonic_reflection::server::Builder::configure())
        .with_service_name("grpc.reflection.v1.ServerReflection")
        .build_v1()?;
    let reflection_alpha = reflection_names(tonic_reflection::server::Builder::configure())
        .with_service_name("grpc.reflection.v1alpha.ServerReflection")
        .build_v1alpha()?;
    let counters = Arc::new(ConnCounters::default());
    let routes = Routes::new(common::health::service(health.clone(), stopped.clone()))
        .add_service(ads.into_server(&config.ads))
        .add_service(
            StatusService::new(store, registry.clone(), admission, transport).into_server(),
        )
        .add_service(reflection)
        .add_service(reflection_alpha)
        .prepare();
    let settings = connection::Settings {
        keepalive_interval: KEEPALIVE_INTERVAL,
        keepalive_timeout: KEEPALIVE_TIMEOUT,
        max_age: config.max_connection_age.filter(|age| !age.is_zero()),
        max_age_grace: config.max_connection_age_grace,
    };
    let forced = CancellationToken::new();
    // Cut every connection left when this returns, however it returns.
    let _forced = forced.clone().drop_guard();
    let tracker = TaskTracker::new();
    let accepting = tokio::spawn(connection::serve(
        incoming::accept(listener, counters.clone(), config.tls.clone()),
        routes,
        settings,
        stopped.clone(),
        forced.clone(),
        tracker.clone(),
    ));

    let cause = next_stop(&mut stop).await;
    // Stopped first, so it cannot turn health back to SERVING.
    readiness.abort();
    let _ = readiness.await;
    set_health(&health, ServingStatus::NotServing).await;
    tracing::info!(
        cause,
        clients = registry.len(),
        connections_accepted = counters.accepted(),
        "stop requested: health NOT_SERVING, closing ADS streams"
    );
    stopped.cancel();
    // The accept loop ends at once (closing the listening socket); every
    // connection task it started is in the tracker by then.
    let _ = accepting.await;
    tracker.close();
    let grace = if config.grace.is_zero() {
        DEFAULT_GRACE
    } else {
        config.grace
    };
    tokio::select! {
        result = tokio::time::timeout(grace, tracker.wait()) => match result {
            Ok(()) => Ok(Outcome::Clean),
            Err(_) => {
                tracing::warn!(?grace, "grace period over: cutting remaining connections");
                Ok(Outcome::GraceExpired)
            }
        },
        cause = next_stop(&mut stop) => {
            tracing::warn!(cause, "second stop request: not waiting for connections to finish");
            Ok(Outcome::Forced)
        }
    }
}

fn reflection_names(
    builder: tonic_reflection::server::Builder<'static>,
) -> tonic_reflection::server::Builder<'static> {
    builder
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name(STATUS_SERVICE)
        .with_service_name("grpc.health.v1.Health")
        // Listed by name only: envoy-types ships no descriptors for it.
        .with_service_name(ADS_SERVICE)
}

async fn set_health(health: &HealthReporter, status: ServingStatus) {
    for service in HEALTH_SERVICES {
        health.set_service_status(service, status).await;
    }
}

/// Turns health SERVING once the source has finished its first sync. A
/// source that cannot reach its origin before that (`Disconnected` without
/// ever being `Connected`) has nothing to serve yet, so it does not count.
async fn serve_when_synced(store: Arc<Store>, health: HealthReporter) {
    let mut snapshots = store.subscribe();
    let synced = snapshots.wait_for(|s| s.synced).await.is_ok();
    if synced {
        set_health(&health, ServingStatus::Serving).await;
        tracing::info!("source synced: health is SERVING");
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
