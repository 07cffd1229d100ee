//! The base as the issue describes it, and the client wired to things that
//! exist: the control plane address and the target name a Service and a
//! port of the deployment.

use k8s_openapi::api::core::v1::Service;

use crate::repo::{Manifest, Object, deployments, pod_of};

fn service<'a>(objects: &'a [Manifest], name: &str) -> Option<&'a Service> {
    objects.iter().find_map(|m| match &m.object {
        Object::Service(s) if s.metadata.name.as_deref() == Some(name) => Some(s),
        _ => None,
    })
}

/// Whether Service `name` has a port numbered or named `port`.
fn has_port(objects: &[Manifest], name: &str, port: &str) -> bool {
    service(objects, name)
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.ports.as_ref())
        .is_some_and(|ports| {
            ports
                .iter()
                .any(|p| p.port.to_string() == port || p.name.as_deref() == Some(port))
        })
}

/// Every `CONTROL_PLANE` (http://<service>:<port>) and `TARGET`
/// (<service>:<port>, optionally `xds:///`) set on a container names a
/// Service of the deployment and one of its ports.
pub(crate) fn client_addresses(objects: &[Manifest]) -> Vec<String> {
    let mut out = Vec::new();
    for (manifest, deployment) in deployments(objects) {
        let containers = pod_of(deployment)
            .2
            .map(|s| s.containers.as_slice())
            .unwrap_or_default();
        for env in containers.iter().flat_map(|c| c.env.iter().flatten()) {
            let Some(value) = &env.value else { continue };
            let address = match env.name.as_str() {
                "CONTROL_PLANE" => value.strip_prefix("http://"),
                "TARGET" => Some(value.strip_prefix("xds:///").unwrap_or(value)),
                _ => continue,
            };
            let Some((host, port)) = address.and_then(|a| a.split_once(':')) else {
                out.push(format!(
                    "{}: {}={value} does not name a service and port (http:// for the control plane)",
                    manifest.label(),
                    env.name
                ));
                continue;
            };
            if !has_port(objects, host, port) {
                out.push(format!(
                    "{}: {}={value}, but there is no Service {host} with port {port}",
                    manifest.label(),
                    env.name
                ));
            }
        }
    }
    out
}

/// The numbers and names the issue asks for.
pub(crate) fn contract(objects: &[Manifest]) -> Vec<String> {
    let mut out = Vec::new();
    for (name, replicas) in [
        ("control-plane", 2),
        ("greeter-server", 3),
        ("greeter-client", 1),
    ] {
        let found = deployments(objects)
            .find(|(_, d)| d.metadata.name.as_deref() == Some(name))
            .map(|(_, d)| d.spec.as_ref().and_then(|s| s.replicas));
        match found {
            None => out.push(format!("no Deployment {name}")),
            Some(count) if count != Some(replicas) => {
                out.push(format!(
                    "Deployment {name} has {count:?} replicas, not {replicas}"
                ));
            }
            Some(_) => {}
        }
    }
    for (name, port, target) in [
        ("control-plane", 18000, "grpc"),
        ("greeter-service", 80, "grpc"),
    ] {
        let ports = service(objects, name)
            .and_then(|s| s.spec.as_ref())
            .filter(|s| s.type_.as_deref().is_none_or(|t| t == "ClusterIP"))
            .and_then(|s| s.ports.clone())
            .unwrap_or_default();
        let ok = ports.iter().any(|p| {
            p.port == port
                && p.name.as_deref() == Some("grpc")
                && matches!(&p.target_port, Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(t)) if t == target)
        });
        if !ok {
            out.push(format!(
                "ClusterIP Service {name} should have port {port} named grpc with targetPort {target}"
            ));
        }
    }
    out
}
