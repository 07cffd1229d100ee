//! The checks, run on the real files.

use std::collections::BTreeMap;

use crate::dockerfile::Dockerfile;
use crate::help::help_for_args;
use crate::repo::{self, Folder, Manifest, deployments, pod_of};
use crate::{
    assert_no_problems, availability, checks, containers, dockerfile, labels, metrics, netpol,
    rbac, tree, wiring, workspace,
};

/// The folders the documents describe.
pub(crate) const FOLDERS: [&str; 6] = [
    "deploy/base",
    "deploy/example",
    "deploy/overlays/example",
    "deploy/overlays/network-policy",
    "deploy/overlays/service-monitor",
    "deploy/overlays/tls",
];

/// Folders applied next to `deploy/base` (they need the control plane and
/// do not include it); the checks judge them together with it.
const BESIDE_BASE: [&str; 1] = ["deploy/example"];

/// The container running the control plane, and its metrics and stream
/// cap options.
const CONTROL_PLANE: &str = "control-plane";

fn folders() -> BTreeMap<String, Folder> {
    repo::folders().unwrap_or_else(|error| panic!("{error}"))
}

/// Every folder with what it applies (a folder of [`BESIDE_BASE`] together
/// with `deploy/base`).
fn bundles() -> Vec<(Folder, Vec<Manifest>)> {
    let folders = folders();
    folders
        .values()
        .map(|folder| {
            let mut objects = Vec::new();
            if BESIDE_BASE.contains(&folder.dir.as_str()) {
                objects.extend(repo::bundle(&folders, "deploy/base").expect("deploy/base"));
            }
            objects.extend(
                repo::bundle(&folders, &folder.dir).unwrap_or_else(|error| panic!("{error}")),
            );
            (folder.clone(), objects)
        })
        .collect()
}

/// The control plane (`deploy/base`) and the example (`deploy/example`).
pub(crate) fn everything() -> Vec<Manifest> {
    let folders = folders();
    let mut objects =
        repo::bundle(&folders, "deploy/base").unwrap_or_else(|error| panic!("{error}"));
    objects
        .extend(repo::bundle(&folders, "deploy/example").unwrap_or_else(|error| panic!("{error}")));
    objects
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
    let mut problems = Vec::new();
    for (folder, objects) in bundles() {
        // An overlay may move the image to a registry; its tag stays the
        // workspace version.
        let expected = folder
            .kustomization
            .images
            .iter()
            .find(|o| image.starts_with(&format!("{}:", o.name)))
            .map_or(image.clone(), |o| {
                format!(
                    "{}:{}",
                    o.new_name.as_deref().unwrap_or(&o.name),
                    o.new_tag.as_deref().unwrap_or(env!("CARGO_PKG_VERSION"))
                )
            });
        problems.extend(
            checks::containers_hardened(&objects, &expected, uid)
                .into_iter()
                .map(|p| format!("[{}] {p}", folder.dir)),
        );
    }
    assert_no_problems("containers", &problems);
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
    let objects = everything();
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
        &tree::exposed_ports(&everything(), &the_dockerfile().exposed),
    );
}

/// Checks every container of the base that runs `binary` against that
/// binary's `--help`.
fn containers_of(binary: &str) {
    let file = the_dockerfile();
    let installed = file.installed();
    let objects = everything();
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

/// The project's name: the image title in the Dockerfile.
pub(crate) fn app_name() -> String {
    the_dockerfile().title().expect("image title").to_owned()
}

#[test]
fn every_object_carries_the_recommended_labels() {
    let app = app_name();
    each_bundle("labels", |objects| {
        labels::recommended(objects, &app, env!("CARGO_PKG_VERSION"))
    });
}

#[test]
fn selectors_select_one_component_and_no_other_applications_pods() {
    let app = app_name();
    each_bundle("selectors", |objects| {
        labels::selectors_unique(objects, &app)
    });
}

#[test]
fn replicated_deployments_have_disruption_budgets_and_spreads() {
    each_bundle("PodDisruptionBudgets", availability::disruption_budgets);
    each_bundle("topology spreads", availability::spreads);
    let budgets = base()
        .iter()
        .filter(|m| matches!(m.object, repo::Object::PodDisruptionBudget(_)))
        .count();
    assert_eq!(
        budgets, 1,
        "deploy/base should hold the control plane's budget"
    );
}

/// The environment variable behind `flag` of `control-plane serve`, and
/// its default.
pub(crate) fn serve_option(flag: &str) -> (String, Option<String>) {
    let help =
        help_for_args(CONTROL_PLANE, &["serve".to_owned()]).unwrap_or_else(|e| panic!("{e}"));
    let option = help
        .option(flag)
        .unwrap_or_else(|| panic!("`control-plane serve --help` has no {flag}"));
    let env = option
        .env
        .clone()
        .unwrap_or_else(|| panic!("{flag} has no environment variable"));
    (env, option.default.clone())
}

#[test]
fn control_plane_metrics_are_wired_from_flag_to_scraper() {
    let (env, _) = serve_option("--metrics-listen");
    each_bundle("metrics", |objects| {
        metrics::metrics(objects, CONTROL_PLANE, &env)
    });
    let folders = folders();
    let monitored = repo::bundle(&folders, "deploy/overlays/service-monitor").expect("bundle");
    let monitors = monitored
        .iter()
        .filter(|m| matches!(m.object, repo::Object::ServiceMonitor(_)))
        .count();
    assert_eq!(
        monitors, 1,
        "the service-monitor overlay should hold one ServiceMonitor"
    );
}

/// The formula and count docs/deploy.md states.
pub(crate) fn documented_formula() -> metrics::Formula {
    metrics::Formula::parse(&repo::read("docs/deploy.md"))
        .unwrap_or_else(|e| panic!("docs/deploy.md states no memory formula: {e}"))
}

#[test]
fn control_plane_memory_follows_the_documented_formula() {
    let formula = documented_formula();
    let (env, default) = serve_option("--max-streams");
    let default = default
        .and_then(|d| d.parse().ok())
        .expect("--max-streams default");
    each_bundle("memory", |objects| {
        metrics::memory(objects, CONTROL_PLANE, formula, &env, default)
    });
}

/// `deploy/base` alone: the control plane.
pub(crate) fn base() -> Vec<Manifest> {
    repo::bundle(&folders(), "deploy/base").unwrap_or_else(|error| panic!("{error}"))
}
