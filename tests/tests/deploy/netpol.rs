//! Checks of NetworkPolicies: every rule's pods exist and its ports are
//! ports those pods listen on (clients dial the pod's targetPort, so a
//! policy on the Service port lets nothing through).

use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::api::networking::v1::{NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::checks::selects;
use crate::repo::{Manifest, Object, deployments, pod_of};

fn pods<'a>(
    objects: &'a [Manifest],
    selector: &LabelSelector,
) -> Vec<(&'a str, Option<&'a PodSpec>)> {
    deployments(objects)
        .map(|(_, d)| pod_of(d))
        .filter(|(_, labels, _)| selects(selector, labels))
        .map(|(name, _, spec)| (name, spec))
        .collect()
}

fn listens_on(spec: Option<&PodSpec>, port: &IntOrString) -> bool {
    spec.into_iter()
        .flat_map(|s| &s.containers)
        .flat_map(|c| c.ports.iter().flatten())
        .any(|p| match port {
            IntOrString::Int(n) => p.container_port == *n,
            IntOrString::String(s) => p.name.as_ref() == Some(s),
        })
}

/// Peers inside this deployment: pod selectors without a namespace
/// selector (those with one, like kube-dns, are outside it).
fn local_peers(peers: &[NetworkPolicyPeer]) -> impl Iterator<Item = &LabelSelector> {
    peers
        .iter()
        .filter(|p| p.namespace_selector.is_none())
        .filter_map(|p| p.pod_selector.as_ref())
}

fn check_ports(
    out: &mut Vec<String>,
    label: &str,
    ports: &[NetworkPolicyPort],
    targets: &[(&str, Option<&PodSpec>)],
) {
    for port in ports {
        let Some(number) = &port.port else { continue };
        for (pod, spec) in targets {
            if !listens_on(*spec, number) {
                out.push(format!(
                    "{label}: allows port {number:?}, on which {pod} does not listen"
                ));
            }
        }
    }
}

/// Problems with the NetworkPolicies of `objects`.
pub(crate) fn network_policies(objects: &[Manifest]) -> Vec<String> {
    let mut out = Vec::new();
    for manifest in objects {
        let Object::NetworkPolicy(policy) = &manifest.object else {
            continue;
        };
        let label = manifest.label();
        let spec = policy.spec.clone().unwrap_or_default();
        let selected = pods(objects, &spec.pod_selector.clone().unwrap_or_default());
        for rule in spec.ingress.iter().flatten() {
            let peers = rule.from.clone().unwrap_or_default();
            for selector in local_peers(&peers) {
                if pods(objects, selector).is_empty() {
                    out.push(format!(
                        "{label}: ingress from {:?} matches no pod",
                        selector.match_labels
                    ));
                }
            }
            check_ports(
                &mut out,
                &label,
                &rule.ports.clone().unwrap_or_default(),
                &selected,
            );
        }
        for rule in spec.egress.iter().flatten() {
            let peers = rule.to.clone().unwrap_or_default();
            for selector in local_peers(&peers) {
                let targets = pods(objects, selector);
                if targets.is_empty() {
                    out.push(format!(
                        "{label}: egress to {:?} matches no pod",
                        selector.match_labels
                    ));
                }
                check_ports(
                    &mut out,
                    &label,
                    &rule.ports.clone().unwrap_or_default(),
                    &targets,
                );
            }
        }
    }
    out
}
