//! The protocol state of one ADS stream, as a pure state machine.
//!
//! # Design notes
//!
//! [`Session`] does no I/O and reads no clock: it is fed
//! [`DiscoveryRequest`]s ([`Session::on_request`]) and resource snapshots
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

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use envoy_types::pb::envoy::config::core::v3::ControlPlane;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;

use super::resources::Resource;
use super::snapshot::ResourceSnapshot;
use super::wire::EncodedResponse;
use crate::kinds::ResourceType;
use crate::store;

mod subscription;
mod types;

use subscription::{Names, current_view, holds_current, subscription};

pub use types::{
    Ack, Error, Limits, MAX_NAME_BYTES, MAX_NAMES_PER_REQUEST, Nack, NodeInfo, Outgoing, Received,
    Reply, Result, SessionView, TypeView,
};

/// Distinct unknown type URLs remembered per stream (more are still
/// ignored, just not listed).
const MAX_UNKNOWN_TYPES: usize = 16;
/// The explicit wildcard name.
const WILDCARD: &str = "*";

#[derive(Debug, Default)]
struct TypeState {
    names: Names,
    wildcard: bool,
    /// Whether any request of this type listed names (ends the legacy
    /// "no names means wildcard" rule).
    explicit: bool,
    /// What the client holds: resource name → revision sent.
    sent: HashMap<String, u64>,
    sent_version: String,
    sent_nonce: String,
    pending: bool,
    /// When the oldest response not yet ACKed or NACKed was sent.
    pending_since: Option<SystemTime>,
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
    control_plane: Arc<ControlPlane>,
    limits: Limits,
    node: Option<NodeInfo>,
    /// Per type, by [`ResourceType::index`]; `None` until first requested.
    /// (An array, not a map: a B-tree node for four entries would cost
    /// every stream about 3 KiB.)
    types: [Option<TypeState>; 4],
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
            control_plane: Arc::new(ControlPlane {
                identifier: identifier.into(),
            }),
            limits,
            node: None,
            types: Default::default(),
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
        snapshot: &ResourceSnapshot,
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

        let state = self.types[kind.index()].get_or_insert_with(TypeState::default);
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
            state.pending_since = None;
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
        let added = names.count_missing_from(&state.names);
        let removed = state.names.count_missing_from(&names);
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
            .and_then(|mode| self.respond(kind, snapshot, mode, now))
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
    /// subscribed changed, appeared or (Listener, Cluster) disappeared;
    /// `now` stamps them as awaiting an ACK.
    pub fn on_snapshot(&mut self, snapshot: &ResourceSnapshot, now: SystemTime) -> Vec<Outgoing> {
        ResourceType::ALL
            .into_iter()
            .filter_map(|kind| self.respond(kind, snapshot, Mode::Update, now))
            .collect()
    }

    /// When the oldest response that the client has neither ACKed nor
    /// NACKed was sent, if one is outstanding.
    pub fn oldest_unacked(&self) -> Option<SystemTime> {
        self.types
            .iter()
            .flatten()
            .filter_map(|state| state.pending_since)
            .min()
    }

    /// The session as the status API shows it.
    pub fn view(&self) -> SessionView {
        SessionView {
            node: self.node.clone(),
            types: ResourceType::ALL
                .into_iter()
                .filter_map(|kind| Some((kind, self.types[kind.index()].as_ref()?)))
                .map(|(kind, state)| TypeView {
                    kind,
                    names: state.names.0.clone(),
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
    fn respond(
        &mut self,
        kind: ResourceType,
        snapshot: &ResourceSnapshot,
        mode: Mode,
        now: SystemTime,
    ) -> Option<Outgoing> {
        let state = self.types[kind.index()].as_mut()?;
        let zone = self.node.as_ref().map_or("", |node| node.zone.as_str());
        if mode == Mode::Update && holds_current(state, kind, snapshot, zone) {
            return None;
        }
        let zone = self.node.as_ref().map_or("", |node| node.zone.as_str());
        let view = current_view(state, kind, snapshot, zone);
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
            Mode::Update => changed.iter().filter_map(|r| snapshot.change_time(r)).min(),
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
        state.pending_since.get_or_insert(now);
        state.responses += 1;
        Some(Outgoing {
            kind,
            response: EncodedResponse {
                version_info,
                type_url: kind.type_url_str(),
                nonce,
                control_plane: self.control_plane.clone(),
                resources: carried.iter().map(|r| r.encoded.clone()).collect(),
            },
            changed_at,
        })
    }
}

#[cfg(test)]
mod subscription_tests;
#[cfg(test)]
mod tests;
