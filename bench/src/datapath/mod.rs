//! Scenario 2: what the balancer costs on every call.
//!
//! # Design notes
//!
//! Real greeter-server processes (1, 3 and 10) on loopback, the real
//! `control-plane serve --static` in front of them for our channel, and four
//! clients in the harness process ([`clients`]). Each client is built once
//! per backend count and warmed up; then, for every concurrency, the clients
//! take turns ([`Config::reps`] rounds, each starting with the next client,
//! so slow drifts of the machine hit all of them alike) running a closed loop of unary SayHello calls
//! ([`load`]). Throughput is the best round's (the least disturbed by
//! whatever else runs on the machine; the report gives the range too);
//! latency percentiles pool every call of every round, and CPU per call
//! divides each side's CPU time over the measured windows by the calls. Everything shares the machine's cores,
//! so the absolute numbers are the machine's; the ratios between clients
//! are the point.
//!
//! # Layout
//!
//! - [`clients`]: the compared clients; [`load`]: the closed-loop load;
//! - [`tls`]: the same over mutual TLS against plaintext (`--tls`), with
//!   [`handshake`] (the cost of one handshake) and [`certs`] (the
//!   certificates, generated at start).

pub(crate) mod certs;
pub(crate) mod clients;
pub(crate) mod handshake;
pub(crate) mod load;
pub(crate) mod tls;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::procs::{self, Bins, Proc};
use crate::stats::Summary;
use clients::{Caller, ClientKind};

/// Errors of this scenario.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// Starting a process failed.
    #[error(transparent)]
    Process(#[from] procs::Error),
    /// Building a client failed.
    #[error(transparent)]
    Client(#[from] clients::Error),
}

/// What to measure.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// Backend counts.
    pub(crate) backends: Vec<usize>,
    /// Concurrent callers.
    pub(crate) concurrency: Vec<usize>,
    /// Rounds per (backends, concurrency).
    pub(crate) reps: usize,
    /// Measured time per client per round.
    pub(crate) duration: Duration,
    /// Unmeasured time before each measurement.
    pub(crate) warmup: Duration,
    /// Clients to measure (empty: all four).
    pub(crate) clients: Vec<ClientKind>,
}

impl Config {
    /// The published set.
    pub(crate) fn full() -> Self {
        Self {
            backends: vec![1, 3, 10],
            concurrency: vec![16, 64],
            reps: 6,
            duration: Duration::from_millis(800),
            warmup: Duration::from_millis(300),
            clients: Vec::new(),
        }
    }

    /// Tiny sizes, to check the harness.
    pub(crate) fn quick() -> Self {
        Self {
            backends: vec![1, 2],
            concurrency: vec![4],
            reps: 1,
            duration: Duration::from_millis(300),
            warmup: Duration::from_millis(100),
            clients: Vec::new(),
        }
    }
}

/// One (client, backends, concurrency) result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Row {
    /// The client.
    pub(crate) client: ClientKind,
    /// Backend processes.
    pub(crate) backends: usize,
    /// Concurrent callers.
    pub(crate) concurrency: usize,
    /// Answered calls per second in the best round: on a machine shared
    /// with other work, rounds fall into busier and quieter seconds, and the
    /// best one is the least disturbed.
    pub(crate) throughput: f64,
    /// Lowest and highest round.
    pub(crate) throughput_range: (f64, f64),
    /// Latency of answered calls, in ms.
    pub(crate) latency_ms: Summary,
    /// Answered calls by backend.
    pub(crate) by_backend: BTreeMap<String, u64>,
    /// Failed calls.
    pub(crate) failed: u64,
    /// Failed calls by error.
    pub(crate) errors: BTreeMap<String, u64>,
    /// CPU time of the client (harness) process per answered call, in µs.
    #[serde(default)]
    pub(crate) client_cpu_us_per_call: f64,
    /// CPU time of all backend processes per answered call, in µs.
    #[serde(default)]
    pub(crate) server_cpu_us_per_call: f64,
}

/// Everything scenario 2 measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Results {
    /// Every row.
    pub(crate) rows: Vec<Row>,
    /// Rounds per (backends, concurrency).
    pub(crate) reps: usize,
    /// Measured seconds per client per round.
    pub(crate) duration_s: f64,
}

/// Starts `count` greeter-servers on loopback, named `{prefix}{i}`.
pub(crate) async fn start_backends(
    bins: &Bins,
    prefix: &str,
    count: usize,
    extra: &[String],
) -> Result<Vec<Proc>, procs::Error> {
    let server = bins.path("greeter-server")?;
    let mut backends = Vec::with_capacity(count);
    for i in 0..count {
        let mut args = vec![
            "--listen".to_owned(),
            "127.0.0.1:0".to_owned(),
            "--name".to_owned(),
            format!("{prefix}{i}"),
        ];
        args.extend_from_slice(extra);
        backends.push(Proc::start(&format!("greeter-server {prefix}{i}"), &server, &args).await?);
    }
    Ok(backends)
}

