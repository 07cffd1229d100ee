//! What the session refuses (a NACK that keeps the last good update) and
//! the unusual forms it accepts.

use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use envoy_types::pb::envoy::service::discovery::v3::Resource;
use tests::fake_xds::{self, Health, any};

use super::state::{names, resolved, response, state};
use super::{addr, hcm_filters};
use crate::model::Resolution;

#[test]
fn an_invalid_update_is_nacked_and_the_last_good_one_kept() {
    let mut s = resolved(&[
        (addr(1), Health::Healthy, "a"),
        (addr(2), Health::Healthy, "b"),
    ]);
    let before = s.resolution("greeter").flat();
    let outcome = s.on_response(response(
        xds_type_urls::CLUSTER_LOAD_ASSIGNMENT,
        "2",
        "n5",
        vec![any(fake_xds::load_assignment(
            "greeter-cluster",
            &[
                (addr(1), Health::Healthy, "a"),
                (addr(1), Health::Healthy, "a-again"),
            ],
        ))],
    ));
    let nack = outcome.nack.expect("NACK");
    assert!(nack.contains("address 10.0.0.1:1 appears twice"), "{nack}");
    let [request] = outcome.requests.as_slice() else {
        panic!("{:#?}", outcome.requests)
    };
    assert_eq!(request.version_info, "1", "the last accepted version");
    assert_eq!(request.response_nonce, "n5");
    let detail = request.error_detail.as_ref().expect("error detail");
    assert_eq!(detail.code, 3);
    assert!(
        detail.message.contains("appears twice"),
        "{}",
        detail.message
    );
    assert_eq!(s.resolution("greeter").flat(), before);
    // The next good update is taken.
    let outcome = s.on_response(response(
        xds_type_urls::CLUSTER_LOAD_ASSIGNMENT,
        "3",
        "n6",
        vec![any(fake_xds::load_assignment(
            "greeter-cluster",
            &[(addr(3), Health::Healthy, "c")],
        ))],
    ));
    assert!(outcome.nack.is_none());
    assert_eq!(outcome.requests[0].version_info, "3");
}

#[test]
fn unknown_types_are_nacked() {
    let mut s = state("greeter");
    s.on_stream_start();
    let outcome = s.on_response(response(
        "type.googleapis.com/some.Other",
        "1",
        "n1",
        vec![],
    ));
    let nack = outcome.nack.expect("NACK");
    assert!(nack.contains("some.Other"), "{nack}");
    assert_eq!(outcome.requests[0].response_nonce, "n1");
}

#[test]
fn inline_routes_and_wrapped_resources_are_accepted() {
    let mut listener = fake_xds::listener("greeter", "unused");
    let hcm = HttpConnectionManager {
        route_specifier: Some(RouteSpecifier::RouteConfig(fake_xds::route_configuration(
            "inline", "c9",
        ))),
        http_filters: hcm_filters(&listener),
        ..Default::default()
    };
    listener.api_listener = Some(envoy_types::pb::envoy::config::listener::v3::ApiListener {
        api_listener: Some(any(hcm)),
    });
    let wrapped = Resource {
        name: "greeter".into(),
        resource: Some(any(listener)),
        ..Default::default()
    };
    let mut s = state("greeter");
    s.on_stream_start();
    let outcome = s.on_response(response(
        xds_type_urls::LISTENER,
        "1",
        "n1",
        vec![any(wrapped)],
    ));
    assert!(outcome.nack.is_none(), "{:?}", outcome.nack);
    let cds = outcome
        .requests
        .iter()
        .find(|r| r.type_url == xds_type_urls::CLUSTER)
        .expect("straight to CDS");
    assert_eq!(names(cds), ["c9"]);
}

#[test]
fn a_tls_cluster_naming_an_unknown_provider_instance_is_nacked() {
    use envoy_types::pb::envoy::config::core::v3::{TransportSocket, transport_socket};
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::ValidationContextType;
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
        CertificateProviderPluginInstance, CertificateValidationContext, CommonTlsContext,
        UpstreamTlsContext,
    };
    let instance = |name: &str| CertificateProviderPluginInstance {
        instance_name: name.into(),
        certificate_name: String::new(),
    };
    let mut cluster = fake_xds::cluster("greeter-cluster");
    cluster.transport_socket = Some(TransportSocket {
        name: "envoy.transport_sockets.tls".into(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(any(
            UpstreamTlsContext {
                common_tls_context: Some(CommonTlsContext {
                    tls_certificate_provider_instance: Some(instance("default")),
                    validation_context_type: Some(ValidationContextType::ValidationContext(
                        CertificateValidationContext {
                            ca_certificate_provider_instance: Some(instance("roots")),
                            ..Default::default()
                        },
                    )),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ))),
    });
    let response = || {
        response(
            xds_type_urls::CLUSTER,
            "2",
            "n9",
            vec![any(cluster.clone())],
        )
    };

    let mut plain = resolved(&[(addr(1), Health::Healthy, "a")]);
    let outcome = plain.on_response(response());
    let nack = outcome.nack.expect("NACKed");
    assert!(
        nack.contains("unrecognized certificate provider instance name: default (the bootstrap defines no certificate_providers)"),
        "{nack}"
    );
    assert!(
        matches!(
            plain.resolution("greeter").flat(),
            Resolution::Endpoints { .. }
        ),
        "the last good cluster stays"
    );

    let names = std::sync::Arc::new(["default".to_owned()].into_iter().collect());
    let mut with_identity_only =
        resolved(&[(addr(1), Health::Healthy, "a")]).with_certificate_providers(names);
    let nack = with_identity_only
        .on_response(response())
        .nack
        .expect("NACKed");
    assert!(
        nack.contains("unrecognized certificate provider instance name: roots (the bootstrap's certificate_providers: default)"),
        "{nack}"
    );
}
