//! Scenario 1: how fast a readiness change reaches every subscriber, and
//! what the fan-out costs the control plane.
//!
//! # Design notes
//!
//! For each (subscribers, endpoints) pair a fresh control plane is started
//! in its own process ([`crate::cphost`]), serving one service; its CPU
//! time and resident memory are read from that process alone. Subscribers
//! live in the harness process:
//!
//! - raw ADS streams ([`raw`]) for every size, one TCP connection each
//!   while the file-descriptor limit allows (the row says how many streams
//!   share a connection otherwise);
//! - xds-balancer channels ([`channel`]) where subscribers × endpoints
//!   stays within the connection budget (each channel also connects to
//!   every ready endpoint: 127.0.X.Y addresses all served by one
//!   greeter-server listening on 0.0.0.0).
//!
//! A *single* change toggles one endpoint's readiness (odd trials turn it
//! back); a *burst* toggles `burst` endpoints with one upsert each, back to
//! back. Latency runs from the clock stamp just before the (last) upsert to
//! the moment a subscriber holds the new set; for bursts it is also given
//! from the first upsert. Subscribers may skip intermediate sets of a burst
//! (the control plane sends the newest state), which `updates_per_subscriber`
//! shows.
//!
//! Peer control planes ([`crate::peers`]) run at every size in their own
//! process too, speaking the host's protocol, with the same raw ADS
//! subscribers and the same changes, right after ours.
//!
//! Both processes share the machine's cores, so at large sizes the
//! subscribers' own decoding competes with the control plane: the
//! figures are an upper bound of what a control plane with its own cores
//! would show.

mod board;
mod channel;
mod e2e;
mod raw;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::clock;
use crate::cphost::{self, Host, endpoint_addr};
use crate::peers::{ControlPlane, Peer};
use crate::procs::{self, Bins, Proc};
use crate::stats::Summary;
use board::{Board, fingerprint};

/// The service subscribed to.
const SERVICE: &str = cphost::SERVICE;
/// How many subscribers connect at once.
const CONNECT_CONCURRENCY: usize = 128;
/// File descriptors kept free of subscriber connections.
const FD_MARGIN: u64 = 1024;

/// Errors of this scenario.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// Starting or driving the control-plane host failed.
    #[error(transparent)]
    Host(#[from] cphost::Error),
    /// Starting a process failed.
    #[error(transparent)]
    Process(#[from] procs::Error),
    /// A subscriber could not connect.
    #[error("a subscriber could not connect: {0}")]
    Subscriber(String),
    /// Not every subscriber received the initial endpoint set.
    #[error(
        "not all {subscribers} subscribers received the initial endpoint set; failures: {failures:?}"
    )]
    Setup {
        /// How many were started.
        subscribers: usize,
        /// What went wrong, as reported.
        failures: Vec<String>,
    },
}

/// Which client the subscribers are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum SubscriberKind {
    /// Raw ADS streams that decode every ClusterLoadAssignment.
    RawAds,
    /// xds-balancer `Channel`s.
    Channel,
}

/// One change, or a burst of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Change {
    /// One endpoint's readiness toggles.
    Single,
    /// Several endpoints toggle, one upsert each, back to back.
    Burst,
}

/// What to measure.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// Subscriber counts.
    pub(crate) subscribers: Vec<usize>,
    /// Endpoints per service.
    pub(crate) endpoints: Vec<usize>,
    /// Largest subscribers × endpoints measured with xds-balancer
    /// channels (each one connects to every endpoint).
    pub(crate) channel_budget: usize,
    /// Single-change trials per size: (up to this many subscribers, trials).
    pub(crate) single_trials: Vec<(usize, usize)>,
    /// Burst trials per size, likewise.
    pub(crate) burst_trials: Vec<(usize, usize)>,
    /// Changes per burst.
    pub(crate) burst: usize,
    /// Subscriber counts of the end-to-end (health flip) rows.
    pub(crate) e2e_subscribers: Vec<usize>,
    /// Trials of the end-to-end rows.
    pub(crate) e2e_trials: usize,
}

