//! The control plane: knows which endpoints of each service are ready and
//! streams them to every subscribed client over Envoy xDS v3 (ADS).
//!
//! # Layout
//!
//! - [`model`]: our own types (service, port, endpoint, state), apart from
//!   protobuf and Kubernetes types.
//! - [`routes`]: traffic routes (the `GRPCRoute` equivalent) and how they
//!   become each Service port's route table.
//! - [`source`]: where services come from, and [`source::SourceHandle`],
//!   through which a source reports them.
//! - [`store`]: the current state; builds each changed service's resources
//!   once and publishes immutable snapshots to every reader.
//! - [`xds`]: resource names, the model-to-Envoy conversion, and the ADS
//!   protocol: a pure per-stream state machine ([`xds::session`]), the task
//!   driving it ([`xds::stream`]), the gRPC service ([`xds::server`]) and
//!   the connected-client registry ([`xds::registry`]).
//! - [`status`]: the status API (`controlplane.v1.ControlPlaneStatus`) and
//!   the `control-plane status` client's report and tables.
//! - [`metrics`]: Prometheus metrics, their two text formats and their
//!   `/metrics` endpoint.
//! - [`server`]: everything on one port (ADS, status, health, reflection),
//!   each connection's maximum age, and the shutdown.
//!
//! - [`cli`]: the command line (`serve`, `status`) and its wiring (signals,
//!   logging, the chosen source, exit codes), shared by the `control-plane`
//!   binary and the demo, which runs it as a child process.

pub mod cli;
pub mod metrics;
pub mod model;
pub mod routes;
pub mod server;
pub mod source;
pub mod status;
pub mod store;
pub mod xds;
