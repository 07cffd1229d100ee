use super::*;

fn endpoint(addr: &str, state: Readiness) -> Endpoint {
    Endpoint {
        state,
        ..Endpoint::ready(addr.parse().unwrap())
    }
}

fn service(ports: Vec<ServicePort>) -> Service {
    Service {
        name: "greeter".into(),
        namespace: "default".into(),
        ports,
        tls: None,
        policy: TrafficPolicy::default(),
    }
}

fn port(name: Option<&str>, number: u16, endpoints: Vec<Endpoint>) -> ServicePort {
    ServicePort {
        name: name.map(Into::into),
        port: number,
        endpoints,
    }
}

#[test]
fn normalize_sorts_and_keeps_the_best_duplicate() {
    let mut svc = service(vec![port(
        None,
        80,
        vec![
            endpoint("10.0.0.2:8080", Readiness::Ready),
            endpoint("10.0.0.1:8080", Readiness::NotReady),
            endpoint("10.0.0.1:8080", Readiness::Draining),
            endpoint("10.0.0.1:9090", Readiness::Ready),
        ],
    )]);
    svc.normalize();
    let got: Vec<_> = svc.ports[0]
        .endpoints
        .iter()
        .map(|e| (e.socket_addr().to_string(), e.state))
        .collect();
    assert_eq!(
        got,
        vec![
            ("10.0.0.1:8080".to_owned(), Readiness::Draining),
            ("10.0.0.1:9090".to_owned(), Readiness::Ready),
            ("10.0.0.2:8080".to_owned(), Readiness::Ready),
        ]
    );
}

#[test]
fn validate_rejects_bad_definitions() {
    let ok = service(vec![port(Some("grpc"), 80, vec![])]);
    assert_eq!(ok.validate("default"), Ok(()));
    assert!(matches!(
        ok.validate("other"),
        Err(ModelError::WrongNamespace { .. })
    ));
    let mut dotted = ok.clone();
    dotted.name = "greeter.v2".into();
    assert!(matches!(
        dotted.validate("default"),
        Err(ModelError::InvalidName(_))
    ));
    let none = service(vec![]);
    assert!(matches!(
        none.validate("default"),
        Err(ModelError::NoPorts(_))
    ));
    let twice = service(vec![
        port(Some("grpc"), 80, vec![]),
        port(Some("grpc"), 81, vec![]),
    ]);
    assert!(matches!(
        twice.validate("default"),
        Err(ModelError::DuplicatePort { .. })
    ));
    let zero = service(vec![port(
        None,
        80,
        vec![endpoint("10.0.0.1:0", Readiness::Ready)],
    )]);
    assert!(matches!(
        zero.validate("default"),
        Err(ModelError::ZeroEndpointPort { .. })
    ));
}

#[test]
fn port_selection() {
    let one = service(vec![port(Some("grpc"), 80, vec![])]);
    assert_eq!(one.port(None).map(|p| p.port), Some(80));
    assert_eq!(one.port(Some("80")).map(|p| p.port), Some(80));
    assert_eq!(one.port(Some("grpc")).map(|p| p.port), Some(80));
    assert!(one.port(Some("81")).is_none());
    let two = service(vec![
        port(None, 80, vec![]),
        port(Some("admin"), 9000, vec![]),
    ]);
    assert!(two.port(None).is_none(), "ambiguous without a port");
    assert_eq!(two.port(Some("admin")).map(|p| p.port), Some(9000));
}

#[test]
fn dns_labels() {
    for good in ["a", "greeter", "greeter-2", "0abc"] {
        assert!(is_dns_label(good), "{good}");
    }
    for bad in ["", "-a", "a-", "Greeter", "a.b", "a:b", &"a".repeat(64)] {
        assert!(!is_dns_label(bad), "{bad}");
    }
}
