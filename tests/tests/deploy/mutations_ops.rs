//! The operational checks (labels, selectors, disruption budgets, spreads,
//! metrics wiring, memory, the kustomize comparison), each shown to bite
//! on a broken copy (see `mutations.rs`).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::EnvVar;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::mutations::{container, pod};
use crate::real::{everything, serve_option};
use crate::repo::{self, Manifest, Object};
use crate::{apiserver, assert_complains, assert_no_problems, availability, labels, metrics};

const APP: &str = "k8s-grpc-lb";
const VERSION: &str = env!("CARGO_PKG_VERSION");

fn deployment<'a>(objects: &'a mut [Manifest], name: &str) -> &'a mut Deployment {
    objects
        .iter_mut()
        .find_map(|m| match &mut m.object {
            Object::Deployment(d) if d.metadata.name.as_deref() == Some(name) => Some(d),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no Deployment {name}"))
}

fn budget<'a>(objects: &'a mut [Manifest], name: &str) -> &'a mut PodDisruptionBudget {
    objects
        .iter_mut()
        .find_map(|m| match &mut m.object {
            Object::PodDisruptionBudget(p) if p.metadata.name.as_deref() == Some(name) => Some(p),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no PodDisruptionBudget {name}"))
}

fn overlay(dir: &str) -> Vec<Manifest> {
    let folders = repo::folders().expect("folders");
    repo::bundle(&folders, dir).expect("bundle")
}

#[test]
fn label_check_catches_missing_and_stale_labels() {
    assert_no_problems(
        "unbroken",
        &labels::recommended(&everything(), APP, VERSION),
    );

    let mut objects = everything();
    let d = deployment(&mut objects, "greeter-server");
    d.metadata
        .labels
        .as_mut()
        .unwrap()
        .remove("app.kubernetes.io/managed-by");
    let template = d.spec.as_mut().unwrap().template.metadata.as_mut().unwrap();
    template
        .labels
        .as_mut()
        .unwrap()
        .insert("app.kubernetes.io/version".into(), "0.0.9".into());
    let problems = labels::recommended(&objects, APP, VERSION);
    assert_complains(
        &problems,
        &[
            "Deployment/greeter-server",
            "no app.kubernetes.io/managed-by",
        ],
    );
    assert_complains(&problems, &["pod template", "version is \"0.0.9\""]);
}

#[test]
fn selector_check_catches_generic_overlapping_and_versioned_selectors() {
    assert_no_problems("unbroken", &labels::selectors_unique(&everything(), APP));

    // The old generic selector: any application's `control-plane` matches.
    let mut objects = everything();
    let spec = deployment(&mut objects, "control-plane")
        .spec
        .as_mut()
        .unwrap();
    spec.selector.match_labels = Some(
        [(
            "app.kubernetes.io/name".to_owned(),
            "control-plane".to_owned(),
        )]
        .into(),
    );
    spec.template
        .metadata
        .as_mut()
        .unwrap()
        .labels
        .as_mut()
        .unwrap()
        .insert("app.kubernetes.io/name".into(), "control-plane".into());
    let problems = labels::selectors_unique(&objects, APP);
    assert_complains(
        &problems,
        &[
            "Deployment/control-plane",
            "selector",
            "must match on exactly",
        ],
    );
    assert_complains(&problems, &["also selects a pod of another application"]);

    // A Service without the component selects two Deployments' pods.
    let mut objects = everything();
    for m in &mut objects {
        if let Object::Service(s) = &mut m.object
            && s.metadata.name.as_deref() == Some("greeter-service")
        {
            s.spec
                .as_mut()
                .unwrap()
                .selector
                .as_mut()
                .unwrap()
                .remove(labels::COMPONENT);
        }
    }
    assert_complains(
        &labels::selectors_unique(&objects, APP),
        &["Service/greeter-service", "exactly one Deployment's pods"],
    );

    // The version in a selector.
    let mut objects = everything();
    budget(&mut objects, "control-plane")
        .spec
        .as_mut()
        .unwrap()
        .selector
        .as_mut()
        .unwrap()
        .match_labels
        .as_mut()
        .unwrap()
        .insert("app.kubernetes.io/version".into(), VERSION.into());
    assert_complains(
        &labels::selectors_unique(&objects, APP),
        &["PodDisruptionBudget/control-plane", "must match on exactly"],
    );
}

#[test]
fn budget_check_catches_a_missing_budget_and_one_that_allows_all_or_none() {
    let objects = everything();
    assert_no_problems("unbroken", &availability::disruption_budgets(&objects));

    let mut broken = objects.clone();
    broken.retain(|m| !matches!(&m.object, Object::PodDisruptionBudget(p) if p.metadata.name.as_deref() == Some("control-plane")));
    assert_complains(
        &availability::disruption_budgets(&broken),
        &["Deployment/control-plane", "2 replicas, covered by 0"],
    );

    let mut broken = objects.clone();
    budget(&mut broken, "control-plane")
        .spec
        .as_mut()
        .unwrap()
        .max_unavailable = Some(IntOrString::String("100%".into()));
    assert_complains(
        &availability::disruption_budgets(&broken),
        &["evict 2 of control-plane's 2 pods at once"],
    );

    let mut broken = objects.clone();
    let spec = budget(&mut broken, "greeter-server").spec.as_mut().unwrap();
    spec.max_unavailable = None;
    spec.min_available = Some(IntOrString::Int(3));
    spec.unhealthy_pod_eviction_policy = None;
    let problems = availability::disruption_budgets(&broken);
    assert_complains(
        &problems,
        &["evict 0 of greeter-server's 3 pods", "never finish"],
    );
    assert_complains(&problems, &["unhealthyPodEvictionPolicy"]);
}

#[test]
fn spread_check_catches_soft_hostname_and_missing_zone_spreads() {
    let objects = everything();
    assert_no_problems("unbroken", &availability::spreads(&objects));

    let mut broken = objects.clone();
    let constraints = pod(&mut broken, "control-plane")
        .topology_spread_constraints
        .as_mut()
        .unwrap();
    constraints.retain(|c| c.topology_key != availability::ZONE);
    constraints[0].when_unsatisfiable = "ScheduleAnyway".into();
    let problems = availability::spreads(&broken);
    assert_complains(
        &problems,
        &[
            "control-plane",
            "no topology spread by topology.kubernetes.io/zone",
        ],
    );
    assert_complains(&problems, &["control-plane", "must be DoNotSchedule"]);

    let mut broken = objects;
    pod(&mut broken, "greeter-server")
        .topology_spread_constraints
        .as_mut()
        .unwrap()[0]
        .node_taints_policy = None;
    assert_complains(
        &availability::spreads(&broken),
        &["greeter-server", "nodeTaintsPolicy: Honor"],
    );
}

#[test]
fn metrics_check_catches_each_broken_link() {
    let (env, _) = serve_option("--metrics-listen");
    let objects = overlay("deploy/overlays/network-policy");
    assert_no_problems(
        "unbroken",
        &metrics::metrics(&objects, "control-plane", &env),
    );

    let mut broken = objects.clone();
    container(&mut broken, "control-plane")
        .env
        .as_mut()
        .unwrap()
        .retain(|e| e.name != env);
    assert_complains(
        &metrics::metrics(&broken, "control-plane", &env),
        &["metrics are off"],
    );

    let mut broken = objects.clone();
    let c = container(&mut broken, "control-plane");
    c.env.as_mut().unwrap().retain(|e| e.name != env);
    c.env.as_mut().unwrap().push(EnvVar {
        name: env.clone(),
        value: Some("0.0.0.0:9091".into()),
        ..EnvVar::default()
    });
    let problems = metrics::metrics(&broken, "control-plane", &env);
    assert_complains(&problems, &["declares no container port 9091"]);
    assert_complains(&problems, &["prometheus.io/port"]);
    assert_complains(
        &problems,
        &["no Service selecting it has a port named metrics"],
    );
    assert_complains(
        &problems,
        &[
            "NetworkPolicy/control-plane-from-clients",
            "admits no traffic",
            "9091",
        ],
    );

    let monitored = overlay("deploy/overlays/service-monitor");
    assert_no_problems(
        "unbroken",
        &metrics::metrics(&monitored, "control-plane", &env),
    );
    let mut broken = monitored;
    for m in &mut broken {
        if let Object::ServiceMonitor(o) = &mut m.object {
            o.spec["endpoints"][0]["port"] = "grpc".into();
            o.spec["selector"]["matchLabels"][labels::INSTANCE] = "other".into();
        }
    }
    let problems = metrics::metrics(&broken, "control-plane", &env);
    assert_complains(
        &problems,
        &["ServiceMonitor/control-plane", "scrapes ports [\"grpc\"]"],
    );
    assert_complains(
        &problems,
        &["ServiceMonitor/control-plane", "selects no Service"],
    );
}

#[test]
fn memory_check_catches_a_small_limit_and_an_uncapped_subscriber_count() {
    let formula = crate::real::documented_formula();
    let (env, _) = serve_option("--max-streams");
    let objects = everything();
    assert_no_problems(
        "unbroken",
        &metrics::memory(&objects, "control-plane", formula, &env, 4096),
    );

    let mut broken = objects;
    let c = container(&mut broken, "control-plane");
    let resources = c.resources.as_mut().unwrap();
    resources
        .limits
        .as_mut()
        .unwrap()
        .insert("memory".into(), Quantity("128Mi".into()));
    c.env.as_mut().unwrap().retain(|e| e.name != env);
    let problems = metrics::memory(&broken, "control-plane", formula, &env, 8192);
    assert_complains(&problems, &["memory request", "differs from the limit"]);
    assert_complains(&problems, &["memory limit Some(134217728)", "below"]);
    assert_complains(&problems, &["is Some(8192), but the memory is sized for"]);

    let parsed = metrics::Formula::parse(
        "so memory = 10 MiB + 20 KiB × subscribers, sized for 30 subscribers",
    )
    .expect("parses");
    assert_eq!(parsed.bytes(), 10 * 1024 * 1024 + 30 * 20 * 1024);
    assert!(metrics::Formula::parse("memory: plenty").is_err());
}

#[test]
fn kustomize_comparison_catches_an_object_the_checks_would_misjudge() {
    let objects = overlay("deploy/overlays/example");
    assert_no_problems("unbroken", &apiserver::compare("x", &objects, &objects));

    let mut hand = objects.clone();
    deployment(&mut hand, "greeter-server")
        .spec
        .as_mut()
        .unwrap()
        .replicas = Some(3);
    hand.retain(|m| !matches!(m.object, Object::Namespace(_)));
    let problems = apiserver::compare("x", &objects, &hand);
    assert_complains(
        &problems,
        &["Deployment/greeter-server differs", ".spec.replicas"],
    );
    assert_complains(
        &problems,
        &["kustomize renders Namespace/greeter-demo, the checks never saw it"],
    );
}
