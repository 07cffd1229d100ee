//! The recommended labels (`app.kubernetes.io/*`) on every object, and
//! selectors that cannot reach another application's pods in a shared
//! namespace.
//!
//! Every selector of this project (Deployments, Services,
//! PodDisruptionBudgets, topology spreads, NetworkPolicies' own pods and
//! peers, ServiceMonitors) matches on exactly `name`, `instance` and
//! `component`: `name` is the project's, `instance` tells two
//! installations apart, `component` tells the parts apart. `version` is
//! never in a selector (a Deployment's selector cannot change, its version
//! does). So a selector selects the pods of exactly one Deployment here,
//! and none of the pods another application could run next to them.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use crate::checks::selects;
use crate::repo::{Manifest, Object, deployments, pod_of};

pub(crate) const NAME: &str = "app.kubernetes.io/name";
pub(crate) const INSTANCE: &str = "app.kubernetes.io/instance";
pub(crate) const COMPONENT: &str = "app.kubernetes.io/component";
const PART_OF: &str = "app.kubernetes.io/part-of";
const VERSION: &str = "app.kubernetes.io/version";
const MANAGED_BY: &str = "app.kubernetes.io/managed-by";

/// The keys every selector uses, and only those.
pub(crate) const SELECTOR_KEYS: [&str; 3] = [NAME, INSTANCE, COMPONENT];

/// The metadata of an object of a built-in kind.
fn metadata(object: &Object) -> Option<&ObjectMeta> {
    Some(match object {
        Object::ServiceAccount(o) => &o.metadata,
        Object::Role(o) => &o.metadata,
        Object::RoleBinding(o) => &o.metadata,
        Object::Deployment(o) => &o.metadata,
        Object::Service(o) => &o.metadata,
        Object::NetworkPolicy(o) => &o.metadata,
        Object::PodDisruptionBudget(o) => &o.metadata,
        Object::Namespace(_) | Object::CertManager(_) | Object::ServiceMonitor(_) => return None,
    })
}

/// An object's labels; `None` for a Namespace, which belongs to the team
/// that installs into it.
fn labels_of(object: &Object) -> Option<BTreeMap<String, String>> {
    match object {
        Object::CertManager(o) | Object::ServiceMonitor(o) => Some(o.labels.clone()),
        other => metadata(other).map(|m| m.labels.clone().unwrap_or_default()),
    }
}

/// Problems with one set of labels.
fn missing(labels: &BTreeMap<String, String>, app: &str, version: &str) -> Vec<String> {
    let mut out = Vec::new();
    for key in [NAME, INSTANCE, COMPONENT, PART_OF, VERSION, MANAGED_BY] {
        if labels.get(key).is_none_or(String::is_empty) {
            out.push(format!("has no {key} label"));
        }
    }
    for (key, expected) in [(NAME, app), (PART_OF, app), (VERSION, version)] {
        if let Some(value) = labels.get(key)
            && value != expected
        {
            out.push(format!("{key} is {value:?}, not {expected:?}"));
        }
    }
    out
}

/// Every object but a Namespace, and every pod template, carries the six
/// recommended labels, with `name` and `part-of` the project's name `app`
/// and `version` the workspace's `version`.
pub(crate) fn recommended(objects: &[Manifest], app: &str, version: &str) -> Vec<String> {
    let mut out = Vec::new();
    for manifest in objects {
        if let Some(labels) = labels_of(&manifest.object) {
            out.extend(
                missing(&labels, app, version)
                    .into_iter()
                    .map(|p| format!("{}: {p}", manifest.label())),
            );
        }
    }
    for (manifest, deployment) in deployments(objects) {
        let (_, labels, _) = pod_of(deployment);
        out.extend(
            missing(&labels, app, version)
                .into_iter()
                .map(|p| format!("{} pod template: {p}", manifest.label())),
        );
    }
    out
}

