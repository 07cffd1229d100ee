//! The session's inputs, outputs and status views.

use std::time::{Instant, SystemTime};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::core::v3::node::UserAgentVersionType;

use crate::kinds::ResourceType;
use crate::xds::wire::EncodedResponse;

/// Default cap on resource names in one request.
pub const MAX_NAMES_PER_REQUEST: usize = 10_000;
/// Default cap on the length of one resource name, in bytes. Kubernetes
/// names in any of the accepted forms stay well under it.
pub const MAX_NAME_BYTES: usize = 1024;

/// Caps on what one request may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most resource names in one request.
    pub max_names: usize,
    /// Longest resource name, in bytes.
    pub max_name_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_names: MAX_NAMES_PER_REQUEST,
            max_name_bytes: MAX_NAME_BYTES,
        }
    }
}

/// A request the session refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Too many resource names in one request.
    #[error(
        "request for {type_url} lists {count} resource names; at most {max} are allowed per request"
    )]
    TooManyNames {
        /// The request's type URL.
        type_url: String,
        /// Names it listed.
        count: usize,
        /// The cap.
        max: usize,
    },
    /// A resource name over the length cap.
    #[error(
        "request for {type_url} has a resource name of {bytes} bytes; at most {max} are allowed"
    )]
    NameTooLong {
        /// The request's type URL.
        type_url: String,
        /// Length of the longest name.
        bytes: usize,
        /// The cap.
        max: usize,
    },
}

/// The result type of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Who is on the other end, from the `node` of its first request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeInfo {
    /// `node.id`.
    pub id: String,
    /// `node.cluster`.
    pub cluster: String,
    /// `node.user_agent_name` and its version, space separated.
    pub user_agent: String,
    /// `node.locality.zone`.
    pub zone: String,
}

impl From<&Node> for NodeInfo {
    fn from(node: &Node) -> Self {
        let version = match &node.user_agent_version_type {
            Some(UserAgentVersionType::UserAgentVersion(version)) => version.clone(),
            Some(UserAgentVersionType::UserAgentBuildVersion(build)) => build
                .version
                .as_ref()
                .map(|v| format!("{}.{}.{}", v.major_number, v.minor_number, v.patch))
                .unwrap_or_default(),
            None => String::new(),
        };
        let user_agent = [node.user_agent_name.as_str(), version.as_str()]
            .into_iter()
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        Self {
            id: node.id.clone(),
            cluster: node.cluster.clone(),
            user_agent,
            zone: node
                .locality
                .as_ref()
                .map(|l| l.zone.clone())
                .unwrap_or_default(),
        }
    }
}

/// A rejected response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nack {
    /// The client's error detail.
    pub error: String,
    /// The `version_info` it rejected.
    pub version: String,
    /// When the NACK arrived.
    pub at: SystemTime,
}

/// How a request answered the latest response of its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ack {
    /// It answered nothing (a first request).
    None,
    /// Accepted.
    Acked {
        /// The version accepted.
        version: String,
    },
    /// Rejected.
    Nacked {
        /// The version rejected.
        version: String,
        /// The client's error detail.
        error: String,
    },
}

/// What a request turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A request for a type this server serves.
    Request {
        /// Its type.
        kind: ResourceType,
        /// Whether it ACKed or NACKed the latest response.
        ack: Ack,
        /// Subscribed names added by it.
        added: usize,
        /// Subscribed names dropped by it.
        removed: usize,
    },
    /// It answered a response that is no longer the latest: ignored.
    Stale {
        /// Its type.
        kind: ResourceType,
        /// The outdated nonce.
        nonce: String,
    },
    /// A type URL this server does not serve: ignored.
    UnknownType {
        /// The type URL.
        type_url: String,
    },
}

/// A response to write, with what the stream needs to account for it.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Its resource type.
    pub kind: ResourceType,
    /// The response, its resources shared with other streams.
    pub response: EncodedResponse,
    /// For a response caused by a source change: when the oldest change it
    /// carries happened.
    pub changed_at: Option<Instant>,
}

/// The session's answer to a request.
#[derive(Debug, Clone)]
pub struct Reply {
    /// What the request was.
    pub received: Received,
    /// Responses to write, in order.
    pub responses: Vec<Outgoing>,
}

/// One type's state, as shown by the status API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeView {
    /// The type.
    pub kind: ResourceType,
    /// Subscribed names (sorted), besides a wildcard.
    pub names: Vec<String>,
    /// Whether the client subscribes to every resource of the type.
    pub wildcard: bool,
    /// `version_info` of the latest response.
    pub sent_version: String,
    /// Nonce of the latest response.
    pub sent_nonce: String,
    /// Whether the latest response is still unanswered.
    pub pending: bool,
    /// The latest version the client accepted.
    pub acked_version: String,
    /// The latest rejection.
    pub nack: Option<Nack>,
    /// Responses sent.
    pub responses: u64,
    /// ACKs received.
    pub acks: u64,
    /// NACKs received.
    pub nacks: u64,
}

/// The whole session, as shown by the status API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    /// From the first request that carried a node.
    pub node: Option<NodeInfo>,
    /// Every type requested, in LDS, RDS, CDS, EDS order.
    pub types: Vec<TypeView>,
    /// Unknown type URLs asked for, with request counts.
    pub unknown_types: Vec<(String, u64)>,
}
