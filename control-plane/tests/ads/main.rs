//! The ADS protocol over a real loopback connection, spoken by a raw
//! envoy-types client: the resource chain a gRPC client follows, ACK and
//! NACK, subscription changes, unknown names and types, oversized requests.
//!
//! - `chain.rs`: Listener, RouteConfiguration, Cluster and
//!   ClusterLoadAssignment, each leading to the next.
//! - `subscriptions.rs`: ACK and NACK (kept for the status API), names
//!   added and dropped, a name that does not exist yet.
//! - `refusals.rs`: unknown types, too many or too long names, oversized
//!   messages, delta xDS; the server stays healthy.
//! - `server.rs`: health before and after the first sync, reflection, and
//!   streams ended on shutdown.

mod chain;
mod refusals;
mod server;
mod subscriptions;
#[path = "../support/mod.rs"]
mod support;

use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);
