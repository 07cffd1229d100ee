//! From definitions to the model: host names resolved to IP addresses, and
//! every service checked against the model's rules.
//!
//! A name is resolved to one address, because one listed endpoint is one
//! server: the first IPv4 address if there is one (`localhost` resolves to
//! `::1` first on many systems, while most servers listen on IPv4), else the
//! first address.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::config::{HostPort, ServiceDef};
use crate::model::{Endpoint, ModelError, Readiness, Service, ServicePort};

/// Time limit for resolving one host name.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors while turning definitions into services.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// A host name did not resolve.
    #[error("service {service}: cannot resolve host {host:?} (of endpoint {address}): {reason}")]
    Lookup {
        /// The service the endpoint belongs to.
        service: String,
        /// The host name.
        host: String,
        /// The endpoint as written.
        address: String,
        /// Why.
        reason: String,
    },
    /// Two services share a name.
    #[error("service {0:?} is defined twice")]
    DuplicateService(String),
    /// One port lists the same address twice (perhaps under two names).
    #[error("service {service} port {port}: endpoints {first} and {second} are both {address}")]
    DuplicateEndpoint {
        /// The service.
        service: String,
        /// Its Service port.
        port: u16,
        /// The address both resolve to.
        address: SocketAddr,
        /// The first endpoint as written.
        first: String,
        /// The second endpoint as written.
        second: String,
    },
    /// The service breaks a rule of the model.
    #[error(transparent)]
    Invalid(#[from] ModelError),
}

impl ResolveError {
    /// Whether trying again later could succeed with the same input.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Lookup { .. })
    }
}

/// Resolves every host name in `defs` and checks each service against the
/// model's rules for `namespace`. Endpoints start [`Readiness::Ready`];
/// the prober decides their real state.
pub(crate) async fn resolve(
    defs: Vec<ServiceDef>,
    namespace: &str,
) -> Result<Vec<Service>, ResolveError> {
    let mut resolved: HashMap<String, IpAddr> = HashMap::new();
    let mut services: Vec<Service> = Vec::with_capacity(defs.len());
    for def in defs {
        if services.iter().any(|s| s.name == def.name) {
            return Err(ResolveError::DuplicateService(def.name));
        }
        let mut ports = Vec::with_capacity(def.ports.len());
        for port in def.ports {
            let mut endpoints: Vec<Endpoint> = Vec::with_capacity(port.endpoints.len());
            let mut written: Vec<&HostPort> = Vec::with_capacity(port.endpoints.len());
            for (i, endpoint) in port.endpoints.iter().enumerate() {
                let ip = match resolved.get(&endpoint.address.host) {
                    Some(ip) => *ip,
                    None => {
                        let ip = lookup(&endpoint.address).await.map_err(|reason| {
                            ResolveError::Lookup {
                                service: def.name.clone(),
                                host: endpoint.address.host.clone(),
                                address: endpoint.address.to_string(),
                                reason,
                            }
                        })?;
                        resolved.insert(endpoint.address.host.clone(), ip);
                        ip
                    }
                };
                let address = SocketAddr::new(ip, endpoint.address.port);
                if let Some(first) = endpoints.iter().position(|e| e.socket_addr() == address) {
                    return Err(ResolveError::DuplicateEndpoint {
                        service: def.name,
                        port: port.port,
                        address,
                        first: written[first].to_string(),
                        second: port.endpoints[i].address.to_string(),
                    });
                }
                written.push(&endpoint.address);
                endpoints.push(Endpoint {
                    address: ip,
                    port: endpoint.address.port,
                    state: Readiness::Ready,
                    zone: endpoint.zone.clone(),
                    instance: endpoint.instance.clone(),
                    detail: None,
                    for_zones: Vec::new(),
                });
            }
            ports.push(ServicePort {
                name: port.name,
                port: port.port,
                endpoints,
            });
        }
        let service = Service {
            name: def.name,
            namespace: namespace.to_owned(),
            ports,
            tls: def.tls,
            policy: def.policy,
        };
        service.validate(namespace)?;
        services.push(service);
    }
    Ok(services)
}

/// One IP address for `address.host`, or why there is none.
async fn lookup(address: &HostPort) -> Result<IpAddr, String> {
    if let Ok(ip) = address.host.parse::<IpAddr>() {
        return Ok(ip);
    }
    let lookup = tokio::net::lookup_host((address.host.as_str(), address.port));
    let addrs: Vec<SocketAddr> = match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
        Err(_) => {
            return Err(format!(
                "no answer within {}",
                humantime::format_duration(RESOLVE_TIMEOUT)
            ));
        }
        Ok(Err(error)) => return Err(error.to_string()),
        Ok(Ok(addrs)) => addrs.collect(),
    };
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .map(SocketAddr::ip)
        .ok_or_else(|| "the name has no addresses".to_owned())
}
