//! A raw ADS client: one state-of-the-world stream, requests sent exactly
//! as written, responses decoded into Envoy types. The tests drive the
//! control plane with it, and the propagation benchmark's raw subscribers
//! are made of it.
//!
//! Nothing here follows resources or ACKs on its own: the caller says what
//! goes on the wire. Tests use the methods that panic, where every receive
//! is bounded by [`RECV_TIMEOUT`]; programs use [`AdsStream::open_with`],
//! [`AdsStream::message`] and [`AdsStream::try_ack`], which return errors
//! and wait as long as the stream lasts.
//!
//! Asserting that the server sends nothing after some request: send a
//! second request that is always answered (say, a first request for another
//! type) and check that its answer is the next response. A server handles
//! one stream's requests in order, so anything the first request caused
//! would arrive before it.

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{HealthStatus, Node, SocketAddress};
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, LbEndpoint};
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use prost::{Message, Name};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Status, Streaming};

/// Upper bound for one response to arrive.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(10);

/// The type URL of `T`.
pub fn type_url<T: Name>() -> String {
    T::type_url()
}

/// The request stream has ended: the server closed the stream, or
/// [`AdsStream::close_requests`] was called.
#[derive(Debug, thiserror::Error)]
#[error("the ADS request stream is closed")]
pub struct Closed;

/// A request for `names` of type `type_url` answering `nonce` (empty for a
/// first request) with `version`.
pub fn discovery_request(
    type_url: &str,
    names: &[&str],
    version: &str,
    nonce: &str,
) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: type_url.to_owned(),
        resource_names: names.iter().map(|n| (*n).to_owned()).collect(),
        version_info: version.to_owned(),
        response_nonce: nonce.to_owned(),
        ..Default::default()
    }
}

/// One open ADS stream.
#[derive(Debug)]
pub struct AdsStream {
    requests: mpsc::Sender<DiscoveryRequest>,
    responses: Streaming<DiscoveryResponse>,
    node: Option<Node>,
}

impl AdsStream {
    /// Opens a stream on `channel`; the first request will carry node
    /// `node_id`.
    ///
    /// # Panics
    ///
    /// When the server refuses the stream.
    pub async fn open(channel: Channel, node_id: &str) -> Self {
        Self::try_open(channel, node_id)
            .await
            .unwrap_or_else(|status| panic!("ADS stream refused: {status}"))
    }

    /// Like [`AdsStream::open`], for a client whose node locality is in
    /// `zone`.
    pub async fn open_in_zone(channel: Channel, node_id: &str, zone: &str) -> Self {
        let mut stream = Self::open(channel, node_id).await;
        if let Some(node) = &mut stream.node {
            node.locality = Some(envoy_types::pb::envoy::config::core::v3::Locality {
                zone: zone.to_owned(),
                ..Default::default()
            });
        }
        stream
    }

    /// Opens a stream on `channel`, or returns the status the server
    /// refused it with.
    pub async fn try_open(channel: Channel, node_id: &str) -> Result<Self, Status> {
        let node = Node {
            id: node_id.to_owned(),
            user_agent_name: "ads-test-client".to_owned(),
            ..Default::default()
        };
        Self::open_with(channel, node, Vec::new()).await
    }

    /// Opens a stream on `channel` as `node` with `initial` queued (the
    /// first carrying the node), so they leave with the stream's opening.
    ///
    /// # Errors
    ///
    /// The status the server refused the stream with.
    pub async fn open_with(
        channel: Channel,
        node: Node,
        initial: Vec<DiscoveryRequest>,
    ) -> Result<Self, Status> {
        let (requests, outbound) = mpsc::channel(initial.len().max(16));
        let mut node = Some(node);
        for request in initial {
            // The queue has room for every one.
            let _ = requests.try_send(with_node(&mut node, request));
        }
        let mut client = AggregatedDiscoveryServiceClient::new(channel)
            .max_decoding_message_size(64 * 1024 * 1024);
        let responses = client
            .stream_aggregated_resources(ReceiverStream::new(outbound))
            .await?
            .into_inner();
        Ok(Self {
            requests,
            responses,
            node,
        })
    }

    /// Sends `request` as is, adding the node to the stream's first request.
    ///
    /// # Panics
    ///
    /// When the stream is closed.
    pub async fn send(&mut self, request: DiscoveryRequest) {
        self.try_send(request)
            .await
            .expect("ADS request stream closed");
    }

    /// Sends `request` as is, adding the node to the stream's first request.
    ///
    /// # Errors
    ///
    /// [`Closed`] when the request side of the stream has ended.
    pub async fn try_send(&mut self, request: DiscoveryRequest) -> Result<(), Closed> {
        let request = with_node(&mut self.node, request);
        self.requests.send(request).await.map_err(|_| Closed)
    }

    /// Ends the request side of the stream (HTTP/2 END_STREAM), as a client
    /// that is done would; responses can still be read.
    pub fn close_requests(&mut self) {
        let (closed, _) = mpsc::channel(1);
        self.requests = closed;
    }

    /// Sends a request for `names` of type `type_url` answering `nonce`
    /// (empty for a first request) with `version`.
    pub async fn request(&mut self, type_url: &str, names: &[&str], version: &str, nonce: &str) {
        self.send(discovery_request(type_url, names, version, nonce))
            .await;
    }

