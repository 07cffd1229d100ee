//! Every folder rendered by the real kustomize and validated by a real
//! kube-apiserver.
//!
//! For each kustomization folder: kustomize at the versions of
//! [`KUBECTL_KUSTOMIZE`] renders it, every version must give the same
//! objects, and they must be exactly the objects `folders.rs` follows by
//! hand (so every pure check of this test judges what `kubectl apply -k`
//! applies). Then each rendered object goes to the API server of
//! `tests::kube_apiserver` as a server-side apply with `dryRun=All` and
//! `fieldValidation=Strict`: unknown or duplicate fields, wrong types and
//! everything the API server's own validation refuses fail the test. The
//! cert-manager and Prometheus Operator CRDs are created first, from their
//! pinned modules, so their objects are validated against the real
//! schemas too.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams, ValidationDirective,
};
use kube::discovery::{self, Scope};
use serde::Deserialize;
use serde_yaml::Value;
use tests::kube_apiserver::{Cluster, KUBERNETES, Options, skipped};

use crate::kustomize::{self, CRDS, KUBECTL_KUSTOMIZE};
use crate::real::FOLDERS;
use crate::repo::{self, Manifest, Object, root};
use crate::schema;

/// Held by the schema and API server tests, so they do not compete for
/// the cores with each other.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Upper bound for the cluster's start and every request (not the one-time
/// builds, which happen before).
const LIMIT: Duration = Duration::from_secs(240);

/// Each object as `Kind/name` → what the checks see of it.
fn normalised(objects: &[Manifest]) -> BTreeMap<String, Value> {
    objects
        .iter()
        .map(|m| {
            let value = match &m.object {
                Object::ServiceAccount(o) => serde_yaml::to_value(o),
                Object::Role(o) => serde_yaml::to_value(o),
                Object::RoleBinding(o) => serde_yaml::to_value(o),
                Object::Deployment(o) => serde_yaml::to_value(o),
                Object::Service(o) => serde_yaml::to_value(o),
                Object::NetworkPolicy(o) => serde_yaml::to_value(o),
                Object::Namespace(o) => serde_yaml::to_value(o),
                Object::PodDisruptionBudget(o) => serde_yaml::to_value(o),
                Object::CertManager(o) | Object::ServiceMonitor(o) => {
                    serde_yaml::to_value((&o.labels, &o.spec))
                }
            }
            .expect("objects serialise");
            let label = m.label();
            let key = label.split(' ').next().unwrap_or_default().to_owned();
            (key, value)
        })
        .collect()
}

/// The first path where `a` and `b` differ.
fn difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Mapping(x), Value::Mapping(y)) => {
            for key in x.keys().chain(y.keys()) {
                let here = format!("{path}.{}", key.as_str().unwrap_or("?"));
                let (p, q) = (
                    x.get(key).unwrap_or(&Value::Null),
                    y.get(key).unwrap_or(&Value::Null),
                );
                if let Some(d) = difference(p, q, &here) {
                    return Some(d);
                }
            }
            None
        }
        (Value::Sequence(x), Value::Sequence(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| difference(p, q, &format!("{path}[{i}]"))),
        _ if a == b => None,
        _ => Some(format!("{path}: {a:?} vs {b:?}")),
    }
}

/// Problems between what kustomize rendered and what the hand-following
/// gave, for one folder.
pub(crate) fn compare(dir: &str, rendered: &[Manifest], by_hand: &[Manifest]) -> Vec<String> {
    let (real, hand) = (normalised(rendered), normalised(by_hand));
    let mut out = Vec::new();
    for key in real
        .keys()
        .chain(hand.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        match (real.get(key), hand.get(key)) {
            (Some(_), None) => out.push(format!(
                "{dir}: kustomize renders {key}, the checks never saw it"
            )),
            (None, Some(_)) => out.push(format!(
                "{dir}: the checks saw {key}, kustomize does not render it"
            )),
            (Some(a), Some(b)) => {
                if let Some(d) = difference(a, b, "") {
                    out.push(format!(
                        "{dir}: {key} differs (kustomize vs by hand) at {d}"
                    ));
                }
            }
            (None, None) => {}
        }
    }
    out
}

/// Each folder with its rendered YAML, and the problems found rendering.
type Rendered = (Vec<(String, String)>, Vec<String>);

