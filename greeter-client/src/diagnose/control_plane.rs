//! The first step: is the control plane there, and does it speak ADS? And
//! the connection to its status API, for what xDS cannot say (why a name
//! does not exist, why an endpoint is not ready).

use std::time::Duration;

use common::tls::client::Connector;
use common::tls::{ClientTls, ClientTlsFiles, ServerVerification};
use proto::controlplane::v1 as pb;
use proto::controlplane::v1::control_plane_status_client::ControlPlaneStatusClient;
use tonic::Code;
use tonic::transport::Endpoint;
use xds_balancer::{Bootstrap, Builder, Channel, ControlPlaneTls, PrefaceAnswer};

use super::cause::Cause;
use super::verdict::{Check, Diagnosis, Outcome};
use super::{STEP_CONTROL_PLANE, SetupError};
use crate::args::DiagnoseArgs;

/// The control plane to ask, and how.
#[derive(Debug, Clone)]
pub(crate) struct Address {
    /// `http://host:port` or `https://host:port`.
    pub(crate) uri: String,
    pub(crate) tls: Option<ControlPlaneTls>,
    /// The bootstrap, when the address came from one (its certificate
    /// providers serve TLS services).
    pub(crate) bootstrap: Option<Bootstrap>,
}

/// --control-plane (or CONTROL_PLANE), else the bootstrap's server.
pub(crate) fn address(args: &DiagnoseArgs) -> Result<Address, SetupError> {
    let (given, tls, bootstrap) = match &args.control_plane.control_plane {
        Some(addr) if !addr.trim().is_empty() => {
            (addr.trim().to_owned(), args.control_plane.tls(), None)
        }
        _ => match Bootstrap::from_env().map_err(SetupError::Bootstrap)? {
            Some(bootstrap) => (
                bootstrap.control_plane.clone(),
                bootstrap.control_plane_tls.clone(),
                Some(bootstrap),
            ),
            None => return Err(SetupError::NoControlPlane),
        },
    };
    let uri = if given.contains("://") {
        given
    } else {
        format!("http://{given}")
    };
    Ok(Address {
        uri,
        tls,
        bootstrap,
    })
}

/// Opens the channel the way an application would (which subscribes to
/// the target). A failure that is the control plane's becomes the failed
/// first check, with what answers at the address; `None` then.
pub(crate) async fn connect(
    address: &Address,
    target: &str,
    timeout: Duration,
    diagnosis: &mut Diagnosis,
) -> Result<Option<Channel>, SetupError> {
    let mut builder = Builder::new(target)
        .control_plane(address.uri.clone())
        .connect_timeout(timeout)
        .default_wait(timeout);
    if let Some(tls) = &address.tls {
        builder = builder.control_plane_tls(tls.clone());
    }
    if let Some(bootstrap) = &address.bootstrap {
        builder = builder.bootstrap(bootstrap.clone());
    }
    let subject = address.uri.clone();
    let error = match builder.connect().await {
        Ok(channel) => return Ok(Some(channel)),
        Err(error) => error,
    };
    let check = match &error {
        xds_balancer::Error::NotAds { .. } => Check::fail(
            STEP_CONTROL_PLANE,
            subject,
            Cause::NotAdsServer,
            "a gRPC server answers there, but it does not implement xDS ADS (the discovery \
             stream got UNIMPLEMENTED): another service's port",
        ),
        xds_balancer::Error::ControlPlaneUnreachable { reason, .. } => {
            match authority(&address.uri).filter(|_| address.tls.is_none()) {
                Some(authority) => match xds_balancer::sniff(&authority, timeout).await {
                    answer @ (PrefaceAnswer::Http1
                    | PrefaceAnswer::Http11Required
                    | PrefaceAnswer::Tls
                    | PrefaceAnswer::Closed
                    | PrefaceAnswer::Other(_)) => Check::fail(
                        STEP_CONTROL_PLANE,
                        subject,
                        Cause::NotAdsServer,
                        answer.problem().unwrap_or_else(|| reason.clone()),
                    ),
                    _ => Check::fail(
                        STEP_CONTROL_PLANE,
                        subject,
                        Cause::ControlPlaneUnreachable,
                        reason.clone(),
                    ),
                },
                None => Check::fail(
                    STEP_CONTROL_PLANE,
                    subject,
                    Cause::ControlPlaneUnreachable,
                    reason.clone(),
                ),
            }
        }
        _ => return Err(SetupError::Channel(error)),
    };
    diagnosis.push(check);
    Ok(None)
}

/// `host:port` of a URI.
pub(crate) fn authority(uri: &str) -> Option<String> {
    uri.parse::<http::Uri>()
        .ok()?
        .authority()
        .map(|a| a.to_string())
}