/// Every selector of `objects`, with what it is, as a label selector;
/// `for_services` is true for ServiceMonitors, which select Services.
fn all_selectors(objects: &[Manifest]) -> Vec<(String, LabelSelector, bool)> {
    let mut out = Vec::new();
    let from_map = |labels: &BTreeMap<String, String>| LabelSelector {
        match_labels: Some(labels.clone()),
        ..LabelSelector::default()
    };
    for manifest in objects {
        let label = manifest.label();
        match &manifest.object {
            Object::Deployment(d) => {
                let spec = d.spec.as_ref();
                if let Some(spec) = spec {
                    out.push((format!("{label} selector"), spec.selector.clone(), false));
                }
                let pod = spec.and_then(|s| s.template.spec.as_ref());
                for c in pod
                    .and_then(|p| p.topology_spread_constraints.as_ref())
                    .into_iter()
                    .flatten()
                {
                    if let Some(selector) = &c.label_selector {
                        out.push((
                            format!("{label} {} spread", c.topology_key),
                            selector.clone(),
                            false,
                        ));
                    }
                }
            }
            Object::Service(s) => {
                if let Some(selector) = s.spec.as_ref().and_then(|s| s.selector.as_ref()) {
                    out.push((format!("{label} selector"), from_map(selector), false));
                }
            }
            Object::PodDisruptionBudget(p) => {
                if let Some(selector) = p.spec.as_ref().and_then(|s| s.selector.clone()) {
                    out.push((format!("{label} selector"), selector, false));
                }
            }
            Object::NetworkPolicy(p) => {
                let spec = p.spec.clone().unwrap_or_default();
                out.push((
                    format!("{label} podSelector"),
                    spec.pod_selector.unwrap_or_default(),
                    false,
                ));
                let peers = spec
                    .ingress
                    .iter()
                    .flatten()
                    .flat_map(|r| r.from.iter().flatten())
                    .chain(
                        spec.egress
                            .iter()
                            .flatten()
                            .flat_map(|r| r.to.iter().flatten()),
                    );
                for peer in peers {
                    // Peers in other namespaces (DNS, Prometheus) and the
                    // client role label are not this project's pods.
                    let Some(selector) = &peer.pod_selector else {
                        continue;
                    };
                    let ours = selector
                        .match_labels
                        .iter()
                        .flatten()
                        .any(|(k, _)| k.starts_with("app.kubernetes.io/"));
                    if peer.namespace_selector.is_none() && ours {
                        out.push((format!("{label} peer"), selector.clone(), false));
                    }
                }
            }
            Object::ServiceMonitor(o) => {
                let selector = o
                    .spec
                    .get("selector")
                    .cloned()
                    .and_then(|s| serde_yaml::from_value::<LabelSelector>(s).ok())
                    .unwrap_or_default();
                out.push((format!("{label} selector"), selector, true));
            }
            _ => {}
        }
    }
    out
}

/// Pods another application could run in the same namespace: each of ours
/// with its name, instance or component changed, or with one of them
/// missing, and pods labelled only `app.kubernetes.io/name: <component>`
/// (a generic name any application may use).
fn foreign_pods(objects: &[Manifest]) -> Vec<BTreeMap<String, String>> {
    let mut out = Vec::new();
    for (_, deployment) in deployments(objects) {
        let (name, labels, _) = pod_of(deployment);
        for key in SELECTOR_KEYS {
            let mut changed = labels.clone();
            changed.insert(key.to_owned(), "another-application".to_owned());
            out.push(changed);
            let mut without = labels.clone();
            without.remove(key);
            out.push(without);
        }
        out.push([(NAME.to_owned(), name.to_owned())].into());
    }
    out
}

/// Every selector matches on exactly name, instance and component (plain
/// labels), with the project's name `app`; selects the pods of exactly one
/// Deployment (a ServiceMonitor: exactly one Service); and selects none of
/// [`foreign_pods`].
pub(crate) fn selectors_unique(objects: &[Manifest], app: &str) -> Vec<String> {
    let mut out = Vec::new();
    let foreign = foreign_pods(objects);
    let services: Vec<(String, BTreeMap<String, String>)> = objects
        .iter()
        .filter_map(|m| match &m.object {
            Object::Service(s) => Some((m.label(), s.metadata.labels.clone().unwrap_or_default())),
            _ => None,
        })
        .collect();
    for (what, selector, for_services) in all_selectors(objects) {
        let keys: BTreeSet<&str> = selector
            .match_labels
            .iter()
            .flatten()
            .map(|(k, _)| k.as_str())
            .collect();
        if selector
            .match_expressions
            .as_ref()
            .is_some_and(|e| !e.is_empty())
        {
            out.push(format!(
                "{what}: uses matchExpressions; match on name, instance and component"
            ));
        }
        if keys != BTreeSet::from(SELECTOR_KEYS) {
            out.push(format!(
                "{what}: matches on {keys:?}; it must match on exactly {SELECTOR_KEYS:?}, or it can \
                 select another application's pods (or break when the version changes)"
            ));
        }
        if let Some(name) = selector.match_labels.as_ref().and_then(|m| m.get(NAME))
            && name != app
        {
            out.push(format!(
                "{what}: selects {NAME}={name:?}, not this project's {app:?}"
            ));
        }
        let matched: Vec<String> = if for_services {
            services
                .iter()
                .filter(|(_, labels)| selects(&selector, labels))
                .map(|(label, _)| label.clone())
                .collect()
        } else {
            deployments(objects)
                .map(|(_, d)| pod_of(d))
                .filter(|(_, labels, _)| selects(&selector, labels))
                .map(|(name, _, _)| name.to_owned())
                .collect()
        };
        if matched.len() != 1 {
            let kind = if for_services {
                "Service"
            } else {
                "Deployment's pods"
            };
            out.push(format!(
                "{what}: should select exactly one {kind}, selects {matched:?}"
            ));
        }
        if !for_services {
            for pod in &foreign {
                if selects(&selector, pod) {
                    out.push(format!(
                        "{what}: also selects a pod of another application labelled {pod:?}"
                    ));
                }
            }
        }
    }
    out
}
