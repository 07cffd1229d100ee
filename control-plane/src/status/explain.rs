//! Why a Listener name does not resolve, in words a user can act on.
//!
//! xDS can only say that a resource is absent; users mostly get there by
//! naming the container port instead of the Service port, by naming a
//! multi-port Service without a port, or by naming a Service of another
//! namespace. [`explain`] tells those apart for the `ExplainTarget` call
//! of the status API, which our client asks when its Listener does not
//! exist. Foreign xDS clients never see this: for them the resource is
//! simply absent.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use proto::controlplane::v1::TargetProblem;

use crate::model::Service;
use crate::names::Naming;
use crate::store::ServiceEntry;

/// Why a Listener name does not resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Explanation {
    /// Which mistake.
    pub(crate) problem: TargetProblem,
    /// Why, and what to write instead.
    pub(crate) reason: String,
}

/// `None` when `name` names a Listener that exists; otherwise why not.
pub(crate) fn explain(
    naming: &Naming,
    services: &BTreeMap<String, Arc<ServiceEntry>>,
    name: &str,
) -> Option<Explanation> {
    let explained = |problem, reason| Some(Explanation { problem, reason });
    let (host, port) = match name.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (name, None),
    };
    let mut labels = host.split('.');
    let service_name = labels.next().unwrap_or_default();
    if let Some(namespace) = labels.next()
        && namespace != naming.namespace
    {
        return explained(
            TargetProblem::OtherNamespace,
            format!(
                "{name:?} names namespace {namespace:?}, but this control plane serves namespace \
                 {:?}; use the control plane of that namespace, or a Service of this one",
                naming.namespace
            ),
        );
    }
    let Some(entry) = services.get(service_name) else {
        let mut reason = format!(
            "there is no service {service_name:?} in namespace {:?}",
            naming.namespace
        );
        if services.len() <= 20 && !services.is_empty() {
            let known: Vec<&str> = services.keys().map(String::as_str).collect();
            let _ = write!(reason, "; its services: {}", known.join(", "));
        }
        return explained(TargetProblem::UnknownService, reason);
    };
    if naming
        .listener_names(&entry.service)
        .iter()
        .any(|(listener, _)| listener == name)
    {
        return None;
    }
    let service = &entry.service;
    let hosts = [
        service_name.to_owned(),
        format!("{service_name}.{}", naming.namespace),
        format!("{service_name}.{}.svc", naming.namespace),
        format!(
            "{service_name}.{}.svc.{}",
            naming.namespace, naming.cluster_domain
        ),
    ];
    if !hosts.iter().any(|h| h == host) {
        return explained(
            TargetProblem::NotAServiceName,
            format!(
                "{host:?} is not a name of service {service_name}: use one of {}",
                hosts.join(", ")
            ),
        );
    }
    let ports = ports_text(service);
    match port {
        None => explained(
            TargetProblem::PortRequired,
            format!(
                "service {service_name} has {} ports: {ports}; a target must name one, e.g. \
                 {service_name}:{}",
                service.ports.len(),
                service.ports.first().map_or(0, |p| p.port)
            ),
        ),
        Some(port) => {
            let mut reason =
                format!("service {service_name} has no port {port}; its ports: {ports}");
            let target_of: Vec<u16> = port
                .parse::<u16>()
                .ok()
                .map(|wanted| {
                    service
                        .ports
                        .iter()
                        .filter(|p| p.endpoints.iter().any(|e| e.port == wanted))
                        .map(|p| p.port)
                        .collect()
                })
                .unwrap_or_default();
            let problem = if let [service_port, ..] = target_of.as_slice() {
                let _ = write!(
                    reason,
                    ". {port} is the container port (targetPort) of port {service_port}"
                );
                TargetProblem::ContainerPort
            } else {
                TargetProblem::NoSuchPort
            };
            reason.push_str(". A target names the Service port, not the container port");
            explained(problem, reason)
        }
    }
}

