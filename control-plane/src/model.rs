//! The control plane's own model of what it serves: services, their ports,
//! and the endpoints behind each port, each with its [`Readiness`].
//!
//! Sources (static, Kubernetes) convert their inputs into these types; the
//! xDS layer converts them into Envoy resources. Neither protobuf nor
//! Kubernetes types appear here, so each conversion lives in exactly one
//! place per direction.
//!
//! [`Service::normalize`] is the one place where endpoint lists are put in
//! canonical form (sorted, one entry per address and port), so every source
//! gets the "no address twice" rule for free and an update that changes
//! nothing can be recognised as such.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

pub use common::tls::SanMatcher;

/// Longest service name accepted (a DNS label, as Kubernetes requires).
pub const MAX_SERVICE_NAME_LEN: usize = 63;

/// Errors in a service definition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// The name is not a lowercase DNS label (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters).
    #[error(
        "service name {0:?} is not a DNS label (lowercase letters, digits and '-', at most 63 characters, starting and ending with a letter or digit)"
    )]
    InvalidName(String),
    /// The service belongs to a namespace other than the control plane's.
    #[error(
        "service {name} is in namespace {namespace:?}, but this control plane serves {expected:?}"
    )]
    WrongNamespace {
        /// The service.
        name: String,
        /// Its namespace.
        namespace: String,
        /// The namespace served.
        expected: String,
    },
    /// A service needs at least one port.
    #[error("service {0} has no ports")]
    NoPorts(String),
    /// Port 0 is not a port.
    #[error("service {0} has port 0")]
    ZeroPort(String),
    /// Two ports share a number or a name.
    #[error("service {service} lists port {port} twice")]
    DuplicatePort {
        /// The service.
        service: String,
        /// The repeated port number or name.
        port: String,
    },
    /// A port name that clients could not put in a target.
    #[error("service {service} has port name {name:?}, which is not a DNS label")]
    InvalidPortName {
        /// The service.
        service: String,
        /// The offending name.
        name: String,
    },
    /// An endpoint with port 0.
    #[error("service {service} port {port} has endpoint {address} with port 0")]
    ZeroEndpointPort {
        /// The service.
        service: String,
        /// The Service port.
        port: u16,
        /// The endpoint's address.
        address: IpAddr,
    },
}

/// Whether an endpoint takes calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Readiness {
    /// Ready: takes new calls (xDS `HEALTHY`).
    Ready,
    /// Still serving but on its way out (a terminating pod): takes no new
    /// calls, in-flight calls finish (xDS `DRAINING`).
    Draining,
    /// Not ready: takes no calls (xDS `UNHEALTHY`: clients skip it but can
    /// tell how many such endpoints exist).
    NotReady,
}

impl Readiness {
    /// Lower is better: which state wins when one address is listed twice.
    fn rank(self) -> u8 {
        match self {
            Self::Ready => 0,
            Self::Draining => 1,
            Self::NotReady => 2,
        }
    }
}

impl fmt::Display for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ready => "ready",
            Self::Draining => "draining",
            Self::NotReady => "not ready",
        })
    }
}

/// One address clients can dial.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// IP address (IPv4 or IPv6), never a host name: gRPC clients dial it as is.
    pub address: IpAddr,
    /// The port to dial: the Service's targetPort, already resolved.
    pub port: u16,
    /// Whether it takes calls.
    pub state: Readiness,
    /// Zone, used as the xDS locality; `None` when unknown.
    pub zone: Option<String>,
    /// Pod or instance name, for people reading status output.
    pub instance: Option<String>,
    /// Why the endpoint is in its state (for example "health probe:
    /// NOT_SERVING"), for status output.
    pub detail: Option<String>,
    /// Zones whose clients this endpoint should serve (Kubernetes
    /// EndpointSlice hints `forZones`); empty: no hint.
    pub for_zones: Vec<String>,
}

impl Endpoint {
    /// A ready endpoint at `addr` with nothing else known.
    pub fn ready(addr: SocketAddr) -> Self {
        Self {
            address: addr.ip(),
            port: addr.port(),
            state: Readiness::Ready,
            zone: None,
            instance: None,
            detail: None,
            for_zones: Vec::new(),
        }
    }

    /// The address and port together.
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.address, self.port)
    }
}

/// One port of a service and the endpoints serving it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServicePort {
    /// The port's name, if it has one (clients may target `svc:name`).
    pub name: Option<String>,
    /// The Service port clients put in their target (not the targetPort).
    pub port: u16,
    /// Endpoints for this port, each with its own resolved target port.
    pub endpoints: Vec<Endpoint>,
}

/// A service in the control plane's namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Service {
    /// Service name, a DNS label.
    pub name: String,
    /// Namespace of the service.
    pub namespace: String,
    /// Its ports; a service with one port may be targeted without a port.
    pub ports: Vec<ServicePort>,
    /// Whether clients must use TLS to its endpoints, and which server
    /// certificates they accept; `None`: plaintext.
    pub tls: Option<ServiceTls>,
    /// How clients spread calls over its endpoints.
    pub policy: TrafficPolicy,
}

/// How clients pick among a service's endpoints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum LbPolicy {
    /// Strict round robin (the default).
    #[default]
    RoundRobin,
    /// Least request: of two endpoints drawn at random, the one with fewer
    /// calls in flight.
    LeastRequest,
}

