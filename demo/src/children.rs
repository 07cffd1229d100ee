//! The demo's child processes: copies of this executable running one role
//! each (see [`crate::roles`]), started with the test kit's [`Spawn`].
//!
//! Every child:
//! - runs in its own process group, so a Ctrl-C in the terminal reaches only
//!   the demo, which then stops the children in order;
//! - is killed when its [`Process`] is dropped (and by the kernel if the
//!   demo dies, see [`crate::roles`]);
//! - logs JSON to standard error, of which the last lines are kept to
//!   explain a failure, and tells the address it bound in its `listening`
//!   line.

use std::time::Duration;

use tests::process::{Process, Spawn};

use crate::roles;

/// Log lines kept per child.
const KEPT_LINES: usize = 200;
/// How long [`Process::stop`] waits after SIGTERM before SIGKILL.
pub(crate) const STOP_TIMEOUT: Duration = Duration::from_secs(3);

/// Errors starting a child.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// This executable's path is unknown.
    #[error("cannot find the demo's own executable to start {name}: {source}")]
    CurrentExe {
        /// The child.
        name: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The process could not be started.
    #[error(transparent)]
    Process(#[from] tests::process::Error),
}

/// A role a child runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// `greeter-server`.
    GreeterServer,
    /// `control-plane`.
    ControlPlane,
}

impl Role {
    fn subcommand(self) -> &'static str {
        match self {
            Self::GreeterServer => roles::GREETER_SERVER,
            Self::ControlPlane => roles::CONTROL_PLANE,
        }
    }
}

/// Starts `role` with `args` (JSON logs added), named `name` in messages.
pub(crate) fn spawn(name: &str, role: Role, args: &[String]) -> Result<Process, Error> {
    let exe = std::env::current_exe().map_err(|source| Error::CurrentExe {
        name: name.to_owned(),
        source,
    })?;
    let child = Spawn::new(name, exe)
        .arg(role.subcommand())
        .args(args)
        .env(roles::PARENT_PID_ENV, std::process::id().to_string())
        .env(
            "RUST_LOG",
            std::env::var("DEMO_CHILD_LOG").unwrap_or_else(|_| "info".to_owned()),
        )
        .own_process_group()
        .keep_lines(KEPT_LINES)
        .start()?;
    tracing::debug!(name, pid = %child.pid(), ?role, "started");
    Ok(child)
}
