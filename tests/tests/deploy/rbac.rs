//! The RBAC check: the control plane gets exactly the read access its
//! Kubernetes source uses, in its own namespace, and nothing else does.

use std::collections::BTreeSet;

use crate::repo::{Manifest, Object, deployments, pod_of};

/// What the control plane's Kubernetes source reads (see
/// control-plane/src/source/kubernetes/mod.rs): Services, EndpointSlices
/// and GRPCRoutes of its namespace. It lists and watches them; `get` (one
/// object by name) is granted too, as the deployment contract asks: it
/// reads nothing more.
pub(crate) const GRANTS: [(&str, &str); 3] = [
    ("", "services"),
    ("discovery.k8s.io", "endpointslices"),
    ("gateway.networking.k8s.io", "grpcroutes"),
];
const VERBS: [&str; 3] = ["get", "list", "watch"];

/// Exactly one Role, granting exactly get/list/watch on [`GRANTS`], bound
/// to the ServiceAccount the control plane runs as; nothing else.
pub(crate) fn rbac(objects: &[Manifest]) -> Vec<String> {
    let mut out = Vec::new();
    let expected: BTreeSet<(String, String, String)> = GRANTS
        .iter()
        .flat_map(|(group, resource)| {
            VERBS.map(|verb| ((*group).to_owned(), (*resource).to_owned(), verb.to_owned()))
        })
        .collect();
    let roles: Vec<_> = objects
        .iter()
        .filter_map(|m| match &m.object {
            Object::Role(role) => Some((m, role)),
            _ => None,
        })
        .collect();
    if roles.len() != 1 {
        out.push(format!("expected exactly one Role, found {}", roles.len()));
    }
    for (manifest, role) in &roles {
        let mut granted = BTreeSet::new();
        for rule in role.rules.iter().flatten() {
            if rule.resource_names.is_some() || rule.non_resource_urls.is_some() {
                out.push(format!(
                    "{}: rules must not use resourceNames or nonResourceURLs",
                    manifest.label()
                ));
            }
            for group in rule.api_groups.iter().flatten() {
                for resource in rule.resources.iter().flatten() {
                    for verb in &rule.verbs {
                        granted.insert((group.clone(), resource.clone(), verb.clone()));
                    }
                }
            }
        }
        for (group, resource, verb) in granted.difference(&expected) {
            out.push(format!("{}: grants {verb} on {resource} (group {group:?}), which the control plane does not use", manifest.label()));
        }
        for (group, resource, verb) in expected.difference(&granted) {
            out.push(format!("{}: does not grant {verb} on {resource} (group {group:?}), which the control plane needs", manifest.label()));
        }
    }
    let accounts: BTreeSet<&str> = objects
        .iter()
        .filter_map(|m| match &m.object {
            Object::ServiceAccount(sa) => sa.metadata.name.as_deref(),
            _ => None,
        })
        .collect();
    let role_names: BTreeSet<&str> = roles
        .iter()
        .filter_map(|(_, r)| r.metadata.name.as_deref())
        .collect();
    let mut bound = BTreeSet::new();
    for manifest in objects {
        let Object::RoleBinding(binding) = &manifest.object else {
            continue;
        };
        if binding.role_ref.kind != "Role" || !role_names.contains(binding.role_ref.name.as_str()) {
            out.push(format!(
                "{}: roleRef {} {} is not the Role above",
                manifest.label(),
                binding.role_ref.kind,
                binding.role_ref.name
            ));
        }
        for subject in binding.subjects.iter().flatten() {
            if subject.kind != "ServiceAccount" || !accounts.contains(subject.name.as_str()) {
                out.push(format!(
                    "{}: subject {} {} is not a ServiceAccount of this deployment",
                    manifest.label(),
                    subject.kind,
                    subject.name
                ));
            }
            bound.insert(subject.name.clone());
        }
    }
    if bound.is_empty() {
        out.push("no RoleBinding grants the Role to a ServiceAccount".into());
    }
    for (manifest, deployment) in deployments(objects) {
        let (name, _, spec) = pod_of(deployment);
        let account = spec.and_then(|s| s.service_account_name.clone());
        match account {
            Some(account) if !bound.contains(&account) => out.push(format!(
                "{}: runs as ServiceAccount {account}, which has no RoleBinding",
                manifest.label()
            )),
            Some(_) => {}
            None if spec.and_then(|s| s.automount_service_account_token) != Some(false) => {
                out.push(format!(
                    "{}: {name} does not use the API; set automountServiceAccountToken: false",
                    manifest.label()
                ));
            }
            None => {}
        }
    }
    for account in &bound {
        let used = deployments(objects).any(|(_, d)| {
            pod_of(d).2.and_then(|s| s.service_account_name.as_deref()) == Some(account.as_str())
        });
        if !used {
            out.push(format!(
                "ServiceAccount {account} is bound but no Deployment runs as it"
            ));
        }
    }
    out
}
