//! Every check, shown to bite: a copy of the real objects (or files) with
//! one thing broken must draw the matching complaint, while the unbroken
//! copy draws none (so the complaint is caused by the break).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, HTTPGetAction, PodSpec, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::real::{everything, image_ref, the_dockerfile};
use crate::repo::{self, Manifest, Object};
use crate::{assert_complains, assert_no_problems, checks, netpol, rbac, tree, wiring};

fn deployment<'a>(objects: &'a mut [Manifest], name: &str) -> &'a mut Deployment {
    objects
        .iter_mut()
        .find_map(|m| match &mut m.object {
            Object::Deployment(d) if d.metadata.name.as_deref() == Some(name) => Some(d),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no Deployment {name}"))
}

pub(crate) fn pod<'a>(objects: &'a mut [Manifest], name: &str) -> &'a mut PodSpec {
    let spec = deployment(objects, name).spec.as_mut().expect("spec");
    spec.template.spec.as_mut().expect("pod spec")
}

pub(crate) fn container<'a>(objects: &'a mut [Manifest], name: &str) -> &'a mut Container {
    &mut pod(objects, name).containers[0]
}

fn service<'a>(objects: &'a mut [Manifest], name: &str) -> &'a mut Service {
    objects
        .iter_mut()
        .find_map(|m| match &mut m.object {
            Object::Service(s) if s.metadata.name.as_deref() == Some(name) => Some(s),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no Service {name}"))
}

fn role(objects: &mut [Manifest]) -> &mut Role {
    objects
        .iter_mut()
        .find_map(|m| match &mut m.object {
            Object::Role(r) => Some(r),
            _ => None,
        })
        .expect("a Role")
}

fn binding(objects: &mut [Manifest]) -> &mut RoleBinding {
    objects
        .iter_mut()
        .find_map(|m| match &mut m.object {
            Object::RoleBinding(b) => Some(b),
            _ => None,
        })
        .expect("a RoleBinding")
}

fn policies() -> Vec<Manifest> {
    let folders = repo::folders().expect("folders");
    repo::bundle(&folders, "deploy/overlays/network-policy").expect("bundle")
}

fn policy<'a>(objects: &'a mut [Manifest], name: &str) -> &'a mut NetworkPolicy {
    objects
        .iter_mut()
        .find_map(|m| match &mut m.object {
            Object::NetworkPolicy(p) if p.metadata.name.as_deref() == Some(name) => Some(p),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no NetworkPolicy {name}"))
}

#[test]
fn selector_check_catches_a_selector_that_misses_its_pods() {
    assert_no_problems("unbroken", &checks::selectors(&everything()));

    let mut objects = everything();
    let spec = deployment(&mut objects, "greeter-server")
        .spec
        .as_mut()
        .unwrap();
    spec.selector
        .match_labels
        .as_mut()
        .unwrap()
        .insert("app.kubernetes.io/name".into(), "greeter".into());
    assert_complains(
        &checks::selectors(&objects),
        &["greeter-server", "does not match its pod template"],
    );

    let mut objects = everything();
    let selector = service(&mut objects, "greeter-service")
        .spec
        .as_mut()
        .unwrap()
        .selector
        .as_mut()
        .unwrap();
    selector.insert("app.kubernetes.io/name".into(), "greeter".into());
    assert_complains(
        &checks::selectors(&objects),
        &["Service/greeter-service", "matches no pod template"],
    );
}

#[test]
fn port_check_catches_a_target_port_no_container_has() {
    assert_no_problems("unbroken", &checks::service_ports(&everything()));

    let mut objects = everything();
    let ports = service(&mut objects, "greeter-service")
        .spec
        .as_mut()
        .unwrap()
        .ports
        .as_mut()
        .unwrap();
    ports[0].target_port = Some(IntOrString::String("grcp".into()));
    assert_complains(
        &checks::service_ports(&objects),
        &["greeter-service", "grcp"],
    );

    let mut objects = everything();
    container(&mut objects, "control-plane")
        .ports
        .as_mut()
        .unwrap()[0]
        .name = Some("xds".into());
    assert_complains(
        &checks::service_ports(&objects),
        &["Service/control-plane", "targetPort"],
    );
    assert_complains(
        &checks::probes(&objects),
        &["control-plane", "no container port named grpc"],
    );
}

#[test]
fn probe_check_catches_wrong_port_wrong_kind_and_missing_probes() {
    assert_no_problems("unbroken", &checks::probes(&everything()));

    let mut objects = everything();
    container(&mut objects, "greeter-server")
        .readiness_probe
        .as_mut()
        .unwrap()
        .grpc
        .as_mut()
        .unwrap()
        .port = 8081;
    assert_complains(
        &checks::probes(&objects),
        &["readiness probe checks port 8081", "8080"],
    );

    let mut objects = everything();
    let liveness = container(&mut objects, "control-plane")
        .liveness_probe
        .as_mut()
        .unwrap();
    liveness.grpc = None;
    liveness.http_get = Some(HTTPGetAction {
        port: IntOrString::Int(18000),
        ..Default::default()
    });
    assert_complains(
        &checks::probes(&objects),
        &["liveness probe is not a native grpc probe"],
    );

    let mut objects = everything();
    container(&mut objects, "greeter-server").readiness_probe = None;
    assert_complains(&checks::probes(&objects), &["has no readiness probe"]);
}

#[test]
fn rbac_check_catches_extra_missing_and_misbound_rights() {
    assert_no_problems("unbroken", &rbac::rbac(&everything()));

    let mut objects = everything();
    role(&mut objects).rules.as_mut().unwrap()[0]
        .verbs
        .push("create".into());
    assert_complains(&rbac::rbac(&objects), &["grants create on services"]);

    let mut objects = everything();
    role(&mut objects).rules.as_mut().unwrap()[0]
        .resources
        .as_mut()
        .unwrap()
        .push("pods".into());
    assert_complains(&rbac::rbac(&objects), &["grants get on pods"]);

    let mut objects = everything();
    role(&mut objects).rules.as_mut().unwrap()[1]
        .verbs
        .retain(|v| v != "watch");
    assert_complains(
        &rbac::rbac(&objects),
        &["does not grant watch on endpointslices"],
    );

    let mut objects = everything();
    binding(&mut objects).role_ref.name = "view".into();
    assert_complains(&rbac::rbac(&objects), &["roleRef Role view"]);

    let mut objects = everything();
    pod(&mut objects, "control-plane").service_account_name = Some("default".into());
    assert_complains(
        &rbac::rbac(&objects),
        &["ServiceAccount default, which has no RoleBinding"],
    );

    let cluster_role =
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: x\n";
    let error = repo::parse_manifests("x.yaml", cluster_role).expect_err("ClusterRole refused");
    assert!(error.contains("ClusterRole"), "{error}");
}

#[test]
fn manifest_reader_refuses_misspelled_fields() {
    let text =
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\nspec:\n  selectr:\n    app: x\n";
    let error = repo::parse_manifests("x.yaml", text).expect_err("unknown field refused");
    assert!(error.contains(".spec.selectr"), "{error}");
}

#[test]
fn hardening_check_catches_root_writable_privileged_and_foreign_images() {
    let file = the_dockerfile();
    let image = image_ref(&file);
    assert_no_problems(
        "unbroken",
        &checks::containers_hardened(&everything(), &image, 65532),
    );

    let mut objects = everything();
    container(&mut objects, "greeter-client").image = Some("k8s-grpc-lb:latest".into());
    pod(&mut objects, "greeter-server")
        .security_context
        .as_mut()
        .unwrap()
        .run_as_non_root = Some(false);
    let security = container(&mut objects, "control-plane")
        .security_context
        .as_mut()
        .unwrap();
    security.read_only_root_filesystem = Some(false);
    security.capabilities = None;
    let problems = checks::containers_hardened(&objects, &image, 65532);
    assert_complains(&problems, &["greeter-client", "k8s-grpc-lb:latest"]);
    assert_complains(&problems, &["greeter-server", "runAsNonRoot"]);
    assert_complains(&problems, &["control-plane", "readOnlyRootFilesystem"]);
    assert_complains(&problems, &["control-plane", "drop ALL"]);
}

#[test]
fn network_policy_check_catches_service_ports_and_unknown_peers() {
    assert_no_problems("unbroken", &netpol::network_policies(&policies()));

    let mut objects = policies();
    let rule = &mut policy(&mut objects, "greeter-server-from-clients")
        .spec
        .as_mut()
        .unwrap()
        .ingress
        .as_mut()
        .unwrap()[0];
    rule.ports.as_mut().unwrap()[0].port = Some(IntOrString::Int(80));
    rule.from.as_mut().unwrap()[0]
        .pod_selector
        .as_mut()
        .unwrap()
        .match_labels = Some([("k8s-grpc-lb/client".to_owned(), "yes".to_owned())].into());
    let problems = netpol::network_policies(&objects);
    assert_complains(
        &problems,
        &["allows port Int(80)", "greeter-server does not listen"],
    );
    assert_complains(&problems, &["ingress from", "matches no pod"]);
}

#[test]
fn kustomization_checks_catch_unlisted_files_and_dangling_entries() {
    let mut folders = repo::folders().expect("folders");
    let example = folders.get_mut("deploy/example").expect("example");
    example
        .kustomization
        .resources
        .retain(|r| r != "greeter-client.yaml");
    example
        .kustomization
        .resources
        .push("greeter-cliant.yaml".into());
    let folder = folders["deploy/example"].clone();
    let problems = tree::listing(&folder, &folders);
    assert_complains(&problems, &["does not list greeter-client.yaml"]);
    assert_complains(
        &problems,
        &["lists greeter-cliant.yaml, which does not exist"],
    );

    let mut example = folders["deploy/overlays/example"].clone();
    example.kustomization.images[0].name = "greeter".into();
    example.kustomization.replicas[0].name = "greeter".into();
    let problems = tree::overrides(&example, &crate::real::everything(), "k8s-grpc-lb");
    assert_complains(
        &problems,
        &["images entry \"greeter\" matches no container"],
    );
    assert_complains(&problems, &["replicas for greeter"]);
    assert_complains(&problems, &["no Namespace object"]);
}

#[test]
fn wiring_check_catches_a_client_pointed_at_nothing() {
    let mut objects = everything();
    assert_no_problems("unbroken", &wiring::client_addresses(&objects));
    let env = container(&mut objects, "greeter-client")
        .env
        .as_mut()
        .unwrap();
    env.iter_mut().find(|e| e.name == "TARGET").unwrap().value = Some("greeter:80".into());
    assert_complains(
        &wiring::client_addresses(&objects),
        &["no Service greeter with port 80"],
    );
    deployment(&mut objects, "control-plane")
        .spec
        .as_mut()
        .unwrap()
        .replicas = Some(1);
    assert_complains(
        &wiring::contract(&objects),
        &["control-plane has Some(1) replicas"],
    );
}

#[test]
fn certificate_check_catches_an_unissued_secret_and_a_missing_issuer() {
    let folders = repo::folders().expect("folders");
    let tls = repo::bundle(&folders, "deploy/overlays/tls").expect("bundle");
    assert_no_problems("unbroken", &checks::certificates(&tls));

    let mut broken = tls.clone();
    for manifest in &mut broken {
        if let Object::CertManager(o) = &mut manifest.object
            && o.name.as_deref() == Some("greeter-server")
        {
            o.spec["secretName"] = "greeter-server-tls-typo".into();
            o.spec["issuerRef"]["name"] = "nobody".into();
        }
    }
    let problems = checks::certificates(&broken);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("mounts Secret \"greeter-server-tls\"")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("issuerRef \"nobody\"")),
        "{problems:?}"
    );
}

#[test]
fn probe_check_wants_a_plaintext_health_port_next_to_tls() {
    let folders = repo::folders().expect("folders");
    let mut tls = repo::bundle(&folders, "deploy/overlays/tls").expect("bundle");
    assert_no_problems("unbroken", &checks::probes(&tls));
    for manifest in &mut tls {
        if let Object::Deployment(d) = &mut manifest.object {
            let spec = d
                .spec
                .as_mut()
                .and_then(|s| s.template.spec.as_mut())
                .expect("pod");
            for container in &mut spec.containers {
                if let Some(ports) = container.ports.as_mut() {
                    ports.retain(|p| p.name.as_deref() != Some("health"));
                }
            }
        }
    }
    let problems = checks::probes(&tls);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("serves TLS but has no container port named health")),
        "{problems:?}"
    );
}