impl LbPolicy {
    /// The policy's name as written in annotations and files
    /// (`round_robin`, `least_request`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RoundRobin => "round_robin",
            Self::LeastRequest => "least_request",
        }
    }

    /// The policy named `name` (`round_robin`, `least_request`; `-` may
    /// stand for `_`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name.trim().replace('-', "_").as_str() {
            "round_robin" => Some(Self::RoundRobin),
            "least_request" => Some(Self::LeastRequest),
            _ => None,
        }
    }
}

impl fmt::Display for LbPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A service's traffic policy beyond routes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TrafficPolicy {
    /// How clients pick an endpoint.
    pub lb: LbPolicy,
    /// Keep calls in the caller's zone when it has endpoints there
    /// (Kubernetes `trafficDistribution: PreferClose`): a client in zone Z
    /// gets zone Z's endpoints at priority 0 and the others at priority 1.
    /// Endpoints with zone hints ([`Endpoint::for_zones`]) make a service
    /// zone-aware too.
    pub prefer_close: bool,
}

/// How clients must talk to a service's endpoints when it is marked TLS:
/// a certificate from the CA of their certificate provider, with a SAN
/// that one of these matchers accepts (any, when there are none). Clients
/// present their own certificate when their provider has one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ServiceTls {
    /// The SAN matchers; empty: any certificate from the CA.
    pub subject_alt_names: Vec<SanMatcher>,
}

impl Service {
    /// Checks the rules every source must meet; `namespace` is the one the
    /// control plane serves.
    pub fn validate(&self, namespace: &str) -> Result<(), ModelError> {
        if !is_dns_label(&self.name) {
            return Err(ModelError::InvalidName(self.name.clone()));
        }
        if self.namespace != namespace {
            return Err(ModelError::WrongNamespace {
                name: self.name.clone(),
                namespace: self.namespace.clone(),
                expected: namespace.to_owned(),
            });
        }
        if self.ports.is_empty() {
            return Err(ModelError::NoPorts(self.name.clone()));
        }
        for (i, port) in self.ports.iter().enumerate() {
            if port.port == 0 {
                return Err(ModelError::ZeroPort(self.name.clone()));
            }
            if let Some(name) = &port.name
                && !is_dns_label(name)
            {
                return Err(ModelError::InvalidPortName {
                    service: self.name.clone(),
                    name: name.clone(),
                });
            }
            for other in &self.ports[..i] {
                let clash = if other.port == port.port {
                    Some(port.port.to_string())
                } else if port.name.is_some() && other.name == port.name {
                    port.name.clone()
                } else {
                    None
                };
                if let Some(port) = clash {
                    return Err(ModelError::DuplicatePort {
                        service: self.name.clone(),
                        port,
                    });
                }
            }
            if let Some(endpoint) = port.endpoints.iter().find(|e| e.port == 0) {
                return Err(ModelError::ZeroEndpointPort {
                    service: self.name.clone(),
                    port: port.port,
                    address: endpoint.address,
                });
            }
        }
        Ok(())
    }

    /// Puts the service in canonical form: ports sorted by number, endpoints
    /// sorted by address and port, and an address listed more than once in a
    /// port kept once, in its best state (ready over draining over not
    /// ready).
    pub fn normalize(&mut self) {
        self.ports.sort_by_key(|port| port.port);
        for port in &mut self.ports {
            port.endpoints.sort_by(|a, b| {
                (a.address, a.port)
                    .cmp(&(b.address, b.port))
                    .then_with(|| a.state.rank().cmp(&b.state.rank()))
            });
            port.endpoints
                .dedup_by(|later, kept| later.address == kept.address && later.port == kept.port);
        }
    }

    /// The port clients mean by `selector`: a number or a name; `None` picks
    /// the only port of a single-port service.
    pub fn port(&self, selector: Option<&str>) -> Option<&ServicePort> {
        match selector {
            None if self.ports.len() == 1 => self.ports.first(),
            None => None,
            Some(selector) => match selector.parse::<u16>() {
                Ok(number) => self.ports.iter().find(|p| p.port == number),
                Err(_) => self
                    .ports
                    .iter()
                    .find(|p| p.name.as_deref() == Some(selector)),
            },
        }
    }

    /// Whether clients get per-zone priorities: `prefer_close`, or any
    /// endpoint with zone hints.
    pub fn is_zone_aware(&self) -> bool {
        self.policy.prefer_close
            || self
                .ports
                .iter()
                .flat_map(|p| &p.endpoints)
                .any(|e| !e.for_zones.is_empty())
    }

    /// Endpoint counts over all ports: (ready, draining, not ready).
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut counts = (0, 0, 0);
        for endpoint in self.ports.iter().flat_map(|p| &p.endpoints) {
            match endpoint.state {
                Readiness::Ready => counts.0 += 1,
                Readiness::Draining => counts.1 += 1,
                Readiness::NotReady => counts.2 += 1,
            }
        }
        counts
    }
}

/// Whether `name` is a lowercase RFC 1123 DNS label, as Kubernetes requires
/// of Service and port names.
pub fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_SERVICE_NAME_LEN
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

#[cfg(test)]
mod tests;
