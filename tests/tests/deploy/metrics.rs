//! The control plane's metrics port wired end to end, and its memory sized
//! by the formula docs/deploy.md states.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::checks::selects;
use crate::repo::{Manifest, Object, deployments, pod_of};

/// The pods that run container `name`: Deployment name, pod labels and
/// annotations, pod spec, the container.
type Runner<'a> = (
    &'a str,
    BTreeMap<String, String>,
    BTreeMap<String, String>,
    &'a PodSpec,
    &'a Container,
);

fn runners<'a>(objects: &'a [Manifest], container: &str) -> Vec<Runner<'a>> {
    let mut out = Vec::new();
    for (_, deployment) in deployments(objects) {
        let (name, labels, spec) = pod_of(deployment);
        let annotations = deployment
            .spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.annotations.clone())
            .unwrap_or_default();
        for c in spec.iter().flat_map(|s| &s.containers) {
            if c.name == container {
                out.push((
                    name,
                    labels.clone(),
                    annotations.clone(),
                    spec.expect("spec"),
                    c,
                ));
            }
        }
    }
    out
}

fn env<'a>(container: &'a Container, name: &str) -> Option<&'a str> {
    container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == name)
        .and_then(|e| e.value.as_deref())
}

/// Whether a NetworkPolicy port list (empty: every port) admits `port`,
/// named `name` in the pod.
fn admits(
    ports: Option<&Vec<k8s_openapi::api::networking::v1::NetworkPolicyPort>>,
    port: i32,
    name: &str,
) -> bool {
    ports.is_none_or(|ports| {
        ports.is_empty()
            || ports.iter().any(|p| match &p.port {
                None => true,
                Some(IntOrString::Int(n)) => *n == port,
                Some(IntOrString::String(s)) => s == name,
            })
    })
}

