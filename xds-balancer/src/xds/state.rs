//! The ADS session as a pure state machine: no I/O, no clocks.
//!
//! It holds, per resource type, the names subscribed, the last accepted
//! version and the last nonce, and a cache of validated resources shared by
//! every target. The targets are the Listener names subscribed: channels of
//! one process add and remove them ([`AdsState::add_target`],
//! [`AdsState::remove_target`]) on one stream, as gRPC's XdsClient does. Fed
//! a `DiscoveryResponse`, it decides ACK or NACK, updates the cache, follows
//! the chain Listener → RouteConfiguration → Cluster → ClusterLoadAssignment
//! of every target (to every cluster its routes name), and returns the requests to send (the ACK/NACK first,
//! then subscription changes of the next types down the chain).
//!
//! Rules, as in gRPC's clients and our control plane's contract:
//! - state of the world: a Listener or Cluster response lists every
//!   subscribed resource that exists, so a subscribed one missing from it
//!   does not exist (never received) or was deleted. Absence is not inferred
//!   from a response that still lists names we no longer subscribe to: it
//!   was sent before the server saw our latest subscription.
//! - RouteConfiguration and ClusterLoadAssignment responses may leave out
//!   resources; that is not deletion.
//! - one invalid resource NACKs the whole response: the version stays at
//!   the last accepted one, the nonce is echoed, `error_detail` says why; the
//!   cache is untouched, so the last good endpoints stay in use.
//! - after a reconnect every non-empty subscription is sent again with the
//!   last accepted version and no nonce; the node goes in the first request
//!   of each stream.
//!
//! Following the chain (the names each type subscribes to, and where each
//! target's chain stands) is in `chain`.

mod chain;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::rpc::Status as RpcStatus;

use super::decode::{self, ClusterInfo, Decoded, Kind, ListenerRoutes, RouteTable};
use crate::model::Endpoint;

/// `google.rpc.Code.INVALID_ARGUMENT`, the code of a NACK's error detail.
const INVALID_ARGUMENT: i32 = 3;

/// Per-type protocol state.
#[derive(Debug, Default, Clone)]
struct TypeState {
    names: BTreeSet<String>,
    version: String,
    nonce: String,
    /// Whether a request for this type went out on the current stream.
    requested: bool,
}

/// The outcome of one response.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Requests to send, in order.
    pub(crate) requests: Vec<DiscoveryRequest>,
    /// Why the response was rejected, when it was.
    pub(crate) nack: Option<String>,
    /// Whether the resolution may have changed: false for a rejected
    /// response, and for endpoints equal to those already held (a
    /// resend, or a change to another cluster's).
    pub(crate) changed: bool,
}

/// One ADS session for the targets of a process, across stream reconnects.
#[derive(Debug)]
pub(crate) struct AdsState {
    node: Node,
    /// The certificate provider instances of the bootstrap: the names a
    /// TLS Cluster may use.
    providers: Arc<BTreeSet<String>>,
    node_sent: bool,
    types: [TypeState; 4],
    listeners: HashMap<String, ListenerRoutes>,
    routes: HashMap<String, RouteTable>,
    clusters: HashMap<String, ClusterInfo>,
    /// Shared with every resolution handed out: an unchanged assignment
    /// keeps its `Arc`, which the pools compare by pointer.
    endpoints: HashMap<String, Arc<[Endpoint]>>,
    /// Listener and Cluster names the control plane says do not exist.
    missing: HashSet<(Kind, String)>,
}

impl AdsState {
    /// A session with no targets yet.
    pub(crate) fn new(node: Node) -> Self {
        Self {
            node,
            providers: Arc::default(),
            node_sent: false,
            types: Default::default(),
            listeners: HashMap::new(),
            routes: HashMap::new(),
            clusters: HashMap::new(),
            endpoints: HashMap::new(),
            missing: HashSet::new(),
        }
    }

    /// The certificate provider instances TLS Clusters may name.
    pub(crate) fn with_certificate_providers(mut self, names: Arc<BTreeSet<String>>) -> Self {
        self.providers = names;
        self
    }

    /// Subscribes to the Listener `name` (a target such as `greeter:80`);
    /// returns the request to send on an open stream (none when it already
    /// was subscribed).
    pub(crate) fn add_target(&mut self, name: &str) -> Vec<DiscoveryRequest> {
        let listeners = &mut self.types[Kind::Listener.index()].names;
        if !listeners.insert(name.to_owned()) {
            return Vec::new();
        }
        vec![self.request(Kind::Listener, None)]
    }

    /// Drops the Listener `name` and whatever only it needed down the chain;
    /// returns the requests to send on an open stream.
    pub(crate) fn remove_target(&mut self, name: &str) -> Vec<DiscoveryRequest> {
        if !self.types[Kind::Listener.index()].names.remove(name) {
            return Vec::new();
        }
        self.listeners.remove(name);
        self.missing.remove(&(Kind::Listener, name.to_owned()));
        let mut requests = vec![self.request(Kind::Listener, None)];
        requests.extend(self.update_subscriptions());
        requests
    }

    /// Whether the control plane says the Listener `name` does not exist.
    pub(crate) fn listener_missing(&self, name: &str) -> bool {
        self.missing.contains(&(Kind::Listener, name.to_owned()))
    }

    /// The targets subscribed, in name order.
    pub(crate) fn targets(&self) -> impl Iterator<Item = &str> {
        self.types[Kind::Listener.index()]
            .names
            .iter()
            .map(String::as_str)
    }

