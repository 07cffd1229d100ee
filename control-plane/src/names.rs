//! Resource names.
//!
//! Clients ask for a Listener by the name in their target (`xds:///<name>`),
//! in any of the forms Kubernetes DNS would accept for a Service `svc` in
//! namespace `ns`, each optionally followed by `:<port number>` or
//! `:<port name>`:
//!
//! ```text
//! svc    svc.ns    svc.ns.svc    svc.ns.svc.<cluster domain>
//! ```
//!
//! Without a port, the Service must have exactly one. Every other resource
//! (RouteConfiguration, Cluster, ClusterLoadAssignment) is named canonically
//! after the Service port, `svc.ns.svc.<cluster domain>:<port number>`, so
//! all the Listener aliases of one port share them.
//!
//! A Service name is a DNS label (no dots, no colons), so the service a name
//! belongs to is always the text before its first `.` or `:`.

use crate::model::Service;

/// Default Kubernetes cluster domain.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";

/// Default certificate provider instance named in TLS Clusters.
pub const DEFAULT_TLS_PROVIDER_INSTANCE: &str = "default";

/// Naming context: the namespace served, the cluster domain, and the
/// certificate provider instance TLS Clusters refer to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Naming {
    /// Namespace whose services are served.
    pub namespace: String,
    /// Cluster DNS domain, `cluster.local` unless configured.
    pub cluster_domain: String,
    /// The clients' bootstrap `certificate_providers` instance that TLS
    /// Clusters name for both the identity and the CA.
    pub tls_provider_instance: String,
}

impl Naming {
    /// Naming for `namespace` with the default cluster domain.
    pub fn new(namespace: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            cluster_domain: DEFAULT_CLUSTER_DOMAIN.to_owned(),
            tls_provider_instance: DEFAULT_TLS_PROVIDER_INSTANCE.to_owned(),
        }
    }

    /// Canonical name of the Cluster, RouteConfiguration and
    /// ClusterLoadAssignment of `service` port `port`.
    pub fn cluster_name(&self, service: &str, port: u16) -> String {
        format!(
            "{service}.{}.svc.{}:{port}",
            self.namespace, self.cluster_domain
        )
    }

    /// Every Listener name that refers to a port of `service`, each with the
    /// Service port number it means.
    pub fn listener_names(&self, service: &Service) -> Vec<(String, u16)> {
        let name = &service.name;
        let hosts = [
            name.clone(),
            format!("{name}.{}", self.namespace),
            format!("{name}.{}.svc", self.namespace),
            format!("{name}.{}.svc.{}", self.namespace, self.cluster_domain),
        ];
        let mut names = Vec::new();
        for host in &hosts {
            if let [only] = service.ports.as_slice() {
                names.push((host.clone(), only.port));
            }
            for port in &service.ports {
                names.push((format!("{host}:{}", port.port), port.port));
                if let Some(port_name) = &port.name {
                    names.push((format!("{host}:{port_name}"), port.port));
                }
            }
        }
        names
    }
}

/// The service a resource name belongs to (the text before its first `.`
/// or `:`), or `None` for an empty name.
pub fn service_of(name: &str) -> Option<&str> {
    let service = name.split(['.', ':']).next().unwrap_or_default();
    (!service.is_empty()).then_some(service)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ServicePort;

    fn service(ports: &[(Option<&str>, u16)]) -> Service {
        Service {
            name: "greeter".into(),
            namespace: "prod".into(),
            ports: ports
                .iter()
                .map(|(name, port)| ServicePort {
                    name: name.map(Into::into),
                    port: *port,
                    endpoints: vec![],
                })
                .collect(),
            tls: None,
            policy: Default::default(),
        }
    }

    #[test]
    fn single_port_service_has_every_alias() {
        let naming = Naming::new("prod");
        let names: Vec<_> = naming
            .listener_names(&service(&[(Some("grpc"), 80)]))
            .into_iter()
            .map(|(name, port)| {
                assert_eq!(port, 80);
                name
            })
            .collect();
        for expected in [
            "greeter",
            "greeter:80",
            "greeter:grpc",
            "greeter.prod",
            "greeter.prod:grpc",
            "greeter.prod.svc:80",
            "greeter.prod.svc.cluster.local",
            "greeter.prod.svc.cluster.local:grpc",
        ] {
            assert!(names.iter().any(|n| n == expected), "missing {expected}");
        }
        assert_eq!(names.len(), 12);
    }

    #[test]
    fn multi_port_service_needs_a_port() {
        let naming = Naming::new("prod");
        let names = naming.listener_names(&service(&[(None, 80), (Some("admin"), 9000)]));
        assert!(!names.iter().any(|(n, _)| n == "greeter"));
        assert!(names.contains(&("greeter:admin".to_owned(), 9000)));
        assert!(names.contains(&("greeter.prod:80".to_owned(), 80)));
        assert_eq!(names.len(), 4 * 3);
    }

    #[test]
    fn canonical_names_and_owner() {
        let naming = Naming::new("prod");
        assert_eq!(
            naming.cluster_name("greeter", 80),
            "greeter.prod.svc.cluster.local:80"
        );
        assert_eq!(
            service_of("greeter.prod.svc.cluster.local:80"),
            Some("greeter")
        );
        assert_eq!(service_of("greeter:grpc"), Some("greeter"));
        assert_eq!(service_of("greeter"), Some("greeter"));
        assert_eq!(service_of(""), None);
        assert_eq!(service_of(":80"), None);
    }
}
