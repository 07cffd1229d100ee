//! The protocol state of one ADS stream, as a pure state machine.
//!
//! # Design notes
//!
//! [`Session`] does no I/O and reads no clock: it is fed
//! [`DiscoveryRequest`]s ([`Session::on_request`]) and store snapshots
//! ([`Session::on_snapshot`]) and returns the [`DiscoveryResponse`]s to
//! write. The stream task ([`super::stream`]) does the I/O around it, and
//! the rules below are unit-tested here without a network.
//!
//! Per resource type it keeps the subscription (names, or wildcard), what
//! the client was last sent (name → the resource's revision, plus the
//! response's version and nonce) and the client's last ACK and NACK.
//!
//! - Every response has a fresh nonce; `version_info` is the store's
//!   `<instance id>-<snapshot revision>`, so it never repeats across runs.
//! - A request whose `response_nonce` is not the latest one sent for its
//!   type is stale and changes nothing. A non-empty nonce for a type that
//!   was never answered on this stream (a client carrying one over from an
//!   earlier stream) counts as a first request.
//! - A request answering the latest response is an ACK, or a NACK when it
//!   carries `error_detail`; the NACK's detail, the version rejected and the
//!   time are kept. Nothing is resent because of a NACK: the next response
//!   of that type goes out when something it carries changes.
//! - A first request (empty nonce) is answered with everything subscribed.
//!   A subscription change (names added or dropped) is answered at once:
//!   Listener and Cluster responses always list every subscribed resource
//!   that exists (state of the world: a missing one is deleted), route and
//!   assignment responses list the newly subscribed and changed ones. Names
//!   that do not exist are left out, so the answer may be empty; it is
//!   sent all the same, so the client knows at once.
//! - A snapshot that changes nothing the stream subscribes to sends nothing.
//! - Wildcard: a Listener or Cluster request with no names, before any
//!   explicit subscription of that type, subscribes to all (the xDS legacy
//!   rule); `*` among the names subscribes to all for any type.
//! - Unknown type URLs are answered with nothing (gRPC clients may ask for
//!   types this server has no use for, and closing the stream would break
//!   their other subscriptions); they are counted per type URL for the
//!   status API and logged by the stream.
//! - Requests over the [`Limits`] are refused with an [`Error`] and change
//!   nothing; the stream ends that one stream with INVALID_ARGUMENT.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use envoy_types::pb::envoy::config::core::v3::node::UserAgentVersionType;
use envoy_types::pb::envoy::config::core::v3::{ControlPlane, Node};
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};

use super::ResourceType;
use super::names;
use super::resources::Resource;
use crate::store::{self, Snapshot};

/// Default cap on resource names in one request.
pub const MAX_NAMES_PER_REQUEST: usize = 10_000;
/// Default cap on the length of one resource name, in bytes. Kubernetes
/// names in any of the accepted forms stay well under it.
pub const MAX_NAME_BYTES: usize = 1024;
/// Distinct unknown type URLs remembered per stream (more are still
/// ignored, just not listed).
const MAX_UNKNOWN_TYPES: usize = 16;
/// The explicit wildcard name.
const WILDCARD: &str = "*";

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
    /// The response.
    pub response: DiscoveryResponse,
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

#[derive(Debug, Default)]
struct TypeState {
    names: BTreeSet<String>,
    wildcard: bool,
    /// Whether any request of this type listed names (ends the legacy
    /// "no names means wildcard" rule).
    explicit: bool,
    /// What the client holds: resource name → revision sent.
    sent: HashMap<String, u64>,
    sent_version: String,
    sent_nonce: String,
    pending: bool,
    acked_version: String,
    nack: Option<Nack>,
    responses: u64,
    acks: u64,
    nacks: u64,
}

/// Which resources a response carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A first request: everything subscribed.
    Everything,
    /// A subscription change: always answer; routes and assignments only
    /// if new or changed.
    Answer,
    /// A new snapshot: answer only if something subscribed changed.
    Update,
}

/// The state of one ADS stream.
#[derive(Debug)]
pub struct Session {
    instance_id: String,
    control_plane: ControlPlane,
    limits: Limits,
    node: Option<NodeInfo>,
    types: BTreeMap<ResourceType, TypeState>,
    unknown_types: BTreeMap<String, u64>,
    nonces: u64,
}