impl Config {
    /// The published set.
    pub(crate) fn full() -> Self {
        Self {
            subscribers: vec![1, 100, 1000, 10_000],
            endpoints: vec![10, 1000],
            channel_budget: 10_000,
            single_trials: vec![(1000, 40), (usize::MAX, 12)],
            burst_trials: vec![(1000, 10), (usize::MAX, 4)],
            burst: 10,
            e2e_subscribers: vec![1, 100],
            e2e_trials: 20,
        }
    }

    /// Tiny sizes, to check the harness.
    pub(crate) fn quick() -> Self {
        Self {
            subscribers: vec![1, 4],
            endpoints: vec![10],
            channel_budget: 40,
            single_trials: vec![(usize::MAX, 4)],
            burst_trials: vec![(usize::MAX, 2)],
            burst: 3,
            e2e_subscribers: vec![2],
            e2e_trials: 2,
        }
    }

    fn trials(table: &[(usize, usize)], subscribers: usize) -> usize {
        table
            .iter()
            .find(|(up_to, _)| subscribers <= *up_to)
            .map_or(1, |(_, trials)| *trials)
    }
}

/// One row of the results.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Row {
    /// Where the change came from.
    pub(crate) source: String,
    /// The control plane measured (results from before peers were
    /// measured are all ours).
    #[serde(default)]
    pub(crate) control_plane: ControlPlane,
    /// Which client subscribed.
    pub(crate) client: SubscriberKind,
    /// Subscribers.
    pub(crate) subscribers: usize,
    /// Endpoints of the service.
    pub(crate) endpoints: usize,
    /// ADS streams per TCP connection.
    pub(crate) streams_per_connection: usize,
    /// Single change or burst.
    pub(crate) change: Change,
    /// Upserts per trial.
    pub(crate) changes_per_trial: usize,
    /// Trials run.
    pub(crate) trials: usize,
    /// (subscriber, trial) pairs that never saw the new set within the
    /// trial's time limit.
    pub(crate) missed: usize,
    /// From the (last) change to each subscriber holding the new set,
    /// over every subscriber and trial, in ms.
    pub(crate) per_subscriber_ms: Summary,
    /// Bursts: the same from the first change of the burst.
    pub(crate) from_first_ms: Option<Summary>,
    /// Per trial: from the (last) change to the last subscriber, in ms.
    pub(crate) to_last_ms: Summary,
    /// ClusterLoadAssignment updates each subscriber took per trial.
    pub(crate) updates_per_subscriber: Option<f64>,
    /// Control-plane CPU time (user + system) per trial, in ms.
    pub(crate) cp_cpu_ms_per_trial: Option<f64>,
    /// The control plane's own view (its update-latency histogram, change
    /// applied → response handed to HTTP/2): mean over every response, ms.
    pub(crate) cp_written_mean_ms: Option<f64>,
    /// Per trial, the histogram bucket bound under which the last response
    /// was handed to HTTP/2 (p50 and max over trials), in ms.
    pub(crate) cp_written_last_ms: Option<Summary>,
    /// CPU time the subscribers' process spent per subscriber per trial
    /// (receiving, decoding, ACKing; for channels also reconnecting to an
    /// endpoint that came back), in µs.
    pub(crate) subscriber_cpu_us: Option<f64>,
    /// Control-plane resident memory per idle subscriber, in KiB.
    pub(crate) cp_memory_per_subscriber_kib: Option<f64>,
    /// Seconds until every subscriber had the initial set.
    pub(crate) setup_s: f64,
}

/// Everything scenario 1 measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Results {
    /// Rows driven by `SourceHandle::upsert` in the control-plane host.
    pub(crate) rows: Vec<Row>,
    /// Rows driven by a backend's health flip, end to end.
    pub(crate) e2e: Vec<Row>,
    /// The open-files limit subscriber connections had to fit in.
    pub(crate) fd_limit: u64,
    /// The peer control planes measured, with versions.
    #[serde(default)]
    pub(crate) peers: Vec<String>,
    /// Peers that could not run here, and why.
    #[serde(default)]
    pub(crate) skipped_peers: Vec<String>,
}

/// One trial's arrivals, relative to its changes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outcome {
    from_last_ms: Vec<f64>,
    from_first_ms: Vec<f64>,
    to_last_ms: Option<f64>,
    missed: usize,
}

