//! The control plane under test, in a process of its own.
//!
//! # Design notes
//!
//! The propagation benchmark needs to know the instant a readiness change
//! happens at the source, and the control plane's own CPU time and memory
//! apart from the subscribers'. So the harness starts itself again as
//! `bench cp-host`: that process runs the control plane's library exactly
//! as `control-plane serve` does (a [`Store`], [`server::run`] on a loopback
//! port) and plays the source: it calls [`SourceHandle::upsert`] when told
//! to, stamping each call on the system-wide monotonic clock that the
//! subscribers' process also reads ([`crate::clock`]).
//!
//! The protocol is one JSON line per command on standard input and one JSON
//! line per reply on standard output:
//!
//! - first, unasked: `{"addr": "127.0.0.1:PORT"}`;
//! - `create N`: service `greeter` (port 80) with `N` ready endpoints at
//!   [`endpoint_addr`]`(i, --endpoint-port)` → `{"ok": true}`;
//! - `flip I,J,...`: toggles the readiness of endpoints `I`, `J`, ... one
//!   upsert each, back to back → `{"first_ns": .., "last_ns": ..}` (the
//!   clock just before the first and the last upsert);
//! - `stats` → `{"cpu_ns": .., "rss_bytes": .., "clients": ..}`.
//!
//! End of input stops the control plane and the process.
//!
//! Peer control planes ([`crate::peers`]) are programs that speak the same
//! protocol (their `stats` without the `written` histogram, which is our
//! control plane's own metric); [`Host`] drives either.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ::tests::process::{Process, Spawn};
use control_plane::metrics::Metrics;
use control_plane::model::{Endpoint, Readiness, Service, ServicePort};
use control_plane::names::Naming;
use control_plane::server;
use control_plane::source::{SourceHandle, SourceKind, SourceState, SourceStatus};
use control_plane::store::Store;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::TcpListener;
use tokio::process::{ChildStdin, ChildStdout};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::clock;
use crate::machine;

/// The service the host serves.
pub(crate) const SERVICE: &str = "greeter";
/// Its namespace.
pub(crate) const NAMESPACE: &str = "default";
/// Its Service port.
pub(crate) const SERVICE_PORT: u16 = 80;
/// How long one command may take.
const REPLY_TIMEOUT: Duration = Duration::from_secs(120);
/// The host's name in errors.
const HOST: &str = "the control-plane host";

/// Errors of the host and of talking to it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// This executable's path is unknown.
    #[error("failed to start the control-plane host: {0}")]
    Spawn(#[source] std::io::Error),
    /// The host process could not be started.
    #[error(transparent)]
    Process(#[from] ::tests::process::Error),
    /// Reading or writing its pipes failed.
    #[error("talking to the control-plane host failed: {0}")]
    Io(#[from] std::io::Error),
    /// It closed its output, or took too long.
    #[error("the control-plane host {0}")]
    Gone(&'static str),
    /// It answered something unreadable or an error.
    #[error("the control-plane host answered {line:?} to {command:?}")]
    Reply {
        /// The command.
        command: String,
        /// Its answer.
        line: String,
    },
    /// Binding the loopback port failed.
    #[error("failed to bind the control plane's port: {0}")]
    Bind(#[source] std::io::Error),
    /// The control plane's server failed.
    #[error("the control plane failed: {0}")]
    Serve(#[from] server::Error),
}

/// The result type of this module.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// Options of `bench cp-host`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct HostArgs {
    /// Port of every endpoint the service lists.
    #[arg(long, default_value_t = 8080)]
    pub(crate) endpoint_port: u16,
}

/// The address of endpoint `index`: `127.0.X.Y` with X from 1, so a server
/// listening on `0.0.0.0:port` answers on every one of them and none is
/// `127.0.0.1` (where the control plane listens).
pub(crate) fn endpoint_addr(index: usize, port: u16) -> SocketAddr {
    let x = u8::try_from(1 + index / 250).unwrap_or(u8::MAX);
    let y = u8::try_from(1 + index % 250).unwrap_or(u8::MAX);
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, x, y)), port)
}

/// The reply to `flip`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct Flipped {
    /// Clock just before the first upsert.
    pub(crate) first_ns: u64,
    /// Clock just before the last upsert.
    pub(crate) last_ns: u64,
}

