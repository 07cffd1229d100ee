//! The goals of issue 8, checked against the measured numbers. Reported,
//! never asserted.

use std::fmt::Write as _;

use crate::datapath::{self, clients::ClientKind};
use crate::peers::ControlPlane;
use crate::propagation::{self, Change, SubscriberKind};
use crate::results::Recorded;
use crate::rollout;

/// One goal's line.
struct Line {
    goal: String,
    measured: String,
    met: Option<bool>,
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "not measured",
    }
}

fn time_to_last(
    results: Option<&propagation::Results>,
    subscribers: usize,
    limit_ms: f64,
) -> Vec<Line> {
    let rows: Vec<_> = results
        .map(|r| {
            r.rows
                .iter()
                .filter(|row| {
                    row.subscribers == subscribers
                        && row.change == Change::Single
                        && row.control_plane == ControlPlane::Ours
                })
                .collect()
        })
        .unwrap_or_default();
    if rows.is_empty() {
        return vec![Line {
            goal: format!(
                "time to the last subscriber p99 ≤ {limit_ms} ms at {subscribers} subscribers"
            ),
            measured: "–".to_owned(),
            met: None,
        }];
    }
    rows.into_iter()
        .map(|row| {
            let client = match row.client {
                SubscriberKind::RawAds => "raw ADS",
                SubscriberKind::Channel => "xds-balancer",
            };
            Line {
                goal: format!(
                    "time to the last subscriber p99 ≤ {limit_ms} ms at {subscribers} subscribers ({} endpoints, {client})",
                    row.endpoints
                ),
                measured: format!(
                    "p99 {:.2} ms over {} changes (p50 {:.2} ms)",
                    row.to_last_ms.p99, row.trials, row.to_last_ms.p50
                ),
                met: Some(row.missed == 0 && row.to_last_ms.p99 <= limit_ms),
            }
        })
        .collect()
}

/// The goals table.
pub(crate) fn render(
    propagation: Option<&Recorded<propagation::Results>>,
    data_path: Option<&Recorded<datapath::Results>>,
    rollout: Option<&Recorded<rollout::Results>>,
) -> String {
    let prop = propagation.map(|r| &r.results);
    let mut lines = Vec::new();
    // The latency goals of the performance work: the last of 1 000
    // subscribers within 10 ms, of 10 000 within 100 ms (p99).
    lines.extend(time_to_last(prop, 1000, 10.0));
    lines.extend(time_to_last(prop, 10_000, 100.0));

    let memory: Vec<_> = prop
        .map(|r| {
            r.rows
                .iter()
                .filter(|row| {
                    row.change == Change::Single
                        && row.client == SubscriberKind::RawAds
                        && row.control_plane == ControlPlane::Ours
                })
                .filter_map(|row| {
                    Some((
                        row.subscribers,
                        row.endpoints,
                        row.cp_memory_per_subscriber_kib?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let largest = memory.iter().map(|m| m.0).max();
    for (subscribers, endpoints, kib) in memory.iter().filter(|m| Some(m.0) == largest) {
        lines.push(Line {
            goal: format!("≤ 32 KiB control-plane memory per idle subscriber ({subscribers} subscribers, {endpoints} endpoints)"),
            measured: format!("{kib:.1} KiB"),
            met: Some(*kib <= 32.0),
        });
    }
    if memory.is_empty() {
        lines.push(Line {
            goal: "≤ 32 KiB control-plane memory per idle subscriber".to_owned(),
            measured: "–".to_owned(),
            met: None,
        });
    }

    let rows = data_path
        .map(|r| r.results.rows.as_slice())
        .unwrap_or_default();
    let mut throughput_lines = 0;
    for ours in rows
        .iter()
        .filter(|r| r.client == ClientKind::Ours && r.backends == 1)
    {
        let Some(direct) = rows.iter().find(|r| {
            r.client == ClientKind::Direct && r.backends == 1 && r.concurrency == ours.concurrency
        }) else {
            continue;
        };
        let ratio = 100.0 * ours.throughput / direct.throughput.max(f64::MIN_POSITIVE);
        throughput_lines += 1;
        lines.push(Line {
            goal: format!(
                "our channel ≥ 97 % of a direct channel's throughput, 1 backend, concurrency {}",
                ours.concurrency
            ),
            measured: format!(
                "{ratio:.1} % ({:.0} vs {:.0} calls/s; client CPU per call {:.1} vs {:.1} µs)",
                ours.throughput,
                direct.throughput,
                ours.client_cpu_us_per_call,
                direct.client_cpu_us_per_call
            ),
            met: Some(ratio >= 97.0),
        });
    }
    if throughput_lines == 0 {
        lines.push(Line {
            goal: "our channel ≥ 97 % of a direct channel's throughput with one backend".to_owned(),
            measured: "–".to_owned(),
            met: None,
        });
    }

    let ours = rollout.and_then(|r| {
        r.results
            .rows
            .iter()
            .find(|row| row.client == ClientKind::Ours)
    });
    lines.push(Line {
        goal: "zero failed calls in a rollout (ours)".to_owned(),
        measured: ours.map_or_else(
            || "–".to_owned(),
            |row| format!("{} failed of {}", row.failed, row.ok + row.failed),
        ),
        met: ours.map(|row| row.failed == 0),
    });

    let quick = [
        propagation.map(|r| r.quick),
        data_path.map(|r| r.quick),
        rollout.map(|r| r.quick),
    ]
    .into_iter()
    .flatten()
    .any(|q| q);
    let mut out = String::new();
    if quick {
        out.push_str(
            "*Some results come from a quick run (tiny sizes): these verdicts mean nothing.*\n\n",
        );
    }
    out.push_str("| goal | measured | verdict |\n|---|---|---|\n");
    for line in lines {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            line.goal,
            line.measured,
            verdict(line.met)
        );
    }
    out
}
