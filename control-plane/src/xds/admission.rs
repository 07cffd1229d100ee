//! Who may use the control plane, and how much: the client-certificate SAN
//! allow-list (`--allow-client-san`) and the ADS stream limits
//! (`--max-streams`, `--max-streams-per-peer`).
//!
//! # Design notes
//!
//! Each ADS stream costs about 32 KiB (docs/benchmarks.md), so without a
//! cap any peer that can open streams can exhaust the memory limit. A
//! stream is admitted before its task starts and holds a [`Ticket`] until
//! it ends; refusing one never touches the streams already open. The peer
//! a limit applies to is the client's identity when it presented a
//! certificate (first URI SAN, else first DNS SAN), else its IP address.
//! Refusals are counted here, for the status API, and in the metrics.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use common::incoming::ConnInfo;
use common::tls::SanMatcher;
use tonic::Status;

use crate::kinds::Refusal;
use crate::metrics::Metrics;

/// What [`Admission`] enforces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdmissionConfig {
    /// Client certificates must have a SAN matching one of these; empty:
    /// any certificate the TLS layer accepted.
    pub allowed_sans: Vec<SanMatcher>,
    /// At most this many ADS streams at once; `None`: no limit.
    pub max_streams: Option<usize>,
    /// At most this many ADS streams per peer; `None`: no limit.
    pub max_streams_per_peer: Option<usize>,
}

/// Counts of refusals, for the status API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefusalCounts {
    /// SAN not allowed.
    pub san_not_allowed: u64,
    /// Over the total limit.
    pub max_streams: u64,
    /// Over the per-peer limit.
    pub max_streams_per_peer: u64,
    /// The latest refusal's message and time.
    pub last: Option<(String, SystemTime)>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_peer: HashMap<String, usize>,
}

/// The admission checks and their counters. Share as `Arc<Admission>`.
#[derive(Debug)]
pub struct Admission {
    config: AdmissionConfig,
    open: Mutex<Open>,
    san_not_allowed: AtomicU64,
    max_streams: AtomicU64,
    max_streams_per_peer: AtomicU64,
    last: Mutex<Option<(String, SystemTime)>>,
    metrics: Arc<Metrics>,
}

impl Admission {
    /// Checks as `config` says, counting refusals in `metrics` too.
    pub fn new(config: AdmissionConfig, metrics: Arc<Metrics>) -> Self {
        Self {
            config,
            open: Mutex::default(),
            san_not_allowed: AtomicU64::new(0),
            max_streams: AtomicU64::new(0),
            max_streams_per_peer: AtomicU64::new(0),
            last: Mutex::default(),
            metrics,
        }
    }

    /// Whether the connection's client certificate may use the API at all:
    /// PERMISSION_DENIED naming the SANs it presented when not.
    pub fn check_identity(&self, conn: Option<&ConnInfo>) -> Result<(), Status> {
        if self.config.allowed_sans.is_empty() {
            return Ok(());
        }
        let identity = conn.and_then(|conn| conn.peer_identity.as_deref());
        let allowed = identity
            .is_some_and(|identity| SanMatcher::any_accepts(&self.config.allowed_sans, identity));
        if allowed {
            return Ok(());
        }
        let presented = identity.map_or_else(
            || "no client certificate".to_owned(),
            |identity| format!("a client certificate with SANs {identity}"),
        );
        let patterns: Vec<String> = self
            .config
            .allowed_sans
            .iter()
            .map(ToString::to_string)
            .collect();
        let message = format!(
            "client refused: it presented {presented}, and none matches --allow-client-san [{}]",
            patterns.join(", ")
        );
        Err(self.refuse(Refusal::SanNotAllowed, Status::permission_denied(message)))
    }

    /// Admits one ADS stream from `conn`: the identity check, then the
    /// limits. The stream counts until the ticket is dropped.
    pub fn admit_stream(self: &Arc<Self>, conn: Option<&ConnInfo>) -> Result<Ticket, Status> {
        self.check_identity(conn)?;
        let peer = peer_key(conn);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(limit) = self.config.max_streams
            && open.total >= limit
        {
            drop(open);
            let message = format!(
                "too many ADS streams: this control plane serves at most {limit} (--max-streams); \
                 retry later or raise the limit"
            );
            return Err(self.refuse(Refusal::MaxStreams, Status::resource_exhausted(message)));
        }
        let mine = open.per_peer.get(&peer).copied().unwrap_or(0);
        if let Some(limit) = self.config.max_streams_per_peer
            && mine >= limit
        {
            drop(open);
            let message = format!(
                "too many ADS streams from {peer}: at most {limit} per client \
                 (--max-streams-per-peer); one xDS client per process needs one"
            );
            return Err(self.refuse(
                Refusal::MaxStreamsPerPeer,
                Status::resource_exhausted(message),
            ));
        }
        open.total += 1;
        *open.per_peer.entry(peer.clone()).or_default() += 1;
        Ok(Ticket {
            admission: self.clone(),
            peer,
        })
    }

