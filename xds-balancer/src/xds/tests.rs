//! The ADS state machine and resource validation, without I/O.
//!
//! - `state`: subscriptions down the chain, reconnects, shared sessions.
//! - `absence`: does-not-exist.
//! - `ack_nack`: what is refused (NACK), and unusual forms accepted.
//! - `decode`: gRPC's validation rules per resource type.
//! - `routes`: route tables (A28), cluster policies (A48), and the
//!   subscriptions several clusters make.
//! - `unchanged`: what an update that changes nothing costs downstream.

mod absence;
mod ack_nack;
mod decode;
mod routes;
mod state;
mod unchanged;

use std::net::SocketAddr;

use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter,
};
use prost::Message;

pub(super) fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], port))
}

/// The HTTP filters of a Listener made by the fake control plane.
pub(super) fn hcm_filters(listener: &Listener) -> Vec<HttpFilter> {
    let any = listener
        .api_listener
        .as_ref()
        .and_then(|a| a.api_listener.as_ref())
        .expect("hcm");
    HttpConnectionManager::decode(any.value.as_slice())
        .expect("decode")
        .http_filters
}
