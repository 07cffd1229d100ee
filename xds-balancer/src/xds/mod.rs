//! The xDS client: one ADS stream (state of the world) to the control plane,
//! resolving the target's Listener → RouteConfiguration → Cluster →
//! ClusterLoadAssignment chain the way gRPC's proxyless clients do.
//!
//! # Design
//!
//! - [`decode`] (with `listener`, `routes`, `cluster`, `tls` and
//!   `endpoints`, one per resource type or part) is the only code that reads
//!   Envoy types: it validates each resource with gRPC's rules and converts
//!   it to the client's own model.
//! - [`state`] is the protocol as a pure state machine (subscriptions,
//!   versions, nonces, ACK/NACK, does-not-exist, chain resolution), tested
//!   with plain unit tests.
//! - [`task`] is the thin I/O around it: it owns the stream, feeds responses
//!   to the state machine, sends what it returns, and reconnects: at once
//!   when a stream that had served ends (a control plane rotating its
//!   connections with a maximum age, or stopping), else with jittered
//!   exponential backoff. After a reconnect it resubscribes with the
//!   last accepted versions; meanwhile the last resolution stays published,
//!   so calls keep being balanced over the last endpoints (static stability).
//!
//! - [`hint`] asks the control plane why a target does not exist.
//! - [`client`] shares one task (one stream, one cache) among every
//!   channel of the process built for the same control plane and node.
//!
//! Each subscription's resolution is published on its own `watch` channel,
//! which the connection pool follows; a response that changes nothing for a
//! target wakes nothing.

pub(crate) mod client;
mod cluster;
pub(crate) mod decode;
mod endpoints;
pub(crate) mod hint;
mod listener;
mod routes;
pub(crate) mod state;
pub(crate) mod task;
#[cfg(test)]
mod tests;
mod tls;