impl Session {
    /// A session of the run `instance_id` (the store's, the prefix of every
    /// `version_info`), identifying itself as `identifier` in responses.
    pub fn new(
        instance_id: impl Into<String>,
        identifier: impl Into<String>,
        limits: Limits,
    ) -> Self {
        Self {
            instance_id: instance_id.into(),
            control_plane: ControlPlane {
                identifier: identifier.into(),
            },
            limits,
            node: None,
            types: BTreeMap::new(),
            unknown_types: BTreeMap::new(),
            nonces: 0,
        }
    }

    /// The client, once a request named it.
    pub fn node(&self) -> Option<&NodeInfo> {
        self.node.as_ref()
    }

    /// Handles one request against the current `snapshot`; `now` stamps a
    /// NACK. Refuses requests over the limits, changing nothing.
    pub fn on_request(
        &mut self,
        request: &DiscoveryRequest,
        snapshot: &Snapshot,
        now: SystemTime,
    ) -> Result<Reply> {
        self.check_limits(request)?;
        if self.node.is_none() {
            self.node = request.node.as_ref().map(NodeInfo::from);
        }
        let Some(kind) = ResourceType::from_type_url(&request.type_url) else {
            let known = self.unknown_types.len();
            if let Some(count) = self.unknown_types.get_mut(&request.type_url) {
                *count += 1;
            } else if known < MAX_UNKNOWN_TYPES {
                self.unknown_types.insert(request.type_url.clone(), 1);
            }
            return Ok(Reply {
                received: Received::UnknownType {
                    type_url: request.type_url.clone(),
                },
                responses: Vec::new(),
            });
        };

        let state = self.types.entry(kind).or_default();
        let nonce = &request.response_nonce;
        let answers_latest = !nonce.is_empty() && *nonce == state.sent_nonce;
        if !nonce.is_empty() && !state.sent_nonce.is_empty() && !answers_latest {
            return Ok(Reply {
                received: Received::Stale {
                    kind,
                    nonce: nonce.clone(),
                },
                responses: Vec::new(),
            });
        }

        let ack = if answers_latest {
            state.pending = false;
            match &request.error_detail {
                Some(status) => {
                    let error = if status.message.is_empty() {
                        format!("rejected with code {} and no message", status.code)
                    } else {
                        status.message.clone()
                    };
                    state.nacks += 1;
                    state.nack = Some(Nack {
                        error: error.clone(),
                        version: state.sent_version.clone(),
                        at: now,
                    });
                    Ack::Nacked {
                        version: state.sent_version.clone(),
                        error,
                    }
                }
                None => {
                    state.acks += 1;
                    state.acked_version = state.sent_version.clone();
                    Ack::Acked {
                        version: state.sent_version.clone(),
                    }
                }
            }
        } else {
            Ack::None
        };

        let (names, wildcard) = subscription(kind, &request.resource_names, state.explicit);
        state.explicit |= !request.resource_names.is_empty();
        let added = names.difference(&state.names).count();
        let removed = state.names.difference(&names).count();
        let changed = added > 0 || removed > 0 || wildcard != state.wildcard;
        state.names = names;
        state.wildcard = wildcard;

        let mode = if !answers_latest {
            Some(Mode::Everything)
        } else if changed {
            Some(Mode::Answer)
        } else {
            None
        };
        let responses = mode
            .and_then(|mode| self.respond(kind, snapshot, mode))
            .into_iter()
            .collect();
        Ok(Reply {
            received: Received::Request {
                kind,
                ack,
                added,
                removed,
            },
            responses,
        })
    }

    /// Handles a new snapshot: a response for every type in which something
    /// subscribed changed, appeared or (Listener, Cluster) disappeared.
    pub fn on_snapshot(&mut self, snapshot: &Snapshot) -> Vec<Outgoing> {
        let kinds: Vec<_> = self.types.keys().copied().collect();
        kinds
            .into_iter()
            .filter_map(|kind| self.respond(kind, snapshot, Mode::Update))
            .collect()
    }

    /// The session as the status API shows it.
    pub fn view(&self) -> SessionView {
        SessionView {
            node: self.node.clone(),
            types: self
                .types
                .iter()
                .map(|(kind, state)| TypeView {
                    kind: *kind,
                    names: state.names.iter().cloned().collect(),
                    wildcard: state.wildcard,
                    sent_version: state.sent_version.clone(),
                    sent_nonce: state.sent_nonce.clone(),
                    pending: state.pending,
                    acked_version: state.acked_version.clone(),
                    nack: state.nack.clone(),
                    responses: state.responses,
                    acks: state.acks,
                    nacks: state.nacks,
                })
                .collect(),
            unknown_types: self
                .unknown_types
                .iter()
                .map(|(url, count)| (url.clone(), *count))
                .collect(),
        }
    }

