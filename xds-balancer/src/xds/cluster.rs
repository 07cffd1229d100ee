//! Clusters → what the client needs of them, with gRPC's rules: `type:
//! EDS` with `eds_config` over ADS; round robin, or least request (gRPC
//! A48) by `lb_policy` or `load_balancing_policy` (read as gRPC A52 reads
//! it); TLS from `transport_socket` (gRPC A29, in [`super::tls`]).

use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, LbConfig, LbPolicy,
};
use envoy_types::pb::envoy::config::cluster::v3::{Cluster, LoadBalancingPolicy};
use envoy_types::pb::envoy::extensions::load_balancing_policies::least_request::v3::LeastRequest;
use envoy_types::pb::envoy::extensions::load_balancing_policies::wrr_locality::v3::WrrLocality;
use prost::Message;
use xds_type_urls as type_url;

use super::decode::{ClusterInfo, is_ads};
use crate::model::PickPolicy;

/// gRPC A48: least request's default `choice_count`, and the cap on it.
const DEFAULT_CHOICE_COUNT: u32 = 2;
const MAX_CHOICE_COUNT: u32 = 10;

pub(crate) fn cluster_info(cluster: Cluster) -> Result<ClusterInfo, String> {
    match cluster.cluster_discovery_type {
        Some(ClusterDiscoveryType::Type(t)) if t == DiscoveryType::Eds as i32 => {}
        Some(ClusterDiscoveryType::Type(t)) => {
            let name = DiscoveryType::try_from(t).map_or("unknown", |t| t.as_str_name());
            return Err(format!("type is {name}; only EDS clusters are supported"));
        }
        Some(ClusterDiscoveryType::ClusterType(custom)) => {
            return Err(format!(
                "custom cluster type {:?} is not supported; only EDS clusters are",
                custom.name
            ));
        }
        None => return Err("type is STATIC; only EDS clusters are supported".into()),
    }
    let eds = cluster
        .eds_cluster_config
        .ok_or("an EDS cluster needs eds_cluster_config")?;
    if !is_ads(eds.eds_config.as_ref()) {
        return Err("eds_cluster_config.eds_config must be `ads` (or `self`)".into());
    }
    let policy = match &cluster.load_balancing_policy {
        Some(policy) => policy_from_list(policy, 0)?,
        None if cluster.lb_policy == LbPolicy::RoundRobin as i32 => PickPolicy::RoundRobin,
        None if cluster.lb_policy == LbPolicy::LeastRequest as i32 => {
            let count = match &cluster.lb_config {
                Some(LbConfig::LeastRequestLbConfig(config)) => {
                    config.choice_count.map(|c| c.value)
                }
                _ => None,
            };
            least_request(count)?
        }
        None => {
            let name = LbPolicy::try_from(cluster.lb_policy).map_or("unknown", |p| p.as_str_name());
            return Err(format!(
                "lb_policy is {name}; only ROUND_ROBIN and LEAST_REQUEST are supported"
            ));
        }
    };
    if !cluster.transport_socket_matches.is_empty() {
        return Err(
            "transport_socket_matches is not supported: put TLS in transport_socket".into(),
        );
    }
    let tls = cluster
        .transport_socket
        .as_ref()
        .map(super::tls::upstream_tls)
        .transpose()?
        .map(Arc::new);
    let eds_name = if eds.service_name.is_empty() {
        cluster.name
    } else {
        eds.service_name
    };
    Ok(ClusterInfo {
        eds_name,
        tls,
        policy,
    })
}

/// The first policy of `load_balancing_policy` this client implements, as
/// gRPC A52 reads the list (an unknown one is skipped; a known one with a
/// bad configuration is refused).
fn policy_from_list(list: &LoadBalancingPolicy, depth: usize) -> Result<PickPolicy, String> {
    for policy in &list.policies {
        let Some(any) = policy
            .typed_extension_config
            .as_ref()
            .and_then(|c| c.typed_config.as_ref())
        else {
            continue;
        };
        match any.type_url.as_str() {
            type_url::ROUND_ROBIN => return Ok(PickPolicy::RoundRobin),
            type_url::LEAST_REQUEST => {
                let config = LeastRequest::decode(any.value.as_slice())
                    .map_err(|e| format!("cannot decode its LeastRequest policy: {e}"))?;
                return least_request(config.choice_count.map(|c| c.value));
            }
            // What gRPC turns `lb_policy` into: its endpoint picking
            // policy within weighted localities. One level of nesting is
            // what gRPC sends; more is refused rather than followed
            // without bound.
            type_url::WRR_LOCALITY if depth == 0 => {
                let wrapper = WrrLocality::decode(any.value.as_slice())
                    .map_err(|e| format!("cannot decode its WrrLocality policy: {e}"))?;
                let inner = wrapper
                    .endpoint_picking_policy
                    .ok_or("its WrrLocality policy has no endpoint_picking_policy")?;
                return policy_from_list(&inner, depth + 1);
            }
            _ => {}
        }
    }
    Err(
        "load_balancing_policy lists no policy this client supports (round robin, least \
         request)"
            .into(),
    )
}

/// Least request with `choice_count` (gRPC A48: default 2, below 2 refused,
/// above 10 capped).
fn least_request(choice_count: Option<u32>) -> Result<PickPolicy, String> {
    let choice_count = choice_count.unwrap_or(DEFAULT_CHOICE_COUNT);
    if choice_count < 2 {
        return Err(format!(
            "least request choice_count is {choice_count}; it must be at least 2"
        ));
    }
    Ok(PickPolicy::LeastRequest {
        choice_count: choice_count.min(MAX_CHOICE_COUNT),
    })
}
