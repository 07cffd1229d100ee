//! The report's block for the data path over mutual TLS: throughput,
//! latency and CPU per call against plaintext, and the cost of one
//! handshake.

use std::fmt::Write as _;

use crate::datapath::clients::ClientKind;
use crate::datapath::handshake;
use crate::datapath::tls::{Results, TlsRow, Transport};
use crate::results::Recorded;

use super::tables::ms;

/// The columns: each client over plaintext, then over mTLS.
const COLUMNS: [(ClientKind, Transport); 4] = [
    (ClientKind::Ours, Transport::Plaintext),
    (ClientKind::Ours, Transport::Mtls),
    (ClientKind::Direct, Transport::Plaintext),
    (ClientKind::Direct, Transport::Mtls),
];

fn column_name(client: ClientKind, transport: Transport) -> String {
    let name = match client {
        ClientKind::Ours => "ours",
        ClientKind::Direct => "direct",
        other => other.short_label(),
    };
    format!("{name}, {}", transport.label())
}

fn header(out: &mut String, first: &str) {
    let _ = write!(out, "| backends | concurrency |");
    for (client, transport) in COLUMNS {
        let _ = write!(out, " {} |", column_name(client, transport));
    }
    let _ = writeln!(
        out,
        "\n|---:|---:|{}",
        format!("{first}|").repeat(COLUMNS.len())
    );
}

/// The block.
pub(crate) fn data_path_tls(recorded: &Recorded<Results>) -> String {
    let results = &recorded.results;
    let find = |client, transport, backends, concurrency| {
        results.rows.iter().find(|r: &&TlsRow| {
            r.transport == transport
                && r.row.client == client
                && r.row.backends == backends
                && r.row.concurrency == concurrency
        })
    };
    let mut keys: Vec<(usize, usize)> = results
        .rows
        .iter()
        .map(|r| (r.row.backends, r.row.concurrency))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let mut out = String::new();
    let _ = write!(
        out,
        "Unary SayHello, closed loop; each client over plaintext and over mTLS takes its turn in \
         the same rounds. Throughput in calls/s (best of {} rounds of {:.1} s; in brackets, mTLS \
         as percent of the same client over plaintext); latency in ms over every call of every \
         round.\n\n",
        results.reps, results.duration_s
    );
    header(&mut out, "---:");
    for &(backends, concurrency) in &keys {
        let _ = write!(out, "| {backends} | {concurrency} |");
        for (client, transport) in COLUMNS {
            let plain = find(client, Transport::Plaintext, backends, concurrency)
                .map_or(0.0, |r| r.row.throughput);
            match find(client, transport, backends, concurrency) {
                Some(r) if transport == Transport::Mtls && plain > 0.0 => {
                    let _ = write!(
                        out,
                        " {:.0} ({:.0} %) |",
                        r.row.throughput,
                        100.0 * r.row.throughput / plain
                    );
                }
                Some(r) => {
                    let _ = write!(out, " {:.0} |", r.row.throughput);
                }
                None => out.push_str(" – |"),
            }
        }
        out.push('\n');
    }
    out.push_str("\nLatency p50 / p99 (ms):\n\n");
    header(&mut out, "---");
    for &(backends, concurrency) in &keys {
        let _ = write!(out, "| {backends} | {concurrency} |");
        for (client, transport) in COLUMNS {
            match find(client, transport, backends, concurrency) {
                Some(r) => {
                    let latency = &r.row.latency_ms;
                    let _ = write!(out, " {} / {} |", ms(latency.p50), ms(latency.p99));
                }
                None => out.push_str(" – |"),
            }
        }
        out.push('\n');
    }
    out.push_str(
        "\nCPU per answered call (µs): the client (harness) process / the backend processes of \
         its transport (from /proc, 10 ms ticks):\n\n",
    );
    header(&mut out, "---");
    for &(backends, concurrency) in &keys {
        let _ = write!(out, "| {backends} | {concurrency} |");
        for (client, transport) in COLUMNS {
            match find(client, transport, backends, concurrency) {
                Some(r) => {
                    let _ = write!(
                        out,
                        " {:.1} / {:.1} |",
                        r.row.client_cpu_us_per_call, r.row.server_cpu_us_per_call
                    );
                }
                None => out.push_str(" – |"),
            }
        }
        out.push('\n');
    }
    let failed: u64 = results.rows.iter().map(|r| r.row.failed).sum();
    let calls: u64 = results
        .rows
        .iter()
        .flat_map(|r| r.row.by_backend.values())
        .sum();
    let _ = writeln!(out, "\nFailed calls: {failed} of {}.", calls + failed);
    if let Some(r) = keys
        .iter()
        .rev()
        .find_map(|&(b, c)| find(ClientKind::Ours, Transport::Mtls, b, c))
    {
        let counts: Vec<String> = r
            .row
            .by_backend
            .iter()
            .map(|(b, n)| format!("{b}: {n}"))
            .collect();
        let _ = writeln!(
            out,
            "Our channel over mTLS, {} backends, concurrency {}, calls by backend: {}.",
            r.row.backends,
            r.row.concurrency,
            counts.join(", ")
        );
    }
    out.push('\n');
    handshakes(&mut out, &results.handshake);
    out
}

