//! The I/O around the ADS state machine: connect, stream, reconnect.

use std::time::{Duration, SystemTime};

use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};

use super::XdsView;
use super::state::AdsState;
use crate::backoff::{Backoff, BackoffState};
use crate::error::error_chain;
use crate::model::{EndpointHealth, Resolution};

/// How to reach the control plane.
#[derive(Debug, Clone)]
pub(crate) struct TaskSettings {
    pub(crate) uri: String,
    pub(crate) connect_timeout: Duration,
    pub(crate) keepalive_interval: Option<Duration>,
    pub(crate) keepalive_timeout: Duration,
    pub(crate) backoff: Backoff,
}

/// Why a connection to the control plane failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    /// The URI is not usable.
    #[error("{0:?} is not a valid control plane URI: {1}")]
    Uri(String, String),
    /// The connection failed.
    #[error("cannot connect to the control plane at {0}: {1}")]
    Connect(String, String),
}

impl ConnectError {
    /// What went wrong, without the address (for status lines that name it).
    pub(crate) fn cause(&self) -> &str {
        match self {
            ConnectError::Uri(_, cause) | ConnectError::Connect(_, cause) => cause,
        }
    }
}

/// Connects to the control plane (one attempt).
pub(crate) async fn connect(settings: &TaskSettings) -> Result<Channel, ConnectError> {
    let mut endpoint = Endpoint::from_shared(settings.uri.clone())
        .map_err(|e| ConnectError::Uri(settings.uri.clone(), error_chain(&e)))?
        .connect_timeout(settings.connect_timeout)
        .tcp_nodelay(true);
    if let Some(interval) = settings.keepalive_interval {
        // The discovery stream idles for long stretches: keep probing it so
        // a vanished control plane is noticed.
        endpoint = endpoint
            .http2_keep_alive_interval(interval)
            .keep_alive_timeout(settings.keepalive_timeout)
            .keep_alive_while_idle(true);
    }
    endpoint
        .connect()
        .await
        .map_err(|e| ConnectError::Connect(settings.uri.clone(), error_chain(&e)))
}

/// Starts the discovery task; `first` is an already connected channel.
pub(crate) fn spawn(
    state: AdsState,
    settings: TaskSettings,
    first: Option<Channel>,
    view: watch::Sender<XdsView>,
    stop: CancellationToken,
) {
    let task = Task {
        state,
        settings,
        view,
        stop,
    };
    tokio::spawn(task.run(first));
}

struct Task {
    state: AdsState,
    settings: TaskSettings,
    view: watch::Sender<XdsView>,
    stop: CancellationToken,
}

impl Task {
    async fn run(mut self, mut first: Option<Channel>) {
        let mut backoff = BackoffState::new(self.settings.backoff);
        loop {
            let channel = match first.take() {
                Some(channel) => Ok(channel),
                None => tokio::select! {
                    () = self.stop.cancelled() => return,
                    result = connect(&self.settings) => result.map_err(|e| e.cause().to_owned()),
                },
            };
            let error = match channel {
                Ok(channel) => match self.session(channel, &mut backoff).await {
                    Some(error) => error,
                    None => return,
                },
                Err(error) => error,
            };
            tracing::warn!(control_plane = %self.settings.uri, %error, "control plane unreachable; keeping the last endpoints");
            self.view.send_modify(|view| {
                let cp = &mut view.control_plane;
                cp.connected = false;
                cp.unreachable_since.get_or_insert_with(SystemTime::now);
                cp.last_error = Some(error);
            });
            tokio::select! {
                () = self.stop.cancelled() => return,
                () = tokio::time::sleep(backoff.next_delay()) => {}
            }
        }
    }

    /// Runs one stream; returns why it ended, or `None` when stopped.
    async fn session(&mut self, channel: Channel, backoff: &mut BackoffState) -> Option<String> {
        let (tx, rx) = mpsc::unbounded_channel::<DiscoveryRequest>();
        for request in self.state.on_stream_start() {
            let _ = tx.send(request);
        }
        let mut client = AggregatedDiscoveryServiceClient::new(channel)
            .max_decoding_message_size(64 * 1024 * 1024);
        let response = tokio::select! {
            () = self.stop.cancelled() => return None,
            response = client.stream_aggregated_resources(UnboundedReceiverStream::new(rx)) => response,
        };
        let mut inbound = match response {
            Ok(response) => response.into_inner(),
            Err(status) => return Some(format!("the discovery stream was refused: {status}")),
        };
        tracing::info!(control_plane = %self.settings.uri, "discovery stream open");
        self.view.send_modify(|view| {
            let cp = &mut view.control_plane;
            cp.connected = true;
            cp.unreachable_since = None;
            cp.last_error = None;
        });
        loop {
            let message = tokio::select! {
                () = self.stop.cancelled() => return None,
                message = inbound.message() => message,
            };
            let response = match message {
                Ok(Some(response)) => response,
                Ok(None) => return Some("the control plane ended the discovery stream".into()),
                Err(status) => {
                    return Some(format!(
                        "the discovery stream failed: {}",
                        status_text(&status)
                    ));
                }
            };
            backoff.reset();
            let type_url = response.type_url.clone();
            let version = response.version_info.clone();
            let outcome = self.state.on_response(response);
            for request in outcome.requests {
                let _ = tx.send(request);
            }
            let resolution = outcome.changed.then(|| self.state.resolution());
            match &outcome.nack {
                Some(reason) => {
                    tracing::warn!(type_url, version, %reason, "rejected an update (NACK); keeping the last good one");
                }
                None => tracing::debug!(type_url, version, "accepted an update"),
            }
            self.view.send_if_modified(|view| {
                let cp = &mut view.control_plane;
                match outcome.nack {
                    Some(reason) => cp.last_nack = Some(reason),
                    None => cp.last_update = Some(SystemTime::now()),
                }
                if let Some(resolution) = resolution
                    && resolution != view.resolution
                {
                    log_resolution(&resolution);
                    view.resolution = resolution;
                }
                true
            });
        }
    }
}

fn log_resolution(resolution: &Resolution) {
    match resolution {
        Resolution::Endpoints { cluster, endpoints } => {
            let count = |health| endpoints.iter().filter(|e| e.health == health).count();
            tracing::info!(
                cluster,
                healthy = count(EndpointHealth::Healthy),
                draining = count(EndpointHealth::Draining),
                not_ready = count(EndpointHealth::NotReady),
                "endpoints updated"
            );
        }
        Resolution::Waiting(what) => tracing::info!(%what, "waiting for discovery"),
        Resolution::DoesNotExist(what) => {
            tracing::warn!(%what, "the control plane says the service does not exist");
        }
        Resolution::Unusable(reason) => tracing::warn!(%reason, "the service cannot be used"),
    }
}

fn status_text(status: &tonic::Status) -> String {
    let mut text = format!("{:?}: {}", status.code(), status.message());
    if let Some(source) = std::error::Error::source(status) {
        text.push_str(": ");
        text.push_str(&error_chain(source));
    }
    text
}
