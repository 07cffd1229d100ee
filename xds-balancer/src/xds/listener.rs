//! Listeners → where their routes come from, with gRPC's rules: an
//! `api_listener` holding an HttpConnectionManager, routes by RDS over ADS
//! (or inline), HTTP filters ending with the router filter (any other
//! filter must be optional).

use std::collections::HashSet;

use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter,
};
use prost::Message;
use xds_type_urls as type_url;

use super::decode::{ListenerRoutes, is_ads};
use super::routes::route_table;

pub(crate) fn listener_routes(listener: Listener) -> Result<ListenerRoutes, String> {
    let api = listener
        .api_listener
        .and_then(|api| api.api_listener)
        .ok_or("has no api_listener; gRPC clients need an API listener")?;
    if api.type_url != type_url::HTTP_CONNECTION_MANAGER {
        return Err(format!(
            "api_listener holds {:?}, expected an HttpConnectionManager",
            api.type_url
        ));
    }
    let hcm = HttpConnectionManager::decode(api.value.as_slice())
        .map_err(|e| format!("cannot decode its HttpConnectionManager: {e}"))?;
    check_filters(&hcm.http_filters)?;
    match hcm.route_specifier {
        Some(RouteSpecifier::Rds(rds)) => {
            if !is_ads(rds.config_source.as_ref()) {
                return Err("rds.config_source must be `ads` (or `self`)".into());
            }
            if rds.route_config_name.is_empty() {
                return Err("rds.route_config_name is empty".into());
            }
            Ok(ListenerRoutes::Rds(rds.route_config_name))
        }
        Some(RouteSpecifier::RouteConfig(config)) => route_table(config.virtual_hosts)
            .map(ListenerRoutes::Inline)
            .map_err(|reason| format!("its inline route configuration: {reason}")),
        Some(RouteSpecifier::ScopedRoutes(_)) => {
            Err("scoped routes are not supported; use rds or route_config".into())
        }
        None => Err("its HttpConnectionManager has neither rds nor route_config".into()),
    }
}

fn check_filters(filters: &[HttpFilter]) -> Result<(), String> {
    let Some((last, rest)) = filters.split_last() else {
        return Err("has no HTTP filters; the router filter must be last".into());
    };
    let mut names = HashSet::new();
    for filter in filters {
        if !names.insert(filter.name.as_str()) {
            return Err(format!("HTTP filter name {:?} is used twice", filter.name));
        }
    }
    if filter_type(last) != Some(type_url::ROUTER) {
        return Err(format!(
            "the last HTTP filter ({:?}) is not the router filter",
            last.name
        ));
    }
    for filter in rest {
        if filter_type(filter) == Some(type_url::ROUTER) {
            return Err(format!("the router filter {:?} is not last", filter.name));
        }
        if !filter.is_optional {
            return Err(format!(
                "HTTP filter {:?} ({}) is not supported by this client (mark it is_optional to \
                 let it be skipped)",
                filter.name,
                filter_type(filter).unwrap_or("no typed_config")
            ));
        }
    }
    Ok(())
}

fn filter_type(filter: &HttpFilter) -> Option<&str> {
    match &filter.config_type {
        Some(ConfigType::TypedConfig(any)) => Some(any.type_url.as_str()),
        _ => None,
    }
}
