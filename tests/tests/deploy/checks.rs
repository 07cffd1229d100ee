//! Checks of Kubernetes objects against each other. Each takes the objects
//! one kustomization applies and returns the problems found, in words.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec, Probe};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::repo::{Manifest, Object, deployments, pod_of};

/// Whether `selector` selects pods labelled `labels`. An empty selector
/// selects everything, as in Kubernetes.
pub(crate) fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_match = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let expressions_match = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.clone().unwrap_or_default();
        let value = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => !value.is_some_and(|v| values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    labels_match && expressions_match
}

pub(crate) fn map_selector(labels: &BTreeMap<String, String>) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels.clone()),
        ..LabelSelector::default()
    }
}

/// The pods (Deployment name, labels, spec) that `selector` selects.
fn selected<'a>(
    objects: &'a [Manifest],
    selector: &LabelSelector,
) -> Vec<(&'a str, BTreeMap<String, String>, Option<&'a PodSpec>)> {
    deployments(objects)
        .map(|(_, d)| pod_of(d))
        .filter(|(_, labels, _)| selects(selector, labels))
        .collect()
}

/// Every Deployment selects its own pod template; every Service and
/// NetworkPolicy selects at least one pod template.
pub(crate) fn selectors(objects: &[Manifest]) -> Vec<String> {
    let mut out = Vec::new();
    for (manifest, deployment) in deployments(objects) {
        let (_, labels, spec) = pod_of(deployment);
        let Some(dspec) = &deployment.spec else {
            out.push(format!("{}: no spec", manifest.label()));
            continue;
        };
        let selector = &dspec.selector;
        if selector
            .match_labels
            .as_ref()
            .is_none_or(BTreeMap::is_empty)
            && selector
                .match_expressions
                .as_ref()
                .is_none_or(Vec::is_empty)
        {
            out.push(format!("{}: empty selector", manifest.label()));
        } else if !selects(selector, &labels) {
            out.push(format!(
                "{}: selector {:?} does not match its pod template's labels {labels:?}",
                manifest.label(),
                selector.match_labels
            ));
        }
        for constraint in spec
            .and_then(|s| s.topology_spread_constraints.as_ref())
            .into_iter()
            .flatten()
        {
            if !constraint
                .label_selector
                .as_ref()
                .is_some_and(|s| selects(s, &labels))
            {
                out.push(format!(
                    "{}: a topologySpreadConstraint's selector does not match its own pods",
                    manifest.label()
                ));
            }
        }
    }
    for manifest in objects {
        let selector = match &manifest.object {
            Object::Service(service) => {
                match service.spec.as_ref().and_then(|s| s.selector.as_ref()) {
                    Some(labels) if !labels.is_empty() => map_selector(labels),
                    _ => {
                        out.push(format!("{}: no selector", manifest.label()));
                        continue;
                    }
                }
            }
            Object::NetworkPolicy(policy) => policy
                .spec
                .as_ref()
                .and_then(|s| s.pod_selector.clone())
                .unwrap_or_default(),
            _ => continue,
        };
        if selected(objects, &selector).is_empty() {
            out.push(format!(
                "{}: selector {:?} matches no pod template",
                manifest.label(),
                selector.match_labels
            ));
        }
    }
    out
}

/// Container ports of every container of `spec`.
fn container_ports(spec: Option<&PodSpec>) -> Vec<(Option<String>, i32)> {
    spec.map(|s| s.containers.as_slice())
        .unwrap_or_default()
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .map(|p| (p.name.clone(), p.container_port))
        .collect()
}

fn port_exists(ports: &[(Option<String>, i32)], port: &IntOrString) -> bool {
    ports.iter().any(|(name, number)| match port {
        IntOrString::Int(n) => number == n,
        IntOrString::String(s) => name.as_ref() == Some(s),
    })
}

