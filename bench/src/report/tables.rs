//! The report's Markdown: one block per scenario, the goals, and the runs.

use std::fmt::Write as _;

use crate::datapath::{self, clients::ClientKind};
use crate::peers::ControlPlane;
use crate::propagation::{self, Change, SubscriberKind};
use crate::results::Recorded;
use crate::rollout;
use crate::stats::Summary;

/// Milliseconds with a precision that suits their size.
pub(super) fn ms(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

fn triple(summary: &Summary) -> String {
    format!(
        "{} / {} / {}",
        ms(summary.p50),
        ms(summary.p99),
        ms(summary.max)
    )
}

fn opt(value: Option<f64>, digits: usize) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v:.digits$}"))
}

fn client_name(kind: SubscriberKind) -> &'static str {
    match kind {
        SubscriberKind::RawAds => "raw ADS",
        SubscriberKind::Channel => "xds-balancer",
    }
}

/// The runs and the machine.
pub(crate) fn runs(runs: &[(&str, &str, &str, f64, bool, &crate::machine::Machine)]) -> String {
    let mut out = String::new();
    out.push_str(
        "| scenario | command | started (UTC) | took | load average at start |\n\
         |---|---|---|---|---:|\n",
    );
    for (scenario, command, started, seconds, quick, machine) in runs {
        let quick = if *quick { " (quick: tiny sizes)" } else { "" };
        let _ = writeln!(
            out,
            "| {scenario}{quick} | `{command}` | {started} | {seconds:.0} s | {:.2} |",
            machine.load_at_start
        );
    }
    let mut described: Vec<String> = Vec::new();
    for machine in runs.iter().map(|r| r.5) {
        let line = format!(
            "Machine: {} ({} cores available), {} MiB memory, {}; {}.",
            machine.cpu, machine.cores, machine.memory_mib, machine.os, machine.rustc
        );
        if !described.contains(&line) {
            described.push(line);
        }
    }
    for line in described {
        let _ = write!(out, "\n{line}\n");
    }
    out
}

/// Scenario 1's tables.
pub(crate) fn propagation(recorded: &Recorded<propagation::Results>, charts: &str) -> String {
    let results = &recorded.results;
    let mut out = String::new();
    out.push_str(
        "**Single change** (one endpoint's readiness toggles). Latencies in ms from the \
         `upsert` (for a peer, its own update call) to the subscriber holding the new set: per \
         subscriber over every subscriber and trial, and per trial to the last subscriber. \
         \"CP: responses written\" is our control plane's own account from its update-latency \
         histogram (change applied → response handed to HTTP/2): the mean over all responses, \
         and the bucket bound under which the last one was written (buckets double from 0.5 ms, \
         so this is an upper bound). CP CPU and memory are the control-plane process's own; \
         subscriber CPU is the subscribers' process's, per subscriber and change.\n\n",
    );
    out.push_str(&peers_note(results));
    out.push_str(
        "| subscribers | endpoints | control plane | client | streams/conn | trials | per subscriber p50 / p99 / max | last subscriber p50 / p99 / max | CP: responses written, mean / last (≤ ms, p50 over changes) | CP CPU per change (ms) | subscriber CPU per update (µs) | CP memory per idle subscriber (KiB) |\n\
         |---:|---:|---|---|---:|---:|---|---|---|---:|---:|---:|\n",
    );
    for row in results.rows.iter().filter(|r| r.change == Change::Single) {
        let written = match (row.cp_written_mean_ms, row.cp_written_last_ms) {
            (Some(mean), Some(last)) => format!("{} / {}", ms(mean), ms(last.p50)),
            _ => "–".to_owned(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {}{} | {} | {} | {written} | {} | {} | {} |",
            row.subscribers,
            row.endpoints,
            control_plane_name(row.control_plane),
            client_name(row.client),
            row.streams_per_connection,
            row.trials,
            missed(row.missed),
            triple(&row.per_subscriber_ms),
            triple(&row.to_last_ms),
            opt(row.cp_cpu_ms_per_trial, 2),
            opt(row.subscriber_cpu_us, 0),
            opt(row.cp_memory_per_subscriber_kib, 1),
        );
    }
    let burst = results
        .rows
        .iter()
        .find(|r| r.change == Change::Burst)
        .map_or(0, |r| r.changes_per_trial);
    let _ = write!(
        out,
        "\n**Burst** ({burst} endpoints toggle, one upsert each, back to back). Latencies in ms \
         from the last upsert (and, for the per-subscriber figures, also from the first); \
         updates per subscriber = ClusterLoadAssignments each raw subscriber received per burst \
         (fewer than {burst} means the control plane coalesced).\n\n"
    );
    out.push_str(
        "| subscribers | endpoints | control plane | client | trials | per subscriber p50 / p99 / max | from the first upsert p50 / max | last subscriber p50 / max | updates per subscriber | CP CPU per burst (ms) |\n\
         |---:|---:|---|---|---:|---|---|---|---:|---:|\n",
    );
    for row in results.rows.iter().filter(|r| r.change == Change::Burst) {
        let first = row.from_first_ms.unwrap_or_default();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {}{} | {} | {} / {} | {} / {} | {} | {} |",
            row.subscribers,
            row.endpoints,
            control_plane_name(row.control_plane),
            client_name(row.client),
            row.trials,
            missed(row.missed),
            triple(&row.per_subscriber_ms),
            ms(first.p50),
            ms(first.max),
            ms(row.to_last_ms.p50),
            ms(row.to_last_ms.max),
            opt(row.updates_per_subscriber, 2),
            opt(row.cp_cpu_ms_per_trial, 2),
        );
    }
    out.push_str(
        "\n**End to end** (a backend's health flips with `kill -USR1`; the real `control-plane \
         serve --static` sees it through its grpc.health.v1 Watch; xds-balancer channels). \
         Latencies in ms from the signal.\n\n",
    );
    out.push_str(
        "| subscribers | backends | trials | per subscriber p50 / p99 / max | last subscriber p50 / p99 / max |\n\
         |---:|---:|---:|---|---|\n",
    );
    for row in &results.e2e {
        let _ = writeln!(
            out,
            "| {} | {} | {}{} | {} | {} |",
            row.subscribers,
            row.endpoints,
            row.trials,
            missed(row.missed),
            triple(&row.per_subscriber_ms),
            triple(&row.to_last_ms),
        );
    }
    let _ = write!(
        out,
        "\nOpen-files limit for subscriber connections: {}.\n\n{charts}",
        results.fd_limit
    );
    out
}

