use std::net::Ipv4Addr;

use ::tests::fake_kube::{
    EndpointFixture, EndpointSliceFixture, EndpointState as K8sState, ServiceFixture,
};
use k8s_openapi::api::discovery::v1::EndpointConditions;

use super::*;

fn conditions(
    ready: Option<bool>,
    serving: Option<bool>,
    terminating: Option<bool>,
) -> EndpointConditions {
    EndpointConditions {
        ready,
        serving,
        terminating,
    }
}

#[test]
fn conditions_map_to_states() {
    use Readiness::*;
    let cases = [
        (None, Ready),
        (Some(conditions(None, None, None)), Ready),
        (Some(conditions(Some(true), Some(true), Some(false))), Ready),
        (
            Some(conditions(Some(false), Some(false), Some(false))),
            NotReady,
        ),
        (Some(conditions(Some(false), None, None)), NotReady),
        (
            Some(conditions(Some(false), Some(true), Some(true))),
            Draining,
        ),
        (
            Some(conditions(Some(false), Some(false), Some(true))),
            NotReady,
        ),
        // Terminating wins even over a (hand-written) ready flag.
        (Some(conditions(Some(true), None, Some(true))), Draining),
    ];
    for (given, want) in cases {
        assert_eq!(endpoint_state(given.as_ref()), want, "{given:?}");
    }
    for (state, want) in [
        (K8sState::Ready, Ready),
        (K8sState::NotReady, NotReady),
        (K8sState::Terminating, Draining),
        (K8sState::TerminatingNotServing, NotReady),
    ] {
        assert_eq!(endpoint_state(Some(&state.conditions())), want);
    }
}

#[test]
fn services_keep_tcp_ports_and_skip_what_cannot_be_served() {
    let mut svc = ServiceFixture::new("greeter")
        .port("grpc", 80, "grpc")
        .port("admin", 9000, 9000)
        .build();
    svc.spec.as_mut().unwrap().ports.as_mut().unwrap()[1].protocol = Some("UDP".into());
    let info = service_info(&svc).unwrap();
    assert_eq!(info.ports, vec![(Some("grpc".to_owned()), 80)]);
    assert_eq!(info.problems.len(), 1, "{:?}", info.problems);

    let unnamed = service_info(&ServiceFixture::new("one").unnamed_port(80, 8080).build()).unwrap();
    assert_eq!(unnamed.ports, vec![(None, 80)]);

    let mut external = ServiceFixture::new("ext").port("grpc", 80, 80).build();
    external.spec.as_mut().unwrap().type_ = Some("ExternalName".into());
    assert!(service_info(&external).is_err());
    assert!(service_info(&ServiceFixture::new("portless").build()).is_err());
}

#[test]
fn slices_decode_endpoints_and_note_bad_parts() {
    let slice = EndpointSliceFixture::for_service("greeter")
        .name("greeter-a")
        .port("grpc", 8080)
        .endpoint_with(
            EndpointFixture::new("10.0.0.1")
                .zone("zone-a")
                .pod("greeter-0"),
        )
        .endpoint("10.0.0.2", K8sState::Terminating)
        .endpoint("not-an-ip", K8sState::Ready)
        .endpoint("fd00::1", K8sState::Ready)
        .build();
    let info = slice_info(&slice).unwrap();
    assert_eq!(info.service, "greeter");
    assert_eq!(info.ports, vec![("grpc".to_owned(), 8080)]);
    let got: Vec<_> = info
        .endpoints
        .iter()
        .map(|e| {
            (
                e.address.to_string(),
                e.state,
                e.zone.clone(),
                e.instance.clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "10.0.0.1".into(),
                Readiness::Ready,
                Some("zone-a".into()),
                Some("greeter-0".into())
            ),
            ("10.0.0.2".into(), Readiness::Draining, None, None),
        ]
    );
    assert_eq!(info.problems.len(), 2, "{:?}", info.problems);

    let v6 = EndpointSliceFixture::for_service("greeter")
        .unnamed_port(8080)
        .endpoint("fd00::7", K8sState::Ready)
        .build();
    let info = slice_info(&v6).unwrap();
    assert_eq!(
        info.endpoints[0].address,
        "fd00::7".parse::<IpAddr>().unwrap()
    );
    assert_eq!(info.ports, vec![(String::new(), 8080)]);

    let fqdn = EndpointSliceFixture::for_service("greeter")
        .address_type("FQDN")
        .build();
    assert!(slice_info(&fqdn).is_err());
    let orphan = EndpointSliceFixture::for_service("greeter")
        .without_service_label()
        .build();
    assert!(slice_info(&orphan).is_err());
}

