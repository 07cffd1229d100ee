//! The checks that involve the binaries and the Dockerfile, shown to bite
//! on broken copies (see `mutations.rs`). The container and command tests
//! run `greeter-server` and `control-plane`, so those must be built.

use k8s_openapi::api::core::v1::EnvVar;

use crate::help::help_for_args;
use crate::mutations::{container, pod};
use crate::real::{everything, the_dockerfile};
use crate::repo::{self, Manifest};
use crate::{assert_complains, assert_no_problems, commands, containers, dockerfile, tree};

#[test]
fn dockerfile_check_catches_root_missing_binaries_and_unexposed_ports() {
    let text = repo::read("Dockerfile")
        .replace("USER 65532:65532", "USER 0")
        .replace("--bin greeter-server", "")
        .replace("EXPOSE 8080 9090 18000", "EXPOSE 8080 9090");
    let broken = dockerfile::Dockerfile::parse(&text);
    let all = ["control-plane", "greeter-server", "greeter-client"]
        .map(String::from)
        .into();
    let problems = dockerfile::problems(&broken, &all);
    assert_complains(&problems, &["USER is root"]);
    assert_complains(&problems, &["greeter-server is not built"]);
    assert_complains(
        &tree::exposed_ports(&everything(), &broken.exposed),
        &["18000 is not EXPOSEd"],
    );
    let unbroken = dockerfile::problems(&the_dockerfile(), &all);
    assert_no_problems("unbroken Dockerfile, all three binaries", &unbroken);
}

/// Needs the greeter-server binary (see the crate docs).
#[test]
fn container_check_catches_unknown_env_bad_values_and_short_grace() {
    let mut objects = everything();
    let installed = the_dockerfile().installed();
    let check = |objects: &mut Vec<Manifest>| {
        let pod = pod(objects, "greeter-server").clone();
        let (name, args) = containers::binary_of(&pod.containers[0], &installed).expect("binary");
        let help = help_for_args(&name, &args).expect("greeter-server --help");
        containers::against_help(&pod.containers[0], &pod, &args, &help)
    };
    assert_no_problems("unbroken", &check(&mut objects));

    let env = container(&mut objects, "greeter-server")
        .env
        .as_mut()
        .unwrap();
    env.push(EnvVar {
        name: "GREETER_LISTN".into(),
        value: Some("0.0.0.0:8080".into()),
        value_from: None,
    });
    env.iter_mut()
        .find(|e| e.name == "LOG_FORMAT")
        .unwrap()
        .value = Some("xml".into());
    let pod_name = env.iter_mut().find(|e| e.name == "POD_NAME").unwrap();
    pod_name.value = Some("greeter".into());
    pod_name.value_from = None;
    container(&mut objects, "greeter-server").args = Some(vec!["--bogus".into()]);
    pod(&mut objects, "greeter-server").termination_grace_period_seconds = Some(25);
    let problems = check(&mut objects);
    assert_complains(&problems, &["sets GREETER_LISTN", "does not read"]);
    assert_complains(&problems, &["LOG_FORMAT=xml", "accepts only"]);
    assert_complains(&problems, &["POD_NAME must come from the downward API"]);
    assert_complains(&problems, &["passes --bogus"]);
    assert_complains(&problems, &["terminationGracePeriodSeconds 25"]);

    let mut objects = everything();
    container(&mut objects, "greeter-server")
        .liveness_probe
        .as_mut()
        .unwrap()
        .failure_threshold = Some(3);
    assert_complains(&check(&mut objects), &["liveness probe gives up after 30s"]);

    let mut objects = everything();
    container(&mut objects, "greeter-server").command = Some(vec!["/bin/greeter-server".into()]);
    let error = containers::binary_of(
        &pod(&mut objects, "greeter-server").containers[0],
        &installed,
    )
    .expect_err("not installed there");
    assert!(error.contains("does not install"), "{error}");
}

/// Needs the greeter-server and control-plane binaries.
#[test]
fn command_check_catches_unknown_flags_and_subcommands() {
    let doc = "```sh\ngreeter-server --listen 0.0.0.0:8080 --bogus\ncontrol-plane serv --listen 0.0.0.0:18000\n```\n";
    let problems: Vec<String> = commands::extract("doc.md", doc)
        .iter()
        .flat_map(commands::check)
        .collect();
    assert_complains(&problems, &["doc.md:2", "has no option --bogus"]);
    assert_complains(&problems, &["doc.md:3", "no subcommand \"serv\""]);
    let fine = "```sh\ngreeter-server --listen 0.0.0.0:8080 --name a\ncontrol-plane serve --listen 0.0.0.0:18000\n```\n";
    let problems: Vec<String> = commands::extract("doc.md", fine)
        .iter()
        .flat_map(commands::check)
        .collect();
    assert_no_problems("unbroken commands", &problems);
}