    fn check_limits(&self, request: &DiscoveryRequest) -> Result<()> {
        let count = request.resource_names.len();
        if count > self.limits.max_names {
            return Err(Error::TooManyNames {
                type_url: request.type_url.clone(),
                count,
                max: self.limits.max_names,
            });
        }
        let longest = request
            .resource_names
            .iter()
            .map(String::len)
            .max()
            .unwrap_or(0);
        if longest > self.limits.max_name_bytes {
            return Err(Error::NameTooLong {
                type_url: request.type_url.clone(),
                bytes: longest,
                max: self.limits.max_name_bytes,
            });
        }
        Ok(())
    }

    /// Builds the response of type `kind` for `mode`, if one is due, and
    /// records it as sent.
    fn respond(&mut self, kind: ResourceType, snapshot: &Snapshot, mode: Mode) -> Option<Outgoing> {
        let state = self.types.get_mut(&kind)?;
        let view = current_view(state, kind, snapshot);
        let gone = state
            .sent
            .keys()
            .any(|name| !view.contains_key(name.as_str()));
        // What the client holds but is no longer subscribed or no longer
        // exists: forgotten, so it is sent again if it comes back.
        state
            .sent
            .retain(|name, _| view.contains_key(name.as_str()));
        let changed: Vec<&Arc<Resource>> = view
            .values()
            .copied()
            .filter(|r| state.sent.get(&r.name) != Some(&r.revision))
            .collect();
        if mode == Mode::Update && changed.is_empty() && !(kind.is_full_state() && gone) {
            return None;
        }
        let changed_at = match mode {
            Mode::Update => changed
                .iter()
                .filter_map(|r| change_time(snapshot, r))
                .min(),
            Mode::Everything | Mode::Answer => None,
        };
        let carried: Vec<&Arc<Resource>> = if kind.is_full_state() || mode == Mode::Everything {
            view.values().copied().collect()
        } else {
            changed
        };
        for resource in &carried {
            state.sent.insert(resource.name.clone(), resource.revision);
        }

        self.nonces += 1;
        let nonce = self.nonces.to_string();
        let version_info = store::version_info(&self.instance_id, snapshot.revision);
        state.sent_version.clone_from(&version_info);
        state.sent_nonce.clone_from(&nonce);
        state.pending = true;
        state.responses += 1;
        Some(Outgoing {
            kind,
            response: DiscoveryResponse {
                version_info,
                resources: carried.iter().map(|r| r.any.clone()).collect(),
                type_url: kind.type_url(),
                nonce,
                control_plane: Some(self.control_plane.clone()),
                ..Default::default()
            },
            changed_at,
        })
    }
}

/// The subscription a request asks for: its names without `*`, and
/// whether it subscribes to everything.
fn subscription(kind: ResourceType, names: &[String], explicit: bool) -> (BTreeSet<String>, bool) {
    let star = names.iter().any(|name| name == WILDCARD);
    let legacy_wildcard = names.is_empty() && kind.is_full_state() && !explicit;
    let names = names
        .iter()
        .filter(|name| *name != WILDCARD)
        .cloned()
        .collect();
    (names, star || legacy_wildcard)
}

/// Every subscribed resource that exists in `snapshot`, by name.
fn current_view<'s>(
    state: &TypeState,
    kind: ResourceType,
    snapshot: &'s Snapshot,
) -> BTreeMap<&'s str, &'s Arc<Resource>> {
    let mut view = BTreeMap::new();
    if state.wildcard {
        for resource in snapshot.wildcard(kind) {
            view.insert(resource.name.as_str(), resource);
        }
    }
    for name in &state.names {
        if let Some(resource) = snapshot.get(kind, name) {
            view.insert(resource.name.as_str(), resource);
        }
    }
    view
}

/// When the source change that produced `resource` happened, if its service
/// has not changed again since.
fn change_time(snapshot: &Snapshot, resource: &Resource) -> Option<Instant> {
    let entry = snapshot.services.get(names::service_of(&resource.name)?)?;
    (entry.revision == resource.revision).then_some(entry.changed_at)
}

#[cfg(test)]
mod tests;