/// Every folder rendered by every kustomize, once per test process (the
/// tests that need it share it, and run one at a time: a loaded machine
/// starts the API server slowly enough already).
fn render_all() -> Rendered {
    static RENDERED: std::sync::OnceLock<Rendered> = std::sync::OnceLock::new();
    RENDERED.get_or_init(render_every_folder).clone()
}

/// Renders every folder with every kustomize; returns each folder's
/// rendered YAML (of the newest kustomize) and the problems found.
fn render_every_folder() -> Rendered {
    let folders = repo::folders().unwrap_or_else(|e| panic!("{e}"));
    let mut problems = Vec::new();
    let mut texts = Vec::new();
    for dir in FOLDERS {
        let by_hand = repo::bundle(&folders, dir).unwrap_or_else(|e| panic!("{e}"));
        let mut newest = None;
        for (kubectl, version) in KUBECTL_KUSTOMIZE {
            let binary = kustomize::kustomize(version).unwrap_or_else(|e| panic!("{e}"));
            let text = match kustomize::render(&binary, &root(), dir) {
                Ok(text) => text,
                Err(e) => {
                    problems.push(format!("kubectl {kubectl} (kustomize {version}): {e}"));
                    continue;
                }
            };
            match repo::parse_manifests(&format!("{dir} rendered by kustomize {version}"), &text) {
                Ok(rendered) => problems.extend(
                    compare(dir, &rendered, &by_hand)
                        .into_iter()
                        .map(|p| format!("kustomize {version}: {p}")),
                ),
                Err(e) => problems.push(e),
            }
            newest = Some(text);
        }
        if let Some(text) = newest {
            texts.push((dir.to_owned(), text));
        }
    }
    (texts, problems)
}

#[test]
fn every_folder_renders_with_kubectls_kustomize_as_the_checks_read_it() {
    if skipped() {
        return;
    }
    let (texts, problems) = render_all();
    assert_eq!(texts.len(), FOLDERS.len(), "{problems:#?}");
    crate::assert_no_problems("kustomize renders", &problems);
}

#[test]
fn every_folder_passes_kubernetes_1_33_schemas_strictly() {
    if skipped() {
        return;
    }
    let _one_at_a_time = HEAVY.blocking_lock();
    let (texts, mut problems) = render_all();
    let schemas = schema::load().unwrap_or_else(|e| panic!("{e}"));
    for (dir, text) in &texts {
        problems.extend(schema::validate_yaml(&schemas, dir, text));
    }
    assert_eq!(texts.len(), FOLDERS.len(), "{problems:#?}");
    crate::assert_no_problems(
        &format!("the schemas of Kubernetes {}", schema::KUBERNETES_133),
        &problems,
    );
    // The same validation refuses a misspelled field, a wrong type and a
    // missing required field.
    let (_, base) = texts
        .iter()
        .find(|(d, _)| d == "deploy/base")
        .expect("base");
    for (good, bad, complaint) in [
        (
            "  replicas: 2\n",
            "  replicas: 2\n  replicaz: 2\n",
            ".spec.replicaz: unknown field",
        ),
        (
            "maxUnavailable: 1\n",
            "maxUnavailable: [1]\n",
            "neither an integer nor a string",
        ),
        (
            "topologyKey: kubernetes.io/hostname\n",
            "\n",
            "required field topologyKey is missing",
        ),
    ] {
        assert!(base.contains(good), "the rendered base has no {good:?}");
        let refused = schema::validate_yaml(&schemas, "broken", &base.replacen(good, bad, 1));
        assert!(
            refused.iter().any(|p| p.contains(complaint)),
            "{bad:?} was not refused with {complaint:?}: {refused:?}"
        );
    }
}

