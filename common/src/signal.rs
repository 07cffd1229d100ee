//! Stop requests from the operating system.
//!
//! Kubernetes sends SIGTERM when it deletes a pod; a terminal sends SIGINT on
//! Ctrl-C. Servers treat the first as "start draining" and a second one as
//! "stop now", so the signals are a stream rather than a single future.

use std::io;

use tokio::signal::unix::{Signal, SignalKind, signal};

/// SIGTERM and SIGINT, in arrival order.
#[derive(Debug)]
pub struct StopSignals {
    term: Signal,
    int: Signal,
}

impl StopSignals {
    /// Installs the handlers. Do this before announcing readiness: until it
    /// runs, SIGTERM still kills the process outright.
    pub fn install() -> io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Waits for the next SIGTERM or SIGINT and returns its name.
    pub async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}
