//! Resource validation, rule by rule.

use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, LbPolicy,
};
use envoy_types::pb::envoy::config::core::v3::{TransportSocket, transport_socket};
use envoy_types::pb::envoy::config::endpoint::v3::LocalityLbEndpoints;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::ValidationContextType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateProviderPluginInstance, CertificateValidationContext, CommonTlsContext,
    DownstreamTlsContext, SubjectAltNameMatcher, UpstreamTlsContext,
};
use envoy_types::pb::envoy::r#type::matcher::v3::StringMatcher;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::google::protobuf::{Any, UInt32Value};
use prost::Message;
use tests::fake_xds::{self, Health, any};

use super::{addr, hcm_filters};
use crate::xds::decode::{self, DecodeError, Kind};

fn invalid_reason(kind: Kind, resource: Any) -> String {
    match decode::decode(kind, &resource) {
        Err(DecodeError::Invalid { reason, .. }) => reason,
        other => panic!("expected an invalid {}: {other:?}", kind.label()),
    }
}

#[test]
fn listeners_are_validated_like_grpc() {
    let with_filters = |filters: Vec<HttpFilter>| {
        let mut listener = fake_xds::listener("l", "r");
        let mut hcm = HttpConnectionManager::decode(
            listener
                .api_listener
                .as_ref()
                .and_then(|a| a.api_listener.as_ref())
                .expect("hcm")
                .value
                .as_slice(),
        )
        .expect("decode");
        hcm.http_filters = filters;
        listener.api_listener = Some(envoy_types::pb::envoy::config::listener::v3::ApiListener {
            api_listener: Some(any(hcm)),
        });
        any(listener)
    };
    let router = hcm_filters(&fake_xds::listener("l", "r")).remove(0);
    let other = HttpFilter {
        name: "fault".into(),
        ..Default::default()
    };
    assert!(invalid_reason(Kind::Listener, with_filters(vec![])).contains("no HTTP filters"));
    assert!(
        invalid_reason(
            Kind::Listener,
            with_filters(vec![router.clone(), other.clone()])
        )
        .contains("not the router")
    );
    assert!(
        invalid_reason(
            Kind::Listener,
            with_filters(vec![other.clone(), router.clone()])
        )
        .contains("not supported")
    );
    let optional = HttpFilter {
        is_optional: true,
        ..other
    };
    assert!(decode::decode(Kind::Listener, &with_filters(vec![optional, router])).is_ok());

    let no_api = envoy_types::pb::envoy::config::listener::v3::Listener {
        name: "l".into(),
        ..Default::default()
    };
    assert!(invalid_reason(Kind::Listener, any(no_api)).contains("api_listener"));
    assert!(matches!(
        decode::decode(Kind::Listener, &any(fake_xds::cluster("c"))),
        Err(DecodeError::WrongType { .. })
    ));
    let garbage = Any {
        type_url: xds_type_urls::LISTENER.into(),
        value: vec![0xff, 0xff, 0xff],
    };
    assert!(matches!(
        decode::decode(Kind::Listener, &garbage),
        Err(DecodeError::Malformed { .. })
    ));
}

#[test]
fn clusters_are_validated_like_grpc() {
    let mut dns = fake_xds::cluster("c");
    dns.cluster_discovery_type = Some(ClusterDiscoveryType::Type(DiscoveryType::LogicalDns as i32));
    assert!(invalid_reason(Kind::Cluster, any(dns)).contains("LOGICAL_DNS"));
    let mut ring = fake_xds::cluster("c");
    ring.lb_policy = LbPolicy::RingHash as i32;
    assert!(invalid_reason(Kind::Cluster, any(ring)).contains("RING_HASH"));
    let mut tls = fake_xds::cluster("c");
    tls.transport_socket = Some(TransportSocket::default());
    assert!(invalid_reason(Kind::Cluster, any(tls)).contains("transport_socket"));
    let mut no_eds = fake_xds::cluster("c");
    no_eds.eds_cluster_config = None;
    assert!(invalid_reason(Kind::Cluster, any(no_eds)).contains("eds_cluster_config"));
    let mut named = fake_xds::cluster("c");
    if let Some(eds) = named.eds_cluster_config.as_mut() {
        eds.service_name = "svc-endpoints".into();
    }
    let (_, decoded) = decode::decode(Kind::Cluster, &any(named)).expect("valid");
    assert_eq!(
        decoded,
        decode::Decoded::Cluster(decode::ClusterInfo {
            eds_name: "svc-endpoints".into(),
            tls: None,
            policy: crate::model::PickPolicy::RoundRobin,
        })
    );
}

