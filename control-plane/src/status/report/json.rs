//! The report as JSON.

use proto::controlplane::v1 as pb;
use serde_json::{Value, json};

use super::{Report, endpoint_state, route_state, short_type, source_state};

impl Report {
    /// The report as one JSON object: `{"info": ..., "services": [...],
    /// "routes": {...}, "clients": [...]}`.
    pub fn to_json(&self) -> Value {
        json!({
            "info": info_json(&self.info),
            "services": self.services.iter().map(service_json).collect::<Vec<_>>(),
            "routes": self.routes.as_ref().map(routes_json),
            "clients": self.clients.iter().map(client_json).collect::<Vec<_>>(),
        })
    }
}

fn info_json(info: &pb::Info) -> Value {
    let source = info.source.clone().unwrap_or_default();
    json!({
        "version": info.version,
        "replica": info.replica,
        "instance_id": info.instance_id,
        "started_at_unix_ms": info.started_at_unix_ms,
        "uptime_ms": info.uptime_ms,
        "namespace": info.namespace,
        "cluster_domain": info.cluster_domain,
        "connected_clients": info.connected_clients,
        "services": info.services,
        "transport": info.transport,
        "refusals": refusals_json(info.refusals.clone().unwrap_or_default()),
        "source": {
            "kind": source.kind,
            "state": source_state(source.state),
            "state_since_unix_ms": source.state_since_unix_ms,
            "detail": source.detail,
            "last_error": source.last_error,
            "last_error_unix_ms": source.last_error_unix_ms,
            "last_event": source.last_event,
            "last_event_unix_ms": source.last_event_unix_ms,
        },
    })
}

fn refusals_json(refusals: pb::Refusals) -> Value {
    json!({
        "client_san_not_allowed": refusals.client_san_not_allowed,
        "max_streams": refusals.max_streams,
        "max_streams_per_peer": refusals.max_streams_per_peer,
        "last": refusals.last,
        "last_unix_ms": refusals.last_unix_ms,
    })
}

fn routes_json(routes: &pb::ListRoutesResponse) -> Value {
    let support = routes.support.clone().unwrap_or_default();
    json!({
        "enabled": support.enabled,
        "detail": support.detail,
        "routes": routes.routes.iter().map(|route| json!({
            "name": route.name,
            "state": route_state(route.state),
            "reason": route.reason,
            "attached": route.attached,
            "missing_parents": route.missing_parents,
            "rules": route.rules,
        })).collect::<Vec<_>>(),
    })
}

fn service_json(service: &pb::Service) -> Value {
    json!({
        "name": service.name,
        "namespace": service.namespace,
        "version": service.version,
        "updated_at_unix_ms": service.updated_at_unix_ms,
        "lb_policy": service.lb_policy,
        "zone_aware": service.zone_aware,
        "ports": service.ports.iter().map(|port| json!({
            "name": port.name,
            "port": port.port,
            "cluster": port.cluster,
            "routes": port.routes,
            "endpoints": port.endpoints.iter().map(|e| json!({
                "address": e.address,
                "port": e.port,
                "state": endpoint_state(e.state),
                "zone": e.zone,
                "instance": e.instance,
                "detail": e.detail,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

fn client_json(client: &pb::Client) -> Value {
    json!({
        "stream_id": client.stream_id,
        "node_id": client.node_id,
        "node_cluster": client.node_cluster,
        "zone": client.zone,
        "peer": client.peer,
        "user_agent": client.user_agent,
        "connected_at_unix_ms": client.connected_at_unix_ms,
        "types": client.types.iter().map(|t| json!({
            "type": short_type(&t.type_url),
            "type_url": t.type_url,
            "names": t.names,
            "wildcard": t.wildcard,
            "sent_version": t.sent_version,
            "sent_nonce": t.sent_nonce,
            "pending": t.pending,
            "acked_version": t.acked_version,
            "nack": (!t.nack_error.is_empty() || !t.nack_version.is_empty()).then(|| json!({
                "error": t.nack_error,
                "version": t.nack_version,
                "at_unix_ms": t.nack_at_unix_ms,
            })),
            "responses_sent": t.responses_sent,
            "acks": t.acks,
            "nacks": t.nacks,
        })).collect::<Vec<_>>(),
        "unknown_types": client.unknown_types.iter().map(|u| json!({
            "type_url": u.type_url,
            "requests": u.requests,
        })).collect::<Vec<_>>(),
    })
}
