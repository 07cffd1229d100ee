//! The Cluster of a Service port: EDS over ADS, the load-balancing policy
//! (round robin, or least request with a fallback list), and for a TLS
//! service the `UpstreamTlsContext` gRPC A29 reads.

use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, EdsClusterConfig, LbConfig, LbPolicy, LeastRequestLbConfig,
};
use envoy_types::pb::envoy::config::cluster::v3::load_balancing_policy::Policy;
use envoy_types::pb::envoy::config::cluster::v3::{Cluster, LoadBalancingPolicy};
use envoy_types::pb::envoy::config::core::v3::TransportSocket;
use envoy_types::pb::envoy::config::core::v3::TypedExtensionConfig;
use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType as TransportSocketConfig;
use envoy_types::pb::envoy::extensions::load_balancing_policies::least_request::v3::LeastRequest;
use envoy_types::pb::envoy::extensions::load_balancing_policies::round_robin::v3::RoundRobin;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::ValidationContextType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateProviderPluginInstance, CertificateValidationContext, CommonTlsContext,
    UpstreamTlsContext,
};
use envoy_types::pb::envoy::r#type::matcher::v3::StringMatcher;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use envoy_types::pb::google::protobuf::{Any, UInt32Value};
use envoy_types::util::pack_any;

use super::{Resource, ads, resource};
use crate::model::{LbPolicy as Lb, SanMatcher, Service, ServiceTls};

/// Name of the TLS transport socket (gRPC checks only the type of its
/// config, Envoy the name).
const TLS_TRANSPORT_SOCKET: &str = "envoy.transport_sockets.tls";

/// Clients draw this many endpoints and call the one with fewer calls in
/// flight (gRPC A48's default).
const LEAST_REQUEST_CHOICES: u32 = 2;

/// `Cluster.load_balancing_policy` (gRPC A52) for least request: least
/// request, else round robin. A client takes the first policy it
/// supports, and one that reads this field ignores `lb_policy`: grpcio
/// (C core) has no least request and NACKs a Cluster whose only word is
/// `lb_policy: LEAST_REQUEST` ("LB policy is not supported"); with this
/// list it balances round robin instead.
fn least_request_policies() -> LoadBalancingPolicy {
    let policy = |name: &str, config: Any| Policy {
        typed_extension_config: Some(TypedExtensionConfig {
            name: name.to_owned(),
            typed_config: Some(config),
        }),
    };
    LoadBalancingPolicy {
        policies: vec![
            policy(
                "envoy.load_balancing_policies.least_request",
                pack_any(LeastRequest {
                    choice_count: Some(UInt32Value {
                        value: LEAST_REQUEST_CHOICES,
                    }),
                    ..Default::default()
                }),
            ),
            policy(
                "envoy.load_balancing_policies.round_robin",
                pack_any(RoundRobin::default()),
            ),
        ],
    }
}

pub(super) fn cluster(
    cluster_name: &str,
    service: &Service,
    provider_instance: &str,
    revision: u64,
) -> Resource {
    let (lb_policy, lb_config, load_balancing_policy) = match service.policy.lb {
        Lb::RoundRobin => (LbPolicy::RoundRobin, None, None),
        Lb::LeastRequest => (
            LbPolicy::LeastRequest,
            Some(LbConfig::LeastRequestLbConfig(LeastRequestLbConfig {
                choice_count: Some(UInt32Value {
                    value: LEAST_REQUEST_CHOICES,
                }),
                ..Default::default()
            })),
            Some(least_request_policies()),
        ),
    };
    let cluster = Cluster {
        transport_socket: service
            .tls
            .as_ref()
            .map(|tls| transport_socket(tls, provider_instance)),
        name: cluster_name.to_owned(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
        eds_cluster_config: Some(EdsClusterConfig {
            eds_config: Some(ads()),
            service_name: cluster_name.to_owned(),
        }),
        lb_policy: lb_policy as i32,
        lb_config,
        load_balancing_policy,
        ..Default::default()
    };
    resource(cluster_name, revision, pack_any(cluster))
}

/// The `UpstreamTlsContext` of a TLS service, in the one form gRPC's
/// clients honour. `match_subject_alt_names` is deprecated in Envoy in
/// favour of `match_typed_subject_alt_names`, which grpcio ACKs and then
/// ignores (no SAN check at all): the deprecated field is the safe one.
#[allow(deprecated)]
pub(crate) fn upstream_tls_context(
    tls: &ServiceTls,
    provider_instance: &str,
) -> UpstreamTlsContext {
    let instance = || CertificateProviderPluginInstance {
        instance_name: provider_instance.to_owned(),
        certificate_name: String::new(),
    };
    let matchers = tls.subject_alt_names.iter().map(string_matcher).collect();
    UpstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_certificate_provider_instance: Some(instance()),
            validation_context_type: Some(ValidationContextType::ValidationContext(
                CertificateValidationContext {
                    ca_certificate_provider_instance: Some(instance()),
                    match_subject_alt_names: matchers,
                    ..Default::default()
                },
            )),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn transport_socket(tls: &ServiceTls, provider_instance: &str) -> TransportSocket {
    TransportSocket {
        name: TLS_TRANSPORT_SOCKET.to_owned(),
        config_type: Some(TransportSocketConfig::TypedConfig(pack_any(
            upstream_tls_context(tls, provider_instance),
        ))),
    }
}

/// One SAN matcher as an xDS `StringMatcher`.
fn string_matcher(matcher: &SanMatcher) -> StringMatcher {
    let (pattern, ignore_case) = match matcher {
        SanMatcher::IgnoreCase(inner) => (inner.as_ref(), true),
        other => (other, false),
    };
    let match_pattern = match pattern {
        SanMatcher::Exact(value) => MatchPattern::Exact(value.clone()),
        SanMatcher::Prefix(value) => MatchPattern::Prefix(value.clone()),
        SanMatcher::Suffix(value) => MatchPattern::Suffix(value.clone()),
        SanMatcher::Contains(value) => MatchPattern::Contains(value.clone()),
        // `ignoring_case` never nests.
        SanMatcher::IgnoreCase(inner) => return string_matcher(inner),
    };
    StringMatcher {
        match_pattern: Some(match_pattern),
        ignore_case,
    }
}
