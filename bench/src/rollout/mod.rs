//! Scenario 3: failed calls during a rolling restart.
//!
//! # Design notes
//!
//! The same rollout for every approach: three greeter-server backends
//! (`v1-*`) under steady load ([`Config::concurrency`] closed-loop callers),
//! replaced one at a time by `v2-*`. Each step starts the new backend,
//! waits until it answers SERVING to a grpc.health.v1 Check, publishes it
//! to the approach's discovery, then sends SIGTERM to the old backend and
//! withdraws it from discovery at the same moment (Kubernetes takes a
//! terminating pod out of the ready endpoints and out of DNS), and waits for
//! the old process to exit. The backend drains as it does in a pod: health
//! NOT_SERVING at once, answers for `--drain-delay`, then refuses new
//! connections and sends GOAWAY, letting in-flight calls finish.
//!
//! What "discovery" is per approach:
//! - ours: the real `control-plane serve --static-file` (the file is
//!   rewritten; the control plane polls it every second and also watches
//!   each backend's health, so the SIGTERM is seen at once);
//! - DNS polling: ginepro's lookup returns the current address set when it
//!   polls, at its default interval (10 s), like records of a headless
//!   Service;
//! - "ClusterIP": the demo's per-connection TCP balancer
//!   ([`demo::balancer`]), its backend list replaced at once.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ::tests::static_file::{self, StaticFile};
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::datapath::clients::{self, AddressSet, Caller, ClientKind};
use crate::datapath::{load, start_backends};
use crate::procs::{self, Bins, Proc};
use demo::balancer::{Backend, TcpBalancer};

/// Errors of this scenario.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// Starting or signalling a process failed.
    #[error(transparent)]
    Process(#[from] procs::Error),
    /// Building a client failed.
    #[error(transparent)]
    Client(#[from] clients::Error),
    /// The static file could not be written.
    #[error(transparent)]
    StaticFile(#[from] static_file::Error),
    /// The TCP balancer could not start.
    #[error(transparent)]
    Balancer(#[from] demo::balancer::Error),
    /// A new backend never reported SERVING.
    #[error("new backend {0} did not report SERVING within 10 s")]
    NotServing(SocketAddr),
}

/// What to run.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// Backends before and after.
    pub(crate) backends: usize,
    /// Concurrent callers.
    pub(crate) concurrency: usize,
    /// The backends' `--drain-delay`.
    pub(crate) drain_delay: Duration,
    /// Load before the first and after the last step.
    pub(crate) margin: Duration,
    /// ginepro's polling interval; `None` is its default (10 s).
    pub(crate) dns_interval: Option<Duration>,
}

impl Config {
    /// The published run.
    pub(crate) fn full() -> Self {
        Self {
            backends: 3,
            concurrency: 16,
            drain_delay: Duration::from_secs(5),
            margin: Duration::from_secs(1),
            dns_interval: None,
        }
    }

    /// Tiny sizes, to check the harness.
    pub(crate) fn quick() -> Self {
        Self {
            backends: 2,
            concurrency: 4,
            drain_delay: Duration::from_millis(500),
            margin: Duration::from_millis(300),
            dns_interval: Some(Duration::from_millis(500)),
        }
    }
}

/// One approach's rollout.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Row {
    /// The approach.
    pub(crate) client: ClientKind,
    /// How it learns about backends.
    pub(crate) discovery: String,
    /// Calls answered.
    pub(crate) ok: u64,
    /// Calls failed.
    pub(crate) failed: u64,
    /// Failed calls by error.
    pub(crate) errors: BTreeMap<String, u64>,
    /// Answered calls by backend.
    pub(crate) by_backend: BTreeMap<String, u64>,
    /// Seconds (from the start of the load) at which each old backend got
    /// SIGTERM.
    pub(crate) sigterm_at_s: Vec<f64>,
    /// Seconds at which calls failed (at most [`MAX_FAILURE_TIMES`]).
    pub(crate) failures_at_s: Vec<f64>,
    /// Length of the run, in seconds.
    pub(crate) duration_s: f64,
    /// "ClusterIP": TCP connections the client opened through the balancer.
    pub(crate) l4_connections: Option<usize>,
}

/// Failure times kept per row.
pub(crate) const MAX_FAILURE_TIMES: usize = 2000;

/// Everything scenario 3 measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Results {
    /// One row per approach.
    pub(crate) rows: Vec<Row>,
    /// Backends rolled.
    pub(crate) backends: usize,
    /// Concurrent callers.
    pub(crate) concurrency: usize,
    /// The backends' drain delay, in seconds.
    pub(crate) drain_delay_s: f64,
    /// ginepro's polling interval, in seconds.
    pub(crate) dns_interval_s: f64,
}

/// Where an approach learns about backends.
enum Discovery {
    Ours {
        file: StaticFile,
        _control_plane: Box<Proc>,
    },
    Dns(AddressSet),
    ClusterIp(TcpBalancer),
}

impl Discovery {
    fn publish(&self, addrs: &[SocketAddr]) -> Result<(), Error> {
        match self {
            Self::Ours { file, .. } => Ok(file.try_write(&static_file_content(addrs))?),
            Self::Dns(set) => {
                let mut set = set.lock().unwrap_or_else(|p| p.into_inner());
                set.clear();
                set.extend(addrs.iter().copied());
                Ok(())
            }
            Self::ClusterIp(balancer) => {
                balancer.set_backends(backends(addrs));
                Ok(())
            }
        }
    }
}

/// The balancer's backends for `addrs`, named by address.
fn backends(addrs: &[SocketAddr]) -> Vec<Backend> {
    addrs
        .iter()
        .map(|&addr| Backend {
            name: addr.to_string(),
            addr,
        })
        .collect()
}

