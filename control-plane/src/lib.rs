//! The control plane: knows which endpoints of each service are ready and
//! streams them to every subscribed client over Envoy xDS v3 (ADS).
//!
//! # Layout
//!
//! - [`model`]: our own types (service, port, endpoint, state), apart from
//!   protobuf and Kubernetes types.
//! - [`source`]: where services come from, and [`source::SourceHandle`],
//!   through which a source reports them.
//! - [`store`]: the current state; builds each changed service's resources
//!   once and publishes immutable snapshots to every reader.
//! - [`xds`]: resource names, the model-to-Envoy conversion, and the ADS
//!   protocol.

pub mod model;
pub mod source;
pub mod store;
pub mod xds;
