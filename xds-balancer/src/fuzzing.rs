//! Entry points for fuzzing the client's handling of what a control plane
//! sends (the `fuzzing` feature; see `docs/fuzzing.md`). Not an API: it may
//! change with any release.

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse;
use envoy_types::pb::google::protobuf::Any;
use prost::Message;

use crate::xds::decode::{self, Kind};
use crate::xds::state::AdsState;

/// Decodes and validates `value` as one resource: `selector`'s low two
/// bits pick the type (Listener, RouteConfiguration, Cluster,
/// ClusterLoadAssignment), bit 2 wraps it as an xDS `Resource`. Returns
/// the resource's name, or why it was rejected.
pub fn decode_resource(selector: u8, value: &[u8]) -> Result<String, String> {
    let kind = Kind::ALL[usize::from(selector & 3)];
    let type_url = if selector & 4 == 0 {
        kind.type_url()
    } else {
        xds_type_urls::RESOURCE
    };
    let any = Any {
        type_url: type_url.to_owned(),
        value: value.to_vec(),
    };
    decode::decode(kind, &any)
        .map(|(name, _)| name)
        .map_err(|error| error.to_string())
}

/// Feeds `responses` (each the bytes of a `DiscoveryResponse`; those that
/// do not decode are skipped) to a fresh client session for
/// `xds:///greeter`, as if they came one after another on its stream.
/// Returns how many requests the session wanted to send.
pub fn feed_responses<'a>(responses: impl IntoIterator<Item = &'a [u8]>) -> usize {
    let mut state = AdsState::new(Node::default());
    state.add_target("greeter");
    let mut requests = state.on_stream_start().len();
    for bytes in responses {
        if let Ok(response) = DiscoveryResponse::decode(bytes) {
            requests += state.on_response(response).requests.len();
        }
    }
    requests
}