/// The reply to `stats`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Stats {
    /// User + system CPU time of the host so far.
    pub(crate) cpu_ns: u64,
    /// Its resident memory.
    pub(crate) rss_bytes: u64,
    /// ADS streams open.
    pub(crate) clients: u64,
    /// The control plane's own `control_plane_update_latency_seconds`
    /// histogram: source change to response handed to HTTP/2 (empty for a
    /// peer, which has none).
    #[serde(default)]
    pub(crate) written: Histogram,
}

/// A Prometheus histogram's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Histogram {
    /// Observations.
    pub(crate) count: u64,
    /// Their sum, in seconds.
    pub(crate) sum_s: f64,
    /// (upper bound in seconds, cumulative count), ascending.
    pub(crate) buckets: Vec<(f64, u64)>,
}

impl Histogram {
    /// Reads histogram `name` from OpenMetrics text.
    pub(crate) fn parse(text: &str, name: &str) -> Self {
        let mut histogram = Self::default();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix(name) else {
                continue;
            };
            if let Some(value) = rest.strip_prefix("_sum ") {
                histogram.sum_s = value.trim().parse().unwrap_or(0.0);
            } else if let Some(value) = rest.strip_prefix("_count ") {
                histogram.count = value.trim().parse().unwrap_or(0);
            } else if let Some(bucket) = rest.strip_prefix("_bucket{le=\"") {
                let Some((bound, count)) = bucket.split_once("\"} ") else {
                    continue;
                };
                // The +Inf bucket says nothing `count` does not (and JSON
                // has no infinity).
                if let Ok(bound) = bound.parse::<f64>()
                    && bound.is_finite()
                {
                    histogram
                        .buckets
                        .push((bound, count.trim().parse().unwrap_or(0)));
                }
            }
        }
        histogram.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        histogram
    }

    /// What was observed between `earlier` and `self`: (observations,
    /// mean in ms, upper bound of the largest in ms, NaN when beyond the
    /// last bucket).
    pub(crate) fn since(&self, earlier: &Self) -> (u64, f64, f64) {
        let count = self.count.saturating_sub(earlier.count);
        if count == 0 {
            return (0, 0.0, 0.0);
        }
        let mean_ms = (self.sum_s - earlier.sum_s) / count as f64 * 1e3;
        let bound_ms = self
            .buckets
            .iter()
            .find(|(bound, cumulative)| {
                let before = earlier
                    .buckets
                    .iter()
                    .find(|(b, _)| b == bound)
                    .map_or(0, |(_, c)| *c);
                cumulative.saturating_sub(before) >= count
            })
            .map_or(f64::NAN, |(bound, _)| bound * 1e3);
        (count, mean_ms, bound_ms)
    }
}

/// The service with `ready[i]` telling endpoint `i`'s readiness.
fn service(ready: &[bool], port: u16) -> Service {
    let endpoints = ready
        .iter()
        .enumerate()
        .map(|(i, &ready)| Endpoint {
            state: if ready {
                Readiness::Ready
            } else {
                Readiness::NotReady
            },
            instance: Some(format!("pod-{i}")),
            zone: Some("zone-a".to_owned()),
            ..Endpoint::ready(endpoint_addr(i, port))
        })
        .collect();
    Service {
        name: SERVICE.to_owned(),
        namespace: NAMESPACE.to_owned(),
        ports: vec![ServicePort {
            name: Some("grpc".to_owned()),
            port: SERVICE_PORT,
            endpoints,
        }],
        tls: None,
        policy: Default::default(),
    }
}

/// Runs the host (the `cp-host` subcommand) until its input ends.
pub(crate) async fn run(args: HostArgs) -> Result<()> {
    let store = Store::new(
        Naming::new(NAMESPACE),
        SourceStatus::starting(SourceKind::Static, "benchmark host"),
    );
    let handle = store.source_handle();
    handle.replace_all(Vec::new(), "benchmark start");
    handle.set_state(SourceState::Connected, None);
    let metrics = Arc::new(Metrics::new());
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(Error::Bind)?;
    let addr = listener.local_addr().map_err(Error::Bind)?;
    let (stop_tx, stop_rx) = mpsc::channel(1);
    let serving = tokio::spawn(server::run(
        listener,
        store,
        metrics.clone(),
        server::Config::default(),
        ReceiverStream::new(stop_rx),
    ));
    let mut out = tokio::io::stdout();
    reply(&mut out, &serde_json::json!({ "addr": addr.to_string() })).await?;

    let mut ready: Vec<bool> = Vec::new();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let (command, rest) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        let answer = match command {
            "create" => match rest.trim().parse::<usize>() {
                Ok(n) => {
                    ready = vec![true; n];
                    upsert(&handle, &ready, args.endpoint_port);
                    serde_json::json!({ "ok": true })
                }
                Err(error) => serde_json::json!({ "error": error.to_string() }),
            },
            "flip" => flip(&handle, &mut ready, rest, args.endpoint_port),
            "stats" => serde_json::to_value(stats(&metrics)).unwrap_or_default(),
            other => serde_json::json!({ "error": format!("unknown command {other:?}") }),
        };
        reply(&mut out, &answer).await?;
    }
    let _ = stop_tx.send("input closed").await;
    match tokio::time::timeout(Duration::from_secs(10), serving).await {
        Ok(Ok(result)) => result.map(|_| ()).map_err(Error::Serve),
        _ => Ok(()),
    }
}

