//! Envoy xDS v3: the resources served and the ADS protocol.
//!
//! - [`resources`]: the one conversion from the model to Envoy resources,
//!   done once per service change.
//! - [`snapshot`]: the resources served as of one store revision, built
//!   from each catalog the store publishes, outside its lock.
//! - [`wire`]: responses in wire form, each resource encoded once and its
//!   bytes shared by every stream.
//! - [`session`]: the protocol state of one ADS stream, a pure state
//!   machine (subscriptions, nonces, ACK/NACK, what to send).
//! - [`stream`]: the task that owns a session and drives it for one stream;
//!   [`queue`], the small bounded queue from it to the response body.
//! - [`server`]: the `AggregatedDiscoveryService` gRPC service, and
//!   [`body`], the response body that writes the shared bytes.
//! - [`registry`]: the connected clients, for the status API and metrics.
//! - [`admission`]: the client-certificate SAN allow-list and the stream
//!   limits, with their refusal counts.
//!
//! [`crate::names`] and [`crate::kinds::ResourceType`] live at the crate's top
//! level: the store and the metrics use them too.

pub mod admission;
pub mod body;
pub mod queue;
pub mod registry;
pub mod resources;
pub mod server;
pub mod session;
pub mod snapshot;
pub mod stream;
pub mod wire;
