//! Reaching the control plane: one attempt to connect (TLS through the
//! project's connector) and open the ADS stream, and why an attempt failed.

use std::time::Duration;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::{Channel, Endpoint};

use tls_reload::client::{ClientTls, Connector, Note, ServerVerification};

use crate::backoff::Backoff;
use crate::bootstrap::ControlPlaneTls;
use crate::error::error_chain;

/// How to reach the control plane.
#[derive(Debug, Clone)]
pub(crate) struct TaskSettings {
    pub(crate) uri: String,
    /// TLS to it, when `uri` is `https://`.
    pub(crate) tls: Option<(ClientTls, ServerVerification)>,
    /// The files `tls` comes from (what tells two clients' TLS apart).
    pub(crate) tls_files: Option<ControlPlaneTls>,
    pub(crate) connect_timeout: Duration,
    pub(crate) keepalive_interval: Option<Duration>,
    pub(crate) keepalive_timeout: Duration,
    pub(crate) backoff: Backoff,
}

/// Why a connection to the control plane failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    /// The URI is not usable.
    #[error("{0:?} is not a valid control plane URI: {1}")]
    Uri(String, String),
    /// The connection failed.
    #[error("cannot connect to the control plane at {0}: {1}")]
    Connect(String, String),
    /// The server answered the stream, but not as an ADS server.
    #[error("the control plane at {0} refused the discovery stream: {1}")]
    Refused(String, tonic::Status),
}

impl ConnectError {
    /// What went wrong, without the address (for status lines that name it).
    pub(crate) fn cause(&self) -> String {
        match self {
            ConnectError::Uri(_, cause) | ConnectError::Connect(_, cause) => cause.clone(),
            ConnectError::Refused(_, status) if status.code() == tonic::Code::Unimplemented => {
                "it does not implement xDS ADS (it answered the discovery stream with \
                 UNIMPLEMENTED); is this the control plane's port (18000)?"
                    .to_owned()
            }
            ConnectError::Refused(_, status) => {
                format!("the discovery stream was refused: {}", status_text(status))
            }
        }
    }

    /// Whether the server is a gRPC server without the ADS service.
    pub(crate) fn not_ads(&self) -> bool {
        matches!(self, ConnectError::Refused(_, status) if status.code() == tonic::Code::Unimplemented)
    }
}

/// An open ADS stream: requests go in, responses come out.
pub(crate) struct AdsStream {
    pub(super) requests: mpsc::UnboundedSender<DiscoveryRequest>,
    pub(super) responses: tonic::Streaming<DiscoveryResponse>,
    /// The connection, for other calls to the control plane.
    pub(super) channel: Channel,
}

impl std::fmt::Debug for AdsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdsStream").finish_non_exhaustive()
    }
}

/// Connects to the control plane and opens the ADS stream (one attempt):
/// the server's answer to the stream's headers tells an ADS server from
/// any other.
pub(crate) async fn open(settings: &TaskSettings) -> Result<AdsStream, ConnectError> {
    let (channel, note) = connect(settings).await?;
    let (requests, rx) = mpsc::unbounded_channel::<DiscoveryRequest>();
    let mut client = AggregatedDiscoveryServiceClient::new(channel.clone())
        .max_decoding_message_size(64 * 1024 * 1024);
    let opened = tokio::time::timeout(
        settings.connect_timeout,
        client.stream_aggregated_resources(UnboundedReceiverStream::new(rx)),
    )
    .await
    .map_err(|_| {
        ConnectError::Connect(
            settings.uri.clone(),
            format!(
                "no answer to the discovery stream within {:?}",
                settings.connect_timeout
            ),
        )
    })?;
    match opened {
        Ok(response) => Ok(AdsStream {
            requests,
            responses: response.into_inner(),
            channel,
        }),
        // A TLS failure surfacing after the handshake (a client certificate
        // refused) shows as a closed stream: its noted cause says more.
        Err(status) => Err(match note.get() {
            Some(failure) => ConnectError::Connect(settings.uri.clone(), failure.to_string()),
            None => ConnectError::Refused(settings.uri.clone(), status),
        }),
    }
}

/// Connects to the control plane (one attempt).
async fn connect(settings: &TaskSettings) -> Result<(Channel, Note), ConnectError> {
    // With TLS the connector runs the handshake: tonic gets http://.
    let uri = match &settings.tls {
        Some(_) => settings.uri.replacen("https://", "http://", 1),
        None => settings.uri.clone(),
    };
    let mut endpoint = Endpoint::from_shared(uri)
        .map_err(|e| ConnectError::Uri(settings.uri.clone(), error_chain(&e)))?
        .connect_timeout(settings.connect_timeout)
        .tcp_nodelay(true)
        .user_agent(format!("{}/{}", crate::USER_AGENT_NAME, crate::VERSION))
        .map_err(|e| ConnectError::Uri(settings.uri.clone(), error_chain(&e)))?;
    if let Some(interval) = settings.keepalive_interval {
        // The discovery stream idles for long stretches: keep probing it so
        // a vanished control plane is noticed.
        endpoint = endpoint
            .http2_keep_alive_interval(interval)
            .keep_alive_timeout(settings.keepalive_timeout)
            .keep_alive_while_idle(true);
    }
    let connector = Connector::new(settings.tls.clone());
    let note = connector.note();
    let channel = endpoint
        .connect_with_connector(connector)
        .await
        .map_err(|e| {
            // A TLS failure says its cause; the transport error would not.
            let cause = note
                .get()
                .map_or_else(|| error_chain(&e), |f| f.to_string());
            ConnectError::Connect(settings.uri.clone(), cause)
        })?;
    Ok((channel, note))
}

/// A status as one line, with its sources.
pub(super) fn status_text(status: &tonic::Status) -> String {
    let mut text = format!("{:?}: {}", status.code(), status.message());
    if let Some(source) = std::error::Error::source(status) {
        text.push_str(": ");
        text.push_str(&error_chain(source));
    }
    text
}