/// Runs scenario 2.
pub(crate) async fn run(config: &Config, bins: &Bins) -> Result<Results, Error> {
    let mut rows = Vec::new();
    for &count in &config.backends {
        tracing::info!(backends = count, "data path");
        let backends = start_backends(bins, "b", count, &[]).await?;
        let addrs: Vec<_> = backends.iter().map(Proc::addr).collect();
        let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
        let args = [
            "serve".to_owned(),
            "--listen".to_owned(),
            "127.0.0.1:0".to_owned(),
            "--static".to_owned(),
            format!("greeter={}", list.join(",")),
        ];
        let control_plane =
            Proc::start("control-plane", &bins.path("control-plane")?, &args).await?;
        let set = clients::AddressSet::default();
        set.lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(addrs.iter().copied());
        let wanted = |kind| config.clients.is_empty() || config.clients.contains(&kind);
        let mut callers: Vec<(ClientKind, Caller)> = Vec::new();
        if wanted(ClientKind::Ours) {
            callers.push((ClientKind::Ours, clients::ours(control_plane.addr()).await?));
        }
        if wanted(ClientKind::Direct) {
            callers.push((ClientKind::Direct, clients::direct(addrs[0]).await?));
        }
        if wanted(ClientKind::BalanceChannel) {
            callers.push((
                ClientKind::BalanceChannel,
                clients::balance_channel(&addrs).await?,
            ));
        }
        if wanted(ClientKind::Ginepro) {
            callers.push((ClientKind::Ginepro, clients::ginepro(set, None).await?));
        }
        let contenders: Vec<_> = callers
            .into_iter()
            .map(|(kind, caller)| (kind, caller, &backends[..]))
            .collect();
        warm_up(&contenders, config).await;
        for &concurrency in &config.concurrency {
            for (kind, loads) in rounds(&contenders, concurrency, config).await {
                rows.push(row(kind, count, concurrency, loads));
            }
        }
        drop(contenders);
        drop(control_plane);
        drop(backends);
    }
    Ok(Results {
        rows,
        reps: config.reps,
        duration_s: config.duration.as_secs_f64(),
    })
}

/// A client under measurement: what it is called, the client, and the
/// backend processes its calls reach (whose CPU time is charged to it).
pub(crate) type Contender<'a, K> = (K, Caller, &'a [Proc]);

/// Sends a few calls through every contender, so connections and caches
/// exist before anything is measured.
pub(crate) async fn warm_up<K>(contenders: &[Contender<'_, K>], config: &Config) {
    for (_, caller, _) in contenders {
        load::run_for(caller, 4, Duration::ZERO, config.warmup).await;
    }
}

/// [`Config::reps`] rounds at `concurrency`, the contenders taking turns
/// (each round starting with the next, so no contender always runs right
/// after the same one): every measured load, with the CPU time its
/// backends used meanwhile, by contender.
pub(crate) async fn rounds<K: Ord + Copy>(
    contenders: &[Contender<'_, K>],
    concurrency: usize,
    config: &Config,
) -> BTreeMap<K, Vec<(load::Load, u64)>> {
    let mut rounds: BTreeMap<K, Vec<(load::Load, u64)>> = BTreeMap::new();
    for round in 0..config.reps {
        let order = (0..contenders.len()).map(|i| (i + round) % contenders.len());
        for (key, caller, backends) in order.map(|i| &contenders[i]) {
            load::run_for(caller, concurrency, Duration::ZERO, config.warmup).await;
            let server_cpu = || backends.iter().map(Proc::cpu_ns).sum::<u64>();
            let server_before = server_cpu();
            let load = load::run_for(caller, concurrency, Duration::ZERO, config.duration).await;
            let server_ns = server_cpu().saturating_sub(server_before);
            rounds.entry(*key).or_default().push((load, server_ns));
        }
    }
    rounds
}

/// One row from a contender's rounds.
pub(crate) fn row(
    client: ClientKind,
    backends: usize,
    concurrency: usize,
    loads: Vec<(load::Load, u64)>,
) -> Row {
    let mut throughputs: Vec<f64> = loads.iter().map(|(l, _)| l.throughput()).collect();
    throughputs.sort_by(f64::total_cmp);
    let mut latencies = Vec::new();
    let mut by_backend = BTreeMap::new();
    let mut errors = BTreeMap::new();
    let mut failed = 0;
    let (mut calls, mut client_ns, mut server_ns) = (0, 0, 0);
    for (load, server) in loads {
        calls += load.ok;
        client_ns += load.client_cpu_ns;
        server_ns += server;
        latencies.extend(load.latencies_ms);
        for (backend, n) in load.by_backend {
            *by_backend.entry(backend).or_default() += n;
        }
        for (error, n) in load.errors {
            *errors.entry(error).or_default() += n;
        }
        failed += load.failed;
    }
    Row {
        client,
        backends,
        concurrency,
        throughput: throughputs.last().copied().unwrap_or(0.0),
        throughput_range: (
            throughputs.first().copied().unwrap_or(0.0),
            throughputs.last().copied().unwrap_or(0.0),
        ),
        latency_ms: Summary::of(latencies),
        by_backend,
        failed,
        errors,
        client_cpu_us_per_call: client_ns as f64 / 1e3 / calls.max(1) as f64,
        server_cpu_us_per_call: server_ns as f64 / 1e3 / calls.max(1) as f64,
    }
}
