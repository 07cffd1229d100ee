//! The checks, run on the real files.

use std::collections::BTreeMap;

use crate::dockerfile::Dockerfile;
use crate::help::help_for_args;
use crate::repo::{self, Folder, Manifest, deployments, pod_of};
use crate::{
    assert_no_problems, checks, containers, dockerfile, netpol, rbac, tree, wiring, workspace,
};

/// The folders the issue asks for.
const FOLDERS: [&str; 4] = [
    "deploy/base",
    "deploy/overlays/example",
    "deploy/overlays/network-policy",
    "deploy/overlays/tls",
];

fn folders() -> BTreeMap<String, Folder> {
    repo::folders().unwrap_or_else(|error| panic!("{error}"))
}

/// Every folder with what it applies.
fn bundles() -> Vec<(Folder, Vec<Manifest>)> {
    let folders = folders();
    folders
        .values()
        .map(|folder| {
            let objects =
                repo::bundle(&folders, &folder.dir).unwrap_or_else(|error| panic!("{error}"));
            (folder.clone(), objects)
        })
        .collect()
}

pub(crate) fn base() -> Vec<Manifest> {
    repo::bundle(&folders(), "deploy/base").unwrap_or_else(|error| panic!("{error}"))
}

pub(crate) fn the_dockerfile() -> Dockerfile {
    Dockerfile::parse(&repo::read("Dockerfile"))
}

/// `<image title>:<workspace version>`, what every container runs.
pub(crate) fn image_ref(file: &Dockerfile) -> String {
    format!(
        "{}:{}",
        file.title().unwrap_or("?"),
        env!("CARGO_PKG_VERSION")
    )
}

/// Runs `check` on every folder's objects.
fn each_bundle(what: &str, check: impl Fn(&[Manifest]) -> Vec<String>) {
    let mut problems = Vec::new();
    for (folder, objects) in bundles() {
        problems.extend(
            check(&objects)
                .into_iter()
                .map(|p| format!("[{}] {p}", folder.dir)),
        );
    }
    assert_no_problems(what, &problems);
}

#[test]
fn every_manifest_parses_into_kubernetes_types() {
    let folders = folders();
    for dir in FOLDERS {
        assert!(
            folders.contains_key(dir),
            "{dir}/kustomization.yaml is missing"
        );
    }
    let mut problems = Vec::new();
    let mut count = 0;
    for folder in folders.values() {
        for file in &folder.files {
            let path = format!("{}/{file}", folder.dir);
            match repo::parse_manifests(&path, &repo::read(&path)) {
                Ok(objects) if objects.is_empty() => {
                    problems.push(format!("{path} holds no object"))
                }
                Ok(objects) => count += objects.len(),
                Err(error) => problems.push(error),
            }
        }
    }
    assert_no_problems("manifests", &problems);
    assert!(count >= 12, "expected at least 12 objects, read {count}");
}

#[test]
fn kustomizations_list_every_file_and_nothing_missing() {
    let folders = folders();
    let problems: Vec<String> = folders
        .values()
        .flat_map(|f| tree::listing(f, &folders))
        .collect();
    assert_no_problems("kustomizations", &problems);
}

#[test]
fn selectors_match_pod_labels() {
    each_bundle("selectors", checks::selectors);
}

#[test]
fn service_target_ports_name_container_ports() {
    each_bundle("Service ports", checks::service_ports);
}

#[test]
fn probes_are_native_grpc_on_the_serving_port() {
    each_bundle("probes", checks::probes);
}

#[test]
fn role_grants_exactly_what_the_kubernetes_source_uses() {
    each_bundle("RBAC", rbac::rbac);
}

#[test]
fn containers_run_the_image_as_non_root_read_only_with_limits() {
    let file = the_dockerfile();
    let image = image_ref(&file);
    let (uid, _) = file.numeric_user().unwrap_or((-1, None));
    each_bundle("containers", |objects| {
        checks::containers_hardened(objects, &image, uid)
    });
}

#[test]
fn network_policies_allow_the_ports_pods_listen_on() {
    each_bundle("NetworkPolicies", netpol::network_policies);
    let folders = folders();
    let objects = repo::bundle(&folders, "deploy/overlays/network-policy").expect("bundle");
    let policies = objects
        .iter()
        .filter(|m| matches!(m.object, repo::Object::NetworkPolicy(_)))
        .count();
    assert!(
        policies >= 2,
        "the network-policy overlay should hold the policies, found {policies}"
    );
}

#[test]
fn certificates_have_issuers_and_issue_every_mounted_secret() {
    each_bundle("certificates", checks::certificates);
    let folders = folders();
    let tls = repo::bundle(&folders, "deploy/overlays/tls").expect("bundle");
    let certificates = tls
        .iter()
        .filter(|m| matches!(&m.object, repo::Object::CertManager(o) if o.kind == "Certificate"))
        .count();
    assert!(
        certificates >= 3,
        "the tls overlay should issue the CA and a certificate per role, found {certificates}"
    );
}

#[test]
fn overlays_override_things_that_exist() {
    let title = the_dockerfile().title().unwrap_or("?").to_owned();
    let mut problems = Vec::new();
    for (folder, objects) in bundles() {
        problems.extend(tree::overrides(&folder, &objects, &title));
    }
    assert_no_problems("overrides", &problems);
}

#[test]
fn base_has_the_replicas_services_and_client_wiring_asked_for() {
    let objects = base();
    let mut problems = wiring::contract(&objects);
    problems.extend(wiring::client_addresses(&objects));
    assert_no_problems("base", &problems);
}

#[test]
fn dockerfile_builds_every_workspace_binary_and_runs_as_non_root() {
    let bins = workspace::image_binaries();
    assert_no_problems(
        &format!("Dockerfile (workspace binaries: {bins:?})"),
        &dockerfile::problems(&the_dockerfile(), &bins),
    );
}

#[test]
fn image_exposes_exactly_the_container_ports() {
    assert_no_problems(
        "EXPOSE",
        &tree::exposed_ports(&base(), &the_dockerfile().exposed),
    );
}

/// Checks every container of the base that runs `binary` against that
/// binary's `--help`.
fn containers_of(binary: &str) {
    let file = the_dockerfile();
    let installed = file.installed();
    let objects = base();
    let mut problems = Vec::new();
    let mut seen = 0;
    for (manifest, deployment) in deployments(&objects) {
        let Some(pod) = pod_of(deployment).2 else {
            continue;
        };
        for container in &pod.containers {
            let label = format!("{} container {}", manifest.label(), container.name);
            match containers::binary_of(container, &installed) {
                Ok((name, args)) if name == binary => {
                    seen += 1;
                    match help_for_args(&name, &args) {
                        Ok(help) => problems.extend(
                            containers::against_help(container, pod, &args, &help)
                                .into_iter()
                                .map(|p| format!("{label}: {p}")),
                        ),
                        Err(error) => problems.push(format!("{label}: {error}")),
                    }
                }
                Ok(_) => {}
                Err(error) => problems.push(format!("{label}: {error}")),
            }
        }
    }
    assert!(seen > 0, "no container of the base runs {binary}");
    assert_no_problems(&format!("containers running {binary}"), &problems);
}

#[test]
fn control_plane_container_env_and_flags_exist_in_its_help() {
    containers_of("control-plane");
}

#[test]
fn greeter_server_container_env_and_flags_exist_in_its_help() {
    containers_of("greeter-server");
}

#[test]
fn greeter_client_container_env_and_flags_exist_in_its_help() {
    containers_of("greeter-client");
}