impl Outcome {
    fn from_arrivals(arrivals: &[Option<u64>], first_ns: u64, last_ns: u64) -> Self {
        let mut outcome = Self::default();
        for arrival in arrivals {
            match arrival {
                Some(at) => {
                    outcome.from_last_ms.push(clock::ms_between(last_ns, *at));
                    outcome.from_first_ms.push(clock::ms_between(first_ns, *at));
                }
                None => outcome.missed += 1,
            }
        }
        if outcome.missed == 0 {
            outcome.to_last_ms = outcome.from_last_ms.iter().copied().reduce(f64::max);
        }
        outcome
    }
}

/// Per-subscriber (from the last change), per-subscriber from the first
/// change, time to the last subscriber, and misses, over `outcomes`.
fn trial_summary(outcomes: &[Outcome]) -> (Summary, Summary, Summary, usize) {
    let all = |f: fn(&Outcome) -> &Vec<f64>| -> Vec<f64> {
        outcomes.iter().flat_map(|o| f(o).iter().copied()).collect()
    };
    (
        Summary::of(all(|o| &o.from_last_ms)),
        Summary::of(all(|o| &o.from_first_ms)),
        Summary::of(outcomes.iter().filter_map(|o| o.to_last_ms).collect()),
        outcomes.iter().map(|o| o.missed).sum(),
    )
}

/// Raises the open-files limit to its hard limit and returns it.
fn raise_fd_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) => {
            if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
                hard
            } else {
                soft
            }
        }
        Err(_) => 1024,
    }
}

/// The largest subscribers × endpoints a peer runs at. go-control-plane at
/// 10 000 subscribers and 1 000 endpoints held about 950 MB and missed the
/// host's 120 s reply limit after more than 8 minutes on this machine.
const PEER_BUDGET: usize = 1_000_000;

/// Runs scenario 1 with our control plane and `peers` (`skipped_peers`
/// are named in the results).
pub(crate) async fn run(
    config: &Config,
    bins: &Bins,
    peers: &[Peer],
    mut skipped_peers: Vec<String>,
) -> Result<Results, Error> {
    let fd_limit = raise_fd_limit();
    let mut rows = Vec::new();
    for &endpoints in &config.endpoints {
        for &subscribers in &config.subscribers {
            tracing::info!(subscribers, endpoints, "propagation: raw ADS subscribers");
            rows.extend(
                run_size(
                    config,
                    bins,
                    None,
                    SubscriberKind::RawAds,
                    subscribers,
                    endpoints,
                    fd_limit,
                )
                .await?,
            );
            for peer in peers {
                if subscribers * endpoints > PEER_BUDGET {
                    skipped_peers.push(format!(
                        "{} at {subscribers} subscribers and {endpoints} endpoints: not run \
                         (above {PEER_BUDGET} subscribers × endpoints)",
                        peer.control_plane.label()
                    ));
                    continue;
                }
                tracing::info!(
                    subscribers,
                    endpoints,
                    peer = peer.control_plane.label(),
                    "propagation: raw ADS subscribers of a peer"
                );
                // A peer that fails at one size loses that row, not the run:
                // the failure is reported beside the skipped peers.
                match run_size(
                    config,
                    bins,
                    Some(peer),
                    SubscriberKind::RawAds,
                    subscribers,
                    endpoints,
                    fd_limit,
                )
                .await
                {
                    Ok(peer_rows) => rows.extend(peer_rows),
                    Err(error) => {
                        let label = peer.control_plane.label();
                        tracing::warn!(
                            subscribers,
                            endpoints,
                            peer = label,
                            "propagation: the peer failed at this size: {error:#}"
                        );
                        skipped_peers.push(format!(
                            "{label} at {subscribers} subscribers and {endpoints} endpoints: {error:#}"
                        ));
                    }
                }
            }
            if subscribers * endpoints <= config.channel_budget {
                tracing::info!(subscribers, endpoints, "propagation: xds-balancer channels");
                rows.extend(
                    run_size(
                        config,
                        bins,
                        None,
                        SubscriberKind::Channel,
                        subscribers,
                        endpoints,
                        fd_limit,
                    )
                    .await?,
                );
            }
        }
    }
    tracing::info!("propagation: end to end (health flips)");
    let e2e = e2e::run(bins, &config.e2e_subscribers, config.e2e_trials).await?;
    Ok(Results {
        rows,
        e2e,
        fd_limit,
        peers: peers.iter().map(|p| p.description.clone()).collect(),
        skipped_peers,
    })
}

