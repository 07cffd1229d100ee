//! Prometheus metrics of the control plane, served at `/metrics`
//! (`--metrics-listen`); docs/metrics.md documents each one.
//!
//! # Design notes
//!
//! The set of metrics is fixed ([`FAMILIES`]) and so is every label value
//! (the four xDS types, the refusal reasons, the ways a stream ends, the
//! source states), so every series exists from the start: a counter is
//! there at 0 before its first event, and an alert on its rate works from
//! the first scrape. Counts are atomics bumped where things happen; the
//! gauges that describe the current state (the source, services,
//! endpoints, the oldest un-ACKed response) are read at scrape time from an
//! [`Observed`] taken from the store and the client registry, so they can
//! never drift from what the status API shows.
//!
//! Both text formats are written here ([`text`]): Prometheus text 0.0.4
//! unless the scraper asks for OpenMetrics.
//!
//! - `text.rs`: the formats, and the choice between them.
//! - `http.rs`: the `/metrics` endpoint.

pub mod http;
pub mod text;

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use self::text::{Family, Format, Kind};
use self::text::{Value, Writer, float};
use crate::kinds::{EndReason, Refusal, ResourceType};
use crate::store::{SourceKind, SourceState};

/// `control_plane_connected_clients`.
pub const CONNECTED_CLIENTS: Family = Family {
    name: "control_plane_connected_clients",
    kind: Kind::Gauge,
    help: "ADS streams open now (subscribed xDS clients)",
    labels: &[],
};
/// `control_plane_xds_responses_total`.
pub const RESPONSES: Family = Family {
    name: "control_plane_xds_responses",
    kind: Kind::Counter,
    help: "xDS responses written to clients, by type (LDS, RDS, CDS, EDS)",
    labels: &["type"],
};
/// `control_plane_xds_nacks_total`.
pub const NACKS: Family = Family {
    name: "control_plane_xds_nacks",
    kind: Kind::Counter,
    help: "xDS responses rejected by clients (NACK), by type (LDS, RDS, CDS, EDS)",
    labels: &["type"],
};
/// `control_plane_xds_streams_ended_total`.
pub const STREAMS_ENDED: Family = Family {
    name: "control_plane_xds_streams_ended",
    kind: Kind::Counter,
    help: "ADS streams ended, by reason",
    labels: &["reason"],
};
/// `control_plane_refused_total`.
pub const REFUSED: Family = Family {
    name: "control_plane_refused",
    kind: Kind::Counter,
    help: "ADS streams and calls refused, by reason",
    labels: &["reason"],
};
/// `control_plane_update_latency_seconds`.
pub const UPDATE_LATENCY: Family = Family {
    name: "control_plane_update_latency_seconds",
    kind: Kind::Histogram,
    help: "Time from a source change being applied to a response carrying it being written",
    labels: &[],
};
/// `control_plane_xds_oldest_unacked_age_seconds`.
pub const OLDEST_UNACKED: Family = Family {
    name: "control_plane_xds_oldest_unacked_age_seconds",
    kind: Kind::Gauge,
    help: "Age of the oldest xDS response that its client has neither ACKed nor NACKed (0: none)",
    labels: &[],
};
/// `control_plane_source_connected`.
pub const SOURCE_CONNECTED: Family = Family {
    name: "control_plane_source_connected",
    kind: Kind::Gauge,
    help: "1 while the source is in sync with its origin (connected), else 0",
    labels: &["source"],
};
/// `control_plane_source_state`.
pub const SOURCE_STATE: Family = Family {
    name: "control_plane_source_state",
    kind: Kind::Gauge,
    help: "The source's state: 1 on the series of the current state, 0 on the others",
    labels: &["source", "state"],
};
/// `control_plane_source_last_sync_timestamp_seconds`.
pub const SOURCE_LAST_SYNC: Family = Family {
    name: "control_plane_source_last_sync_timestamp_seconds",
    kind: Kind::Gauge,
    help: "Unix time the source was last known to be in sync: now while connected, when it \
           stopped being connected otherwise, 0 before its first sync",
    labels: &["source"],
};
/// `control_plane_services`.
pub const SERVICES: Family = Family {
    name: "control_plane_services",
    kind: Kind::Gauge,
    help: "Services served",
    labels: &[],
};
/// `control_plane_endpoints`.
pub const ENDPOINTS: Family = Family {
    name: "control_plane_endpoints",
    kind: Kind::Gauge,
    help: "Endpoints of all services, by state (ready, draining, not_ready)",
    labels: &["state"],
};

