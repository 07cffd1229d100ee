//! The control plane: knows which endpoints of each service are ready and
//! streams them to every subscribed client over Envoy xDS v3 (ADS).
//!
//! # Layout
//!
//! The data path runs one way: a source writes into the store, the store
//! publishes the model, the xDS snapshot builder turns it into Envoy
//! resources, and every stream task serves those. Modules only use those
//! listed before them (`tests/module_graph.rs` checks that there is no
//! cycle).
//!
//! - [`model`]: our own types (service, port, endpoint, readiness), apart
//!   from protobuf and Kubernetes types.
//! - [`names`]: which xDS resource names exist and what they mean.
//! - [`kinds`]: the words the protocol and the metrics share (resource
//!   types, refusal reasons, why streams end).
//! - [`routes`]: traffic routes (the `GRPCRoute` equivalent) and how they
//!   become each Service port's route table.
//! - [`store`]: the current state in the model's terms: versions, the
//!   source's health, [`store::SourceHandle`] (what sources write
//!   through), and the publication of immutable catalogs to every reader.
//! - [`metrics`]: Prometheus metrics, their two text formats and their
//!   `/metrics` endpoint.
//! - [`source`]: where services come from (static configuration with
//!   health probing, Kubernetes).
//! - [`xds`]: the model-to-Envoy conversion, the snapshot builder that
//!   runs it outside the store's lock ([`xds::snapshot`]), and the ADS
//!   protocol: a pure per-stream state machine ([`xds::session`]), the task
//!   that owns and drives it ([`xds::stream`]), the gRPC service
//!   ([`xds::server`]) and the connected-client registry
//!   ([`xds::registry`]).
//! - [`status`]: the status API (`controlplane.v1.ControlPlaneStatus`) and
//!   the `control-plane status` client's report and tables.
//! - [`server`]: everything on one port (ADS, status, health, reflection),
//!   each connection's maximum age, and the shutdown.
//! - [`cli`]: the command line (`serve`, `status`) and its wiring (signals,
//!   logging, the chosen source, exit codes), shared by the `control-plane`
//!   binary and the demo, which runs it as a child process.

pub mod cli;
pub mod kinds;
pub mod metrics;
pub mod model;
pub mod names;
pub mod routes;
pub mod server;
pub mod source;
pub mod status;
pub mod store;
pub mod xds;
