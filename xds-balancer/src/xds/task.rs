//! The I/O around the ADS state machine: connect, stream, reconnect, and
//! the subscriptions of the channels sharing the stream.
//!
//! This file holds the task's loop and its stream sessions; `connect` opens
//! a stream (one attempt), and `publish` sends each subscription its
//! resolution.

mod connect;
mod publish;

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use self::connect::status_text;
pub(crate) use self::connect::{AdsStream, ConnectError, TaskSettings, open};
use self::publish::Explanation;
use super::state::AdsState;
use crate::backoff::BackoffState;
use crate::model::TargetResolution;
use crate::view::ControlPlaneStatus;

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
}