/// Creates the CRDs of [`CRDS`] and waits until each is established.
async fn install_crds(cluster: &Cluster) {
    let api: Api<CustomResourceDefinition> = Api::all(cluster.admin_client().await);
    for crd in &CRDS {
        let text = kustomize::crd(crd).unwrap_or_else(|e| panic!("{e}"));
        let object: CustomResourceDefinition =
            serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", crd.path));
        let name = object.metadata.name.clone().expect("CRD name");
        api.create(&PostParams::default(), &object)
            .await
            .unwrap_or_else(|e| panic!("create CRD {name}: {e}"));
        loop {
            let current = api.get(&name).await.expect("get CRD");
            let established = current
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            if established {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Sends every object of `text` (folder `dir`) as a strict server-side
/// apply: Namespaces for real (the objects in them need them), everything
/// else as a dry run, in `namespace` unless kustomize set one.
async fn validate(cluster: &Cluster, dir: &str, text: &str, namespace: &str) -> Vec<String> {
    let client = cluster.admin_client().await;
    let mut problems = Vec::new();
    let mut documents = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value = Value::deserialize(document).expect("rendered YAML");
        if !value.is_null() {
            documents.push(value);
        }
    }
    // Namespaces first, as kubectl orders them.
    documents.sort_by_key(|v| v.get("kind").and_then(Value::as_str) != Some("Namespace"));
    let mut namespace_created = false;
    for value in documents {
        let object: DynamicObject = serde_yaml::from_value(value).expect("an object");
        let types = object.types.clone().expect("apiVersion and kind");
        let name = object.metadata.name.clone().unwrap_or_default();
        let what = format!("{dir}: {}/{name}", types.kind);
        let gvk = GroupVersionKind::try_from(&types).expect("apiVersion");
        let (resource, capabilities) = match discovery::pinned_kind(&client, &gvk).await {
            Ok(found) => found,
            Err(e) => {
                problems.push(format!(
                    "{what}: the API server does not serve {gvk:?}: {e}"
                ));
                continue;
            }
        };
        let is_namespace = types.kind == "Namespace";
        if !is_namespace && !namespace_created && object.metadata.namespace.is_none() {
            cluster.create_namespace(namespace).await;
            namespace_created = true;
        }
        let api: Api<DynamicObject> = match capabilities.scope {
            Scope::Cluster => Api::all_with(client.clone(), &resource),
            Scope::Namespaced => Api::namespaced_with(
                client.clone(),
                object.metadata.namespace.as_deref().unwrap_or(namespace),
                &resource,
            ),
        };
        let params = PatchParams {
            dry_run: !is_namespace,
            force: true,
            field_manager: Some("deploy-test".to_owned()),
            field_validation: Some(ValidationDirective::Strict),
        };
        if let Err(e) = api.patch(&name, &params, &Patch::Apply(&object)).await {
            problems.push(format!("{what}: refused: {e}"));
        }
    }
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_folder_passes_strict_server_side_validation() {
    if skipped() {
        return;
    }
    let (texts, mut problems) = tokio::task::spawn_blocking(render_all)
        .await
        .expect("render");
    // Build (or find) the cluster's binaries outside the time limit.
    tests::kube_apiserver::binaries().await;
    let _one_at_a_time = HEAVY.lock().await;
    let checked = tokio::time::timeout(LIMIT, async {
        let cluster = Cluster::start(Options::default()).await;
        install_crds(&cluster).await;
        let mut found = Vec::new();
        for (i, (dir, text)) in texts.iter().enumerate() {
            found.extend(validate(&cluster, dir, text, &format!("deploy-check-{i}")).await);
        }
        // The same validation refuses a misspelled field, a wrong type and
        // a value the API server's own validation rejects.
        let (_, base) = texts
            .iter()
            .find(|(d, _)| d == "deploy/base")
            .expect("base");
        for (i, (good, bad, complaint)) in [
            (
                "  replicas: 2\n",
                "  replicas: 2\n  replicaz: 2\n",
                ".spec.replicaz: field not declared in schema",
            ),
            (
                "maxUnavailable: 1\n",
                "maxUnavailable: [1]\n",
                "cannot unmarshal array",
            ),
            ("maxSkew: 1\n", "maxSkew: 0\n", "maxSkew"),
        ]
        .into_iter()
        .enumerate()
        {
            assert!(base.contains(good), "the rendered base has no {good:?}");
            let broken = base.replacen(good, bad, 1);
            let namespace = format!("deploy-broken-{i}");
            let refused = validate(&cluster, "broken base", &broken, &namespace).await;
            assert!(
                refused.iter().any(|p| p.contains(complaint)),
                "{bad:?} was not refused with {complaint:?}: {refused:?}"
            );
        }
        found
    })
    .await
    .unwrap_or_else(|_| {
        panic!("validating against kube-apiserver {KUBERNETES} took over {LIMIT:?}")
    });
    problems.extend(checked);
    assert_eq!(texts.len(), FOLDERS.len(), "{problems:#?}");
    crate::assert_no_problems(
        &format!("strict validation by kube-apiserver {KUBERNETES}"),
        &problems,
    );
}
