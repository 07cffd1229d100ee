//! The I/O around the ADS state machine: connect, stream, reconnect, and
//! the subscriptions of the channels sharing the stream.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};

use tls_reload::client::{ClientTls, Connector, Note, ServerVerification};

use super::state::AdsState;
use crate::backoff::{Backoff, BackoffState};
use crate::bootstrap::ControlPlaneTls;
use crate::error::error_chain;
use crate::model::{EndpointHealth, Resolution, TargetResolution};
use crate::view::ControlPlaneStatus;

/// How to reach the control plane.
#[derive(Debug, Clone)]
pub(crate) struct TaskSettings {
    pub(crate) uri: String,
    /// TLS to it, when `uri` is `https://`.
    pub(crate) tls: Option<(ClientTls, ServerVerification)>,
    /// The files `tls` comes from (what tells two clients' TLS apart).
    pub(crate) tls_files: Option<ControlPlaneTls>,
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
    /// The server answered the stream, but not as an ADS server.
    #[error("the control plane at {0} refused the discovery stream: {1}")]
    Refused(String, tonic::Status),
}

impl ConnectError {
    /// What went wrong, without the address (for status lines that name it).
    pub(crate) fn cause(&self) -> String {
        match self {
            ConnectError::Uri(_, cause) | ConnectError::Connect(_, cause) => cause.clone(),
            ConnectError::Refused(_, status) if status.code() == tonic::Code::Unimplemented => {
                "it does not implement xDS ADS (it answered the discovery stream with \
                 UNIMPLEMENTED); is this the control plane's port (18000)?"
                    .to_owned()
            }
            ConnectError::Refused(_, status) => {
                format!("the discovery stream was refused: {}", status_text(status))
            }
        }
    }

    /// Whether the server is a gRPC server without the ADS service.
    pub(crate) fn not_ads(&self) -> bool {
        matches!(self, ConnectError::Refused(_, status) if status.code() == tonic::Code::Unimplemented)
    }
}

/// An open ADS stream: requests go in, responses come out.
pub(crate) struct AdsStream {
    requests: mpsc::UnboundedSender<DiscoveryRequest>,
    responses: tonic::Streaming<DiscoveryResponse>,
    /// The connection, for other calls to the control plane.
    channel: Channel,
}

impl std::fmt::Debug for AdsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdsStream").finish_non_exhaustive()
    }
}

/// Connects to the control plane and opens the ADS stream (one attempt):
/// the server's answer to the stream's headers tells an ADS server from
/// any other.
pub(crate) async fn open(settings: &TaskSettings) -> Result<AdsStream, ConnectError> {
    let (channel, note) = connect(settings).await?;
    let (requests, rx) = mpsc::unbounded_channel::<DiscoveryRequest>();
    let mut client = AggregatedDiscoveryServiceClient::new(channel.clone())
        .max_decoding_message_size(64 * 1024 * 1024);
    let opened = tokio::time::timeout(
        settings.connect_timeout,
        client.stream_aggregated_resources(UnboundedReceiverStream::new(rx)),
    )
    .await
    .map_err(|_| {
        ConnectError::Connect(
            settings.uri.clone(),
            format!(
                "no answer to the discovery stream within {:?}",
                settings.connect_timeout
            ),
        )
    })?;
    match opened {
        Ok(response) => Ok(AdsStream {
            requests,
            responses: response.into_inner(),
            channel,
        }),
        // A TLS failure surfacing after the handshake (a client certificate
        // refused) shows as a closed stream: its noted cause says more.
        Err(status) => Err(match note.get() {
            Some(failure) => ConnectError::Connect(settings.uri.clone(), failure.to_string()),
            None => ConnectError::Refused(settings.uri.clone(), status),
        }),
    }
}