fn upsert(handle: &SourceHandle, ready: &[bool], port: u16) -> u64 {
    let service = service(ready, port);
    let at = clock::now_ns();
    if let Err(error) = handle.upsert(service, "benchmark change") {
        tracing::error!(%error, "benchmark service rejected");
    }
    at
}

fn flip(handle: &SourceHandle, ready: &mut [bool], indices: &str, port: u16) -> serde_json::Value {
    let parsed: Result<Vec<usize>, _> = indices
        .split(',')
        .map(|i| i.trim().parse::<usize>())
        .collect();
    let indices = match parsed {
        Ok(indices) if !indices.is_empty() && indices.iter().all(|&i| i < ready.len()) => indices,
        _ => return serde_json::json!({ "error": format!("bad endpoint indices {indices:?}") }),
    };
    let mut stamps = Vec::with_capacity(indices.len());
    for i in indices {
        ready[i] = !ready[i];
        stamps.push(upsert(handle, ready, port));
    }
    serde_json::to_value(Flipped {
        first_ns: stamps[0],
        last_ns: stamps[stamps.len() - 1],
    })
    .unwrap_or_default()
}

fn stats(metrics: &Metrics) -> Stats {
    let cpu_ns = machine::cpu_ns();
    let rss_bytes = machine::rss_bytes();
    let text = metrics.encode();
    Stats {
        cpu_ns,
        rss_bytes,
        clients: text
            .lines()
            .find_map(|line| line.strip_prefix("control_plane_connected_clients "))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0),
        written: Histogram::parse(&text, "control_plane_update_latency_seconds"),
    }
}

async fn reply(out: &mut tokio::io::Stdout, value: &serde_json::Value) -> Result<()> {
    let mut line = value.to_string();
    line.push('\n');
    out.write_all(line.as_bytes()).await?;
    out.flush().await?;
    Ok(())
}

/// The harness's side: a running `bench cp-host`, killed on drop.
#[derive(Debug)]
pub(crate) struct Host {
    process: Process,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    addr: SocketAddr,
}

