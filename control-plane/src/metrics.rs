//! Prometheus metrics of the xDS server.
//!
//! - `control_plane_connected_clients`: ADS streams open now.
//! - `control_plane_xds_responses_total{type}`: responses written, by type
//!   (LDS, RDS, CDS, EDS).
//! - `control_plane_xds_nacks_total{type}`: responses clients rejected.
//! - `control_plane_update_latency_seconds`: for responses caused by a
//!   source change, the time from the change being applied to the store to
//!   the response being handed to the client's HTTP/2 stream.
//! - `control_plane_refused_total{reason}`: ADS streams and calls refused
//!   (`client_san_not_allowed`, `max_streams`, `max_streams_per_peer`).
//!
//! Served as OpenMetrics text by [`http::serve`] (`--metrics-listen`).

pub mod http;

use std::time::Instant;

use prometheus_client::encoding::text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::xds::ResourceType;

/// Label set: the xDS type's short name.
type TypeLabel = [(&'static str, &'static str); 1];
/// Label set: why a client was refused.
type ReasonLabel = [(&'static str, &'static str); 1];

/// The control plane's metrics. Share as `Arc<Metrics>`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    connected: Gauge,
    responses: Family<TypeLabel, Counter>,
    nacks: Family<TypeLabel, Counter>,
    latency: Histogram,
    refused: Family<ReasonLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Fresh metrics, all zero.
    pub fn new() -> Self {
        let connected = Gauge::default();
        let responses = Family::<TypeLabel, Counter>::default();
        let nacks = Family::<TypeLabel, Counter>::default();
        // 0.5 ms to about 16 s.
        let latency = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        let refused = Family::<ReasonLabel, Counter>::default();
        let mut registry = Registry::default();
        registry.register(
            "control_plane_refused",
            "ADS streams and calls refused, by reason",
            refused.clone(),
        );
        registry.register(
            "control_plane_connected_clients",
            "ADS streams currently open",
            connected.clone(),
        );
        registry.register(
            "control_plane_xds_responses",
            "xDS responses written to clients, by type",
            responses.clone(),
        );
        registry.register(
            "control_plane_xds_nacks",
            "xDS responses rejected by clients (NACK), by type",
            nacks.clone(),
        );
        registry.register(
            "control_plane_update_latency_seconds",
            "Time from a source change being applied to a response carrying it being written",
            latency.clone(),
        );
        Self {
            registry,
            connected,
            responses,
            nacks,
            latency,
            refused,
        }
    }

    /// A client was refused for `reason`.
    pub fn refused(&self, reason: &'static str) {
        self.refused.get_or_create(&[("reason", reason)]).inc();
    }

    /// An ADS stream opened.
    pub fn client_connected(&self) {
        self.connected.inc();
    }

    /// An ADS stream closed.
    pub fn client_disconnected(&self) {
        self.connected.dec();
    }

    /// A response of type `kind` was written; `changed_at` is when the
    /// source change it carries was applied, if it carries one.
    pub fn response_written(&self, kind: ResourceType, changed_at: Option<Instant>) {
        self.responses.get_or_create(&label(kind)).inc();
        if let Some(changed_at) = changed_at {
            self.latency.observe(changed_at.elapsed().as_secs_f64());
        }
    }

    /// A client rejected a response of type `kind`.
    pub fn nack(&self, kind: ResourceType) {
        self.nacks.get_or_create(&label(kind)).inc();
    }

    /// The metrics in OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = text::encode(&mut out, &self.registry);
        out
    }
}

fn label(kind: ResourceType) -> TypeLabel {
    [("type", kind.short_name())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_appear_in_the_text() {
        let metrics = Metrics::new();
        metrics.client_connected();
        metrics.response_written(ResourceType::ClusterLoadAssignment, Some(Instant::now()));
        metrics.response_written(ResourceType::Listener, None);
        metrics.nack(ResourceType::ClusterLoadAssignment);
        metrics.refused("max_streams");
        let text = metrics.encode();
        assert!(
            text.contains(r#"control_plane_refused_total{reason="max_streams"} 1"#),
            "{text}"
        );
        assert!(text.contains("control_plane_connected_clients 1"), "{text}");
        assert!(
            text.contains(r#"control_plane_xds_responses_total{type="EDS"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"control_plane_xds_nacks_total{type="EDS"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("control_plane_update_latency_seconds_count 1"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
