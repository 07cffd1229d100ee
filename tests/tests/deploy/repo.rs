//! Reading the repository: its files, and manifests into k8s-openapi types
//! (Kubernetes 1.33), refusing fields those types do not know.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, PodSpec, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_yaml::Value;

/// The repository root.
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is one level below the root")
        .to_path_buf()
}

/// Reads `relative` (to the root).
pub(crate) fn read(relative: &str) -> String {
    let path = root().join(relative);
    fs::read_to_string(&path).unwrap_or_else(|error| panic!("failed to read {relative}: {error}"))
}

/// The kinds the deployment may contain.
#[derive(Debug, Clone)]
#[allow(
    clippy::large_enum_variant,
    reason = "a few dozen objects per test; boxing would only add noise"
)]
pub(crate) enum Object {
    ServiceAccount(ServiceAccount),
    Role(Role),
    RoleBinding(RoleBinding),
    Deployment(Deployment),
    Service(Service),
    NetworkPolicy(NetworkPolicy),
    Namespace(Namespace),
    PodDisruptionBudget(PodDisruptionBudget),
    /// A cert-manager `Issuer` or `Certificate` (`cert-manager.io/v1`).
    CertManager(CustomObject),
    /// A Prometheus Operator `ServiceMonitor` (`monitoring.coreos.com/v1`).
    ServiceMonitor(CustomObject),
}

/// An object of a custom resource, kept as YAML: its kind, name, labels
/// and spec.
#[derive(Debug, Clone)]
pub(crate) struct CustomObject {
    pub(crate) kind: String,
    pub(crate) name: Option<String>,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) spec: Value,
}

/// One object and where it came from.
#[derive(Debug, Clone)]
pub(crate) struct Manifest {
    /// `path#document` (path relative to the root; documents from 1).
    pub(crate) origin: String,
    pub(crate) object: Object,
}

impl Manifest {
    /// `Kind/name (origin)`, for messages.
    pub(crate) fn label(&self) -> String {
        let (kind, name) = match &self.object {
            Object::ServiceAccount(o) => ("ServiceAccount", &o.metadata.name),
            Object::Role(o) => ("Role", &o.metadata.name),
            Object::RoleBinding(o) => ("RoleBinding", &o.metadata.name),
            Object::Deployment(o) => ("Deployment", &o.metadata.name),
            Object::Service(o) => ("Service", &o.metadata.name),
            Object::NetworkPolicy(o) => ("NetworkPolicy", &o.metadata.name),
            Object::Namespace(o) => ("Namespace", &o.metadata.name),
            Object::PodDisruptionBudget(o) => ("PodDisruptionBudget", &o.metadata.name),
            Object::CertManager(o) | Object::ServiceMonitor(o) => (o.kind.as_str(), &o.name),
        };
        format!(
            "{kind}/{} ({})",
            name.as_deref().unwrap_or("?"),
            self.origin
        )
    }
}

/// The Deployments of `objects`, with their pod specs.
pub(crate) fn deployments(objects: &[Manifest]) -> impl Iterator<Item = (&Manifest, &Deployment)> {
    objects.iter().filter_map(|m| match &m.object {
        Object::Deployment(d) => Some((m, d)),
        _ => None,
    })
}

/// A Deployment's name, pod labels and pod spec (empty when missing).
pub(crate) fn pod_of(
    deployment: &Deployment,
) -> (&str, BTreeMap<String, String>, Option<&PodSpec>) {
    let name = deployment.metadata.name.as_deref().unwrap_or("?");
    let template = deployment.spec.as_ref().map(|s| &s.template);
    let labels = template
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    (name, labels, template.and_then(|t| t.spec.as_ref()))
}

/// `value` read as a `T`, refusing any field `T` does not know.
pub(crate) fn typed<T: DeserializeOwned + serde::Serialize>(
    value: Value,
    origin: &str,
) -> Result<T, String> {
    let object: T = serde_yaml::from_value(value.clone())
        .map_err(|error| format!("{origin}: not a valid object of its kind: {error}"))?;
    // k8s-openapi skips fields it does not know; a field that does not come
    // back when the object is written out again was misspelled or misplaced.
    let again = serde_yaml::to_value(&object).expect("k8s-openapi objects serialise");
    let mut unknown = Vec::new();
    unknown_fields(&value, &again, "", &mut unknown);
    if unknown.is_empty() {
        Ok(object)
    } else {
        Err(format!(
            "{origin}: fields unknown to Kubernetes 1.33: {}",
            unknown.join(", ")
        ))
    }
}

