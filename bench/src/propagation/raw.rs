//! Raw ADS subscribers: the xDS wire protocol and nothing else.
//!
//! Each subscriber opens a state-of-the-world ADS stream, subscribes to the
//! service's Listener, RouteConfiguration, Cluster and
//! ClusterLoadAssignment (the four a gRPC xDS client holds) and ACKs every
//! response, as real clients do. A ClusterLoadAssignment is decoded in full
//! and its not-ready endpoints reported to the [`Board`]; that decode is
//! the raw subscriber's "picker". This is what lets one machine hold 10 000
//! subscribers: a xds-balancer `Channel` also connects to every endpoint.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ::tests::ads::{AdsStream, discovery_request, socket_address};
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{HealthStatus, Node};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use prost::Message;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use xds_type_urls as type_url;

use super::board::{Board, fingerprint};
use crate::clock;

/// Resource names of the service under test.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    /// The Listener (the client's target).
    pub(crate) listener: String,
    /// The cluster: RouteConfiguration, Cluster and ClusterLoadAssignment.
    pub(crate) cluster: String,
}

/// The not-ready endpoints of `assignment`'s fingerprint: what a client
/// would leave out of its picker. HEALTHY and UNKNOWN endpoints are used.
pub(crate) fn assignment_fingerprint(assignment: &ClusterLoadAssignment) -> u64 {
    let not_ready = assignment
        .endpoints
        .iter()
        .flat_map(|locality| &locality.lb_endpoints)
        .filter(|lb| {
            lb.health_status != HealthStatus::Healthy as i32
                && lb.health_status != HealthStatus::Unknown as i32
        })
        .filter_map(|lb| {
            let socket = socket_address(lb)?;
            let Some(PortSpecifier::PortValue(port)) = socket.port_specifier else {
                return None;
            };
            let ip: IpAddr = socket.address.parse().ok()?;
            Some(SocketAddr::new(ip, u16::try_from(port).ok()?))
        });
    fingerprint(not_ready)
}

/// Starts subscriber `index` on `channel`; it reports to `board` until its
/// stream ends or the task is aborted.
pub(crate) fn spawn(
    index: usize,
    channel: Channel,
    names: Arc<Names>,
    board: Arc<Board>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(error) = subscribe(index, channel, &names, &board).await {
            board.fail(format!("raw subscriber {index}: {error}"));
        }
    })
}

async fn subscribe(
    index: usize,
    channel: Channel,
    names: &Names,
    board: &Board,
) -> Result<(), tonic::Status> {
    let node = Node {
        id: format!("bench-raw-{index}"),
        user_agent_name: "bench raw ADS subscriber".to_owned(),
        ..Default::default()
    };
    let (listener, cluster) = (names.listener.as_str(), names.cluster.as_str());
    let initial = vec![
        discovery_request(type_url::LISTENER, &[listener], "", ""),
        discovery_request(type_url::ROUTE_CONFIGURATION, &[cluster], "", ""),
        discovery_request(type_url::CLUSTER, &[cluster], "", ""),
        discovery_request(type_url::CLUSTER_LOAD_ASSIGNMENT, &[cluster], "", ""),
    ];
    let mut stream = AdsStream::open_with(channel, node, initial).await?;
    while let Some(response) = stream.message().await? {
        if response.type_url == type_url::CLUSTER_LOAD_ASSIGNMENT {
            for any in &response.resources {
                match ClusterLoadAssignment::decode(any.value.as_slice()) {
                    Ok(assignment) => {
                        let at = clock::now_ns();
                        board.observe(index, assignment_fingerprint(&assignment), at);
                    }
                    Err(error) => {
                        return Err(tonic::Status::internal(format!(
                            "undecodable ClusterLoadAssignment: {error}"
                        )));
                    }
                }
            }
        }
        let name = if response.type_url == type_url::LISTENER {
            listener
        } else {
            cluster
        };
        if stream.try_ack(&response, &[name]).await.is_err() {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
    use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress};
    use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
    use envoy_types::pb::envoy::config::endpoint::v3::{Endpoint, LbEndpoint, LocalityLbEndpoints};

    use super::*;

    fn lb(addr: &str, port: u32, health: HealthStatus) -> LbEndpoint {
        LbEndpoint {
            host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
                address: Some(Address {
                    address: Some(AddressKind::SocketAddress(SocketAddress {
                        address: addr.to_owned(),
                        port_specifier: Some(PortSpecifier::PortValue(port)),
                        ..Default::default()
                    })),
                }),
                ..Default::default()
            })),
            health_status: health as i32,
            ..Default::default()
        }
    }

    #[test]
    fn fingerprint_counts_only_endpoints_a_client_skips() {
        let assignment = ClusterLoadAssignment {
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![
                    lb("127.0.1.1", 80, HealthStatus::Healthy),
                    lb("127.0.1.2", 80, HealthStatus::Unhealthy),
                    lb("127.0.1.3", 80, HealthStatus::Draining),
                    lb("127.0.1.4", 80, HealthStatus::Unknown),
                ],
                ..Default::default()
            }],
            ..Default::default()
        };
        let expected = fingerprint([
            "127.0.1.2:80".parse().unwrap(),
            "127.0.1.3:80".parse().unwrap(),
        ]);
        assert_eq!(assignment_fingerprint(&assignment), expected);
    }
}