/// Every metric family, in the order `/metrics` lists them.
pub const FAMILIES: [Family; 12] = [
    CONNECTED_CLIENTS,
    RESPONSES,
    NACKS,
    STREAMS_ENDED,
    REFUSED,
    UPDATE_LATENCY,
    OLDEST_UNACKED,
    SOURCE_CONNECTED,
    SOURCE_STATE,
    SOURCE_LAST_SYNC,
    SERVICES,
    ENDPOINTS,
];

/// Upper bounds of the update latency buckets: 0.5 ms doubling to about
/// 16 s.
const LATENCY_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048,
    4.096, 8.192, 16.384,
];

/// The current state the gauges show, taken at scrape time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// The source, when one runs.
    pub source: Option<ObservedSource>,
    /// Services served.
    pub services: usize,
    /// Endpoints: ready, draining, not ready.
    pub endpoints: (usize, usize, usize),
    /// Age of the oldest response awaiting its client's ACK or NACK.
    pub oldest_unacked: Option<Duration>,
}

/// The source as the gauges show it.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedSource {
    /// Which source.
    pub kind: SourceKind,
    /// Its state.
    pub state: SourceState,
    /// When it was last known to be in sync (now while connected).
    pub last_sync: Option<SystemTime>,
}

/// Counters and a histogram of the control plane. Share as `Arc<Metrics>`.
#[derive(Debug)]
pub struct Metrics {
    connected: AtomicI64,
    responses: [AtomicU64; 4],
    nacks: [AtomicU64; 4],
    streams_ended: [AtomicU64; EndReason::ALL.len()],
    refused: [AtomicU64; Refusal::ALL.len()],
    latency: Mutex<Histogram>,
}

