//! Reading the repository: every manifest under `deploy/` into k8s-openapi
//! types, and every kustomization folder with what it lists.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, PodSpec, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
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
    /// A cert-manager `Issuer` or `Certificate` (`cert-manager.io/v1`).
    CertManager(CertManagerObject),
}

/// A cert-manager object, kept as YAML: its kind, name and spec.
#[derive(Debug, Clone)]
pub(crate) struct CertManagerObject {
    pub(crate) kind: String,
    pub(crate) name: Option<String>,
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
            Object::CertManager(o) => (o.kind.as_str(), &o.name),
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

fn typed<T: DeserializeOwned + serde::Serialize>(value: Value, origin: &str) -> Result<T, String> {
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
            "Issuer" | "Certificate" => cert_manager(kind, &value, &origin)?,
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
    if value.get("apiVersion").and_then(Value::as_str) != Some("cert-manager.io/v1") {
        return Err(format!("{origin}: a {kind} must be cert-manager.io/v1"));
    }
    let name = value
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let spec = value
        .get("spec")
        .cloned()
        .ok_or_else(|| format!("{origin}: {kind} without a spec"))?;
    if kind == "Certificate" {
        for field in ["secretName", "issuerRef"] {
            if spec.get(field).is_none() {
                return Err(format!("{origin}: Certificate without spec.{field}"));
            }
        }
    }
    Ok(Object::CertManager(CertManagerObject {
        kind: kind.to_owned(),
        name,
        spec,
    }))
}

/// A `kustomization.yaml`, limited to the fields this project uses, so a
/// new kind of entry (a generator reading files, a patch) has to be taught
/// to the checks before it is accepted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Kustomization {
    pub(crate) api_version: String,
    pub(crate) kind: String,
    #[serde(default)]
    pub(crate) namespace: Option<String>,
    #[serde(default)]
    pub(crate) resources: Vec<String>,
    #[serde(default)]
    pub(crate) images: Vec<ImageOverride>,
    #[serde(default)]
    pub(crate) replicas: Vec<ReplicaOverride>,
    #[serde(default)]
    pub(crate) patches: Vec<PatchRef>,
}

/// A `patches:` entry: a strategic-merge patch file of this folder, whose
/// kind and name say what it patches.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatchRef {
    pub(crate) path: String,
}

/// An `images:` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ImageOverride {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) new_name: Option<String>,
    #[serde(default)]
    pub(crate) new_tag: Option<String>,
}

/// A `replicas:` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplicaOverride {
    pub(crate) name: String,
    pub(crate) count: i32,
}

/// One kustomization folder.
#[derive(Debug, Clone)]
pub(crate) struct Folder {
    /// Relative to the root, with `/`.
    pub(crate) dir: String,
    pub(crate) kustomization: Kustomization,
    /// YAML files in the folder other than `kustomization.yaml`.
    pub(crate) files: Vec<String>,
}

/// Every folder under `deploy/`, by `dir`. A folder with YAML files but no
/// kustomization is an error (nothing would ever apply those files).
pub(crate) fn folders() -> Result<BTreeMap<String, Folder>, String> {
    let mut found = BTreeMap::new();
    let mut pending = vec!["deploy".to_owned()];
    while let Some(dir) = pending.pop() {
        let mut files = Vec::new();
        let mut has_kustomization = false;
        let entries = fs::read_dir(root().join(&dir))
            .map_err(|error| format!("failed to list {dir}: {error}"))?;
        for entry in entries {
            let entry = entry.map_err(|error| format!("failed to list {dir}: {error}"))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.path().is_dir() {
                pending.push(format!("{dir}/{name}"));
            } else if name == "kustomization.yaml" {
                has_kustomization = true;
            } else if name.ends_with(".yaml") || name.ends_with(".yml") {
                files.push(name);
            }
        }
        files.sort();
        if !has_kustomization {
            if !files.is_empty() {
                return Err(format!("{dir} has {files:?} but no kustomization.yaml"));
            }
            continue;
        }
        let path = format!("{dir}/kustomization.yaml");
        let kustomization =
            serde_yaml::from_str(&read(&path)).map_err(|error| format!("{path}: {error}"))?;
        found.insert(
            dir.clone(),
            Folder {
                dir,
                kustomization,
                files,
            },
        );
    }
    Ok(found)
}

/// `base` joined with the relative path `entry`, normalised (`..` applied).
pub(crate) fn join(base: &str, entry: &str) -> String {
    let mut parts: Vec<&str> = base.split('/').filter(|p| !p.is_empty()).collect();
    for part in entry.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}

/// Every object a kustomization folder applies: its own listed files and,
/// recursively, the folders it lists.
pub(crate) fn bundle(
    folders: &BTreeMap<String, Folder>,
    dir: &str,
) -> Result<Vec<Manifest>, String> {
    let folder = folders
        .get(dir)
        .ok_or_else(|| format!("{dir} is not a kustomization folder"))?;
    let mut objects = Vec::new();
    for entry in &folder.kustomization.resources {
        let target = join(dir, entry);
        if folders.contains_key(&target) {
            objects.extend(bundle(folders, &target)?);
        } else {
            let path = root().join(&target);
            let text = fs::read_to_string(&path)
                .map_err(|error| format!("{dir}/kustomization.yaml lists {entry}: {error}"))?;
            objects.extend(parse_manifests(&target, &text)?);
        }
    }
    for patch in &folder.kustomization.patches {
        let target = join(dir, &patch.path);
        let text = fs::read_to_string(root().join(&target)).map_err(|error| {
            format!(
                "{dir}/kustomization.yaml patches with {}: {error}",
                patch.path
            )
        })?;
        apply_patch(&mut objects, &target, &text)?;
    }
    Ok(objects)
}

/// Applies the strategic-merge patch in `text` (file `path`) to the object
/// of its kind and name, as kustomize does for the fields used here: maps
/// merge key by key; lists of maps that all have a `name` merge item by
/// name (new names are appended); other values are replaced.
fn apply_patch(objects: &mut [Manifest], path: &str, text: &str) -> Result<(), String> {
    let patch: Value =
        serde_yaml::from_str(text).map_err(|error| format!("{path}: bad YAML: {error}"))?;
    let kind = patch
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let name = patch
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let target = objects
        .iter_mut()
        .find(|m| {
            let label = m.label();
            label.starts_with(&format!("{kind}/{name} "))
        })
        .ok_or_else(|| format!("{path}: patches {kind}/{name}, which is not in what it applies"))?;
    let mut value = match &target.object {
        Object::Deployment(o) => serde_yaml::to_value(o),
        Object::Service(o) => serde_yaml::to_value(o),
        _ => {
            return Err(format!(
                "{path}: patches of {kind} are not supported by these checks"
            ));
        }
    }
    .expect("k8s-openapi objects serialise");
    merge(&mut value, &patch);
    let origin = format!("{} patched by {path}", target.origin);
    let object = match kind {
        "Deployment" => Object::Deployment(typed(value, &origin)?),
        _ => Object::Service(typed(value, &origin)?),
    };
    target.object = object;
    target.origin = origin;
    Ok(())
}

fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Mapping(base), Value::Mapping(patch)) => {
            for (key, value) in patch {
                match base.get_mut(key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (Value::Sequence(base), Value::Sequence(patch))
            if base
                .iter()
                .chain(patch)
                .all(|item| item.get("name").is_some()) =>
        {
            for item in patch {
                match base.iter_mut().find(|b| b.get("name") == item.get("name")) {
                    Some(existing) => merge(existing, item),
                    None => base.push(item.clone()),
                }
            }
        }
        (base, patch) => *base = patch.clone(),
    }
}