/// `80 (grpc), 9090`: each port, with its name when it has one.
fn ports_text(service: &Service) -> String {
    let ports: Vec<String> = service
        .ports
        .iter()
        .map(|p| match &p.name {
            Some(name) => format!("{} ({name})", p.port),
            None => p.port.to_string(),
        })
        .collect();
    if ports.is_empty() {
        "none".to_owned()
    } else {
        ports.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::model::{Endpoint, Readiness, ServicePort};

    fn entry(name: &str, ports: &[(Option<&str>, u16, u16)]) -> (String, Arc<ServiceEntry>) {
        let service = Service {
            name: name.into(),
            namespace: "prod".into(),
            ports: ports
                .iter()
                .map(|(port_name, port, target)| ServicePort {
                    name: port_name.map(Into::into),
                    port: *port,
                    endpoints: vec![Endpoint {
                        address: IpAddr::from([10, 0, 0, 1]),
                        port: *target,
                        state: Readiness::Ready,
                        zone: None,
                        instance: None,
                        detail: None,
                        for_zones: Vec::new(),
                    }],
                })
                .collect(),
            tls: None,
            policy: Default::default(),
        };
        (
            name.to_owned(),
            Arc::new(ServiceEntry::new(service, Vec::new(), 1)),
        )
    }

    fn services() -> BTreeMap<String, Arc<ServiceEntry>> {
        BTreeMap::from([
            entry("greeter", &[(Some("grpc"), 80, 8080)]),
            entry("multi", &[(Some("grpc"), 80, 8080), (None, 9090, 9090)]),
        ])
    }

    #[test]
    fn names_each_mistake() {
        let naming = Naming::new("prod");
        let services = services();
        let explain = |name| explain(&naming, &services, name).map(|e| e.reason);
        let problem = |name| explain_problem(&naming, &services, name);
        for exists in [
            "greeter",
            "greeter:80",
            "greeter:grpc",
            "greeter.prod.svc:80",
            "multi:9090",
        ] {
            assert_eq!(explain(exists), None, "{exists}");
        }
        assert_eq!(
            explain("greeter:8080").as_deref(),
            Some(
                "service greeter has no port 8080; its ports: 80 (grpc). 8080 is the container \
                 port (targetPort) of port 80. A target names the Service port, not the \
                 container port"
            )
        );
        assert_eq!(
            explain("greeter:81").as_deref(),
            Some(
                "service greeter has no port 81; its ports: 80 (grpc). A target names the \
                 Service port, not the container port"
            )
        );
        assert_eq!(
            explain("multi").as_deref(),
            Some(
                "service multi has 2 ports: 80 (grpc), 9090; a target must name one, e.g. multi:80"
            )
        );
        assert_eq!(
            explain("greeter.staging:80").as_deref(),
            Some(
                "\"greeter.staging:80\" names namespace \"staging\", but this control plane \
                 serves namespace \"prod\"; use the control plane of that namespace, or a \
                 Service of this one"
            )
        );
        assert_eq!(
            explain("greeter.prod.svc.example.org:80").as_deref(),
            Some(
                "\"greeter.prod.svc.example.org\" is not a name of service greeter: use one of \
                 greeter, greeter.prod, greeter.prod.svc, greeter.prod.svc.cluster.local"
            )
        );
        assert_eq!(
            explain("nope").as_deref(),
            Some(
                "there is no service \"nope\" in namespace \"prod\"; its services: greeter, multi"
            )
        );
        for (name, expected) in [
            ("greeter:8080", TargetProblem::ContainerPort),
            ("greeter:81", TargetProblem::NoSuchPort),
            ("multi", TargetProblem::PortRequired),
            ("greeter.staging:80", TargetProblem::OtherNamespace),
            (
                "greeter.prod.svc.example.org:80",
                TargetProblem::NotAServiceName,
            ),
            ("nope", TargetProblem::UnknownService),
        ] {
            assert_eq!(problem(name), Some(expected), "{name}");
        }
        assert_eq!(problem("greeter:80"), None);
    }

    fn explain_problem(
        naming: &Naming,
        services: &BTreeMap<String, Arc<ServiceEntry>>,
        name: &str,
    ) -> Option<TargetProblem> {
        explain(naming, services, name).map(|e| e.problem)
    }
}