/// Every Service port's targetPort names (or numbers) a containerPort of
/// every pod the Service selects.
pub(crate) fn service_ports(objects: &[Manifest]) -> Vec<String> {
    let mut out = Vec::new();
    for manifest in objects {
        let Object::Service(service) = &manifest.object else {
            continue;
        };
        let spec = service.spec.clone().unwrap_or_default();
        let selector = map_selector(&spec.selector.unwrap_or_default());
        let pods = selected(objects, &selector);
        let ports = spec.ports.unwrap_or_default();
        if ports.is_empty() {
            out.push(format!("{}: no ports", manifest.label()));
        }
        for port in ports {
            let target = port
                .target_port
                .clone()
                .unwrap_or(IntOrString::Int(port.port));
            for (pod, _, pod_spec) in &pods {
                if !port_exists(&container_ports(*pod_spec), &target) {
                    out.push(format!(
                        "{}: port {} has targetPort {target:?}, which no container port of {pod} has",
                        manifest.label(),
                        port.port
                    ));
                }
            }
        }
    }
    out
}

/// Problems with one probe of a container serving on `port`.
fn probe_problem(probe: Option<&Probe>, which: &str, port: i32) -> Option<String> {
    let Some(probe) = probe else {
        return Some(format!("has no {which} probe"));
    };
    if probe.http_get.is_some() || probe.tcp_socket.is_some() || probe.exec.is_some() {
        return Some(format!("{which} probe is not a native grpc probe"));
    }
    match &probe.grpc {
        None => Some(format!("{which} probe has no grpc action")),
        Some(grpc) if grpc.port != port => Some(format!(
            "{which} probe checks port {}, but the container serves on {port}",
            grpc.port
        )),
        Some(_) => None,
    }
}

/// Every container with ports serves gRPC on the one named `grpc`, and
/// its readiness and liveness probes (and startup probe, if any) are native
/// `grpc` probes on that port, or on the port named `health` when there is
/// one (a plaintext health-only port, which a container serving TLS on
/// `grpc` must have: kubelet gRPC probes cannot speak TLS).
pub(crate) fn probes(objects: &[Manifest]) -> Vec<String> {
    let mut out = Vec::new();
    for (manifest, deployment) in deployments(objects) {
        let (_, _, spec) = pod_of(deployment);
        for container in spec.map(|s| s.containers.as_slice()).unwrap_or_default() {
            let label = format!("{} container {}", manifest.label(), container.name);
            let ports = container.ports.clone().unwrap_or_default();
            if ports.is_empty() {
                continue;
            }
            let Some(serving) = ports.iter().find(|p| p.name.as_deref() == Some("grpc")) else {
                out.push(format!("{label}: no container port named grpc"));
                continue;
            };
            let health = ports.iter().find(|p| p.name.as_deref() == Some("health"));
            let serves_tls = container
                .env
                .iter()
                .flatten()
                .any(|var| var.name.ends_with("_TLS_CERT"));
            if serves_tls && health.is_none() {
                out.push(format!(
                    "{label}: serves TLS but has no container port named health for the kubelet's \
                     gRPC probes, which cannot speak TLS"
                ));
            }
            let port = health.unwrap_or(serving).container_port;
            let checks = [
                probe_problem(container.readiness_probe.as_ref(), "readiness", port),
                probe_problem(container.liveness_probe.as_ref(), "liveness", port),
                container
                    .startup_probe
                    .as_ref()
                    .and_then(|p| probe_problem(Some(p), "startup", port)),
            ];
            out.extend(
                checks
                    .into_iter()
                    .flatten()
                    .map(|p| format!("{label}: {p}")),
            );
        }
    }
    out
}

/// Every container runs `image` if not present already, as the non-root
/// `uid`, read-only, without privileges, with requests and limits.
pub(crate) fn containers_hardened(objects: &[Manifest], image: &str, uid: i64) -> Vec<String> {
    let mut out = Vec::new();
    for (manifest, deployment) in deployments(objects) {
        let (_, _, spec) = pod_of(deployment);
        let Some(spec) = spec else { continue };
        let pod = spec.security_context.clone().unwrap_or_default();
        if pod.run_as_non_root != Some(true) {
            out.push(format!(
                "{}: pod securityContext lacks runAsNonRoot: true",
                manifest.label()
            ));
        }
        if pod.run_as_user.is_some_and(|u| u != uid) {
            out.push(format!(
                "{}: runAsUser {:?} is not the image's user {uid}",
                manifest.label(),
                pod.run_as_user
            ));
        }
        for container in &spec.containers {
            out.extend(
                container_problems(container, image)
                    .into_iter()
                    .map(|p| format!("{} container {}: {p}", manifest.label(), container.name)),
            );
        }
    }
    out
}

