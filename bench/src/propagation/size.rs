//! One size of scenario 1: a fresh control plane serving `endpoints`
//! endpoints, `subscribers` subscribers of one kind connected to it, then
//! the trials of single and burst changes, summarised into rows.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::task::JoinHandle;

use super::board::{Board, fingerprint};
use super::rows::{Change, Outcome, Row, SubscriberKind, trial_summary};
use super::{CONNECT_CONCURRENCY, Config, Error, FD_MARGIN, SERVICE, channel, raw};
use crate::cphost::{self, Host, endpoint_addr};
use crate::peers::{ControlPlane, Peer};
use crate::procs::{Bins, Proc};
use crate::stats::Summary;

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
pub(super) async fn run_size(
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