/// Paths of the mapping keys of `original` that `parsed` lacks.
fn unknown_fields(original: &Value, parsed: &Value, path: &str, out: &mut Vec<String>) {
    match (original, parsed) {
        (Value::Mapping(a), Value::Mapping(b)) => {
            for (key, value) in a {
                let name = key.as_str().unwrap_or("?");
                let here = format!("{path}.{name}");
                match b.get(key) {
                    Some(other) => unknown_fields(value, other, &here, out),
                    None if value.is_null() => {}
                    None => out.push(here),
                }
            }
        }
        (Value::Sequence(a), Value::Sequence(b)) => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                unknown_fields(x, y, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Parses every YAML document of `text` (from file `path`).
pub(crate) fn parse_manifests(path: &str, text: &str) -> Result<Vec<Manifest>, String> {
    let mut objects = Vec::new();
    for (i, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let origin = format!("{path}#{}", i + 1);
        let value =
            Value::deserialize(document).map_err(|error| format!("{origin}: bad YAML: {error}"))?;
        if value.is_null() {
            continue;
        }
        let kind = value
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let object = match kind {
            "ServiceAccount" => Object::ServiceAccount(typed(value, &origin)?),
            "Role" => Object::Role(typed(value, &origin)?),
            "RoleBinding" => Object::RoleBinding(typed(value, &origin)?),
            "Deployment" => Object::Deployment(typed(value, &origin)?),
            "Service" => Object::Service(typed(value, &origin)?),
            "NetworkPolicy" => Object::NetworkPolicy(typed(value, &origin)?),
            "Namespace" => Object::Namespace(typed(value, &origin)?),
            "PodDisruptionBudget" => Object::PodDisruptionBudget(typed(value, &origin)?),
            "Issuer" | "Certificate" => cert_manager(kind, &value, &origin)?,
            "ServiceMonitor" => service_monitor(&value, &origin)?,
            "ClusterRole" | "ClusterRoleBinding" => {
                return Err(format!(
                    "{origin}: {kind} grants rights in every namespace; the control plane needs \
                     only a Role in its own"
                ));
            }
            other => {
                return Err(format!(
                    "{origin}: kind {other:?} is not one these checks know (tests/tests/deploy/repo.rs)"
                ));
            }
        };
        objects.push(Manifest { origin, object });
    }
    Ok(objects)
}

/// A cert-manager object: `cert-manager.io/v1`, a name, a spec; a
/// `Certificate` names its Secret and an `Issuer` to sign it.
fn cert_manager(kind: &str, value: &Value, origin: &str) -> Result<Object, String> {
    let custom = custom(kind, "cert-manager.io/v1", value, origin)?;
    if kind == "Certificate" {
        for field in ["secretName", "issuerRef"] {
            if custom.spec.get(field).is_none() {
                return Err(format!("{origin}: Certificate without spec.{field}"));
            }
        }
    }
    Ok(Object::CertManager(custom))
}

/// A ServiceMonitor: `monitoring.coreos.com/v1`, with a selector and at
/// least one endpoint (its schema is checked against the real CRD by the
/// API server tests).
fn service_monitor(value: &Value, origin: &str) -> Result<Object, String> {
    let custom = custom("ServiceMonitor", "monitoring.coreos.com/v1", value, origin)?;
    for field in ["selector", "endpoints"] {
        if custom.spec.get(field).is_none() {
            return Err(format!("{origin}: ServiceMonitor without spec.{field}"));
        }
    }
    Ok(Object::ServiceMonitor(custom))
}

/// An object of a custom resource of `api_version`: a name, a spec, and
/// only metadata fields these checks know.
fn custom(
    kind: &str,
    api_version: &str,
    value: &Value,
    origin: &str,
) -> Result<CustomObject, String> {
    if value.get("apiVersion").and_then(Value::as_str) != Some(api_version) {
        return Err(format!("{origin}: a {kind} must be {api_version}"));
    }
    let metadata = value.get("metadata").cloned().unwrap_or_default();
    let known: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta =
        typed(metadata, &format!("{origin} metadata"))?;
    let spec = value
        .get("spec")
        .cloned()
        .ok_or_else(|| format!("{origin}: {kind} without a spec"))?;
    Ok(CustomObject {
        kind: kind.to_owned(),
        name: known.name,
        labels: known.labels.unwrap_or_default(),
        spec,
    })
}

/// Kustomization folders, read by `folders.rs`, are part of reading the
/// repository.
pub(crate) use crate::folders::{Folder, bundle, folders, join};
