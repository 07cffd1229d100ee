//! The one conversion from the control plane's state to status API
//! messages.

use std::time::{SystemTime, UNIX_EPOCH};

use proto::controlplane::v1 as pb;

use crate::model::{self, Readiness};
use crate::routes::RouteState;
use crate::source::{SourceState, SourceStatus};
use crate::store::{Catalog, RoutesView, ServiceEntry, Store};
use crate::xds::admission::RefusalCounts;
use crate::xds::registry::ClientView;

/// Milliseconds since the Unix epoch; 0 for times before it.
pub fn unix_ms(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The control plane's overview.
pub fn info(store: &Store, catalog: &Catalog, clients: usize, now: SystemTime) -> pb::Info {
    let started_at = store.started_at();
    pb::Info {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        instance_id: store.instance_id().to_owned(),
        started_at_unix_ms: unix_ms(started_at),
        uptime_ms: now
            .duration_since(started_at)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        namespace: store.naming().namespace.clone(),
        cluster_domain: store.naming().cluster_domain.clone(),
        source: Some(source(&catalog.source)),
        connected_clients: u32::try_from(clients).unwrap_or(u32::MAX),
        services: u32::try_from(catalog.services.len()).unwrap_or(u32::MAX),
        replica: store.replica().to_owned(),
        transport: String::new(),
        refusals: None,
    }
}

/// Admission refusal counts.
pub fn refusals(counts: &RefusalCounts) -> pb::Refusals {
    pb::Refusals {
        client_san_not_allowed: counts.san_not_allowed,
        max_streams: counts.max_streams,
        max_streams_per_peer: counts.max_streams_per_peer,
        last: counts
            .last
            .as_ref()
            .map(|(text, _)| text.clone())
            .unwrap_or_default(),
        last_unix_ms: counts.last.as_ref().map_or(0, |(_, at)| unix_ms(*at)),
    }
}

fn source(status: &SourceStatus) -> pb::SourceStatus {
    let state = match status.state {
        SourceState::Starting => pb::SourceState::Starting,
        SourceState::Connected => pb::SourceState::Connected,
        SourceState::Degraded => pb::SourceState::Degraded,
        SourceState::Disconnected => pb::SourceState::Disconnected,
    };
    pb::SourceStatus {
        kind: status.kind.to_string(),
        state: state as i32,
        state_since_unix_ms: unix_ms(status.state_since),
        last_error: status
            .last_error
            .as_ref()
            .map(|e| e.text.clone())
            .unwrap_or_default(),
        last_error_unix_ms: status.last_error.as_ref().map_or(0, |e| unix_ms(e.at)),
        last_event: status
            .last_event
            .as_ref()
            .map(|e| e.text.clone())
            .unwrap_or_default(),
        last_event_unix_ms: status.last_event.as_ref().map_or(0, |e| unix_ms(e.at)),
        detail: status.detail.clone(),
    }
}

/// One service with its ports and endpoints.
pub fn service(store: &Store, entry: &ServiceEntry) -> pb::Service {
    let service = &entry.service;
    pb::Service {
        name: service.name.clone(),
        namespace: service.namespace.clone(),
        version: store.version_info(entry.revision),
        updated_at_unix_ms: unix_ms(entry.updated_at),
        ports: service
            .ports
            .iter()
            .map(|port| pb::ServicePort {
                name: port.name.clone().unwrap_or_default(),
                port: port.port.into(),
                cluster: store.naming().cluster_name(&service.name, port.port),
                endpoints: port.endpoints.iter().map(endpoint).collect(),
                routes: entry
                    .routes_of(port.port)
                    .map(|table| {
                        let mut names: Vec<String> = Vec::new();
                        for entry in &table.entries {
                            let name = entry.origin.split('/').next().unwrap_or_default();
                            if !names.iter().any(|n| n == name) {
                                names.push(name.to_owned());
                            }
                        }
                        names
                    })
                    .unwrap_or_default(),
            })
            .collect(),
        lb_policy: service.policy.lb.to_string(),
        zone_aware: service.is_zone_aware(),
    }
}

/// The routes and their support state.
pub fn routes(view: &RoutesView) -> pb::ListRoutesResponse {
    pb::ListRoutesResponse {
        support: Some(pb::RouteSupport {
            enabled: view.support.enabled,
            detail: view.support.detail.clone(),
        }),
        routes: view
            .statuses
            .iter()
            .map(|status| {
                let (state, reason) = match &status.state {
                    RouteState::Accepted => (pb::RouteState::Accepted, String::new()),
                    RouteState::Refused(reason) => (pb::RouteState::Refused, reason.clone()),
                    RouteState::NotAttached(reason) => {
                        (pb::RouteState::NotAttached, reason.clone())
                    }
                };
                pb::Route {
                    name: status.name.clone(),
                    state: state as i32,
                    reason,
                    attached: status
                        .attached
                        .iter()
                        .map(|(service, port)| format!("{service}:{port}"))
                        .collect(),
                    missing_parents: status.missing_parents.clone(),
                    rules: u32::try_from(status.rules).unwrap_or(u32::MAX),
                }
            })
            .collect(),
    }
}

fn endpoint(endpoint: &model::Endpoint) -> pb::Endpoint {
    let state = match endpoint.state {
        Readiness::Ready => pb::EndpointState::Ready,
        Readiness::Draining => pb::EndpointState::Draining,
        Readiness::NotReady => pb::EndpointState::NotReady,
    };
    pb::Endpoint {
        address: endpoint.address.to_string(),
        port: endpoint.port.into(),
        state: state as i32,
        zone: endpoint.zone.clone().unwrap_or_default(),
        instance: endpoint.instance.clone().unwrap_or_default(),
        detail: endpoint.detail.clone().unwrap_or_default(),
    }
}

/// One connected xDS client.
pub fn client(view: &ClientView) -> pb::Client {
    let node = view.session.node.clone().unwrap_or_default();
    pb::Client {
        node_id: node.id,
        peer: view.peer.map(|p| p.to_string()).unwrap_or_default(),
        connected_at_unix_ms: unix_ms(view.connected_at),
        user_agent: node.user_agent,
        types: view
            .session
            .types
            .iter()
            .map(|t| pb::TypeState {
                type_url: t.kind.type_url(),
                names: t.names.clone(),
                wildcard: t.wildcard,
                sent_version: t.sent_version.clone(),
                sent_nonce: t.sent_nonce.clone(),
                acked_version: t.acked_version.clone(),
                nack_error: t.nack.as_ref().map(|n| n.error.clone()).unwrap_or_default(),
                nack_version: t
                    .nack
                    .as_ref()
                    .map(|n| n.version.clone())
                    .unwrap_or_default(),
                nack_at_unix_ms: t.nack.as_ref().map_or(0, |n| unix_ms(n.at)),
                responses_sent: t.responses,
                nacks: t.nacks,
                acks: t.acks,
                pending: t.pending,
            })
            .collect(),
        stream_id: view.stream_id,
        unknown_types: view
            .session
            .unknown_types
            .iter()
            .map(|(type_url, requests)| pb::UnknownType {
                type_url: type_url.clone(),
                requests: *requests,
            })
            .collect(),
        node_cluster: node.cluster,
        zone: node.zone,
    }
}