/// `value` with its sign, formatted by `format`.
fn signed(value: f64, format: impl Fn(f64) -> String) -> String {
    if value < 0.0 {
        format!("−{}", format(-value))
    } else {
        format!("+{}", format(value))
    }
}

/// The handshake table.
fn handshakes(out: &mut String, results: &handshake::Results) {
    let negotiated = &results.negotiated;
    let count = results
        .rows
        .iter()
        .map(|r| r.connections)
        .max()
        .unwrap_or(0);
    let _ = write!(
        out,
        "**One handshake.** {count} fresh connections per transport, one after the other (in \
         alternating batches of {}), each carrying one SayHello and then closed. The TLS ones \
         negotiated {}, {}, key exchange {}, with a client certificate. CPU per connection: the \
         harness process (client) and the server process (from /proc, 10 ms ticks, summed over \
         each batch).\n\n",
        results.batch, negotiated.protocol, negotiated.cipher_suite, negotiated.key_exchange
    );
    out.push_str(
        "| connection | connections | connected p50 / p99 (ms) | first call answered p50 / p99 (ms) | client CPU (µs) | server CPU (µs) | failed |\n\
         |---|---:|---|---|---:|---:|---:|\n",
    );
    let find = |transport| results.rows.iter().find(|r| r.transport == transport);
    for row in &results.rows {
        let name = match row.transport {
            Transport::Plaintext => "TCP + HTTP/2 (plaintext)",
            Transport::Mtls => "TCP + TLS with client certificate + HTTP/2",
        };
        let _ = writeln!(
            out,
            "| {name} | {} | {} / {} | {} / {} | {:.0} | {:.0} | {} |",
            row.connections,
            ms(row.connect_ms.p50),
            ms(row.connect_ms.p99),
            ms(row.first_call_ms.p50),
            ms(row.first_call_ms.p99),
            row.client_cpu_us,
            row.server_cpu_us,
            row.failed
        );
    }
    if let (Some(plain), Some(mtls)) = (find(Transport::Plaintext), find(Transport::Mtls)) {
        let _ = writeln!(
            out,
            "| the mTLS handshake (difference) | – | {} / {} | {} / {} | {} | {} | – |",
            signed(mtls.connect_ms.p50 - plain.connect_ms.p50, ms),
            signed(mtls.connect_ms.p99 - plain.connect_ms.p99, ms),
            signed(mtls.first_call_ms.p50 - plain.first_call_ms.p50, ms),
            signed(mtls.first_call_ms.p99 - plain.first_call_ms.p99, ms),
            signed(mtls.client_cpu_us - plain.client_cpu_us, |v| format!(
                "{v:.0}"
            )),
            signed(mtls.server_cpu_us - plain.server_cpu_us, |v| format!(
                "{v:.0}"
            )),
        );
    }
    for row in results.rows.iter().filter(|r| !r.errors.is_empty()) {
        let errors: Vec<String> = row
            .errors
            .iter()
            .map(|(e, n)| format!("`{}` ({n})", e.replace('|', "/").replace('`', "'")))
            .collect();
        let _ = writeln!(
            out,
            "\n{} failures: {}.",
            row.transport.label(),
            errors.join("; ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::Machine;
    use crate::stats::Summary;

    fn data_row(client: ClientKind, transport: Transport, throughput: f64) -> TlsRow {
        let backend = match transport {
            Transport::Plaintext => "b0",
            Transport::Mtls => "tls-b0",
        };
        TlsRow {
            transport,
            row: crate::datapath::Row {
                client,
                backends: 1,
                concurrency: 16,
                throughput,
                throughput_range: (throughput, throughput),
                latency_ms: Summary::of(vec![0.5, 1.0]),
                by_backend: [(backend.to_owned(), 100)].into(),
                failed: 0,
                errors: Default::default(),
                client_cpu_us_per_call: 20.0,
                server_cpu_us_per_call: 15.0,
            },
        }
    }

    fn handshake_row(transport: Transport, connect_ms: f64, cpu_us: f64) -> handshake::Row {
        handshake::Row {
            transport,
            connections: 10,
            connect_ms: Summary::of(vec![connect_ms]),
            first_call_ms: Summary::of(vec![connect_ms + 0.25]),
            client_cpu_us: cpu_us,
            server_cpu_us: cpu_us / 2.0,
            failed: 0,
            errors: Default::default(),
        }
    }

    #[test]
    fn mtls_is_shown_against_plaintext_and_the_handshake_as_a_difference() {
        let recorded = Recorded {
            command: "bench data-path --tls".to_owned(),
            started: "2026-12-03T00:00:00Z".to_owned(),
            duration_s: 1.0,
            quick: false,
            machine: Machine::describe(),
            results: Results {
                rows: vec![
                    data_row(ClientKind::Ours, Transport::Plaintext, 1000.0),
                    data_row(ClientKind::Ours, Transport::Mtls, 900.0),
                    data_row(ClientKind::Direct, Transport::Plaintext, 2000.0),
                    data_row(ClientKind::Direct, Transport::Mtls, 1000.0),
                ],
                reps: 6,
                duration_s: 0.8,
                handshake: handshake::Results {
                    rows: vec![
                        handshake_row(Transport::Plaintext, 0.5, 300.0),
                        handshake_row(Transport::Mtls, 1.5, 800.0),
                    ],
                    batch: 5,
                    negotiated: handshake::Negotiated {
                        protocol: "TLSv1_3".to_owned(),
                        cipher_suite: "TLS13_AES_256_GCM_SHA384".to_owned(),
                        key_exchange: "X25519".to_owned(),
                    },
                },
            },
        };
        let block = data_path_tls(&recorded);
        assert!(
            block.contains("| 1 | 16 | 1000 | 900 (90 %) | 2000 | 1000 (50 %) |"),
            "{block}"
        );
        assert!(block.contains("Failed calls: 0 of 400."), "{block}");
        assert!(block.contains("tls-b0: 100"), "{block}");
        assert!(block.contains("negotiated TLSv1_3"), "{block}");
        assert!(
            block.contains("| the mTLS handshake (difference) | – | +1.00 / +1.00 | +1.00 / +1.00 | +500 | +250 | – |"),
            "{block}"
        );
    }

    #[test]
    fn a_negative_difference_keeps_its_sign() {
        assert_eq!(signed(-0.5, ms), "−0.50");
        assert_eq!(signed(2.0, ms), "+2.00");
    }
}