#[test]
fn named_target_ports_resolve_per_slice_and_slices_merge() {
    let service = service_info(
        &ServiceFixture::new("greeter")
            .port("grpc", 80, "grpc")
            .port("metrics", 9090, 9090)
            .build(),
    )
    .unwrap();
    let a = slice_info(
        &EndpointSliceFixture::for_service("greeter")
            .port("grpc", 8080)
            .port("metrics", 9090)
            .endpoints_from(Ipv4Addr::new(10, 0, 0, 1), 75, K8sState::Ready)
            .build(),
    )
    .unwrap();
    // Pods of another revision listen on another port under the same name.
    let b = slice_info(
        &EndpointSliceFixture::for_service("greeter")
            .port("grpc", 50051)
            .endpoints_from(Ipv4Addr::new(10, 0, 1, 1), 75, K8sState::Ready)
            .build(),
    )
    .unwrap();
    let mut built = build("default", &service, [&a, &b]);
    built.normalize();
    assert_eq!(built.validate("default"), Ok(()));
    let grpc = built.port(Some("grpc")).unwrap();
    assert_eq!(grpc.port, 80);
    assert_eq!(grpc.endpoints.len(), 150);
    assert!(grpc.endpoints[..75].iter().all(|e| e.port == 8080));
    assert!(grpc.endpoints[75..].iter().all(|e| e.port == 50051));
    let metrics = built.port(Some("metrics")).unwrap();
    assert_eq!(metrics.endpoints.len(), 75, "slice b has no metrics port");
}

#[test]
fn an_address_in_two_slices_is_served_once() {
    let service = service_info(
        &ServiceFixture::new("greeter")
            .unnamed_port(80, 8080)
            .build(),
    )
    .unwrap();
    let slice = |state| {
        slice_info(
            &EndpointSliceFixture::for_service("greeter")
                .unnamed_port(8080)
                .endpoint("10.0.0.1", state)
                .endpoint("10.0.0.2", K8sState::Ready)
                .build(),
        )
        .unwrap()
    };
    let (a, b) = (slice(K8sState::Ready), slice(K8sState::Terminating));
    let mut built = build("default", &service, [&a, &b]);
    built.normalize();
    let endpoints = &built.ports[0].endpoints;
    assert_eq!(endpoints.len(), 2);
    assert_eq!(endpoints[0].state, Readiness::Ready);
}

#[test]
fn a_slice_without_the_service_port_contributes_nothing() {
    let service = service_info(
        &ServiceFixture::new("greeter")
            .port("grpc", 80, "grpc")
            .build(),
    )
    .unwrap();
    let slice = slice_info(
        &EndpointSliceFixture::for_service("greeter")
            .port("http", 8080)
            .endpoint("10.0.0.1", K8sState::Ready)
            .build(),
    )
    .unwrap();
    let built = build("default", &service, [&slice]);
    assert!(built.ports[0].endpoints.is_empty());
}

#[test]
fn tls_annotations_mark_services_and_list_san_patterns() {
    use crate::model::{SanMatcher, ServiceTls};
    let info =
        |fixture: ServiceFixture| service_info(&fixture.port("grpc", 80, "grpc").build()).unwrap();
    assert_eq!(info(ServiceFixture::new("plain")).tls, None);
    assert_eq!(
        info(ServiceFixture::new("any").annotation(TLS_ANNOTATION, "true")).tls,
        Some(ServiceTls::default())
    );
    let sans = info(ServiceFixture::new("sans").annotation(
        TLS_SANS_ANNOTATION,
        "greeter.default.svc.cluster.local, spiffe://cluster.local/ns/default/*",
    ));
    assert_eq!(
        sans.tls,
        Some(ServiceTls {
            subject_alt_names: vec![
                SanMatcher::Exact("greeter.default.svc.cluster.local".into()),
                SanMatcher::Prefix("spiffe://cluster.local/ns/default/".into()),
            ],
        })
    );
    assert_eq!(
        info(ServiceFixture::new("off").annotation(TLS_ANNOTATION, "false")).tls,
        None
    );
    let typo = info(ServiceFixture::new("typo").annotation(TLS_ANNOTATION, "yes"));
    assert_eq!(
        typo.tls,
        Some(ServiceTls::default()),
        "a typo never means plaintext"
    );
    assert_eq!(typo.problems.len(), 1, "{:?}", typo.problems);
}
