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
//!
//! # Layout
//!
//! This file runs the sizes in turn; [`size`] measures one size and
//! [`e2e`] the end-to-end rows, into the [`rows`] they record. Subscribers
//! are [`raw`] ADS streams or xds-balancer [`channel`]s, and each reports
//! what it holds on a shared [`board`].

mod board;
mod channel;
mod e2e;
mod raw;
mod rows;
mod size;

use crate::cphost;
use crate::peers::Peer;
use crate::procs::{self, Bins};
pub(crate) use rows::{Change, Results, Row, SubscriberKind};
use size::run_size;

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
