//! Operating the control plane, through the real binary: its `/metrics`
//! (parsed by Prometheus' own Python parser), the Grafana dashboard's
//! queries, rebalancing subscribers across replicas with
//! `--max-connection-age`, and the level at which client disconnects are
//! logged.
//!
//! - `metrics.rs`: both text formats, every documented metric, the source
//!   gauges during a Kubernetes API outage, the dashboard.
//! - `rebalance.rs`: two replicas, one restarted, 100 subscribers.
//! - `disconnects.rs`: normal disconnects at debug level, broken request
//!   streams at warn.

mod disconnects;
mod metrics;
mod rebalance;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tests::Process;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_control-plane");
/// Upper bound for a whole test.
pub(crate) const LIMIT: Duration = Duration::from_secs(120);
/// Upper bound for any one awaited condition.
pub(crate) const WAIT: Duration = Duration::from_secs(20);
/// The log line of the first sync (health turns SERVING).
pub(crate) const SYNCED: &str = "source synced: health is SERVING";
/// The Prometheus text parser the tests use (PyPI).
pub(crate) const PROMETHEUS_CLIENT: &str = "prometheus_client==0.26.0";

/// The workspace root.
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A running `control-plane serve` with `/metrics`; killed on drop.
pub(crate) struct ControlPlane {
    pub(crate) process: Process,
    pub(crate) addr: SocketAddr,
    pub(crate) metrics: SocketAddr,
}

impl ControlPlane {
    /// Starts `serve` with `args`, metrics on a free port, and `env`, and
    /// waits until it listens.
    pub(crate) async fn start(name: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut all = vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ];
        all.extend_from_slice(args);
        let mut process = Process::spawn_with_env(name, BIN, &all, env);
        let line = process
            .wait_for_log("metrics listening", tests::STARTUP_TIMEOUT)
            .await;
        let metrics = line
            .get("addr")
            .and_then(Value::as_str)
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("metrics line without an addr: {line}"));
        let addr = process.wait_listening().await;
        Self {
            process,
            addr,
            metrics,
        }
    }

    /// A static control plane serving `greeter` at `backends`, unprobed.
    pub(crate) async fn fixed(name: &str, backends: &str, args: &[&str]) -> Self {
        let service = format!("greeter={backends}");
        let mut all = vec![
            "--source",
            "static",
            "--namespace",
            "default",
            "--name",
            name,
            "--static",
            &service,
            "--no-probe",
        ];
        all.extend_from_slice(args);
        let mut control_plane = Self::start(name, &all, &[("POD_NAMESPACE", "")]).await;
        control_plane.process.wait_for_log(SYNCED, WAIT).await;
        control_plane
    }

    /// `GET /metrics` with `accept` (none when `None`).
    pub(crate) async fn scrape(&self, accept: Option<&str>) -> Scrape {
        scrape(self.metrics, accept).await
    }

    /// The value of the sample `name{labels}` in a Prometheus text scrape.
    pub(crate) async fn sample(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.scrape(None).await.sample(name, labels)
    }
}

/// One answer of `/metrics`.
#[derive(Debug)]
pub(crate) struct Scrape {
    pub(crate) content_type: String,
    pub(crate) body: String,
}

impl Scrape {
    /// The value of the sample `name{labels}` (labels exactly as given),
    /// read from the text (for polling; the tests that check the format
    /// use the Python parser).
    pub(crate) fn sample(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let series = if labels.is_empty() {
            name.to_owned()
        } else {
            let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            format!("{name}{{{}}}", labels.join(","))
        };
        self.body.lines().find_map(|line| {
            let value = line.strip_prefix(&series)?.strip_prefix(' ')?;
            value.trim().parse().ok()
        })
    }
}

/// `GET /metrics` from `addr` over HTTP/1.1, with `accept`.
pub(crate) async fn scrape(addr: SocketAddr, accept: Option<&str>) -> Scrape {
    let fetch = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect to /metrics");
        let accept = accept.map_or_else(String::new, |a| format!("Accept: {a}\r\n"));
        let request =
            format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\n{accept}Connection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("send");
        let mut raw = String::new();
        stream.read_to_string(&mut raw).await.expect("read");
        raw
    };
    let raw = tokio::time::timeout(WAIT, fetch)
        .await
        .expect("/metrics answered");
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let content_type = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_owned())
        })
        .expect("a content type");
    Scrape {
        content_type,
        body: body.to_owned(),
    }
}

/// Polls `check` (every 50 ms, at most [`WAIT`]) until it returns `Some`.
pub(crate) async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
