//! The charts: which numbers go into which [`svg`](super::svg) chart.

use super::svg::{BarChart, LineChart, Series, Timeline, Track};
use crate::datapath::{self, clients::ClientKind};
use crate::propagation::{self, Change, SubscriberKind};
use crate::rollout;

/// (file name, SVG, alt text) of each chart.
type Chart = (&'static str, String, &'static str);

fn kind_name(kind: SubscriberKind) -> &'static str {
    match kind {
        SubscriberKind::RawAds => "raw ADS",
        SubscriberKind::Channel => "xds-balancer",
    }
}

/// Time to the last subscriber, and control-plane CPU per change, against
/// subscribers.
pub(crate) fn propagation(results: &propagation::Results) -> Vec<Chart> {
    let mut keys: Vec<(SubscriberKind, usize, Change)> = results
        .rows
        .iter()
        .map(|r| (r.client, r.endpoints, r.change))
        .collect();
    keys.sort_by_key(|k| (k.0 as u8, k.1, k.2 as u8));
    keys.dedup();
    let series_of = |value: fn(&propagation::Row) -> Option<f64>| -> Vec<Series> {
        keys.iter()
            .filter_map(|&(kind, endpoints, change)| {
                let points: Vec<(f64, f64)> = results
                    .rows
                    .iter()
                    .filter(|r| r.client == kind && r.endpoints == endpoints && r.change == change)
                    .filter_map(|r| Some((r.subscribers as f64, value(r)?)))
                    .collect();
                let change = match change {
                    Change::Single => "single",
                    Change::Burst => "burst",
                };
                (!points.is_empty()).then(|| Series {
                    name: format!("{}, {endpoints} ep, {change}", kind_name(kind)),
                    points,
                })
            })
            .collect()
    };
    let latency = LineChart {
        title: "Readiness change → last subscriber (median over changes)".to_owned(),
        x_label: "subscribers".to_owned(),
        y_label: "ms".to_owned(),
        log_x: true,
        log_y: true,
        series: series_of(|r| Some(r.to_last_ms.p50)),
    };
    let cpu = LineChart {
        title: "Control-plane CPU per change (single) or burst".to_owned(),
        x_label: "subscribers".to_owned(),
        y_label: "CPU ms".to_owned(),
        log_x: true,
        log_y: true,
        series: series_of(|r| {
            (r.client == SubscriberKind::RawAds)
                .then_some(r.cp_cpu_ms_per_trial)
                .flatten()
        })
        .into_iter()
        .filter(|s| s.name.starts_with("raw"))
        .collect(),
    };
    vec![
        (
            "propagation.svg",
            latency.render(),
            "time to the last subscriber against subscribers",
        ),
        (
            "propagation-cpu.svg",
            cpu.render(),
            "control-plane CPU per change against subscribers",
        ),
    ]
}

const CLIENTS: [ClientKind; 4] = [
    ClientKind::Ours,
    ClientKind::Direct,
    ClientKind::BalanceChannel,
    ClientKind::Ginepro,
];

/// A client's name in a chart legend (the legend column is narrow).
fn legend(client: ClientKind) -> &'static str {
    match client {
        ClientKind::Ours => "xds-balancer (ours)",
        ClientKind::Direct => "tonic, direct to b0",
        ClientKind::BalanceChannel => "tonic balance_channel",
        ClientKind::Ginepro => "ginepro 0.9.3",
        ClientKind::ClusterIp => "ClusterIP (L4)",
    }
}

/// Throughput and p99 latency per client, grouped by setting.
pub(crate) fn data_path(results: &datapath::Results) -> Vec<Chart> {
    let mut keys: Vec<(usize, usize)> = results
        .rows
        .iter()
        .map(|r| (r.backends, r.concurrency))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let groups: Vec<String> = keys.iter().map(|(b, c)| format!("{b} bk, c={c}")).collect();
    let series = |value: fn(&datapath::Row) -> f64| -> Vec<(String, Vec<f64>)> {
        CLIENTS
            .iter()
            .map(|&client| {
                let values = keys
                    .iter()
                    .map(|&(b, c)| {
                        results
                            .rows
                            .iter()
                            .find(|r| r.client == client && r.backends == b && r.concurrency == c)
                            .map_or(f64::NAN, value)
                    })
                    .collect();
                (legend(client).to_owned(), values)
            })
            .collect()
    };
    let throughput = BarChart {
        title: "Unary SayHello throughput".to_owned(),
        y_label: "calls/s".to_owned(),
        groups: groups.clone(),
        series: series(|r| r.throughput),
    };
    let latency = BarChart {
        title: "Unary SayHello latency, p99".to_owned(),
        y_label: "ms".to_owned(),
        groups,
        series: series(|r| r.latency_ms.p99),
    };
    vec![
        (
            "data-path-throughput.svg",
            throughput.render(),
            "throughput per client",
        ),
        (
            "data-path-latency.svg",
            latency.render(),
            "p99 latency per client",
        ),
    ]
}

/// Failed calls over time, per approach.
pub(crate) fn rollout(results: &rollout::Results) -> Chart {
    let duration_s = results
        .rows
        .iter()
        .map(|r| r.duration_s)
        .fold(0.0, f64::max);
    let tracks = results
        .rows
        .iter()
        .map(|r| Track {
            label: format!("{} ({} failed)", r.client.short_label(), r.failed),
            marks: r.failures_at_s.clone(),
            events: r.sigterm_at_s.clone(),
        })
        .collect();
    let timeline = Timeline {
        title: "Failed calls during a rolling restart".to_owned(),
        duration_s,
        tracks,
    };
    (
        "rollout.svg",
        timeline.render(),
        "failed calls over time during the rollout",
    )
}
