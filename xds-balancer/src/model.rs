//! The client's own model of discovery results, apart from the xDS wire
//! types: the xDS client converts into it in one place, the connection pool
//! and the picker only ever see these types.

use std::net::SocketAddr;
use std::sync::Arc;

use tls_reload::SanMatcher;

use crate::routing::Routes;

/// An endpoint (a pod) of the target service, as the control plane
/// describes it.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// IP address and port to connect to.
    pub addr: SocketAddr,
    /// Instance name (the pod name), empty when the control plane gave none.
    pub hostname: String,
    /// Zone of the endpoint's locality, empty when unknown.
    pub zone: String,
    /// The locality's priority: calls go to the lowest priority that has a
    /// ready endpoint (0 unless the control plane sets up failover).
    pub priority: u32,
    /// Whether it may take calls.
    pub health: EndpointHealth,
}

impl Endpoint {
    /// `hostname (addr)`, or just the address when there is no host name.
    pub fn label(&self) -> String {
        label(&self.hostname, self.addr)
    }
}

/// `hostname (addr)`, or `addr` alone.
pub(crate) fn label(hostname: &str, addr: SocketAddr) -> String {
    if hostname.is_empty() {
        addr.to_string()
    } else {
        format!("{hostname} ({addr})")
    }
}

/// What the control plane says about an endpoint's readiness.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndpointHealth {
    /// Ready: takes calls (xDS HEALTHY or UNKNOWN).
    Healthy,
    /// Terminating but still serving: takes no new calls, its in-flight
    /// calls finish (xDS DRAINING).
    Draining,
    /// Not ready: takes no calls (xDS UNHEALTHY, TIMEOUT, DEGRADED).
    NotReady,
}

/// How far the Listener → RouteConfiguration chain of a target is
/// resolved, and then each cluster its routes name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TargetResolution {
    /// Still waiting for a resource, e.g. `listener "greeter"`.
    Waiting(String),
    /// The control plane says a resource does not exist, e.g.
    /// `listener "greeter"`.
    DoesNotExist(String),
    /// The resources exist but cannot be used by this client (the reason).
    Unusable(String),
    /// The routes are known.
    Routed {
        /// The route table.
        routes: Arc<Routes>,
        /// Each cluster of `routes.clusters`, in that order.
        clusters: Vec<Resolution>,
    },
}

impl TargetResolution {
    /// The target as one cluster, as tests of a single-cluster chain see
    /// it: a target-level state as is, the first cluster's otherwise.
    #[cfg(test)]
    pub(crate) fn flat(&self) -> Resolution {
        match self {
            TargetResolution::Waiting(what) => Resolution::Waiting(what.clone()),
            TargetResolution::DoesNotExist(what) => Resolution::DoesNotExist(what.clone()),
            TargetResolution::Unusable(why) => Resolution::Unusable(why.clone()),
            TargetResolution::Routed { clusters, .. } => clusters
                .first()
                .cloned()
                .unwrap_or_else(|| Resolution::Unusable("no clusters".into())),
        }
    }
}

/// How far one cluster (Cluster → ClusterLoadAssignment) is resolved; what
/// one endpoint pool follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resolution {
    /// Still waiting for a resource, e.g. `cluster "greeter"`.
    Waiting(String),
    /// The control plane says a resource does not exist, e.g.
    /// `cluster "greeter"`.
    DoesNotExist(String),
    /// The resources exist but cannot be used by this client (the reason).
    Unusable(String),
    /// Fully resolved.
    Endpoints {
        /// The cluster.
        cluster: String,
        /// Its endpoints: by priority, then in the control plane's order.
        endpoints: Arc<[Endpoint]>,
        /// TLS to them, when the Cluster asks for it.
        tls: Option<Arc<UpstreamTls>>,
        /// How calls are spread over them.
        policy: PickPolicy,
    },
}

/// How a cluster's calls are spread over its ready endpoints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub(crate) enum PickPolicy {
    /// Strict rotation.
    #[default]
    RoundRobin,
    /// Of `choice_count` endpoints drawn at random, the one with the fewest
    /// calls in flight (gRPC A48).
    LeastRequest {
        /// How many to draw, 2 to 10.
        choice_count: u32,
    },
}

/// TLS to a cluster's endpoints, as its Cluster's `transport_socket` says
/// (gRPC A29): certificate provider instances of the bootstrap, and the
/// SAN matchers a server certificate must satisfy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct UpstreamTls {
    /// The provider instance of the client's certificate and key, when the
    /// client presents one.
    pub(crate) identity: Option<String>,
    /// The provider instance of the root CAs.
    pub(crate) roots: String,
    /// A server certificate must have a SAN one of these accepts; an empty
    /// list accepts any certificate that chains to the roots.
    pub(crate) san_matchers: Vec<SanMatcher>,
    /// The server name to send (SNI), when the Cluster sets one.
    pub(crate) sni: Option<String>,
}
