//! The cost of one handshake: sequential fresh connections, each carrying
//! one SayHello and then closed, TCP + HTTP/2 against TCP + TLS (with a
//! client certificate) + HTTP/2.
//!
//! # Design notes
//!
//! One plaintext greeter-server and one that requires client certificates.
//! A connection is a tonic channel through `tls_reload`'s connector (the
//! TLS code our channel uses): its time to connected, and to the first
//! call's answer, are recorded per connection. The two transports take
//! turns in batches of [`Config::batch`] connections; each batch's CPU time
//! (the harness process's for the client side, the server's from `/proc`)
//! is charged to its transport, so the difference per connection is what
//! the TLS handshake (and the encrypted first call) costs each side. Every
//! connection makes a new rustls client configuration, so nothing is
//! resumed: each one is a full handshake, as our channel's are.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tls_reload::client::{ClientTls, ServerVerification};

use super::certs::BenchTls;
use super::clients::{self, Caller};
use super::start_backends;
use super::tls::Transport;
use crate::procs::{self, Bins, Proc};
use crate::stats::Summary;

/// Errors of the handshake measurement.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// Starting a process failed.
    #[error(transparent)]
    Process(#[from] procs::Error),
    /// The first TLS connection, made to see what is negotiated, failed.
    #[error("TLS connection to {addr}: {reason}")]
    Negotiation {
        /// The server.
        addr: std::net::SocketAddr,
        /// Why.
        reason: String,
    },
}

/// How many connections.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// Measured connections per transport.
    pub(crate) connections: usize,
    /// Connections in a row over one transport before the other's turn.
    pub(crate) batch: usize,
}

impl Config {
    /// The published set.
    pub(crate) fn full() -> Self {
        Self {
            connections: 2000,
            batch: 50,
        }
    }

    /// Tiny sizes, to check the harness.
    pub(crate) fn quick() -> Self {
        Self {
            connections: 10,
            batch: 5,
        }
    }
}

/// One transport's connections.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Row {
    /// Plaintext or mTLS.
    pub(crate) transport: Transport,
    /// Connections that answered their call.
    pub(crate) connections: usize,
    /// From the start of the TCP connect to tonic's channel being connected
    /// (TCP, the TLS handshake, the HTTP/2 preface sent), ms.
    pub(crate) connect_ms: Summary,
    /// From the start of the TCP connect to the first call's answer, ms.
    pub(crate) first_call_ms: Summary,
    /// The harness process's CPU time per connection, µs.
    pub(crate) client_cpu_us: f64,
    /// The server process's CPU time per connection, µs.
    pub(crate) server_cpu_us: f64,
    /// Connections that failed to connect or to answer.
    pub(crate) failed: u64,
    /// Failures by error text.
    pub(crate) errors: BTreeMap<String, u64>,
}

/// What the TLS connections negotiated.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Negotiated {
    /// Protocol version.
    pub(crate) protocol: String,
    /// Cipher suite.
    pub(crate) cipher_suite: String,
    /// Key exchange group.
    pub(crate) key_exchange: String,
}

/// The handshake measurement's results.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Results {
    /// Plaintext, then mTLS.
    pub(crate) rows: Vec<Row>,
    /// Connections per batch.
    pub(crate) batch: usize,
    /// What the TLS connections negotiated.
    pub(crate) negotiated: Negotiated,
}

/// One transport's samples so far.
#[derive(Default)]
struct Tally {
    connect_ms: Vec<f64>,
    first_call_ms: Vec<f64>,
    client_ns: u64,
    server_ns: u64,
    failed: u64,
    errors: BTreeMap<String, u64>,
}

