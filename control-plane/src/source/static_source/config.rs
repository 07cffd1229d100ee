//! The `--static-file` format, and the definitions both it and `--static`
//! produce before host names are resolved.
//!
//! Parsing is strict: unknown fields, a service listed twice, and a service
//! that mixes the short and the long form are errors, so a typo never goes
//! unnoticed. serde_yaml reads YAML and JSON alike; its errors name the
//! field path, line and column.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};

use super::args::DEFAULT_SERVICE_PORT;
use super::routes::{self, RouteDoc, RouteDocError};
use crate::model::{LbPolicy, SanMatcher, ServiceTls, TrafficPolicy};
use crate::routes::TrafficRoute;

/// Errors in a static file's content.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not YAML or JSON, or not of the expected shape.
    #[error("{0}")]
    Syntax(#[from] serde_yaml::Error),
    /// Nothing but white space or comments.
    #[error("the file is empty (write `services: []` to serve no services)")]
    Empty,
    /// Two services share a name.
    #[error("service {0:?} is defined twice")]
    DuplicateService(String),
    /// A service has both `ports` and the short form's `port` / `endpoints`.
    #[error(
        "service {0:?} mixes `ports` with the short form's `port` / `endpoints`; use one or the other"
    )]
    MixedForms(String),
    /// `lb_policy` names no policy.
    #[error("service {service:?}: lb_policy {value:?} is neither round_robin nor least_request")]
    LbPolicy {
        /// The service.
        service: String,
        /// The value given.
        value: String,
    },
    /// `traffic_distribution` is not a known value.
    #[error(
        "service {service:?}: traffic_distribution {value:?} is not PreferClose (nor its newer name PreferSameZone)"
    )]
    TrafficDistribution {
        /// The service.
        service: String,
        /// The value given.
        value: String,
    },
    /// The `routes:` section is wrong.
    #[error(transparent)]
    Route(#[from] RouteDocError),
}

/// Errors in a `host:port` text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a <host>:<port> address: {reason}")]
pub struct AddressError {
    /// The text given.
    pub text: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// A host (an IP address or a name still to resolve) and a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct HostPort {
    /// IP address or DNS name, without IPv6 brackets.
    pub(crate) host: String,
    /// The port to dial.
    pub(crate) port: u16,
}

impl FromStr for HostPort {
    type Err = AddressError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = |reason| AddressError {
            text: text.to_owned(),
            reason,
        };
        if let Ok(addr) = text.parse::<SocketAddr>() {
            if addr.port() == 0 {
                return Err(error("port 0 cannot be dialled"));
            }
            return Ok(Self {
                host: addr.ip().to_string(),
                port: addr.port(),
            });
        }
        let (host, port) = text
            .rsplit_once(':')
            .ok_or_else(|| error("the port is missing"))?;
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|port| *port != 0)
            .ok_or_else(|| error("the port must be a number from 1 to 65535"))?;
        if host.is_empty() {
            return Err(error("the host is missing"));
        }
        if host.contains(':') || host.starts_with('[') {
            return Err(error("write IPv6 addresses in brackets, as in [::1]:8080"));
        }
        let name_chars = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
        if !host.chars().all(name_chars) {
            return Err(error("the host is neither an IP address nor a DNS name"));
        }
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl<'de> Deserialize<'de> for HostPort {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
}

/// A service as defined, before host names are resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServiceDef {
    pub(crate) name: String,
    pub(crate) ports: Vec<PortDef>,
    /// `tls:` of the file: clients (and probes) must use TLS.
    pub(crate) tls: Option<ServiceTls>,
    /// `lb_policy:` and `traffic_distribution:` of the file.
    pub(crate) policy: TrafficPolicy,
}

/// `tls:` of a service in the file: `{subject_alt_names: [...]}`, each SAN
/// a string (exact) or `{exact: ...}` / `{prefix: ...}`; an empty list (or
/// `tls: {}`) accepts any certificate from the clients' CA.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsDoc {
    #[serde(default)]
    subject_alt_names: Vec<SanDoc>,
}

/// One SAN matcher of a [`TlsDoc`].
#[derive(Deserialize)]
#[serde(untagged)]
enum SanDoc {
    Exact(String),
    Matcher(SanMatcherDoc),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
enum SanMatcherDoc {
    Exact(String),
    Prefix(String),
}

impl From<SanDoc> for SanMatcher {
    fn from(doc: SanDoc) -> Self {
        match doc {
            SanDoc::Exact(value) | SanDoc::Matcher(SanMatcherDoc::Exact(value)) => {
                SanMatcher::Exact(value)
            }
            SanDoc::Matcher(SanMatcherDoc::Prefix(prefix)) => SanMatcher::Prefix(prefix),
        }
    }
}

/// One port of a [`ServiceDef`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PortDef {
    /// Optional port name (clients may target `svc:name`).
    #[serde(default)]
    pub(crate) name: Option<String>,
    /// The Service port clients put in their target.
    pub(crate) port: u16,
    /// Where the port is served.
    #[serde(default)]
    pub(crate) endpoints: Vec<EndpointDef>,
}