fn container_problems(container: &Container, image: &str) -> Vec<String> {
    let mut out = Vec::new();
    if container.image.as_deref() != Some(image) {
        out.push(format!(
            "image {:?} is not {image:?} (the Dockerfile's name and the workspace version)",
            container.image
        ));
    }
    if container.image_pull_policy.as_deref() != Some("IfNotPresent") {
        out.push("imagePullPolicy should be IfNotPresent (images loaded into kind/minikube have no registry)".into());
    }
    let security = container.security_context.clone().unwrap_or_default();
    if security.read_only_root_filesystem != Some(true) {
        out.push("no readOnlyRootFilesystem: true".into());
    }
    if security.allow_privilege_escalation != Some(false) {
        out.push("no allowPrivilegeEscalation: false".into());
    }
    let drops = security
        .capabilities
        .and_then(|c| c.drop)
        .unwrap_or_default();
    if !drops.iter().any(|d| d == "ALL") {
        out.push("capabilities do not drop ALL".into());
    }
    let resources = container.resources.clone().unwrap_or_default();
    for (what, map) in [
        ("requests", &resources.requests),
        ("limits", &resources.limits),
    ] {
        for key in ["cpu", "memory"] {
            if !map.as_ref().is_some_and(|m| m.contains_key(key)) {
                out.push(format!("no {key} in resources.{what}"));
            }
        }
    }
    out
}

/// cert-manager wiring: every Certificate's `issuerRef` names an Issuer
/// applied with it, a CA Issuer's Secret is some Certificate's, and every
/// Secret a pod mounts is issued by a Certificate here.
pub(crate) fn certificates(objects: &[Manifest]) -> Vec<String> {
    let mut out = Vec::new();
    let mut issuers = Vec::new();
    let mut secrets = Vec::new();
    for manifest in objects {
        if let Object::CertManager(o) = &manifest.object {
            match o.kind.as_str() {
                "Issuer" => issuers.push((manifest, o)),
                _ => secrets.push(
                    o.spec
                        .get("secretName")
                        .and_then(serde_yaml::Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                ),
            }
        }
    }
    for manifest in objects {
        let Object::CertManager(o) = &manifest.object else {
            continue;
        };
        if o.kind == "Certificate" {
            let issuer = o
                .spec
                .get("issuerRef")
                .and_then(|r| r.get("name"))
                .and_then(serde_yaml::Value::as_str)
                .unwrap_or_default();
            if !issuers
                .iter()
                .any(|(_, i)| i.name.as_deref() == Some(issuer))
            {
                out.push(format!(
                    "{}: issuerRef {issuer:?} names no Issuer here",
                    manifest.label()
                ));
            }
        }
    }
    for (manifest, issuer) in &issuers {
        if let Some(secret) = issuer
            .spec
            .get("ca")
            .and_then(|ca| ca.get("secretName"))
            .and_then(serde_yaml::Value::as_str)
            && !secrets.iter().any(|s| s == secret)
        {
            out.push(format!(
                "{}: CA Secret {secret:?} is issued by no Certificate here",
                manifest.label()
            ));
        }
    }
    for (manifest, deployment) in deployments(objects) {
        let (_, _, spec) = pod_of(deployment);
        for volume in spec.and_then(|s| s.volumes.as_ref()).into_iter().flatten() {
            let Some(secret) = volume.secret.as_ref().and_then(|s| s.secret_name.as_ref()) else {
                continue;
            };
            if !secrets.contains(secret) {
                out.push(format!(
                    "{}: volume {} mounts Secret {secret:?}, which no Certificate here issues",
                    manifest.label(),
                    volume.name
                ));
            }
        }
    }
    out
}