#[test]
fn load_assignments_are_validated_like_grpc() {
    let good = |spec: &[fake_xds::EndpointSpec<'_>]| fake_xds::load_assignment("c", spec);
    let endpoints_of = |cla| match decode::decode(Kind::Endpoints, &any(cla)) {
        Ok((_, decode::Decoded::Endpoints(list))) => list,
        other => panic!("{other:?}"),
    };

    // A locality without weight or without locality is dropped silently.
    let mut cla = good(&[(addr(1), Health::Healthy, "a")]);
    let mut weightless = cla.endpoints[0].clone();
    weightless.load_balancing_weight = None;
    weightless.locality.as_mut().expect("locality").zone = "zone-b".into();
    weightless.lb_endpoints = vec![fake_xds::lb_endpoint((addr(2), Health::Healthy, "b"))];
    let mut placeless = cla.endpoints[0].clone();
    placeless.locality = None;
    placeless.lb_endpoints = vec![fake_xds::lb_endpoint((addr(3), Health::Healthy, "c"))];
    cla.endpoints.push(weightless);
    cla.endpoints.push(placeless);
    let list = endpoints_of(cla);
    assert_eq!(list.iter().map(|e| e.addr).collect::<Vec<_>>(), [addr(1)]);

    // Priorities: no gaps; every priority's endpoints are kept, lowest
    // priority first, each with its priority.
    let mut cla = good(&[(addr(1), Health::Unhealthy, "a")]);
    let mut backup = cla.endpoints[0].clone();
    backup.priority = 1;
    backup.locality.as_mut().expect("locality").zone = "zone-b".into();
    backup.lb_endpoints = vec![fake_xds::lb_endpoint((addr(2), Health::Healthy, "b"))];
    cla.endpoints.insert(0, backup.clone());
    assert_eq!(
        endpoints_of(cla)
            .iter()
            .map(|e| (e.addr, e.priority, e.zone.as_str()))
            .collect::<Vec<_>>(),
        [(addr(1), 0, "zone-a"), (addr(2), 1, "zone-b")]
    );
    let mut gap = good(&[(addr(1), Health::Healthy, "a")]);
    backup.priority = 2;
    gap.endpoints.push(backup);
    assert!(invalid_reason(Kind::Endpoints, any(gap)).contains("priority 1 is missing"));

    let mut zero = good(&[(addr(1), Health::Healthy, "a")]);
    zero.endpoints[0].lb_endpoints[0].load_balancing_weight = Some(UInt32Value { value: 0 });
    assert!(invalid_reason(Kind::Endpoints, any(zero)).contains("weight 0"));

    let mut twice: LocalityLbEndpoints =
        good(&[(addr(1), Health::Healthy, "a")]).endpoints.remove(0);
    twice
        .lb_endpoints
        .push(fake_xds::lb_endpoint((addr(2), Health::Healthy, "b")));
    let mut cla = good(&[]);
    cla.endpoints = vec![twice.clone(), twice];
    assert!(invalid_reason(Kind::Endpoints, any(cla)).contains("appears twice in priority 0"));

    let mut host = good(&[(addr(1), Health::Healthy, "a")]);
    let text = format!("{:?}", host.endpoints[0].lb_endpoints[0]);
    assert!(text.contains("10.0.0.1"));
    if let Some(
        envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier::Endpoint(e),
    ) = host.endpoints[0].lb_endpoints[0].host_identifier.as_mut()
        && let Some(envoy_types::pb::envoy::config::core::v3::address::Address::SocketAddress(
            socket,
        )) = e.address.as_mut().and_then(|a| a.address.as_mut())
    {
        socket.address = "pod-a.example".into();
    }
    assert!(invalid_reason(Kind::Endpoints, any(host)).contains("not an IP address"));
}

#[test]
fn virtual_hosts_are_chosen_like_grpc() {
    let table_for = |domains: &[(&str, &str)]| {
        let mut config = fake_xds::route_configuration("r", "unused");
        let template = config.virtual_hosts.remove(0);
        config.virtual_hosts = domains
            .iter()
            .map(|(domain, cluster)| {
                let mut vhost = template.clone();
                vhost.domains = vec![(*domain).to_owned()];
                vhost.name = (*cluster).to_owned();
                if let Some(envoy_types::pb::envoy::config::route::v3::route::Action::Route(action)) =
                    vhost.routes[0].action.as_mut()
                {
                    action.cluster_specifier = Some(
                        envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier::Cluster(
                            (*cluster).to_owned(),
                        ),
                    );
                }
                vhost
            })
            .collect();
        match decode::decode(Kind::Route, &any(config)) {
            Ok((_, decode::Decoded::Route(table))) => table,
            other => panic!("{other:?}"),
        }
    };
    let table = table_for(&[
        ("*", "universal"),
        ("greeter*", "prefix"),
        ("*eter:80", "short-suffix"),
        ("*greeter:80", "long-suffix"),
        ("greeter:80", "exact"),
    ]);
    let cluster_for = |table: &decode::RouteTable, host: &str| {
        table
            .routes_for(host)
            .map(|routes| routes.clusters[0].clone())
    };
    assert_eq!(cluster_for(&table, "greeter:80").as_deref(), Ok("exact"));
    assert_eq!(
        cluster_for(&table, "Greeter:80").as_deref(),
        Ok("exact"),
        "case-insensitive"
    );
    assert_eq!(
        cluster_for(&table, "my-greeter:80").as_deref(),
        Ok("long-suffix")
    );
    assert_eq!(cluster_for(&table, "greeter:81").as_deref(), Ok("prefix"));
    assert_eq!(cluster_for(&table, "other").as_deref(), Ok("universal"));
    let narrow = table_for(&[("greeter", "only")]);
    assert!(
        cluster_for(&narrow, "other")
            .unwrap_err()
            .contains("no virtual host")
    );
}

/// `inner` wrapped in `levels` xDS `Resource` wrappers, built without
/// re-encoding each level (each adds a prefix that depends only on the
/// length of what it wraps).
fn nested(levels: usize, inner: &Any) -> Any {
    fn varint(mut n: usize, out: &mut Vec<u8>) {
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }
    let url = xds_type_urls::RESOURCE.as_bytes();
    // Resource { resource (field 2): <any> }, as bytes.
    let resource_prefix = |any_len: usize| {
        let mut prefix = vec![0x12];
        varint(any_len, &mut prefix);
        prefix
    };
    let mut innermost = inner.encode_to_vec();
    let mut prefixes = Vec::new();
    let mut any_len = innermost.len();
    for _ in 1..levels {
        let resource = resource_prefix(any_len);
        let resource_len = resource.len() + any_len;
        // Any { type_url (1): url, value (2): <resource> }.
        let mut prefix = vec![0x0a];
        varint(url.len(), &mut prefix);
        prefix.extend_from_slice(url);
        prefix.push(0x12);
        varint(resource_len, &mut prefix);
        prefix.extend(resource);
        any_len += prefix.len();
        prefixes.push(prefix);
    }
    let mut value = resource_prefix(any_len);
    for prefix in prefixes.into_iter().rev() {
        value.extend(prefix);
    }
    value.append(&mut innermost);
    Any {
        type_url: xds_type_urls::RESOURCE.to_owned(),
        value,
    }
}

#[test]
fn nested_resource_wrappers_are_refused_without_recursing() {
    let cluster = any(fake_xds::cluster("c"));
    // One wrapper is what xDS allows.
    assert!(decode::decode(Kind::Cluster, &nested(1, &cluster)).is_ok());
    // A control plane could nest them as deep as a message allows (about
    // 60 bytes a level): that must be an error, not a stack overflow.
    let deep = nested(60_000, &cluster);
    assert!(deep.value.len() < 4 << 20);
    let error = decode::decode(Kind::Cluster, &deep).expect_err("refused");
    assert!(error.to_string().contains("wrapper"), "{error}");
    let error = decode::decode(Kind::Cluster, &nested(2, &cluster)).expect_err("refused");
    assert!(error.to_string().contains("wrapper"), "{error}");
}

/// A Cluster whose transport socket holds `context`.
fn tls_cluster(context: UpstreamTlsContext) -> Any {
    let mut cluster = fake_xds::cluster("c");
    cluster.transport_socket = Some(TransportSocket {
        name: "envoy.transport_sockets.tls".into(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(any(context))),
    });
    any(cluster)
}

/// The A29 context our control plane sends: identity and roots from
/// provider instances, SAN matchers (`match_subject_alt_names`: deprecated
/// by Envoy, the field gRPC's clients read).
#[allow(deprecated)]
fn a29(sans: Vec<StringMatcher>) -> UpstreamTlsContext {
    let instance = |name: &str| CertificateProviderPluginInstance {
        instance_name: name.into(),
        certificate_name: String::new(),
    };
    UpstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_certificate_provider_instance: Some(instance("id")),
            validation_context_type: Some(ValidationContextType::ValidationContext(
                CertificateValidationContext {
                    ca_certificate_provider_instance: Some(instance("roots")),
                    match_subject_alt_names: sans,
                    ..Default::default()
                },
            )),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn exact(value: &str) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(MatchPattern::Exact(value.into())),
        ignore_case: false,
    }
}

