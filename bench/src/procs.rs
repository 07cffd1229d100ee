//! The project's binaries as child processes of a benchmark, started with
//! the test kit's [`Spawn`].
//!
//! Each [`Proc`] is started with JSON logs, waited for until it logs
//! `listening` (its address is taken from that line), and killed when
//! dropped, so nothing outlives the harness. Its last log lines are kept
//! for error messages.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use ::tests::process::{Process, Spawn};
use nix::sys::signal::Signal;

/// Log lines kept per process.
const KEPT_LINES: usize = 40;

/// Errors starting or driving a child process.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The binary is not where it was looked for.
    #[error(
        "binary {0} not found: build the workspace binaries first (`cargo build --release --bins`) \
         or point --bin-dir at them"
    )]
    Missing(PathBuf),
    /// The process could not be started, did not start listening, or
    /// could not be signalled.
    #[error(transparent)]
    Process(#[from] ::tests::process::Error),
}

/// The result type of this module.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// Where the workspace binaries are.
#[derive(Debug, Clone)]
pub(crate) struct Bins {
    dir: PathBuf,
}

impl Bins {
    /// Binaries in `dir`, or next to the running executable.
    pub(crate) fn new(dir: Option<PathBuf>) -> Self {
        let dir = dir.unwrap_or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|exe| exe.parent().map(Path::to_path_buf))
                .unwrap_or_else(|| PathBuf::from("."))
        });
        Self { dir }
    }

    /// The path of binary `name`, which must exist.
    pub(crate) fn path(&self, name: &str) -> Result<PathBuf> {
        let path = self.dir.join(name);
        if path.exists() {
            Ok(path)
        } else {
            Err(Error::Missing(path))
        }
    }
}

/// A running server process, killed on drop, and the address it listens
/// on.
#[derive(Debug)]
pub(crate) struct Proc {
    process: Process,
    addr: SocketAddr,
}

impl Proc {
    /// Starts `program` with `args` plus `--log-format json` and waits until
    /// it logs `listening`. `name` labels it in errors.
    pub(crate) async fn start(name: &str, program: &Path, args: &[String]) -> Result<Self> {
        let mut process = Spawn::new(name, program)
            .args(args)
            .keep_lines(KEPT_LINES)
            .start()?;
        let addr = process.try_wait_listening().await?;
        Ok(Self { process, addr })
    }

    /// The address it listens on, as it logged it.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its label.
    pub(crate) fn name(&self) -> &str {
        self.process.name()
    }

    /// Sends `signal`.
    pub(crate) fn signal(&self, signal: Signal) -> Result<()> {
        Ok(self.process.try_signal(signal)?)
    }

    /// Waits up to `timeout` for it to exit.
    pub(crate) async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.process.try_wait_exit(timeout).await.ok()
    }

    /// User plus system CPU time it has used, in nanoseconds; 0 once it
    /// has exited.
    pub(crate) fn cpu_ns(&self) -> u64 {
        u64::try_from(self.process.cpu_time().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Its last log lines.
    pub(crate) fn log(&self) -> String {
        self.process.log_tail(KEPT_LINES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binaries_say_how_to_build_them() {
        let bins = Bins::new(Some(PathBuf::from("/nonexistent")));
        let error = bins.path("greeter-server").unwrap_err().to_string();
        assert!(error.contains("cargo build --release --bins"), "{error}");
    }
}
