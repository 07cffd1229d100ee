//! The demo's script: set-up, then the six phases ([`crate::phases`]), each
//! a series of segments with their own call counts.
//!
//! Every wait in the script waits for something observable (a child's
//! `listening` line, the client's endpoint set changing, a process exiting)
//! with a deadline; fixed sleeps are used only for the "let it run so you
//! can watch" stretches.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use xds_balancer::{
    Backoff, CertificateProvider, ConnectionState, ControlPlaneTls, EndpointHealth, EndpointSet,
    RetryPolicy,
};

use crate::cluster::{self, Cluster, Timings};
use crate::load::LoadConfig;
use crate::phases;
use crate::screen::{Live, Screen};
use crate::stats::{Recorder, Segment};

/// How long the script waits for the client to see a change.
pub(crate) const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);
/// Backends at the start.
pub(crate) const BACKENDS: usize = 3;

/// Errors that stop the demo.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The cluster failed.
    #[error(transparent)]
    Cluster(#[from] cluster::Error),
    /// The client did not see an expected change in time.
    #[error("the client did not see {what} within {timeout:?} (it sees: {seen})")]
    ClientTimeout {
        /// What was expected.
        what: String,
        /// How long the demo waited.
        timeout: Duration,
        /// The client's endpoints at the time.
        seen: String,
    },
    /// The client could not be set up.
    #[error("failed to set up the client: {0}")]
    Client(String),
    /// The balancer could not start.
    #[error(transparent)]
    Balancer(#[from] demo::balancer::Error),
}

/// What the demo was asked for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    /// The load.
    pub(crate) load: LoadConfig,
    /// The servers' timings.
    pub(crate) timings: Timings,
    /// How long each "watch it run" stretch lasts.
    pub(crate) steady: Duration,
    /// How long the control plane stays down in phase 6.
    pub(crate) control_plane_down: Duration,
    /// Whether the client retries SayHello under a retry policy.
    pub(crate) retry: bool,
}

/// What a run produced: every segment, and facts per phase.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Every segment, in order.
    pub(crate) segments: Vec<Segment>,
    /// Facts per phase (1-based), for the summary and the JSON.
    pub(crate) facts: BTreeMap<usize, Map<String, Value>>,
    /// Phases that ran to the end.
    pub(crate) completed: usize,
}

/// The state the phases share.
pub(crate) struct Run<'a> {
    pub(crate) cluster: &'a mut Cluster,
    pub(crate) screen: Arc<Screen>,
    pub(crate) recorder: Arc<Recorder>,
    pub(crate) settings: Settings,
    pub(crate) facts: BTreeMap<usize, Map<String, Value>>,
    /// The current phase (1-based).
    pub(crate) phase: usize,
}

impl Run<'_> {
    /// Starts a new segment of the current phase.
    pub(crate) fn segment(&self, label: impl Into<String>) {
        self.recorder.segment(self.phase, label);
    }

    /// Records a fact about the current phase.
    pub(crate) fn fact(&mut self, key: &str, value: impl Into<Value>) {
        self.facts
            .entry(self.phase)
            .or_default()
            .insert(key.to_owned(), value.into());
    }

    /// Lets the load run for one "watch it" stretch.
    pub(crate) async fn steady(&self) {
        tokio::time::sleep(self.settings.steady).await;
    }

    /// Shows the running backends in the table, oldest first.
    pub(crate) fn show_backends(&self) {
        self.screen.set_backends(self.cluster.names());
    }

    /// Waits until the client's endpoint set meets `done`, and returns how
    /// long that took.
    pub(crate) async fn wait_client(
        &self,
        endpoints: &watch::Receiver<EndpointSet>,
        what: &str,
        done: impl Fn(&EndpointSet) -> bool,
    ) -> Result<Duration, Error> {
        let started = Instant::now();
        let mut endpoints = endpoints.clone();
        let met = tokio::time::timeout(CLIENT_TIMEOUT, endpoints.wait_for(|set| done(set)))
            .await
            .is_ok_and(|seen| seen.is_ok());
        match met {
            true => Ok(started.elapsed()),
            false => Err(Error::ClientTimeout {
                what: what.to_owned(),
                timeout: CLIENT_TIMEOUT,
                seen: describe(&endpoints.borrow()),
            }),
        }
    }
}

/// Whether the client sends calls to `name`.
pub(crate) fn takes_calls(set: &EndpointSet, name: &str) -> bool {
    set.ready().any(|e| e.hostname == name)
}