#[test]
fn tls_clusters_are_read_as_grpc_a29_defines_them() {
    let (_, decoded) = decode::decode(
        Kind::Cluster,
        &tls_cluster(a29(vec![
            exact("greeter.bars.svc.cluster.local"),
            StringMatcher {
                match_pattern: Some(MatchPattern::Prefix(
                    "spiffe://cluster.local/ns/bars/".into(),
                )),
                ignore_case: true,
            },
        ])),
    )
    .expect("valid");
    let decode::Decoded::Cluster(info) = decoded else {
        panic!("{decoded:?}");
    };
    let tls = info.tls.expect("TLS");
    assert_eq!(tls.identity.as_deref(), Some("id"));
    assert_eq!(tls.roots, "roots");
    let sans: Vec<String> = tls.san_matchers.iter().map(ToString::to_string).collect();
    assert_eq!(
        sans,
        [
            "greeter.bars.svc.cluster.local",
            "spiffe://cluster.local/ns/bars/* (any case)"
        ]
    );
}

#[test]
fn tls_settings_this_client_cannot_honour_are_refused() {
    let reason = |context: UpstreamTlsContext| invalid_reason(Kind::Cluster, tls_cluster(context));
    let mut no_roots = a29(vec![]);
    if let Some(common) = no_roots.common_tls_context.as_mut() {
        common.validation_context_type = None;
    }
    assert!(reason(no_roots).contains("no CA certs configured"));
    let mut typed = a29(vec![]);
    if let Some(ValidationContextType::ValidationContext(v)) = typed
        .common_tls_context
        .as_mut()
        .and_then(|c| c.validation_context_type.as_mut())
    {
        v.match_typed_subject_alt_names = vec![SubjectAltNameMatcher::default()];
    }
    assert!(reason(typed).contains("match_typed_subject_alt_names is not supported"));
    let regex = a29(vec![StringMatcher {
        match_pattern: Some(MatchPattern::SafeRegex(Default::default())),
        ignore_case: false,
    }]);
    assert!(reason(regex).contains("regex matchers are not supported"));
    let mut inline = a29(vec![]);
    if let Some(common) = inline.common_tls_context.as_mut() {
        common.tls_certificates = vec![Default::default()];
    }
    assert!(reason(inline).contains("tls_certificates is not supported"));
    let mut no_h2 = a29(vec![]);
    if let Some(common) = no_h2.common_tls_context.as_mut() {
        common.alpn_protocols = vec!["http/1.1".into()];
    }
    assert!(reason(no_h2).contains("leave out h2"));
    let mut downstream = fake_xds::cluster("c");
    downstream.transport_socket = Some(TransportSocket {
        name: "tls".into(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(any(
            DownstreamTlsContext::default(),
        ))),
    });
    assert!(invalid_reason(Kind::Cluster, any(downstream)).contains("only an UpstreamTlsContext"));
    let mut matches = fake_xds::cluster("c");
    matches.transport_socket_matches = vec![Default::default()];
    assert!(invalid_reason(Kind::Cluster, any(matches)).contains("transport_socket_matches"));
}