    /// A new stream is open: every subscription, from the Listener down.
    pub(crate) fn on_stream_start(&mut self) -> Vec<DiscoveryRequest> {
        self.node_sent = false;
        let mut requests = Vec::new();
        for kind in Kind::ALL {
            let state = &mut self.types[kind.index()];
            state.nonce.clear();
            state.requested = false;
            if !state.names.is_empty() {
                requests.push(self.request(kind, None));
            }
        }
        requests
    }

    /// Handles one response.
    pub(crate) fn on_response(&mut self, response: DiscoveryResponse) -> Outcome {
        let Some(kind) = Kind::from_type_url(&response.type_url) else {
            let message = format!(
                "type {:?} is not one this client asked for",
                response.type_url
            );
            let request = DiscoveryRequest {
                type_url: response.type_url,
                response_nonce: response.nonce,
                error_detail: Some(RpcStatus {
                    code: INVALID_ARGUMENT,
                    message: message.clone(),
                    details: Vec::new(),
                }),
                node: self.take_node(),
                ..Default::default()
            };
            return Outcome {
                requests: vec![request],
                nack: Some(message),
                changed: false,
            };
        };
        self.types[kind.index()].nonce = response.nonce.clone();

        let mut decoded = Vec::with_capacity(response.resources.len());
        let mut errors = Vec::new();
        let mut seen = HashSet::new();
        for any in &response.resources {
            match decode::decode(kind, any).and_then(|decoded| self.check_providers(decoded)) {
                Ok((name, resource)) => {
                    if !seen.insert(name.clone()) {
                        errors.push(format!("{} {name:?} appears twice", kind.label()));
                    }
                    decoded.push((name, resource));
                }
                Err(error) => errors.push(error.to_string()),
            }
        }
        if !errors.is_empty() {
            let message = errors.join("; ");
            let request = self.request(kind, Some(message.clone()));
            return Outcome {
                requests: vec![request],
                nack: Some(message),
                changed: false,
            };
        }

        self.types[kind.index()].version = response.version_info;
        let subscribed = &self.types[kind.index()].names;
        let stale = seen.iter().any(|name| !subscribed.contains(name));
        let absent: Vec<String> = match kind {
            Kind::Listener | Kind::Cluster if !stale => subscribed
                .iter()
                .filter(|name| !seen.contains(*name))
                .cloned()
                .collect(),
            _ => Vec::new(),
        };
        // Endpoints are the one type that changes all the time: an
        // assignment equal to the one held changes nothing downstream.
        let mut changed = kind != Kind::Endpoints;
        for (name, resource) in decoded {
            if !subscribed.contains(&name) {
                continue;
            }
            self.missing.remove(&(kind, name.clone()));
            match resource {
                Decoded::Listener(r) => drop(self.listeners.insert(name, r)),
                Decoded::Route(r) => drop(self.routes.insert(name, r)),
                Decoded::Cluster(r) => drop(self.clusters.insert(name, r)),
                Decoded::Endpoints(r) => match self.endpoints.get(&name) {
                    Some(held) if **held == *r => {}
                    _ => {
                        changed = true;
                        self.endpoints.insert(name, r.into());
                    }
                },
            }
        }
        for name in absent {
            match kind {
                Kind::Listener => drop(self.listeners.remove(&name)),
                _ => drop(self.clusters.remove(&name)),
            }
            self.missing.insert((kind, name));
        }

        let mut requests = vec![self.request(kind, None)];
        requests.extend(self.update_subscriptions());
        Outcome {
            requests,
            nack: None,
            changed,
        }
    }

    fn request(&mut self, kind: Kind, error: Option<String>) -> DiscoveryRequest {
        let node = self.take_node();
        let state = &mut self.types[kind.index()];
        state.requested = true;
        DiscoveryRequest {
            version_info: state.version.clone(),
            node,
            resource_names: state.names.iter().cloned().collect(),
            type_url: kind.type_url().to_owned(),
            response_nonce: state.nonce.clone(),
            error_detail: error.map(|message| RpcStatus {
                code: INVALID_ARGUMENT,
                message,
                details: Vec::new(),
            }),
            ..Default::default()
        }
    }

    /// Refuses a TLS Cluster that names a certificate provider instance the
    /// bootstrap does not define (as gRPC's clients do).
    fn check_providers(
        &self,
        (name, resource): (String, Decoded),
    ) -> Result<(String, Decoded), decode::DecodeError> {
        if let Decoded::Cluster(ClusterInfo { tls: Some(tls), .. }) = &resource {
            let unknown = tls
                .identity
                .iter()
                .chain(std::iter::once(&tls.roots))
                .find(|instance| !self.providers.contains(*instance));
            if let Some(instance) = unknown {
                let defined = if self.providers.is_empty() {
                    "the bootstrap defines no certificate_providers".to_owned()
                } else {
                    let names: Vec<&str> = self.providers.iter().map(String::as_str).collect();
                    format!(
                        "the bootstrap's certificate_providers: {}",
                        names.join(", ")
                    )
                };
                return Err(decode::DecodeError::Invalid {
                    kind: Kind::Cluster.label(),
                    name,
                    reason: format!(
                        "unrecognized certificate provider instance name: {instance} ({defined})"
                    ),
                });
            }
        }
        Ok((name, resource))
    }

    fn take_node(&mut self) -> Option<Node> {
        if self.node_sent {
            None
        } else {
            self.node_sent = true;
            Some(self.node.clone())
        }
    }
}