    /// A first request for `names` of type `T`.
    pub async fn subscribe<T: Name>(&mut self, names: &[&str]) {
        self.request(&type_url::<T>(), names, "", "").await;
    }

    /// ACKs `response`, keeping (or changing to) `names`.
    ///
    /// # Panics
    ///
    /// When the stream is closed.
    pub async fn ack(&mut self, response: &DiscoveryResponse, names: &[&str]) {
        self.try_ack(response, names)
            .await
            .expect("ADS request stream closed");
    }

    /// ACKs `response`, keeping (or changing to) `names`.
    ///
    /// # Errors
    ///
    /// [`Closed`] when the request side of the stream has ended.
    pub async fn try_ack(
        &mut self,
        response: &DiscoveryResponse,
        names: &[&str],
    ) -> Result<(), Closed> {
        let ack = discovery_request(
            &response.type_url,
            names,
            &response.version_info,
            &response.nonce,
        );
        self.try_send(ack).await
    }

    /// NACKs `response` with `error`, keeping `names`.
    pub async fn nack(&mut self, response: &DiscoveryResponse, names: &[&str], error: &str) {
        self.send(DiscoveryRequest {
            type_url: response.type_url.clone(),
            resource_names: names.iter().map(|n| (*n).to_owned()).collect(),
            // A NACK carries the last version accepted, not the rejected one.
            version_info: String::new(),
            response_nonce: response.nonce.clone(),
            error_detail: Some(RpcStatus {
                code: 3,
                message: error.to_owned(),
                details: vec![],
            }),
            ..Default::default()
        })
        .await;
    }

    /// The next message: a response, the end of the stream (`Ok(None)`),
    /// or the status it ended with.
    ///
    /// # Panics
    ///
    /// When nothing arrives within [`RECV_TIMEOUT`].
    pub async fn next(&mut self) -> Result<Option<DiscoveryResponse>, Status> {
        tokio::time::timeout(RECV_TIMEOUT, self.message())
            .await
            .unwrap_or_else(|_| panic!("no ADS response within {RECV_TIMEOUT:?}"))
    }

    /// The next message, however long it takes: a response, the end of
    /// the stream (`Ok(None)`), or the status it ended with.
    ///
    /// # Errors
    ///
    /// The status the stream ended with.
    pub async fn message(&mut self) -> Result<Option<DiscoveryResponse>, Status> {
        self.responses.message().await
    }

    /// The next response.
    ///
    /// # Panics
    ///
    /// When the stream ends or fails instead, or on timeout.
    pub async fn recv(&mut self) -> DiscoveryResponse {
        match self.next().await {
            Ok(Some(response)) => response,
            Ok(None) => panic!("ADS stream ended"),
            Err(status) => panic!("ADS stream failed: {status}"),
        }
    }

    /// The next response, which must be of type `T`; returns it and its
    /// decoded resources.
    ///
    /// # Panics
    ///
    /// Like [`AdsStream::recv`], and when the type differs.
    pub async fn recv_typed<T: Message + Name + Default>(&mut self) -> (DiscoveryResponse, Vec<T>) {
        let response = self.recv().await;
        assert_eq!(
            response.type_url,
            T::type_url(),
            "unexpected response type: {response:?}"
        );
        let resources = decode(&response);
        (response, resources)
    }
}

/// The resources of `response`, decoded as `T`.
///
/// # Panics
///
/// When one is of another type or does not decode.
pub fn decode<T: Message + Name + Default>(response: &DiscoveryResponse) -> Vec<T> {
    response
        .resources
        .iter()
        .map(|any| {
            assert_eq!(any.type_url, T::type_url(), "resource of another type");
            T::decode(any.value.as_slice()).expect("resource decodes")
        })
        .collect()
}

/// The socket address of `endpoint`, when it has one.
pub fn socket_address(endpoint: &LbEndpoint) -> Option<&SocketAddress> {
    let Some(HostIdentifier::Endpoint(endpoint)) = &endpoint.host_identifier else {
        return None;
    };
    match endpoint.address.as_ref()?.address.as_ref()? {
        AddressKind::SocketAddress(socket) => Some(socket),
        _ => None,
    }
}

/// Every endpoint of `assignment` as `ip:port` with its health status,
/// sorted.
pub fn endpoints(assignment: &ClusterLoadAssignment) -> Vec<(String, HealthStatus)> {
    let mut found: Vec<_> = assignment
        .endpoints
        .iter()
        .flat_map(|locality| &locality.lb_endpoints)
        .filter_map(|lb| {
            let socket = socket_address(lb)?;
            let port = match socket.port_specifier {
                Some(PortSpecifier::PortValue(port)) => port,
                _ => 0,
            };
            let health = HealthStatus::try_from(lb.health_status).unwrap_or(HealthStatus::Unknown);
            Some((format!("{}:{port}", socket.address), health))
        })
        .collect();
    found.sort();
    found
}

/// `request` with `node` in it, if `node` is still there to add (the
/// stream's first request carries it).
fn with_node(node: &mut Option<Node>, mut request: DiscoveryRequest) -> DiscoveryRequest {
    if let Some(node) = node.take() {
        request.node.get_or_insert(node);
    }
    request
}
