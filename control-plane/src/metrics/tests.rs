use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::*;

fn observed(state: SourceState, last_sync: Option<SystemTime>) -> Observed {
    Observed {
        source: Some(ObservedSource {
            kind: SourceKind::Kubernetes,
            state,
            last_sync,
        }),
        services: 2,
        endpoints: (3, 1, 2),
        oldest_unacked: Some(Duration::from_millis(1500)),
    }
}

#[test]
fn every_series_is_there_at_zero_from_the_start() {
    let metrics = Metrics::new();
    let text = metrics.render(
        Format::Prometheus,
        &observed(SourceState::Starting, None),
        SystemTime::now(),
    );
    for kind in ["LDS", "RDS", "CDS", "EDS"] {
        for family in ["responses", "nacks"] {
            let line = format!("control_plane_xds_{family}_total{{type=\"{kind}\"}} 0\n");
            assert!(text.contains(&line), "{line} in\n{text}");
        }
    }
    for reason in [
        "client_san_not_allowed",
        "max_streams",
        "max_streams_per_peer",
    ] {
        let line = format!("control_plane_refused_total{{reason=\"{reason}\"}} 0\n");
        assert!(text.contains(&line), "{line} in\n{text}");
    }
    for reason in EndReason::ALL {
        let line = format!(
            "control_plane_xds_streams_ended_total{{reason=\"{}\"}} 0\n",
            reason.label()
        );
        assert!(text.contains(&line), "{line} in\n{text}");
    }
    for family in FAMILIES {
        let type_line = format!("# TYPE {} {}\n", family.sample_name(), family.kind.word());
        assert!(text.contains(&type_line), "{type_line} in\n{text}");
    }
    assert!(text.contains("control_plane_update_latency_seconds_bucket{le=\"+Inf\"} 0\n"));
    assert!(
        text.contains(
            "control_plane_source_last_sync_timestamp_seconds{source=\"kubernetes\"} 0.0\n"
        )
    );
    assert!(!text.contains("# EOF"), "{text}");
}

#[test]
fn counts_and_state_appear_in_the_text() {
    let metrics = Metrics::new();
    metrics.client_connected();
    metrics.response_written(ResourceType::ClusterLoadAssignment, Some(Instant::now()));
    metrics.response_written(ResourceType::Listener, None);
    metrics.nack(ResourceType::ClusterLoadAssignment);
    metrics.refused(Refusal::MaxStreams);
    metrics.stream_ended(EndReason::MaxConnectionAge);
    let lost = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let text = metrics.render(
        Format::OpenMetrics,
        &observed(SourceState::Disconnected, Some(lost)),
        SystemTime::now(),
    );
    for line in [
        "control_plane_connected_clients 1\n",
        "control_plane_refused_total{reason=\"max_streams\"} 1\n",
        "control_plane_xds_responses_total{type=\"EDS\"} 1\n",
        "control_plane_xds_responses_total{type=\"LDS\"} 1\n",
        "control_plane_xds_nacks_total{type=\"EDS\"} 1\n",
        "control_plane_xds_streams_ended_total{reason=\"max_connection_age\"} 1\n",
        "control_plane_update_latency_seconds_count 1\n",
        "control_plane_update_latency_seconds_bucket{le=\"+Inf\"} 1\n",
        "control_plane_xds_oldest_unacked_age_seconds 1.5\n",
        "control_plane_source_connected{source=\"kubernetes\"} 0\n",
        "control_plane_source_state{source=\"kubernetes\",state=\"disconnected\"} 1\n",
        "control_plane_source_state{source=\"kubernetes\",state=\"connected\"} 0\n",
        "control_plane_source_last_sync_timestamp_seconds{source=\"kubernetes\"} 1700000000.0\n",
        "control_plane_services 2\n",
        "control_plane_endpoints{state=\"ready\"} 3\n",
        "control_plane_endpoints{state=\"draining\"} 1\n",
        "control_plane_endpoints{state=\"not_ready\"} 2\n",
        "# TYPE control_plane_xds_nacks counter\n",
        "# UNIT control_plane_update_latency_seconds seconds\n",
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
    assert!(text.ends_with("# EOF\n"), "{text}");
}

#[test]
fn a_connected_source_was_in_sync_at_the_scrape() {
    let metrics = Metrics::new();
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let text = metrics.render(
        Format::Prometheus,
        &observed(SourceState::Connected, None),
        now,
    );
    assert!(
        text.contains(
            "control_plane_source_last_sync_timestamp_seconds{source=\"kubernetes\"} 1800000000.0\n"
        ),
        "{text}"
    );
    assert!(text.contains("control_plane_source_connected{source=\"kubernetes\"} 1\n"));
}

#[test]
fn latency_buckets_are_cumulative() {
    let metrics = Metrics::new();
    let long_ago = Instant::now() - Duration::from_millis(3);
    metrics.response_written(ResourceType::ClusterLoadAssignment, Some(long_ago));
    let text = metrics.encode();
    assert!(
        text.contains("control_plane_update_latency_seconds_bucket{le=\"0.002\"} 0\n"),
        "{text}"
    );
    assert!(
        text.contains("control_plane_update_latency_seconds_bucket{le=\"16.384\"} 1\n"),
        "{text}"
    );
}
