//! xds-balancer subscribers: the real client library end to end.
//!
//! Each subscriber is a [`xds_balancer::Channel`] for `xds:///greeter`.
//! It reports the endpoint set from [`Channel::endpoints`], which the
//! channel's pool publishes in the same step as the picker's rotation: when
//! the set shows an endpoint not ready, the picker has stopped choosing it.
//! (An endpoint that turns ready is listed at that moment too and joins the
//! rotation once its connection is up; the connect is not counted.)

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use xds_balancer::{Channel, EndpointHealth, EndpointSet, ServiceStatus};

use super::board::{Board, fingerprint};
use crate::clock;

/// The fingerprint of the endpoints `set` lists as not ready or draining.
pub(crate) fn set_fingerprint(set: &EndpointSet) -> Option<u64> {
    if !matches!(set.service, ServiceStatus::Resolved { .. }) {
        return None;
    }
    let not_ready = set.endpoints.iter().filter_map(|e| match e.health {
        Some(EndpointHealth::Draining | EndpointHealth::NotReady) => Some(e.addr),
        _ => None,
    });
    Some(fingerprint(not_ready))
}

/// Connects subscriber `index` to the control plane at `control_plane`.
pub(crate) async fn connect(
    index: usize,
    control_plane: SocketAddr,
    target: &str,
) -> Result<Channel, xds_balancer::Error> {
    xds_balancer::Builder::new(format!("xds:///{target}"))
        .control_plane(format!("http://{control_plane}"))
        .node_id(format!("bench-channel-{index}"))
        .connect_timeout(Duration::from_secs(10))
        .connect()
        .await
}

/// Reports `channel`'s endpoint sets to `board` as subscriber `index`,
/// until the task is aborted (which drops the channel).
pub(crate) fn watch(index: usize, channel: Channel, board: Arc<Board>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut view = channel.endpoints();
        loop {
            let fingerprint = set_fingerprint(&view.borrow_and_update());
            if let Some(fingerprint) = fingerprint {
                board.observe(index, fingerprint, clock::now_ns());
            }
            if view.changed().await.is_err() {
                board.fail(format!("channel subscriber {index}: its channel stopped"));
                return;
            }
        }
    })
}
