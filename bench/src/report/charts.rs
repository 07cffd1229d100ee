//! The charts: which numbers go into which [`svg`](super::svg) chart.

use super::svg::{BarChart, LineChart, Series, Timeline, Track};
use crate::datapath::{self, clients::ClientKind};
use crate::peers::ControlPlane;
use crate::propagation::{self, Change, SubscriberKind};
use crate::rollout;

/// (file name, SVG, alt text) of each chart.
type Chart = (&'static str, String, &'static str);

/// A series' name: the control plane, and for ours which subscribers.
fn series_name(control_plane: ControlPlane, kind: SubscriberKind, endpoints: usize) -> String {
    match (control_plane, kind) {
        (ControlPlane::Ours, SubscriberKind::RawAds) => format!("ours, raw ADS, {endpoints} ep"),
        (ControlPlane::Ours, SubscriberKind::Channel) => {
            format!("ours, xds-balancer, {endpoints} ep")
        }
        (peer, _) => format!("{}, {endpoints} ep", peer.label()),
    }
}

/// Time to the last subscriber, and control-plane CPU per change, against
/// subscribers, for single changes (bursts are in the tables), every
/// control plane.
pub(crate) fn propagation(results: &propagation::Results) -> Vec<Chart> {
    let single = || results.rows.iter().filter(|r| r.change == Change::Single);
    let mut keys: Vec<(ControlPlane, SubscriberKind, usize)> = single()
        .map(|r| (r.control_plane, r.client, r.endpoints))
        .collect();
    keys.sort_by_key(|k| (k.0, k.1 as u8, k.2));
    keys.dedup();
    let series_of = |value: &dyn Fn(&propagation::Row) -> Option<f64>| -> Vec<Series> {
        keys.iter()
            .filter_map(|&(control_plane, kind, endpoints)| {
                let points: Vec<(f64, f64)> = single()
                    .filter(|r| {
                        r.control_plane == control_plane
                            && r.client == kind
                            && r.endpoints == endpoints
                    })
                    .filter_map(|r| Some((r.subscribers as f64, value(r)?)))
                    .collect();
                (!points.is_empty()).then(|| Series {
                    name: series_name(control_plane, kind, endpoints),
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
        series: series_of(&|r| Some(r.to_last_ms.p50)),
    };
    // Raw ADS rows only: every control plane is measured with them.
    let cpu = LineChart {
        title: "Control-plane CPU per change (raw ADS subscribers)".to_owned(),
        x_label: "subscribers".to_owned(),
        y_label: "CPU ms".to_owned(),
        log_x: true,
        log_y: true,
        series: series_of(&|r| {
            (r.client == SubscriberKind::RawAds)
                .then_some(r.cp_cpu_ms_per_trial)
                .flatten()
        }),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::Recorded;

    /// The published results (`docs/benchmarks/propagation.json`).
    fn published() -> Recorded<propagation::Results> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/benchmarks/propagation.json"
        );
        let text = std::fs::read_to_string(path).expect("docs/benchmarks/propagation.json");
        serde_json::from_str(&text).expect("older results still load")
    }

    #[test]
    fn peer_rows_sit_beside_ours_in_tables_and_charts() {
        let mut recorded = published();
        let results = &mut recorded.results;
        // The published results may hold peer rows already; start from ours.
        results
            .rows
            .retain(|r| r.control_plane == ControlPlane::Ours);
        assert!(
            !results.rows.is_empty(),
            "the published results hold our rows"
        );
        let peer_rows: Vec<_> = results
            .rows
            .iter()
            .filter(|r| r.client == SubscriberKind::RawAds)
            .map(|r| propagation::Row {
                control_plane: ControlPlane::GoControlPlane,
                cp_written_mean_ms: None,
                cp_written_last_ms: None,
                ..r.clone()
            })
            .collect();
        results.rows.extend(peer_rows);
        results.peers = vec!["go-control-plane v0.14.0 (test)".to_owned()];

        let charts = propagation(results);
        for (name, svg, _) in &charts {
            assert!(svg.contains("ours, raw ADS, 10 ep"), "{name}");
            assert!(svg.contains("go-control-plane, 10 ep"), "{name}");
            assert!(svg.contains("go-control-plane, 1000 ep"), "{name}");
        }
        assert!(charts[0].1.contains("ours, xds-balancer, 10 ep"));
        assert!(
            !charts[1].1.contains("xds-balancer"),
            "CPU chart: raw ADS rows only"
        );

        let table = super::super::tables::propagation(&recorded, "");
        assert!(
            table.contains("Peer: go-control-plane v0.14.0 (test)"),
            "{table}"
        );
        let line = |control_plane: &str, change_table: usize| {
            table
                .split("\n\n")
                .filter(|block| block.starts_with("| subscribers"))
                .nth(change_table)
                .and_then(|block| {
                    block.lines().find(|l| {
                        l.starts_with("| 1000 | 10 |")
                            && l.contains(&format!("| {control_plane} | raw ADS |"))
                    })
                })
                .unwrap_or_else(|| panic!("{control_plane} in table {change_table}: {table}"))
                .to_owned()
        };
        for change_table in [0, 1] {
            line("**ours**", change_table);
            line("go-control-plane", change_table);
        }
        // The peer has no response histogram of ours.
        assert!(line("go-control-plane", 0).contains("| – |"));
    }
}