impl Host {
    /// Starts a host whose endpoints listen on `endpoint_port`: ours
    /// (`program` `None`), or a peer's program that speaks the same
    /// protocol and takes the same `--endpoint-port` option.
    pub(crate) async fn start(program: Option<&Path>, endpoint_port: u16) -> Result<Self> {
        let port = endpoint_port.to_string();
        let spawn = match program {
            Some(program) => Spawn::new(HOST, program).args(["--endpoint-port", &port]),
            None => {
                let exe = std::env::current_exe().map_err(Error::Spawn)?;
                // For profiling: BENCH_HOST_WRAPPER="valgrind --tool=massif"
                // runs our host under that command.
                let wrapper = std::env::var("BENCH_HOST_WRAPPER").unwrap_or_default();
                let mut words = wrapper.split_whitespace();
                match words.next() {
                    Some(program) => Spawn::new(HOST, program).args(words).arg(exe),
                    None => Spawn::new(HOST, exe),
                }
                .args(["cp-host", "--endpoint-port", &port])
            }
        };
        let mut process = spawn
            .env("RUST_LOG", "warn")
            .pipe_stdin()
            .pipe_stdout()
            .inherit_stderr()
            .start()?;
        let stdin = process.take_stdin();
        let stdout = BufReader::new(process.take_stdout()).lines();
        let mut host = Self {
            process,
            stdin,
            stdout,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let first = host.read_line("start").await?;
        host.addr = first
            .get("addr")
            .and_then(serde_json::Value::as_str)
            .and_then(|addr| addr.parse().ok())
            .ok_or_else(|| Error::Reply {
                command: "start".to_owned(),
                line: first.to_string(),
            })?;
        Ok(host)
    }

    /// The control plane's address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Creates the service with `endpoints` ready endpoints.
    pub(crate) async fn create(&mut self, endpoints: usize) -> Result<()> {
        self.command(&format!("create {endpoints}")).await.map(drop)
    }

    /// Toggles the readiness of `indices`, one upsert each.
    pub(crate) async fn flip(&mut self, indices: &[usize]) -> Result<Flipped> {
        let list: Vec<String> = indices.iter().map(ToString::to_string).collect();
        let command = format!("flip {}", list.join(","));
        let value = self.command(&command).await?;
        serde_json::from_value(value.clone()).map_err(|_| Error::Reply {
            command,
            line: value.to_string(),
        })
    }

    /// The host's CPU time, memory and clients now.
    pub(crate) async fn stats(&mut self) -> Result<Stats> {
        let value = self.command("stats").await?;
        serde_json::from_value(value.clone()).map_err(|_| Error::Reply {
            command: "stats".to_owned(),
            line: value.to_string(),
        })
    }

    /// Ends the host's input and waits (up to 30 s) for it to stop on its
    /// own, so wrappers such as profilers write their output; kills it
    /// otherwise.
    pub(crate) async fn shutdown(self) {
        let Self {
            mut process, stdin, ..
        } = self;
        drop(stdin);
        if process
            .try_wait_exit(Duration::from_secs(30))
            .await
            .is_err()
        {
            process.kill().await;
        }
    }

    async fn command(&mut self, command: &str) -> Result<serde_json::Value> {
        self.stdin.write_all(command.as_bytes()).await?;
        self.stdin.write_all(b"\n").await?;
        self.stdin.flush().await?;
        let value = self.read_line(command).await?;
        if value.get("error").is_some() {
            return Err(Error::Reply {
                command: command.to_owned(),
                line: value.to_string(),
            });
        }
        Ok(value)
    }

    async fn read_line(&mut self, command: &str) -> Result<serde_json::Value> {
        let line = tokio::time::timeout(REPLY_TIMEOUT, self.stdout.next_line())
            .await
            .map_err(|_| Error::Gone("did not answer in time"))??
            .ok_or(Error::Gone("exited"))?;
        serde_json::from_str(&line).map_err(|_| Error::Reply {
            command: command.to_owned(),
            line,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_addresses_are_distinct_and_avoid_the_control_plane() {
        let addrs: std::collections::HashSet<_> =
            (0..1000).map(|i| endpoint_addr(i, 8080)).collect();
        assert_eq!(addrs.len(), 1000);
        assert!(!addrs.contains(&"127.0.0.1:8080".parse().unwrap()));
        assert_eq!(endpoint_addr(0, 9), "127.0.1.1:9".parse().unwrap());
        assert_eq!(endpoint_addr(999, 9), "127.0.4.250:9".parse().unwrap());
    }

    #[test]
    fn reads_the_control_planes_latency_histogram() {
        let metrics = Metrics::new();
        let before = stats(&metrics).written;
        let at = std::time::Instant::now() - Duration::from_millis(3);
        metrics.response_written(
            control_plane::kinds::ResourceType::ClusterLoadAssignment,
            Some(at),
        );
        metrics.response_written(
            control_plane::kinds::ResourceType::ClusterLoadAssignment,
            Some(at),
        );
        metrics.response_written(control_plane::kinds::ResourceType::Listener, None);
        let after = stats(&metrics).written;
        assert_eq!(after.count, 2, "{after:?}");
        let (count, mean_ms, bound_ms) = after.since(&before);
        assert_eq!(count, 2);
        assert!((3.0..100.0).contains(&mean_ms), "{mean_ms}");
        assert!(bound_ms >= mean_ms && bound_ms <= 8.0, "{bound_ms}");
        assert_eq!(after.since(&after), (0, 0.0, 0.0));
    }

    #[test]
    fn service_reflects_readiness() {
        let svc = service(&[true, false, true], 8080);
        let states: Vec<_> = svc.ports[0].endpoints.iter().map(|e| e.state).collect();
        assert_eq!(
            states,
            [Readiness::Ready, Readiness::NotReady, Readiness::Ready]
        );
        assert_eq!(svc.validate(NAMESPACE), Ok(()));
    }
}
