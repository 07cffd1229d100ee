//! A Cluster's `transport_socket`: TLS to its endpoints, configured the way
//! gRPC's xDS clients take it (gRPC A29).
//!
//! The Cluster names certificate provider *instances* (defined in the
//! client's bootstrap, `certificate_providers`) for the client's identity
//! and for the root CAs, and lists the SAN matchers a server certificate
//! must satisfy. What this client cannot honour is refused with a reason
//! (the Cluster is NACKed), never downgraded to plaintext: certificates or
//! keys inline or over SDS, TLS parameters, SPKI or hash pinning, typed SAN
//! matchers (`match_typed_subject_alt_names`, which some clients accept and
//! then ignore), regex matchers, an ALPN list without `h2`.

use envoy_types::pb::envoy::config::core::v3::TransportSocket;
use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::ValidationContextType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, UpstreamTlsContext,
};
use envoy_types::pb::envoy::r#type::matcher::v3::StringMatcher;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use prost::Message;

use tls_reload::SanMatcher;
use xds_type_urls::UPSTREAM_TLS_CONTEXT;

use crate::model::UpstreamTls;

/// The TLS settings of a Cluster's `transport_socket`. The older A29 form
/// (deprecated fields 11 and the combined context's provider instance) is
/// accepted as gRPC's clients accept it.
#[allow(deprecated)]
pub(crate) fn upstream_tls(socket: &TransportSocket) -> Result<UpstreamTls, String> {
    let any = match &socket.config_type {
        Some(ConfigType::TypedConfig(any)) => any,
        None => return Err("transport_socket has no typed_config".into()),
    };
    if any.type_url != UPSTREAM_TLS_CONTEXT {
        return Err(format!(
            "transport_socket holds {:?}; only an UpstreamTlsContext is supported",
            any.type_url
        ));
    }
    let context = UpstreamTlsContext::decode(any.value.as_slice())
        .map_err(|e| format!("transport_socket: malformed UpstreamTlsContext: {e}"))?;
    let at = "transport_socket UpstreamTlsContext";
    let common = context
        .common_tls_context
        .ok_or_else(|| format!("{at}: no common_tls_context, so no CA to verify servers with"))?;
    let unsupported = |field: &str| {
        Err(format!(
            "{at}: common_tls_context.{field} is not supported (certificates come from the \
             bootstrap's certificate providers)"
        ))
    };
    if common.tls_params.is_some() {
        return unsupported("tls_params");
    }
    if !common.tls_certificates.is_empty() {
        return unsupported("tls_certificates");
    }
    if !common.tls_certificate_sds_secret_configs.is_empty() {
        return unsupported("tls_certificate_sds_secret_configs");
    }
    if common.custom_handshaker.is_some() {
        return unsupported("custom_handshaker");
    }
    if !common.alpn_protocols.is_empty() && !common.alpn_protocols.iter().any(|p| p == "h2") {
        return Err(format!(
            "{at}: alpn_protocols {:?} leave out h2, which gRPC needs",
            common.alpn_protocols
        ));
    }
    let identity = common
        .tls_certificate_provider_instance
        .map(|instance| instance.instance_name)
        .or(common
            .tls_certificate_certificate_provider_instance
            .map(|instance| instance.instance_name));
    let (validation, legacy_roots) = match common.validation_context_type {
        Some(ValidationContextType::ValidationContext(context)) => (Some(context), None),
        Some(ValidationContextType::CombinedValidationContext(combined)) => (
            combined.default_validation_context,
            combined
                .validation_context_certificate_provider_instance
                .map(|instance| instance.instance_name),
        ),
        Some(ValidationContextType::ValidationContextSdsSecretConfig(_)) => {
            return unsupported("validation_context_sds_secret_config");
        }
        Some(ValidationContextType::ValidationContextCertificateProviderInstance(_)) => {
            return unsupported("validation_context_certificate_provider_instance");
        }
        Some(_) => return unsupported("validation_context_type"),
        None => (None, None),
    };
    let mut validation = validation.unwrap_or_default();
    check_validation(&validation).map_err(|reason| format!("{at}: {reason}"))?;
    let roots = validation
        .ca_certificate_provider_instance
        .take()
        .map(|instance| instance.instance_name)
        .or(legacy_roots)
        .ok_or_else(|| {
            format!(
                "{at}: no CA certs configured (validation_context.ca_certificate_provider_instance \
                 names none)"
            )
        })?;
    let san_matchers = validation
        .match_subject_alt_names
        .iter()
        .map(san_match)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|reason| format!("{at}: {reason}"))?;
    Ok(UpstreamTls {
        identity,
        roots,
        san_matchers,
        sni: (!context.sni.is_empty()).then_some(context.sni),
    })
}

/// Refuses what the validation context asks that this client cannot do.
fn check_validation(validation: &CertificateValidationContext) -> Result<(), String> {
    let refuse = |field: &str, why: &str| Err(format!("validation_context.{field} {why}"));
    if validation.trusted_ca.is_some() {
        return refuse(
            "trusted_ca",
            "is not supported: roots come from ca_certificate_provider_instance",
        );
    }
    if !validation.verify_certificate_spki.is_empty() {
        return refuse("verify_certificate_spki", "is not supported");
    }
    if !validation.verify_certificate_hash.is_empty() {
        return refuse("verify_certificate_hash", "is not supported");
    }
    if !validation.match_typed_subject_alt_names.is_empty() {
        return refuse(
            "match_typed_subject_alt_names",
            "is not supported (use match_subject_alt_names)",
        );
    }
    if validation.custom_validator_config.is_some() {
        return refuse("custom_validator_config", "is not supported");
    }
    if validation.allow_expired_certificate {
        return refuse("allow_expired_certificate", "is not supported");
    }
    Ok(())
}

fn san_match(matcher: &StringMatcher) -> Result<SanMatcher, String> {
    let pattern = match &matcher.match_pattern {
        Some(MatchPattern::Exact(value)) => SanMatcher::Exact(value.clone()),
        Some(MatchPattern::Prefix(value)) => SanMatcher::Prefix(value.clone()),
        Some(MatchPattern::Suffix(value)) => SanMatcher::Suffix(value.clone()),
        Some(MatchPattern::Contains(value)) => SanMatcher::Contains(value.clone()),
        Some(MatchPattern::SafeRegex(_)) => {
            return Err("match_subject_alt_names: regex matchers are not supported".into());
        }
        Some(MatchPattern::Custom(_)) | None => {
            return Err("match_subject_alt_names: a matcher without a pattern".into());
        }
    };
    // `exact` follows DNS rules, case-insensitive already (as gRPC does).
    Ok(if matcher.ignore_case {
        SanMatcher::ignoring_case(pattern)
    } else {
        pattern
    })
}