/// Connects to the control plane (one attempt).
async fn connect(settings: &TaskSettings) -> Result<(Channel, Note), ConnectError> {
    // With TLS the connector runs the handshake: tonic gets http://.
    let uri = match &settings.tls {
        Some(_) => settings.uri.replacen("https://", "http://", 1),
        None => settings.uri.clone(),
    };
    let mut endpoint = Endpoint::from_shared(uri)
        .map_err(|e| ConnectError::Uri(settings.uri.clone(), error_chain(&e)))?
        .connect_timeout(settings.connect_timeout)
        .tcp_nodelay(true)
        .user_agent(format!("{}/{}", crate::USER_AGENT_NAME, crate::VERSION))
        .map_err(|e| ConnectError::Uri(settings.uri.clone(), error_chain(&e)))?;
    if let Some(interval) = settings.keepalive_interval {
        // The discovery stream idles for long stretches: keep probing it so
        // a vanished control plane is noticed.
        endpoint = endpoint
            .http2_keep_alive_interval(interval)
            .keep_alive_timeout(settings.keepalive_timeout)
            .keep_alive_while_idle(true);
    }
    let connector = Connector::new(settings.tls.clone());
    let note = connector.note();
    let channel = endpoint
        .connect_with_connector(connector)
        .await
        .map_err(|e| {
            // A TLS failure says its cause; the transport error would not.
            let cause = note
                .get()
                .map_or_else(|| error_chain(&e), |f| f.to_string());
            ConnectError::Connect(settings.uri.clone(), cause)
        })?;
    Ok((channel, note))
}

/// How long a stream must have served (with at least one response) for
/// its end to count as routine, reconnected at once rather than after a
/// backoff: a server that ends every stream right after answering is not
/// reconnected to in a tight loop.
const MIN_SERVING: Duration = Duration::from_secs(1);

/// How a discovery stream ended.
struct StreamEnd {
    /// Why, for people.
    why: String,
    /// Whether it had served (responses, for at least [`MIN_SERVING`]).
    answered: bool,
}

/// What the channels sharing the task ask of it.
#[derive(Debug)]
pub(crate) enum Command {
    /// Follow `target` and publish its resolution on `tx`.
    Subscribe {
        id: u64,
        target: String,
        tx: watch::Sender<TargetResolution>,
    },
    /// The subscription `id` is gone.
    Unsubscribe { id: u64 },
}

/// Starts the discovery task; `first` is an already open stream.
pub(crate) fn spawn(
    state: AdsState,
    settings: TaskSettings,
    first: Option<AdsStream>,
    commands: mpsc::UnboundedReceiver<Command>,
    control_plane: watch::Sender<ControlPlaneStatus>,
    stop: CancellationToken,
) {
    let (hints_tx, hints) = mpsc::unbounded_channel();
    let task = Task {
        state,
        settings,
        commands,
        watchers: HashMap::new(),
        control_plane,
        stream: None,
        hints,
        hints_tx,
        explained: HashMap::new(),
        stop,
    };
    tokio::spawn(task.run(first));
}

/// One subscription's sender.
#[derive(Debug)]
struct Watcher {
    target: String,
    tx: watch::Sender<TargetResolution>,
}

/// The control plane's word on a missing target.
#[derive(Debug)]
enum Explanation {
    /// Asked; until the answer comes the target counts as still waiting,
    /// so that no call fails with less than the whole story.
    Asking,
    /// Its answer (`None`: it had nothing to say, or did not answer).
    Answered(Option<String>),
}

struct Task {
    state: AdsState,
    settings: TaskSettings,
    commands: mpsc::UnboundedReceiver<Command>,
    watchers: HashMap<u64, Watcher>,
    control_plane: watch::Sender<ControlPlaneStatus>,
    /// Where requests go while a stream is open, and its connection.
    stream: Option<(mpsc::UnboundedSender<DiscoveryRequest>, Channel)>,
    /// The control plane's explanations of missing targets, as they come.
    hints: mpsc::UnboundedReceiver<(String, Option<String>)>,
    hints_tx: mpsc::UnboundedSender<(String, Option<String>)>,
    /// Missing targets asked about, with the answer once it came.
    explained: HashMap<String, Explanation>,
    stop: CancellationToken,
}

/// Why waiting for something ended early.
enum Interrupted {
    Stopped,
}