/// The metrics port of container `container`, switched on through `env`
/// (its `--metrics-listen`): a container port named `metrics` with that
/// number; Prometheus scrape annotations on the pod that agree with it; a
/// Service selecting the pod with a port named `metrics` targeting it;
/// every NetworkPolicy selecting the pod admits it; and every
/// ServiceMonitor selects that Service and scrapes that port by name.
pub(crate) fn metrics(objects: &[Manifest], container: &str, env_name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (deployment, labels, annotations, _, c) in runners(objects, container) {
        let label = format!("Deployment/{deployment} container {}", c.name);
        let Some(listen) = env(c, env_name) else {
            out.push(format!("{label}: metrics are off ({env_name} is not set)"));
            continue;
        };
        let Some(port) = listen
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<i32>().ok())
        else {
            out.push(format!("{label}: {env_name}={listen} has no port"));
            continue;
        };
        let declared = c.ports.iter().flatten().find(|p| p.container_port == port);
        if declared.and_then(|p| p.name.as_deref()) != Some("metrics") {
            out.push(format!("{label}: listens for metrics on {port}, but declares no container port {port} named metrics"));
        }
        for (key, expected) in [
            ("prometheus.io/scrape", "true".to_owned()),
            ("prometheus.io/port", port.to_string()),
            ("prometheus.io/path", "/metrics".to_owned()),
        ] {
            if annotations.get(key) != Some(&expected) {
                out.push(format!(
                    "{label}: pod annotation {key} is {:?}, not {expected:?}",
                    annotations.get(key)
                ));
            }
        }
        let mut services = Vec::new();
        for manifest in objects {
            let Object::Service(service) = &manifest.object else {
                continue;
            };
            let spec = service.spec.clone().unwrap_or_default();
            let selector = crate::checks::map_selector(&spec.selector.unwrap_or_default());
            if !selects(&selector, &labels) {
                continue;
            }
            let ok = spec.ports.iter().flatten().any(|p| {
                let target = match &p.target_port {
                    Some(IntOrString::String(name)) => c
                        .ports
                        .iter()
                        .flatten()
                        .find(|cp| cp.name.as_ref() == Some(name))
                        .map(|cp| cp.container_port),
                    Some(IntOrString::Int(n)) => Some(*n),
                    None => Some(p.port),
                };
                p.name.as_deref() == Some("metrics") && target == Some(port)
            });
            if ok {
                services.push(service.metadata.labels.clone().unwrap_or_default());
            }
        }
        if services.is_empty() {
            out.push(format!(
                "{label}: no Service selecting it has a port named metrics targeting {port}"
            ));
        }
        for manifest in objects {
            match &manifest.object {
                Object::NetworkPolicy(policy) => {
                    let spec = policy.spec.clone().unwrap_or_default();
                    let applies = selects(&spec.pod_selector.clone().unwrap_or_default(), &labels)
                        && spec.policy_types.iter().flatten().any(|t| t == "Ingress");
                    let admitted = spec
                        .ingress
                        .iter()
                        .flatten()
                        .any(|rule| admits(rule.ports.as_ref(), port, "metrics"));
                    if applies && !admitted {
                        out.push(format!(
                            "{}: admits no traffic to {label}'s metrics port {port}",
                            manifest.label()
                        ));
                    }
                }
                Object::ServiceMonitor(monitor) => {
                    let selector = monitor
                        .spec
                        .get("selector")
                        .cloned()
                        .and_then(|s| serde_yaml::from_value(s).ok())
                        .unwrap_or_default();
                    if !services.iter().any(|labels| selects(&selector, labels)) {
                        out.push(format!(
                            "{}: selects no Service with {label}'s metrics port",
                            manifest.label()
                        ));
                    }
                    let ports: Vec<&str> = monitor
                        .spec
                        .get("endpoints")
                        .and_then(serde_yaml::Value::as_sequence)
                        .into_iter()
                        .flatten()
                        .filter_map(|e| e.get("port").and_then(serde_yaml::Value::as_str))
                        .collect();
                    if ports != ["metrics"] {
                        out.push(format!(
                            "{}: scrapes ports {ports:?}, not the Service port named metrics",
                            manifest.label()
                        ));
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// The memory formula of docs/deploy.md: `memory = <base> MiB + <per> KiB
/// × subscribers`, for a stated subscriber count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Formula {
    pub(crate) base_mib: u64,
    pub(crate) per_subscriber_kib: u64,
    pub(crate) subscribers: u64,
}

impl Formula {
    /// Reads the formula and the count from `text`: the first
    /// `memory = A MiB + B KiB × subscribers` and the first
    /// `sized for N subscribers`.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let number_after = |marker: &str| -> Result<u64, String> {
            let at = text.find(marker).ok_or_else(|| format!("no {marker:?}"))? + marker.len();
            let digits: String = text[at..]
                .trim_start()
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits
                .parse()
                .map_err(|_| format!("no number after {marker:?}"))
        };
        let base_mib = number_after("memory = ")?;
        let per_subscriber_kib = number_after("MiB + ")?;
        let subscribers = number_after("sized for ")?;
        Ok(Self {
            base_mib,
            per_subscriber_kib,
            subscribers,
        })
    }

    /// Bytes for the stated count.
    pub(crate) fn bytes(&self) -> u64 {
        self.base_mib * 1024 * 1024 + self.subscribers * self.per_subscriber_kib * 1024
    }
}

/// A memory quantity in bytes (binary and decimal suffixes).
pub(crate) fn bytes(quantity: &Quantity) -> Option<u64> {
    let text = quantity.0.as_str();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let scale: u64 = match suffix {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        _ => return None,
    };
    Some(number * scale)
}

/// Container `container`'s memory: requested and limited alike (memory
/// cannot be taken back; a pod using more than it requests is the first
/// evicted under pressure), at least `formula.bytes()`, and its subscriber
/// cap (`env`, else `default`) the count the formula is stated for, so
/// streams are refused before memory runs out.
pub(crate) fn memory(
    objects: &[Manifest],
    container: &str,
    formula: Formula,
    env_name: &str,
    default: u64,
) -> Vec<String> {
    let mut out = Vec::new();
    for (deployment, _, _, _, c) in runners(objects, container) {
        let label = format!("Deployment/{deployment} container {}", c.name);
        let resources = c.resources.clone().unwrap_or_default();
        let limit = resources
            .limits
            .as_ref()
            .and_then(|l| l.get("memory"))
            .and_then(bytes);
        let request = resources
            .requests
            .as_ref()
            .and_then(|l| l.get("memory"))
            .and_then(bytes);
        if limit != request {
            out.push(format!(
                "{label}: memory request {request:?} differs from the limit {limit:?}"
            ));
        }
        if limit.is_none_or(|l| l < formula.bytes()) {
            out.push(format!(
                "{label}: memory limit {limit:?} bytes is below {} MiB + {} x {} KiB = {} bytes",
                formula.base_mib,
                formula.subscribers,
                formula.per_subscriber_kib,
                formula.bytes()
            ));
        }
        let cap = match env(c, env_name) {
            Some(value) => value.parse::<u64>().ok(),
            None => Some(default),
        };
        if cap != Some(formula.subscribers) {
            out.push(format!(
                "{label}: {env_name} is {cap:?}, but the memory is sized for {} subscribers",
                formula.subscribers
            ));
        }
    }
    out
}
