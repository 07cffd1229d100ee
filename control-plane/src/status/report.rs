//! The client side of the status API: what `control-plane status` fetches,
//! and its JSON form.
//!
//! The JSON mirrors the API's messages: field names as in `status.proto`,
//! enums as lowercase words (`"ready"`, `"not_ready"`, `"connected"`), the
//! NACK of a type as one `nack` object (or `null`), and each type also
//! under its short name (`"type": "EDS"`).

use std::time::Duration;

use proto::controlplane::v1 as pb;
use proto::controlplane::v1::control_plane_status_client::ControlPlaneStatusClient;
use serde_json::{Value, json};
use tonic::transport::{Channel, Endpoint};

use crate::xds::ResourceType;

/// Default time limit for connecting and for each call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors fetching a report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The address is not a URL.
    #[error("invalid control plane address {addr:?}: {source}")]
    InvalidAddress {
        /// The address given.
        addr: String,
        /// Why it is invalid.
        #[source]
        source: tonic::transport::Error,
    },
    /// No connection could be made.
    #[error("failed to connect to the control plane at {addr}: {source}")]
    Connect {
        /// The address.
        addr: String,
        /// The transport error.
        #[source]
        source: tonic::transport::Error,
    },
    /// A call failed.
    #[error("{call} failed at {addr}: {status}")]
    Call {
        /// Which call.
        call: &'static str,
        /// The address.
        addr: String,
        /// The gRPC status.
        #[source]
        status: Box<tonic::Status>,
    },
}

/// The result type of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the status API tells, fetched at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Version, uptime, source health.
    pub info: pb::Info,
    /// Services with ports and endpoints.
    pub services: Vec<pb::Service>,
    /// Connected xDS clients.
    pub clients: Vec<pb::Client>,
}

/// Fetches a report from the control plane at `addr` (`http://host:port`;
/// `host:port` is taken as plaintext), each step within `timeout`.
pub async fn fetch(addr: &str, timeout: Duration) -> Result<Report> {
    let url = if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    };
    let endpoint = Endpoint::from_shared(url).map_err(|source| Error::InvalidAddress {
        addr: addr.to_owned(),
        source,
    })?;
    let channel: Channel = endpoint
        .connect_timeout(timeout)
        .timeout(timeout)
        .connect()
        .await
        .map_err(|source| Error::Connect {
            addr: addr.to_owned(),
            source,
        })?;
    let mut client = ControlPlaneStatusClient::new(channel);
    let failed = |call| {
        move |status| Error::Call {
            call,
            addr: addr.to_owned(),
            status: Box::new(status),
        }
    };
    let info = client
        .get_info(pb::GetInfoRequest {})
        .await
        .map_err(failed("GetInfo"))?
        .into_inner();
    let services = client
        .list_services(pb::ListServicesRequest {})
        .await
        .map_err(failed("ListServices"))?
        .into_inner()
        .services;
    let clients = client
        .list_clients(pb::ListClientsRequest {})
        .await
        .map_err(failed("ListClients"))?
        .into_inner()
        .clients;
    Ok(Report {
        info,
        services,
        clients,
    })
}

/// An endpoint state as a word.
pub fn endpoint_state(state: i32) -> &'static str {
    match pb::EndpointState::try_from(state) {
        Ok(pb::EndpointState::Ready) => "ready",
        Ok(pb::EndpointState::Draining) => "draining",
        Ok(pb::EndpointState::NotReady) => "not_ready",
        Ok(pb::EndpointState::Unspecified) | Err(_) => "unknown",
    }
}

/// A source state as a word.
pub fn source_state(state: i32) -> &'static str {
    match pb::SourceState::try_from(state) {
        Ok(pb::SourceState::Starting) => "starting",
        Ok(pb::SourceState::Connected) => "connected",
        Ok(pb::SourceState::Degraded) => "degraded",
        Ok(pb::SourceState::Disconnected) => "disconnected",
        Ok(pb::SourceState::Unspecified) | Err(_) => "unknown",
    }
}

/// LDS, RDS, CDS, EDS for the types served; the URL itself otherwise.
pub fn short_type(type_url: &str) -> &str {
    match ResourceType::from_type_url(type_url) {
        Some(kind) => kind.short_name(),
        None => type_url,
    }
}

impl Report {
    /// The report as one JSON object: `{"info": ..., "services": [...],
    /// "clients": [...]}`.
    pub fn to_json(&self) -> Value {
        json!({
            "info": info_json(&self.info),
            "services": self.services.iter().map(service_json).collect::<Vec<_>>(),
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

fn service_json(service: &pb::Service) -> Value {
    json!({
        "name": service.name,
        "namespace": service.namespace,
        "version": service.version,
        "updated_at_unix_ms": service.updated_at_unix_ms,
        "ports": service.ports.iter().map(|port| json!({
            "name": port.name,
            "port": port.port,
            "cluster": port.cluster,
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