/// The client's view of each backend, for the live table.
pub(crate) fn live_view(set: &EndpointSet) -> Live {
    let states = set
        .endpoints
        .iter()
        .map(|e| {
            let label = match (e.connection, e.health) {
                (ConnectionState::Ready, _) => "ready",
                (ConnectionState::Connecting, _) => "connecting",
                (ConnectionState::NotServing, _) => "NOT_SERVING (health check)",
                (ConnectionState::Ejected, _) => "ejected: connection lost",
                (ConnectionState::Closing, _) => "closing: in-flight calls finish",
                (ConnectionState::Idle, Some(EndpointHealth::NotReady)) => {
                    "not ready (control plane)"
                }
                (ConnectionState::Idle, Some(EndpointHealth::Draining)) => "draining",
                _ => "idle",
            };
            (e.hostname.clone(), label.to_owned())
        })
        .collect();
    let note = if set.control_plane.connected {
        "control plane: connected".to_owned()
    } else {
        "control plane: UNREACHABLE (client balances over the last endpoints it got)".to_owned()
    };
    Live { states, note }
}

/// The client's endpoints in one line, for error messages.
fn describe(set: &EndpointSet) -> String {
    let endpoints: Vec<String> = set
        .endpoints
        .iter()
        .map(|e| format!("{} {:?}/{:?}", e.hostname, e.health, e.connection))
        .collect();
    format!(
        "{:?}; [{}]; control plane connected: {}",
        set.service,
        endpoints.join(", "),
        set.control_plane.connected
    )
}

/// The xDS-fed client every phase after the first uses.
pub(crate) async fn connect_client(
    cluster: &Cluster,
    retry: bool,
) -> Result<xds_balancer::Channel, Error> {
    let addr = cluster
        .control_plane_addr()
        .ok_or_else(|| Error::Client("the control plane is not running".to_owned()))?;
    let mut builder = xds_balancer::Builder::new(format!("xds:///{}", cluster::SERVICE))
        .node_id("demo-client")
        // One machine: reconnect and re-probe quickly.
        .backoff(Backoff::fast(), Backoff::fast());
    builder = match cluster.tls() {
        None => builder.control_plane(format!("http://{addr}")),
        // Every hop over mTLS: to the control plane (https), and to the
        // greeter-servers as the control plane's Cluster says.
        Some(tls) => builder
            .control_plane(format!("https://{addr}"))
            .control_plane_tls(
                ControlPlaneTls::new(tls.path("ca.crt"))
                    .with_identity(tls.path("client.crt"), tls.path("client.key")),
            )
            .certificate_provider(
                "default",
                CertificateProvider::roots(tls.path("ca.crt"))
                    .with_identity(tls.path("client.crt"), tls.path("client.key")),
            ),
    };
    if retry {
        builder = builder.retry_policy(RetryPolicy::for_methods(["/greet.Greeter/SayHello"]));
    }
    builder
        .connect()
        .await
        .map_err(|error| Error::Client(error.to_string()))
}

/// Shows the calls of every second until dropped.
pub(crate) struct Ticker(JoinHandle<()>);

impl Ticker {
    /// Starts ticking.
    pub(crate) fn start(screen: Arc<Screen>, recorder: Arc<Recorder>) -> Self {
        Self(tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_secs(1));
            ticks.tick().await;
            let mut last = Instant::now();
            loop {
                ticks.tick().await;
                let window = recorder.take_window();
                let now = Instant::now();
                screen.tick(&window, now - last, recorder.in_flight());
                last = now;
            }
        }))
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts the cluster, runs every phase, and returns what happened: the
/// [`Outcome`] covers whatever ran, also when a phase failed (the error).
pub(crate) async fn run(
    cluster: &mut Cluster,
    screen: Arc<Screen>,
    recorder: Arc<Recorder>,
    settings: Settings,
) -> (Outcome, Option<Error>) {
    let mut run = Run {
        cluster,
        screen,
        recorder: recorder.clone(),
        settings,
        facts: BTreeMap::new(),
        phase: 0,
    };
    let _ticker = Ticker::start(run.screen.clone(), recorder.clone());
    let mut completed = 0;
    let result = async {
        set_up(&mut run).await?;
        phases::run_all(&mut run, &mut completed).await
    }
    .await;
    let outcome = Outcome {
        segments: recorder.segments(),
        facts: std::mem::take(&mut run.facts),
        completed,
    };
    (outcome, result.err())
}

async fn set_up(run: &mut Run<'_>) -> Result<(), Error> {
    run.screen
        .print("Starting the system (every part is a real process on 127.0.0.1):\n");
    for _ in 0..BACKENDS {
        let name = run.cluster.start_backend().await?;
        run.cluster.list(&name, true)?;
    }
    for backend in run.cluster.backends() {
        run.screen.say(&format!(
            "greeter-server {} listening on {}",
            backend.name, backend.addr
        ));
    }
    let addr = run.cluster.start_control_plane().await?;
    run.screen.say(&format!(
        "control plane listening on {addr}: static source, watching {} (probing every backend's grpc.health.v1)",
        run.cluster.file().display()
    ));
    run.screen.say(&format!(
        "client: SayHello at {} calls/s, each with a {:?} deadline{}",
        run.settings.load.rate,
        run.settings.load.timeout,
        if run.settings.retry {
            ", retried on another backend when its connection fails (--retry)"
        } else {
            ""
        }
    ));
    run.show_backends();
    Ok(())
}