    /// Refusal counts so far.
    pub fn counts(&self) -> RefusalCounts {
        RefusalCounts {
            san_not_allowed: self.san_not_allowed.load(Ordering::Relaxed),
            max_streams: self.max_streams.load(Ordering::Relaxed),
            max_streams_per_peer: self.max_streams_per_peer.load(Ordering::Relaxed),
            last: self.last.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }

    fn refuse(&self, why: Refusal, status: Status) -> Status {
        let counter = match why {
            Refusal::SanNotAllowed => &self.san_not_allowed,
            Refusal::MaxStreams => &self.max_streams,
            Refusal::MaxStreamsPerPeer => &self.max_streams_per_peer,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.metrics.refused(why);
        tracing::info!(
            reason = why.label(),
            message = status.message(),
            "client refused"
        );
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((status.message().to_owned(), SystemTime::now()));
        status
    }
}

/// The peer a limit applies to: the certificate's principal, else the IP
/// address.
fn peer_key(conn: Option<&ConnInfo>) -> String {
    let principal = conn
        .and_then(|conn| conn.peer_identity.as_deref())
        .and_then(|identity| identity.principal().map(str::to_owned));
    principal.unwrap_or_else(|| {
        conn.and_then(|conn| conn.remote_addr).map_or_else(
            || "an unknown peer".to_owned(),
            |addr| addr.ip().to_string(),
        )
    })
}

/// An admitted stream; releases its place when dropped.
#[derive(Debug)]
pub struct Ticket {
    admission: Arc<Admission>,
    peer: String,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut open = self
            .admission
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(count) = open.per_peer.get_mut(&self.peer) {
            *count -= 1;
            if *count == 0 {
                open.per_peer.remove(&self.peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::tls::PeerIdentity;

    fn conn(ip: &str, uri: Option<&str>) -> ConnInfo {
        ConnInfo {
            id: 1,
            remote_addr: Some(format!("{ip}:1234").parse().expect("addr")),
            local_addr: None,
            tls: uri.is_some(),
            peer_identity: uri.map(|uri| {
                Arc::new(PeerIdentity {
                    uris: vec![uri.to_owned()],
                    ..PeerIdentity::default()
                })
            }),
        }
    }

    #[test]
    fn limits_count_per_peer_and_in_total_and_free_on_drop() {
        let admission = Arc::new(Admission::new(
            AdmissionConfig {
                allowed_sans: vec![],
                max_streams: Some(3),
                max_streams_per_peer: Some(2),
            },
            Arc::new(Metrics::new()),
        ));
        let a = conn("10.0.0.1", None);
        let first = admission.admit_stream(Some(&a)).expect("first");
        let _second = admission.admit_stream(Some(&a)).expect("second");
        let third = admission.admit_stream(Some(&a)).expect_err("over per peer");
        assert_eq!(third.code(), tonic::Code::ResourceExhausted);
        assert!(
            third.message().contains("--max-streams-per-peer"),
            "{third:?}"
        );
        let _other = admission
            .admit_stream(Some(&conn("10.0.0.2", None)))
            .expect("another peer");
        let total = admission
            .admit_stream(Some(&conn("10.0.0.3", None)))
            .expect_err("over total");
        assert!(
            total.message().contains("at most 3 (--max-streams)"),
            "{total:?}"
        );
        drop(first);
        admission.admit_stream(Some(&a)).expect("a place was freed");
        let counts = admission.counts();
        assert_eq!((counts.max_streams, counts.max_streams_per_peer), (1, 1));
    }

    #[test]
    fn the_allow_list_names_the_presented_sans() {
        let admission = Admission::new(
            AdmissionConfig {
                allowed_sans: vec![SanMatcher::from_pattern(
                    "spiffe://cluster.local/ns/team-a/*",
                )],
                ..AdmissionConfig::default()
            },
            Arc::new(Metrics::new()),
        );
        admission
            .check_identity(Some(&conn(
                "10.0.0.1",
                Some("spiffe://cluster.local/ns/team-a/sa/x"),
            )))
            .expect("allowed");
        let refused = admission
            .check_identity(Some(&conn(
                "10.0.0.1",
                Some("spiffe://cluster.local/ns/team-b/sa/y"),
            )))
            .expect_err("not allowed");
        assert_eq!(refused.code(), tonic::Code::PermissionDenied);
        assert!(
            refused
                .message()
                .contains("spiffe://cluster.local/ns/team-b/sa/y"),
            "{refused:?}"
        );
        assert_eq!(admission.counts().san_not_allowed, 1);
    }
}
