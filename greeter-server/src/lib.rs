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
//! - [`cli`]: the command line and its wiring (signals: SIGTERM / SIGINT
//!   stop, SIGUSR1 toggles health; logging; exit codes), shared by the
//!   `greeter-server` binary and the demo, which runs it as a child process.

pub mod cli;
pub mod health;
pub mod server;
pub mod service;

pub use health::HealthControl;
pub use server::{Config, DrainOutcome, Error, run};
