//! What an application can watch: the target's endpoints and the state of
//! each one's connection, and the control plane's state
//! ([`crate::Channel::endpoints`]).
//!
//! A new value is published whenever something in it changes; it is meant
//! for logs, metrics and readiness checks, not for per-call decisions.

use std::net::SocketAddr;
use std::time::SystemTime;

use crate::model::EndpointHealth;

/// The target's endpoints as the channel currently sees them.
#[non_exhaustive]
#[derive(Debug, PartialEq, Eq)]
pub struct EndpointSet {
    /// The target (Listener name).
    pub target: String,
    /// How far discovery got.
    pub service: ServiceStatus,
    /// Every endpoint the control plane listed, and endpoints it no longer
    /// lists whose connections are still closing.
    pub endpoints: Vec<EndpointState>,
    /// The control plane connection.
    pub control_plane: ControlPlaneStatus,
}

// `clone_from` reuses the target's buffers: the channel copies a changed
// set into the one it publishes, most of which is unchanged.
impl Clone for EndpointSet {
    fn clone(&self) -> Self {
        Self {
            target: self.target.clone(),
            service: self.service.clone(),
            endpoints: self.endpoints.clone(),
            control_plane: self.control_plane.clone(),
        }
    }

    fn clone_from(&mut self, source: &Self) {
        self.target.clone_from(&source.target);
        self.service.clone_from(&source.service);
        self.endpoints.clone_from(&source.endpoints);
        self.control_plane.clone_from(&source.control_plane);
    }
}

impl EndpointSet {
    /// Endpoints taking calls right now.
    pub fn ready(&self) -> impl Iterator<Item = &EndpointState> {
        self.endpoints
            .iter()
            .filter(|e| e.connection == ConnectionState::Ready)
    }

    /// The endpoint at `addr`, if listed.
    pub fn get(&self, addr: SocketAddr) -> Option<&EndpointState> {
        self.endpoints.iter().find(|e| e.addr == addr)
    }
}

/// How far the Listener → RouteConfiguration → Cluster →
/// ClusterLoadAssignment chain is resolved.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceStatus {
    /// Waiting for the control plane to send a resource (named here).
    Waiting(String),
    /// The control plane says the service does not exist (what is missing).
    DoesNotExist(String),
    /// Resolved, but this client cannot use it (why).
    Unusable(String),
    /// Resolved to this cluster.
    Resolved {
        /// The cluster name; when routes send calls to several clusters,
        /// their names, comma-separated, in the order the routes name them.
        cluster: String,
        /// Whether the Cluster asks for TLS to its endpoints.
        tls: bool,
    },
}

/// One endpoint and its connection.
#[non_exhaustive]
#[derive(Debug, PartialEq, Eq)]
pub struct EndpointState {
    /// Address called.
    pub addr: SocketAddr,
    /// Instance (pod) name from the control plane.
    pub hostname: String,
    /// Locality zone from the control plane.
    pub zone: String,
    /// Locality priority from the control plane: calls go to the lowest
    /// priority with a ready endpoint.
    pub priority: u32,
    /// The cluster it belongs to (a target's routes may name several).
    pub cluster: String,
    /// Readiness as the control plane reports it; `None` once the control
    /// plane no longer lists the endpoint (its connection is closing).
    pub health: Option<EndpointHealth>,
    /// The connection's state.
    pub connection: ConnectionState,
    /// The last connection failure, if any.
    pub last_error: Option<String>,
}

impl Clone for EndpointState {
    fn clone(&self) -> Self {
        Self {
            addr: self.addr,
            hostname: self.hostname.clone(),
            zone: self.zone.clone(),
            priority: self.priority,
            cluster: self.cluster.clone(),
            health: self.health,
            connection: self.connection,
            last_error: self.last_error.clone(),
        }
    }

    /// Into the strings already there (`Vec::clone_from` uses it per row).
    fn clone_from(&mut self, source: &Self) {
        self.addr = source.addr;
        self.hostname.clone_from(&source.hostname);
        self.zone.clone_from(&source.zone);
        self.priority = source.priority;
        self.cluster.clone_from(&source.cluster);
        self.health = source.health;
        self.connection = source.connection;
        self.last_error.clone_from(&source.last_error);
    }
}

/// The state of the connection to one endpoint.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionState {
    /// No connection wanted: the endpoint is not ready or draining.
    Idle,
    /// Connecting (or waiting for the first health report).
    Connecting,
    /// Connected; takes calls.
    Ready,
    /// Connected, but takes no calls: while a lower priority (another zone,
    /// say) has a ready endpoint, or while the endpoint is not ready (the
    /// connection is kept for when it is ready again). Takes calls at once
    /// when that changes.
    Standby,
    /// Connected, but its health service reports NOT_SERVING; takes no
    /// calls.
    NotServing,
    /// The last connection failed or went away (refused, reset, GOAWAY);
    /// takes no calls and is re-probed with backoff.
    Ejected,
    /// Takes no new calls; closes once its in-flight calls finish.
    Closing,
}

/// The state of the stream to the control plane.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlPlaneStatus {
    /// The control plane's address.
    pub uri: String,
    /// Whether the discovery stream is open.
    pub connected: bool,
    /// Since when the control plane cannot be reached, while it cannot.
    pub unreachable_since: Option<SystemTime>,
    /// When the last accepted update arrived.
    pub last_update: Option<SystemTime>,
    /// The last error talking to the control plane.
    pub last_error: Option<String>,
    /// The last rejected (NACKed) update and why.
    pub last_nack: Option<String>,
}

impl ControlPlaneStatus {
    pub(crate) fn new(uri: &str) -> Self {
        Self {
            uri: uri.to_owned(),
            connected: false,
            unreachable_since: None,
            last_update: None,
            last_error: None,
            last_nack: None,
        }
    }
}