impl Task {
    async fn run(mut self, mut first: Option<AdsStream>) {
        let mut backoff = BackoffState::new(self.settings.backoff);
        loop {
            let mut answered = false;
            let stream = match first.take() {
                Some(stream) => Ok(stream),
                None => {
                    let settings = self.settings.clone();
                    match self.serving(async move { open(&settings).await }).await {
                        Ok(result) => result.map_err(|e| e.cause()),
                        Err(Interrupted::Stopped) => return,
                    }
                }
            };
            let error = match stream {
                Ok(stream) => match self.session(stream, &mut backoff).await {
                    Ok(ended) => {
                        answered = ended.answered;
                        ended.why
                    }
                    Err(Interrupted::Stopped) => return,
                },
                Err(error) => error,
            };
            self.stream = None;
            if answered {
                // A stream that served for a while and then ended (the
                // control plane rotating its connections, or stopping):
                // routine; connect again at once, still holding the
                // endpoints. If that fails, the failure is reported below.
                tracing::info!(control_plane = %self.settings.uri, reason = %error, "discovery stream ended; reconnecting");
                continue;
            }
            tracing::warn!(control_plane = %self.settings.uri, %error, "control plane unreachable; keeping the last endpoints");
            self.control_plane.send_modify(|cp| {
                cp.connected = false;
                cp.unreachable_since.get_or_insert_with(SystemTime::now);
                cp.last_error = Some(error);
            });
            let delay = backoff.next_delay();
            if let Err(Interrupted::Stopped) = self.serving(tokio::time::sleep(delay)).await {
                return;
            }
        }
    }

    /// Waits for `future` while serving subscription changes.
    async fn serving<F: Future>(&mut self, future: F) -> Result<F::Output, Interrupted> {
        tokio::pin!(future);
        loop {
            tokio::select! {
                () = self.stop.cancelled() => return Err(Interrupted::Stopped),
                command = self.commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => return Err(Interrupted::Stopped),
                },
                Some((target, hint)) = self.hints.recv() => {
                    if let Some(slot) = self.explained.get_mut(&target) {
                        *slot = Explanation::Answered(hint);
                        self.publish();
                    }
                }
                output = &mut future => return Ok(output),
            }
        }
    }

    fn on_command(&mut self, command: Command) {
        let requests = match command {
            Command::Subscribe { id, target, tx } => {
                tx.send_replace(self.resolution(&target));
                let requests = self.state.add_target(&target);
                tracing::debug!(%target, "subscribed");
                self.watchers.insert(id, Watcher { target, tx });
                requests
            }
            Command::Unsubscribe { id } => {
                let Some(watcher) = self.watchers.remove(&id) else {
                    return;
                };
                if self.watchers.values().any(|w| w.target == watcher.target) {
                    return;
                }
                tracing::debug!(target = %watcher.target, "unsubscribed");
                self.explained.remove(&watcher.target);
                self.state.remove_target(&watcher.target)
            }
        };
        // Without a stream, the next one sends every subscription anyway.
        if let Some((stream, _)) = &self.stream {
            for request in requests {
                let _ = stream.send(request);
            }
        }
    }

    /// Runs one stream; returns how it ended.
    async fn session(
        &mut self,
        stream: AdsStream,
        backoff: &mut BackoffState,
    ) -> Result<StreamEnd, Interrupted> {
        let AdsStream {
            requests,
            responses: mut inbound,
            channel,
        } = stream;
        for request in self.state.on_stream_start() {
            let _ = requests.send(request);
        }
        self.stream = Some((requests, channel));
        tracing::info!(control_plane = %self.settings.uri, "discovery stream open");
        self.control_plane.send_modify(|cp| {
            cp.connected = true;
            cp.unreachable_since = None;
            cp.last_error = None;
        });
        let opened = Instant::now();
        let mut responses = 0_u64;
        loop {
            let why = match self.serving(inbound.message()).await? {
                Ok(Some(response)) => Ok(response),
                Ok(None) => Err("the control plane ended the discovery stream".to_owned()),
                Err(status) => Err(format!(
                    "the discovery stream failed: {}",
                    status_text(&status)
                )),
            };
            let response = match why {
                Ok(response) => response,
                Err(why) => {
                    return Ok(StreamEnd {
                        why,
                        answered: responses > 0 && opened.elapsed() >= MIN_SERVING,
                    });
                }
            };
            responses += 1;
            backoff.reset();
            let type_url = response.type_url.clone();
            let version = response.version_info.clone();
            let outcome = self.state.on_response(response);
            if let Some((stream, _)) = &self.stream {
                for request in outcome.requests {
                    let _ = stream.send(request);
                }
            }
            match outcome.nack {
                Some(reason) => {
                    tracing::warn!(type_url, version, %reason, "rejected an update (NACK); keeping the last good one");
                    self.control_plane
                        .send_modify(|cp| cp.last_nack = Some(reason));
                }
                None => {
                    tracing::debug!(type_url, version, "accepted an update");
                    // Readers see the time when they look; it wakes no one.
                    self.control_plane.send_if_modified(|cp| {
                        cp.last_update = Some(SystemTime::now());
                        false
                    });
                }
            }
            if outcome.changed {
                self.publish();
            }
        }
    }

    /// The resolution of `target`, with the control plane's explanation
    /// when its Listener does not exist.
    fn resolution(&self, target: &str) -> TargetResolution {
        let mut resolution = self.state.resolution(target);
        if let TargetResolution::DoesNotExist(what) = &mut resolution {
            match self.explained.get(target) {
                Some(Explanation::Asking) => {
                    return TargetResolution::Waiting(format!("listener {target:?}"));
                }
                Some(Explanation::Answered(Some(hint))) => {
                    what.push_str(": ");
                    what.push_str(hint);
                }
                _ => {}
            }
        }
        resolution
    }

    /// Asks the control plane about every target whose Listener does not
    /// exist (once per disappearance), and forgets the answers of targets
    /// that exist again.
    fn ask_about_missing(&mut self) {
        let targets: Vec<String> = self.state.targets().map(str::to_owned).collect();
        for target in targets {
            let missing = self.state.listener_missing(&target);
            match (missing, self.explained.contains_key(&target)) {
                (true, false) => {
                    let Some((_, channel)) = &self.stream else {
                        continue;
                    };
                    self.explained.insert(target.clone(), Explanation::Asking);
                    let tx = self.hints_tx.clone();
                    let channel = channel.clone();
                    let limit = self.settings.connect_timeout;
                    tokio::spawn(async move {
                        let hint = super::hint::explain(channel, target.clone(), limit).await;
                        let _ = tx.send((target, hint));
                    });
                }
                (false, true) => drop(self.explained.remove(&target)),
                _ => {}
            }
        }
    }

    /// Sends every subscription whose resolution changed its new value.
    fn publish(&mut self) {
        self.ask_about_missing();
        let mut resolved: HashMap<&str, TargetResolution> = HashMap::new();
        for watcher in self.watchers.values() {
            let resolution = resolved
                .entry(watcher.target.as_str())
                .or_insert_with(|| self.resolution(&watcher.target));
            watcher.tx.send_if_modified(|current| {
                if current == resolution {
                    return false;
                }
                log_resolution(&watcher.target, resolution);
                *current = resolution.clone();
                true
            });
        }
    }
}