#[derive(Debug, Default)]
struct Histogram {
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    buckets: [u64; LATENCY_BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Fresh metrics, all zero.
    pub fn new() -> Self {
        Self {
            connected: AtomicI64::new(0),
            responses: Default::default(),
            nacks: Default::default(),
            streams_ended: Default::default(),
            refused: Default::default(),
            latency: Mutex::default(),
        }
    }

    /// A client was refused for `why`.
    pub fn refused(&self, why: Refusal) {
        self.refused[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// An ADS stream opened.
    pub fn client_connected(&self) {
        self.connected.fetch_add(1, Ordering::Relaxed);
    }

    /// An ADS stream closed.
    pub fn client_disconnected(&self) {
        self.connected.fetch_sub(1, Ordering::Relaxed);
    }

    /// An ADS stream ended for `reason`.
    pub fn stream_ended(&self, reason: EndReason) {
        self.streams_ended[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// A response of type `kind` was written; `changed_at` is when the
    /// source change it carries was applied, if it carries one.
    pub fn response_written(&self, kind: ResourceType, changed_at: Option<Instant>) {
        self.responses[kind.index()].fetch_add(1, Ordering::Relaxed);
        if let Some(changed_at) = changed_at {
            let seconds = changed_at.elapsed().as_secs_f64();
            let bucket = LATENCY_BUCKETS
                .iter()
                .position(|bound| seconds <= *bound)
                .unwrap_or(LATENCY_BUCKETS.len());
            let mut latency = self.latency.lock().unwrap_or_else(|p| p.into_inner());
            latency.buckets[bucket] += 1;
            latency.sum += seconds;
            latency.count += 1;
        }
    }

    /// A client rejected a response of type `kind`.
    pub fn nack(&self, kind: ResourceType) {
        self.nacks[kind.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// The counters and the histogram in OpenMetrics, without the gauges of
    /// the current state (for tests and benchmarks that read counts).
    pub fn encode(&self) -> String {
        self.render(Format::OpenMetrics, &Observed::default(), SystemTime::now())
    }

    /// Every metric in `format`, the state gauges from `observed`; `now`
    /// is the scrape's time.
    pub fn render(&self, format: Format, observed: &Observed, now: SystemTime) -> String {
        let mut out = Writer::new(format);
        out.family(&CONNECTED_CLIENTS);
        let connected = self.connected.load(Ordering::Relaxed).max(0);
        out.sample(CONNECTED_CLIENTS.name, &[], Value::Signed(connected));

        for (family, counts) in [(&RESPONSES, &self.responses), (&NACKS, &self.nacks)] {
            out.family(family);
            for kind in ResourceType::ALL {
                let count = counts[kind.index()].load(Ordering::Relaxed);
                let labels = [("type", kind.short_name())];
                out.sample(&family.sample_name(), &labels, Value::Int(count));
            }
        }
        out.family(&STREAMS_ENDED);
        for reason in EndReason::ALL {
            let count = self.streams_ended[reason as usize].load(Ordering::Relaxed);
            let labels = [("reason", reason.label())];
            out.sample(&STREAMS_ENDED.sample_name(), &labels, Value::Int(count));
        }
        out.family(&REFUSED);
        for why in Refusal::ALL {
            let count = self.refused[why as usize].load(Ordering::Relaxed);
            let labels = [("reason", why.label())];
            out.sample(&REFUSED.sample_name(), &labels, Value::Int(count));
        }
        self.render_latency(&mut out);

        out.family(&OLDEST_UNACKED);
        let age = observed.oldest_unacked.unwrap_or_default().as_secs_f64();
        out.sample(OLDEST_UNACKED.name, &[], Value::Float(age));
        if let Some(source) = &observed.source {
            render_source(&mut out, source, now);
        }
        out.family(&SERVICES);
        out.sample(SERVICES.name, &[], Value::Int(observed.services as u64));
        out.family(&ENDPOINTS);
        let (ready, draining, not_ready) = observed.endpoints;
        for (state, count) in [
            ("ready", ready),
            ("draining", draining),
            ("not_ready", not_ready),
        ] {
            out.sample(
                ENDPOINTS.name,
                &[("state", state)],
                Value::Int(count as u64),
            );
        }
        out.finish()
    }

    fn render_latency(&self, out: &mut Writer) {
        let latency = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        out.family(&UPDATE_LATENCY);
        let bucket_name = format!("{}_bucket", UPDATE_LATENCY.name);
        let mut cumulative = 0;
        for (i, count) in latency.buckets.iter().enumerate() {
            cumulative += count;
            let bound = LATENCY_BUCKETS.get(i).copied().unwrap_or(f64::INFINITY);
            let le = float(bound);
            out.sample(&bucket_name, &[("le", &le)], Value::Int(cumulative));
        }
        let sum = Value::Float(latency.sum);
        out.sample(&format!("{}_sum", UPDATE_LATENCY.name), &[], sum);
        let count = Value::Int(latency.count);
        out.sample(&format!("{}_count", UPDATE_LATENCY.name), &[], count);
    }
}

fn render_source(out: &mut Writer, source: &ObservedSource, now: SystemTime) {
    let kind = source.kind.to_string();
    let connected = source.state == SourceState::Connected;
    out.family(&SOURCE_CONNECTED);
    out.sample(
        SOURCE_CONNECTED.name,
        &[("source", &kind)],
        Value::Int(u64::from(connected)),
    );
    out.family(&SOURCE_STATE);
    for state in SourceState::ALL {
        let labels = [("source", kind.as_str()), ("state", state.label())];
        let value = Value::Int(u64::from(state == source.state));
        out.sample(SOURCE_STATE.name, &labels, value);
    }
    out.family(&SOURCE_LAST_SYNC);
    let last_sync = if connected {
        Some(now)
    } else {
        source.last_sync
    };
    let seconds = last_sync
        .and_then(|at| at.duration_since(UNIX_EPOCH).ok())
        .map_or(0.0, |since| since.as_secs_f64());
    out.sample(
        SOURCE_LAST_SYNC.name,
        &[("source", &kind)],
        Value::Float(seconds),
    );
}

#[cfg(test)]
mod tests;
