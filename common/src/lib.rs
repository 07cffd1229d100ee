//! Serving plumbing shared by the project's gRPC servers (the greeter-server
//! and the control plane), so both behave the same way under Kubernetes.
//!
//! # Layout
//!
//! - [`incoming`]: the accept loop: `TCP_NODELAY` on every connection, a
//!   per-connection id and peer address visible to handlers, back-off on
//!   accept errors; TLS handshakes in tasks of their own, the client's
//!   certificate identity visible to handlers.
//! - [`tls`]: rustls (ring) server and client configurations from PEM files
//!   re-read on change, SAN matching, handshake failures by cause.
//! - [`error`]: an error and its causes as one log line.
//! - [`health`]: `grpc.health.v1` (tonic-health) whose `Watch` streams end
//!   when the server stops, so a graceful drain is not held up by them.
//! - [`signal`]: SIGTERM / SIGINT as a stream of stop requests.
//! - [`logging`]: `tracing` set-up (`RUST_LOG`, text or JSON), and the
//!   error that ends a program (one `error:` line, or a JSON record).
//! - [`hostname`]: the default instance name.

pub mod error;
pub mod health;
pub mod incoming;
pub mod logging;
pub mod signal;

/// TLS from reloaded PEM files (the `tls-reload` crate, which the client
/// library links on its own).
pub use tls_reload as tls;

/// The machine's host name, or `"unknown"` when it cannot be read.
///
/// In a Kubernetes pod this is the pod name.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}
