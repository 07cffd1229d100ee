//! The client side of the status API: what `control-plane status` fetches,
//! and its JSON form (`report/json.rs`).
//!
//! The JSON mirrors the API's messages: field names as in `status.proto`,
//! enums as lowercase words (`"ready"`, `"not_ready"`, `"connected"`), the
//! NACK of a type as one `nack` object (or `null`), and each type also
//! under its short name (`"type": "EDS"`).

use std::time::Duration;

use common::tls::client::{Connector, HandshakeFailure, Note};
use common::tls::{ClientTls, ClientTlsFiles, ServerVerification};
use http::Uri;
use proto::controlplane::v1 as pb;
use proto::controlplane::v1::control_plane_status_client::ControlPlaneStatusClient;
use tonic::transport::{Channel, Endpoint};

use crate::kinds::ResourceType;

mod json;

/// Default time limit for connecting and for each call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors fetching a report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The address is not a URL.
    #[error("invalid control plane address {addr:?}: {message}")]
    InvalidAddress {
        /// The address given.
        addr: String,
        /// Why it is invalid.
        message: String,
    },
    /// The scheme and the TLS flags disagree.
    #[error("{0}")]
    Scheme(String),
    /// The TLS files could not be loaded.
    #[error("cannot use the TLS files")]
    TlsFiles(#[source] common::tls::Error),
    /// The TLS connection failed for a recognised reason.
    #[error("failed to connect to the control plane at {addr}: {failure}{hint}")]
    Tls {
        /// The address.
        addr: String,
        /// What went wrong.
        failure: HandshakeFailure,
        /// What to do about it, if it is clear.
        hint: &'static str,
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
    /// Traffic routes; `None` from a control plane too old to report them.
    pub routes: Option<pb::ListRoutesResponse>,
}

/// Fetches a report from the control plane at `addr` (`http://host:port`,
/// or `https://host:port` with `tls`; `host:port` is taken as plaintext),
/// each step within `timeout`. A scheme that does not fit the credentials,
/// or the server, is an error: nothing falls back to plaintext.
pub async fn fetch(addr: &str, timeout: Duration, tls: Option<&ClientTlsFiles>) -> Result<Report> {
    let url = if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    };
    let uri: Uri = url
        .parse()
        .map_err(|error: http::uri::InvalidUri| Error::InvalidAddress {
            addr: addr.to_owned(),
            message: error.to_string(),
        })?;
    let (Some(host), Some(authority)) = (uri.host(), uri.authority()) else {
        return Err(Error::InvalidAddress {
            addr: addr.to_owned(),
            message: "no host".to_owned(),
        });
    };
    // As the client library takes it: the port is never guessed.
    if authority.port_u16().is_none() {
        return Err(Error::InvalidAddress {
            addr: addr.to_owned(),
            message: "no port (or not a number): the control plane listens on 18000 unless told \
                      otherwise"
                .to_owned(),
        });
    }
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        other => {
            return Err(Error::InvalidAddress {
                addr: addr.to_owned(),
                message: format!(
                    "scheme {:?} is neither http nor https",
                    other.unwrap_or_default()
                ),
            });
        }
    };
    let tls = match (https, tls) {
        (true, None) => {
            return Err(Error::Scheme(format!(
                "{addr} is https:// but no --ca was given: pass the CA that signed the control \
                 plane's certificate (a plaintext connection is never tried for https://)"
            )));
        }
        (false, Some(_)) => {
            return Err(Error::Scheme(format!(
                "--ca/--cert/--key were given but {addr} is not https://: use https:// to talk \
                 TLS, or drop the TLS flags for a plaintext control plane"
            )));
        }
        (true, Some(files)) => {
            let client = ClientTls::load(files).map_err(Error::TlsFiles)?;
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            Some((client, ServerVerification::Hostname(host)))
        }
        (false, None) => None,
    };
    let plaintext = tls.is_none();
    let connector = Connector::new(tls);
    let note = connector.note();
    let tls_failed = |failure: HandshakeFailure| {
        let hint = match failure {
            HandshakeFailure::PlaintextToTls => {
                ": use https:// with --ca (and --cert/--key if it requires client certificates)"
            }
            HandshakeFailure::NotTls => ": it serves plaintext; use http:// without TLS flags",
            HandshakeFailure::ClientCertificateRequired => ": pass --cert and --key",
            _ => "",
        };
        Error::Tls {
            addr: addr.to_owned(),
            failure,
            hint,
        }
    };
    // tonic sees plaintext HTTP/2: TLS is the connector's business.
    let endpoint = Endpoint::from_shared(format!("http://{authority}")).map_err(|error| {
        Error::InvalidAddress {
            addr: addr.to_owned(),
            message: error.to_string(),
        }
    })?;
    let channel: Channel = match endpoint
        .connect_timeout(timeout)
        .timeout(timeout)
        .connect_with_connector(connector)
        .await
    {
        Ok(channel) => channel,
        Err(source) => {
            return Err(
                match explain(&note, plaintext, authority.as_str(), timeout).await {
                    Some(failure) => tls_failed(failure),
                    None => Error::Connect {
                        addr: addr.to_owned(),
                        source,
                    },
                },
            );
        }
    };
    let mut client = ControlPlaneStatusClient::new(channel);
    let failed = |call| {
        let note = note.clone();
        move |status| match note.get() {
            Some(failure) => tls_failed(failure),
            None => Error::Call {
                call,
                addr: addr.to_owned(),
                status: Box::new(status),
            },
        }
    };
    let info = match client.get_info(pb::GetInfoRequest {}).await {
        Ok(info) => info.into_inner(),
        // On a plaintext connection to a TLS port the server's alert can
        // lose the race with its reset: look at the port again.
        Err(status) => {
            return Err(
                match explain(&note, plaintext, authority.as_str(), timeout).await {
                    Some(failure) => tls_failed(failure),
                    None => failed("GetInfo")(status),
                },
            );
        }
    };
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
    let routes = match client.list_routes(pb::ListRoutesRequest {}).await {
        Ok(routes) => Some(routes.into_inner()),
        Err(status) if status.code() == tonic::Code::Unimplemented => None,
        Err(status) => return Err(failed("ListRoutes")(status)),
    };
    Ok(Report {
        info,
        services,
        clients,
        routes,
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

/// A route state as a word.
pub fn route_state(state: i32) -> &'static str {
    match pb::RouteState::try_from(state) {
        Ok(pb::RouteState::Accepted) => "accepted",
        Ok(pb::RouteState::Refused) => "refused",
        Ok(pb::RouteState::NotAttached) => "not_attached",
        Ok(pb::RouteState::Unspecified) | Err(_) => "unknown",
    }
}

/// What the connection noted, else (plaintext only) what a second look at
/// the port shows.
async fn explain(
    note: &Note,
    plaintext: bool,
    authority: &str,
    timeout: Duration,
) -> Option<HandshakeFailure> {
    match note.get() {
        Some(failure) => Some(failure),
        None if plaintext => common::tls::client::plaintext_to_tls(authority, timeout).await,
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn addresses_are_read_as_the_client_library_reads_them() {
        for (addr, expected) in [
            ("cp", "no port"),
            ("http://cp", "no port"),
            ("ftp://cp:18000", "neither http nor https"),
            ("https://cp:18000", "no --ca was given"),
        ] {
            let error = fetch(addr, Duration::from_secs(1), None)
                .await
                .expect_err(addr);
            assert!(error.to_string().contains(expected), "{addr}: {error}");
        }
    }
}
