//! Serving plumbing shared by the project's gRPC servers (the greeter-server
//! and the control plane), so both behave the same way under Kubernetes.
//!
//! # Layout
//!
//! - [`incoming`]: the accept loop: `TCP_NODELAY` on every connection, a
//!   per-connection id and peer address visible to handlers, back-off on
//!   accept errors.
//! - [`health`]: `grpc.health.v1` (tonic-health) whose `Watch` streams end
//!   when the server stops, so a graceful drain is not held up by them.
//! - [`signal`]: SIGTERM / SIGINT as a stream of stop requests.
//! - [`logging`]: `tracing` set-up (`RUST_LOG`, text or JSON).
//! - [`hostname`]: the default instance name; [`error_chain`]: an error and
//!   its causes as one line.

pub mod health;
pub mod incoming;
pub mod logging;
pub mod signal;

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

/// An error and its sources as one line (`a: b: c`), the way `anyhow`
/// prints `{:#}`, skipping a source whose text its parent already contains
/// (messages that print their cause themselves).
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error, &'static str);

    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.1)
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn chains_sources_once() {
        let error = Outer(std::io::Error::other("refused"), "outer");
        assert_eq!(error_chain(&error), "outer: refused");
        let error = Outer(std::io::Error::other("refused"), "outer: refused");
        assert_eq!(error_chain(&error), "outer: refused");
    }
}
