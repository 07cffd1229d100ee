//! The host process (`bench cp-host`): our control plane's library run as
//! `control-plane serve` runs it, a source played from standard input
//! (upserts stamped on the shared clock), and the replies on standard
//! output.

use std::sync::Arc;
use std::time::Duration;

use control_plane::metrics::Metrics;
use control_plane::model::{Endpoint, Readiness, Service, ServicePort};
use control_plane::names::Naming;
use control_plane::server;
use control_plane::source::{SourceHandle, SourceKind, SourceState, SourceStatus};
use control_plane::store::Store;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{
    Error, Flipped, Histogram, HostArgs, NAMESPACE, Result, SERVICE, SERVICE_PORT, Stats,
    endpoint_addr,
};
use crate::{clock, machine};

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

#[cfg(test)]
mod tests {
    use super::*;

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
