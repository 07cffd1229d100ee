//! Following kustomizations by hand: every folder under `deploy/` with
//! what it lists, and the objects a folder applies (its resources, the
//! folders it lists, its patches, and its namespace, image and replica
//! overrides). The API server tests compare the result with what the real
//! kustomize renders, so the checks judge what `kubectl apply -k` applies.

use std::collections::BTreeMap;
use std::fs;

use serde::Deserialize;
use serde_yaml::Value;

use crate::repo::{Manifest, Object, parse_manifests, read, root, typed};

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
/// recursively, the folders it lists, patched and overridden as its
/// kustomization says.
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
    transform(&mut objects, &folder.kustomization);
    Ok(objects)
}

/// Applies the strategic-merge patch in `text` (file `path`) to the object
/// of its kind and name, as kustomize does for the fields used here: maps
/// merge key by key; lists of maps that all have a `name` merge item by
/// name (new names go first); other values are replaced.
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
            let mut fresh = Vec::new();
            for item in patch {
                match base.iter_mut().find(|b| b.get("name") == item.get("name")) {
                    Some(existing) => merge(existing, item),
                    None => fresh.push(item.clone()),
                }
            }
            // kustomize puts the patch's new items first.
            fresh.append(base);
            *base = fresh;
        }
        (base, patch) => *base = patch.clone(),
    }
}

/// The kustomization's `namespace`, `images` and `replicas`, applied as
/// kustomize applies them to the kinds used here.
fn transform(objects: &mut [Manifest], k: &Kustomization) {
    for manifest in objects {
        let metadata = match &mut manifest.object {
            Object::ServiceAccount(o) => &mut o.metadata,
            Object::Role(o) => &mut o.metadata,
            Object::RoleBinding(o) => &mut o.metadata,
            Object::Deployment(o) => &mut o.metadata,
            Object::Service(o) => &mut o.metadata,
            Object::NetworkPolicy(o) => &mut o.metadata,
            Object::PodDisruptionBudget(o) => &mut o.metadata,
            Object::Namespace(_) | Object::CertManager(_) | Object::ServiceMonitor(_) => continue,
        };
        if let Some(namespace) = &k.namespace {
            metadata.namespace = Some(namespace.clone());
            // kustomize moves a binding's ServiceAccount subjects along.
            if let Object::RoleBinding(binding) = &mut manifest.object {
                for subject in binding.subjects.iter_mut().flatten() {
                    if subject.kind == "ServiceAccount" {
                        subject.namespace = Some(namespace.clone());
                    }
                }
            }
        }
        let Object::Deployment(deployment) = &mut manifest.object else {
            continue;
        };
        let name = deployment.metadata.name.clone().unwrap_or_default();
        let Some(spec) = deployment.spec.as_mut() else {
            continue;
        };
        if let Some(replicas) = k.replicas.iter().find(|r| r.name == name) {
            spec.replicas = Some(replicas.count);
        }
        let containers = spec
            .template
            .spec
            .iter_mut()
            .flat_map(|pod| &mut pod.containers);
        for container in containers {
            let Some(image) = &container.image else {
                continue;
            };
            let (image_name, tag) = image.split_once(':').unwrap_or((image, ""));
            if let Some(o) = k.images.iter().find(|o| o.name == image_name) {
                let new_name = o.new_name.as_deref().unwrap_or(image_name);
                let new_tag = o.new_tag.as_deref().unwrap_or(tag);
                container.image = Some(if new_tag.is_empty() {
                    new_name.to_owned()
                } else {
                    format!("{new_name}:{new_tag}")
                });
            }
        }
    }
}