/// The static source's file for `addrs`.
fn static_file_content(addrs: &[SocketAddr]) -> serde_json::Value {
    let endpoints: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    serde_json::json!({
        "services": [{ "name": "greeter", "port": 80, "endpoints": endpoints }]
    })
}

/// Waits until `addr` answers SERVING.
async fn wait_serving(addr: SocketAddr) -> Result<(), Error> {
    let check = async {
        loop {
            if let Ok(channel) = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                .expect("a socket address makes a valid URI")
                .connect()
                .await
            {
                let mut client = HealthClient::new(channel);
                let request = HealthCheckRequest {
                    service: String::new(),
                };
                if let Ok(reply) = client.check(request).await
                    && reply.into_inner().status == ServingStatus::Serving as i32
                {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), check)
        .await
        .map_err(|_| Error::NotServing(addr))
}

/// Runs scenario 3.
pub(crate) async fn run(config: &Config, bins: &Bins) -> Result<Results, Error> {
    let mut rows = Vec::new();
    for client in [ClientKind::Ours, ClientKind::Ginepro, ClientKind::ClusterIp] {
        tracing::info!(approach = client.label(), "rollout");
        rows.push(rollout(config, bins, client).await?);
    }
    Ok(Results {
        rows,
        backends: config.backends,
        concurrency: config.concurrency,
        drain_delay_s: config.drain_delay.as_secs_f64(),
        dns_interval_s: config
            .dns_interval
            .unwrap_or(Duration::from_secs(10))
            .as_secs_f64(),
    })
}

async fn rollout(config: &Config, bins: &Bins, client: ClientKind) -> Result<Row, Error> {
    let drain = vec![
        "--drain-delay".to_owned(),
        humantime::format_duration(config.drain_delay).to_string(),
    ];
    let mut old = start_backends(bins, "v1-", config.backends, &drain).await?;
    let mut current: Vec<SocketAddr> = old.iter().map(Proc::addr).collect();
    let (discovery, caller, label): (Discovery, Caller, String) = match client {
        ClientKind::Ours => {
            let file = StaticFile::create("bench-rollout", &static_file_content(&current))?;
            let args = [
                "serve".to_owned(),
                "--listen".to_owned(),
                "127.0.0.1:0".to_owned(),
                "--static-file".to_owned(),
                file.path().display().to_string(),
            ];
            let control_plane =
                Proc::start("control-plane", &bins.path("control-plane")?, &args).await?;
            let caller = clients::ours(control_plane.addr()).await?;
            (
                Discovery::Ours {
                    file,
                    _control_plane: Box::new(control_plane),
                },
                caller,
                "control-plane serve --static-file (polled every 1 s) + grpc.health.v1 Watch probes".to_owned(),
            )
        }
        ClientKind::Ginepro => {
            let set = AddressSet::default();
            let caller = clients::ginepro(set.clone(), config.dns_interval).await?;
            let interval = config.dns_interval.unwrap_or(Duration::from_secs(10));
            (
                Discovery::Dns(set),
                caller,
                format!(
                    "address set polled every {}",
                    humantime::format_duration(interval)
                ),
            )
        }
        _ => {
            let balancer = TcpBalancer::start(backends(&current)).await?;
            let caller = clients::direct(balancer.addr()).await?;
            (
                Discovery::ClusterIp(balancer),
                caller,
                "per-connection round robin, list updated at once".to_owned(),
            )
        }
    };
    discovery.publish(&current)?;
    if let Caller::Ginepro(_) = caller {
        // Let ginepro's first poll see the set.
        load::run_for(&caller, 1, Duration::ZERO, Duration::from_millis(200)).await;
    }

    let stop = CancellationToken::new();
    let started = Instant::now();
    let load = tokio::spawn({
        let caller = caller.clone();
        let stop = stop.clone();
        let concurrency = config.concurrency;
        async move { load::run(&caller, concurrency, Duration::ZERO, stop).await }
    });
    tokio::time::sleep(config.margin).await;
    let mut sigterm_at_s = Vec::new();
    let mut retired = Vec::new();
    for i in 0..config.backends {
        let mut new = start_backends(bins, &format!("v2-{i}-"), 1, &drain).await?;
        let new = new.remove(0);
        wait_serving(new.addr()).await?;
        let gone = old.remove(0);
        current.retain(|addr| *addr != gone.addr());
        current.push(new.addr());
        discovery.publish(&current)?;
        sigterm_at_s.push(started.elapsed().as_secs_f64());
        gone.signal(Signal::SIGTERM)?;
        let mut gone = gone;
        let exited = gone
            .wait_exit(config.drain_delay + Duration::from_secs(25))
            .await;
        if exited.is_none() {
            tracing::warn!(
                backend = gone.name(),
                log = gone.log(),
                "old backend still running after its drain; killing it"
            );
        }
        retired.push(gone);
        old.push(new);
    }
    tokio::time::sleep(config.margin).await;
    stop.cancel();
    let load = load.await.unwrap_or_default();
    let l4_connections = match &discovery {
        Discovery::ClusterIp(balancer) => Some(balancer.forwarded().len()),
        // The static file goes with `discovery`.
        Discovery::Ours { .. } | Discovery::Dns(_) => None,
    };
    drop(discovery);
    drop(retired);
    drop(old);
    let mut failures_at_s = load.failures_at_s;
    failures_at_s.truncate(MAX_FAILURE_TIMES);
    Ok(Row {
        client,
        discovery: label,
        ok: load.ok,
        failed: load.failed,
        errors: load.errors,
        by_backend: load.by_backend,
        sigterm_at_s,
        failures_at_s,
        duration_s: load.window_s,
        l4_connections,
    })
}
