//! The status API (`controlplane.v1.ControlPlaneStatus`, see
//! `proto/proto/status.proto`) and its command-line client.
//!
//! - [`service`]: the gRPC service, served next to ADS.
//! - [`convert`]: the one conversion from the store and client registry to
//!   API messages.
//! - [`report`]: fetching everything for `control-plane status`, and its
//!   `--json` form.
//! - [`text`]: the readable tables.
//! - `explain`: why a target does not resolve (`ExplainTarget`).

pub mod convert;
mod explain;
pub mod report;
pub mod service;
pub mod text;

pub use report::{Report, fetch};
pub use service::StatusService;