/// Opens one TLS connection to `addr` and reports what it negotiated.
async fn negotiated(
    addr: std::net::SocketAddr,
    tls: &(ClientTls, ServerVerification),
) -> Result<Negotiated, Error> {
    let failed = |reason: String| Error::Negotiation { addr, reason };
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let stream = tls
        .0
        .handshake(tcp, &tls.1)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let connection = stream.get_ref().1;
    Ok(Negotiated {
        protocol: connection
            .protocol_version()
            .map_or_else(String::new, |v| format!("{v:?}")),
        cipher_suite: connection
            .negotiated_cipher_suite()
            .map_or_else(String::new, |s| format!("{:?}", s.suite())),
        key_exchange: connection
            .negotiated_key_exchange_group()
            .map_or_else(String::new, |g| format!("{:?}", g.name())),
    })
}

/// `count` connections to `server` in a row, each with one call, into
/// `tally` (with the CPU time both sides used meanwhile when `measured`).
async fn batch(
    server: &Proc,
    tls: Option<&(ClientTls, ServerVerification)>,
    count: usize,
    tally: &mut Tally,
    measured: bool,
) {
    let client_before = crate::machine::cpu_ns();
    let server_before = server.cpu_ns();
    for _ in 0..count {
        let started = Instant::now();
        let result = async {
            let channel = clients::through_connector(server.addr(), tls.cloned())
                .await
                .map_err(|e| e.to_string())?;
            let connected = started.elapsed();
            Caller::tonic(channel).say_hello().await?;
            Ok::<_, String>((connected, started.elapsed()))
        }
        .await;
        if !measured {
            continue;
        }
        match result {
            Ok((connected, answered)) => {
                tally.connect_ms.push(connected.as_secs_f64() * 1e3);
                tally.first_call_ms.push(answered.as_secs_f64() * 1e3);
            }
            Err(error) => {
                tally.failed += 1;
                *tally.errors.entry(super::load::shorten(error)).or_default() += 1;
            }
        }
    }
    // Let the last connection's close reach both sides before reading CPU.
    tokio::time::sleep(Duration::from_millis(5)).await;
    tally.client_ns += crate::machine::cpu_ns().saturating_sub(client_before);
    tally.server_ns += server.cpu_ns().saturating_sub(server_before);
}

/// Runs the measurement against fresh servers.
pub(crate) async fn run(
    config: &Config,
    bins: &Bins,
    certs: &BenchTls,
    tls: &(ClientTls, ServerVerification),
) -> Result<Results, Error> {
    let mut servers = start_backends(bins, "handshake-plain", 1, &[]).await?;
    servers.extend(start_backends(bins, "handshake-tls", 1, &certs.server_args()).await?);
    let negotiated = negotiated(servers[1].addr(), tls).await?;
    let sides = [(Transport::Plaintext, None), (Transport::Mtls, Some(tls))];
    let batch_size = config.batch.max(1);
    let mut tallies = [Tally::default(), Tally::default()];
    for (i, (_, tls)) in sides.iter().enumerate() {
        batch(&servers[i], *tls, batch_size, &mut tallies[i], false).await;
    }
    let rounds = config.connections.div_ceil(batch_size);
    for round in 0..rounds {
        for step in 0..sides.len() {
            // Each round starts with the other transport.
            let i = (step + round) % sides.len();
            batch(&servers[i], sides[i].1, batch_size, &mut tallies[i], true).await;
        }
    }
    let rows = sides
        .iter()
        .zip(tallies)
        .map(|((transport, _), tally)| {
            let attempts = (tally.connect_ms.len() as u64 + tally.failed).max(1) as f64;
            Row {
                transport: *transport,
                connections: tally.first_call_ms.len(),
                connect_ms: Summary::of(tally.connect_ms),
                first_call_ms: Summary::of(tally.first_call_ms),
                client_cpu_us: tally.client_ns as f64 / 1e3 / attempts,
                server_cpu_us: tally.server_ns as f64 / 1e3 / attempts,
                failed: tally.failed,
                errors: tally.errors,
            }
        })
        .collect();
    Ok(Results {
        rows,
        batch: batch_size,
        negotiated,
    })
}