/// One endpoint of a [`PortDef`]: in a file, either `"host:port"` or a map
/// with `address` and the optional `zone` and `instance`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EndpointDef {
    pub(crate) address: HostPort,
    pub(crate) zone: Option<String>,
    pub(crate) instance: Option<String>,
}

impl EndpointDef {
    /// An endpoint known by its address only.
    pub(crate) fn at(address: HostPort) -> Self {
        Self {
            address,
            zone: None,
            instance: None,
        }
    }
}

/// The long form of an endpoint.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointMap {
    address: HostPort,
    #[serde(default)]
    zone: Option<String>,
    #[serde(default)]
    instance: Option<String>,
}

impl<'de> Deserialize<'de> for EndpointDef {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EndpointVisitor;

        impl<'de> Visitor<'de> for EndpointVisitor {
            type Value = EndpointDef;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"host:port\" or a map with address, zone and instance")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<EndpointDef, E> {
                text.parse().map(EndpointDef::at).map_err(E::custom)
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<EndpointDef, A::Error> {
                let long = EndpointMap::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(EndpointDef {
                    address: long.address,
                    zone: long.zone,
                    instance: long.instance,
                })
            }
        }

        deserializer.deserialize_any(EndpointVisitor)
    }
}

/// The whole file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    services: Vec<ServiceDoc>,
    #[serde(default)]
    routes: Vec<RouteDoc>,
}

/// What a file defines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileContent {
    pub(crate) services: Vec<ServiceDef>,
    pub(crate) routes: Vec<TrafficRoute>,
}

/// A service in the file: `ports: [...]`, or the short form for one port
/// (`port`, default 80, and `endpoints`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceDoc {
    name: String,
    #[serde(default)]
    ports: Option<Vec<PortDef>>,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    endpoints: Option<Vec<EndpointDef>>,
    #[serde(default)]
    tls: Option<TlsDoc>,
    /// `round_robin` (default) or `least_request`.
    #[serde(default)]
    lb_policy: Option<String>,
    /// `PreferClose`: keep calls in the client's zone.
    #[serde(default)]
    traffic_distribution: Option<String>,
}

impl ServiceDoc {
    fn into_def(self) -> Result<ServiceDef, ConfigError> {
        let ports = match (self.ports, self.port, self.endpoints) {
            (Some(ports), None, None) => ports,
            (Some(_), _, _) => return Err(ConfigError::MixedForms(self.name)),
            (None, port, endpoints) => vec![PortDef {
                name: None,
                port: port.unwrap_or(DEFAULT_SERVICE_PORT),
                endpoints: endpoints.unwrap_or_default(),
            }],
        };
        let lb = match self.lb_policy.as_deref() {
            None => LbPolicy::default(),
            Some(value) => LbPolicy::from_name(value).ok_or_else(|| ConfigError::LbPolicy {
                service: self.name.clone(),
                value: value.to_owned(),
            })?,
        };
        let prefer_close = match self.traffic_distribution.as_deref() {
            None => false,
            Some("PreferClose" | "PreferSameZone") => true,
            Some(value) => {
                return Err(ConfigError::TrafficDistribution {
                    service: self.name,
                    value: value.to_owned(),
                });
            }
        };
        Ok(ServiceDef {
            policy: TrafficPolicy { lb, prefer_close },
            name: self.name,
            ports,
            tls: self.tls.map(|tls| ServiceTls {
                subject_alt_names: tls.subject_alt_names.into_iter().map(Into::into).collect(),
            }),
        })
    }
}

/// Parses a static file's text (YAML or JSON): its services.
#[cfg(test)]
pub(crate) fn parse(text: &str) -> Result<Vec<ServiceDef>, ConfigError> {
    parse_file(text).map(|content| content.services)
}

/// Parses a static file's text (YAML or JSON): services and routes.
pub(crate) fn parse_file(text: &str) -> Result<FileContent, ConfigError> {
    if text.trim().is_empty() {
        return Err(ConfigError::Empty);
    }
    let doc: Option<FileDoc> = serde_yaml::from_str(text)?;
    let doc = doc.ok_or(ConfigError::Empty)?;
    let mut services: Vec<ServiceDef> = Vec::with_capacity(doc.services.len());
    for service in doc.services {
        if services.iter().any(|s| s.name == service.name) {
            return Err(ConfigError::DuplicateService(service.name));
        }
        services.push(service.into_def()?);
    }
    let routes = routes::convert(doc.routes)?;
    Ok(FileContent { services, routes })
}
