//! Checks of the kustomize tree: every folder lists exactly its files,
//! every entry exists, overrides name things that exist; and the ports the
//! image exposes are the ports the pods declare.

use std::collections::{BTreeMap, BTreeSet};

use crate::repo::{Folder, Manifest, Object, deployments, join, pod_of, root};

/// A folder's kustomization lists every YAML file of the folder, and
/// everything it lists exists (a file, or a folder with a kustomization).
pub(crate) fn listing(folder: &Folder, folders: &BTreeMap<String, Folder>) -> Vec<String> {
    let mut out = Vec::new();
    let where_ = format!("{}/kustomization.yaml", folder.dir);
    let k = &folder.kustomization;
    if k.api_version != "kustomize.config.k8s.io/v1beta1" || k.kind != "Kustomization" {
        out.push(format!(
            "{where_}: not a kustomize.config.k8s.io/v1beta1 Kustomization"
        ));
    }
    let mut listed = BTreeSet::new();
    for entry in &k.resources {
        let target = join(&folder.dir, entry);
        if folders.contains_key(&target) {
            continue;
        }
        if !root().join(&target).is_file() {
            out.push(format!("{where_}: lists {entry}, which does not exist"));
        } else if entry.contains('/') {
            out.push(format!(
                "{where_}: lists the file {entry} of another folder; list that folder instead"
            ));
        } else if !listed.insert(entry.clone()) {
            out.push(format!("{where_}: lists {entry} twice"));
        }
    }
    for patch in &k.patches {
        if patch.path.contains('/') {
            out.push(format!(
                "{where_}: patches with {}, a file of another folder",
                patch.path
            ));
        } else if !root().join(join(&folder.dir, &patch.path)).is_file() {
            out.push(format!(
                "{where_}: patches with {}, which does not exist",
                patch.path
            ));
        } else if !listed.insert(patch.path.clone()) {
            out.push(format!("{where_}: lists {} twice", patch.path));
        }
    }
    for file in &folder.files {
        if !listed.contains(file) {
            out.push(format!(
                "{where_}: does not list {file}, so kustomize never applies it"
            ));
        }
    }
    out
}

/// The overrides of a folder's kustomization name things that exist in
/// what it applies: the image of the base (`title`), its Deployments, its
/// namespace.
pub(crate) fn overrides(folder: &Folder, objects: &[Manifest], title: &str) -> Vec<String> {
    let mut out = Vec::new();
    let where_ = format!("{}/kustomization.yaml", folder.dir);
    let k = &folder.kustomization;
    for image in &k.images {
        if image.name != title {
            out.push(format!(
                "{where_}: images entry {:?} matches no container (the image is {title:?})",
                image.name
            ));
        }
        if image.new_name.is_none() && image.new_tag.is_none() {
            out.push(format!(
                "{where_}: images entry {:?} changes nothing",
                image.name
            ));
        }
    }
    let names: BTreeSet<&str> = deployments(objects).map(|(_, d)| pod_of(d).0).collect();
    for replicas in &k.replicas {
        if !names.contains(replicas.name.as_str()) {
            out.push(format!(
                "{where_}: replicas for {}, which is not a Deployment here",
                replicas.name
            ));
        }
        if replicas.count < 1 {
            out.push(format!(
                "{where_}: replicas for {} is {}",
                replicas.name, replicas.count
            ));
        }
    }
    if let Some(namespace) = &k.namespace {
        let created = objects.iter().any(|m| {
            matches!(&m.object, Object::Namespace(n) if n.metadata.name.as_deref() == Some(namespace))
        });
        if !created {
            out.push(format!(
                "{where_}: puts everything in namespace {namespace}, but no Namespace object creates it"
            ));
        }
    }
    out
}

/// The image's `EXPOSE` lists exactly the container ports of the pods.
pub(crate) fn exposed_ports(objects: &[Manifest], exposed: &BTreeSet<u16>) -> Vec<String> {
    let declared: BTreeSet<u16> = deployments(objects)
        .filter_map(|(_, d)| pod_of(d).2)
        .flat_map(|s| &s.containers)
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| u16::try_from(p.container_port).ok())
        .collect();
    let mut out = Vec::new();
    for port in declared.difference(exposed) {
        out.push(format!(
            "container port {port} is not EXPOSEd by the Dockerfile"
        ));
    }
    for port in exposed.difference(&declared) {
        out.push(format!(
            "the Dockerfile EXPOSEs {port}, which no container declares"
        ));
    }
    out
}