/// The control plane's status API (`controlplane.v1.ControlPlaneStatus`).
#[derive(Debug, Clone)]
pub(crate) struct StatusApi {
    client: ControlPlaneStatusClient<tonic::transport::Channel>,
}

impl StatusApi {
    /// Connects to the status API next to ADS, over TLS when the address
    /// is https://.
    pub(crate) async fn connect(address: &Address, timeout: Duration) -> Result<Self, String> {
        let uri: http::Uri = address.uri.parse().map_err(|e| format!("{e}"))?;
        let host = uri
            .host()
            .ok_or("no host")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let authority = uri.authority().ok_or("no host")?.to_string();
        let tls = match &address.tls {
            None => None,
            Some(files) => {
                let client = ClientTls::load(&ClientTlsFiles {
                    ca: files.ca_certificate_file.clone(),
                    cert: files.certificate_file.clone(),
                    key: files.private_key_file.clone(),
                })
                .map_err(|error| common::error::chain(&error))?;
                Some((client, ServerVerification::Hostname(host)))
            }
        };
        let channel = Endpoint::from_shared(format!("http://{authority}"))
            .map_err(|error| error.to_string())?
            .connect_timeout(timeout)
            .timeout(timeout)
            .connect_with_connector(Connector::new(tls))
            .await
            .map_err(|error| common::error::chain(&error))?;
        Ok(Self {
            client: ControlPlaneStatusClient::new(channel),
        })
    }

    pub(crate) async fn info(&self) -> Result<pb::Info, tonic::Status> {
        let mut client = self.client.clone();
        Ok(client.get_info(pb::GetInfoRequest {}).await?.into_inner())
    }

    pub(crate) async fn services(&self) -> Result<Vec<pb::Service>, tonic::Status> {
        let mut client = self.client.clone();
        Ok(client
            .list_services(pb::ListServicesRequest {})
            .await?
            .into_inner()
            .services)
    }

    pub(crate) async fn explain(
        &self,
        name: &str,
    ) -> Result<pb::ExplainTargetResponse, tonic::Status> {
        let mut client = self.client.clone();
        Ok(client
            .explain_target(pb::ExplainTargetRequest {
                name: name.to_owned(),
            })
            .await?
            .into_inner())
    }
}

/// The first row once the channel is open: what the control plane says
/// about itself, and a warning when its source is not in sync. Returns the
/// status API when it answers.
pub(crate) async fn describe(
    address: &Address,
    timeout: Duration,
    diagnosis: &mut Diagnosis,
) -> Option<StatusApi> {
    let subject = address.uri.clone();
    let api = match StatusApi::connect(address, timeout).await {
        Ok(api) => api,
        Err(error) => {
            diagnosis.push(Check::new(
                STEP_CONTROL_PLANE,
                subject,
                Outcome::Ok,
                format!("speaks xDS ADS; its status API cannot be reached ({error})"),
            ));
            return None;
        }
    };
    let info = match api.info().await {
        Ok(info) => info,
        Err(status) => {
            let why = if status.code() == Code::Unimplemented {
                "it has no status API (another control plane?): no explanations or probe details"
                    .to_owned()
            } else {
                format!("its status API failed: {}", status.message())
            };
            diagnosis.push(Check::new(
                STEP_CONTROL_PLANE,
                subject,
                Outcome::Ok,
                format!("speaks xDS ADS; {why}"),
            ));
            return None;
        }
    };
    let source = info.source.clone().unwrap_or_default();
    let state = pb::SourceState::try_from(source.state).unwrap_or_default();
    let state_word = match state {
        pb::SourceState::Starting => "starting",
        pb::SourceState::Connected => "connected",
        pb::SourceState::Degraded => "degraded",
        pb::SourceState::Disconnected => "disconnected",
        pb::SourceState::Unspecified => "unknown",
    };
    diagnosis.push(Check::new(
        STEP_CONTROL_PLANE,
        subject.clone(),
        Outcome::Ok,
        format!(
            "speaks xDS ADS: control-plane {} (replica {}), namespace {}, {} source {}",
            info.version, info.replica, info.namespace, source.kind, state_word
        ),
    ));
    if state != pb::SourceState::Connected {
        let mut detail = format!(
            "the {} source is {state_word}: what it serves may be out of date",
            source.kind
        );
        if !source.last_error.is_empty() {
            detail.push_str(&format!(" (last error: {})", source.last_error));
        }
        diagnosis.push(Check::new("source", source.kind, Outcome::Warn, detail));
    }
    Some(api)
}
