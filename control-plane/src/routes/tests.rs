use std::collections::BTreeMap;

use super::*;
use crate::model::{Service, ServicePort};

fn service(name: &str, ports: &[u16]) -> Service {
    Service {
        name: name.into(),
        namespace: "default".into(),
        ports: ports
            .iter()
            .map(|port| ServicePort {
                name: None,
                port: *port,
                endpoints: vec![],
            })
            .collect(),
        tls: None,
        policy: Default::default(),
    }
}

fn services(list: &[(&str, &[u16])]) -> BTreeMap<String, Service> {
    list.iter()
        .map(|(name, ports)| ((*name).to_owned(), service(name, ports)))
        .collect()
}

fn backend(service: &str, weight: u32) -> Backend {
    Backend {
        service: service.into(),
        port: 80,
        weight,
    }
}

fn method(service: Option<&str>, name: Option<&str>) -> CallMatch {
    CallMatch {
        method: MethodMatch::exact(service, name),
        headers: vec![],
    }
}

fn route(name: &str, parent: &str, rules: Vec<RouteRule>) -> TrafficRoute {
    TrafficRoute {
        name: name.into(),
        order: 0,
        parents: vec![RouteParent {
            service: parent.into(),
            port: None,
        }],
        rules,
        problems: vec![],
    }
}

fn rule(matches: Vec<CallMatch>, backends: Vec<Backend>) -> RouteRule {
    RouteRule { matches, backends }
}

fn run(routes: &[TrafficRoute], svcs: &BTreeMap<String, Service>) -> Resolution {
    resolve(routes, |name| svcs.get(name))
}

fn origins(resolution: &Resolution, service: &str, port: u16) -> Vec<String> {
    let (_, table) = resolution.tables[service]
        .iter()
        .find(|(p, _)| *p == port)
        .expect("a table for the port");
    table.entries.iter().map(|e| e.origin.clone()).collect()
}

#[test]
fn a_weighted_split_attaches_to_every_port_of_its_parent() {
    let svcs = services(&[("greeter", &[80, 81]), ("v1", &[80]), ("v2", &[80])]);
    let split = route(
        "canary",
        "greeter",
        vec![rule(vec![], vec![backend("v1", 80), backend("v2", 20)])],
    );
    let resolution = run(&[split], &svcs);
    assert_eq!(resolution.statuses.len(), 1);
    let status = &resolution.statuses[0];
    assert_eq!(status.state, RouteState::Accepted);
    assert_eq!(
        status.attached,
        vec![("greeter".to_owned(), 80), ("greeter".to_owned(), 81)]
    );
    let tables = &resolution.tables["greeter"];
    assert_eq!(tables.len(), 2);
    let entry = &tables[0].1.entries[0];
    assert_eq!(
        entry.matcher,
        CallMatch::default(),
        "no matches: every call"
    );
    assert_eq!(entry.backends, vec![backend("v1", 80), backend("v2", 20)]);
    assert!(
        !resolution.tables.contains_key("v1"),
        "backends keep their default"
    );
}

#[test]
fn a_parent_port_limits_the_route_to_that_port() {
    let svcs = services(&[("greeter", &[80, 81]), ("v2", &[80])]);
    let mut one_port = route("r", "greeter", vec![rule(vec![], vec![backend("v2", 1)])]);
    one_port.parents[0].port = Some(81);
    let resolution = run(&[one_port.clone()], &svcs);
    let ports: Vec<u16> = resolution.tables["greeter"]
        .iter()
        .map(|(p, _)| *p)
        .collect();
    assert_eq!(ports, vec![81]);

    one_port.parents[0].port = Some(82);
    let resolution = run(&[one_port], &svcs);
    assert!(resolution.tables.is_empty());
    assert!(matches!(
        &resolution.statuses[0].state,
        RouteState::NotAttached(reason) if reason.contains("has no port 82")
    ));
}

#[test]
fn precedence_follows_the_longest_service_then_method_then_headers() {
    let svcs = services(&[
        ("greeter", &[80]),
        ("v1", &[80]),
        ("v2", &[80]),
        ("v3", &[80]),
    ]);
    let with_header = CallMatch {
        method: MethodMatch::exact(Some("greet.Greeter"), None),
        headers: vec![HeaderMatch {
            name: "x-canary".into(),
            value: "yes".into(),
            regex: false,
        }],
    };
    let routes = [
        // Written catch-all first: it must still come last.
        route(
            "a",
            "greeter",
            vec![
                rule(vec![], vec![backend("v1", 1)]),
                rule(
                    vec![method(Some("greet.Greeter"), None), with_header],
                    vec![backend("v3", 1)],
                ),
                rule(
                    vec![method(Some("greet.Greeter"), Some("SayHello"))],
                    vec![backend("v2", 1)],
                ),
            ],
        ),
        // Same precedence as a's service-only match; a comes first by name.
        route(
            "b",
            "greeter",
            vec![rule(
                vec![method(Some("greet.Greeter"), None)],
                vec![backend("v1", 1)],
            )],
        ),
    ];
    let resolution = run(&routes, &svcs);
    assert_eq!(
        origins(&resolution, "greeter", 80),
        vec![
            "a/rule-2/match-0", // service and method
            "a/rule-1/match-1", // service and a header
            "a/rule-1/match-0", // service
            "b/rule-0/match-0", // service, later route
            "a/rule-0/match-0", // everything
        ]
    );
}