fn log_resolution(target: &str, resolution: &TargetResolution) {
    match resolution {
        TargetResolution::Routed { routes, clusters } => {
            for cluster in clusters {
                log_cluster(target, cluster);
            }
            if routes.clusters.len() > 1 {
                tracing::info!(
                    target,
                    routes = routes.routes().len(),
                    clusters = ?routes.clusters,
                    "routes updated"
                );
            }
        }
        TargetResolution::Waiting(what) => {
            tracing::info!(target, %what, "waiting for discovery");
        }
        TargetResolution::DoesNotExist(what) => {
            tracing::warn!(target, %what, "the control plane says the service does not exist");
        }
        TargetResolution::Unusable(reason) => {
            tracing::warn!(target, %reason, "the service cannot be used");
        }
    }
}

fn log_cluster(target: &str, resolution: &Resolution) {
    match resolution {
        Resolution::Endpoints {
            cluster,
            endpoints,
            tls,
            policy,
        } => {
            let count = |health| endpoints.iter().filter(|e| e.health == health).count();
            tracing::info!(
                target,
                cluster,
                healthy = count(EndpointHealth::Healthy),
                draining = count(EndpointHealth::Draining),
                not_ready = count(EndpointHealth::NotReady),
                priorities = endpoints
                    .iter()
                    .map(|e| e.priority)
                    .max()
                    .map_or(0, |p| p + 1),
                tls = tls.is_some(),
                ?policy,
                "endpoints updated"
            );
        }
        Resolution::Waiting(what) => tracing::info!(target, %what, "waiting for discovery"),
        Resolution::DoesNotExist(what) => {
            tracing::warn!(target, %what, "the control plane says a cluster does not exist");
        }
        Resolution::Unusable(reason) => {
            tracing::warn!(target, %reason, "a cluster cannot be used");
        }
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
