//! The example backend: `greet.Greeter/SayHello`, `grpc.health.v1`, server
//! reflection, and a graceful drain, served as plaintext HTTP/2 (h2c) on
//! 8080 like a .NET 8 container.
//!
//! # Layout
//!
//! - [`service`]: the `Greeter` implementation (validation, `served_by`,
//!   the per-connection id, the `delay_ms` test knob).
//! - [`health`]: [`HealthControl`], the runtime SERVING / NOT_SERVING switch.
//! - [`server`]: [`run`], which serves until asked to stop and then drains:
//!   NOT_SERVING at once, keep answering for the drain delay, stop accepting
//!   and send GOAWAY, let in-flight calls finish within the grace period.
//!
//! The binary (`main.rs`) adds the command line, signals (SIGTERM / SIGINT
//! stop, SIGUSR1 toggles health) and logging.

pub mod health;
pub mod server;
pub mod service;

pub use health::HealthControl;
pub use server::{Config, DrainOutcome, Error, run};