fn control_plane_name(control_plane: ControlPlane) -> &'static str {
    match control_plane {
        ControlPlane::Ours => "**ours**",
        peer => peer.label(),
    }
}

/// Which peers the rows include, and which could not run.
fn peers_note(results: &propagation::Results) -> String {
    let mut out = String::new();
    for peer in &results.peers {
        let _ = writeln!(out, "Peer: {peer}; same subscribers, same changes.");
    }
    for skipped in &results.skipped_peers {
        let _ = writeln!(out, "Not measured in this run: {skipped}.");
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

fn missed(count: usize) -> String {
    if count == 0 {
        String::new()
    } else {
        format!(" ({count} missed)")
    }
}

const CLIENTS: [ClientKind; 4] = [
    ClientKind::Ours,
    ClientKind::Direct,
    ClientKind::BalanceChannel,
    ClientKind::Ginepro,
];

/// Scenario 2's tables.
pub(crate) fn data_path(recorded: &Recorded<datapath::Results>, charts: &str) -> String {
    let results = &recorded.results;
    let find = |client, backends, concurrency| {
        results
            .rows
            .iter()
            .find(|r| r.client == client && r.backends == backends && r.concurrency == concurrency)
    };
    let mut keys: Vec<(usize, usize)> = results
        .rows
        .iter()
        .map(|r| (r.backends, r.concurrency))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let mut out = String::new();
    let _ = write!(
        out,
        "Unary SayHello, closed loop. Throughput in calls/s (best of {} rounds of {:.1} s; in \
         brackets, percent of the direct channel in the same setting); latency in ms over every \
         call of every round.\n\n",
        results.reps, results.duration_s
    );
    out.push_str("| backends | concurrency |");
    for client in CLIENTS {
        let _ = write!(out, " {} |", client.label());
    }
    out.push_str("\n|---:|---:|---:|---:|---:|---:|\n");
    for &(backends, concurrency) in &keys {
        let direct = find(ClientKind::Direct, backends, concurrency).map_or(0.0, |r| r.throughput);
        let _ = write!(out, "| {backends} | {concurrency} |");
        for client in CLIENTS {
            match find(client, backends, concurrency) {
                Some(row) if direct > 0.0 => {
                    let _ = write!(
                        out,
                        " {:.0} ({:.0} %) |",
                        row.throughput,
                        100.0 * row.throughput / direct
                    );
                }
                Some(row) => {
                    let _ = write!(out, " {:.0} |", row.throughput);
                }
                None => out.push_str(" – |"),
            }
        }
        out.push('\n');
    }
    out.push_str("\nLatency p50 / p99 (ms):\n\n| backends | concurrency |");
    for client in CLIENTS {
        let _ = write!(out, " {} |", client.label());
    }
    out.push_str("\n|---:|---:|---|---|---|---|\n");
    for &(backends, concurrency) in &keys {
        let _ = write!(out, "| {backends} | {concurrency} |");
        for client in CLIENTS {
            match find(client, backends, concurrency) {
                Some(row) => {
                    let _ = write!(
                        out,
                        " {} / {} |",
                        ms(row.latency_ms.p50),
                        ms(row.latency_ms.p99)
                    );
                }
                None => out.push_str(" – |"),
            }
        }
        out.push('\n');
    }
    out.push_str(
        "\nCPU per answered call (µs): the client (harness) process / all backend processes \
         (from /proc, 10 ms ticks):\n\n| backends | concurrency |",
    );
    for client in CLIENTS {
        let _ = write!(out, " {} |", client.label());
    }
    out.push_str("\n|---:|---:|---|---|---|---|\n");
    for &(backends, concurrency) in &keys {
        let _ = write!(out, "| {backends} | {concurrency} |");
        for client in CLIENTS {
            match find(client, backends, concurrency) {
                Some(row) => {
                    let _ = write!(
                        out,
                        " {:.1} / {:.1} |",
                        row.client_cpu_us_per_call, row.server_cpu_us_per_call
                    );
                }
                None => out.push_str(" – |"),
            }
        }
        out.push('\n');
    }
    out.push_str(
        "\nPer-backend distribution (answered calls by `served_by`, all rounds, highest \
         concurrency; spread = busiest / idlest backend):\n\n| backends | client | calls by backend | spread | failed |\n|---:|---|---|---:|---:|\n",
    );
    let top = keys.iter().map(|k| k.1).max().unwrap_or(0);
    for &(backends, concurrency) in keys.iter().filter(|k| k.1 == top) {
        for client in CLIENTS {
            let Some(row) = find(client, backends, concurrency) else {
                continue;
            };
            let counts: Vec<String> = row
                .by_backend
                .iter()
                .map(|(b, n)| format!("{b}: {n}"))
                .collect();
            let busiest = row.by_backend.values().max().copied().unwrap_or(0);
            let idlest = if row.by_backend.len() < backends {
                0
            } else {
                row.by_backend.values().min().copied().unwrap_or(0)
            };
            let spread = if idlest == 0 {
                "∞".to_owned()
            } else {
                format!("{:.2}", busiest as f64 / idlest as f64)
            };
            let _ = writeln!(
                out,
                "| {backends} | {} | {} | {spread} | {} |",
                client.label(),
                counts.join(", "),
                row.failed
            );
        }
    }
    let _ = write!(out, "\n{charts}");
    out
}

/// Scenario 3's table.
pub(crate) fn rollout(recorded: &Recorded<rollout::Results>, charts: &str) -> String {
    let results = &recorded.results;
    let mut out = String::new();
    let _ = write!(
        out,
        "{} backends replaced one at a time under {} concurrent callers; backends drain with \
         `--drain-delay {}s`; DNS polling every {} s.\n\n",
        results.backends, results.concurrency, results.drain_delay_s, results.dns_interval_s
    );
    out.push_str(
        "| approach | discovery | calls answered | calls failed | failed % | errors (count) | answered by old / new backends |\n\
         |---|---|---:|---:|---:|---|---|\n",
    );
    for row in &results.rows {
        let total = row.ok + row.failed;
        let rate = if total == 0 {
            0.0
        } else {
            100.0 * row.failed as f64 / total as f64
        };
        let errors: Vec<String> = row
            .errors
            .iter()
            .map(|(e, n)| format!("`{}` ({n})", e.replace('|', "/").replace('`', "'")))
            .collect();
        let old: u64 = row
            .by_backend
            .iter()
            .filter(|(b, _)| b.starts_with("v1-"))
            .map(|(_, n)| n)
            .sum();
        let new: u64 = row
            .by_backend
            .iter()
            .filter(|(b, _)| b.starts_with("v2-"))
            .map(|(_, n)| n)
            .sum();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.3} | {} | {old} / {new} |",
            row.client.label(),
            row.discovery,
            row.ok,
            row.failed,
            rate,
            if errors.is_empty() {
                "–".to_owned()
            } else {
                errors.join("; ")
            },
        );
    }
    for row in &results.rows {
        if let Some(connections) = row.l4_connections {
            let _ = writeln!(
                out,
                "\n{}: the client opened {connections} TCP connection(s) through the balancer in all.",
                row.client.label()
            );
        }
    }
    let _ = write!(out, "\n{charts}");
    out
}