#[test]
fn an_older_route_wins_a_tie() {
    let svcs = services(&[("greeter", &[80]), ("v1", &[80])]);
    let mut late = route(
        "a-late",
        "greeter",
        vec![rule(vec![], vec![backend("v1", 1)])],
    );
    late.order = 20;
    let mut early = route(
        "z-early",
        "greeter",
        vec![rule(vec![], vec![backend("v1", 1)])],
    );
    early.order = 10;
    let resolution = run(&[late, early], &svcs);
    assert_eq!(
        origins(&resolution, "greeter", 80),
        vec!["z-early/rule-0/match-0", "a-late/rule-0/match-0"]
    );
    let names: Vec<_> = resolution
        .statuses
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(names, vec!["a-late", "z-early"], "statuses in name order");
}

#[test]
fn a_route_that_cannot_be_honoured_is_refused_whole() {
    let svcs = services(&[("greeter", &[80]), ("v1", &[80])]);
    let refused = |route: TrafficRoute, expected: &str| {
        let resolution = run(&[route], &svcs);
        assert!(resolution.tables.is_empty(), "nothing applied");
        match &resolution.statuses[0].state {
            RouteState::Refused(reason) => {
                assert!(
                    reason.contains(expected),
                    "{reason:?} should say {expected:?}"
                );
            }
            other => panic!("expected refused, got {other:?}"),
        }
    };
    // One good rule does not save a route with a bad one.
    let good = rule(vec![], vec![backend("v1", 1)]);
    refused(
        route(
            "r",
            "greeter",
            vec![good.clone(), rule(vec![], vec![backend("v9", 1)])],
        ),
        "backend Service v9 does not exist",
    );
    refused(
        route(
            "r",
            "greeter",
            vec![
                good.clone(),
                rule(
                    vec![],
                    vec![Backend {
                        port: 81,
                        ..backend("v1", 1)
                    }],
                ),
            ],
        ),
        "backend Service v1 has no port 81",
    );
    refused(
        route("r", "greeter", vec![rule(vec![], vec![backend("v1", 0)])]),
        "no backend with a weight above 0",
    );
    refused(route("r", "greeter", vec![]), "no rules");
    let mut with_problem = route("r", "greeter", vec![good.clone()]);
    with_problem.problems = vec!["filter RequestMirror is not supported".into()];
    refused(with_problem, "RequestMirror");
    refused(
        route(
            "r",
            "greeter",
            vec![rule(
                vec![method(Some("greet/Greeter"), None)],
                vec![backend("v1", 1)],
            )],
        ),
        "not a gRPC service name",
    );
    let bad_regex = CallMatch {
        method: MethodMatch {
            service: None,
            method: Some("Say(".into()),
            regex: true,
        },
        headers: vec![],
    };
    refused(
        route(
            "r",
            "greeter",
            vec![rule(vec![bad_regex], vec![backend("v1", 1)])],
        ),
        "method pattern",
    );
    let binary_header = CallMatch {
        method: MethodMatch::any(),
        headers: vec![HeaderMatch {
            name: "trace-bin".into(),
            value: "x".into(),
            regex: false,
        }],
    };
    refused(
        route(
            "r",
            "greeter",
            vec![rule(vec![binary_header], vec![backend("v1", 1)])],
        ),
        "-bin",
    );
}

#[test]
fn weight_zero_backends_must_exist_but_are_left_out() {
    let svcs = services(&[("greeter", &[80]), ("v1", &[80]), ("v2", &[80])]);
    let resolution = run(
        &[route(
            "r",
            "greeter",
            vec![rule(vec![], vec![backend("v1", 100), backend("v2", 0)])],
        )],
        &svcs,
    );
    let entry = &resolution.tables["greeter"][0].1.entries[0];
    assert_eq!(entry.backends, vec![backend("v1", 100)]);
}

#[test]
fn a_route_without_its_parent_is_not_attached_and_a_missing_parent_is_listed() {
    let svcs = services(&[("greeter", &[80]), ("v1", &[80])]);
    let mut two = route("r", "greeter", vec![rule(vec![], vec![backend("v1", 1)])]);
    two.parents.push(RouteParent {
        service: "gone".into(),
        port: None,
    });
    let resolution = run(&[two], &svcs);
    let status = &resolution.statuses[0];
    assert_eq!(status.state, RouteState::Accepted);
    assert_eq!(status.missing_parents, vec!["gone (no Service gone)"]);

    let orphan = route("r", "gone", vec![rule(vec![], vec![backend("v1", 1)])]);
    let resolution = run(&[orphan], &svcs);
    assert!(matches!(
        &resolution.statuses[0].state,
        RouteState::NotAttached(reason) if reason.contains("no Service gone")
    ));
    assert!(resolution.tables.is_empty());
}