/// Subscribers of one size, and what keeps them running.
struct Subscribers {
    tasks: Vec<JoinHandle<()>>,
    streams_per_connection: usize,
}

impl Drop for Subscribers {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn start_raw(
    host: &Host,
    count: usize,
    fd_limit: u64,
    board: &Arc<Board>,
) -> Result<Subscribers, Error> {
    let budget = usize::try_from(fd_limit.saturating_sub(FD_MARGIN).max(1)).unwrap_or(usize::MAX);
    let per_connection = count.div_ceil(budget).max(1);
    let connections = count.div_ceil(per_connection);
    let uri = format!("http://{}", host.addr());
    let naming = control_plane::names::Naming::new(cphost::NAMESPACE);
    let names = Arc::new(raw::Names {
        listener: SERVICE.to_owned(),
        cluster: naming.cluster_name(SERVICE, cphost::SERVICE_PORT),
    });
    let channels: Vec<_> = futures::stream::iter(0..connections)
        .map(|_| {
            let uri = uri.clone();
            async move {
                tonic::transport::Endpoint::from_shared(uri)
                    .map_err(|e| Error::Subscriber(e.to_string()))?
                    .connect_timeout(Duration::from_secs(30))
                    .connect()
                    .await
                    .map_err(|e| {
                        Error::Subscriber(format!("{e}: {:?}", std::error::Error::source(&e)))
                    })
            }
        })
        .buffer_unordered(CONNECT_CONCURRENCY)
        .collect()
        .await;
    let channels = channels.into_iter().collect::<Result<Vec<_>, _>>()?;
    let tasks = (0..count)
        .map(|index| {
            let channel = channels[index / per_connection].clone();
            raw::spawn(index, channel, names.clone(), board.clone())
        })
        .collect();
    Ok(Subscribers {
        tasks,
        streams_per_connection: per_connection,
    })
}

async fn start_channels(
    host: &Host,
    count: usize,
    board: &Arc<Board>,
) -> Result<Subscribers, Error> {
    let addr = host.addr();
    let channels: Vec<_> = futures::stream::iter(0..count)
        .map(|index| async move { (index, channel::connect(index, addr, SERVICE).await) })
        .buffer_unordered(CONNECT_CONCURRENCY)
        .collect()
        .await;
    let mut tasks = Vec::with_capacity(count);
    for (index, channel) in channels {
        let channel = channel.map_err(|e| Error::Subscriber(e.to_string()))?;
        tasks.push(channel::watch(index, channel, board.clone()));
    }
    Ok(Subscribers {
        tasks,
        streams_per_connection: 1,
    })
}

/// The fingerprint of the not-ready endpoints in `ready`.
fn expected(ready: &[bool], port: u16) -> u64 {
    fingerprint(
        ready
            .iter()
            .enumerate()
            .filter(|(_, ready)| !**ready)
            .map(|(i, _)| endpoint_addr(i, port)),
    )
}

/// Pause after a trial so connection churn and ACKs settle.
fn settle(kind: SubscriberKind, subscribers: usize, toggled: usize) -> Duration {
    match kind {
        SubscriberKind::RawAds => {
            Duration::from_millis(20) + Duration::from_micros(3 * subscribers as u64)
        }
        SubscriberKind::Channel => (Duration::from_millis(50)
            + Duration::from_micros(40 * (subscribers * toggled) as u64))
        .min(Duration::from_secs(3)),
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_size(
    config: &Config,
    bins: &Bins,
    peer: Option<&Peer>,
    kind: SubscriberKind,
    subscribers: usize,
    endpoints: usize,
    fd_limit: u64,
) -> Result<Vec<Row>, Error> {
    // Channels dial the endpoints: one greeter-server answers them all.
    let backend = match kind {
        SubscriberKind::Channel => {
            let args = [
                "--listen".to_owned(),
                "0.0.0.0:0".to_owned(),
                "--name".to_owned(),
                "endpoints".to_owned(),
            ];
            Some(
                Proc::start(
                    "greeter-server (endpoints)",
                    &bins.path("greeter-server")?,
                    &args,
                )
                .await?,
            )
        }
        SubscriberKind::RawAds => None,
    };
    let port = backend.as_ref().map_or(8080, |b| b.addr().port());
    let mut host = Host::start(peer.map(|p| p.program.as_path()), port).await?;
    let control_plane = peer.map_or(ControlPlane::Ours, |p| p.control_plane);
    host.create(endpoints).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle = host.stats().await?;

    let board = Arc::new(Board::new(subscribers));
    let mut ready = vec![true; endpoints];
    board.expect(expected(&ready, port));
    let started = Instant::now();
    let subs = match kind {
        SubscriberKind::RawAds => start_raw(&host, subscribers, fd_limit, &board).await?,
        SubscriberKind::Channel => start_channels(&host, subscribers, &board).await?,
    };
    if !board.wait_all(Duration::from_secs(300)).await {
        return Err(Error::Setup {
            subscribers,
            failures: board.failures(),
        });
    }
    let setup_s = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let loaded = host.stats().await?;
    let memory_kib =
        loaded.rss_bytes.saturating_sub(idle.rss_bytes) as f64 / subscribers as f64 / 1024.0;

    let mut rows = Vec::new();
    for change in [Change::Single, Change::Burst] {
        let (trials, per_trial) = match change {
            Change::Single => (Config::trials(&config.single_trials, subscribers), 1),
            Change::Burst => (
                Config::trials(&config.burst_trials, subscribers),
                config.burst.min(endpoints),
            ),
        };
        let before = host.stats().await?;
        let own_before = crate::machine::cpu_ns();
        let updates_before = board.updates();
        let mut outcomes = Vec::with_capacity(trials);
        let mut written_bounds = Vec::with_capacity(trials);
        let (mut written_count, mut written_sum_ms) = (0, 0.0);
        for trial in 0..trials {
            let window = (trial / 2) % (endpoints / per_trial).max(1);
            let indices: Vec<usize> = (window * per_trial..(window + 1) * per_trial).collect();
            for &i in &indices {
                ready[i] = !ready[i];
            }
            board.expect(expected(&ready, port));
            let written_before = host.stats().await?.written;
            let flipped = host.flip(&indices).await?;
            board.wait_all(Duration::from_secs(60)).await;
            let (count, mean_ms, bound_ms) = host.stats().await?.written.since(&written_before);
            written_count += count;
            written_sum_ms += mean_ms * count as f64;
            written_bounds.push(bound_ms);
            outcomes.push(Outcome::from_arrivals(
                &board.arrivals(),
                flipped.first_ns,
                flipped.last_ns,
            ));
            tokio::time::sleep(settle(kind, subscribers, per_trial)).await;
        }
        let after = host.stats().await?;
        let own_cpu_ns = crate::machine::cpu_ns().saturating_sub(own_before);
        let updates = board.updates() - updates_before;
        let (per_subscriber_ms, from_first_ms, to_last_ms, missed) = trial_summary(&outcomes);
        rows.push(Row {
            source: match peer {
                None => "SourceHandle::upsert (control-plane host process)".to_owned(),
                Some(peer) => format!("{} (peer process)", peer.control_plane.label()),
            },
            control_plane,
            client: kind,
            subscribers,
            endpoints,
            streams_per_connection: subs.streams_per_connection,
            change,
            changes_per_trial: per_trial,
            trials,
            missed,
            per_subscriber_ms,
            from_first_ms: (change == Change::Burst).then_some(from_first_ms),
            to_last_ms,
            updates_per_subscriber: (kind == SubscriberKind::RawAds)
                .then(|| updates as f64 / (subscribers * trials) as f64),
            cp_cpu_ms_per_trial: Some(
                after.cpu_ns.saturating_sub(before.cpu_ns) as f64 / 1e6 / trials as f64,
            ),
            subscriber_cpu_us: Some(own_cpu_ns as f64 / 1e3 / (subscribers * trials) as f64),
            cp_memory_per_subscriber_kib: Some(memory_kib),
            cp_written_mean_ms: (written_count > 0).then(|| written_sum_ms / written_count as f64),
            cp_written_last_ms: (written_count > 0).then(|| Summary::of(written_bounds)),
            setup_s,
        });
    }
    let failures = board.failures();
    if !failures.is_empty() {
        tracing::warn!(
            count = failures.len(),
            first = failures[0],
            "subscribers failed"
        );
    }
    drop(subs);
    host.shutdown().await;
    drop(backend);
    Ok(rows)
}
