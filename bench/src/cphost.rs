//! The control plane under test, in a process of its own.
//!
//! # Design notes
//!
//! The propagation benchmark needs to know the instant a readiness change
//! happens at the source, and the control plane's own CPU time and memory
//! apart from the subscribers'. So the harness starts itself again as
//! `bench cp-host`: that process runs the control plane's library exactly
//! as `control-plane serve` does (a [`Store`](control_plane::store::Store),
//! [`server::run`] on a loopback port) and plays the source: it calls
//! [`SourceHandle::upsert`](control_plane::source::SourceHandle::upsert) when told
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
//!
//! # Layout
//!
//! This file holds the protocol's types and the endpoint addresses;
//! `serve` is the host process (`bench cp-host`), and `handle` the
//! harness's [`Host`] driving one.

mod handle;
mod serve;

use control_plane::server;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

pub(crate) use self::handle::Host;
pub(crate) use self::serve::run;

/// The service the host serves.
pub(crate) const SERVICE: &str = "greeter";
/// Its namespace.
pub(crate) const NAMESPACE: &str = "default";
/// Its Service port.
pub(crate) const SERVICE_PORT: u16 = 80;

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
}
